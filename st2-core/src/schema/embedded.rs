//! The schema files of the repository's `schemas/` folder, embedded at build time and compiled
//! once, on first use. The files are an invariant of the build: a file that does not parse or
//! compile is a bug caught by the tests, hence the panics.

use std::collections::HashMap;
use std::sync::OnceLock;

use jsonschema::{Draft, Registry, Validator};
use serde_json::Value;

use super::MetadataKind;

/// Base of the `$id` of every embedded schema. Never fetched: every file is registered under it,
/// so `"$ref": "action_param.json"` resolves offline.
pub(super) const BASE_URI: &str = "https://st2.invalid/schemas/";

/// Every schema file: name and text.
const FILES: [(&str, &str); 13] = [
    (
        "action_param.json",
        include_str!("../../../schemas/action_param.json"),
    ),
    ("pack.json", include_str!("../../../schemas/pack.json")),
    ("action.json", include_str!("../../../schemas/action.json")),
    ("rule.json", include_str!("../../../schemas/rule.json")),
    ("sensor.json", include_str!("../../../schemas/sensor.json")),
    (
        "trigger_type.json",
        include_str!("../../../schemas/trigger_type.json"),
    ),
    ("policy.json", include_str!("../../../schemas/policy.json")),
    ("alias.json", include_str!("../../../schemas/alias.json")),
    (
        "runner_type.json",
        include_str!("../../../schemas/runner_type.json"),
    ),
    (
        "config_schema.json",
        include_str!("../../../schemas/config_schema.json"),
    ),
    (
        "workflow.json",
        include_str!("../../../schemas/workflow.json"),
    ),
    (
        "action_chain.json",
        include_str!("../../../schemas/action_chain.json"),
    ),
    (
        "pack_index.json",
        include_str!("../../../schemas/pack_index.json"),
    ),
];

/// The parsed schema files, by file name.
fn documents() -> &'static HashMap<&'static str, Value> {
    static DOCUMENTS: OnceLock<HashMap<&'static str, Value>> = OnceLock::new();
    DOCUMENTS.get_or_init(|| {
        FILES
            .iter()
            .map(|(name, text)| {
                let doc = serde_json::from_str(text)
                    .unwrap_or_else(|e| panic!("schemas/{name} is not valid JSON: {e}"));
                (*name, doc)
            })
            .collect()
    })
}

/// One parsed schema file, by file name (`action.json`) or full `$id` URI.
pub(super) fn document(name: &str) -> Option<&'static Value> {
    documents().get(name.strip_prefix(BASE_URI).unwrap_or(name))
}

/// The compiled validator of `kind`'s schema.
pub(super) fn validator(kind: MetadataKind) -> &'static Validator {
    static VALIDATORS: [OnceLock<Validator>; MetadataKind::ALL.len()] =
        [const { OnceLock::new() }; MetadataKind::ALL.len()];
    VALIDATORS[kind.index()].get_or_init(|| compile(kind.schema_file()))
}

/// Every schema file registered under [`BASE_URI`], so `$ref`s between files resolve offline.
fn registry() -> &'static Registry<'static> {
    static REGISTRY: OnceLock<Registry<'static>> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        Registry::new()
            .draft(Draft::Draft202012)
            .extend(
                documents()
                    .iter()
                    .map(|(name, doc)| (format!("{BASE_URI}{name}"), doc)),
            )
            .and_then(|builder| builder.prepare())
            .unwrap_or_else(|e| panic!("the embedded schemas do not form a registry: {e}"))
    })
}

/// Compiles one schema file against the [`registry`] of every file.
fn compile(file: &str) -> Validator {
    let schema = document(file).unwrap_or_else(|| panic!("schemas/{file} is not embedded"));
    jsonschema::options()
        .with_draft(Draft::Draft202012)
        // StackStorm validates without a format checker: `format` is documentation only.
        .should_validate_formats(false)
        .with_registry(registry())
        .with_base_uri(format!("{BASE_URI}{file}"))
        .build(schema)
        .unwrap_or_else(|e| panic!("schemas/{file} does not compile: {e}"))
}
