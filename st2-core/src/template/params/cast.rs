//! StackStorm's parameter casts (`util/casts.py`): rendered text (or a given value) to the
//! declared JSON type, with Python's `int()`, `float()` and `ast.literal_eval` semantics.

use serde_json::{json, Value as Json};

use crate::model::ParamType;
use crate::pyfmt::{self, ControlEscapes};
use crate::template::{python, NONE_MAGIC_VALUE};

/// JSON-schema name of a type.
pub(super) fn type_name(t: ParamType) -> &'static str {
    match t {
        ParamType::String => "string",
        ParamType::Integer => "integer",
        ParamType::Number => "number",
        ParamType::Boolean => "boolean",
        ParamType::Array => "array",
        ParamType::Object => "object",
        ParamType::Null => "null",
    }
}

/// StackStorm's casters (`util/casts.py`), applied to a rendered or given value. Null and the
/// `use_none` marker give null for every type.
pub fn cast_value(value: Json, param_type: Option<ParamType>) -> Result<Json, String> {
    if value.is_null() || value.as_str() == Some(NONE_MAGIC_VALUE) {
        return Ok(Json::Null);
    }
    let Some(param_type) = param_type else {
        return Ok(value);
    };
    match (param_type, value) {
        (ParamType::Null, v) => Ok(v),
        (ParamType::String, v @ Json::String(_)) => Ok(v),
        (ParamType::String, v) => Err(format!(
            "Value \"{}\" must either be a string or None. Got \"{}\".",
            pyfmt::str(&v, ControlEscapes::All),
            pyfmt::type_name(&v)
        )),
        (ParamType::Integer, Json::String(s)) => {
            python::parse_int(&s).map(Json::from).ok_or_else(|| {
                format!(
                    "invalid literal for int() with base 10: {}",
                    pyfmt::repr_str(&s, ControlEscapes::All)
                )
            })
        }
        (ParamType::Integer, Json::Bool(b)) => Ok(Json::from(i64::from(b))),
        (ParamType::Integer, Json::Number(n)) => match n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.is_finite())
                .map(|f| f.trunc() as i64)
        }) {
            Some(i) if n.is_f64() => Ok(Json::from(i)),
            Some(_) => Ok(Json::Number(n)),
            None => Err(format!("cannot convert {n} to integer")),
        },
        (ParamType::Number, Json::String(s)) => python::parse_float(&s)
            .and_then(serde_json::Number::from_f64)
            .map(Json::Number)
            .ok_or_else(|| {
                format!(
                    "could not convert string to float: {}",
                    pyfmt::repr_str(&s, ControlEscapes::All)
                )
            }),
        (ParamType::Number, Json::Bool(b)) => Ok(json!(if b { 1.0 } else { 0.0 })),
        (ParamType::Number, Json::Number(n)) => n
            .as_f64()
            .and_then(serde_json::Number::from_f64)
            .map(Json::Number)
            .ok_or_else(|| format!("cannot convert {n} to float")),
        (ParamType::Integer | ParamType::Number, v) => Err(format!(
            "argument must be a string or a number, not '{}'",
            pyfmt::type_name(&v)
        )),
        (ParamType::Boolean, Json::String(s)) => {
            python::literal_eval(&capitalize(&s)).map_err(|e| format!("{e} ({s:?})"))
        }
        (ParamType::Boolean, v) => Ok(v),
        (ParamType::Array | ParamType::Object, Json::String(s)) => {
            match serde_json::from_str::<Json>(&s) {
                Ok(v) => Ok(v),
                Err(_) => python::literal_eval(&s).map_err(|e| format!("{e} ({s:?})")),
            }
        }
        (ParamType::Array | ParamType::Object, v) => Ok(v),
    }
}

/// Python's `str.capitalize()`.
fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first
            .to_uppercase()
            .chain(chars.flat_map(char::to_lowercase))
            .collect(),
        None => String::new(),
    }
}

/// Equality the way Python compares JSON-ish values (`1 == 1.0`).
pub(super) fn same_value(a: &Json, b: &Json) -> bool {
    match (a, b) {
        (Json::Number(x), Json::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}
