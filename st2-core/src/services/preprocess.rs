//! Trigger preprocessing: the ordered steps a trigger type declares under `preprocessing:`,
//! applied to every instance of that type at dispatch, before it is stored and handed to the
//! rules engine. An st2-rs extension (StackStorm has none; the ideas come from Zabbix item
//! preprocessing and Sarracenia's filter phase).
//!
//! Steps (`type:`), each with an optional `name` used in reasons:
//!
//! | type | fields | effect |
//! |---|---|---|
//! | `match` | `key` (JSONPath, `trigger.…`), `pattern` (regex, searched), `required` | rejects unless the value matches |
//! | `reject` | `key`, `pattern`, `required` | rejects when the value matches |
//! | `criteria` | `criteria` (a rule's criteria) | rejects unless every criterion holds |
//! | `dedup` | `key` (Jinja), `ttl` (seconds) | suppresses an instance whose key was seen within `ttl` |
//! | `extract` | `field`, `jsonpath` or `template`, `required` | sets `payload[field]` |
//! | `throttle` | `key` (Jinja, optional), `limit`, `period` (seconds) | suppresses past `limit` per window |
//! | `discard_unchanged` | `key` (Jinja, optional), `value` (Jinja), `ttl` (optional) | suppresses when `value` equals the last one seen for `key` |
//!
//! Templates see the payload as `trigger` (and `st2kv`). A missing field is "no match" for
//! `match`/`reject` and leaves `extract` alone, unless the step says `required: true`, which
//! makes it a failure. Any failure (bad regex, template error, missing required field) marks
//! the instance `processing_failed` with the step; a rejected or suppressed instance is stored
//! `processed` with a `preprocessing` record and never reaches the rules engine.
//!
//! State (duplicate keys, throttle windows, last values) lives in the store
//! ([`Collection::PreprocessState`], expiring on `expire_timestamp`), so it survives
//! restarts. The state writes of an accepted instance are applied in the same batch as the
//! instance itself, under a per-trigger-type lock held by [`Preprocessors::lock`]: instances of
//! one type are preprocessed one at a time in a process, so a source's instances are decided
//! in the order it dispatched them. Two processes dispatching the same trigger type may race
//! on one state entry (both see it absent); built-in sensors hold a lease, so one source is
//! dispatched from one process.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::{Ctx, ServiceError};
use crate::model::JsonMap;
use crate::rules::{CompiledCriteria, JsonPath, MatchContext};
use crate::store::{Collection, Store, Write};
use crate::template::{CompiledPattern, CompiledTemplate, RenderContext, TemplateEngine};

/// What preprocessing decided for one instance.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Every step passed: the (possibly extended) payload goes on to the rules engine.
    Accept,
    /// A step dropped the instance (`outcome` is `rejected` or `suppressed`).
    Drop(Record),
    /// A step could not be applied: the instance is `processing_failed`.
    Fail(Record),
}

/// The `preprocessing` record stored on a dropped or failed trigger instance.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// `rejected`, `suppressed` or `failed`.
    pub outcome: &'static str,
    /// Index of the step in the list (from 0).
    pub step: usize,
    /// The step's name, or its type when unnamed.
    pub name: String,
    /// Why.
    pub reason: String,
}

impl Record {
    /// The record as stored on the trigger instance.
    pub fn to_json(&self) -> Value {
        json!({"outcome": self.outcome, "step": self.step, "name": self.name, "reason": self.reason})
    }
}

/// A verdict with the state writes to apply with the instance.
type Outcome = Result<(Verdict, Vec<Write>), ServiceError>;

/// A source of a value: a JSONPath into `{trigger: payload}` or a Jinja template.
#[derive(Debug)]
enum Source {
    Path(JsonPath),
    Template(CompiledPattern),
}

#[derive(Debug)]
enum Kind {
    /// `match` (keep when matching) or `reject` (drop when matching).
    Regex {
        path: JsonPath,
        regex: fancy_regex::Regex,
        required: bool,
        keep_on_match: bool,
    },
    Criteria(CompiledCriteria),
    Dedup {
        key: CompiledTemplate,
        ttl: i64,
    },
    Extract {
        field: String,
        source: Source,
        required: bool,
    },
    Throttle {
        key: Option<CompiledTemplate>,
        limit: u64,
        period: i64,
    },
    DiscardUnchanged {
        key: Option<CompiledTemplate>,
        value: CompiledTemplate,
        ttl: Option<i64>,
    },
}

#[derive(Debug)]
struct Step {
    name: String,
    kind: Kind,
}

/// A trigger type's steps, compiled once. A step that does not compile is kept as its error:
/// every instance then fails at that step (and the registrar reports it up front).
#[derive(Debug)]
pub struct Pipeline {
    trigger_type: String,
    steps: Vec<Result<Step, (String, String)>>,
}

fn field<'a>(spec: &'a JsonMap, name: &str) -> Option<&'a Value> {
    spec.get(name).filter(|v| !v.is_null())
}

fn str_field(spec: &JsonMap, name: &str) -> Result<String, String> {
    match field(spec, name) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(_) => Err(format!("`{name}` must be a non-empty string")),
        None => Err(format!("`{name}` is required")),
    }
}

/// A positive number of seconds, as milliseconds.
fn millis(spec: &JsonMap, name: &str) -> Result<Option<i64>, String> {
    match field(spec, name) {
        None => Ok(None),
        Some(v) => match v.as_f64() {
            Some(n) if n > 0.0 => Ok(Some((n * 1000.0).round() as i64)),
            _ => Err(format!("`{name}` must be a positive number of seconds")),
        },
    }
}

fn template(
    engine: &TemplateEngine,
    spec: &JsonMap,
    name: &str,
) -> Result<CompiledTemplate, String> {
    let src = str_field(spec, name)?;
    engine.compile(&src).map_err(|e| format!("`{name}`: {e}"))
}

fn jsonpath(spec: &JsonMap, name: &str) -> Result<JsonPath, String> {
    let src = str_field(spec, name)?;
    JsonPath::parse(&src).map_err(|e| format!("`{name}` {src:?}: {e}"))
}

fn compile_step(
    engine: &TemplateEngine,
    index: usize,
    spec: &Value,
) -> Result<Step, (String, String)> {
    let fallback = format!("step {index}");
    let Some(spec) = spec.as_object() else {
        return Err((fallback, "a step must be a mapping".into()));
    };
    let ty = spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let name = spec
        .get("name")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| if ty.is_empty() { fallback } else { ty.clone() });
    let required = spec
        .get("required")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let kind = (|| -> Result<Kind, String> {
        Ok(match ty.as_str() {
            "match" | "reject" => {
                let pattern = str_field(spec, "pattern")?;
                Kind::Regex {
                    path: jsonpath(spec, "key")?,
                    regex: fancy_regex::Regex::new(&pattern)
                        .map_err(|e| format!("`pattern` {pattern:?}: {e}"))?,
                    required,
                    keep_on_match: ty == "match",
                }
            }
            "criteria" => {
                let Some(Value::Object(criteria)) = field(spec, "criteria") else {
                    return Err("`criteria` must be a mapping of key to {type, pattern}".into());
                };
                let (compiled, issues) = CompiledCriteria::compile(&name, criteria, engine);
                if let Some(e) = issues.first() {
                    return Err(e.to_string());
                }
                Kind::Criteria(compiled)
            }
            "dedup" => Kind::Dedup {
                key: template(engine, spec, "key")?,
                ttl: millis(spec, "ttl")?.ok_or("`ttl` is required")?,
            },
            "extract" => {
                let source = match (field(spec, "jsonpath"), field(spec, "template")) {
                    (Some(_), None) => Source::Path(jsonpath(spec, "jsonpath")?),
                    (None, Some(_)) => {
                        let src = str_field(spec, "template")?;
                        Source::Template(
                            engine
                                .compile_pattern(&src)
                                .map_err(|e| format!("`template`: {e}"))?,
                        )
                    }
                    _ => return Err("exactly one of `jsonpath` and `template` is required".into()),
                };
                Kind::Extract {
                    field: str_field(spec, "field")?,
                    source,
                    required,
                }
            }
            "throttle" => Kind::Throttle {
                key: field(spec, "key").map(|_| template(engine, spec, "key")).transpose()?,
                limit: field(spec, "limit")
                    .and_then(Value::as_u64)
                    .filter(|n| *n > 0)
                    .ok_or("`limit` must be a positive integer")?,
                period: millis(spec, "period")?.ok_or("`period` is required")?,
            },
            "discard_unchanged" => Kind::DiscardUnchanged {
                key: field(spec, "key").map(|_| template(engine, spec, "key")).transpose()?,
                value: template(engine, spec, "value")?,
                ttl: millis(spec, "ttl")?,
            },
            "" => return Err("`type` is required".into()),
            other => {
                return Err(format!(
                    "unknown type {other:?} (expected match, reject, criteria, dedup, extract, throttle or discard_unchanged)"
                ))
            }
        })
    })()
    .map_err(|reason| (name.clone(), reason))?;
    Ok(Step { name, kind })
}

/// Checks a trigger type's `preprocessing` list: `(step index, reason)` for each bad step.
pub fn check(engine: &TemplateEngine, steps: &[Value]) -> Vec<(usize, String)> {
    steps
        .iter()
        .enumerate()
        .filter_map(|(i, s)| compile_step(engine, i, s).err().map(|(_, r)| (i, r)))
        .collect()
}

/// A state entry's id: a digest of its key (keys hold arbitrary payload text).
fn state_id(key: &str) -> String {
    hex::encode(&Sha256::digest(key.as_bytes())[..16])
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn parse_ts(v: Option<&Value>) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(v?.as_str()?)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Reads a live (unexpired) state entry.
async fn live_state(
    store: &dyn Store,
    id: &str,
    now: DateTime<Utc>,
) -> Result<Option<JsonMap>, ServiceError> {
    let Some(Value::Object(doc)) = store.get(Collection::PreprocessState, id).await? else {
        return Ok(None);
    };
    match parse_ts(doc.get("expire_timestamp")) {
        Some(exp) if exp <= now => Ok(None),
        _ => Ok(Some(doc)),
    }
}

impl Pipeline {
    /// Compiles the steps of trigger type `trigger_type`.
    pub fn compile(engine: &TemplateEngine, trigger_type: &str, steps: &[Value]) -> Pipeline {
        Pipeline {
            trigger_type: trigger_type.to_string(),
            steps: steps
                .iter()
                .enumerate()
                .map(|(i, s)| compile_step(engine, i, s))
                .collect(),
        }
    }

    /// Runs the steps over `payload` (extended in place by `extract`), reading state from the
    /// store. Returns the verdict and, for an accepted instance, the state writes to apply
    /// with it. Only store errors are errors; everything else is a verdict.
    pub async fn run(
        &self,
        store: &dyn Store,
        render: &RenderContext,
        payload: &mut Value,
        now: DateTime<Utc>,
    ) -> Outcome {
        let mut writes = Vec::new();
        for (index, step) in self.steps.iter().enumerate() {
            let step = match step {
                Ok(s) => s,
                Err((name, reason)) => {
                    return Ok((
                        Verdict::Fail(record("failed", index, name, reason.clone())),
                        Vec::new(),
                    ))
                }
            };
            let tctx = render.clone().with("trigger", payload.clone());
            let fail = |reason: String| -> Outcome {
                Ok((
                    Verdict::Fail(record("failed", index, &step.name, reason)),
                    Vec::new(),
                ))
            };
            let dropped = |outcome: &'static str, reason: String| -> Outcome {
                Ok((
                    Verdict::Drop(record(outcome, index, &step.name, reason)),
                    Vec::new(),
                ))
            };
            let state_key = |kind: &str, key: &str| {
                format!(
                    "{}\u{1f}{}\u{1f}{kind}\u{1f}{key}",
                    self.trigger_type, step.name
                )
            };
            let render_key = |key: &Option<CompiledTemplate>| -> Result<String, String> {
                match key {
                    Some(t) => t.render(&tctx).map_err(|e| format!("`key`: {e}")),
                    None => Ok(String::new()),
                }
            };
            match &step.kind {
                Kind::Regex {
                    path,
                    regex,
                    required,
                    keep_on_match,
                } => {
                    let found = match path.first("trigger", payload) {
                        Ok(v) => v.map(|v| v.into_owned()),
                        Err(e) => return fail(format!("`key` {:?}: {e}", path.source())),
                    };
                    let matched = match found {
                        None if *required => return fail(format!("{} is missing", path.source())),
                        None => false,
                        Some(v) => {
                            let text = match &v {
                                Value::String(s) => s.clone(),
                                other => other.to_string(),
                            };
                            match regex.is_match(&text) {
                                Ok(m) => m,
                                Err(e) => return fail(format!("`pattern`: {e}")),
                            }
                        }
                    };
                    if matched != *keep_on_match {
                        let how = if *keep_on_match {
                            "does not match"
                        } else {
                            "matches"
                        };
                        return dropped(
                            "rejected",
                            format!("{} {how} {:?}", path.source(), regex.as_str()),
                        );
                    }
                }
                Kind::Criteria(criteria) => {
                    let outcome =
                        criteria.evaluate(&step.name, payload, &MatchContext::from(render));
                    if let Some(e) = outcome.errors.first() {
                        return fail(e.to_string());
                    }
                    if !outcome.matched {
                        return dropped("rejected", "criteria do not hold".into());
                    }
                }
                Kind::Dedup { key, ttl } => {
                    let key = match key.render(&tctx) {
                        Ok(k) => k,
                        Err(e) => return fail(format!("`key`: {e}")),
                    };
                    let full = state_key("dedup", &key);
                    let id = state_id(&full);
                    if live_state(store, &id, now).await?.is_some() {
                        return dropped(
                            "suppressed",
                            format!("duplicate of key {key:?} seen within its ttl"),
                        );
                    }
                    writes.push(state_write(
                        &id,
                        &full,
                        now + ChronoDuration::milliseconds(*ttl),
                        json!({}),
                    ));
                }
                Kind::Extract {
                    field,
                    source,
                    required,
                } => {
                    let value = match source {
                        Source::Path(p) => match p.first("trigger", payload) {
                            Ok(v) => v.map(|v| v.into_owned()),
                            Err(e) => return fail(format!("`jsonpath` {:?}: {e}", p.source())),
                        },
                        Source::Template(t) => match t.render(&tctx) {
                            Ok(v) => Some(v),
                            Err(e) => return fail(format!("`template`: {e}")),
                        },
                    };
                    match (value, payload.as_object_mut()) {
                        (Some(v), Some(obj)) => {
                            obj.insert(field.clone(), v);
                        }
                        (Some(_), None) => return fail("the payload is not an object".into()),
                        (None, _) if *required => {
                            return fail(format!("nothing to extract into {field:?}"))
                        }
                        (None, _) => {}
                    }
                }
                Kind::Throttle { key, limit, period } => {
                    let key = match render_key(key) {
                        Ok(k) => k,
                        Err(e) => return fail(e),
                    };
                    let full = state_key("throttle", &key);
                    let id = state_id(&full);
                    let (start, count) = match live_state(store, &id, now).await? {
                        Some(doc) => (
                            parse_ts(doc.get("window_start")).unwrap_or(now),
                            doc.get("count").and_then(Value::as_u64).unwrap_or(0),
                        ),
                        None => (now, 0),
                    };
                    if count >= *limit {
                        return dropped(
                            "suppressed",
                            format!(
                                "throttled: {limit} per {} s reached for key {key:?}",
                                *period as f64 / 1000.0
                            ),
                        );
                    }
                    let expire = start + ChronoDuration::milliseconds(*period);
                    writes.push(state_write(
                        &id,
                        &full,
                        expire,
                        json!({"window_start": ts(start), "count": count + 1}),
                    ));
                }
                Kind::DiscardUnchanged { key, value, ttl } => {
                    let key = match render_key(key) {
                        Ok(k) => k,
                        Err(e) => return fail(e),
                    };
                    let current = match value.render(&tctx) {
                        Ok(v) => v,
                        Err(e) => return fail(format!("`value`: {e}")),
                    };
                    let full = state_key("discard_unchanged", &key);
                    let id = state_id(&full);
                    if let Some(doc) = live_state(store, &id, now).await? {
                        if doc.get("value").and_then(Value::as_str) == Some(current.as_str()) {
                            return dropped(
                                "suppressed",
                                format!("value {current:?} unchanged for key {key:?}"),
                            );
                        }
                    }
                    let expire = ttl.map(|t| now + ChronoDuration::milliseconds(t));
                    let mut doc = json!({"value": current});
                    let w = match expire {
                        Some(e) => state_write(&id, &full, e, doc),
                        None => {
                            doc["id"] = json!(id);
                            doc["key"] = json!(full);
                            Write::Put {
                                collection: Collection::PreprocessState,
                                doc,
                            }
                        }
                    };
                    writes.push(w);
                }
            }
        }
        Ok((Verdict::Accept, writes))
    }
}

fn record(outcome: &'static str, step: usize, name: &str, reason: String) -> Record {
    Record {
        outcome,
        step,
        name: name.to_string(),
        reason,
    }
}

fn state_write(id: &str, key: &str, expire: DateTime<Utc>, mut extra: Value) -> Write {
    extra["id"] = json!(id);
    extra["key"] = json!(key);
    extra["expire_timestamp"] = json!(ts(expire));
    Write::Put {
        collection: Collection::PreprocessState,
        doc: extra,
    }
}

/// A pipeline with the steps it was compiled from.
type Compiled = (Vec<Value>, Arc<Pipeline>);

/// Compiled pipelines by trigger type ref, and the per-type locks (one per platform, kept in
/// the [`Catalog`](super::catalog::Catalog)).
#[derive(Default)]
pub struct Preprocessors {
    /// Trigger type ref → (the steps it was compiled from, the pipeline).
    pipelines: Mutex<HashMap<String, Compiled>>,
    /// Trigger type ref → the lock its instances are preprocessed under.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl std::fmt::Debug for Preprocessors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Preprocessors").finish_non_exhaustive()
    }
}

impl Preprocessors {
    /// The compiled pipeline of a trigger type (recompiled when its steps changed).
    pub fn pipeline(
        &self,
        engine: &TemplateEngine,
        trigger_type: &str,
        steps: &[Value],
    ) -> Arc<Pipeline> {
        let mut map = self.pipelines.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((src, p)) = map.get(trigger_type) {
            if src.as_slice() == steps {
                return Arc::clone(p);
            }
        }
        let p = Arc::new(Pipeline::compile(engine, trigger_type, steps));
        map.insert(trigger_type.to_string(), (steps.to_vec(), Arc::clone(&p)));
        p
    }

    /// Takes the lock of a trigger type: hold it until the instance and its state writes are
    /// stored, so instances of one type are decided one at a time, in arrival order.
    pub async fn lock(&self, trigger_type: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let m = {
            let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
            Arc::clone(locks.entry(trigger_type.to_string()).or_default())
        };
        m.lock_owned().await
    }
}

/// Deletes expired state entries (the MongoDB backend also expires them by itself); at most
/// 10,000 per call.
pub async fn purge_expired(ctx: &Ctx) -> Result<usize, ServiceError> {
    let now = Utc::now();
    let docs = ctx
        .store
        .find(
            Collection::PreprocessState,
            &crate::store::Query::all()
                .sort("expire_timestamp", false)
                .page(0, Some(10_000)),
        )
        .await?;
    let writes: Vec<Write> = docs
        .iter()
        .filter(|d| parse_ts(d.get("expire_timestamp")).is_some_and(|t| t <= now))
        .filter_map(|d| d.get("id").and_then(Value::as_str))
        .map(|id| Write::Delete {
            collection: Collection::PreprocessState,
            id: id.to_string(),
        })
        .collect();
    let n = writes.len();
    if n > 0 {
        ctx.store.apply(writes).await?;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_steps_are_named_with_their_reason() {
        let engine = TemplateEngine::new();
        let steps = vec![
            json!({"type": "match", "key": "trigger.a", "pattern": "("}),
            json!({"type": "dedup", "key": "{{ trigger.a }}"}),
            json!({"type": "nope"}),
            json!({"type": "extract", "field": "x"}),
            json!({"type": "throttle", "limit": 0, "period": 1}),
            json!({"type": "extract", "field": "x", "jsonpath": "trigger.a"}),
        ];
        let issues = check(&engine, &steps);
        let idx: Vec<usize> = issues.iter().map(|(i, _)| *i).collect();
        assert_eq!(idx, vec![0, 1, 2, 3, 4]);
        assert!(issues[1].1.contains("ttl"), "{issues:?}");
        assert!(issues[2].1.contains("unknown type \"nope\""), "{issues:?}");
    }
}
