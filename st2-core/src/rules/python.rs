//! Python value semantics over JSON values, as StackStorm's operators see them after
//! `json.loads`: `None`, `bool`, `int`, `float`, `str`, `list`, `dict`.
//!
//! Owns equality (`==`: `1 == 1.0`, `True == 1`, no str/number coercion), ordering (`<`, `>`:
//! numbers together, strings by code point, lists lexicographically, anything else a
//! `TypeError`), membership (`in`), `str.lower()`, `float()`, `iter()` and the exact messages
//! of the exceptions Python raises; `str()`, `repr()` and type names come from
//! [`crate::pyfmt`]. Pure functions; nothing here knows about rules.

use std::cmp::Ordering;

use serde_json::Value as Json;

use super::operators::OperatorError;
use crate::pyfmt::{repr_str, type_name, ControlEscapes};

/// A Python number (`bool` is an `int`).
#[derive(Debug, Clone, Copy)]
enum Num {
    Int(i128),
    Float(f64),
}

fn as_num(value: &Json) -> Option<Num> {
    match value {
        Json::Bool(b) => Some(Num::Int(i128::from(*b))),
        Json::Number(n) => Some(if let Some(i) = n.as_i64() {
            Num::Int(i128::from(i))
        } else if let Some(u) = n.as_u64() {
            Num::Int(i128::from(u))
        } else {
            Num::Float(n.as_f64().unwrap_or(f64::NAN))
        }),
        _ => None,
    }
}

/// Exact comparison of an int with a float, like CPython (no rounding of the int).
fn cmp_int_float(i: i128, f: f64) -> Option<Ordering> {
    if f.is_nan() {
        return None;
    }
    // 2^127: beyond it every i128 is smaller in magnitude.
    const LIMIT: f64 = 1.701_411_834_604_692_3e38;
    if f >= LIMIT {
        return Some(Ordering::Less);
    }
    if f <= -LIMIT {
        return Some(Ordering::Greater);
    }
    let whole = f.trunc();
    // In range and integral, so the cast is exact.
    let whole_int = whole as i128;
    match i.cmp(&whole_int) {
        Ordering::Equal => 0.0_f64.partial_cmp(&(f - whole)),
        other => Some(other),
    }
}

fn cmp_num(a: Num, b: Num) -> Option<Ordering> {
    match (a, b) {
        (Num::Int(x), Num::Int(y)) => Some(x.cmp(&y)),
        (Num::Float(x), Num::Float(y)) => x.partial_cmp(&y),
        (Num::Int(x), Num::Float(y)) => cmp_int_float(x, y),
        (Num::Float(x), Num::Int(y)) => cmp_int_float(y, x).map(Ordering::reverse),
    }
}

/// Python `a == b`: numbers (and bools) compare by value across int/float/bool, containers
/// element-wise, and values of different kinds are simply unequal (`"1" != 1`).
pub fn py_eq(a: &Json, b: &Json) -> bool {
    if let (Some(x), Some(y)) = (as_num(a), as_num(b)) {
        return cmp_num(x, y) == Some(Ordering::Equal);
    }
    match (a, b) {
        (Json::Null, Json::Null) => true,
        (Json::String(x), Json::String(y)) => x == y,
        (Json::Array(x), Json::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| py_eq(p, q))
        }
        (Json::Object(x), Json::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| py_eq(v, w)))
        }
        _ => false,
    }
}

/// An ordering comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    /// `<`
    Lt,
    /// `>`
    Gt,
}

impl CmpOp {
    fn symbol(self) -> &'static str {
        match self {
            CmpOp::Lt => "<",
            CmpOp::Gt => ">",
        }
    }

    fn holds(self, ordering: Option<Ordering>) -> bool {
        match self {
            CmpOp::Lt => ordering == Some(Ordering::Less),
            CmpOp::Gt => ordering == Some(Ordering::Greater),
        }
    }
}

/// Python `a < b` / `a > b`: numbers compare with numbers, strings with strings (by code
/// point), lists lexicographically (the first unequal elements decide, else the lengths);
/// anything else raises `TypeError: '<' not supported between instances of 'A' and 'B'`.
pub fn py_compare(a: &Json, b: &Json, op: CmpOp) -> Result<bool, OperatorError> {
    if let (Some(x), Some(y)) = (as_num(a), as_num(b)) {
        return Ok(op.holds(cmp_num(x, y)));
    }
    match (a, b) {
        (Json::String(x), Json::String(y)) => Ok(op.holds(Some(x.as_str().cmp(y.as_str())))),
        (Json::Array(x), Json::Array(y)) => {
            for (p, q) in x.iter().zip(y) {
                if !py_eq(p, q) {
                    return py_compare(p, q, op);
                }
            }
            Ok(op.holds(Some(x.len().cmp(&y.len()))))
        }
        _ => Err(OperatorError::Type(format!(
            "'{}' not supported between instances of '{}' and '{}'",
            op.symbol(),
            type_name(a),
            type_name(b)
        ))),
    }
}

/// Python `item in container`: substring for strings (the item must be a string), membership
/// (with [`py_eq`]) for lists, key membership for dicts (lists and dicts are unhashable);
/// `TypeError` for anything else.
pub fn py_in(item: &Json, container: &Json) -> Result<bool, OperatorError> {
    match container {
        Json::String(haystack) => match item {
            Json::String(needle) => Ok(haystack.contains(needle.as_str())),
            other => Err(OperatorError::Type(format!(
                "'in <string>' requires string as left operand, not {}",
                type_name(other)
            ))),
        },
        Json::Array(items) => Ok(items.iter().any(|x| py_eq(item, x))),
        Json::Object(map) => match item {
            Json::String(key) => Ok(map.contains_key(key)),
            Json::Array(_) | Json::Object(_) => Err(OperatorError::Type(format!(
                "unhashable type: '{}'",
                type_name(item)
            ))),
            // JSON object keys are strings: no number, bool or None equals one.
            _ => Ok(false),
        },
        other => Err(OperatorError::Type(format!(
            "argument of type '{}' is not iterable",
            type_name(other)
        ))),
    }
}

/// Python attribute access of a `str` method on a value that may not be a string:
/// `AttributeError: 'NoneType' object has no attribute 'lower'`.
pub fn str_method<'a>(value: &'a Json, method: &str) -> Result<&'a str, OperatorError> {
    match value {
        Json::String(s) => Ok(s),
        other => Err(OperatorError::Attribute(format!(
            "'{}' object has no attribute '{method}'",
            type_name(other)
        ))),
    }
}

/// Python `value.lower()`.
pub fn py_lower(value: &Json) -> Result<String, OperatorError> {
    str_method(value, "lower").map(str::to_lowercase)
}

/// Python `float(value)`.
pub fn py_float(value: &Json) -> Result<f64, OperatorError> {
    match value {
        Json::Bool(b) => Ok(if *b { 1.0 } else { 0.0 }),
        Json::Number(n) => Ok(n.as_f64().unwrap_or(f64::NAN)),
        Json::String(s) => parse_float(s).ok_or_else(|| {
            OperatorError::Value(format!(
                "could not convert string to float: {}",
                repr_str(s, ControlEscapes::C0AndDel)
            ))
        }),
        other => Err(OperatorError::Type(format!(
            "float() argument must be a string or a real number, not '{}'",
            type_name(other)
        ))),
    }
}

/// Python's `float(str)` grammar: surrounding whitespace, sign, `inf`/`infinity`/`nan` in any
/// case, digits with single underscores between them, a fraction and an exponent.
fn parse_float(text: &str) -> Option<f64> {
    let t = text.trim();
    let (sign, body) = match t.as_bytes().first() {
        Some(b'-') => (-1.0, &t[1..]),
        Some(b'+') => (1.0, &t[1..]),
        _ => (1.0, t),
    };
    let lower = body.to_ascii_lowercase();
    if lower == "inf" || lower == "infinity" {
        return Some(sign * f64::INFINITY);
    }
    if lower == "nan" {
        return Some(f64::NAN);
    }
    // Underscores are allowed only between digits.
    let bytes = body.as_bytes();
    let mut cleaned = String::with_capacity(body.len());
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'_' {
            let prev = i.checked_sub(1).and_then(|j| bytes.get(j));
            let next = bytes.get(i + 1);
            if !(prev.is_some_and(u8::is_ascii_digit) && next.is_some_and(u8::is_ascii_digit)) {
                return None;
            }
            continue;
        }
        if !(b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-')) {
            return None;
        }
        cleaned.push(char::from(b));
    }
    if !cleaned.bytes().any(|b| b.is_ascii_digit()) {
        return None;
    }
    cleaned.parse::<f64>().ok().map(|v| sign * v)
}

/// Python `iter(value)` for the `search` operator: the items of a list, the characters of a
/// string (each a one-character string); `TypeError` otherwise.
pub fn py_iter(value: &Json) -> Result<Vec<std::borrow::Cow<'_, Json>>, OperatorError> {
    use std::borrow::Cow;
    match value {
        Json::Array(items) => Ok(items.iter().map(Cow::Borrowed).collect()),
        Json::String(s) => Ok(s
            .chars()
            .map(|c| Cow::Owned(Json::String(c.to_string())))
            .collect()),
        Json::Object(map) => Ok(map
            .keys()
            .map(|k| Cow::Owned(Json::String(k.clone())))
            .collect()),
        other => Err(OperatorError::Type(format!(
            "'{}' object is not iterable",
            type_name(other)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn equality_follows_python() {
        let cases = [
            (json!(1), json!(1.0), true),
            (json!(true), json!(1), true),
            (json!(false), json!(0.0), true),
            (json!("1"), json!(1), false),
            (json!(null), json!(null), true),
            (json!(null), json!(0), false),
            (json!([1, true]), json!([1.0, 1]), true),
            (json!({"a": 1, "b": 2}), json!({"b": 2.0, "a": true}), true),
            (json!({"a": 1}), json!({"a": 1, "b": 2}), false),
            (
                json!(9007199254740993_i64),
                json!(9007199254740992.0),
                false,
            ),
            (json!(u64::MAX), json!(u64::MAX), true),
        ];
        for (a, b, want) in cases {
            assert_eq!(py_eq(&a, &b), want, "{a} == {b}");
        }
    }

    #[test]
    fn ordering_follows_python() {
        let ok = [
            (json!(1), json!(2), CmpOp::Lt, true),
            (json!(1.5), json!(1), CmpOp::Gt, true),
            (json!(true), json!(2), CmpOp::Lt, true),
            (json!(-1.5), json!(-1), CmpOp::Lt, true),
            (json!("B"), json!("a"), CmpOp::Lt, true),
            (json!("é"), json!("z"), CmpOp::Gt, true),
            (json!([1, "a"]), json!([1, "b"]), CmpOp::Lt, true),
            (json!([1]), json!([1, 0]), CmpOp::Lt, true),
            (json!([]), json!([]), CmpOp::Lt, false),
        ];
        for (a, b, op, want) in ok {
            assert_eq!(py_compare(&a, &b, op).ok(), Some(want), "{a} {op:?} {b}");
        }
        let err = |a: Json, b: Json, op| py_compare(&a, &b, op).expect_err("an error").to_string();
        assert_eq!(
            err(json!("a"), json!(1), CmpOp::Gt),
            "'>' not supported between instances of 'str' and 'int'"
        );
        assert_eq!(
            err(json!(null), json!(1), CmpOp::Lt),
            "'<' not supported between instances of 'NoneType' and 'int'"
        );
        assert_eq!(
            err(json!({}), json!({}), CmpOp::Lt),
            "'<' not supported between instances of 'dict' and 'dict'"
        );
        assert_eq!(
            err(json!([1, "a"]), json!([1, 2]), CmpOp::Lt),
            "'<' not supported between instances of 'str' and 'int'"
        );
    }

    #[test]
    fn membership_follows_python() {
        assert_eq!(py_in(&json!("b"), &json!("abc")).ok(), Some(true));
        assert_eq!(py_in(&json!(""), &json!("abc")).ok(), Some(true));
        assert_eq!(py_in(&json!(1.0), &json!([1, 2])).ok(), Some(true));
        assert_eq!(py_in(&json!(null), &json!([null])).ok(), Some(true));
        assert_eq!(py_in(&json!("k"), &json!({"k": 0})).ok(), Some(true));
        assert_eq!(py_in(&json!(1), &json!({"1": 0})).ok(), Some(false));
        let err = |a: Json, b: Json| py_in(&a, &b).expect_err("an error").to_string();
        assert_eq!(
            err(json!(5), json!("abc")),
            "'in <string>' requires string as left operand, not int"
        );
        assert_eq!(
            err(json!("a"), json!(null)),
            "argument of type 'NoneType' is not iterable"
        );
        assert_eq!(err(json!([1]), json!({"a": 1})), "unhashable type: 'list'");
    }

    #[test]
    fn float_parsing() {
        assert_eq!(py_float(&json!(" 60 ")).ok(), Some(60.0));
        assert_eq!(py_float(&json!("1_000.5")).ok(), Some(1000.5));
        assert_eq!(py_float(&json!("-Infinity")).ok(), Some(f64::NEG_INFINITY));
        assert_eq!(py_float(&json!(true)).ok(), Some(1.0));
        assert_eq!(
            py_float(&json!("abc")).expect_err("an error").to_string(),
            "could not convert string to float: 'abc'"
        );
        assert_eq!(
            py_float(&json!([1])).expect_err("an error").to_string(),
            "float() argument must be a string or a real number, not 'list'"
        );
        assert!(py_float(&json!("1__0")).is_err());
        assert!(py_float(&json!("_1")).is_err());
    }
}
