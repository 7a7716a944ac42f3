//! StackStorm's Jinja filters (`st2common/util/jinja.py` → `expressions/functions/*.py`), each
//! also registered as a function the way Orquesta calls them (`json_dump(x)`), plus the
//! Orquesta aliases `json_dump`, `json_parse`, `yaml_dump`, `yaml_parse`, and the output
//! formatter that prints values the way CPython's `str()` does (`True`, `None`, `['a']`).
//!
//! Outputs follow the Python implementations exactly where the tests in StackStorm pin them
//! (`to_human_time_from_seconds(12345)` is `3h25m45s`, `json_escape` strips quotes, ...).
//! Pure: the only outside call is the [`Decrypter`](super::Decrypter) hook of `decrypt_kv`.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, PoisonError};

use minijinja::value::{Kwargs, Rest, Value, ValueKind};
use minijinja::{Environment, Error, ErrorKind, Output, State, UndefinedBehavior};
use regex::{Regex, RegexBuilder};
use serde_json::Value as Json;

use super::context::{kv_text, DecrypterHandle, KvNode, DECRYPTER_VAR};
use super::python::{self, JsonDumps};
use super::NONE_MAGIC_VALUE;

/// Every StackStorm filter name (the Orquesta aliases included), each also a global function.
pub const FILTER_NAMES: &[&str] = &[
    "decrypt_kv",
    "from_json_string",
    "from_yaml_string",
    "json_escape",
    "jsonpath_query",
    "to_complex",
    "to_json_string",
    "to_yaml_string",
    "json_dump",
    "json_parse",
    "yaml_dump",
    "yaml_parse",
    "regex_match",
    "regex_replace",
    "regex_search",
    "regex_substring",
    "to_human_time_from_seconds",
    "version_compare",
    "version_more_than",
    "version_less_than",
    "version_equal",
    "version_match",
    "version_bump_major",
    "version_bump_minor",
    "version_bump_patch",
    "version_strip_patch",
    "use_none",
    "basename",
    "dirname",
];

/// Registers StackStorm's filters (and functions of the same names), Jinja-compatible `int`
/// and `float`, and the Python-style output formatter.
pub(super) fn register(env: &mut Environment<'static>) {
    macro_rules! both {
        ($($name:literal => $f:expr),* $(,)?) => {$(
            env.add_filter($name, $f);
            env.add_function($name, $f);
        )*};
    }
    both! {
        "decrypt_kv" => decrypt_kv,
        "from_json_string" => from_json_string,
        "from_yaml_string" => from_yaml_string,
        "json_escape" => json_escape,
        "jsonpath_query" => jsonpath_query,
        "to_complex" => to_complex,
        "to_json_string" => to_json_string,
        "to_yaml_string" => to_yaml_string,
        "json_dump" => to_json_string,
        "json_parse" => from_json_string,
        "yaml_dump" => to_yaml_string,
        "yaml_parse" => from_yaml_string,
        "regex_match" => regex_match,
        "regex_replace" => regex_replace,
        "regex_search" => regex_search,
        "regex_substring" => regex_substring,
        "to_human_time_from_seconds" => to_human_time_from_seconds,
        "version_compare" => version_compare,
        "version_more_than" => version_more_than,
        "version_less_than" => version_less_than,
        "version_equal" => version_equal,
        "version_match" => version_match,
        "version_bump_major" => version_bump_major,
        "version_bump_minor" => version_bump_minor,
        "version_bump_patch" => version_bump_patch,
        "version_strip_patch" => version_strip_patch,
        "use_none" => use_none,
        "basename" => basename,
        "dirname" => dirname,
    }
    // Jinja's int/float never fail: unconvertible input gives the default (0).
    env.add_filter("int", jinja_int);
    env.add_filter("float", jinja_float);
    env.set_formatter(format_value);
}

/// Prints a value like Python's `str()`; strict undefined values are errors.
fn format_value(out: &mut Output, state: &State, value: &Value) -> Result<(), Error> {
    if value.is_undefined() {
        if state.undefined_behavior() == UndefinedBehavior::Strict {
            return Err(Error::from(ErrorKind::UndefinedError));
        }
        return Ok(());
    }
    if value.kind() == ValueKind::String {
        return minijinja::escape_formatter(out, state, value);
    }
    python::write_str(out, value).map_err(Error::from)
}

/// Strict mode: an undefined value given to a filter is an error (Python's `StrictUndefined`
/// refuses every use).
fn defined(state: &State, value: &Value) -> Result<(), Error> {
    if value.is_undefined() && state.undefined_behavior() == UndefinedBehavior::Strict {
        return Err(Error::from(ErrorKind::UndefinedError));
    }
    Ok(())
}

fn invalid(msg: impl Into<Cow<'static, str>>) -> Error {
    Error::new(ErrorKind::InvalidOperation, msg)
}

/// Python `str(value)`, datastore lookups read.
fn text(value: &Value) -> String {
    kv_text(value).unwrap_or_else(|| python::to_str(value))
}

/// The value as JSON, datastore lookups read.
fn json_of(value: &Value) -> Json {
    match kv_text(value) {
        Some(t) => Json::String(t),
        None => python::to_json(value),
    }
}

// ---- data ---------------------------------------------------------------------------------

/// `to_json_string(value, indent=None, sort_keys=False)`: `json.dumps` with `,`/`: `
/// separators (StackStorm's defaults).
fn to_json_string(
    state: &State,
    value: &Value,
    indent: Option<i64>,
    sort_keys: Option<bool>,
    kwargs: Kwargs,
) -> Result<String, Error> {
    defined(state, value)?;
    let indent = match indent {
        Some(i) => Some(i),
        None => kwargs.get::<Option<i64>>("indent")?,
    };
    let sort_keys = match sort_keys {
        Some(s) => s,
        None => kwargs.get::<Option<bool>>("sort_keys")?.unwrap_or(false),
    };
    let separators: Option<Vec<String>> = kwargs.get("separators")?;
    kwargs.assert_all_used()?;
    let (item_sep, key_sep) = match separators.as_deref() {
        Some([item, key]) => (item.clone(), key.clone()),
        Some(_) => return Err(invalid("separators must be a pair of strings")),
        None => (",".to_string(), ": ".to_string()),
    };
    let opts = JsonDumps {
        indent: indent.map(|i| usize::try_from(i).unwrap_or(0)),
        sort_keys,
        item_sep: &item_sep,
        key_sep: &key_sep,
    };
    Ok(opts.dumps(&json_of(value)))
}

/// `from_json_string(value)`: `json.loads`.
fn from_json_string(state: &State, value: &Value) -> Result<Value, Error> {
    defined(state, value)?;
    let parsed: Json = serde_json::from_str(&text(value))
        .map_err(|e| invalid(format!("from_json_string: {e}")))?;
    Ok(Value::from_serialize(&parsed))
}

/// `to_yaml_string(value, indent=None, allow_unicode=True)`: `yaml.safe_dump` block style,
/// keys sorted (PyYAML's default).
fn to_yaml_string(
    state: &State,
    value: &Value,
    _indent: Option<i64>,
    _allow_unicode: Option<bool>,
) -> Result<String, Error> {
    defined(state, value)?;
    let sorted = sort_keys(json_of(value));
    serde_yaml::to_string(&sorted).map_err(|e| invalid(format!("to_yaml_string: {e}")))
}

fn sort_keys(value: Json) -> Json {
    match value {
        Json::Object(map) => {
            let mut entries: Vec<(String, Json)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Json::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k, sort_keys(v)))
                    .collect(),
            )
        }
        Json::Array(items) => Json::Array(items.into_iter().map(sort_keys).collect()),
        other => other,
    }
}

/// `from_yaml_string(value)`: `yaml.safe_load`.
fn from_yaml_string(state: &State, value: &Value) -> Result<Value, Error> {
    defined(state, value)?;
    let parsed: serde_yaml::Value = serde_yaml::from_str(&text(value))
        .map_err(|e| invalid(format!("from_yaml_string: {e}")))?;
    Ok(Value::from_serialize(&parsed))
}

/// `json_escape(value)`: `json.dumps(value).strip('"')`.
fn json_escape(state: &State, value: &Value) -> Result<String, Error> {
    defined(state, value)?;
    Ok(JsonDumps::DEFAULT
        .dumps(&json_of(value))
        .trim_matches('"')
        .to_string())
}

/// `jsonpath_query(value, query)`: the list of matches, or None when nothing matches. The
/// query is jsonpath_rw style (`people[*].first`); a leading `$` is optional.
fn jsonpath_query(state: &State, value: &Value, query: &Value) -> Result<Value, Error> {
    defined(state, value)?;
    let query = text(query);
    let q = query.trim();
    let rfc = if q.starts_with('$') {
        q.to_string()
    } else if q.starts_with('[') || q.starts_with("..") {
        format!("${q}")
    } else {
        format!("$.{q}")
    };
    let path = serde_json_path::JsonPath::parse(&rfc)
        .map_err(|e| invalid(format!("jsonpath_query: invalid query {query:?}: {e}")))?;
    let doc = json_of(value);
    let matches: Vec<&Json> = path.query(&doc).all();
    if matches.is_empty() {
        return Ok(Value::from(()));
    }
    Ok(Value::from_serialize(&matches))
}

/// `to_complex(value)`: `json.dumps(value)`.
fn to_complex(state: &State, value: &Value) -> Result<String, Error> {
    defined(state, value)?;
    Ok(JsonDumps::DEFAULT.dumps(&json_of(value)))
}

/// `use_none(value)`: None becomes the magic string that turns back into null after rendering.
fn use_none(state: &State, value: Value) -> Result<Value, Error> {
    defined(state, &value)?;
    Ok(if value.is_none() {
        Value::from(NONE_MAGIC_VALUE)
    } else {
        value
    })
}

// ---- regex --------------------------------------------------------------------------------

/// How a pattern is anchored.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Anchor {
    /// `re.search` / `re.sub` / `re.findall`.
    None,
    /// `re.match`: at the start.
    Start,
}

/// Pattern text, ignorecase, anchoring.
type RegexKey = (String, bool, Anchor);

/// Compiled patterns, shared by all renders (patterns come from templates, so the set is small).
static REGEX_CACHE: LazyLock<Mutex<HashMap<RegexKey, Regex>>> = LazyLock::new(Default::default);

/// The Python pattern as a Rust regex (`\Z` → `\z`), case-insensitive if asked.
fn compile_regex(pattern: &str, ignorecase: bool, anchor: Anchor) -> Result<Regex, Error> {
    let key = (pattern.to_string(), ignorecase, anchor);
    let mut cache = REGEX_CACHE.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(re) = cache.get(&key) {
        return Ok(re.clone());
    }
    let translated = pattern.replace("\\Z", "\\z");
    let source = match anchor {
        Anchor::None => translated,
        Anchor::Start => format!("\\A(?:{translated})"),
    };
    let re = RegexBuilder::new(&source)
        .case_insensitive(ignorecase)
        .build()
        .map_err(|e| invalid(format!("invalid regular expression {pattern:?}: {e}")))?;
    if cache.len() >= 512 {
        cache.clear();
    }
    cache.insert(key, re.clone());
    Ok(re)
}

/// The `ignorecase` argument, positional or keyword (default false).
fn ignorecase_flag(positional: Option<bool>, kwargs: &Kwargs) -> Result<bool, Error> {
    let flag = match positional {
        Some(b) => b,
        None => kwargs.get::<Option<bool>>("ignorecase")?.unwrap_or(false),
    };
    kwargs.assert_all_used()?;
    Ok(flag)
}

/// Optional trailing arguments given by position or keyword, in `names` order.
fn optional_args<const N: usize>(
    extra: &[Value],
    names: [&str; N],
) -> Result<[Option<Value>; N], Error> {
    let mut out: [Option<Value>; N] = std::array::from_fn(|_| None);
    let mut next = 0;
    for value in extra {
        if value.is_kwargs() {
            let kwargs = Kwargs::try_from(value.clone())?;
            for (slot, name) in out.iter_mut().zip(names) {
                if let Some(v) = kwargs.get::<Option<Value>>(name)? {
                    *slot = Some(v);
                }
            }
            kwargs.assert_all_used()?;
        } else {
            let slot = out
                .get_mut(next)
                .ok_or_else(|| Error::from(ErrorKind::TooManyArguments))?;
            *slot = Some(value.clone());
            next += 1;
        }
    }
    Ok(out)
}

/// An optional flag: true when given and truthy.
fn is_true(value: Option<Value>) -> bool {
    value.is_some_and(|v| v.is_true())
}

/// `regex_match(value, pattern, ignorecase=False)`: `re.match`, anchored at the start.
fn regex_match(
    state: &State,
    value: &Value,
    pattern: &Value,
    ignorecase: Option<bool>,
    kwargs: Kwargs,
) -> Result<bool, Error> {
    defined(state, value)?;
    let re = compile_regex(
        &text(pattern),
        ignorecase_flag(ignorecase, &kwargs)?,
        Anchor::Start,
    )?;
    Ok(re.is_match(&text(value)))
}

/// `regex_search(value, pattern, ignorecase=False)`: `re.search`.
fn regex_search(
    state: &State,
    value: &Value,
    pattern: &Value,
    ignorecase: Option<bool>,
    kwargs: Kwargs,
) -> Result<bool, Error> {
    defined(state, value)?;
    let re = compile_regex(
        &text(pattern),
        ignorecase_flag(ignorecase, &kwargs)?,
        Anchor::None,
    )?;
    Ok(re.is_match(&text(value)))
}

/// `regex_replace(value, pattern, replacement, ignorecase=False)`: `re.sub`, every match;
/// Python replacement syntax (`\1`, `\g<name>`).
fn regex_replace(
    state: &State,
    value: &Value,
    pattern: &Value,
    replacement: &Value,
    extra: Rest<Value>,
) -> Result<String, Error> {
    defined(state, value)?;
    let [ignorecase] = optional_args(&extra, ["ignorecase"])?;
    let re = compile_regex(&text(pattern), is_true(ignorecase), Anchor::None)?;
    let repl = python_replacement(&text(replacement))?;
    Ok(re.replace_all(&text(value), repl.as_str()).into_owned())
}

/// Translates a Python `re.sub` replacement into `regex` syntax: `\1`/`\g<1>`/`\g<name>` →
/// `${1}`/`${name}`, `\n`-style escapes to their characters, `$` made literal.
fn python_replacement(repl: &str) -> Result<String, Error> {
    let mut out = String::with_capacity(repl.len());
    let mut chars = repl.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '$' => out.push_str("$$"),
            '\\' => match chars.next() {
                Some(d) if d.is_ascii_digit() => {
                    let mut group = d.to_string();
                    if let Some(&d2) = chars.peek() {
                        if d2.is_ascii_digit() {
                            group.push(d2);
                            chars.next();
                        }
                    }
                    out.push_str(&format!("${{{group}}}"));
                }
                Some('g') => {
                    if chars.next() != Some('<') {
                        return Err(invalid("regex_replace: missing < after \\g"));
                    }
                    let name: String = chars.by_ref().take_while(|c| *c != '>').collect();
                    if name.is_empty() {
                        return Err(invalid("regex_replace: missing group name"));
                    }
                    out.push_str(&format!("${{{name}}}"));
                }
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('r') => out.push('\r'),
                Some('f') => out.push('\u{c}'),
                Some('v') => out.push('\u{b}'),
                Some('a') => out.push('\u{7}'),
                Some('\\') => out.push('\\'),
                Some(other) => {
                    out.push('\\');
                    if other == '$' {
                        out.push_str("$$");
                    } else {
                        out.push(other);
                    }
                }
                None => return Err(invalid("regex_replace: bad escape (end of pattern)")),
            },
            c => out.push(c),
        }
    }
    Ok(out)
}

/// `regex_substring(value, pattern, result_index=0, ignorecase=False)`:
/// `re.findall(pattern, value)[result_index]` — the whole match without groups, the group
/// with one, a list of groups with several. No such match is an error (Python's IndexError).
fn regex_substring(
    state: &State,
    value: &Value,
    pattern: &Value,
    extra: Rest<Value>,
) -> Result<Value, Error> {
    defined(state, value)?;
    let [result_index, ignorecase] = optional_args(&extra, ["result_index", "ignorecase"])?;
    let result_index = match result_index {
        Some(v) => Some(i64::try_from(v)?),
        None => None,
    };
    let re = compile_regex(&text(pattern), is_true(ignorecase), Anchor::None)?;
    let haystack = text(value);
    let groups = re.captures_len() - 1;
    let found: Vec<Value> = re
        .captures_iter(&haystack)
        .map(|caps| {
            let group = |i: usize| caps.get(i).map_or("", |m| m.as_str()).to_string();
            match groups {
                0 => Value::from(group(0)),
                1 => Value::from(group(1)),
                n => Value::from((1..=n).map(|i| Value::from(group(i))).collect::<Vec<_>>()),
            }
        })
        .collect();
    let index = result_index.unwrap_or(0);
    let len = i64::try_from(found.len()).unwrap_or(i64::MAX);
    let pos = if index < 0 { len + index } else { index };
    usize::try_from(pos)
        .ok()
        .and_then(|p| found.get(p).cloned())
        .ok_or_else(|| {
            invalid(format!(
                "regex_substring: list index out of range (index {index}, {len} match(es))"
            ))
        })
}

// ---- time ---------------------------------------------------------------------------------

/// `to_human_time_from_seconds(seconds)`: `3h25m45s`, `0s`, `1y2d...`; StackStorm's algorithm
/// (offset from 0001-01-01, so the day count is the day of the month).
fn to_human_time_from_seconds(state: &State, value: &Value) -> Result<String, Error> {
    defined(state, value)?;
    if !(value.is_number() || value.kind() == ValueKind::Bool) {
        return Err(invalid(format!(
            "to_human_time_from_seconds: expected a number of seconds, got {}",
            value.kind()
        )));
    }
    let seconds = f64::try_from(value.clone()).map_err(|e| invalid(e.to_string()))?;
    if seconds == 0.0 {
        return Ok("0s".into());
    }
    if seconds < 1.0 {
        let shown = if value.is_integer() {
            value.to_string()
        } else {
            crate::pyfmt::float_repr(seconds)
        };
        return Ok(format!("{shown}\u{3bc}s"));
    }
    let total: i64 = if value.is_integer() {
        i64::try_from(value.clone()).map_err(|e| invalid(e.to_string()))?
    } else {
        // Python's round(): half to even.
        seconds.round_ties_even() as i64
    };
    let days = total / 86_400;
    let rem = total % 86_400;
    let out_of_range = || invalid("to_human_time_from_seconds: date value out of range");
    let start = chrono::NaiveDate::from_ymd_opt(1, 1, 1).ok_or_else(out_of_range)?;
    let date = u64::try_from(days)
        .ok()
        .and_then(|d| start.checked_add_days(chrono::Days::new(d)))
        .filter(|d| chrono::Datelike::year(d) <= 9999)
        .ok_or_else(out_of_range)?;
    let parts = [
        i64::from(chrono::Datelike::year(&date)) - 1,
        i64::from(chrono::Datelike::day(&date)) - 1,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
    ];
    let Some(first) = parts.iter().position(|p| *p != 0) else {
        return Ok("0s".into());
    };
    let units = ["y", "d", "h", "m", "s"];
    Ok(parts[first..]
        .iter()
        .zip(&units[first..])
        .map(|(p, u)| format!("{p}{u}"))
        .collect())
}

// ---- versions -----------------------------------------------------------------------------

fn parse_version(value: &Value) -> Result<semver::Version, Error> {
    let s = text(value);
    semver::Version::parse(s.trim()).map_err(|_| invalid(format!("{s} is not valid SemVer string")))
}

fn compare_versions(a: &Value, b: &Value) -> Result<i64, Error> {
    Ok(match parse_version(a)?.cmp_precedence(&parse_version(b)?) {
        std::cmp::Ordering::Less => -1,
        std::cmp::Ordering::Equal => 0,
        std::cmp::Ordering::Greater => 1,
    })
}

/// `version_compare(a, b)`: -1, 0 or 1 (`semver.compare`).
fn version_compare(state: &State, value: &Value, other: &Value) -> Result<i64, Error> {
    defined(state, value)?;
    compare_versions(value, other)
}

/// `version_more_than(a, b)`: `a > b`.
fn version_more_than(state: &State, value: &Value, other: &Value) -> Result<bool, Error> {
    defined(state, value)?;
    Ok(compare_versions(value, other)? == 1)
}

/// `version_less_than(a, b)`: `a < b`.
fn version_less_than(state: &State, value: &Value, other: &Value) -> Result<bool, Error> {
    defined(state, value)?;
    Ok(compare_versions(value, other)? == -1)
}

/// `version_equal(a, b)`: same precedence.
fn version_equal(state: &State, value: &Value, other: &Value) -> Result<bool, Error> {
    defined(state, value)?;
    Ok(compare_versions(value, other)? == 0)
}

/// `version_match(v, ">=1.0.0")`: `semver.match` (`<`, `>`, `==`, `<=`, `>=`, `!=`).
fn version_match(state: &State, value: &Value, expr: &Value) -> Result<bool, Error> {
    defined(state, value)?;
    let expr = text(expr);
    let (op, version) = ["<=", ">=", "==", "!=", "<", ">"]
        .iter()
        .find_map(|op| expr.strip_prefix(op).map(|rest| (*op, rest)))
        .ok_or_else(|| {
            invalid(format!(
                "match_expr parameter should be in format <op><ver>, where <op> is one of \
                 ['<', '>', '==', '<=', '>=', '!=']. You provided: {expr:?}"
            ))
        })?;
    let cmp = compare_versions(value, &Value::from(version))?;
    Ok(match op {
        ">" => cmp == 1,
        "<" => cmp == -1,
        "==" => cmp == 0,
        "!=" => cmp != 0,
        ">=" => cmp >= 0,
        _ => cmp <= 0,
    })
}

/// `version_bump_major("0.10.1")` → `1.0.0`.
fn version_bump_major(state: &State, value: &Value) -> Result<String, Error> {
    defined(state, value)?;
    let v = parse_version(value)?;
    Ok(format!("{}.0.0", v.major + 1))
}

/// `version_bump_minor("0.10.1")` → `0.11.0`.
fn version_bump_minor(state: &State, value: &Value) -> Result<String, Error> {
    defined(state, value)?;
    let v = parse_version(value)?;
    Ok(format!("{}.{}.0", v.major, v.minor + 1))
}

/// `version_bump_patch("0.10.1")` → `0.10.2`.
fn version_bump_patch(state: &State, value: &Value) -> Result<String, Error> {
    defined(state, value)?;
    let v = parse_version(value)?;
    Ok(format!("{}.{}.{}", v.major, v.minor, v.patch + 1))
}

/// `version_strip_patch("0.10.1")` → `0.10`.
fn version_strip_patch(state: &State, value: &Value) -> Result<String, Error> {
    defined(state, value)?;
    let v = parse_version(value)?;
    Ok(format!("{}.{}", v.major, v.minor))
}

// ---- paths --------------------------------------------------------------------------------

/// `basename(path)`: `os.path.basename` (POSIX): after the last `/`.
fn basename(state: &State, value: &Value) -> Result<String, Error> {
    defined(state, value)?;
    let p = text(value);
    Ok(match p.rfind('/') {
        Some(i) => p[i + 1..].to_string(),
        None => p,
    })
}

/// `dirname(path)`: `os.path.dirname` (POSIX): up to the last `/`, trailing slashes removed
/// unless the head is all slashes.
fn dirname(state: &State, value: &Value) -> Result<String, Error> {
    defined(state, value)?;
    let p = text(value);
    let head = match p.rfind('/') {
        Some(i) => &p[..=i],
        None => "",
    };
    Ok(if !head.is_empty() && !head.bytes().all(|b| b == b'/') {
        head.trim_end_matches('/').to_string()
    } else {
        head.to_string()
    })
}

// ---- crypto -------------------------------------------------------------------------------

/// `decrypt_kv(value)`: the plaintext of a datastore value (or of ciphertext text) through the
/// context's [`Decrypter`](super::Decrypter). A missing datastore key is an error; a value
/// stored unencrypted is returned as is.
fn decrypt_kv(state: &State, value: &Value) -> Result<Value, Error> {
    let ciphertext = match value.downcast_object_ref::<KvNode>() {
        Some(node) => match node.resolve() {
            None => {
                return Err(invalid(format!(
                    "Referenced datastore item \"{}\" doesn't exist",
                    node.full_name()
                )))
            }
            Some(kv) if !kv.encrypted => return Ok(Value::from(kv.value)),
            Some(kv) => kv.value,
        },
        None => text(value),
    };
    let decrypter = state
        .lookup(DECRYPTER_VAR)
        .and_then(|v| {
            v.downcast_object_ref::<DecrypterHandle>()
                .map(|h| h.0.clone())
        })
        .ok_or_else(|| invalid("decrypt_kv: no decryption key is configured"))?;
    let decrypter: Arc<dyn super::Decrypter> = decrypter;
    decrypter
        .decrypt(&ciphertext)
        .map(Value::from)
        .map_err(|e| invalid(format!("decrypt_kv: {e}")))
}

// ---- Jinja builtins with Python semantics ---------------------------------------------------

/// Jinja's `int(value, default=0, base=10)`: never fails, unconvertible input gives `default`.
fn jinja_int(
    state: &State,
    value: &Value,
    default: Option<Value>,
    base: Option<u32>,
) -> Result<Value, Error> {
    defined(state, value)?;
    let default = default.unwrap_or_else(|| Value::from(0));
    let base = base.unwrap_or(10);
    Ok(match value.kind() {
        ValueKind::Bool => Value::from(i64::from(value.is_true())),
        ValueKind::Number if value.is_integer() => value.clone(),
        ValueKind::Number => f64::try_from(value.clone())
            .map(|f| Value::from(f.trunc() as i64))
            .unwrap_or(default),
        ValueKind::String | ValueKind::Plain => {
            let s = text(value);
            let t = s.trim();
            let parsed = if base == 10 {
                python::parse_int(t)
            } else {
                let digits = t
                    .trim_start_matches("0x")
                    .trim_start_matches("0o")
                    .trim_start_matches("0b");
                i64::from_str_radix(digits, base).ok()
            };
            parsed
                .map(Value::from)
                .or_else(|| python::parse_float(t).map(|f| Value::from(f.trunc() as i64)))
                .unwrap_or(default)
        }
        _ => default,
    })
}

/// Jinja's `float(value, default=0.0)`.
fn jinja_float(state: &State, value: &Value, default: Option<Value>) -> Result<Value, Error> {
    defined(state, value)?;
    let default = default.unwrap_or_else(|| Value::from(0.0));
    Ok(match value.kind() {
        ValueKind::Bool => Value::from(if value.is_true() { 1.0 } else { 0.0 }),
        ValueKind::Number => f64::try_from(value.clone())
            .map(Value::from)
            .unwrap_or(default),
        ValueKind::String | ValueKind::Plain => python::parse_float(&text(value))
            .map(Value::from)
            .unwrap_or(default),
        _ => default,
    })
}
