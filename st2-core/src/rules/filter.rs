//! Evaluating one rule's criteria against a trigger instance payload, as StackStorm's
//! `RuleFilter.filter()` does (`st2reactor/rules/filter.py`).
//!
//! For each criterion, in the rule's order, stopping at the first that does not hold:
//! 1. no `type` → the criterion (and so the rule) is false, silently;
//! 2. the pattern is rendered: non-strings as they are, strings through the template engine in
//!    the context `{trigger: payload, st2kv}` (`{{ … }}` rendered with `to_complex` and decoded,
//!    so lists and numbers keep their type);
//! 3. the key, its `#tag` suffix stripped, is looked up as a `jsonpath_rw` path in
//!    `{trigger: payload}`; the first match is the value, no match is `None`;
//! 4. the operator (case-insensitive) is applied.
//!
//! A failure in 2–4 makes the criterion false and is reported as a [`CriteriaError`] (StackStorm
//! records a failed rule enforcement with it). A rule with criteria never matches an empty or
//! falsy payload (not even with `nexists`). `search` evaluates its child criteria (keys
//! `item.<path>`) against each list item in the context `{item: …}`, every child for every
//! item, as Python's list comprehensions do; child failures are reported and count as false.
//!
//! Templates, paths and constant regular expressions are compiled once, in
//! [`CompiledCriteria::compile`]; errors found then are reported again at every evaluation,
//! as StackStorm (which compiles per event) would.

use std::borrow::Cow;
use std::cell::OnceCell;

use chrono::{DateTime, Utc};
use serde_json::Value as Json;

use super::jsonpath::{JsonPath, JsonPathError};
use super::operators::{
    apply_prepared, search_misuse, Operator, OperatorError, PreparedRegex, SearchCondition,
};
use super::python::py_iter;
use crate::model::{JsonMap, Rule};
use crate::pyfmt::{self, type_name, ControlEscapes};
use crate::template::{
    is_jinja_expression, CompiledPattern, RenderContext, TemplateEngine, TemplateError,
};

/// Name of the payload in the criteria context (StackStorm's `TRIGGER_PAYLOAD_PREFIX`).
pub const TRIGGER_PREFIX: &str = "trigger";

/// Name of a list item in `search` child criteria (`TRIGGER_ITEM_PAYLOAD_PREFIX`).
pub const ITEM_PREFIX: &str = "item";

static NULL: Json = Json::Null;

/// What an evaluation needs besides the payload.
#[derive(Debug, Clone, Default)]
pub struct MatchContext {
    /// Values templates see besides `trigger`/`item`: normally only the datastore
    /// ([`RenderContext::with_kv`], StackStorm's `st2kv.system`).
    pub render: RenderContext,
    /// The current time for `timediff_*`; `None` reads the clock (once per evaluation).
    pub now: Option<DateTime<Utc>>,
    /// Id of the trigger instance, to word failure reasons exactly as StackStorm does.
    pub trigger_instance_id: Option<String>,
}

impl MatchContext {
    /// An empty context (no datastore, the real clock).
    pub fn new() -> Self {
        Self::default()
    }

    /// Uses `render` as the template context (the datastore, ...).
    pub fn with_render(mut self, render: RenderContext) -> Self {
        self.render = render;
        self
    }

    /// Evaluates `timediff_*` as if it were `now`.
    pub fn at(mut self, now: DateTime<Utc>) -> Self {
        self.now = Some(now);
        self
    }

    /// Words failure reasons for the trigger instance `id`.
    pub fn for_trigger_instance(mut self, id: impl Into<String>) -> Self {
        self.trigger_instance_id = Some(id.into());
        self
    }
}

impl From<&RenderContext> for MatchContext {
    fn from(render: &RenderContext) -> Self {
        MatchContext::new().with_render(render.clone())
    }
}

impl From<RenderContext> for MatchContext {
    fn from(render: RenderContext) -> Self {
        MatchContext::new().with_render(render)
    }
}

impl From<&MatchContext> for MatchContext {
    fn from(ctx: &MatchContext) -> Self {
        ctx.clone()
    }
}

/// Why a criterion could not be evaluated (it then counts as false). The texts are
/// StackStorm's: `<message>: <exception>`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CriteriaError {
    /// The pattern template could not be compiled or rendered.
    #[error("Failed to render pattern value \"{pattern}\" for key \"{key}\": {source}")]
    Render {
        /// The criterion key as written.
        key: String,
        /// The pattern text.
        pattern: String,
        /// What the template engine said.
        #[source]
        source: TemplateError,
    },
    /// The key is not a valid path, or looking it up failed.
    #[error("Failed transforming criteria key {key}: {source}")]
    Lookup {
        /// The criterion key as written.
        key: String,
        /// What `jsonpath_rw` would have raised.
        #[source]
        source: JsonPathError,
    },
    /// The criterion `type` is not an operator.
    #[error("There might be a problem with the criteria in rule {rule}: Invalid operator: {name}")]
    UnknownOperator {
        /// The rule ref.
        rule: String,
        /// The criterion key as written.
        key: String,
        /// The `type` given.
        name: String,
    },
    /// The operator raised.
    #[error("There might be a problem with the criteria in rule {rule}: {source}")]
    Operator {
        /// The rule ref.
        rule: String,
        /// The criterion key as written.
        key: String,
        /// What the Python operator would have raised.
        #[source]
        source: OperatorError,
    },
}

impl CriteriaError {
    /// The criterion key (with its `#tag`) the error is about.
    pub fn key(&self) -> &str {
        match self {
            CriteriaError::Render { key, .. }
            | CriteriaError::Lookup { key, .. }
            | CriteriaError::UnknownOperator { key, .. }
            | CriteriaError::Operator { key, .. } => key,
        }
    }

    /// The `failure_reason` StackStorm stores on the failed rule enforcement.
    pub fn failure_reason(&self, rule_ref: &str, trigger_instance_id: &str) -> String {
        format!("Failed to match rule \"{rule_ref}\" against trigger instance \"{trigger_instance_id}\": {self}")
    }
}

/// The result of evaluating one rule's criteria.
#[derive(Debug, Clone, PartialEq)]
pub struct FilterOutcome {
    /// Every criterion held.
    pub matched: bool,
    /// Criteria that failed to evaluate (each counted as false).
    pub errors: Vec<CriteriaError>,
}

/// A criterion pattern, ready to render.
#[derive(Debug, Clone)]
enum Pattern {
    /// A value used as is (non-strings, `null`, strings without template syntax).
    Literal(Json),
    /// A string rendered per evaluation.
    Template {
        source: String,
        compiled: Result<CompiledPattern, TemplateError>,
    },
}

/// One compiled criterion.
#[derive(Debug, Clone)]
struct Criterion {
    /// The key as written (with `#tag`), for messages.
    key: String,
    /// The key without its `#tag`, parsed.
    path: Result<JsonPath, JsonPathError>,
    test: Test,
}

#[derive(Debug, Clone)]
enum Test {
    /// No `type`: false, silently.
    NoType,
    Op(Box<OpTest>),
}

#[derive(Debug, Clone)]
struct OpTest {
    /// The operator, or the unknown `type` as text.
    op: Result<Operator, String>,
    /// `type` is spelled exactly `search` (StackStorm compares it case-sensitively before
    /// calling the operator with child criteria).
    exact_search: bool,
    pattern: Pattern,
    /// `condition` (for `search`); `null` when absent.
    condition: Json,
    /// The compiled regex/wildcard of a constant pattern.
    regex: Option<PreparedRegex>,
    /// `search` children when the pattern is a literal object.
    children: Option<CompiledCriteria>,
    /// For `search` with a templated pattern: the engine to compile the rendered children.
    engine: Option<TemplateEngine>,
}

/// A rule's criteria, compiled once: templates, paths and constant patterns.
#[derive(Debug, Clone, Default)]
pub struct CompiledCriteria {
    criteria: Vec<Criterion>,
}

/// Whether a string pattern renders to itself: no template syntax, and nothing Jinja would
/// normalise (a trailing newline, `\r`).
fn is_constant(pattern: &str) -> bool {
    !is_jinja_expression(pattern)
        && !pattern.contains("{#")
        && !pattern.contains('\r')
        && !pattern.ends_with('\n')
}

impl CompiledCriteria {
    /// Compiles `criteria` (key → `{type, pattern, condition?}`) of rule `rule_ref`. The
    /// errors found (bad templates, paths, operators, constant regexes) are returned and also
    /// reported again by every evaluation.
    pub fn compile(
        rule_ref: &str,
        criteria: &JsonMap,
        engine: &TemplateEngine,
    ) -> (CompiledCriteria, Vec<CriteriaError>) {
        let mut issues = Vec::new();
        let compiled = CompiledCriteria {
            criteria: criteria
                .iter()
                .map(|(key, spec)| compile_criterion(rule_ref, key, spec, engine, &mut issues))
                .collect(),
        };
        (compiled, issues)
    }

    /// Whether there are no criteria (the rule matches every instance, even an empty one).
    pub fn is_empty(&self) -> bool {
        self.criteria.is_empty()
    }

    /// Number of criteria.
    pub fn len(&self) -> usize {
        self.criteria.len()
    }

    /// Evaluates the criteria of rule `rule_ref` against a trigger instance payload.
    pub fn evaluate(&self, rule_ref: &str, payload: &Json, ctx: &MatchContext) -> FilterOutcome {
        let now = OnceCell::new();
        let scope = Scope::new(TRIGGER_PREFIX, payload, ctx, &now);
        let mut errors = Vec::new();
        let matched = self.evaluate_in(rule_ref, &scope, &mut errors);
        FilterOutcome { matched, errors }
    }

    /// `RuleFilter.filter()` minus the enabled check: empty criteria match, a falsy payload
    /// never matches criteria, the first false criterion stops the evaluation.
    pub(crate) fn evaluate_in(
        &self,
        rule_ref: &str,
        scope: &Scope<'_>,
        errors: &mut Vec<CriteriaError>,
    ) -> bool {
        if self.criteria.is_empty() {
            return true;
        }
        if !py_truthy(scope.value) {
            return false;
        }
        self.criteria
            .iter()
            .all(|c| c.check(rule_ref, scope, errors))
    }
}

/// Python truthiness of a payload.
fn py_truthy(value: &Json) -> bool {
    match value {
        Json::Null => false,
        Json::Bool(b) => *b,
        Json::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Json::String(s) => !s.is_empty(),
        Json::Array(a) => !a.is_empty(),
        Json::Object(m) => !m.is_empty(),
    }
}

fn compile_criterion(
    rule_ref: &str,
    key: &str,
    spec: &Json,
    engine: &TemplateEngine,
    issues: &mut Vec<CriteriaError>,
) -> Criterion {
    // "Avoids the dict unique keys limitation": everything after the first '#' is a tag.
    let lookup = key.split('#').next().unwrap_or(key);
    let path = JsonPath::parse(lookup);
    let Some(type_value) = spec.as_object().and_then(|m| m.get("type")) else {
        // Never looked up: no problem to report.
        return Criterion {
            key: key.to_string(),
            path,
            test: Test::NoType,
        };
    };
    if let Err(e) = &path {
        issues.push(CriteriaError::Lookup {
            key: key.to_string(),
            source: e.clone(),
        });
    }
    let type_name_text = match type_value {
        Json::String(s) => s.clone(),
        other => pyfmt::str(other, ControlEscapes::C0AndDel),
    };
    let op = type_value
        .as_str()
        .and_then(Operator::from_name)
        .ok_or(type_name_text.clone());
    if op.is_err() {
        issues.push(CriteriaError::UnknownOperator {
            rule: rule_ref.to_string(),
            key: key.to_string(),
            name: type_name_text.clone(),
        });
    }
    let raw_pattern = spec.get("pattern").cloned().unwrap_or(Json::Null);
    let condition = spec.get("condition").cloned().unwrap_or(Json::Null);
    let pattern = match raw_pattern {
        Json::String(s) if !is_constant(&s) => {
            let compiled = engine.compile_pattern(&s);
            if let Err(e) = &compiled {
                issues.push(CriteriaError::Render {
                    key: key.to_string(),
                    pattern: s.clone(),
                    source: e.clone(),
                });
            }
            Pattern::Template {
                source: s,
                compiled,
            }
        }
        other => Pattern::Literal(other),
    };
    let regex = match (&op, &pattern) {
        (Ok(op), Pattern::Literal(Json::String(p))) => op.flavor().map(|flavor| {
            let prepared = PreparedRegex::new(p, flavor);
            if let Err(e) = prepared.compiled.as_ref() {
                issues.push(CriteriaError::Operator {
                    rule: rule_ref.to_string(),
                    key: key.to_string(),
                    source: e.clone(),
                });
            }
            prepared
        }),
        _ => None,
    };
    let is_search = op == Ok(Operator::Search);
    let children = match (&pattern, is_search) {
        (Pattern::Literal(Json::Object(map)), true) => {
            let (children, child_issues) = CompiledCriteria::compile(rule_ref, map, engine);
            issues.extend(child_issues);
            Some(children)
        }
        _ => None,
    };
    let engine = (is_search && matches!(pattern, Pattern::Template { .. })).then(|| engine.clone());
    Criterion {
        key: key.to_string(),
        path,
        test: Test::Op(Box::new(OpTest {
            exact_search: type_value.as_str() == Some("search"),
            op,
            pattern,
            condition,
            regex,
            children,
            engine,
        })),
    }
}

/// The payload (or list item) criteria are evaluated against, with its template context built
/// on first use.
pub(crate) struct Scope<'a> {
    prefix: &'static str,
    value: &'a Json,
    ctx: &'a MatchContext,
    render: OnceCell<RenderContext>,
    now: &'a OnceCell<DateTime<Utc>>,
}

impl<'a> Scope<'a> {
    pub(crate) fn new(
        prefix: &'static str,
        value: &'a Json,
        ctx: &'a MatchContext,
        now: &'a OnceCell<DateTime<Utc>>,
    ) -> Scope<'a> {
        Scope {
            prefix,
            value,
            ctx,
            render: OnceCell::new(),
            now,
        }
    }

    fn render_context(&self) -> &RenderContext {
        self.render.get_or_init(|| {
            let mut render = self.ctx.render.clone();
            render.set(self.prefix, self.value);
            render
        })
    }

    fn now(&self) -> DateTime<Utc> {
        self.ctx
            .now
            .unwrap_or_else(|| *self.now.get_or_init(Utc::now))
    }
}

impl Criterion {
    /// `RuleFilter._check_criterion`: render, look up, apply; failures are reported and false.
    fn check(&self, rule_ref: &str, scope: &Scope<'_>, errors: &mut Vec<CriteriaError>) -> bool {
        let Test::Op(test) = &self.test else {
            return false;
        };
        // 1. The pattern.
        let pattern: Cow<'_, Json> = match &test.pattern {
            Pattern::Literal(value) => Cow::Borrowed(value),
            Pattern::Template { source, compiled } => {
                let rendered = compiled
                    .as_ref()
                    .map_err(Clone::clone)
                    .and_then(|c| c.render(scope.render_context()));
                match rendered {
                    Ok(value) => Cow::Owned(value),
                    Err(source_err) => {
                        errors.push(CriteriaError::Render {
                            key: self.key.clone(),
                            pattern: source.clone(),
                            source: source_err,
                        });
                        return false;
                    }
                }
            }
        };
        // 2. The payload value.
        let looked_up = match &self.path {
            Ok(path) => path.first(scope.prefix, scope.value),
            Err(e) => Err(e.clone()),
        };
        let value: Cow<'_, Json> = match looked_up {
            Ok(Some(v)) => v,
            Ok(None) => Cow::Borrowed(&NULL),
            Err(source) => {
                errors.push(CriteriaError::Lookup {
                    key: self.key.clone(),
                    source,
                });
                return false;
            }
        };
        // 3. The operator.
        let op = match &test.op {
            Ok(op) => *op,
            Err(name) => {
                errors.push(CriteriaError::UnknownOperator {
                    rule: rule_ref.to_string(),
                    key: self.key.clone(),
                    name: name.clone(),
                });
                return false;
            }
        };
        let result = match op {
            Operator::Search if test.exact_search => {
                test.search(rule_ref, &value, &pattern, scope, errors)
            }
            Operator::Search => Err(search_misuse()),
            op => apply_prepared(op, &value, &pattern, scope.now(), test.regex.as_ref()),
        };
        result.unwrap_or_else(|source| {
            errors.push(CriteriaError::Operator {
                rule: rule_ref.to_string(),
                key: self.key.clone(),
                source,
            });
            false
        })
    }
}

impl OpTest {
    /// `operators.search`: a dict value is a one-item list; each item is matched against the
    /// child criteria (every child for every item, like Python's list comprehensions).
    fn search(
        &self,
        rule_ref: &str,
        value: &Json,
        pattern: &Json,
        scope: &Scope<'_>,
        errors: &mut Vec<CriteriaError>,
    ) -> Result<bool, OperatorError> {
        let condition = SearchCondition::parse(&self.condition)?;
        let items: Vec<Cow<'_, Json>> = if value.is_object() {
            vec![Cow::Borrowed(value)]
        } else {
            py_iter(value)?
        };
        if items.is_empty() {
            // any([]) is False, all([]) is True; the pattern is never looked at.
            return Ok(condition.every_item());
        }
        let dynamic;
        let children = match (&self.children, pattern) {
            (Some(children), _) => children,
            (None, Json::Object(map)) => {
                let engine = self.engine.clone().unwrap_or_default();
                dynamic = CompiledCriteria::compile(rule_ref, map, &engine).0;
                &dynamic
            }
            (None, other) => {
                return Err(OperatorError::Attribute(format!(
                    "'{}' object has no attribute 'items'",
                    type_name(other)
                )))
            }
        };
        let mut item_results = Vec::with_capacity(items.len());
        for item in &items {
            let item_scope = Scope::new(ITEM_PREFIX, item, scope.ctx, scope.now);
            let child_results: Vec<bool> = children
                .criteria
                .iter()
                .map(|child| child.check(rule_ref, &item_scope, errors))
                .collect();
            item_results.push(if condition.every_child() {
                child_results.iter().all(|b| *b)
            } else {
                child_results.iter().any(|b| *b)
            });
        }
        Ok(if condition.every_item() {
            item_results.iter().all(|b| *b)
        } else {
            item_results.iter().any(|b| *b)
        })
    }
}

/// `RuleFilter(trigger_instance, trigger, rule).filter()` for one rule: a disabled rule never
/// matches; otherwise its criteria are compiled and evaluated against `payload`. For many
/// events or rules, use [`super::RuleSet`], which compiles once.
pub fn filter(
    rule: &Rule,
    payload: &Json,
    engine: &TemplateEngine,
    ctx: &MatchContext,
) -> FilterOutcome {
    if !rule.enabled {
        return FilterOutcome {
            matched: false,
            errors: Vec::new(),
        };
    }
    let (criteria, _) = CompiledCriteria::compile(&rule.rule_ref, &rule.criteria, engine);
    criteria.evaluate(&rule.rule_ref, payload, ctx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn eval(criteria: Json, payload: Json) -> FilterOutcome {
        let map = criteria.as_object().cloned().unwrap_or_default();
        let engine = TemplateEngine::new();
        let (compiled, _) = CompiledCriteria::compile("pack.rule", &map, &engine);
        compiled.evaluate("pack.rule", &payload, &MatchContext::new())
    }

    #[test]
    fn first_false_criterion_stops_evaluation() {
        // The second criterion would fail (str < int) but is never evaluated.
        let out = eval(
            json!({
                "trigger.a": {"type": "equals", "pattern": 2},
                "trigger.b": {"type": "lessthan", "pattern": 1},
            }),
            json!({"a": 1, "b": "x"}),
        );
        assert!(!out.matched);
        assert!(out.errors.is_empty());
        let out = eval(
            json!({
                "trigger.a": {"type": "equals", "pattern": 1},
                "trigger.b": {"type": "lessthan", "pattern": 1},
            }),
            json!({"a": 1, "b": "x"}),
        );
        assert!(!out.matched);
        assert_eq!(
            out.errors[0].to_string(),
            "There might be a problem with the criteria in rule pack.rule: '<' not supported \
             between instances of 'str' and 'int'"
        );
        assert_eq!(
            out.errors[0].failure_reason("pack.rule", "ti1"),
            "Failed to match rule \"pack.rule\" against trigger instance \"ti1\": There might \
             be a problem with the criteria in rule pack.rule: '<' not supported between \
             instances of 'str' and 'int'"
        );
    }

    #[test]
    fn constants_are_not_templates() {
        assert!(is_constant("plain text with { brace"));
        assert!(!is_constant("{{ x }}"));
        assert!(!is_constant("{% if %}"));
        assert!(!is_constant("{# c #}"));
        assert!(!is_constant("line\n"));
    }
}
