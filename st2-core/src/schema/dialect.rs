//! StackStorm's schema dialect, turned into standard JSON Schema draft 4.
//!
//! StackStorm writes parameter, payload and config schemas as draft 4 plus draft 3 style
//! `required: true` on each property, plus `secret`, `immutable` and `position`, and validates
//! them with `default`s assigned first and null allowed for optional properties
//! (`util.schema.validate(use_default=True, allow_default_none=True)`). This file reproduces that:
//! [`normalize`] rewrites the schema, [`assign_defaults`] fills the instance. Pure functions.

use serde_json::{json, Value};

use crate::model::JsonMap;

/// Keywords StackStorm adds to JSON Schema; they do not constrain values.
const EXTENSIONS: [&str; 3] = ["secret", "immutable", "position"];

/// Rewrites a StackStorm-dialect schema as a standard draft 4 schema: per-property
/// `required: true` becomes the parent's `required` array (merged with one already there,
/// recursively), the extension keywords are dropped. With `nullable_optional`, properties that
/// are optional without a default, or whose default is null, also accept null (StackStorm's
/// `allow_default_none`).
pub(super) fn normalize(schema: &Value, nullable_optional: bool) -> Value {
    normalize_node(schema, nullable_optional, true)
}

fn normalize_node(node: &Value, nullable: bool, is_root: bool) -> Value {
    let Value::Object(map) = node else {
        return node.clone();
    };
    let mut required: Vec<Value> = match map.get("required") {
        Some(Value::Array(names)) => names.clone(),
        _ => Vec::new(),
    };
    let mut out = JsonMap::new();
    for (key, value) in map {
        let normalized = match key.as_str() {
            k if EXTENSIONS.contains(&k) => continue,
            "required" => continue,
            "$schema" if !is_root => continue,
            "properties" => match value {
                Value::Object(props) => {
                    Value::Object(normalize_properties(props, nullable, &mut required))
                }
                other => other.clone(),
            },
            "patternProperties" | "definitions" | "$defs" | "dependencies" => match value {
                Value::Object(entries) => Value::Object(
                    entries
                        .iter()
                        .map(|(name, sub)| (name.clone(), normalize_node(sub, nullable, false)))
                        .collect(),
                ),
                other => other.clone(),
            },
            "items" | "allOf" | "anyOf" | "oneOf" => match value {
                Value::Array(subs) => Value::Array(
                    subs.iter()
                        .map(|s| normalize_node(s, nullable, false))
                        .collect(),
                ),
                other => normalize_node(other, nullable, false),
            },
            "additionalItems"
            | "additionalProperties"
            | "not"
            | "contains"
            | "propertyNames"
            | "if"
            | "then"
            | "else" => normalize_node(value, nullable, false),
            _ => value.clone(),
        };
        out.insert(key.clone(), normalized);
    }
    if !required.is_empty() {
        out.insert("required".into(), Value::Array(required));
    }
    Value::Object(out)
}

fn normalize_properties(props: &JsonMap, nullable: bool, required: &mut Vec<Value>) -> JsonMap {
    let mut out = JsonMap::new();
    for (name, sub) in props {
        let is_required = sub.get("required") == Some(&Value::Bool(true));
        if is_required && !required.iter().any(|r| r.as_str() == Some(name)) {
            required.push(Value::String(name.clone()));
        }
        let mut normalized = normalize_node(sub, nullable, false);
        if nullable && null_by_default(sub, is_required) {
            make_nullable(&mut normalized);
        }
        out.insert(name.clone(), normalized);
    }
    out
}

/// StackStorm's rule: `(has default or optional) and default is None`.
fn null_by_default(prop: &Value, is_required: bool) -> bool {
    match prop.get("default") {
        Some(default) => default.is_null(),
        None => !is_required,
    }
}

/// Lets a property schema accept null too. A schema without `type` accepts anything already
/// (StackStorm would narrow it to string-or-null; we keep it open).
fn make_nullable(schema: &mut Value) {
    let Value::Object(map) = schema else { return };
    let null_branch = |branches: &Vec<Value>| {
        branches
            .iter()
            .any(|b| b.get("type").and_then(Value::as_str) == Some("null"))
    };
    for combinator in ["anyOf", "oneOf"] {
        if let Some(Value::Array(branches)) = map.get_mut(combinator) {
            if !null_branch(branches) {
                branches.push(json!({"type": "null"}));
            }
            return;
        }
    }
    match map.get_mut("type") {
        Some(Value::Array(types)) if !types.iter().any(|t| t == "null") => {
            types.push(Value::String("null".into()));
        }
        Some(Value::String(t)) if t != "null" => {
            let t = t.clone();
            map.insert("type".into(), json!([t, "null"]));
        }
        _ => {}
    }
}

/// StackStorm's `assign_default_values`: when the schema describes an object and the instance is
/// one, every property with a `default` that is missing or null gets the default; nested objects
/// (and arrays of objects) that are present get theirs too. Absent nested objects are not created.
pub(super) fn assign_defaults(instance: &mut Value, schema: &Value) {
    if schema.get("type").and_then(Value::as_str) == Some("object") && instance.is_object() {
        assign(instance, schema);
    }
}

fn assign(instance: &mut Value, schema: &Value) {
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        return;
    };
    for (name, prop) in props {
        if let Some(default) = prop.get("default") {
            match instance {
                Value::Object(map) => fill(map, name, default),
                Value::Array(items) => {
                    for item in items.iter_mut() {
                        if let Value::Object(map) = item {
                            fill(map, name, default);
                        }
                    }
                }
                _ => return,
            }
        }
        let Some(child) = instance.as_object_mut().and_then(|m| m.get_mut(name)) else {
            continue;
        };
        if child.is_null() {
            continue;
        }
        let ty = prop.get("type");
        if let Some(items) = prop.get("items").filter(|i| has_properties(i)) {
            if type_includes(ty, "array") {
                assign(child, items);
            }
        }
        if type_includes(ty, "object") && has_properties(prop) {
            assign(child, prop);
        }
    }
}

fn fill(map: &mut JsonMap, name: &str, default: &Value) {
    if map.get(name).is_none_or(Value::is_null) {
        map.insert(name.to_string(), default.clone());
    }
}

fn has_properties(schema: &Value) -> bool {
    schema
        .get("properties")
        .and_then(Value::as_object)
        .is_some_and(|p| !p.is_empty())
}

fn type_includes(ty: Option<&Value>, wanted: &str) -> bool {
    match ty {
        Some(Value::String(t)) => t == wanted,
        Some(Value::Array(types)) => types.iter().any(|t| t == wanted),
        _ => false,
    }
}
