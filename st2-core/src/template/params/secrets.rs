//! Masking secret parameter values for API responses and logs (StackStorm's
//! `util/secrets.py`).

use serde_json::Value as Json;

use crate::model::{JsonMap, ParamMap, ParamSpec};

/// What secret parameter values are replaced with (StackStorm's `MASKED_ATTRIBUTE_VALUE`).
pub const MASKED_ATTRIBUTE_VALUE: &str = "********";

/// A copy of `params` with secret values replaced by [`MASKED_ATTRIBUTE_VALUE`]: parameters
/// whose spec is `secret`, and `secret` properties nested in object (`properties`) and array
/// (`items`) parameters.
pub fn mask_secrets(params: &JsonMap, specs: &ParamMap) -> JsonMap {
    params
        .iter()
        .map(|(name, value)| {
            let masked = match specs.get(name) {
                Some(spec) if spec.secret => Json::String(MASKED_ATTRIBUTE_VALUE.into()),
                Some(spec) => mask_nested(value, &spec_schema(spec)),
                None => value.clone(),
            };
            (name.clone(), masked)
        })
        .collect()
}

fn spec_schema(spec: &ParamSpec) -> Json {
    serde_json::to_value(spec).unwrap_or(Json::Null)
}

/// Masks secret parts of `value` described by a (sub)schema.
fn mask_nested(value: &Json, schema: &Json) -> Json {
    if schema.get("secret") == Some(&Json::Bool(true)) {
        return Json::String(MASKED_ATTRIBUTE_VALUE.into());
    }
    match value {
        Json::Object(map) => {
            let props = schema.get("properties").and_then(Json::as_object);
            Json::Object(
                map.iter()
                    .map(|(k, v)| {
                        let masked = match props.and_then(|p| p.get(k)) {
                            Some(sub) => mask_nested(v, sub),
                            None => v.clone(),
                        };
                        (k.clone(), masked)
                    })
                    .collect(),
            )
        }
        Json::Array(items) => match schema.get("items") {
            Some(sub) if sub.is_object() => {
                Json::Array(items.iter().map(|v| mask_nested(v, sub)).collect())
            }
            _ => value.clone(),
        },
        other => other.clone(),
    }
}
