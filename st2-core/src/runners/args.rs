//! StackStorm's shell quoting and script argument passing, byte for byte:
//! - [`quote_unix`] is Python's `shlex.quote` (`st2common.util.shell.quote_unix`);
//! - [`script_arguments`] is `ShellScriptAction._get_script_arguments` over
//!   `action_db.get_args`: named parameters become `<kwarg_op><name>=<quoted str(value)>`
//!   (`true` → the bare `<kwarg_op><name>`, `false`, `null` and `""` → nothing), then the
//!   parameters with a `position`, in position order, serialized by their declared type
//!   (`serialize_positional_argument`) and quoted;
//! - [`py_str`] is Python's `str()` of a JSON value ([`crate::pyfmt::str`]), which is what
//!   named arguments carry (`['a', 'b']`, `{'k': 1}`, `True`, `1e+20`).

use crate::pyfmt::truthy;
use std::collections::BTreeMap;

use serde_json::Value;

use crate::model::{Action, JsonMap, ParamType};
use crate::pyfmt::{self, ControlEscapes};

/// Python's `shlex.quote`: the string itself when it only has `[A-Za-z0-9_@%+=:,./-]`,
/// `''` when empty, otherwise single-quoted with `'` written as `'"'"'`.
pub(crate) fn quote_unix(s: &str) -> String {
    if s.is_empty() {
        return "''".to_string();
    }
    let safe = s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_@%+=:,./-".contains(&b));
    if safe {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', "'\"'\"'"))
}

/// Python's `str()` of a JSON value as StackStorm's Python sees it (CPython's escapes).
pub(crate) fn py_str(v: &Value) -> String {
    pyfmt::str(v, ControlEscapes::All)
}

/// StackStorm's `serialize_positional_argument`: how a positional script argument is
/// written, by the parameter's declared type.
fn serialize_positional(ty: Option<ParamType>, v: Option<&Value>) -> String {
    let v = v.unwrap_or(&Value::Null);
    match ty {
        Some(ParamType::String) | Some(ParamType::Number) => match v {
            Value::Null => String::new(),
            other => py_str(other),
        },
        Some(ParamType::Boolean) => match v {
            Value::Null => String::new(),
            other => if truthy(other) { "1" } else { "0" }.to_string(),
        },
        Some(ParamType::Array) => match v {
            Value::Array(a) if !a.is_empty() => a.iter().map(py_str).collect::<Vec<_>>().join(","),
            Value::String(s) => s.clone(),
            _ => String::new(),
        },
        Some(ParamType::Object) => {
            if truthy(v) {
                v.to_string()
            } else {
                String::new()
            }
        }
        Some(ParamType::Null) => String::new(),
        // integer, or no declared type: `str(value) if value else ""`.
        Some(ParamType::Integer) | None => {
            if truthy(v) {
                py_str(v)
            } else {
                String::new()
            }
        }
    }
}

/// The argument string of a script action: named arguments (action parameters without a
/// `position`, in the order of `action_params`), then the positional ones. Empty when there
/// are none.
pub(crate) fn script_arguments(action: &Action, action_params: &JsonMap, kwarg_op: &str) -> String {
    // position → name; a later parameter with the same position wins, as in StackStorm's dict.
    let mut by_position: BTreeMap<u32, &str> = BTreeMap::new();
    for (name, spec) in &action.parameters {
        if let Some(pos) = spec.position {
            by_position.insert(pos, name.as_str());
        }
    }
    let positional_names: Vec<&str> = by_position.values().copied().collect();

    let mut parts: Vec<String> = Vec::new();
    for (name, value) in action_params {
        if positional_names.contains(&name.as_str()) {
            continue;
        }
        let arg = format!("{kwarg_op}{name}");
        match value {
            Value::Null => {}
            Value::String(s) if s.is_empty() => {}
            Value::Bool(true) => parts.push(arg),
            Value::Bool(false) => {}
            other => parts.push(format!(
                "{}={}",
                quote_unix(&arg),
                quote_unix(&py_str(other))
            )),
        }
    }
    if !positional_names.is_empty() {
        let quoted: Vec<String> = positional_names
            .iter()
            .map(|name| {
                let ty = action.parameters.get(*name).and_then(|s| s.param_type);
                quote_unix(&serialize_positional(ty, action_params.get(*name)))
            })
            .collect();
        parts.push(quoted.join(" "));
    }
    parts.join(" ")
}

/// `sudo` flags: `-S` (password on stdin) when a password is given, then `-E` (keep the
/// environment), as StackStorm's `_get_common_sudo_arguments`.
pub(crate) fn sudo_prefix(with_password: bool) -> &'static str {
    if with_password {
        "sudo -S -E -- bash -c"
    } else {
        "sudo -E -- bash -c"
    }
}

/// `export K=V ...` with keys and values quoted (`_get_env_vars_export_string`); empty when
/// there is nothing to export.
pub(crate) fn export_string(env: &[(String, String)]) -> String {
    if env.is_empty() {
        return String::new();
    }
    let pairs: Vec<String> = env
        .iter()
        .map(|(k, v)| format!("{}={}", quote_unix(k), quote_unix(v)))
        .collect();
    format!("export {}", pairs.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ParamMap, ParamSpec};
    use serde_json::json;

    #[test]
    fn shlex_quote() {
        let cases = [
            ("", "''"),
            ("abc", "abc"),
            ("a-b_c/d.e:f,g@h%i+j=k", "a-b_c/d.e:f,g@h%i+j=k"),
            ("mamma mia", "'mamma mia'"),
            ("it's", "'it'\"'\"'s'"),
            ("foo\nbar", "'foo\nbar'"),
            ("ｆｏｏ", "'ｆｏｏ'"),
            ("$HOME", "'$HOME'"),
        ];
        for (input, want) in cases {
            assert_eq!(quote_unix(input), want, "{input:?}");
        }
    }

    fn action(params: &[(&str, Option<ParamType>, Option<u32>)]) -> Action {
        let mut map = ParamMap::new();
        for (name, ty, pos) in params {
            map.insert(
                name.to_string(),
                ParamSpec {
                    param_type: *ty,
                    position: *pos,
                    ..ParamSpec::default()
                },
            );
        }
        Action {
            id: String::new(),
            name: "a".into(),
            pack: "p".into(),
            action_ref: "p.a".into(),
            uid: String::new(),
            description: None,
            enabled: true,
            runner_type: "local-shell-script".into(),
            entry_point: "a.sh".into(),
            parameters: map,
            output_schema: None,
            notify: None,
            tags: Vec::new(),
            metadata_file: None,
        }
    }

    fn obj(v: Value) -> JsonMap {
        match v {
            Value::Object(o) => o,
            _ => JsonMap::new(),
        }
    }

    #[test]
    fn named_and_positional_arguments() {
        // StackStorm's test_command_construction_with_parameters and
        // test_command_construction_correct_default_parameter_values_are_used.
        let a = action(&[]);
        let p = obj(json!({"key1": "value1", "key2": "value2", "key3": "value 3"}));
        assert_eq!(
            script_arguments(&a, &p, ""),
            "key1=value1 key2=value2 key3='value 3'"
        );
        assert_eq!(
            script_arguments(&a, &p, "--"),
            "--key1=value1 --key2=value2 --key3='value 3'"
        );

        let a = action(&[
            ("project", Some(ParamType::String), Some(0)),
            ("version", Some(ParamType::String), Some(1)),
            ("fork", Some(ParamType::String), Some(2)),
            ("branch", Some(ParamType::String), Some(3)),
            ("update_changelog", Some(ParamType::Boolean), Some(4)),
            ("local_repo", Some(ParamType::String), Some(5)),
        ]);
        let p = obj(
            json!({"project": "st2flow", "version": "3.0.0", "fork": "StackStorm",
            "branch": "master", "update_changelog": false, "local_repo": "/tmp/repo"}),
        );
        assert_eq!(
            script_arguments(&a, &p, "--"),
            "st2flow 3.0.0 StackStorm master 0 /tmp/repo"
        );
        let p = obj(
            json!({"project": "st2web", "version": "3.1.0", "fork": "StackStorm1",
            "branch": "master", "update_changelog": true, "local_repo": "/tmp/repob"}),
        );
        assert_eq!(
            script_arguments(&a, &p, "--"),
            "st2web 3.1.0 StackStorm1 master 1 /tmp/repob"
        );
    }

    #[test]
    fn argument_edge_cases() {
        let a = action(&[
            ("count", Some(ParamType::Integer), Some(0)),
            ("tags", Some(ParamType::Array), Some(1)),
            ("data", Some(ParamType::Object), Some(2)),
            ("missing", Some(ParamType::String), Some(3)),
        ]);
        let p = obj(json!({
            "flag": true, "off": false, "none": null, "empty": "", "n": 3, "l": ["a", "b"],
            "count": 0, "tags": ["x", 2], "data": {"k": "v w"}
        }));
        assert_eq!(
            script_arguments(&a, &p, "--"),
            r#"--flag --n=3 --l='['"'"'a'"'"', '"'"'b'"'"']' '' x,2 '{"k":"v w"}' ''"#
        );
        // No parameters at all.
        assert_eq!(script_arguments(&action(&[]), &JsonMap::new(), "--"), "");
    }

    #[test]
    fn exports() {
        let env = vec![
            ("A".to_string(), "1".to_string()),
            ("B C".to_string(), "x y".to_string()),
        ];
        assert_eq!(export_string(&env), "export A=1 'B C'='x y'");
        assert_eq!(export_string(&[]), "");
    }
}
