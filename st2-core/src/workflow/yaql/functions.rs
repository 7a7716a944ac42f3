//! YAQL's standard library over JSON values (the functions Orquesta workflows use): strings,
//! dicts, collections, conversions, type checks, regex functions and `format`. Functions here
//! are eager (arguments already evaluated); those taking lambdas are in [`super::eval`]; the
//! shared value rules are in [`super::value`], regex compilation in [`super::regex`].

use std::borrow::Cow;
use std::sync::Arc;

use fancy_regex::Regex;
use serde_json::{Map, Value};

pub(crate) use super::regex::regex_of;
use super::regex::{compile, py_replacement};
pub(crate) use super::value::{
    compare, equals, float, iterate, key_string, num, repr, to_str, truthy, type_name, Num,
};
use super::value::{is_regex, REGEX_KEY};
use super::YaqlError;

/// Checked argument access for one function call.
struct Args<'n> {
    name: &'n str,
    v: Vec<Value>,
}

impl Args<'_> {
    fn err(&self, message: impl Into<String>) -> YaqlError {
        YaqlError::func(self.name, message)
    }

    fn count(&self, min: usize, max: usize) -> Result<(), YaqlError> {
        if self.v.len() < min || self.v.len() > max {
            let want = if min == max {
                format!("{min}")
            } else {
                format!("{min} to {max}")
            };
            return Err(self.err(format!("takes {want} argument(s), got {}", self.v.len())));
        }
        Ok(())
    }

    fn str(&self, i: usize) -> Result<&str, YaqlError> {
        match self.v.get(i) {
            Some(Value::String(s)) => Ok(s),
            Some(other) => Err(self.err(format!(
                "argument {} must be a string, got {}",
                i + 1,
                type_name(other)
            ))),
            None => Err(self.err(format!("missing argument {}", i + 1))),
        }
    }

    fn int(&self, i: usize) -> Result<i64, YaqlError> {
        match self.v.get(i).and_then(num) {
            Some(Num::I(n)) => Ok(n),
            _ => Err(self.err(format!(
                "argument {} must be an integer, got {}",
                i + 1,
                self.v.get(i).map_or("nothing", type_name)
            ))),
        }
    }

    fn opt_int(&self, i: usize, default: i64) -> Result<i64, YaqlError> {
        if self.v.get(i).is_none_or(Value::is_null) {
            Ok(default)
        } else {
            self.int(i)
        }
    }

    fn list(&self, i: usize) -> Result<&[Value], YaqlError> {
        match self.v.get(i) {
            Some(Value::Array(a)) => Ok(a),
            Some(other) => Err(self.err(format!(
                "argument {} must be a list, got {}",
                i + 1,
                type_name(other)
            ))),
            None => Err(self.err(format!("missing argument {}", i + 1))),
        }
    }

    fn dict(&self, i: usize) -> Result<&Map<String, Value>, YaqlError> {
        match self.v.get(i) {
            Some(Value::Object(m)) if !is_regex(&self.v[i]) => Ok(m),
            Some(other) => Err(self.err(format!(
                "argument {} must be a dict, got {}",
                i + 1,
                type_name(other)
            ))),
            None => Err(self.err(format!("missing argument {}", i + 1))),
        }
    }

    fn items(&self, i: usize) -> Result<Cow<'_, [Value]>, YaqlError> {
        match self.v.get(i) {
            Some(v) => iterate(self.name, v),
            None => Err(self.err(format!("missing argument {}", i + 1))),
        }
    }
}

/// Calls the standard function `name`; `None` when there is no such function.
pub(crate) fn call(
    name: &str,
    args: Vec<Value>,
    keywords: Vec<(String, Value)>,
) -> Option<Result<Value, YaqlError>> {
    let a = Args { name, v: args };
    if !keywords.is_empty() && !matches!(name, "dict" | "format") {
        return Some(Err(a.err("takes no keyword arguments")));
    }
    Some(match name {
        "dict" => dict(&a, keywords),
        "format" => format(&a, &keywords),
        _ => return call_positional(name, &a),
    })
}

fn call_positional(name: &str, a: &Args) -> Option<Result<Value, YaqlError>> {
    let r = match name {
        "len" | "count" => len(a),
        "str" | "string" => a.count(1, 1).map(|_| Value::String(to_str(&a.v[0]))),
        "int" => int(a),
        "float" => float_of(a),
        "bool" => a.count(1, 1).map(|_| Value::Bool(truthy(&a.v[0]))),
        "keys" => a
            .count(1, 1)
            .and_then(|_| a.dict(0))
            .map(|m| Value::Array(m.keys().map(|k| Value::String(k.clone())).collect())),
        "values" => a
            .count(1, 1)
            .and_then(|_| a.dict(0))
            .map(|m| Value::Array(m.values().cloned().collect())),
        "items" => a.count(1, 1).and_then(|_| a.dict(0)).map(|m| {
            Value::Array(
                m.iter()
                    .map(|(k, v)| Value::Array(vec![Value::String(k.clone()), v.clone()]))
                    .collect(),
            )
        }),
        "get" => get(a),
        "set" => set(a),
        "delete" => delete(a),
        "containsKey" => a
            .count(2, 2)
            .and_then(|_| a.dict(0))
            .map(|m| Value::Bool(m.contains_key(&key_string(&a.v[1])))),
        "containsValue" => a
            .count(2, 2)
            .and_then(|_| a.dict(0))
            .map(|m| Value::Bool(m.values().any(|v| equals(v, &a.v[1])))),
        "list" => Ok(Value::Array(a.v.clone())),
        "toList" => a
            .count(1, 1)
            .and_then(|_| a.items(0))
            .map(|i| Value::Array(i.into_owned())),
        "join" => join(a),
        "split" => split(a),
        "replace" => replace(a),
        "regex" => regex(a),
        "matches" => matches(a),
        "search" => search(a),
        "searchAll" => search_all(a),
        "escapeRegex" => a
            .count(1, 1)
            .and_then(|_| a.str(0))
            .map(|s| Value::String(fancy_regex::escape(s).into_owned())),
        "toUpper" => a
            .count(1, 1)
            .and_then(|_| a.str(0))
            .map(|s| Value::String(s.to_uppercase())),
        "toLower" => a
            .count(1, 1)
            .and_then(|_| a.str(0))
            .map(|s| Value::String(s.to_lowercase())),
        "trim" | "trimLeft" | "trimRight" => trim(name, a),
        "startsWith" | "endsWith" => starts_ends(name, a),
        "substring" => substring(a),
        "indexOf" | "lastIndexOf" => index_of(name, a),
        "characters" => a
            .count(1, 1)
            .and_then(|_| a.str(0))
            .map(|s| Value::Array(s.chars().map(|c| Value::String(c.into())).collect())),
        "concat" => concat(a),
        "isEmpty" => a.count(1, 1).map(|_| {
            Value::Bool(match &a.v[0] {
                Value::Null => true,
                Value::String(s) => s.trim().is_empty(),
                other => !truthy(other),
            })
        }),
        "isList" => a.count(1, 1).map(|_| Value::Bool(a.v[0].is_array())),
        "isDict" => a
            .count(1, 1)
            .map(|_| Value::Bool(a.v[0].is_object() && !is_regex(&a.v[0]))),
        "isString" => a.count(1, 1).map(|_| Value::Bool(a.v[0].is_string())),
        "isInteger" => a
            .count(1, 1)
            .map(|_| Value::Bool(a.v[0].is_i64() || a.v[0].is_u64())),
        "isNumber" => a.count(1, 1).map(|_| Value::Bool(a.v[0].is_number())),
        "isBoolean" => a.count(1, 1).map(|_| Value::Bool(a.v[0].is_boolean())),
        "isRegex" => a.count(1, 1).map(|_| Value::Bool(is_regex(&a.v[0]))),
        "first" | "last" => first_last(name, a),
        "single" => a
            .count(1, 1)
            .and_then(|_| a.items(0))
            .and_then(|i| match &*i {
                [one] => Ok(one.clone()),
                _ => Err(a.err(format!("expects exactly one item, got {}", i.len()))),
            }),
        "distinct" => distinct(a),
        "sum" => sum(a),
        "max" | "min" => max_min(name, a),
        "contains" => contains(a),
        "range" => range(a),
        "flatten" => a.count(1, 1).and_then(|_| a.list(0)).map(|l| {
            let mut out = Vec::new();
            flatten_into(l, &mut out);
            Value::Array(out)
        }),
        "skip" | "take" | "limit" => skip_take(name, a),
        "reverse" => a
            .count(1, 1)
            .and_then(|_| a.items(0))
            .map(|i| Value::Array(i.iter().rev().cloned().collect())),
        "append" => a
            .list(0)
            .map(|l| Value::Array(l.iter().chain(&a.v[1..]).cloned().collect())),
        "coalesce" => Ok(a
            .v
            .iter()
            .find(|v| !v.is_null())
            .cloned()
            .unwrap_or(Value::Null)),
        "isNull" => a.count(1, 1).map(|_| Value::Bool(a.v[0].is_null())),
        _ => return None,
    };
    Some(r)
}

fn len(a: &Args) -> Result<Value, YaqlError> {
    a.count(1, 1)?;
    match &a.v[0] {
        Value::String(s) => Ok(Value::from(s.chars().count())),
        Value::Array(l) => Ok(Value::from(l.len())),
        Value::Object(m) => Ok(Value::from(m.len())),
        other => Err(a.err(format!("cannot take the length of {}", type_name(other)))),
    }
}

fn int(a: &Args) -> Result<Value, YaqlError> {
    a.count(1, 1)?;
    match &a.v[0] {
        Value::Null => Ok(Value::from(0)),
        Value::Bool(b) => Ok(Value::from(i64::from(*b))),
        Value::Number(_) => match num(&a.v[0]) {
            Some(Num::I(i)) => Ok(Value::from(i)),
            Some(Num::F(f)) if f.is_finite() && f.abs() < 9.2e18 => {
                Ok(Value::from(f.trunc() as i64))
            }
            _ => Err(a.err("number out of integer range")),
        },
        Value::String(s) => s
            .trim()
            .replace('_', "")
            .parse::<i64>()
            .map(Value::from)
            .map_err(|_| a.err(format!("invalid integer '{s}'"))),
        other => Err(a.err(format!("cannot convert {} to integer", type_name(other)))),
    }
}

fn float_of(a: &Args) -> Result<Value, YaqlError> {
    a.count(1, 1)?;
    match &a.v[0] {
        Value::Null => Ok(float(0.0)),
        Value::Bool(b) => Ok(float(f64::from(u8::from(*b)))),
        Value::Number(n) => Ok(float(n.as_f64().unwrap_or(f64::NAN))),
        Value::String(s) => s
            .trim()
            .parse::<f64>()
            .map(float)
            .map_err(|_| a.err(format!("invalid float '{s}'"))),
        other => Err(a.err(format!("cannot convert {} to float", type_name(other)))),
    }
}

/// `dict(a => 1)`, `dict([[k, v], ...])`, `dict({..})`.
fn dict(a: &Args, keywords: Vec<(String, Value)>) -> Result<Value, YaqlError> {
    let mut m = Map::new();
    for v in &a.v {
        match v {
            Value::Array(pairs) => {
                for p in pairs {
                    match p {
                        Value::Array(kv) if kv.len() == 2 => {
                            m.insert(key_string(&kv[0]), kv[1].clone());
                        }
                        other => {
                            return Err(a.err(format!(
                                "expects [key, value] pairs, got {}",
                                type_name(other)
                            )))
                        }
                    }
                }
            }
            Value::Object(o) => m.extend(o.iter().map(|(k, v)| (k.clone(), v.clone()))),
            other => {
                return Err(a.err(format!(
                    "expects key => value pairs, got {}",
                    type_name(other)
                )))
            }
        }
    }
    m.extend(keywords);
    Ok(Value::Object(m))
}

fn get(a: &Args) -> Result<Value, YaqlError> {
    a.count(2, 3)?;
    let m = a.dict(0)?;
    Ok(m.get(&key_string(&a.v[1]))
        .cloned()
        .unwrap_or_else(|| a.v.get(2).cloned().unwrap_or(Value::Null)))
}

fn set(a: &Args) -> Result<Value, YaqlError> {
    a.count(2, 3)?;
    let mut m = a.dict(0)?.clone();
    if a.v.len() == 3 {
        m.insert(key_string(&a.v[1]), a.v[2].clone());
    } else {
        m.extend(a.dict(1)?.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    Ok(Value::Object(m))
}

fn delete(a: &Args) -> Result<Value, YaqlError> {
    let mut m = a.dict(0)?.clone();
    for k in &a.v[1..] {
        m.remove(&key_string(k));
    }
    Ok(Value::Object(m))
}

/// `[1, 2].join(",")`, also `",".join([1, 2])` and `join([1, 2], ",")`; items as `str()`.
fn join(a: &Args) -> Result<Value, YaqlError> {
    a.count(2, 2)?;
    let (items, sep) = match (&a.v[0], &a.v[1]) {
        (Value::String(s), other) if !other.is_string() => (a.items(1)?, s.as_str()),
        _ => (a.items(0)?, a.str(1)?),
    };
    Ok(Value::String(
        items.iter().map(to_str).collect::<Vec<_>>().join(sep),
    ))
}

/// `s.split(separator?, maxSplits?)` (Python's `str.split`), or split on a `regex()`.
fn split(a: &Args) -> Result<Value, YaqlError> {
    a.count(1, 3)?;
    let s = a.str(0)?;
    let max = a.opt_int(2, -1)?;
    let limit = if max < 0 {
        usize::MAX
    } else {
        max as usize + 1
    };
    let strings = |v: Vec<&str>| {
        Value::Array(
            v.into_iter()
                .map(|p| Value::String(p.to_string()))
                .collect(),
        )
    };
    match a.v.get(1) {
        None | Some(Value::Null) => {
            let mut parts: Vec<&str> = Vec::new();
            let mut rest = s.trim_start();
            while !rest.is_empty() {
                if parts.len() + 1 == limit {
                    parts.push(rest.trim_end());
                    break;
                }
                let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
                parts.push(&rest[..end]);
                rest = rest[end..].trim_start();
            }
            Ok(strings(parts))
        }
        Some(sep) if is_regex(sep) => {
            let re = regex_of(sep)?.ok_or_else(|| a.err("bad regex"))?;
            let mut parts = Vec::new();
            let mut last = 0;
            for m in re.find_iter(s) {
                if parts.len() + 1 == limit {
                    break;
                }
                let m = m.map_err(|e| a.err(e.to_string()))?;
                parts.push(&s[last..m.start()]);
                last = m.end();
            }
            parts.push(&s[last..]);
            Ok(strings(parts))
        }
        Some(_) => {
            let sep = a.str(1)?;
            if sep.is_empty() {
                return Err(a.err("empty separator"));
            }
            Ok(strings(s.splitn(limit, sep).collect()))
        }
    }
}

/// `s.replace(old, new, count?)`, `s.replace(regex, new, count?)`, `regex.replace(s, new, count?)`.
fn replace(a: &Args) -> Result<Value, YaqlError> {
    a.count(3, 4)?;
    let count = a.opt_int(3, -1)?;
    let (subject, pattern) = if is_regex(&a.v[0]) {
        (a.str(1)?, &a.v[0])
    } else {
        (a.str(0)?, &a.v[1])
    };
    if is_regex(pattern) {
        let re = regex_of(pattern)?.ok_or_else(|| a.err("bad regex"))?;
        let repl = py_replacement(a.str(2)?);
        let limit = if count < 0 { 0 } else { count as usize };
        if count == 0 {
            return Ok(Value::String(subject.to_string()));
        }
        return Ok(Value::String(
            re.replacen(subject, limit, repl.as_str()).into_owned(),
        ));
    }
    let old = a.str(1)?;
    let new = a.str(2)?;
    Ok(Value::String(if count < 0 {
        subject.replace(old, new)
    } else {
        subject.replacen(old, new, count as usize)
    }))
}

/// `regex(pattern, ignoreCase?, multiLine?, dotAll?)`: a regex value.
fn regex(a: &Args) -> Result<Value, YaqlError> {
    a.count(1, 4)?;
    let mut flags = String::new();
    for (i, f) in ["i", "m", "s"].iter().enumerate() {
        if a.v.get(i + 1).is_some_and(truthy) {
            flags.push_str(f);
        }
    }
    let p = a.str(0)?;
    let pattern = if flags.is_empty() {
        p.to_string()
    } else {
        format!("(?{flags}){p}")
    };
    compile(&pattern)?;
    let mut m = Map::new();
    m.insert(REGEX_KEY.to_string(), Value::String(pattern));
    Ok(Value::Object(m))
}

/// The (subject, regex) of a regex function called either way round.
fn subject_and_regex<'a>(a: &'a Args) -> Result<(&'a str, Arc<Regex>), YaqlError> {
    a.count(2, 2)?;
    let (subject, pattern) = if is_regex(&a.v[0]) {
        (a.str(1)?, &a.v[0])
    } else {
        (a.str(0)?, &a.v[1])
    };
    let re = regex_of(pattern)?
        .ok_or_else(|| a.err(format!("expects a pattern, got {}", type_name(pattern))))?;
    Ok((subject, re))
}

fn matches(a: &Args) -> Result<Value, YaqlError> {
    let (s, re) = subject_and_regex(a)?;
    re.is_match(s)
        .map(Value::Bool)
        .map_err(|e| a.err(e.to_string()))
}

/// The first match's text, or `null`.
fn search(a: &Args) -> Result<Value, YaqlError> {
    let (s, re) = subject_and_regex(a)?;
    Ok(match re.find(s).map_err(|e| a.err(e.to_string()))? {
        Some(m) => Value::String(m.as_str().to_string()),
        None => Value::Null,
    })
}

fn search_all(a: &Args) -> Result<Value, YaqlError> {
    let (s, re) = subject_and_regex(a)?;
    let mut out = Vec::new();
    for m in re.find_iter(s) {
        out.push(Value::String(
            m.map_err(|e| a.err(e.to_string()))?.as_str().to_string(),
        ));
    }
    Ok(Value::Array(out))
}

fn trim(name: &str, a: &Args) -> Result<Value, YaqlError> {
    a.count(1, 2)?;
    let s = a.str(0)?;
    let chars: Option<Vec<char>> = match a.v.get(1) {
        None | Some(Value::Null) => None,
        Some(_) => Some(a.str(1)?.chars().collect()),
    };
    let pred = |c: char| match &chars {
        Some(set) => set.contains(&c),
        None => c.is_whitespace(),
    };
    Ok(Value::String(
        match name {
            "trimLeft" => s.trim_start_matches(pred),
            "trimRight" => s.trim_end_matches(pred),
            _ => s.trim_matches(pred),
        }
        .to_string(),
    ))
}

fn starts_ends(name: &str, a: &Args) -> Result<Value, YaqlError> {
    if a.v.len() < 2 {
        return Err(a.err("takes a string and at least one prefix"));
    }
    let s = a.str(0)?;
    for i in 1..a.v.len() {
        let p = a.str(i)?;
        if (name == "startsWith" && s.starts_with(p)) || (name == "endsWith" && s.ends_with(p)) {
            return Ok(Value::Bool(true));
        }
    }
    Ok(Value::Bool(false))
}

/// `s.substring(start, length?)`: a negative start counts from the end, a negative length
/// means "to the end".
fn substring(a: &Args) -> Result<Value, YaqlError> {
    a.count(2, 3)?;
    let chars: Vec<char> = a.str(0)?.chars().collect();
    let len = chars.len() as i64;
    let mut start = a.int(1)?;
    if start < 0 {
        start += len;
    }
    let start = start.clamp(0, len);
    let mut length = a.opt_int(2, -1)?;
    if length < 0 {
        length = len - start;
    }
    let end = (start + length).clamp(start, len);
    Ok(Value::String(
        chars[start as usize..end as usize].iter().collect(),
    ))
}

fn index_of(name: &str, a: &Args) -> Result<Value, YaqlError> {
    a.count(2, 2)?;
    if let Value::Array(items) = &a.v[0] {
        let found = if name == "indexOf" {
            items.iter().position(|i| equals(i, &a.v[1]))
        } else {
            items.iter().rposition(|i| equals(i, &a.v[1]))
        };
        return Ok(Value::from(found.map_or(-1, |i| i as i64)));
    }
    let s = a.str(0)?;
    let sub = a.str(1)?;
    let found = if name == "indexOf" {
        s.find(sub)
    } else {
        s.rfind(sub)
    };
    Ok(Value::from(
        found.map_or(-1, |b| s[..b].chars().count() as i64),
    ))
}

/// `concat(...)`: lists concatenated, or strings joined.
fn concat(a: &Args) -> Result<Value, YaqlError> {
    if a.v.iter().all(Value::is_string) {
        return Ok(Value::String(
            a.v.iter().filter_map(Value::as_str).collect(),
        ));
    }
    let mut out = Vec::new();
    for i in 0..a.v.len() {
        out.extend(a.items(i)?.iter().cloned());
    }
    Ok(Value::Array(out))
}

fn first_last(name: &str, a: &Args) -> Result<Value, YaqlError> {
    a.count(1, 2)?;
    let items = a.items(0)?;
    let pick = if name == "first" {
        items.first()
    } else {
        items.last()
    };
    match (pick, a.v.get(1)) {
        (Some(v), _) => Ok(v.clone()),
        (None, Some(default)) => Ok(default.clone()),
        (None, None) => Err(a.err("collection is empty")),
    }
}

fn distinct(a: &Args) -> Result<Value, YaqlError> {
    a.count(1, 1)?;
    let items = a.items(0)?;
    let mut out: Vec<Value> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for i in items.iter() {
        let key = match i {
            Value::Number(_) => num(i)
                .map(|n| format!("n{}", n.as_f64()))
                .unwrap_or_default(),
            other => other.to_string(),
        };
        if seen.insert(key) {
            out.push(i.clone());
        }
    }
    Ok(Value::Array(out))
}

fn sum(a: &Args) -> Result<Value, YaqlError> {
    a.count(1, 1)?;
    let items = a.items(0)?;
    if items.is_empty() {
        // YAQL folds without an initial value, so an empty sum is an error.
        return Err(a.err("collection is empty"));
    }
    let mut total = Value::from(0);
    for (n, i) in items.iter().enumerate() {
        if num(i).is_none() {
            return Err(a.err(format!("cannot add {} (item {n})", type_name(i))));
        }
        total = match (num(&total), num(i)) {
            (Some(Num::I(x)), Some(Num::I(y))) => {
                Value::from(x.checked_add(y).ok_or_else(|| a.err("integer overflow"))?)
            }
            (Some(x), Some(y)) => float(x.as_f64() + y.as_f64()),
            _ => total,
        };
    }
    Ok(total)
}

/// `max(a, b)` / `min(a, b)`, or `[..].max()` / `[..].min()`.
fn max_min(name: &str, a: &Args) -> Result<Value, YaqlError> {
    a.count(1, 2)?;
    let items: Cow<[Value]> = if a.v.len() == 2 {
        Cow::Borrowed(a.v.as_slice())
    } else {
        a.items(0)?
    };
    let mut best: Option<&Value> = None;
    for i in items.iter() {
        best = Some(match best {
            None => i,
            Some(b) => {
                let ord = compare(i, b).ok_or_else(|| {
                    a.err(format!(
                        "cannot compare {} with {}",
                        type_name(i),
                        type_name(b)
                    ))
                })?;
                if (name == "max" && ord.is_gt()) || (name == "min" && ord.is_lt()) {
                    i
                } else {
                    b
                }
            }
        });
    }
    best.cloned().ok_or_else(|| a.err("collection is empty"))
}

fn contains(a: &Args) -> Result<Value, YaqlError> {
    a.count(2, 2)?;
    match &a.v[0] {
        Value::String(s) => Ok(Value::Bool(s.contains(a.str(1)?))),
        Value::Object(m) => Ok(Value::Bool(m.contains_key(&key_string(&a.v[1])))),
        _ => Ok(Value::Bool(a.items(0)?.iter().any(|i| equals(i, &a.v[1])))),
    }
}

fn range(a: &Args) -> Result<Value, YaqlError> {
    a.count(1, 3)?;
    let (start, stop) = if a.v.len() == 1 {
        (0, a.int(0)?)
    } else {
        (a.int(0)?, a.int(1)?)
    };
    let step = a.opt_int(2, 1)?;
    if step == 0 {
        return Err(a.err("step must not be zero"));
    }
    // In i128 so that extreme bounds cannot overflow.
    let (start, stop, step) = (i128::from(start), i128::from(stop), i128::from(step));
    let n = if step > 0 {
        (stop - start + step - 1) / step
    } else {
        (start - stop - step - 1) / -step
    };
    if n > 10_000_000 {
        return Err(a.err("range too large"));
    }
    Ok(Value::Array(
        (0..n.max(0))
            .map(|k| Value::from((start + k * step) as i64))
            .collect(),
    ))
}

fn flatten_into(items: &[Value], out: &mut Vec<Value>) {
    for i in items {
        match i {
            Value::Array(inner) => flatten_into(inner, out),
            other => out.push(other.clone()),
        }
    }
}

fn skip_take(name: &str, a: &Args) -> Result<Value, YaqlError> {
    a.count(2, 2)?;
    let items = a.items(0)?;
    let n = a.int(1)?.clamp(0, items.len() as i64) as usize;
    Ok(Value::Array(if name == "skip" {
        items[n..].to_vec()
    } else {
        items[..n].to_vec()
    }))
}

/// Python's `str.format`: `{}`, `{0}`, `{name}`, `{{`/`}}`; a non-string argument prints as its
/// Python `repr` (`True`, `None`).
fn format(a: &Args, keywords: &[(String, Value)]) -> Result<Value, YaqlError> {
    let template = a.str(0)?;
    let args = &a.v[1..];
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => repr(other),
    };
    let mut out = String::with_capacity(template.len());
    let mut auto = 0;
    let mut chars = template.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                out.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                out.push('}');
            }
            '{' => {
                let mut field = String::new();
                loop {
                    match chars.next() {
                        Some('}') => break,
                        Some(ch) => field.push(ch),
                        None => return Err(a.err("unclosed '{' in format string")),
                    }
                }
                let name = field.split(':').next().unwrap_or("");
                let value = if name.is_empty() {
                    auto += 1;
                    args.get(auto - 1)
                } else if let Ok(i) = name.parse::<usize>() {
                    args.get(i)
                } else {
                    keywords.iter().find(|(k, _)| k == name).map(|(_, v)| v)
                };
                let value = value.ok_or_else(|| a.err(format!("no argument for '{{{field}}}'")))?;
                out.push_str(&text(value));
            }
            '}' => return Err(a.err("single '}' in format string")),
            c => out.push(c),
        }
    }
    Ok(Value::String(out))
}
