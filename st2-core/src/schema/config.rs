//! Pack configs: `config.schema.yaml` as a JSON Schema, validation of `configs/<pack>.yaml` and
//! the default merging StackStorm's `ContentPackConfigLoader` does before handing a config to
//! actions and sensors. Pure functions.

use crate::pyfmt::truthy;
use std::path::Path;

use serde_json::{json, Value};

use super::{check_ad_hoc, dialect, report, ContentError};
use crate::model::JsonMap;

const DRAFT4: &str = "http://json-schema.org/draft-04/schema#";

/// Converts a pack's config schema (`config.schema.yaml`: attribute name -> parameter schema)
/// into a standard JSON Schema (draft 4, named in `$schema`): an object whose `properties` are
/// the attributes, with per-attribute `required: true` collected into `required` arrays at every
/// level and StackStorm's extension keywords (`secret`, `immutable`, `position`) dropped.
/// Attributes not in the schema are allowed, as in StackStorm.
pub fn config_schema_to_json_schema(attrs: &JsonMap) -> Value {
    dialect::normalize(&object_schema(attrs), false)
}

/// Validates a pack config (`values`, from `configs/<pack>.yaml`) against its config schema
/// (`schema_attrs`, from `config.schema.yaml`) and returns the values with the schema's defaults
/// merged in. Every violation is returned, most specific first.
///
/// Validation is StackStorm's registration check (`validate_config_against_schema`): top-level
/// defaults and those of nested objects that are present are assigned first, optional attributes
/// may be null, and a `secret` attribute may not use the `decrypt_kv` filter (secrets are
/// decrypted anyway). The returned values are merged the way `ContentPackConfigLoader` does at
/// run time: recursively, creating absent nested objects and arrays whose schema has
/// `properties` / `patternProperties` / `additionalProperties` (or `items`), so that their
/// defaults appear too. Jinja values (`{{ st2kv.system.x }}`) are left for the caller to render.
pub fn validate_config(
    file: &Path,
    schema_attrs: &JsonMap,
    values: &JsonMap,
) -> Result<JsonMap, Vec<ContentError>> {
    let schema = object_schema(schema_attrs);
    let mut checked = Value::Object(values.clone());
    dialect::assign_defaults(&mut checked, &schema);
    let mut errors = check_ad_hoc(&dialect::normalize(&schema, true), file, &checked);
    errors.extend(check_secret_decrypt(file, schema_attrs, &checked));
    report::finish(errors)?;

    let mut merged = values.clone();
    merge_defaults(schema_attrs, &mut merged);
    Ok(merged)
}

/// The config schema as one object schema, the way StackStorm builds it.
fn object_schema(attrs: &JsonMap) -> Value {
    json!({
        "$schema": DRAFT4,
        "type": "object",
        "properties": attrs,
        "additionalProperties": true,
    })
}

/// `decrypt_kv` on a secret attribute is refused: those are decrypted automatically.
fn check_secret_decrypt(file: &Path, attrs: &JsonMap, config: &Value) -> Vec<ContentError> {
    let Some(config) = config.as_object() else {
        return Vec::new();
    };
    config
        .iter()
        .filter(|(key, value)| {
            let secret = attrs.get(*key).and_then(|a| a.get("secret")) == Some(&Value::Bool(true));
            let text = value.as_str().unwrap_or_default();
            secret && is_jinja(text) && text.contains("decrypt_kv")
        })
        .map(|(key, _)| {
            ContentError::new(
                file,
                format!("/{}", key.replace('~', "~0").replace('/', "~1")),
                "the \"decrypt_kv\" filter is not allowed on a secret attribute: secret values \
                 are decrypted automatically",
            )
        })
        .collect()
}

fn is_jinja(text: &str) -> bool {
    (text.contains("{{") && text.contains("}}")) || (text.contains("{%") && text.contains("%}"))
}

/// `ContentPackConfigLoader._assign_default_values` over an object: `schema` maps each key to its
/// schema.
fn merge_defaults(schema: &JsonMap, config: &mut JsonMap) {
    for (key, item) in schema {
        let Some(item) = item.as_object() else {
            continue;
        };
        if let Some(default) = item.get("default") {
            if !config.contains_key(key) {
                config.insert(key.clone(), default.clone());
            }
        }
        if container(item).is_some() {
            descend(item, config.entry(key.clone()).or_insert(Value::Null));
        }
    }
}

/// The same over an array: `schema` holds one schema per position.
fn merge_item_defaults(schema: &[Value], config: &mut [Value]) {
    // StackStorm would fail on a positional default past the end of the array; we skip it.
    for (item, slot) in schema.iter().zip(config.iter_mut()) {
        if let Some(item) = item.as_object() {
            if container(item).is_some() {
                descend(item, slot);
            }
        }
    }
}

/// Which kind of container a schema item describes, when it has nested schemas to merge.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Container {
    Object,
    Array,
}

fn container(item: &JsonMap) -> Option<Container> {
    match item.get("type").and_then(Value::as_str) {
        Some("object")
            if ["properties", "patternProperties", "additionalProperties"]
                .iter()
                .any(|k| item.get(*k).is_some_and(truthy)) =>
        {
            Some(Container::Object)
        }
        Some("array")
            if ["items", "additionalItems"]
                .iter()
                .any(|k| item.get(*k).is_some_and(truthy)) =>
        {
            Some(Container::Array)
        }
        _ => None,
    }
}

/// Merges into one nested value; a missing (null) or empty container is created first. Values of
/// the wrong type are left alone for validation to report.
fn descend(item: &JsonMap, slot: &mut Value) {
    match container(item) {
        Some(Container::Object) => {
            if slot.is_null() {
                *slot = Value::Object(JsonMap::new());
            }
            if let Value::Object(map) = slot {
                let keys: Vec<String> = map.keys().cloned().collect();
                merge_defaults(&object_properties_schema(item, &keys), map);
            }
        }
        Some(Container::Array) => {
            if slot.is_null() {
                *slot = Value::Array(Vec::new());
            }
            if let Value::Array(items) = slot {
                let schema = array_items_schema(item, items.len());
                merge_item_defaults(&schema, items);
            }
        }
        None => {}
    }
}

/// One schema per key of an object: `properties` first, then `patternProperties` (every
/// matching pattern's schema merged), then `additionalProperties` for the keys left.
fn object_properties_schema(object_schema: &JsonMap, keys: &[String]) -> JsonMap {
    let mut flat: JsonMap = keys.iter().map(|k| (k.clone(), json!({}))).collect();
    let properties = object_schema.get("properties").and_then(Value::as_object);
    if let Some(properties) = properties {
        flat.extend(properties.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    let mut extra: Vec<&String> = keys
        .iter()
        .filter(|k| !properties.is_some_and(|p| p.contains_key(*k)))
        .collect();
    if extra.is_empty() {
        return flat;
    }
    if let Some(patterns) = object_schema
        .get("patternProperties")
        .and_then(Value::as_object)
    {
        extra.retain(|key| {
            let mut composed = JsonMap::new();
            let mut matched = false;
            for (pattern, pattern_schema) in patterns {
                if regex_search(pattern, key) {
                    matched = true;
                    if let Some(fields) = pattern_schema.as_object() {
                        composed.extend(fields.iter().map(|(k, v)| (k.clone(), v.clone())));
                    }
                }
            }
            if matched {
                flat.insert((*key).clone(), Value::Object(composed));
            }
            !matched
        });
    }
    if let Some(additional) = object_schema.get("additionalProperties") {
        if additional.as_object().is_some_and(|m| !m.is_empty()) {
            for key in extra {
                flat.insert(key.clone(), additional.clone());
            }
        }
    }
    flat
}

/// One schema per array position: `items` (one schema for all, or a list), then
/// `additionalItems` for the positions left.
fn array_items_schema(array_schema: &JsonMap, count: usize) -> Vec<Value> {
    let mut flat = match array_schema.get("items") {
        Some(items @ Value::Object(_)) => vec![items.clone(); count],
        Some(Value::Array(items)) => items.clone(),
        _ => Vec::new(),
    };
    if flat.len() < count {
        if let Some(additional) = array_schema.get("additionalItems") {
            if additional.as_object().is_some_and(|m| !m.is_empty()) {
                flat.resize(count, additional.clone());
            }
        }
    }
    flat
}

/// `re.search(pattern, text)`, with the regex engine of JSON Schema's `pattern`. An invalid
/// pattern matches nothing.
fn regex_search(pattern: &str, text: &str) -> bool {
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft4)
        .build(&json!({ "pattern": pattern }))
        .is_ok_and(|v| v.is_valid(&Value::String(text.to_string())))
}
