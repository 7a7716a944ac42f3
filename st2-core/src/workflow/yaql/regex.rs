//! Regexes for YAQL's `=~`, `regex()` and the string functions that take a pattern: Python
//! syntax (through `fancy_regex`, which supports look-around and back-references), compiled once
//! per pattern and cached for every later evaluation, and Python replacement syntax.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use fancy_regex::Regex;
use serde_json::Value;

use super::value::REGEX_KEY;
use super::YaqlError;

/// Compiled regexes by pattern, shared by every evaluation.
static REGEX_CACHE: LazyLock<Mutex<HashMap<String, Arc<Regex>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// Compiles (or fetches from the cache) a Python-syntax regex.
pub(crate) fn compile(pattern: &str) -> Result<Arc<Regex>, YaqlError> {
    let mut cache = REGEX_CACHE.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(re) = cache.get(pattern) {
        return Ok(re.clone());
    }
    let re = Arc::new(
        Regex::new(pattern)
            .map_err(|e| YaqlError::func("regex", format!("invalid pattern '{pattern}': {e}")))?,
    );
    if cache.len() >= 1024 {
        cache.clear();
    }
    cache.insert(pattern.to_string(), re.clone());
    Ok(re)
}

/// The regex in a pattern string or a `regex()` value; `None` for other values.
pub(crate) fn regex_of(v: &Value) -> Result<Option<Arc<Regex>>, YaqlError> {
    match v {
        Value::String(p) => compile(p).map(Some),
        Value::Object(m) if m.len() == 1 => match m.get(REGEX_KEY) {
            Some(Value::String(p)) => compile(p).map(Some),
            _ => Ok(None),
        },
        _ => Ok(None),
    }
}

/// Converts Python replacement syntax (`\1`, `\g<name>`) to the regex crate's (`${1}`).
pub(crate) fn py_replacement(repl: &str) -> String {
    let mut out = String::with_capacity(repl.len());
    let chars: Vec<char> = repl.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '$' {
            out.push_str("$$");
        } else if c == '\\' && i + 1 < chars.len() && chars[i + 1].is_ascii_digit() {
            let start = i + 1;
            i += 1;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
            let digits: String = chars[start..i].iter().collect();
            out.push_str(&format!("${{{digits}}}"));
            continue;
        } else if c == '\\'
            && repl[repl.char_indices().nth(i).map_or(0, |(b, _)| b)..].starts_with("\\g<")
        {
            let rest: String = chars[i + 3..].iter().collect();
            if let Some(end) = rest.find('>') {
                out.push_str(&format!("${{{}}}", &rest[..end]));
                i += 3 + rest[..end].chars().count() + 1;
                continue;
            }
            out.push(c);
        } else if c == '\\' && i + 1 < chars.len() {
            match chars[i + 1] {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                '\\' => out.push('\\'),
                other => {
                    out.push('\\');
                    out.push(other);
                }
            }
            i += 2;
            continue;
        } else {
            out.push(c);
        }
        i += 1;
    }
    out
}
