//! Python text forms of JSON-decoded values, shared by the rules engine, the template engine and
//! the runners: Python's type names, `repr(float)`, `repr(str)` and `str()` / `repr()` of the
//! values `json.loads` yields (`None`, `bool`, `int`, `float`, `str`, `list`, `dict`).
//!
//! Pure functions over [`serde_json::Value`]; nothing here knows about rules, templates or
//! runners.

use std::fmt;

use serde_json::Value as Json;

/// Python's type name of a JSON-decoded value (`NoneType`, `bool`, `int`, `float`, `str`,
/// `list`, `dict`).
pub fn type_name(value: &Json) -> &'static str {
    match value {
        Json::Null => "NoneType",
        Json::Bool(_) => "bool",
        Json::Number(n) if n.is_f64() => "float",
        Json::Number(_) => "int",
        Json::String(_) => "str",
        Json::Array(_) => "list",
        Json::Object(_) => "dict",
    }
}

/// Python's `repr(float)` (`float_repr_style = 'short'`): the shortest round-trip digits, `1.0`
/// for integral values, fixed notation for `1e-4 <= |f| < 1e16`, otherwise exponent form
/// (`1e+16`, `1.5e-05`); `inf`, `-inf`, `nan`, `-0.0`.
pub fn float_repr(f: f64) -> String {
    if f.is_nan() {
        return "nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if f == 0.0 {
        return if f.is_sign_negative() {
            "-0.0".into()
        } else {
            "0.0".into()
        };
    }
    // Rust's `{:e}` gives the shortest round-trip digits: "-1.2345e-7".
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    if !(-4..16).contains(&exp) {
        let (first, rest) = digits.split_at(1.min(digits.len()));
        let frac = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let esign = if exp < 0 { '-' } else { '+' };
        return format!("{sign}{first}{frac}e{esign}{:02}", exp.unsigned_abs());
    }
    let point = exp + 1; // digits before the decimal point
    if point <= 0 {
        let zeros = "0".repeat(point.unsigned_abs() as usize);
        return format!("{sign}0.{zeros}{digits}");
    }
    let point = point.unsigned_abs() as usize;
    if digits.len() <= point {
        let zeros = "0".repeat(point - digits.len());
        format!("{sign}{digits}{zeros}.0")
    } else {
        let (int, frac) = digits.split_at(point);
        format!("{sign}{int}.{frac}")
    }
}

/// Which control characters `repr(str)` writes as `\xNN` (besides `\n`, `\r`, `\t`, which are
/// always `\n`, `\r`, `\t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlEscapes {
    /// Every control character, C0 (`U+0000`–`U+001F`), DEL and C1 (`U+0080`–`U+009F`), as
    /// CPython does. Used by the template engine and the runners.
    All,
    /// Only C0 and DEL; C1 characters are written as they are. The rules engine's historical
    /// behaviour, kept as it was when the copies were merged.
    C0AndDel,
}

impl ControlEscapes {
    fn escapes(self, c: char) -> bool {
        match self {
            ControlEscapes::All => c.is_control(),
            ControlEscapes::C0AndDel => (c as u32) < 0x20 || c as u32 == 0x7f,
        }
    }
}

/// Writes Python's `repr()` of a string: single quotes unless the text has a single quote and
/// no double quote, backslash escapes, control characters as chosen by `escapes`.
pub fn write_repr_str(out: &mut impl fmt::Write, s: &str, escapes: ControlEscapes) -> fmt::Result {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    out.write_char(quote)?;
    for c in s.chars() {
        match c {
            '\\' => out.write_str("\\\\")?,
            '\n' => out.write_str("\\n")?,
            '\r' => out.write_str("\\r")?,
            '\t' => out.write_str("\\t")?,
            c if c == quote => {
                out.write_char('\\')?;
                out.write_char(c)?;
            }
            // Control characters are all below U+0100, so two hex digits suffice.
            c if escapes.escapes(c) => write!(out, "\\x{:02x}", c as u32)?,
            c => out.write_char(c)?,
        }
    }
    out.write_char(quote)
}

/// Python's `repr()` of a string as a `String` (see [`write_repr_str`]).
pub fn repr_str(s: &str, escapes: ControlEscapes) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    // Writing into a String cannot fail.
    let _ = write_repr_str(&mut out, s, escapes);
    out
}

/// Python's `repr()` of a JSON-decoded value (`None`, `True`, `'a'`, `[1, 'a']`, `{'k': 1}`):
/// what `str()` shows inside containers.
pub fn repr(value: &Json, escapes: ControlEscapes) -> String {
    match value {
        Json::String(s) => repr_str(s, escapes),
        other => str(other, escapes),
    }
}

/// Python's `str()` of a JSON-decoded value: strings as they are, everything else as `repr()`
/// (`['a', 'b']`, `{'k': 1}`, `True`, `1e+20`).
pub fn str(value: &Json, escapes: ControlEscapes) -> String {
    match value {
        Json::Null => "None".into(),
        Json::Bool(true) => "True".into(),
        Json::Bool(false) => "False".into(),
        Json::Number(n) if n.is_f64() => float_repr(n.as_f64().unwrap_or(f64::NAN)),
        Json::Number(n) => n.to_string(),
        Json::String(s) => s.clone(),
        Json::Array(items) => {
            let inner: Vec<String> = items.iter().map(|v| repr(v, escapes)).collect();
            format!("[{}]", inner.join(", "))
        }
        Json::Object(map) => {
            let inner: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{}: {}", repr_str(k, escapes), repr(v, escapes)))
                .collect();
            format!("{{{}}}", inner.join(", "))
        }
    }
}

/// Python truthiness of a JSON value: `null`, `false`, `0`, `""`, `[]` and `{}` are false,
/// everything else true (rules, templates, runners and workflow conditions share it).
pub fn truthy(v: &Json) -> bool {
    match v {
        Json::Null => false,
        Json::Bool(b) => *b,
        Json::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Json::String(s) => !s.is_empty(),
        Json::Array(a) => !a.is_empty(),
        Json::Object(m) => !m.is_empty(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn float_repr_matches_python() {
        let table = [
            (1.0, "1.0"),
            (0.5, "0.5"),
            (1e16, "1e+16"),
            (1.5e-5, "1.5e-05"),
            (0.0001, "0.0001"),
            (123456.789, "123456.789"),
            (-2.5, "-2.5"),
            (1e22, "1e+22"),
            (-2.5e-7, "-2.5e-07"),
            (1e15, "1000000000000000.0"),
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
            (f64::NAN, "nan"),
        ];
        for (f, want) in table {
            assert_eq!(float_repr(f), want, "{f}");
        }
    }

    #[test]
    fn type_names() {
        let table = [
            (json!(null), "NoneType"),
            (json!(false), "bool"),
            (json!(1), "int"),
            (json!(1.0), "float"),
            (json!("a"), "str"),
            (json!([]), "list"),
            (json!({}), "dict"),
        ];
        for (v, want) in table {
            assert_eq!(type_name(&v), want, "{v}");
        }
    }

    #[test]
    fn python_str_of_values() {
        let cases = [
            (json!(null), "None"),
            (json!(true), "True"),
            (json!(5), "5"),
            (json!(-3), "-3"),
            (json!(1.5), "1.5"),
            (json!(5.0), "5.0"),
            (json!(0.1), "0.1"),
            (json!(0.0001), "0.0001"),
            (json!(0.00001), "1e-05"),
            (json!(1e16), "1e+16"),
            (json!(1e15), "1000000000000000.0"),
            (json!(123456.789), "123456.789"),
            (json!(-2.5e-7), "-2.5e-07"),
            (json!(123), "123"),
            (json!("x y"), "x y"),
            (json!(["a", 1, true, null]), "['a', 1, True, None]"),
            (json!([1, "a", null]), "[1, 'a', None]"),
            (json!({"k": "v", "n": [1.5]}), "{'k': 'v', 'n': [1.5]}"),
            (json!({"a": "it's"}), "{'a': \"it's\"}"),
            (
                json!(["it's", "a\"b", "x\ny"]),
                "[\"it's\", 'a\"b', 'x\\ny']",
            ),
        ];
        for (v, want) in cases {
            for escapes in [ControlEscapes::All, ControlEscapes::C0AndDel] {
                assert_eq!(str(&v, escapes), want, "{v} {escapes:?}");
            }
        }
    }

    #[test]
    fn string_repr_control_escapes() {
        let all = ControlEscapes::All;
        let c0 = ControlEscapes::C0AndDel;
        assert_eq!(repr_str("tab\there", all), "'tab\\there'");
        assert_eq!(repr_str("a\\b", all), "'a\\\\b'");
        assert_eq!(repr_str("\u{1}\u{7f}", all), "'\\x01\\x7f'");
        assert_eq!(repr_str("\u{1}\u{7f}", c0), "'\\x01\\x7f'");
        assert_eq!(repr_str("\u{85}", all), "'\\x85'");
        assert_eq!(repr_str("\u{85}", c0), "'\u{85}'");
        assert_eq!(repr_str("é", all), "'é'");
        assert_eq!(repr(&json!("it's \"x\""), all), "'it\\'s \"x\"'");
    }
}
