//! Typed reads of final parameter values. Values are already cast by the parameter renderer;
//! these readers are lenient only where StackStorm's runners are (`null` means "not given").

use std::time::Duration;

use serde_json::Value;

use crate::model::JsonMap;

/// A string parameter; `None` when absent or `null`. Numbers and booleans are rendered as
/// text (a cast that did not happen upstream should not make the action fail).
pub(crate) fn str_param(m: &JsonMap, key: &str) -> Option<String> {
    match m.get(key)? {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        other => Some(other.to_string()),
    }
}

/// A non-empty string parameter.
pub(crate) fn nonempty_str_param(m: &JsonMap, key: &str) -> Option<String> {
    str_param(m, key).filter(|s| !s.is_empty())
}

/// A boolean parameter (`"true"`/`"false"` strings accepted), `default` when absent or `null`.
pub(crate) fn bool_param(m: &JsonMap, key: &str, default: bool) -> bool {
    match m.get(key) {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => match s.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "y" | "on" => true,
            "false" | "0" | "no" | "n" | "off" | "" => false,
            _ => default,
        },
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
        _ => default,
    }
}

/// A number of seconds (integer or float), `None` when absent or `null`.
pub(crate) fn seconds_param(m: &JsonMap, key: &str) -> Option<f64> {
    match m.get(key)? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// The `timeout` runner parameter: `default` seconds when absent; zero or negative means no
/// limit. Returns the limit and the value as StackStorm prints it in its timeout message.
pub(crate) fn timeout_param(m: &JsonMap, default: u64) -> (Option<Duration>, String) {
    let raw = m.get("timeout").filter(|v| !v.is_null());
    let secs = seconds_param(m, "timeout").unwrap_or(default as f64);
    let shown = match raw {
        Some(Value::Number(n)) => n.to_string(),
        _ => default.to_string(),
    };
    let limit = (secs > 0.0 && secs.is_finite()).then(|| Duration::from_secs_f64(secs));
    (limit, shown)
}

/// Renders a JSON value as an environment variable value: strings as they are, anything
/// else as JSON text.
pub(crate) fn env_value(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// The `env` runner parameter as `(name, value)` pairs, in the given order. An object is the
/// normal form; a `k1=v1,k2=v2` string (the form StackStorm's parameter help shows) is
/// accepted too.
pub(crate) fn env_param(m: &JsonMap) -> Vec<(String, String)> {
    match m.get("env") {
        Some(Value::Object(o)) => o.iter().map(|(k, v)| (k.clone(), env_value(v))).collect(),
        Some(Value::String(s)) => s
            .split(',')
            .filter_map(|kv| {
                let (k, v) = kv.split_once('=')?;
                let k = k.trim();
                (!k.is_empty()).then(|| (k.to_string(), v.to_string()))
            })
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> JsonMap {
        match v {
            Value::Object(o) => o,
            _ => JsonMap::new(),
        }
    }

    #[test]
    fn timeouts() {
        let cases = [
            (json!({}), Some(60.0), "60"),
            (json!({"timeout": null}), Some(60.0), "60"),
            (json!({"timeout": 5}), Some(5.0), "5"),
            (json!({"timeout": 0.5}), Some(0.5), "0.5"),
            (json!({"timeout": 0}), None, "0"),
        ];
        for (m, secs, shown) in cases {
            let (d, s) = timeout_param(&map(m.clone()), 60);
            assert_eq!(d.map(|d| d.as_secs_f64()), secs, "{m}");
            assert_eq!(s, shown, "{m}");
        }
    }

    #[test]
    fn env_forms() {
        let m = map(json!({"env": {"A": "1", "B": 2, "C": true}}));
        assert_eq!(
            env_param(&m),
            vec![
                ("A".into(), "1".into()),
                ("B".into(), "2".into()),
                ("C".into(), "true".into())
            ]
        );
        let m = map(json!({"env": "A=1,B=x=y"}));
        assert_eq!(
            env_param(&m),
            vec![("A".into(), "1".into()), ("B".into(), "x=y".into())]
        );
    }

    #[test]
    fn bools() {
        let m = map(json!({"a": true, "b": "false", "c": null}));
        assert!(bool_param(&m, "a", false));
        assert!(!bool_param(&m, "b", true));
        assert!(bool_param(&m, "c", true));
        assert!(!bool_param(&m, "missing", false));
    }
}
