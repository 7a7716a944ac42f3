//! Translation of a backend-neutral [`Query`] into MongoDB filter and sort documents.
//!
//! The reference semantics are [`Query::matches`]: a dotted path walks objects only, a missing
//! field equals `null`, and a value equals another only as a whole JSON value. MongoDB's own
//! operators walk into arrays (`{tags: "x"}` matches `tags: ["x", "y"]`), so every condition
//! adds "not an array" guards on the path's prefixes, and a scalar comparison "has no element
//! `0`" on the field itself (a separate condition, so an index on the field serves the query);
//! `Eq(null)` is written as "not (a non-null value reached through objects only)".
//! One difference remains: objects compare with their key order (MongoDB's rule), where
//! [`Query::matches`] ignores it; documents are stored in their serialisation order, so a query
//! built from a model value matches.

use mongodb::bson::{doc, Bson, Document};
use serde_json::Value;

use super::codec::{path, to_bson};
use super::REVISION;
use crate::store::{Filter, Query};

/// A filter no document matches.
fn nothing() -> Document {
    doc! {"_id": {"$in": []}}
}

/// `path` is not an array (or is missing).
fn not_array(p: &str) -> Document {
    doc! {p: {"$not": {"$type": "array"}}}
}

/// The field at `p`, compared with a scalar, is not an array: it has no element `0`. For a
/// scalar comparison this means the same as [`not_array`] (an empty array equals no scalar, an
/// object equals none either), but it is a condition on another field, so the comparison
/// itself stays a plain `{p: {$eq|$in|$gte..: v}}` that an index on `p` serves. (A
/// MongoDB-wire test server scanned the whole collection when the comparison and a `$not`
/// shared one operator document.)
fn scalar_not_array(p: &str) -> Document {
    doc! {format!("{p}.0"): {"$exists": false}}
}

/// The strict prefixes of a stored path: `a`, `a.b` for `a.b.c`.
fn strict_prefixes(p: &str) -> impl Iterator<Item = &str> {
    p.match_indices('.').map(move |(i, _)| &p[..i])
}

/// ANDs conditions (no wrapper for one). Conditions on distinct fields, or distinct operators
/// of one field, are merged into one document (`{f: {$in: .., $not: ..}, g: ..}`), which means
/// the same as their `$and`; other combinations keep the `$and`. (The merged form is also what a
/// MongoDB-wire test server plans as a point lookup when `_id` is among the fields: it scanned
/// the whole collection for any filter with an `$and`.)
fn all_of(mut parts: Vec<Document>) -> Document {
    match parts.len() {
        0 => Document::new(),
        1 => parts.pop().expect("one part"),
        _ => merged(&parts).unwrap_or_else(|| doc! {"$and": parts}),
    }
}

/// The conditions as one document, if none of them clash (see [`all_of`]).
fn merged(parts: &[Document]) -> Option<Document> {
    let is_ops = |d: &Document| !d.is_empty() && d.keys().all(|k| k.starts_with('$'));
    let mut out = Document::new();
    // A top-level operator (`$nor`, `$or`) is one more condition beside the fields; twice, it
    // clashes like a field would.
    for (k, v) in parts.iter().flatten() {
        match out.get_mut(k) {
            None => {
                out.insert(k.clone(), v.clone());
            }
            Some(Bson::Document(have)) if is_ops(have) => match v {
                Bson::Document(add) if is_ops(add) => {
                    for (op, arg) in add {
                        if have.contains_key(op) {
                            return None;
                        }
                        have.insert(op.clone(), arg.clone());
                    }
                }
                _ => return None,
            },
            Some(_) => return None,
        }
    }
    Some(out)
}

/// `field == v` under the reference semantics.
fn eq(field: &str, v: &Value) -> Document {
    let p = path(field);
    if p == "_id" {
        // Ids are always non-empty strings.
        return match v {
            Value::String(s) => doc! {"_id": s},
            _ => nothing(),
        };
    }
    let mut parts: Vec<Document> = strict_prefixes(&p).map(not_array).collect();
    match v {
        // A top-level field is null or missing: one plain condition (see [`is_in`]).
        Value::Null if !p.contains('.') => all_of(vec![
            doc! {p.as_str(): {"$eq": Bson::Null}},
            scalar_not_array(&p),
        ]),
        Value::Null => {
            parts.push(doc! {"$or": [
                {p.as_str(): {"$type": "array"}},
                {p.as_str(): {"$ne": Bson::Null}},
            ]});
            doc! {"$nor": [all_of(parts)]}
        }
        Value::Array(_) => {
            let b = to_bson(v);
            parts.insert(0, doc! {p.as_str(): {"$eq": b.clone()}});
            // `{f: [x]}` also matches an array holding `[x]` as an element.
            parts.push(doc! {"$nor": [{p.as_str(): {"$elemMatch": {"$eq": b}}}]});
            all_of(parts)
        }
        _ => {
            parts.insert(0, doc! {p.as_str(): {"$eq": to_bson(v)}});
            parts.push(scalar_not_array(&p));
            all_of(parts)
        }
    }
}

/// `field` equals one of `vs`.
fn is_in(field: &str, vs: &[Value]) -> Document {
    if vs.is_empty() {
        return nothing();
    }
    let p = path(field);
    if p == "_id" {
        let ids: Vec<Bson> = vs
            .iter()
            .filter_map(Value::as_str)
            .map(|s| Bson::String(s.to_string()))
            .collect();
        return if ids.is_empty() {
            nothing()
        } else {
            doc! {"_id": {"$in": ids}}
        };
    }
    // `null` among scalars, on a top-level field, is "null or missing" in MongoDB's `$in` as in
    // the reference semantics (through a dotted path it is not: MongoDB's path walks arrays).
    let top_level = !p.contains('.');
    let scalars = vs.iter().all(|v| match v {
        Value::Bool(_) | Value::Number(_) | Value::String(_) => true,
        Value::Null => top_level,
        _ => false,
    });
    if scalars {
        let mut parts =
            vec![doc! {p.as_str(): {"$in": vs.iter().map(to_bson).collect::<Vec<_>>()}}];
        parts.extend(strict_prefixes(&p).map(not_array));
        parts.push(scalar_not_array(&p));
        return all_of(parts);
    }
    doc! {"$or": vs.iter().map(|v| eq(field, v)).collect::<Vec<_>>()}
}

/// The smallest string greater than every string starting with `prefix`, if any.
fn prefix_end(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = (u32::from(last) + 1..=u32::from(char::MAX)).find_map(char::from_u32);
        if let Some(n) = next {
            chars.push(n);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// The string `field` starts with `prefix` (a literal: no pattern characters). MongoDB compares
/// strings by their UTF-8 bytes, i.e. by code point, so a prefix is a range.
fn prefix(field: &str, prefix: &str) -> Document {
    let p = path(field);
    let range = match (prefix.is_empty(), prefix_end(prefix)) {
        (true, _) => doc! {"$type": "string"},
        (false, Some(end)) => doc! {"$gte": prefix, "$lt": end},
        (false, None) => doc! {"$gte": prefix},
    };
    if p == "_id" {
        return doc! {"_id": range};
    }
    let mut parts = vec![doc! {p.as_str(): range}];
    parts.extend(strict_prefixes(&p).map(not_array));
    parts.push(scalar_not_array(&p));
    all_of(parts)
}

/// The filter document of a query (all its filters AND-ed).
pub fn filter(query: &Query) -> Document {
    all_of(
        query
            .filters
            .iter()
            .map(|f| match f {
                Filter::Eq(field, v) => eq(field, v),
                Filter::In(field, vs) => is_in(field, vs),
                Filter::Prefix(field, p) => prefix(field, p),
            })
            .collect(),
    )
}

/// The filter `field equals one of expected` on the document with this id (compare-and-set),
/// and, with `rev`, on that revision of it (`Some(None)`: a document written without one).
pub fn cas_filter(id: &str, rev: Option<Option<i64>>, field: &str, expected: &[Value]) -> Document {
    let mut parts = vec![doc! {"_id": id}];
    match rev {
        Some(Some(r)) => parts.push(doc! {REVISION: r}),
        Some(None) => parts.push(doc! {REVISION: {"$exists": false}}),
        None => {}
    }
    parts.push(is_in(field, expected));
    all_of(parts)
}

/// The sort document of a query: its field, ties broken by id in the same direction.
pub fn sort(query: &Query) -> Document {
    match &query.sort {
        None => doc! {"_id": 1},
        Some(s) => {
            let dir = if s.descending { -1 } else { 1 };
            let p = path(&s.field);
            if p == "_id" {
                doc! {"_id": dir}
            } else {
                doc! {p: dir, "_id": dir}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_ranges() {
        assert_eq!(prefix_end("ab").as_deref(), Some("ac"));
        assert_eq!(prefix_end("a\u{D7FF}").as_deref(), Some("a\u{E000}"));
        assert_eq!(prefix_end("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_end("\u{10FFFF}"), None);
    }

    #[test]
    fn id_filters_use_the_primary_key() {
        assert_eq!(eq("id", &Value::from("x")), doc! {"_id": "x"});
        assert_eq!(eq("id", &Value::from(1)), nothing());
        let q = Query::all().is_in("id", vec![Value::from("a"), Value::from(1)]);
        assert_eq!(filter(&q), doc! {"_id": {"$in": ["a"]}});
    }

    #[test]
    fn conditions_merge_unless_they_clash() {
        let q = Query::all().eq("status", "a").eq("n", 1);
        assert_eq!(
            filter(&q),
            doc! {"status": {"$eq": "a"}, "status.0": {"$exists": false},
            "n": {"$eq": 1_i64}, "n.0": {"$exists": false}}
        );
        // The same operator twice on one field stays an `$and`.
        let q = Query::all().eq("status", "a").eq("status", "b");
        assert!(filter(&q).contains_key("$and"));
    }

    #[test]
    fn cas_filters_stay_top_level_for_scalars() {
        let f = cas_filter("x", Some(Some(7)), "status", &[Value::from("a")]);
        assert_eq!(
            f,
            doc! {"_id": "x", "_rev": 7_i64, "status": {"$in": ["a"]}, "status.0": {"$exists": false}}
        );
        let f = cas_filter("x", Some(None), "status", &[Value::Null]);
        assert_eq!(f.get_document("_rev").ok(), Some(&doc! {"$exists": false}));
        // On a top-level field, null is one more `$in` value; through a dotted path it needs
        // the general form.
        assert_eq!(
            f.get_document("status").ok(),
            Some(&doc! {"$in": [Bson::Null]})
        );
        let f = cas_filter("x", None, "a.b", &[Value::Null, Value::from(false)]);
        assert!(f.contains_key("$or"), "null needs the general form: {f}");
        assert!(!cas_filter("x", None, "status", &[Value::from(1)]).contains_key("_rev"));
    }
}
