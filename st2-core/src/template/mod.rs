//! Jinja templating the way StackStorm does it: rule criteria patterns and action parameters
//! (`{{ trigger.body.x }}`), parameter defaults (`{{ st2kv.system.k }}`, `{{ other_param }}`),
//! with StackStorm's filters and Python-compatible output.
//!
//! Owns the template engine ([`TemplateEngine`], a configured `minijinja` environment:
//! strict undefined unless asked, `trim_blocks`/`lstrip_blocks`), what templates see
//! ([`RenderContext`], with the lazy `st2kv` datastore lookup), and parameter rendering
//! ([`params`]: defaults, dependency order, casts, validation). Pure: no store, no bus, no
//! async; the datastore and decryption come in through the [`KvLookup`] and [`Decrypter`]
//! hooks. Callers never handle `minijinja` types.
//!
//! Output follows CPython: `{{ flag }}` renders `True`, `{{ none }}` `None`, `{{ list }}`
//! `['a', 1]` (as StackStorm's Jinja does), which is why typed results go through
//! [`TemplateEngine::render_complex`] (rule criteria) or the parameter casts.

mod context;
mod filters;
pub mod params;
mod python;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, PoisonError, RwLock};

use minijinja::{Environment, ErrorKind, UndefinedBehavior};
use regex::Regex;
use serde_json::Value as Json;

pub use context::{Decrypter, KvLookup, KvScope, KvValue, RenderContext, StaticKv, DATASTORE_VAR};
pub use filters::FILTER_NAMES;
pub use params::{mask_secrets, ParamError, ParamRenderer, MASKED_ATTRIBUTE_VALUE};

/// What the `use_none` filter renders; a rendered string equal to it means null
/// (StackStorm's `NONE_MAGIC_VALUE`).
pub const NONE_MAGIC_VALUE: &str = "%*****__%NONE%__*****%";

/// Whether `value` looks like a template (contains `{{` or `{%`; StackStorm's
/// `is_jinja_expression`).
pub fn is_jinja_expression(value: &str) -> bool {
    value.contains("{{") || value.contains("{%")
}

/// A template could not be compiled or rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// The template text is not valid Jinja.
    #[error("syntax error in template {template:?}{}: {reason}", at_line(*line))]
    Syntax {
        /// The template text.
        template: String,
        /// 1-based line of the error, when known.
        line: Option<usize>,
        /// What is wrong.
        reason: String,
    },
    /// The template uses a variable or attribute that is not defined (strict mode).
    #[error("undefined variable `{name}` in template {template:?}{}", at_line(*line))]
    Undefined {
        /// The template text.
        template: String,
        /// The undefined expression (`trigger.body.missing`), or `?` when unknown.
        name: String,
        /// 1-based line of the error, when known.
        line: Option<usize>,
    },
    /// Rendering failed (a filter error, an invalid operation, ...).
    #[error("failed to render template {template:?}{}: {reason}", at_line(*line))]
    Render {
        /// The template text.
        template: String,
        /// 1-based line of the error, when known.
        line: Option<usize>,
        /// What went wrong.
        reason: String,
    },
}

/// The expression an undefined-error span points at, extended back over the variable chain
/// it belongs to (the span of `trigger.body.missing` starts at `.body`).
fn undefined_expression(template: &str, range: std::ops::Range<usize>) -> Option<String> {
    let end = range.end.min(template.len());
    let mut start = range.start.min(end);
    let chain = |c: char| c.is_alphanumeric() || matches!(c, '_' | '.' | '[' | ']' | '\'' | '"');
    while let Some(c) = template[..start].chars().next_back() {
        if !chain(c) {
            break;
        }
        start -= c.len_utf8();
    }
    let text = template.get(start..end)?.trim();
    (!text.is_empty()).then(|| text.to_string())
}

fn at_line(line: Option<usize>) -> String {
    line.map(|l| format!(" at line {l}")).unwrap_or_default()
}

impl TemplateError {
    /// The template text the error is about.
    pub fn template(&self) -> &str {
        match self {
            TemplateError::Syntax { template, .. }
            | TemplateError::Undefined { template, .. }
            | TemplateError::Render { template, .. } => template,
        }
    }

    /// The same error about another template text (the pattern a derived template came from).
    fn with_template(mut self, text: &str) -> TemplateError {
        match &mut self {
            TemplateError::Syntax { template, .. }
            | TemplateError::Undefined { template, .. }
            | TemplateError::Render { template, .. } => *template = text.to_string(),
        }
        self
    }

    fn from_minijinja(template: &str, err: &minijinja::Error) -> TemplateError {
        let line = err.line();
        let template = template.to_string();
        match err.kind() {
            ErrorKind::SyntaxError => TemplateError::Syntax {
                template,
                line,
                reason: err.detail().unwrap_or("invalid syntax").to_string(),
            },
            ErrorKind::UndefinedError => {
                let name = err
                    .range()
                    .and_then(|r| undefined_expression(&template, r))
                    .unwrap_or_else(|| "?".to_string());
                TemplateError::Undefined {
                    template,
                    name,
                    line,
                }
            }
            kind => {
                let mut reason = match err.detail() {
                    Some(detail) => format!("{kind}: {detail}"),
                    None => kind.to_string(),
                };
                let mut source = std::error::Error::source(err);
                while let Some(inner) = source {
                    reason.push_str(&format!(": {inner}"));
                    source = inner.source();
                }
                TemplateError::Render {
                    template,
                    line,
                    reason,
                }
            }
        }
    }
}

/// The configured environment, shared by an engine and the templates it compiled.
struct Shared {
    env: RwLock<Environment<'static>>,
    /// Names of global functions (`range`, `json_dump`, ...): not variables of a template.
    globals: BTreeSet<String>,
    next_id: AtomicU64,
}

/// StackStorm's Jinja environment: strict undefined (unless built with
/// [`TemplateEngine::allowing_undefined`]), `trim_blocks` and `lstrip_blocks`, StackStorm's
/// filters (also callable as functions), Python-style printing.
///
/// Cheap to clone (shared). Rendering never blocks rendering; compiling briefly excludes both.
#[derive(Clone)]
pub struct TemplateEngine {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for TemplateEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TemplateEngine").finish_non_exhaustive()
    }
}

impl Default for TemplateEngine {
    fn default() -> Self {
        Self::new()
    }
}

impl TemplateEngine {
    /// The strict engine: an undefined variable is an error (`jinja2.StrictUndefined`).
    pub fn new() -> Self {
        Self::build(UndefinedBehavior::Strict)
    }

    /// The lenient engine: undefined variables render as `""` (`allow_undefined=True`).
    pub fn allowing_undefined() -> Self {
        Self::build(UndefinedBehavior::Lenient)
    }

    fn build(undefined: UndefinedBehavior) -> Self {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_undefined_behavior(undefined);
        filters::register(&mut env);
        let globals = env.globals().map(|(name, _)| name.to_string()).collect();
        TemplateEngine {
            shared: Arc::new(Shared {
                env: RwLock::new(env),
                globals,
                next_id: AtomicU64::new(0),
            }),
        }
    }

    /// Parses `template` once; [`CompiledTemplate::render`] then reuses it (rules compile their
    /// templates when loaded).
    pub fn compile(&self, template: &str) -> Result<CompiledTemplate, TemplateError> {
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let name = format!("st2-template-{id}");
        self.shared
            .env
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .add_template_owned(name.clone(), template.to_string())
            .map_err(|e| TemplateError::from_minijinja(template, &e))?;
        Ok(CompiledTemplate {
            inner: Arc::new(CompiledInner {
                shared: self.shared.clone(),
                name,
                source: template.into(),
            }),
        })
    }

    /// Renders `template` once (parse and render).
    pub fn render_str(&self, template: &str, ctx: &RenderContext) -> Result<String, TemplateError> {
        let env = self
            .shared
            .env
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let env: &Environment<'_> = &env;
        let tmpl = env
            .template_from_str(template)
            .map_err(|e| TemplateError::from_minijinja(template, &e))?;
        tmpl.render(ctx.root())
            .map_err(|e| TemplateError::from_minijinja(template, &e))
    }

    /// The top-level variables `template` reads (`{{ a.b }}` → `a`), global functions excluded.
    pub fn variables(&self, template: &str) -> Result<BTreeSet<String>, TemplateError> {
        let env = self
            .shared
            .env
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let env: &Environment<'_> = &env;
        let tmpl = env
            .template_from_str(template)
            .map_err(|e| TemplateError::from_minijinja(template, &e))?;
        Ok(tmpl
            .undeclared_variables(false)
            .into_iter()
            .filter(|name| !self.shared.globals.contains(name))
            .collect())
    }

    /// Renders every string inside `value` (object keys too), leaving other values as they are.
    /// Strings without `{{`/`{%` are returned untouched, without going through the engine; a
    /// string rendering to [`NONE_MAGIC_VALUE`] (`| use_none`) becomes null.
    pub fn render_value(&self, value: &Json, ctx: &RenderContext) -> Result<Json, TemplateError> {
        Ok(match value {
            Json::String(s) if is_jinja_expression(s) => none_marker(self.render_str(s, ctx)?),
            Json::Array(items) => Json::Array(
                items
                    .iter()
                    .map(|v| self.render_value(v, ctx))
                    .collect::<Result<_, _>>()?,
            ),
            Json::Object(map) => {
                let mut out = crate::model::JsonMap::new();
                for (k, v) in map {
                    let key = if is_jinja_expression(k) {
                        self.render_str(k, ctx)?
                    } else {
                        k.clone()
                    };
                    out.insert(key, self.render_value(v, ctx)?);
                }
                Json::Object(out)
            }
            other => other.clone(),
        })
    }

    /// Renders a rule criterion pattern the way StackStorm's rules engine does: non-strings
    /// (and null) as they are; a string containing `{{ … }}` is rendered with `| to_complex`
    /// applied and JSON-decoded, so `{{ trigger.list }}` stays a list and `{{ trigger.n }}` a
    /// number; if that output is not JSON, the plain rendering (a string) is used.
    pub fn render_complex(
        &self,
        pattern: &Json,
        ctx: &RenderContext,
    ) -> Result<Json, TemplateError> {
        match pattern {
            Json::String(s) => self.compile_pattern(s)?.render(ctx),
            other => Ok(other.clone()),
        }
    }

    /// Compiles a criterion pattern for [`render_complex`](Self::render_complex)-style
    /// rendering, once.
    pub fn compile_pattern(&self, pattern: &str) -> Result<CompiledPattern, TemplateError> {
        let complex = match complex_form(pattern) {
            Some(text) => Some(self.compile(&text).map_err(|e| e.with_template(pattern))?),
            None => None,
        };
        Ok(CompiledPattern {
            complex,
            plain: self.compile(pattern)?,
        })
    }
}

/// `{{ x }}` → `{{x  | to_complex}}`, StackStorm's `MATCH_CRITERIA` substitution
/// (`({{)\s*(.*)\s*(}})` → `\1\2 | to_complex\3`; greedy, so it spans from the first `{{` to
/// the last `}}` on a line). `None` when the pattern has no `{{ … }}`.
fn complex_form(pattern: &str) -> Option<String> {
    static MATCH_CRITERIA: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(\{\{)\s*(.*)\s*(\}\})").expect("the MATCH_CRITERIA pattern is valid")
    });
    if !MATCH_CRITERIA.is_match(pattern) {
        return None;
    }
    Some(
        MATCH_CRITERIA
            .replace_all(pattern, "${1}${2} | to_complex${3}")
            .into_owned(),
    )
}

/// A rendered string: the `use_none` marker becomes null.
fn none_marker(rendered: String) -> Json {
    if rendered == NONE_MAGIC_VALUE {
        Json::Null
    } else {
        Json::String(rendered)
    }
}

/// A template parsed once, rendered many times. Cheap to clone; dropping the last clone frees
/// it from the engine (do not drop one from inside a [`KvLookup`] or [`Decrypter`] call made
/// by a render of the same engine: freeing waits for renders to finish).
#[derive(Clone)]
pub struct CompiledTemplate {
    inner: Arc<CompiledInner>,
}

struct CompiledInner {
    shared: Arc<Shared>,
    /// Name of the template inside the shared environment.
    name: String,
    source: Arc<str>,
}

impl Drop for CompiledInner {
    fn drop(&mut self) {
        self.shared
            .env
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove_template(&self.name);
    }
}

impl std::fmt::Debug for CompiledTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("CompiledTemplate")
            .field(&self.inner.source)
            .finish()
    }
}

impl CompiledTemplate {
    /// The template text.
    pub fn source(&self) -> &str {
        &self.inner.source
    }

    /// Renders with `ctx`.
    pub fn render(&self, ctx: &RenderContext) -> Result<String, TemplateError> {
        let env = self
            .inner
            .shared
            .env
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let result = env
            .get_template(&self.inner.name)
            .and_then(|tmpl| tmpl.render(ctx.root()));
        result.map_err(|e| TemplateError::from_minijinja(&self.inner.source, &e))
    }

    /// Renders with `ctx`; the `use_none` marker gives null, anything else a string.
    pub fn render_value(&self, ctx: &RenderContext) -> Result<Json, TemplateError> {
        self.render(ctx).map(none_marker)
    }

    /// The top-level variables the template reads, global functions excluded.
    pub fn variables(&self) -> BTreeSet<String> {
        let env = self
            .inner
            .shared
            .env
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        env.get_template(&self.inner.name)
            .map(|tmpl| tmpl.undeclared_variables(false))
            .unwrap_or_default()
            .into_iter()
            .filter(|name| !self.inner.shared.globals.contains(name))
            .collect()
    }
}

/// A rule criterion pattern compiled for typed rendering (see
/// [`TemplateEngine::render_complex`]).
#[derive(Debug, Clone)]
pub struct CompiledPattern {
    /// The `| to_complex` form, when the pattern has `{{ … }}`.
    complex: Option<CompiledTemplate>,
    /// The pattern as written.
    plain: CompiledTemplate,
}

impl CompiledPattern {
    /// The pattern text.
    pub fn source(&self) -> &str {
        self.plain.source()
    }

    /// The rendered pattern: the JSON-decoded `| to_complex` rendering when that is JSON,
    /// otherwise the plain rendering as a string (the `use_none` marker gives null).
    pub fn render(&self, ctx: &RenderContext) -> Result<Json, TemplateError> {
        if let Some(complex) = &self.complex {
            let rendered = complex
                .render(ctx)
                .map_err(|e| e.with_template(self.plain.source()))?;
            if let Ok(value) = serde_json::from_str::<Json>(&rendered) {
                return Ok(match value {
                    Json::String(s) => none_marker(s),
                    other => other,
                });
            }
        }
        self.plain.render_value(ctx)
    }
}
