//! JSON Schemas of every metadata file kind and validation against them.
//!
//! The schemas live in the repository's `schemas/` folder (one JSON Schema, draft 2020-12, per
//! [`MetadataKind`], plus the shared `action_param.json`) and are compiled into the binary, each
//! once, on first use. Errors name the file, the field path (JSON pointer style,
//! `/parameters/cmd/type`; for unknown and missing fields the path of that field itself) and a
//! precise reason. Every violation is reported, not just the first.
//!
//! Besides the fixed kinds, this module validates values against schemas written in StackStorm's
//! own dialect (trigger payload and parameters schemas, policy type parameters, pack config
//! schemas): JSON Schema draft 4 plus draft 3 style `required: true` on properties and the
//! `secret` / `immutable` / `position` extensions. See [`validate_instance`] and [`validate_config`].
//!
//! This module reads no files and does no I/O: callers pass the text or values they read.
//!
//! # Layout
//! - `embedded`: the schema files and their compiled validators.
//! - `dialect`: StackStorm's schema dialect -> standard draft 4, and its default assignment.
//! - `config`: pack config schemas and the default merging of `ContentPackConfigLoader`.
//! - `report`: turning validator errors into [`ContentError`]s with readable reasons.

mod config;
mod dialect;
mod embedded;
mod report;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use serde_json::Value;

pub use config::{config_schema_to_json_schema, validate_config};

/// The kinds of metadata file we validate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetadataKind {
    /// `pack.yaml`.
    Pack,
    /// `actions/*.yaml`.
    Action,
    /// `rules/*.yaml`.
    Rule,
    /// `sensors/*.yaml`.
    Sensor,
    /// `triggers/*.yaml`.
    TriggerType,
    /// `policies/*.yaml`.
    Policy,
    /// `aliases/*.yaml`.
    Alias,
    /// Runner type definitions.
    RunnerType,
    /// `config.schema.yaml`.
    ConfigSchema,
    /// Orquesta workflow definitions.
    Workflow,
    /// Action-chain definitions.
    ActionChain,
    /// A pack index (`index.json`).
    PackIndex,
}

impl MetadataKind {
    /// Every kind, in declaration order.
    pub const ALL: [MetadataKind; 12] = [
        MetadataKind::Pack,
        MetadataKind::Action,
        MetadataKind::Rule,
        MetadataKind::Sensor,
        MetadataKind::TriggerType,
        MetadataKind::Policy,
        MetadataKind::Alias,
        MetadataKind::RunnerType,
        MetadataKind::ConfigSchema,
        MetadataKind::Workflow,
        MetadataKind::ActionChain,
        MetadataKind::PackIndex,
    ];

    /// File name of this kind's schema in the repository's `schemas/` folder.
    pub fn schema_file(self) -> &'static str {
        match self {
            MetadataKind::Pack => "pack.json",
            MetadataKind::Action => "action.json",
            MetadataKind::Rule => "rule.json",
            MetadataKind::Sensor => "sensor.json",
            MetadataKind::TriggerType => "trigger_type.json",
            MetadataKind::Policy => "policy.json",
            MetadataKind::Alias => "alias.json",
            MetadataKind::RunnerType => "runner_type.json",
            MetadataKind::ConfigSchema => "config_schema.json",
            MetadataKind::Workflow => "workflow.json",
            MetadataKind::ActionChain => "action_chain.json",
            MetadataKind::PackIndex => "pack_index.json",
        }
    }

    /// Position in [`MetadataKind::ALL`].
    fn index(self) -> usize {
        self as usize
    }
}

/// A metadata file that is not valid: which file, which field, why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {}: {reason}", file.display(), if field.is_empty() { "(document)" } else { field.as_str() })]
pub struct ContentError {
    /// The offending file.
    pub file: PathBuf,
    /// JSON-pointer-like path of the field (`/parameters/cmd/type`), empty for the whole document.
    pub field: String,
    /// What is wrong.
    pub reason: String,
}

impl ContentError {
    /// Builds an error.
    pub fn new(file: &Path, field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            file: file.to_path_buf(),
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// Parses YAML text into JSON, reporting syntax errors with line and column.
///
/// YAML merge keys (`<<: *anchor`) are applied, as PyYAML does.
pub fn parse_yaml(file: &Path, text: &str) -> Result<Value, ContentError> {
    let mut v: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| {
        let loc = e
            .location()
            .map(|l| format!(" at line {} column {}", l.line(), l.column()))
            .unwrap_or_default();
        ContentError::new(file, "", format!("YAML syntax error{loc}: {e}"))
    })?;
    v.apply_merge()
        .map_err(|e| ContentError::new(file, "", format!("invalid YAML merge key: {e}")))?;
    serde_json::to_value(v)
        .map_err(|e| ContentError::new(file, "", format!("not representable as JSON: {e}")))
}

/// The schema of `kind`, as written in the repository's `schemas/` folder.
pub fn schema_json(kind: MetadataKind) -> &'static Value {
    embedded::document(kind.schema_file()).expect("every metadata kind has an embedded schema file")
}

/// Validates `doc` (already parsed) as a metadata file of `kind`. All violations are returned,
/// most specific first.
///
/// For [`MetadataKind::Pack`], an unquoted numeric `version` (`version: 0.1`) is cast to a string
/// first, as StackStorm does, so it is then reported as not being a semantic version.
pub fn validate(kind: MetadataKind, file: &Path, doc: &Value) -> Result<(), Vec<ContentError>> {
    let doc = prepare(kind, doc);
    let mut errors = report::collect(
        file,
        embedded::validator(kind).iter_errors(&doc),
        kind.schema_file(),
        &|name| embedded::document(name),
    );
    if kind == MetadataKind::ActionChain {
        errors.extend(check_chain_params(file, &doc));
    }
    report::finish(errors)
}

/// Validates `doc` against `schema`, a schema in StackStorm's dialect (trigger type
/// `payload_schema` / `parameters_schema`, policy type parameters, ...). All violations are
/// returned, most specific first.
///
/// Like StackStorm's `util.schema.validate(use_default=True, allow_default_none=True)`:
/// `default`s are assigned before validation (so a required property with a default is never
/// missing), optional properties without a default (or with a null default) also accept null,
/// per-property `required: true` is honoured, and `format` is not checked. The schema is draft 4
/// unless it names another draft in `$schema`.
pub fn validate_instance(
    schema: &Value,
    file: &Path,
    doc: &Value,
) -> Result<(), Vec<ContentError>> {
    validate_instance_with_defaults(schema, file, doc).map(|_| ())
}

/// Like [`validate_instance`], and returns `doc` with the schema's defaults assigned (the value
/// StackStorm goes on with).
pub fn validate_instance_with_defaults(
    schema: &Value,
    file: &Path,
    doc: &Value,
) -> Result<Value, Vec<ContentError>> {
    let mut instance = doc.clone();
    dialect::assign_defaults(&mut instance, schema);
    let normalized = dialect::normalize(schema, true);
    report::finish(check_ad_hoc(&normalized, file, &instance))?;
    Ok(instance)
}

/// Validates `instance` against an already normalized ad hoc schema; errors unsorted.
fn check_ad_hoc(schema: &Value, file: &Path, instance: &Value) -> Vec<ContentError> {
    match compile_ad_hoc(schema, file) {
        Ok(validator) => report::collect(file, validator.iter_errors(instance), "", &|name| {
            name.is_empty().then_some(schema)
        }),
        Err(e) => vec![e],
    }
}

/// Compiles an already normalized ad hoc schema (draft 4 unless it names another).
fn compile_ad_hoc(schema: &Value, file: &Path) -> Result<jsonschema::Validator, ContentError> {
    let mut options = jsonschema::options().should_validate_formats(false);
    if schema.get("$schema").is_none() {
        options = options.with_draft(jsonschema::Draft::Draft4);
    }
    options.build(schema).map_err(|e| {
        let at = e.instance_path().as_str();
        let at = if at.is_empty() {
            String::new()
        } else {
            format!(" at {at}")
        };
        ContentError::new(file, "", format!("invalid schema{at}: {e}"))
    })
}

/// A schema in StackStorm's dialect compiled once, validating like [`validate_instance`] (for
/// values checked again and again, such as the payloads of one trigger type).
pub struct InstanceValidator {
    /// The schema as written (its defaults are assigned before each check).
    schema: Value,
    /// [`Self::schema`] normalized to standard draft 4.
    normalized: Value,
    /// The compiled validator of `normalized`.
    validator: jsonschema::Validator,
    /// What errors name as the file.
    file: PathBuf,
}

impl std::fmt::Debug for InstanceValidator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstanceValidator")
            .field("file", &self.file)
            .finish_non_exhaustive()
    }
}

impl InstanceValidator {
    /// Compiles `schema`; an invalid schema is an error naming `file`.
    pub fn new(schema: &Value, file: &Path) -> Result<Self, Vec<ContentError>> {
        let normalized = dialect::normalize(schema, true);
        let validator = compile_ad_hoc(&normalized, file).map_err(|e| vec![e])?;
        Ok(Self {
            schema: schema.clone(),
            normalized,
            validator,
            file: file.to_path_buf(),
        })
    }

    /// Checks `doc` (with the schema's defaults assigned); all violations, most specific first.
    pub fn validate(&self, doc: &Value) -> Result<(), Vec<ContentError>> {
        let mut instance = doc.clone();
        dialect::assign_defaults(&mut instance, &self.schema);
        let normalized = &self.normalized;
        report::finish(report::collect(
            &self.file,
            self.validator.iter_errors(&instance),
            "",
            &|name| name.is_empty().then_some(normalized),
        ))
    }
}

/// StackStorm casts unquoted numeric pack versions to strings before validating.
fn prepare(kind: MetadataKind, doc: &Value) -> Cow<'_, Value> {
    if kind == MetadataKind::Pack {
        if let Some(v @ Value::Number(_)) = doc.get("version") {
            let mut doc = doc.clone();
            doc["version"] = Value::String(v.to_string());
            return Cow::Owned(doc);
        }
    }
    Cow::Borrowed(doc)
}

/// Action-chain nodes take `params` (old name) or `parameters`, not both.
fn check_chain_params(file: &Path, doc: &Value) -> Vec<ContentError> {
    let non_empty =
        |v: Option<&Value>| v.is_some_and(|v| v.as_object().is_some_and(|m| !m.is_empty()));
    let Some(chain) = doc.get("chain").and_then(Value::as_array) else {
        return Vec::new();
    };
    chain
        .iter()
        .enumerate()
        .filter(|(_, node)| non_empty(node.get("params")) && non_empty(node.get("parameters")))
        .map(|(i, _)| {
            ContentError::new(
                file,
                format!("/chain/{i}/params"),
                "give either \"params\" (old name) or \"parameters\", not both",
            )
        })
        .collect()
}
