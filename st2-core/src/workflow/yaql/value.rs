//! The value rules every YAQL operator and function shares, over JSON values: numbers,
//! Python truthiness, equality (`1 = 1.0`), YAQL's ordering (`null` first), `str()` and
//! Python's `repr`, and iterating a collection argument. No functions of the language here.

use std::borrow::Cow;
use std::cmp::Ordering;

use serde_json::Value;

use super::YaqlError;

/// The key marking a compiled-regex value made by `regex(pattern)`.
pub(crate) const REGEX_KEY: &str = "__yaql_regex__";

/// A number operand.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Num {
    I(i64),
    F(f64),
}

impl Num {
    pub(crate) fn as_f64(self) -> f64 {
        match self {
            Num::I(i) => i as f64,
            Num::F(f) => f,
        }
    }
}

/// The number in `v` (booleans are not numbers here, as in YAQL's arithmetic).
pub(crate) fn num(v: &Value) -> Option<Num> {
    match v {
        Value::Number(n) => Some(match n.as_i64() {
            Some(i) => Num::I(i),
            None => Num::F(n.as_f64().unwrap_or(f64::NAN)),
        }),
        _ => None,
    }
}

/// A float as a JSON value (non-finite results become `null`, JSON has no NaN).
pub(crate) fn float(f: f64) -> Value {
    serde_json::Number::from_f64(f)
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

/// Python truthiness: `null`, `false`, `0`, `""`, `[]` and `{}` are false.
pub(crate) use crate::pyfmt::truthy;

/// A short name of the value's type, for error messages.
pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(m) if m.len() == 1 && m.contains_key(REGEX_KEY) => "regex",
        Value::Object(_) => "dict",
    }
}

/// Python equality: `1 = 1.0`, `true = 1`, lists and dicts element-wise.
pub(crate) fn equals(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| equals(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| equals(v, w)))
        }
        (Value::Bool(x), Value::Number(_)) => {
            num(b).is_some_and(|n| n.as_f64() == f64::from(u8::from(*x)))
        }
        (Value::Number(_), Value::Bool(_)) => equals(b, a),
        (Value::Number(_), Value::Number(_)) => match (num(a), num(b)) {
            (Some(Num::I(x)), Some(Num::I(y))) => x == y,
            (Some(x), Some(y)) => x.as_f64() == y.as_f64(),
            _ => false,
        },
        _ => a == b,
    }
}

/// YAQL ordering: numbers with numbers, strings with strings, `null` before everything;
/// `None` when the two cannot be compared (booleans, lists, mixed types).
pub(crate) fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Null, Value::Null) => Some(Ordering::Equal),
        (Value::Null, _) => Some(Ordering::Less),
        (_, Value::Null) => Some(Ordering::Greater),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        (Value::Number(_), Value::Number(_)) => match (num(a)?, num(b)?) {
            (Num::I(x), Num::I(y)) => Some(x.cmp(&y)),
            (x, y) => x.as_f64().partial_cmp(&y.as_f64()),
        },
        _ => None,
    }
}

/// A value used as a dict key (JSON keys are strings): strings as they are, others as `str()`.
pub(crate) fn key_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => to_str(other),
    }
}

/// YAQL's `str()`: `null`/`true`/`false` in lower case, floats as Python prints them, lists
/// and dicts as Python's `repr` of the tuple or dict YAQL holds.
pub(crate) fn to_str(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::String(s) => s.clone(),
        other => repr(other),
    }
}

/// Python's `repr` (and `str.format` of a non-string): `None`, `True`, `'text'`, `(1, 2)`.
pub(crate) fn repr(v: &Value) -> String {
    match v {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(n) => match n.as_i64() {
            Some(i) => i.to_string(),
            None => match n.as_u64() {
                Some(u) => u.to_string(),
                None => py_float(n.as_f64().unwrap_or(f64::NAN)),
            },
        },
        Value::String(s) => {
            let q = if s.contains('\'') && !s.contains('"') {
                '"'
            } else {
                '\''
            };
            let mut out = String::with_capacity(s.len() + 2);
            out.push(q);
            for c in s.chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    '\t' => out.push_str("\\t"),
                    '\r' => out.push_str("\\r"),
                    c if c == q => {
                        out.push('\\');
                        out.push(c);
                    }
                    c => out.push(c),
                }
            }
            out.push(q);
            out
        }
        Value::Array(a) => {
            let inner: Vec<String> = a.iter().map(repr).collect();
            if inner.len() == 1 {
                format!("({},)", inner[0])
            } else {
                format!("({})", inner.join(", "))
            }
        }
        Value::Object(m) => {
            let inner: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{}: {}", repr(&Value::String(k.clone())), repr(v)))
                .collect();
            format!("{{{}}}", inner.join(", "))
        }
    }
}

/// A float as Python's `repr` prints it (`1.0`, `0.1`, `1e+20`, `1e-05`).
fn py_float(f: f64) -> String {
    if f.is_nan() {
        return "nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf".into() } else { "-inf".into() };
    }
    let a = f.abs();
    if a != 0.0 && !(1e-4..1e16).contains(&a) {
        let s = format!("{f:e}");
        let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
        let (sign, digits) = match exp.strip_prefix('-') {
            Some(d) => ('-', d),
            None => ('+', exp),
        };
        return format!("{mant}e{sign}{digits:0>2}");
    }
    let s = format!("{f}");
    if s.contains('.') {
        s
    } else {
        format!("{s}.0")
    }
}

/// The items of a collection argument: a list's elements, a dict's keys; others are an error.
pub(crate) fn iterate<'v>(function: &str, v: &'v Value) -> Result<Cow<'v, [Value]>, YaqlError> {
    match v {
        Value::Array(a) => Ok(Cow::Borrowed(a.as_slice())),
        Value::Object(m) if !m.contains_key(REGEX_KEY) => Ok(Cow::Owned(
            m.keys().map(|k| Value::String(k.clone())).collect(),
        )),
        other => Err(YaqlError::func(
            function,
            format!("expects a collection, got {}", type_name(other)),
        )),
    }
}

/// Whether `v` is a regex made by `regex(pattern)`.
pub(crate) fn is_regex(v: &Value) -> bool {
    matches!(v, Value::Object(m) if m.len() == 1 && m.contains_key(REGEX_KEY))
}
