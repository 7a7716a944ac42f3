//! JSON ↔ BSON for the MongoDB backend: value conversion and the escaping of field names.
//!
//! Documents keep their field order both ways. Numbers: JSON integers that fit an `i64` become
//! `Int64`, every other number a `Double` (so an integer above `i64::MAX` comes back as a float).
//! Field names are escaped so that any JSON key can be stored and addressed by a dotted path:
//! `.`, `$` and NUL (which BSON or MongoDB's paths cannot take) and the escape character itself
//! become two-character sequences, the empty key gets a marker, and a top-level key starting
//! with `_` is escaped too, so that raw top-level `_` names (`_id`, `_chunked`, `_expire_at`)
//! belong to the backend alone and never reach the caller.

use std::borrow::Cow;

use mongodb::bson::{Bson, Document};
use serde_json::{Map, Number, Value};

/// Starts every escape sequence in a stored field name (FULLWIDTH PERCENT SIGN).
const ESC: char = '\u{FF05}';

/// Escapes one field name; `top` for a field of the document itself (not of a nested object).
pub fn escape_key(key: &str, top: bool) -> Cow<'_, str> {
    let needs = key.is_empty()
        || (top && key.starts_with('_'))
        || key.contains(|c| matches!(c, '.' | '$' | '\0' | ESC));
    if !needs {
        return Cow::Borrowed(key);
    }
    let mut out = String::with_capacity(key.len() + 4);
    if key.is_empty() {
        out.push(ESC);
        out.push('0');
        return Cow::Owned(out);
    }
    let mut chars = key.chars();
    if top && key.starts_with('_') {
        out.push(ESC);
        out.push('_');
        chars.next();
    }
    for c in chars {
        match c {
            '.' => out.extend([ESC, 'd']),
            '$' => out.extend([ESC, 's']),
            '\0' => out.extend([ESC, 'z']),
            ESC => out.extend([ESC, 'e']),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Reverses [`escape_key`].
pub fn unescape_key(key: &str) -> Cow<'_, str> {
    if !key.contains(ESC) {
        return Cow::Borrowed(key);
    }
    let mut out = String::with_capacity(key.len());
    let mut chars = key.chars();
    while let Some(c) = chars.next() {
        if c != ESC {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('d') => out.push('.'),
            Some('s') => out.push('$'),
            Some('z') => out.push('\0'),
            Some('e') => out.push(ESC),
            Some('_') => out.push('_'),
            Some('0') => {}
            // Not written by this module: keep it as it is.
            Some(other) => out.extend([ESC, other]),
            None => out.push(ESC),
        }
    }
    Cow::Owned(out)
}

/// The stored path of a dotted query field: each segment escaped, `id` mapped to `_id`.
pub fn path(field: &str) -> String {
    if field == "id" {
        return "_id".to_string();
    }
    let mut out = String::with_capacity(field.len());
    for (i, seg) in field.split('.').enumerate() {
        if i > 0 {
            out.push('.');
        }
        out.push_str(&escape_key(seg, i == 0));
    }
    out
}

/// A JSON value as BSON (nested objects get escaped keys).
pub fn to_bson(v: &Value) -> Bson {
    match v {
        Value::Null => Bson::Null,
        Value::Bool(b) => Bson::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Bson::Int64(i),
            None => Bson::Double(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => Bson::String(s.clone()),
        Value::Array(a) => Bson::Array(a.iter().map(to_bson).collect()),
        Value::Object(m) => Bson::Document(object_to_doc(m, false)),
    }
}

/// A JSON object as a BSON document; `top` escapes top-level `_` names.
pub fn object_to_doc(m: &Map<String, Value>, top: bool) -> Document {
    let mut d = Document::new();
    for (k, v) in m {
        d.insert(escape_key(k, top).into_owned(), to_bson(v));
    }
    d
}

/// A BSON value as JSON. Types JSON lacks (dates, object ids, binaries, ...) — which this
/// backend never writes into a document's own fields — become strings or extended JSON.
pub fn from_bson(b: Bson) -> Value {
    match b {
        Bson::Null | Bson::Undefined => Value::Null,
        Bson::Boolean(b) => Value::Bool(b),
        Bson::Int32(i) => Value::from(i),
        Bson::Int64(i) => Value::from(i),
        Bson::Double(f) => Number::from_f64(f).map_or(Value::Null, Value::Number),
        Bson::String(s) => Value::String(s),
        Bson::Array(a) => Value::Array(a.into_iter().map(from_bson).collect()),
        Bson::Document(d) => Value::Object(doc_to_object(d)),
        Bson::ObjectId(o) => Value::String(o.to_hex()),
        Bson::DateTime(dt) => dt
            .try_to_rfc3339_string()
            .map_or(Value::Null, Value::String),
        Bson::Decimal128(d) => Value::String(d.to_string()),
        other => other.into_relaxed_extjson(),
    }
}

/// A nested BSON document as a JSON object (keys unescaped).
pub fn doc_to_object(d: Document) -> Map<String, Value> {
    let mut m = Map::new();
    for (k, v) in d {
        m.insert(unescape_key(&k).into_owned(), from_bson(v));
    }
    m
}

/// Encoded size in bytes of a BSON document.
pub fn doc_size(d: &Document) -> usize {
    let mut buf = Vec::new();
    match d.to_writer(&mut buf) {
        Ok(()) => buf.len(),
        // Cannot encode: say "huge", so the caller takes its most careful path.
        Err(_) => usize::MAX,
    }
}

/// Encoded size in bytes of one field holding `v`.
pub fn field_size(key: &str, v: &Bson) -> usize {
    let mut d = Document::new();
    d.insert(key, v.clone());
    doc_size(&d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_escape_and_come_back() {
        let cases = [
            ("plain", true, "plain"),
            ("a.b", false, "a\u{FF05}db"),
            ("$x", false, "\u{FF05}sx"),
            ("_id", true, "\u{FF05}_id"),
            ("_id", false, "_id"),
            ("", false, "\u{FF05}0"),
            ("\u{FF05}d", false, "\u{FF05}ed"),
            ("nul\0", false, "nul\u{FF05}z"),
        ];
        for (key, top, want) in cases {
            let esc = escape_key(key, top);
            assert_eq!(esc, want, "{key:?}");
            assert_eq!(unescape_key(&esc), key, "{key:?} back");
        }
    }

    #[test]
    fn paths_escape_each_segment() {
        assert_eq!(path("id"), "_id");
        assert_eq!(path("trigger.type"), "trigger.type");
        assert_eq!(path("_x.y"), "\u{FF05}_x.y");
        assert_eq!(path("a.$b"), "a.\u{FF05}sb");
    }

    #[test]
    fn values_round_trip_in_order() {
        let v = json!({"z": 1, "a": [1.5, null, true, "s", {"k.x": -3}], "m": {}, "big": 1e300});
        let b = to_bson(&v);
        assert_eq!(from_bson(b.clone()), v);
        let Bson::Document(d) = b else {
            panic!("object becomes a document")
        };
        let keys: Vec<_> = d.keys().cloned().collect();
        assert_eq!(keys, ["z", "a", "m", "big"]);
    }
}
