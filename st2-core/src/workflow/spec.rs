//! The Orquesta workflow definition (native spec `version: 1.0`): loading and checking.
//!
//! Owns the typed model ([`WorkflowSpec`], [`TaskSpec`], [`TransitionSpec`], ...) parsed from
//! the YAML, the schema check (`schemas/workflow.json` through [`crate::schema`]) and the
//! semantic checks Orquesta makes: tasks named in `do` exist, every task is reachable from a
//! start task, no task uses a reserved name (`continue`, `noop`, `fail`, `retry`), every
//! expression parses. Errors name the task and the field. Evaluates nothing.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::Path;

use indexmap::IndexMap;
use serde_json::{Map, Value};

use super::expr;

/// Engine commands usable in `do` (and so reserved as task names).
pub const ENGINE_COMMANDS: [&str; 4] = ["continue", "noop", "fail", "retry"];

/// A problem in a workflow definition: which task and field, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{field}: {reason}", task.as_ref().map(|t| format!("task \"{t}\": ")).unwrap_or_default())]
pub struct SpecError {
    /// The task, when the problem is inside one.
    pub task: Option<String>,
    /// The field (`next[0].do`, `input`, `/tasks/t1/join`).
    pub field: String,
    /// What is wrong.
    pub reason: String,
}

impl SpecError {
    fn new(task: Option<&str>, field: impl Into<String>, reason: impl Into<String>) -> Self {
        SpecError {
            task: task.map(str::to_string),
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// A workflow definition.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkflowSpec {
    /// Description, if any.
    pub description: Option<String>,
    /// Inputs in order: name and default value (an expression), if any.
    pub input: Vec<(String, Option<Value>)>,
    /// Variables in order: name and value (an expression).
    pub vars: Vec<(String, Value)>,
    /// Output in order: name and value (an expression).
    pub output: Vec<(String, Value)>,
    /// Tasks by name, in definition order.
    pub tasks: IndexMap<String, TaskSpec>,
    /// Names of the tasks no transition leads to (where the workflow starts), in order.
    pub start: Vec<String>,
    /// For each task, the distinct tasks with a transition to it (for `join: all`).
    pub inbound: BTreeMap<String, BTreeSet<String>>,
}

/// One task.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskSpec {
    /// Ref of the action to run; `None` for a task without action (it succeeds at once).
    pub action: Option<String>,
    /// Action input: a map of expressions, or one expression yielding the map.
    pub input: Option<Value>,
    /// Transitions, evaluated in order when the task completes.
    pub next: Vec<TransitionSpec>,
    /// Join barrier, if any.
    pub join: Option<Join>,
    /// With-items, if any.
    pub with: Option<WithItems>,
    /// Retry policy, if any.
    pub retry: Option<RetrySpec>,
    /// Seconds to wait before running (a number or an expression).
    pub delay: Option<Value>,
}

/// How many inbound branches a join waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Join {
    /// Every inbound task.
    All,
    /// This many inbound tasks.
    Count(usize),
}

/// One transition of a task.
#[derive(Debug, Clone, PartialEq)]
pub struct TransitionSpec {
    /// Condition (an expression); `None` is always true.
    pub when: Option<String>,
    /// Variables to publish, in order.
    pub publish: Vec<(String, Value)>,
    /// Tasks (or engine commands) to run next; empty means `continue`.
    pub next: Vec<String>,
}

/// With-items settings.
#[derive(Debug, Clone, PartialEq)]
pub struct WithItems {
    /// Item variable names (`x` or `x, y` for zipped lists); empty for a bare expression.
    pub vars: Vec<String>,
    /// The expression yielding the items.
    pub items: String,
    /// How many items run at once (a number or an expression); `None` is unlimited.
    pub concurrency: Option<Value>,
}

/// Retry settings.
#[derive(Debug, Clone, PartialEq)]
pub struct RetrySpec {
    /// Condition; `None` means "the task failed".
    pub when: Option<String>,
    /// Maximum number of retries (a number or an expression).
    pub count: Value,
    /// Seconds between retries (a number or an expression).
    pub delay: Option<Value>,
}

impl WorkflowSpec {
    /// Parses and checks a workflow definition (YAML text). Every problem found is returned.
    pub fn parse(text: &str) -> Result<WorkflowSpec, Vec<SpecError>> {
        let doc = crate::schema::parse_yaml(Path::new("workflow"), text)
            .map_err(|e| vec![SpecError::new(None, "", e.reason)])?;
        WorkflowSpec::from_value(&doc)
    }

    /// Checks and converts a parsed workflow definition.
    pub fn from_value(doc: &Value) -> Result<WorkflowSpec, Vec<SpecError>> {
        crate::schema::validate(
            crate::schema::MetadataKind::Workflow,
            Path::new("workflow"),
            doc,
        )
        .map_err(|errors| {
            errors
                .into_iter()
                .map(|e| SpecError::new(None, e.field, e.reason))
                .collect::<Vec<_>>()
        })?;
        let mut errors = Vec::new();
        let mut spec = build(doc, &mut errors);
        check(&mut spec, &mut errors);
        if errors.is_empty() {
            Ok(spec)
        } else {
            Err(errors)
        }
    }

    /// The task named `name`.
    pub fn task(&self, name: &str) -> Option<&TaskSpec> {
        self.tasks.get(name)
    }
}

/// One-entry maps `[{a: x}, {b: y}]` → `[(a, x), (b, y)]`.
fn pairs(value: Option<&Value>) -> Vec<(String, Value)> {
    value
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(Value::as_object)
                .flat_map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())))
                .collect()
        })
        .unwrap_or_default()
}

/// Splits `a=1 b="x y" c=<% $.z %>` into `(key, value)` pairs, keeping quoted text and
/// expressions whole. Values are parsed as JSON/YAML scalars when they are not expressions.
pub fn inline_params(text: &str) -> Result<Vec<(String, Value)>, String> {
    let mut tokens = Vec::new();
    let mut current = String::new();
    let mut depth = 0i32;
    let mut quote: Option<char> = None;
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        match (quote, c) {
            (Some(q), c) if c == q => {
                quote = None;
                current.push(c);
            }
            (Some(_), c) => current.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                current.push(c);
            }
            (None, '{' | '<') if next == Some(if c == '{' { '{' } else { '%' }) => {
                depth += 1;
                current.push(c);
                current.push(chars[i + 1]);
                i += 1;
            }
            (None, '}' | '%') if next == Some(if c == '}' { '}' } else { '>' }) => {
                depth -= 1;
                current.push(c);
                current.push(chars[i + 1]);
                i += 1;
            }
            (None, '[' | '(' | '{') => {
                depth += 1;
                current.push(c);
            }
            (None, ']' | ')' | '}') => {
                depth -= 1;
                current.push(c);
            }
            (None, c) if c.is_whitespace() && depth <= 0 => {
                if !current.is_empty() {
                    tokens.push(std::mem::take(&mut current));
                }
            }
            (None, c) => current.push(c),
        }
        i += 1;
    }
    if quote.is_some() {
        return Err(format!("unclosed quote in {text:?}"));
    }
    if !current.is_empty() {
        tokens.push(current);
    }
    tokens
        .into_iter()
        .map(|token| {
            let (key, raw) = token
                .split_once('=')
                .ok_or_else(|| format!("{token:?} is not of the form name=value"))?;
            let value = if let Some(q) = raw
                .strip_prefix('"')
                .and_then(|r| r.strip_suffix('"'))
                .or_else(|| raw.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')))
            {
                Value::String(q.to_string())
            } else if expr::dialect(raw).is_some() {
                Value::String(raw.to_string())
            } else {
                serde_yaml::from_str::<Value>(raw).unwrap_or_else(|_| Value::String(raw.into()))
            };
            Ok((key.to_string(), value))
        })
        .collect()
}

fn build(doc: &Value, errors: &mut Vec<SpecError>) -> WorkflowSpec {
    let input = doc
        .get("input")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .flat_map(|item| match item {
                    Value::String(name) => vec![(name.clone(), None)],
                    Value::Object(m) => m
                        .iter()
                        .map(|(k, v)| (k.clone(), Some(v.clone())))
                        .collect(),
                    _ => Vec::new(),
                })
                .collect()
        })
        .unwrap_or_default();
    let mut tasks = IndexMap::new();
    let empty = Map::new();
    let task_docs = doc
        .get("tasks")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    for (name, t) in task_docs {
        tasks.insert(name.clone(), build_task(name, t, errors));
    }
    WorkflowSpec {
        description: doc
            .get("description")
            .and_then(Value::as_str)
            .map(str::to_string),
        input,
        vars: pairs(doc.get("vars")),
        output: pairs(doc.get("output")),
        tasks,
        start: Vec::new(),
        inbound: BTreeMap::new(),
    }
}

fn build_task(name: &str, t: &Value, errors: &mut Vec<SpecError>) -> TaskSpec {
    let task = Some(name);
    let mut action = t.get("action").and_then(Value::as_str).map(str::to_string);
    let mut input = t.get("input").cloned();
    // `action: core.echo message=hi` carries inline input.
    if let Some(text) = action.clone() {
        if let Some((reference, rest)) = text.trim().split_once(char::is_whitespace) {
            action = Some(reference.to_string());
            match inline_params(rest) {
                Ok(params) => {
                    let mut map = match input.take() {
                        Some(Value::Object(m)) => m,
                        _ => Map::new(),
                    };
                    for (k, v) in params {
                        map.entry(k).or_insert(v);
                    }
                    input = Some(Value::Object(map));
                }
                Err(e) => errors.push(SpecError::new(task, "action", e)),
            }
        }
    }
    let join = match t.get("join") {
        Some(Value::String(_)) => Some(Join::All),
        Some(Value::Number(n)) => Some(Join::Count(n.as_u64().unwrap_or(0) as usize)),
        _ => None,
    };
    let with = t.get("with").map(|w| {
        let (items, concurrency) = match w {
            Value::String(s) => (s.clone(), None),
            other => (
                other
                    .get("items")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                other.get("concurrency").cloned(),
            ),
        };
        let (vars, items) = split_items(&items);
        WithItems {
            vars,
            items,
            concurrency,
        }
    });
    let retry = t.get("retry").map(|r| RetrySpec {
        when: r.get("when").and_then(Value::as_str).map(str::to_string),
        count: r.get("count").cloned().unwrap_or(Value::from(0)),
        delay: r.get("delay").cloned(),
    });
    let next = t
        .get("next")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .enumerate()
                .map(|(i, tr)| build_transition(name, i, tr, errors))
                .collect()
        })
        .unwrap_or_default();
    TaskSpec {
        action,
        input,
        next,
        join,
        with,
        retry,
        delay: t.get("delay").cloned(),
    }
}

/// `x, y in <% zip(...) %>` → (`[x, y]`, `<% zip(...) %>`); a bare expression has no names.
fn split_items(text: &str) -> (Vec<String>, String) {
    let trimmed = text.trim();
    let head_end = trimmed.find(['<', '{']).unwrap_or(trimmed.len());
    if let Some(pos) = trimmed[..head_end].find(" in ") {
        let names = trimmed[..pos]
            .split(',')
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty())
            .collect();
        return (names, trimmed[pos + 4..].trim().to_string());
    }
    (Vec::new(), trimmed.to_string())
}

fn build_transition(
    task: &str,
    i: usize,
    tr: &Value,
    errors: &mut Vec<SpecError>,
) -> TransitionSpec {
    let publish = match tr.get("publish") {
        Some(Value::String(s)) => inline_params(s).unwrap_or_else(|e| {
            errors.push(SpecError::new(Some(task), format!("next[{i}].publish"), e));
            Vec::new()
        }),
        other => pairs(other),
    };
    let next = match tr.get("do") {
        Some(Value::String(s)) => s
            .split(',')
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty())
            .collect(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(|s| s.trim().to_string())
            .collect(),
        _ => Vec::new(),
    };
    TransitionSpec {
        when: tr.get("when").and_then(Value::as_str).map(str::to_string),
        publish,
        next,
    }
}

fn check_expr(task: Option<&str>, field: &str, value: &Value, errors: &mut Vec<SpecError>) {
    if let Err(e) = expr::check_value(value) {
        errors.push(SpecError::new(task, field, e.to_string()));
    }
}

fn check(spec: &mut WorkflowSpec, errors: &mut Vec<SpecError>) {
    for (name, default) in &spec.input {
        if let Some(d) = default {
            check_expr(None, &format!("input.{name}"), d, errors);
        }
    }
    for (name, v) in &spec.vars {
        check_expr(None, &format!("vars.{name}"), v, errors);
    }
    for (name, v) in &spec.output {
        check_expr(None, &format!("output.{name}"), v, errors);
    }
    let mut inbound: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (name, task) in &spec.tasks {
        let t = Some(name.as_str());
        if ENGINE_COMMANDS.contains(&name.as_str()) {
            errors.push(SpecError::new(
                t,
                "",
                format!("\"{name}\" is a reserved word (an engine command) and cannot name a task"),
            ));
        }
        if let Some(input) = &task.input {
            check_expr(t, "input", input, errors);
        }
        if let Some(delay) = &task.delay {
            check_expr(t, "delay", delay, errors);
        }
        if let Some(with) = &task.with {
            check_expr(t, "with.items", &Value::String(with.items.clone()), errors);
            if expr::dialect(&with.items).is_none() && !with.items.starts_with('[') {
                errors.push(SpecError::new(
                    t,
                    "with.items",
                    format!("\"{}\" is not an expression yielding the items", with.items),
                ));
            }
            if let Some(c) = &with.concurrency {
                check_expr(t, "with.concurrency", c, errors);
            }
        }
        if let Some(retry) = &task.retry {
            if let Some(w) = &retry.when {
                check_expr(t, "retry.when", &Value::String(w.clone()), errors);
            }
            check_expr(t, "retry.count", &retry.count, errors);
            if let Some(d) = &retry.delay {
                check_expr(t, "retry.delay", d, errors);
            }
        }
        for (i, tr) in task.next.iter().enumerate() {
            if let Some(w) = &tr.when {
                check_expr(
                    t,
                    &format!("next[{i}].when"),
                    &Value::String(w.clone()),
                    errors,
                );
            }
            for (k, v) in &tr.publish {
                check_expr(t, &format!("next[{i}].publish.{k}"), v, errors);
            }
            for target in &tr.next {
                if ENGINE_COMMANDS.contains(&target.as_str()) {
                    continue;
                }
                if !spec.tasks.contains_key(target) {
                    errors.push(SpecError::new(
                        t,
                        format!("next[{i}].do"),
                        format!("task \"{target}\" is not defined"),
                    ));
                    continue;
                }
                inbound
                    .entry(target.clone())
                    .or_default()
                    .insert(name.clone());
            }
        }
    }
    let start: Vec<String> = spec
        .tasks
        .keys()
        .filter(|n| !inbound.contains_key(*n))
        .cloned()
        .collect();
    // Reachability from the start tasks.
    let mut seen: BTreeSet<&str> = start.iter().map(String::as_str).collect();
    let mut queue: VecDeque<&str> = start.iter().map(String::as_str).collect();
    while let Some(name) = queue.pop_front() {
        let Some(task) = spec.tasks.get(name) else {
            continue;
        };
        for target in task.next.iter().flat_map(|t| &t.next) {
            if spec.tasks.contains_key(target) && seen.insert(target) {
                queue.push_back(target);
            }
        }
    }
    for name in spec.tasks.keys() {
        if !seen.contains(name.as_str()) {
            errors.push(SpecError::new(
                Some(name),
                "",
                "task is unreachable: no start task leads to it",
            ));
        }
    }
    spec.start = start;
    spec.inbound = inbound;
}
