//! Python-compatible text forms, so rendered output matches what StackStorm's Jinja (CPython)
//! produces: `str()` / `repr()` of values, `json.dumps`, and the parsers StackStorm's parameter
//! casts use (`int()`, `float()`, `ast.literal_eval`). `float.__repr__` and `repr(str)` come
//! from [`crate::pyfmt`].
//!
//! Pure functions over [`minijinja::Value`] and [`serde_json::Value`]; no template logic here.

use std::fmt::{self, Write as _};

use minijinja::value::{Value as MjValue, ValueKind};
use serde_json::{Number, Value as Json};

use crate::model::JsonMap;
use crate::pyfmt::{float_repr, write_repr_str, ControlEscapes};

/// Writes Python's `str(value)`: strings as they are, everything else as `repr`.
pub(crate) fn write_str(out: &mut impl fmt::Write, value: &MjValue) -> fmt::Result {
    match value.as_str() {
        Some(s) if value.kind() == ValueKind::String => out.write_str(s),
        _ => write_repr(out, value),
    }
}

/// Python's `str(value)` as a `String`.
pub(crate) fn to_str(value: &MjValue) -> String {
    let mut s = String::new();
    // Writing into a String cannot fail.
    let _ = write_str(&mut s, value);
    s
}

/// Writes Python's `repr(value)`: `True`/`False`/`None`, `'quoted'` strings, `[...]` lists and
/// `{'k': v}` dicts. Plain objects (datastore lookups) write their rendered text.
pub(crate) fn write_repr(out: &mut impl fmt::Write, value: &MjValue) -> fmt::Result {
    match value.kind() {
        ValueKind::Undefined => Ok(()),
        ValueKind::None => out.write_str("None"),
        ValueKind::Bool => out.write_str(if value.is_true() { "True" } else { "False" }),
        ValueKind::Number => {
            if value.is_integer() {
                write!(out, "{value}")
            } else {
                match f64::try_from(value.clone()) {
                    Ok(f) => out.write_str(&float_repr(f)),
                    Err(_) => write!(out, "{value}"),
                }
            }
        }
        ValueKind::String => {
            write_repr_str(out, value.as_str().unwrap_or_default(), ControlEscapes::All)
        }
        ValueKind::Bytes => write!(out, "{value}"),
        ValueKind::Seq | ValueKind::Iterable => {
            out.write_char('[')?;
            if let Ok(items) = value.try_iter() {
                for (i, item) in items.enumerate() {
                    if i > 0 {
                        out.write_str(", ")?;
                    }
                    write_repr(out, &item)?;
                }
            }
            out.write_char(']')
        }
        ValueKind::Map => {
            out.write_char('{')?;
            if let Ok(keys) = value.try_iter() {
                for (i, key) in keys.enumerate() {
                    if i > 0 {
                        out.write_str(", ")?;
                    }
                    write_repr(out, &key)?;
                    out.write_str(": ")?;
                    let item = value.get_item(&key).unwrap_or_default();
                    write_repr(out, &item)?;
                }
            }
            out.write_char('}')
        }
        // Plain objects (datastore lookups) and anything newer: their own rendering.
        _ => write!(out, "{value}"),
    }
}

/// Converts a template value to JSON. Map keys become Python `str(key)`, datastore lookups
/// their text, undefined `null`, non-finite floats `null` (they have no JSON form).
pub(crate) fn to_json(value: &MjValue) -> Json {
    match value.kind() {
        ValueKind::Undefined | ValueKind::None => Json::Null,
        ValueKind::Bool => Json::Bool(value.is_true()),
        ValueKind::Number => {
            if value.is_integer() {
                if let Ok(i) = i64::try_from(value.clone()) {
                    return Json::Number(i.into());
                }
                if let Ok(u) = u64::try_from(value.clone()) {
                    return Json::Number(u.into());
                }
            }
            f64::try_from(value.clone())
                .ok()
                .and_then(Number::from_f64)
                .map_or(Json::Null, Json::Number)
        }
        ValueKind::String => Json::String(value.as_str().unwrap_or_default().to_string()),
        ValueKind::Seq | ValueKind::Iterable => Json::Array(
            value
                .try_iter()
                .map(|items| items.map(|v| to_json(&v)).collect())
                .unwrap_or_default(),
        ),
        ValueKind::Map => {
            let mut map = JsonMap::new();
            if let Ok(keys) = value.try_iter() {
                for key in keys {
                    let item = value.get_item(&key).unwrap_or_default();
                    map.insert(to_str(&key), to_json(&item));
                }
            }
            Json::Object(map)
        }
        _ => Json::String(value.to_string()),
    }
}

/// Options of Python's `json.dumps` that StackStorm's filters use. Output is always
/// `ensure_ascii` (non-ASCII escaped as `\uXXXX`), like Python's default.
#[derive(Debug, Clone, Copy)]
pub(crate) struct JsonDumps<'a> {
    /// Pretty-print with this many spaces per level (`None`: one line).
    pub indent: Option<usize>,
    /// Sort object keys.
    pub sort_keys: bool,
    /// Between items.
    pub item_sep: &'a str,
    /// Between a key and its value.
    pub key_sep: &'a str,
}

impl JsonDumps<'_> {
    /// `json.dumps(value)` with no options: `, ` and `: ` separators.
    pub const DEFAULT: JsonDumps<'static> = JsonDumps {
        indent: None,
        sort_keys: false,
        item_sep: ", ",
        key_sep: ": ",
    };

    /// Serialises `value`.
    pub fn dumps(&self, value: &Json) -> String {
        let mut out = String::new();
        self.write(&mut out, value, 0);
        out
    }

    fn newline(&self, out: &mut String, level: usize) {
        if let Some(indent) = self.indent {
            out.push('\n');
            out.extend(std::iter::repeat_n(' ', indent * level));
        }
    }

    fn write(&self, out: &mut String, value: &Json, level: usize) {
        match value {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Number(n) => {
                if n.is_f64() {
                    let f = n.as_f64().unwrap_or_default();
                    out.push_str(&match float_repr(f).as_str() {
                        "nan" => "NaN".to_string(),
                        "inf" => "Infinity".to_string(),
                        "-inf" => "-Infinity".to_string(),
                        other => other.to_string(),
                    });
                } else {
                    out.push_str(&n.to_string());
                }
            }
            Json::String(s) => write_json_string(out, s),
            Json::Array(items) => {
                if items.is_empty() {
                    out.push_str("[]");
                    return;
                }
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(self.item_sep);
                    }
                    self.newline(out, level + 1);
                    self.write(out, item, level + 1);
                }
                self.newline(out, level);
                out.push(']');
            }
            Json::Object(map) => {
                if map.is_empty() {
                    out.push_str("{}");
                    return;
                }
                let mut entries: Vec<(&String, &Json)> = map.iter().collect();
                if self.sort_keys {
                    entries.sort_by(|a, b| a.0.cmp(b.0));
                }
                out.push('{');
                for (i, (key, item)) in entries.into_iter().enumerate() {
                    if i > 0 {
                        out.push_str(self.item_sep);
                    }
                    self.newline(out, level + 1);
                    write_json_string(out, key);
                    out.push_str(self.key_sep);
                    self.write(out, item, level + 1);
                }
                self.newline(out, level);
                out.push('}');
            }
        }
    }
}

/// A JSON string literal the way Python writes it with `ensure_ascii=True`.
fn write_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            c => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    // Writing into a String cannot fail.
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
        }
    }
    out.push('"');
}

/// Python's `int(text)` for base 10: surrounding whitespace, a sign, digits with single `_`
/// between them.
pub(crate) fn parse_int(text: &str) -> Option<i64> {
    let t = text.trim();
    let (neg, digits) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    if !valid_digit_groups(digits) {
        return None;
    }
    let cleaned: String = digits.chars().filter(|c| *c != '_').collect();
    let n: i64 = cleaned.parse().ok()?;
    Some(if neg { -n } else { n })
}

/// Digits separated by single underscores, not starting or ending with one.
fn valid_digit_groups(s: &str) -> bool {
    !s.is_empty()
        && s.split('_')
            .all(|group| !group.is_empty() && group.bytes().all(|b| b.is_ascii_digit()))
}

/// Python's `float(text)`: surrounding whitespace, underscores between digits, `inf`/`nan`
/// spelled any case.
pub(crate) fn parse_float(text: &str) -> Option<f64> {
    let t = text.trim();
    if t.is_empty() || t.starts_with('_') || t.ends_with('_') || t.contains("__") {
        return None;
    }
    let cleaned: String = t.chars().filter(|c| *c != '_').collect();
    let lower = cleaned.to_ascii_lowercase();
    let unsigned = lower.trim_start_matches(['+', '-']);
    if matches!(unsigned, "inf" | "infinity" | "nan") {
        return lower.parse().ok();
    }
    if !cleaned
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
    {
        return None;
    }
    cleaned.parse().ok()
}

/// Python's `ast.literal_eval` for the literals a rendered value can hold: strings, numbers,
/// `True`/`False`/`None`, lists, tuples (as lists), sets (as lists) and dicts.
pub(crate) fn literal_eval(text: &str) -> Result<Json, String> {
    let mut p = LiteralParser {
        src: text.as_bytes(),
        text,
        pos: 0,
    };
    p.skip_ws();
    let value = p.value()?;
    p.skip_ws();
    if p.pos != p.src.len() {
        return Err(format!("invalid syntax at offset {}", p.pos));
    }
    Ok(value)
}

struct LiteralParser<'a> {
    src: &'a [u8],
    text: &'a str,
    pos: usize,
}

impl LiteralParser<'_> {
    fn skip_ws(&mut self) {
        while self.pos < self.src.len() && self.src[self.pos].is_ascii_whitespace() {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.src.get(self.pos).copied()
    }

    fn eat(&mut self, b: u8) -> bool {
        self.skip_ws();
        if self.peek() == Some(b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn value(&mut self) -> Result<Json, String> {
        self.skip_ws();
        match self.peek() {
            None => Err("unexpected end of input".into()),
            Some(b'[') => {
                self.pos += 1;
                self.sequence(b']')
            }
            Some(b'(') => {
                self.pos += 1;
                self.sequence(b')')
            }
            Some(b'{') => {
                self.pos += 1;
                self.dict_or_set()
            }
            Some(b'\'' | b'"') => self.string().map(Json::String),
            Some(b) if b.is_ascii_alphabetic() || b == b'_' => {
                let start = self.pos;
                while self
                    .peek()
                    .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
                {
                    self.pos += 1;
                }
                match &self.text[start..self.pos] {
                    "True" => Ok(Json::Bool(true)),
                    "False" => Ok(Json::Bool(false)),
                    "None" => Ok(Json::Null),
                    prefix @ ("u" | "U" | "r" | "R")
                        if matches!(self.peek(), Some(b'\'' | b'"')) =>
                    {
                        let raw = prefix.eq_ignore_ascii_case("r");
                        if raw {
                            self.raw_string().map(Json::String)
                        } else {
                            self.string().map(Json::String)
                        }
                    }
                    word => Err(format!("malformed node or string: {word}")),
                }
            }
            Some(_) => self.number(),
        }
    }

    fn sequence(&mut self, close: u8) -> Result<Json, String> {
        let mut items = Vec::new();
        loop {
            if self.eat(close) {
                return Ok(Json::Array(items));
            }
            items.push(self.value()?);
            if !self.eat(b',') {
                if self.eat(close) {
                    return Ok(Json::Array(items));
                }
                return Err(format!("expected ',' at offset {}", self.pos));
            }
        }
    }

    fn dict_or_set(&mut self) -> Result<Json, String> {
        if self.eat(b'}') {
            return Ok(Json::Object(JsonMap::new()));
        }
        let first = self.value()?;
        if !self.eat(b':') {
            // A set literal: its items as a list.
            let mut items = vec![first];
            loop {
                if !self.eat(b',') {
                    break;
                }
                if self.peek_close(b'}') {
                    break;
                }
                items.push(self.value()?);
            }
            if !self.eat(b'}') {
                return Err(format!("expected '}}' at offset {}", self.pos));
            }
            return Ok(Json::Array(items));
        }
        let mut map = JsonMap::new();
        let mut key = first;
        loop {
            let value = self.value()?;
            map.insert(json_key(&key), value);
            if !self.eat(b',') {
                break;
            }
            if self.peek_close(b'}') {
                break;
            }
            key = self.value()?;
            if !self.eat(b':') {
                return Err(format!("expected ':' at offset {}", self.pos));
            }
        }
        if !self.eat(b'}') {
            return Err(format!("expected '}}' at offset {}", self.pos));
        }
        Ok(Json::Object(map))
    }

    fn peek_close(&mut self, close: u8) -> bool {
        self.skip_ws();
        self.peek() == Some(close)
    }

    fn raw_string(&mut self) -> Result<String, String> {
        let quote = self.peek().ok_or("unexpected end of input")?;
        self.pos += 1;
        let start = self.pos;
        while let Some(b) = self.peek() {
            if b == quote {
                let s = self.text[start..self.pos].to_string();
                self.pos += 1;
                return Ok(s);
            }
            self.pos += if b == b'\\' { 2 } else { 1 };
        }
        Err("unterminated string".into())
    }

    fn string(&mut self) -> Result<String, String> {
        let quote = self.peek().ok_or("unexpected end of input")? as char;
        self.pos += 1;
        let rest = &self.text[self.pos..];
        let mut out = String::new();
        let mut chars = rest.char_indices();
        while let Some((i, c)) = chars.next() {
            if c == quote {
                self.pos += i + 1;
                return Ok(out);
            }
            if c != '\\' {
                out.push(c);
                continue;
            }
            let Some((_, e)) = chars.next() else { break };
            match e {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'r' => out.push('\r'),
                '0' => out.push('\0'),
                'b' => out.push('\u{8}'),
                'f' => out.push('\u{c}'),
                'v' => out.push('\u{b}'),
                'a' => out.push('\u{7}'),
                '\\' | '\'' | '"' => out.push(e),
                '\n' => {}
                'x' | 'u' | 'U' => {
                    let len = match e {
                        'x' => 2,
                        'u' => 4,
                        _ => 8,
                    };
                    let hex: String = chars.by_ref().take(len).map(|(_, c)| c).collect();
                    let code = u32::from_str_radix(&hex, 16)
                        .ok()
                        .filter(|_| hex.len() == len)
                        .and_then(char::from_u32)
                        .ok_or_else(|| format!("invalid \\{e} escape"))?;
                    out.push(code);
                }
                other => {
                    out.push('\\');
                    out.push(other);
                }
            }
        }
        Err("unterminated string".into())
    }

    fn number(&mut self) -> Result<Json, String> {
        let start = self.pos;
        if matches!(self.peek(), Some(b'-' | b'+')) {
            self.pos += 1;
        }
        while self
            .peek()
            .is_some_and(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_'))
            || (matches!(self.peek(), Some(b'-' | b'+'))
                && matches!(self.src.get(self.pos.wrapping_sub(1)), Some(b'e' | b'E')))
        {
            self.pos += 1;
        }
        let text = &self.text[start..self.pos];
        if let Some(i) = parse_int(text) {
            return Ok(Json::Number(i.into()));
        }
        parse_float(text)
            .and_then(Number::from_f64)
            .map(Json::Number)
            .ok_or_else(|| format!("malformed node or string: {text}"))
    }
}

/// A dict key as JSON object key: strings as they are, other literals as Python `str()`.
fn json_key(key: &Json) -> String {
    match key {
        Json::String(s) => s.clone(),
        other => to_str(&MjValue::from_serialize(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn repr_matches_python() {
        let table = [
            (json!(true), "True"),
            (json!(null), "None"),
            (json!("it's"), "\"it's\""),
            (json!(["a", 1, 2.0, null]), "['a', 1, 2.0, None]"),
            (json!({"a": {"b": [true]}}), "{'a': {'b': [True]}}"),
            (json!("tab\there"), "'tab\\there'"),
        ];
        for (value, want) in table {
            let mut s = String::new();
            write_repr(&mut s, &MjValue::from_serialize(&value)).expect("write");
            assert_eq!(s, want);
        }
    }

    #[test]
    fn json_dumps_matches_python() {
        let v = json!({"b": 1, "a": [1, 2.5, "é"], "c": {}});
        assert_eq!(
            JsonDumps::DEFAULT.dumps(&v),
            r#"{"b": 1, "a": [1, 2.5, "\u00e9"], "c": {}}"#
        );
        let pretty = JsonDumps {
            indent: Some(2),
            sort_keys: true,
            item_sep: ",",
            key_sep: ": ",
        };
        assert_eq!(
            pretty.dumps(&v),
            "{\n  \"a\": [\n    1,\n    2.5,\n    \"\\u00e9\"\n  ],\n  \"b\": 1,\n  \"c\": {}\n}"
        );
        assert_eq!(
            JsonDumps::DEFAULT.dumps(&json!("\u{1F600}")),
            r#""\ud83d\ude00""#
        );
    }

    #[test]
    fn literal_eval_table() {
        let table = [
            ("[1, 2, 3]", Some(json!([1, 2, 3]))),
            ("['a', \"b\",]", Some(json!(["a", "b"]))),
            (
                "{'a': True, 'b': None, 1: 2.5}",
                Some(json!({"a": true, "b": null, "1": 2.5})),
            ),
            ("(1,)", Some(json!([1]))),
            ("-12", Some(json!(-12))),
            ("1e3", Some(json!(1000.0))),
            ("u'x\\n'", Some(json!("x\n"))),
            ("{}", Some(json!({}))),
            ("\\invalid", None),
            ("yes", None),
            ("", None),
            ("[1, 2", None),
        ];
        for (text, want) in table {
            assert_eq!(literal_eval(text).ok(), want, "{text:?}");
        }
    }

    #[test]
    fn int_and_float_parsing() {
        assert_eq!(parse_int(" 42 "), Some(42));
        assert_eq!(parse_int("-1_000"), Some(-1000));
        assert_eq!(parse_int("1.5"), None);
        assert_eq!(parse_int(""), None);
        assert_eq!(parse_int("1__0"), None);
        assert_eq!(parse_float(" 1.5 "), Some(1.5));
        assert_eq!(parse_float("1e3"), Some(1000.0));
        assert_eq!(parse_float("abc"), None);
        assert!(parse_float("inf").is_some_and(f64::is_infinite));
    }
}
