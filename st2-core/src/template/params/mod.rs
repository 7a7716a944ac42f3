//! Action parameter rendering, StackStorm's `util/param.py` (`render_live_params` +
//! `render_final_params`) plus the checks `services/action.py` makes around it.
//!
//! Inputs: the runner's and the action's parameter specs (the action may override a runner
//! parameter's `default`, `description`, `enum`, `immutable`, `required`), the parameters given
//! by the caller, and the extra context (`action_context`, `config_context`, the datastore).
//! Output: every declared parameter with its final value.
//!
//! Steps, as in StackStorm:
//! 1. Given values win over defaults; a given null takes the default. Giving a value for an
//!    `immutable` parameter is an error ("Override of immutable parameter(s) [...] is
//!    unsupported."), so is giving an undeclared one (StackStorm's schema has
//!    `additionalProperties: false`).
//! 2. Strings with `{{`/`{%` (and lists/objects containing such strings) are templates; the
//!    names they read (`{{ other }}`, `st2kv`, `action_context`, `config_context`) make a
//!    dependency graph rendered in topological order. A cycle is an error naming it. A template
//!    reading only names that are neither parameters nor contexts is kept as literal text; one
//!    mixing known and unknown names is an error ("Dependency unsatisfied in variable ...").
//! 3. Rendered values (always strings) are cast to the declared type with StackStorm's casters
//!    (`util/casts.py`): `"5"` → 5, `"true"` → true, JSON or Python-literal text → list/object,
//!    the `use_none` marker → null. A non-string value for a `string` parameter is an error.
//! 4. [`ParamRenderer::render`] then checks required parameters, `enum`s and the whole JSON
//!    schema of the parameters (type, pattern, minimum, ...; optional parameters may be null).
//!
//! Pure: the datastore is read through [`KvLookup`].

use std::collections::{BTreeSet, HashSet};
use std::path::Path;
use std::sync::{Arc, LazyLock};

use indexmap::IndexMap;
use regex::Regex;
use serde_json::{json, Value as Json};

use super::context::{Decrypter, KvLookup, KvScope, KvValue, RenderContext};
use super::{is_jinja_expression, TemplateEngine, TemplateError};
use crate::model::{JsonMap, ParamMap};

mod cast;
mod secrets;

pub use cast::cast_value;
use cast::{same_value, type_name};
pub use secrets::{mask_secrets, MASKED_ATTRIBUTE_VALUE};

/// Name of the execution context in parameter templates.
pub const ACTION_CONTEXT_VAR: &str = "action_context";

/// Name of the pack config in parameter templates.
pub const CONFIG_CONTEXT_VAR: &str = "config_context";

/// Parameters could not be rendered or are invalid. Messages follow StackStorm's where it has
/// one.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParamError {
    /// The action changes a runner parameter attribute it may not override.
    #[error(
        "The attribute \"{attr}\" for the runner parameter \"{name}\" in action \"{action}\" \
         cannot be overridden."
    )]
    RunnerAttrOverride {
        /// The action's ref.
        action: String,
        /// The runner parameter.
        name: String,
        /// The attribute (`type`, `secret`, `position`, ...).
        attr: String,
    },
    /// Values were given for parameters the action and runner do not declare.
    #[error("Unknown parameter(s) {}: not declared by the action or its runner.", py_list(.names))]
    Unknown {
        /// The undeclared names.
        names: Vec<String>,
    },
    /// Values were given for `immutable` parameters.
    #[error("Override of immutable parameter(s) {} is unsupported.", py_list(.names))]
    Immutable {
        /// The immutable parameters given.
        names: Vec<String>,
    },
    /// A template reads both defined and undefined names.
    #[error("Dependency unsatisfied in variable \"{name}\" (undefined: {})", .missing.join(", "))]
    UnsatisfiedDependency {
        /// The parameter whose template is affected.
        name: String,
        /// The names that are neither parameters nor contexts.
        missing: Vec<String>,
    },
    /// Parameters refer to each other in a cycle.
    #[error(
        "Cyclic dependency found in the following variables: {}. Likely the variable is \
         referencing itself",
        .cycle.join(" -> ")
    )]
    Cycle {
        /// The cycle, first name repeated at the end (`a`, `b`, `a`).
        cycle: Vec<String>,
    },
    /// A template failed to render.
    #[error("Failed to render parameter \"{name}\": {error}")]
    Render {
        /// The parameter.
        name: String,
        /// Why.
        #[source]
        error: TemplateError,
    },
    /// A value cannot be cast to the declared type.
    #[error("Failed to cast parameter \"{name}\" to {expected}: {reason}")]
    Cast {
        /// The parameter.
        name: String,
        /// The declared type.
        expected: String,
        /// Why.
        reason: String,
    },
    /// Required parameters have no value.
    #[error("Missing required parameter(s) {}.", py_list(.names))]
    Missing {
        /// The parameters without a value.
        names: Vec<String>,
    },
    /// A value is not one of the parameter's `enum`.
    #[error("Parameter \"{name}\": {value} is not one of {}", Json::Array(.allowed.clone()))]
    NotInEnum {
        /// The parameter.
        name: String,
        /// The value.
        value: Json,
        /// The allowed values.
        allowed: Vec<Json>,
    },
    /// The values do not validate against the parameters' JSON schema.
    #[error("Invalid parameters: {}", .errors.join("; "))]
    Invalid {
        /// One `parameter: reason` entry per violation.
        errors: Vec<String>,
    },
}

/// `['a', 'b']`, the way Python prints a list of names.
fn py_list(names: &[String]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("'{n}'")).collect();
    format!("[{}]", quoted.join(", "))
}

/// Merges a runner's parameter specs with an action's: the action may override `default`,
/// `description`, `enum`, `immutable` and `required` of a runner parameter
/// ([`RUNNER_PARAM_OVERRIDABLE_ATTRS`](crate::model::RUNNER_PARAM_OVERRIDABLE_ATTRS)); setting
/// any other attribute to a different value is an error. Runner parameters come first.
///
/// `required`/`immutable`/`secret` are plain booleans in [`ParamSpec`](crate::model::ParamSpec), so an action can set
/// them but not clear a runner's `true`.
pub fn merge_param_specs(
    action_ref: &str,
    runner: &ParamMap,
    action: &ParamMap,
) -> Result<ParamMap, ParamError> {
    let mut merged = runner.clone();
    for (name, spec) in action {
        let Some(base) = merged.get_mut(name) else {
            merged.insert(name.clone(), spec.clone());
            continue;
        };
        let refuse = |attr: &str| ParamError::RunnerAttrOverride {
            action: action_ref.to_string(),
            name: name.clone(),
            attr: attr.to_string(),
        };
        if spec.param_type.is_some() && spec.param_type != base.param_type {
            return Err(refuse("type"));
        }
        if spec.secret && !base.secret {
            return Err(refuse("secret"));
        }
        if spec.position.is_some() && spec.position != base.position {
            return Err(refuse("position"));
        }
        if let Some((attr, _)) = spec
            .extra
            .iter()
            .find(|(attr, value)| base.extra.get(attr.as_str()) != Some(*value))
        {
            return Err(refuse(attr));
        }
        if spec.default.is_some() {
            base.default = spec.default.clone();
        }
        if spec.description.is_some() {
            base.description = spec.description.clone();
        }
        if spec.enum_values.is_some() {
            base.enum_values = spec.enum_values.clone();
        }
        base.immutable |= spec.immutable;
        base.required |= spec.required;
    }
    Ok(merged)
}

/// Renders, casts and validates the parameters of one action (see the module docs).
///
/// ```
/// use st2_core::model::{JsonMap, ParamMap, ParamSpec, ParamType};
/// use st2_core::template::{ParamRenderer, TemplateEngine};
/// let mut specs = ParamMap::new();
/// specs.insert("count".into(), ParamSpec { param_type: Some(ParamType::Integer), ..Default::default() });
/// specs.insert("cmd".into(), ParamSpec {
///     param_type: Some(ParamType::String),
///     default: Some(serde_json::json!("echo {{ count }}")),
///     ..Default::default()
/// });
/// let given: JsonMap = serde_json::from_value(serde_json::json!({"count": "3"})).unwrap();
/// let out = ParamRenderer::new(&TemplateEngine::new(), specs).render(&given).unwrap();
/// assert_eq!(out["count"], 3);
/// assert_eq!(out["cmd"], "echo 3");
/// ```
#[derive(Clone)]
pub struct ParamRenderer {
    engine: TemplateEngine,
    /// Runner then action parameters, merged.
    specs: ParamMap,
    /// Which of `specs` come from the runner (for [`split`](Self::split)).
    runner_names: HashSet<String>,
    action_context: JsonMap,
    config_context: JsonMap,
    kv: Option<Arc<dyn KvLookup>>,
    /// `st2kv.user` owner when the action context names no user.
    system_user: Option<String>,
    decrypter: Option<Arc<dyn Decrypter>>,
}

impl std::fmt::Debug for ParamRenderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParamRenderer")
            .field("specs", &self.specs.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// A node of the dependency graph.
#[derive(Debug, Clone)]
enum Node {
    /// A plain value.
    Value(Json),
    /// A template (string, or list/object containing template strings) and the names it reads.
    Template { value: Json, deps: BTreeSet<String> },
}

impl ParamRenderer {
    /// A renderer over already merged specs (no runner parameters).
    pub fn new(engine: &TemplateEngine, specs: ParamMap) -> Self {
        ParamRenderer {
            engine: engine.clone(),
            specs,
            runner_names: HashSet::new(),
            action_context: JsonMap::new(),
            config_context: JsonMap::new(),
            kv: None,
            system_user: None,
            decrypter: None,
        }
    }

    /// A renderer for an action run by a runner: specs merged by [`merge_param_specs`].
    pub fn for_action(
        engine: &TemplateEngine,
        action_ref: &str,
        runner: &ParamMap,
        action: &ParamMap,
    ) -> Result<Self, ParamError> {
        let mut renderer = Self::new(engine, merge_param_specs(action_ref, runner, action)?);
        renderer.runner_names = runner.keys().cloned().collect();
        Ok(renderer)
    }

    /// The execution context (`{{ action_context.user }}`); its `api_user` (else `user`) owns
    /// the `st2kv.user` keys.
    pub fn action_context(mut self, context: JsonMap) -> Self {
        self.action_context = context;
        self
    }

    /// The pack config (`{{ config_context.key }}`).
    pub fn config_context(mut self, config: JsonMap) -> Self {
        self.config_context = config;
        self
    }

    /// The datastore for `st2kv.*`; `system_user` owns `st2kv.user` keys when the action
    /// context names no user. Without a datastore every key reads as `""`.
    pub fn kv(mut self, lookup: Arc<dyn KvLookup>, system_user: Option<String>) -> Self {
        self.kv = Some(lookup);
        self.system_user = system_user;
        self
    }

    /// The decrypter for `| decrypt_kv`.
    pub fn decrypter(mut self, decrypter: Arc<dyn Decrypter>) -> Self {
        self.decrypter = Some(decrypter);
        self
    }

    /// The merged parameter specs.
    pub fn specs(&self) -> &ParamMap {
        &self.specs
    }

    /// Live parameters (StackStorm's `render_live_params`, done when an execution is
    /// requested): the given parameters rendered and cast, plus parameters not given whose
    /// default is a template. Rejects undeclared and immutable given parameters.
    pub fn render_live(&self, given: &JsonMap) -> Result<JsonMap, ParamError> {
        let unknown: Vec<String> = given
            .keys()
            .filter(|name| !self.specs.contains_key(*name))
            .cloned()
            .collect();
        if !unknown.is_empty() {
            return Err(ParamError::Unknown { names: unknown });
        }
        let immutable: Vec<String> = given
            .keys()
            .filter(|name| self.specs.get(*name).is_some_and(|s| s.immutable))
            .cloned()
            .collect();
        if !immutable.is_empty() {
            return Err(ParamError::Immutable { names: immutable });
        }

        let mut graph = IndexMap::new();
        for (name, value) in given {
            graph.insert(name.clone(), self.classify(value));
        }
        self.add_defaults(&mut graph);
        let resolved = self.resolve(graph)?;

        let mut live = JsonMap::new();
        for name in given.keys() {
            let value = resolved.get(name).cloned().unwrap_or(Json::Null);
            live.insert(name.clone(), self.cast(name, value)?);
        }
        for (name, spec) in &self.specs {
            let Some(Json::String(default)) = &spec.default else {
                continue;
            };
            if spec.immutable || given.contains_key(name) || !is_jinja_expression(default) {
                continue;
            }
            let value = resolved.get(name).cloned().unwrap_or(Json::Null);
            if value.as_str() == Some(default.as_str()) {
                continue;
            }
            live.insert(name.clone(), self.cast(name, value)?);
        }
        Ok(live)
    }

    /// Final parameters (StackStorm's `render_final_params`, done before the runner starts):
    /// `live` values taken as they are, defaults rendered for the rest, everything cast. Every
    /// declared parameter is in the result (null when it has no value), in spec order.
    pub fn render_final(&self, live: &JsonMap) -> Result<JsonMap, ParamError> {
        let mut graph = IndexMap::new();
        for (name, value) in live {
            graph.insert(name.clone(), Node::Value(value.clone()));
        }
        self.add_defaults(&mut graph);
        let resolved = self.resolve(graph)?;
        let mut out = JsonMap::new();
        for name in self.specs.keys() {
            let value = resolved.get(name).cloned().unwrap_or(Json::Null);
            out.insert(name.clone(), self.cast(name, value)?);
        }
        Ok(out)
    }

    /// Live then final rendering, then [`validate`](Self::validate): what an execution runs
    /// with.
    pub fn render(&self, given: &JsonMap) -> Result<JsonMap, ParamError> {
        let live = self.render_live(given)?;
        let params = self.render_final(&live)?;
        self.validate(&params)?;
        Ok(params)
    }

    /// Checks final parameters: required ones have a value, `enum`s hold, and the whole map
    /// validates against [`schema`](Self::schema) (optional parameters may be null).
    pub fn validate(&self, params: &JsonMap) -> Result<(), ParamError> {
        self.check_required_and_enums(params)?;
        self.check_schema(params)
    }

    /// The cheap part of [`validate`](Self::validate): required parameters have a value and
    /// `enum`s hold (no JSON schema compiled).
    pub fn check_required_and_enums(&self, params: &JsonMap) -> Result<(), ParamError> {
        let missing: Vec<String> = self
            .specs
            .iter()
            .filter(|(name, spec)| spec.required && params.get(*name).is_none_or(Json::is_null))
            .map(|(name, _)| name.clone())
            .collect();
        if !missing.is_empty() {
            return Err(ParamError::Missing { names: missing });
        }
        for (name, spec) in &self.specs {
            let (Some(allowed), Some(value)) = (&spec.enum_values, params.get(name)) else {
                continue;
            };
            if !value.is_null() && !allowed.iter().any(|a| same_value(a, value)) {
                return Err(ParamError::NotInEnum {
                    name: name.clone(),
                    value: value.clone(),
                    allowed: allowed.clone(),
                });
            }
        }
        Ok(())
    }

    /// The JSON-schema part of [`validate`](Self::validate).
    fn check_schema(&self, params: &JsonMap) -> Result<(), ParamError> {
        // Null means "no value" for an optional parameter: validated as absent.
        let instance = Json::Object(
            params
                .iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        );
        crate::schema::validate_instance(&self.schema(), Path::new("parameters"), &instance)
            .map_err(|errors| ParamError::Invalid {
                errors: errors
                    .into_iter()
                    .map(|e| {
                        let field = e.field.trim_start_matches('/');
                        if field.is_empty() {
                            e.reason
                        } else {
                            format!("{field}: {}", e.reason)
                        }
                    })
                    .collect(),
            })
    }

    /// The JSON schema of the parameters (StackStorm dialect: per-parameter `required: true`),
    /// `additionalProperties: false`. Defaults are left out: they may be templates.
    pub fn schema(&self) -> Json {
        let properties: JsonMap = self
            .specs
            .iter()
            .map(|(name, spec)| {
                let mut spec = spec.clone();
                spec.default = None;
                let schema = serde_json::to_value(&spec).unwrap_or_else(|_| json!({}));
                (name.clone(), schema)
            })
            .collect();
        json!({
            "type": "object",
            "properties": properties,
            "additionalProperties": false,
        })
    }

    /// Splits final parameters into (runner parameters, action-only parameters).
    pub fn split(&self, params: &JsonMap) -> (JsonMap, JsonMap) {
        params
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .partition(|(name, _)| self.runner_names.contains(name))
    }

    /// Adds the default of every parameter that has no node, a null value, or is immutable.
    fn add_defaults(&self, graph: &mut IndexMap<String, Node>) {
        for (name, spec) in &self.specs {
            let is_null = matches!(graph.get(name), None | Some(Node::Value(Json::Null)));
            if is_null || spec.immutable {
                let default = spec.default.clone().unwrap_or(Json::Null);
                let node = self.classify(&default);
                graph.insert(name.clone(), node);
            }
        }
    }

    /// A value or a template (with the names it reads). Text that does not parse as a
    /// template is a value.
    fn classify(&self, value: &Json) -> Node {
        let mut strings = Vec::new();
        collect_strings(value, &mut strings);
        let templates: Vec<&str> = strings
            .into_iter()
            .filter(|s| is_jinja_expression(s))
            .collect();
        if templates.is_empty() {
            return Node::Value(value.clone());
        }
        let mut deps = BTreeSet::new();
        for text in templates {
            match self.engine.variables(text) {
                Ok(vars) => deps.extend(vars),
                Err(_) => return Node::Value(value.clone()),
            }
        }
        Node::Template {
            value: value.clone(),
            deps,
        }
    }

    /// The contexts templates can read, before any parameter is resolved.
    fn base_context(&self) -> RenderContext {
        let user = ["api_user", "user"]
            .iter()
            .find_map(|k| self.action_context.get(*k).and_then(Json::as_str))
            .map(str::to_string)
            .or_else(|| self.system_user.clone());
        let lookup: Arc<dyn KvLookup> = match &self.kv {
            Some(kv) => kv.clone(),
            None => Arc::new(NoKv),
        };
        let mut ctx = RenderContext::new().with_kv(lookup, user);
        if let Some(decrypter) = &self.decrypter {
            ctx = ctx.with_decrypter(decrypter.clone());
        }
        ctx.set(
            ACTION_CONTEXT_VAR,
            &Json::Object(self.action_context.clone()),
        );
        ctx.set(
            CONFIG_CONTEXT_VAR,
            &Json::Object(self.config_context.clone()),
        );
        ctx
    }

    /// Checks the graph and renders it in dependency order; parameter name → value.
    fn resolve(&self, mut graph: IndexMap<String, Node>) -> Result<JsonMap, ParamError> {
        let contexts = [super::DATASTORE_VAR, ACTION_CONTEXT_VAR, CONFIG_CONTEXT_VAR];
        let known = |name: &str| graph.contains_key(name) || contexts.contains(&name);

        // Templates reading only unknown names are literal text; mixing is an error.
        let mut literal = Vec::new();
        for (name, node) in &graph {
            let Node::Template { deps, .. } = node else {
                continue;
            };
            let (mut found, mut missing) = (false, Vec::new());
            let mut seen = BTreeSet::new();
            let mut stack: Vec<&String> = deps.iter().collect();
            while let Some(dep) = stack.pop() {
                if !seen.insert(dep.clone()) {
                    continue;
                }
                if known(dep) {
                    found = true;
                    if let Some(Node::Template { deps, .. }) = graph.get(dep) {
                        stack.extend(deps.iter());
                    }
                } else {
                    missing.push(dep.clone());
                }
            }
            match (found, missing.is_empty()) {
                (false, false) => literal.push(name.clone()),
                (true, false) => {
                    missing.sort();
                    return Err(ParamError::UnsatisfiedDependency {
                        name: name.clone(),
                        missing,
                    });
                }
                _ => {}
            }
        }
        for name in literal {
            if let Some(node) = graph.get_mut(&name) {
                if let Node::Template { value, .. } = node {
                    *node = Node::Value(value.clone());
                }
            }
        }

        let order = topological_order(&graph)?;
        let mut ctx = self.base_context();
        let mut resolved = JsonMap::new();
        for name in order {
            let value = match &graph[&name] {
                Node::Value(v) => v.clone(),
                Node::Template { value, .. } => self
                    .render_template(value, &ctx, &resolved)
                    .map_err(|error| ParamError::Render {
                        name: name.clone(),
                        error,
                    })?,
            };
            ctx.set(name.clone(), &value);
            resolved.insert(name, value);
        }
        Ok(resolved)
    }

    /// Renders a parameter template: a string gives a string; in a list/object, a string that
    /// is exactly `{{name}}` takes that parameter's value with its type (StackStorm's
    /// `| to_complex` substitution), other strings are rendered as text.
    fn render_template(
        &self,
        value: &Json,
        ctx: &RenderContext,
        resolved: &JsonMap,
    ) -> Result<Json, TemplateError> {
        static WHOLE_VAR: LazyLock<Regex> = LazyLock::new(|| {
            Regex::new(r"^\{\{([A-Za-z0-9_-]+)\}\}$").expect("the variable pattern is valid")
        });
        match value {
            Json::String(s) => self.engine.render_str(s, ctx).map(Json::String),
            Json::Array(_) | Json::Object(_) => {
                fn walk(
                    engine: &TemplateEngine,
                    value: &Json,
                    ctx: &RenderContext,
                    resolved: &JsonMap,
                ) -> Result<Json, TemplateError> {
                    match value {
                        Json::String(s) => {
                            if let Some(var) = WHOLE_VAR.captures(s).and_then(|c| c.get(1)) {
                                if let Some(v) = resolved.get(var.as_str()) {
                                    return Ok(v.clone());
                                }
                            }
                            engine.render_value(value, ctx)
                        }
                        Json::Array(items) => items
                            .iter()
                            .map(|v| walk(engine, v, ctx, resolved))
                            .collect::<Result<Vec<_>, _>>()
                            .map(Json::Array),
                        Json::Object(map) => {
                            let mut out = JsonMap::new();
                            for (k, v) in map {
                                let key =
                                    match engine.render_value(&Json::String(k.clone()), ctx)? {
                                        Json::String(s) => s,
                                        _ => k.clone(),
                                    };
                                out.insert(key, walk(engine, v, ctx, resolved)?);
                            }
                            Ok(Json::Object(out))
                        }
                        other => Ok(other.clone()),
                    }
                }
                walk(&self.engine, value, ctx, resolved)
            }
            other => Ok(other.clone()),
        }
    }

    /// Casts a value to its parameter's declared type.
    fn cast(&self, name: &str, value: Json) -> Result<Json, ParamError> {
        let param_type = self.specs.get(name).and_then(|s| s.param_type);
        cast_value(value, param_type).map_err(|reason| ParamError::Cast {
            name: name.to_string(),
            expected: param_type.map_or("any", type_name).to_string(),
            reason,
        })
    }
}

/// A datastore with no keys.
struct NoKv;

impl KvLookup for NoKv {
    fn get(&self, _: KvScope, _: Option<&str>, _: &str) -> Option<KvValue> {
        None
    }
}

/// Every string in a JSON value, object keys included.
fn collect_strings<'a>(value: &'a Json, out: &mut Vec<&'a str>) {
    match value {
        Json::String(s) => out.push(s),
        Json::Array(items) => items.iter().for_each(|v| collect_strings(v, out)),
        Json::Object(map) => {
            for (k, v) in map {
                out.push(k);
                collect_strings(v, out);
            }
        }
        _ => {}
    }
}

/// Names in dependency order (declaration order among independent ones), or the cycle.
fn topological_order(graph: &IndexMap<String, Node>) -> Result<Vec<String>, ParamError> {
    let deps_of = |name: &str| -> Vec<&String> {
        match graph.get(name) {
            Some(Node::Template { deps, .. }) => {
                deps.iter().filter(|d| graph.contains_key(*d)).collect()
            }
            _ => Vec::new(),
        }
    };
    let mut done: HashSet<&str> = HashSet::new();
    let mut order = Vec::with_capacity(graph.len());
    loop {
        let before = order.len();
        for name in graph.keys() {
            if !done.contains(name.as_str())
                && deps_of(name).iter().all(|d| done.contains(d.as_str()))
            {
                done.insert(name);
                order.push(name.clone());
            }
        }
        if order.len() == graph.len() {
            return Ok(order);
        }
        if order.len() == before {
            break;
        }
    }
    // Walk unresolved dependencies from a stuck node until a name repeats: that is a cycle.
    let stuck = |name: &str| !done.contains(name);
    let mut path: Vec<String> = Vec::new();
    let mut current = graph.keys().find(|n| stuck(n)).cloned().unwrap_or_default();
    loop {
        if let Some(pos) = path.iter().position(|n| *n == current) {
            let mut cycle = path.split_off(pos);
            cycle.push(current);
            return Err(ParamError::Cycle { cycle });
        }
        path.push(current.clone());
        match deps_of(&current).into_iter().find(|d| stuck(d)) {
            Some(next) => current = next.clone(),
            None => {
                return Err(ParamError::Cycle { cycle: path });
            }
        }
    }
}

#[cfg(test)]
mod tests;
