//! One expression interface over Orquesta's two dialects: Jinja `{{ }}` (through
//! [`crate::template::TemplateEngine`], with StackStorm's filters) and YAQL `<% %>` (through the
//! evaluator in [`super::yaql`], behind a small adapter at the bottom of this file).
//!
//! Owns Orquesta's functions (`ctx()`, `result()`, `item()`, `succeeded()`, `failed()`,
//! `completed()`, `task_status()`, `task()`, `json()`, `zip()`, `st2kv()`), shared by both
//! dialects, and the rendering rules: a string that is one whole expression keeps the type of
//! its value (`<% ctx().n %>` → a number); expressions inside a larger string render to text;
//! lists and maps are rendered recursively. Pure: the datastore comes in through [`KvSource`].
//! An expression error is an [`ExprError`] value, never a panic.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, LazyLock, PoisonError, RwLock};

use minijinja::value::{Rest, Value as MjValue};
use serde_json::{Map, Value};

use crate::template::{CompiledTemplate, RenderContext, TemplateEngine};

/// The datastore as `st2kv(key, decrypt)` sees it (the workflow service implements it).
pub trait KvSource: Send + Sync {
    /// The value of `key` (`system.x`, or a user-scoped key), decrypted when asked;
    /// `Ok(None)` when the key does not exist.
    fn get(&self, key: &str, decrypt: bool) -> Result<Option<Value>, String>;
}

/// Last known status of every task, by task name (for `task_status(name)`).
pub trait StatusLookup {
    /// The status of the latest instance of `task`, if it ran.
    fn status(&self, task: &str) -> Option<&str>;
}

impl StatusLookup for BTreeMap<String, String> {
    fn status(&self, task: &str) -> Option<&str> {
        self.get(task).map(String::as_str)
    }
}

/// No task has run (expressions evaluated before any task, like the workflow input).
pub struct NoStatuses;

impl StatusLookup for NoStatuses {
    fn status(&self, _task: &str) -> Option<&str> {
        None
    }
}

/// The task an expression is evaluated for (`task()`, `result()`, `succeeded()`).
#[derive(Debug, Clone, Copy)]
pub struct TaskView<'a> {
    /// Task name.
    pub id: &'a str,
    /// Route (branch) of the task instance.
    pub route: u32,
    /// Status of the task instance, when completed.
    pub status: Option<&'a str>,
    /// Result of the task, when completed.
    pub result: Option<&'a Value>,
}

/// What an expression sees: the context variables and the workflow around it.
#[derive(Clone, Copy)]
pub struct Scope<'a> {
    /// The context (`ctx()`, `$.` in YAQL).
    pub vars: &'a Map<String, Value>,
    /// The current task, if any.
    pub task: Option<TaskView<'a>>,
    /// The current with-items item, if any.
    pub item: Option<&'a Value>,
    /// Task statuses for `task_status(name)`.
    pub statuses: &'a dyn StatusLookup,
    /// The datastore for `st2kv()`.
    pub kv: Option<&'a Arc<dyn KvSource>>,
}

impl<'a> Scope<'a> {
    /// A scope with only context variables.
    pub fn vars(vars: &'a Map<String, Value>) -> Self {
        Scope {
            vars,
            task: None,
            item: None,
            statuses: &NoStatuses,
            kv: None,
        }
    }
}

/// An expression could not be parsed or evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct ExprError {
    /// Orquesta's exception name (`JinjaEvaluationException`, `YaqlEvaluationException`, ...).
    pub kind: &'static str,
    /// What went wrong, naming the expression.
    pub message: String,
}

impl ExprError {
    fn jinja(expr: &str, reason: impl std::fmt::Display) -> Self {
        ExprError {
            kind: "JinjaEvaluationException",
            message: format!("Unable to evaluate expression '{expr}'. {reason}"),
        }
    }

    fn yaql(expr: &str, reason: impl std::fmt::Display) -> Self {
        ExprError {
            kind: "YaqlEvaluationException",
            message: format!("Unable to evaluate expression '{expr}'. {reason}"),
        }
    }
}

/// The dialect of an expression string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// Jinja `{{ }}` / `{% %}`.
    Jinja,
    /// YAQL `<% %>`.
    Yaql,
}

/// The dialect `text` uses, or `None` for plain text.
pub fn dialect(text: &str) -> Option<Dialect> {
    if text.contains("<%") {
        Some(Dialect::Yaql)
    } else if crate::template::is_jinja_expression(text) {
        Some(Dialect::Jinja)
    } else {
        None
    }
}

/// Whether `value` contains an expression anywhere (strings inside lists and maps too).
pub fn has_expression(value: &Value) -> bool {
    match value {
        Value::String(s) => dialect(s).is_some(),
        Value::Array(items) => items.iter().any(has_expression),
        Value::Object(map) => map.values().any(has_expression),
        _ => false,
    }
}

fn engine() -> &'static TemplateEngine {
    static ENGINE: LazyLock<TemplateEngine> = LazyLock::new(TemplateEngine::new);
    &ENGINE
}

/// Templates compiled once per text: a workflow evaluates the same few expressions on every
/// event. Bounded; cleared when full.
fn compiled(text: &str) -> Result<CompiledTemplate, crate::template::TemplateError> {
    const MAX_CACHED: usize = 4096;
    static CACHE: LazyLock<RwLock<HashMap<String, CompiledTemplate>>> =
        LazyLock::new(|| RwLock::new(HashMap::new()));
    if let Some(t) = CACHE
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .get(text)
    {
        return Ok(t.clone());
    }
    let template = engine().compile(text)?;
    let mut cache = CACHE.write().unwrap_or_else(PoisonError::into_inner);
    if cache.len() >= MAX_CACHED {
        cache.clear();
    }
    cache.insert(text.to_string(), template.clone());
    Ok(template)
}

/// Checks the syntax of every expression in `text` without evaluating it.
pub fn check(text: &str) -> Result<(), ExprError> {
    match dialect(text) {
        None => Ok(()),
        Some(Dialect::Jinja) => engine()
            .variables(text)
            .map(|_| ())
            .map_err(|e| ExprError::jinja(text, e)),
        Some(Dialect::Yaql) => {
            for part in yaql_parts(text)? {
                if let YaqlPart::Expr(src) = part {
                    yaql_adapter::check(src).map_err(|e| ExprError::yaql(text, e))?;
                }
            }
            Ok(())
        }
    }
}

/// Checks every expression inside `value`.
pub fn check_value(value: &Value) -> Result<(), ExprError> {
    match value {
        Value::String(s) => check(s),
        Value::Array(items) => items.iter().try_for_each(check_value),
        Value::Object(map) => map
            .iter()
            .try_for_each(|(k, v)| check(k).and_then(|()| check_value(v))),
        _ => Ok(()),
    }
}

/// Renders `value`: strings are evaluated, lists and maps recursively (keys too), anything else
/// is returned as it is.
pub fn render(value: &Value, scope: &Scope<'_>) -> Result<Value, ExprError> {
    Ok(match value {
        Value::String(s) => evaluate(s, scope)?,
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| render(v, scope))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                let key = match evaluate(k, scope)? {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                out.insert(key, render(v, scope)?);
            }
            Value::Object(out)
        }
        other => other.clone(),
    })
}

/// Evaluates one string: plain text as it is; one whole expression keeps its value's type;
/// expressions inside a larger text render to text.
pub fn evaluate(text: &str, scope: &Scope<'_>) -> Result<Value, ExprError> {
    match dialect(text) {
        None => Ok(Value::String(text.to_string())),
        Some(Dialect::Jinja) => eval_jinja(text, scope),
        Some(Dialect::Yaql) => eval_yaql(text, scope),
    }
}

/// Truthiness as Python sees it (for `when` conditions).
pub use crate::pyfmt::truthy;

/// Text of a value inside a larger string (Python's `str()` for scalars, JSON otherwise).
fn to_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "None".to_string(),
        Value::Bool(true) => "True".to_string(),
        Value::Bool(false) => "False".to_string(),
        other => other.to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// Orquesta's functions, shared by both dialects.

/// Calls Orquesta function `name`; `None` when `name` is not one of them.
pub fn call(scope: &Scope<'_>, name: &str, args: &[Value]) -> Option<Result<Value, String>> {
    let arg_str = |i: usize| args.get(i).and_then(Value::as_str);
    let status_is = |accepted: &[&str]| -> Result<Value, String> {
        let task = scope
            .task
            .ok_or_else(|| "The current task is not set in the context.".to_string())?;
        Ok(Value::Bool(
            task.status.is_some_and(|s| accepted.contains(&s)),
        ))
    };
    Some(match name {
        "ctx" => match args.first() {
            None | Some(Value::Null) => Ok(Value::Object(scope.vars.clone())),
            Some(Value::String(key)) => scope
                .vars
                .get(key)
                .cloned()
                .ok_or_else(|| format!("Variable \"{key}\" does not exist.")),
            Some(other) => Err(format!("ctx() takes a variable name, not {other}")),
        },
        "result" => match scope.task {
            Some(task) => Ok(task.result.cloned().unwrap_or(Value::Null)),
            None => Err("The current task is not set in the context.".to_string()),
        },
        "item" => match (scope.item, args.first()) {
            (None, _) => Err("The current item is not set in the context.".to_string()),
            (Some(item), None | Some(Value::Null)) => Ok(item.clone()),
            (Some(item), Some(Value::String(key))) => item
                .get(key)
                .cloned()
                .ok_or_else(|| format!("Item does not have key \"{key}\".")),
            (Some(_), Some(other)) => Err(format!("item() takes a key, not {other}")),
        },
        "succeeded" => status_is(&["succeeded"]),
        "failed" => status_is(&["failed", "expired", "abandoned", "canceled"]),
        "completed" => status_is(&["succeeded", "failed", "expired", "abandoned", "canceled"]),
        "task_status" => match arg_str(0) {
            Some(task) => Ok(scope
                .statuses
                .status(task)
                .map_or(Value::Null, |s| Value::String(s.to_string()))),
            None => Err("task_status() takes a task name".to_string()),
        },
        "task" => match (arg_str(0), scope.task) {
            (None, Some(task)) => Ok(serde_json::json!({
                "id": task.id,
                "route": task.route,
                "status": task.status,
                "result": task.result,
            })),
            (None, None) => Err("The current task is not set in the context.".to_string()),
            (Some(name), _) => match scope.statuses.status(name) {
                Some(status) => Ok(serde_json::json!({"id": name, "status": status})),
                None => Err(format!("Task \"{name}\" does not exist.")),
            },
        },
        "json" => match args.first() {
            Some(Value::String(s)) => serde_json::from_str(s).map_err(|e| format!("json(): {e}")),
            Some(other) => Ok(other.clone()),
            None => Err("json() takes a string".to_string()),
        },
        "zip" => {
            let lists: Vec<&Vec<Value>> = match args.iter().map(Value::as_array).collect() {
                Some(lists) => lists,
                None => return Some(Err("zip() takes lists".to_string())),
            };
            let len = lists.iter().map(|l| l.len()).min().unwrap_or(0);
            Ok(Value::Array(
                (0..len)
                    .map(|i| Value::Array(lists.iter().map(|l| l[i].clone()).collect()))
                    .collect(),
            ))
        }
        "st2kv" => {
            let Some(key) = arg_str(0) else {
                return Some(Err("st2kv() takes a key".to_string()));
            };
            let decrypt = args.get(1).is_some_and(truthy);
            match scope.kv {
                None => Err("The datastore is not available.".to_string()),
                Some(kv) => match kv.get(key, decrypt) {
                    Ok(Some(v)) => Ok(v),
                    Ok(None) => Err(format!(
                        "The key \"{key}\" does not exist in the datastore."
                    )),
                    Err(e) => Err(e),
                },
            }
        }
        _ => return None,
    })
}

/// The function names of [`call`].
pub const FUNCTION_NAMES: [&str; 11] = [
    "ctx",
    "result",
    "item",
    "succeeded",
    "failed",
    "completed",
    "task_status",
    "task",
    "json",
    "zip",
    "st2kv",
];

// ---------------------------------------------------------------------------------------------
// Jinja.

/// An owned copy of what the functions of one Jinja evaluation need (minijinja functions are
/// `'static`). Only the parts the template mentions are copied.
struct OwnedScope {
    vars: Map<String, Value>,
    task: Option<(String, u32, Option<String>, Option<Value>)>,
    item: Option<Value>,
    statuses: BTreeMap<String, String>,
    kv: Option<Arc<dyn KvSource>>,
}

impl OwnedScope {
    fn capture(text: &str, scope: &Scope<'_>) -> Self {
        let statuses = if text.contains("task") {
            // Copy the statuses of the tasks named in quotes only.
            let mut map = BTreeMap::new();
            for word in text.split(['\'', '"']) {
                if let Some(s) = scope.statuses.status(word) {
                    map.insert(word.to_string(), s.to_string());
                }
            }
            map
        } else {
            BTreeMap::new()
        };
        OwnedScope {
            vars: if text.contains("ctx") {
                scope.vars.clone()
            } else {
                Map::new()
            },
            task: scope.task.map(|t| {
                (
                    t.id.to_string(),
                    t.route,
                    t.status.map(str::to_string),
                    if text.contains("result") || text.contains("task") {
                        t.result.cloned()
                    } else {
                        None
                    },
                )
            }),
            item: scope.item.cloned(),
            statuses,
            kv: scope.kv.cloned(),
        }
    }

    fn call(&self, name: &str, args: &[Value]) -> Option<Result<Value, String>> {
        let task = self
            .task
            .as_ref()
            .map(|(id, route, status, result)| TaskView {
                id,
                route: *route,
                status: status.as_deref(),
                result: result.as_ref(),
            });
        let scope = Scope {
            vars: &self.vars,
            task,
            item: self.item.as_ref(),
            statuses: &self.statuses,
            kv: self.kv.as_ref(),
        };
        call(&scope, name, args)
    }
}

fn jinja_context(text: &str, scope: &Scope<'_>) -> RenderContext {
    let owned = Arc::new(OwnedScope::capture(text, scope));
    let mut ctx = RenderContext::new();
    for name in FUNCTION_NAMES {
        if !text.contains(name) {
            continue;
        }
        let owned = owned.clone();
        let f = move |args: Rest<MjValue>| -> Result<MjValue, minijinja::Error> {
            let args: Vec<Value> = args
                .iter()
                .map(|a| serde_json::to_value(a).unwrap_or(Value::Null))
                .collect();
            match owned.call(name, &args) {
                Some(Ok(v)) => Ok(MjValue::from_serialize(&v)),
                Some(Err(e)) => Err(minijinja::Error::new(
                    minijinja::ErrorKind::InvalidOperation,
                    e,
                )),
                None => Err(minijinja::Error::new(
                    minijinja::ErrorKind::UnknownFunction,
                    name,
                )),
            }
        };
        ctx.set_value(name.to_string(), MjValue::from_function(f));
    }
    ctx
}

/// The inside of `{{ … }}` when `text` is exactly one Jinja expression.
fn whole_jinja(text: &str) -> Option<&str> {
    let t = text.trim();
    let inner = t.strip_prefix("{{")?.strip_suffix("}}")?;
    (!inner.contains("{{") && !inner.contains("}}") && !t.contains("{%")).then_some(inner)
}

fn eval_jinja(text: &str, scope: &Scope<'_>) -> Result<Value, ExprError> {
    let ctx = jinja_context(text, scope);
    if let Some(inner) = whole_jinja(text) {
        let typed = format!("{{{{ ({inner}) | to_json_string }}}}");
        let out = compiled(&typed)
            .and_then(|t| t.render(&ctx))
            .map_err(|e| ExprError::jinja(text, jinja_reason(&e)))?;
        return serde_json::from_str(&out).map_err(|e| ExprError::jinja(text, e));
    }
    compiled(text)
        .and_then(|t| t.render(&ctx))
        .map(Value::String)
        .map_err(|e| ExprError::jinja(text, jinja_reason(&e)))
}

/// The reason of a template error, without repeating the template text.
fn jinja_reason(err: &crate::template::TemplateError) -> String {
    use crate::template::TemplateError as E;
    match err {
        E::Syntax { reason, .. } => format!("TemplateSyntaxError: {reason}"),
        E::Undefined { name, .. } => format!("UndefinedError: '{name}' is undefined"),
        E::Render { reason, .. } => reason.clone(),
    }
}

// ---------------------------------------------------------------------------------------------
// YAQL.

enum YaqlPart<'t> {
    Text(&'t str),
    Expr(&'t str),
}

/// Splits `text` into plain text and `<% … %>` expressions.
fn yaql_parts(text: &str) -> Result<Vec<YaqlPart<'_>>, ExprError> {
    let mut parts = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("<%") {
        if start > 0 {
            parts.push(YaqlPart::Text(&rest[..start]));
        }
        let after = &rest[start + 2..];
        let end = after
            .find("%>")
            .ok_or_else(|| ExprError::yaql(text, "Unclosed expression: missing '%>'."))?;
        parts.push(YaqlPart::Expr(after[..end].trim()));
        rest = &after[end + 2..];
    }
    if !rest.is_empty() {
        parts.push(YaqlPart::Text(rest));
    }
    Ok(parts)
}

fn eval_yaql(text: &str, scope: &Scope<'_>) -> Result<Value, ExprError> {
    let parts = yaql_parts(text)?;
    let root = Value::Object(scope.vars.clone());
    let funcs = |name: &str, args: &[Value]| call(scope, name, args);
    let eval =
        |src: &str| yaql_adapter::eval(src, &root, &funcs).map_err(|e| ExprError::yaql(text, e));
    let trimmed = text.trim();
    if let [YaqlPart::Expr(src)] = parts.as_slice() {
        if trimmed.starts_with("<%") && trimmed.ends_with("%>") {
            return eval(src);
        }
    }
    let mut out = String::new();
    for part in parts {
        match part {
            YaqlPart::Text(t) => out.push_str(t),
            YaqlPart::Expr(src) => out.push_str(&to_text(&eval(src)?)),
        }
    }
    Ok(Value::String(out))
}

/// The seam to the YAQL evaluator of [`super::yaql`]: Orquesta's functions reach it through
/// its [`Functions`](super::yaql::Functions) hook; a function error keeps the function's name.
mod yaql_adapter {
    use serde_json::Value;

    use crate::workflow::yaql;

    /// Orquesta's functions as the evaluator calls them.
    pub(super) type Funcs<'a> = dyn Fn(&str, &[Value]) -> Option<Result<Value, String>> + 'a;

    /// Checks the syntax of one expression (the inside of `<% %>`).
    pub(super) fn check(src: &str) -> Result<(), String> {
        if src.trim().is_empty() {
            return Err("Empty expression.".to_string());
        }
        yaql::parse(src).map(|_| ()).map_err(|e| e.to_string())
    }

    /// Orquesta's functions as a YAQL hook.
    struct Hook<'a, 'f>(&'a Funcs<'f>);

    impl yaql::Functions for Hook<'_, '_> {
        fn call(&self, name: &str, args: &[Value]) -> Option<Result<Value, yaql::YaqlError>> {
            (self.0)(name, args).map(|r| {
                r.map_err(|message| yaql::YaqlError::Function {
                    function: name.to_string(),
                    message,
                })
            })
        }
    }

    /// Evaluates one expression against `root` (`$`) with Orquesta's functions.
    pub(super) fn eval(src: &str, root: &Value, funcs: &Funcs<'_>) -> Result<Value, String> {
        let expr = yaql::parse(src).map_err(|e| e.to_string())?;
        expr.eval(root, &Hook(funcs)).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests;
