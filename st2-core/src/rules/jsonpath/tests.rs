//! `jsonpath_rw` compatibility, checked against version 1.4.0.

use super::*;
use serde_json::json;
use std::borrow::Cow;

fn payload() -> Json {
    json!({
        "headers": {"X-Y": "v", "a": [1, 2, 3]},
        "body": {"items": [{"x": 1}, {"x": 2}]},
        "n": null, "s": "abc", "d": {"k": 1}, "i": 5, "e": []
    })
}

/// Results recorded from `jsonpath_rw` 1.4.0 on the same data.
#[test]
fn matches_jsonpath_rw() {
    let p = payload();
    let ok: &[(&str, Json)] = &[
        ("trigger.headers.X-Y", json!(["v"])),
        ("trigger.headers['X-Y']", json!(["v"])),
        ("trigger.headers[\"X-Y\"]", json!(["v"])),
        ("trigger.body.items[0].x", json!([1])),
        ("trigger.body.items[-1].x", json!([2])),
        ("trigger.body.items[*].x", json!([1, 2])),
        ("trigger.s[0]", json!(["a"])),
        ("trigger.s[*]", json!(["abc"])),
        ("trigger.i[*]", json!([5])),
        ("trigger..x", json!([1, 2])),
        ("$.trigger.s", json!(["abc"])),
        ("trigger.headers.a[1:]", json!([2, 3])),
        ("trigger.headers.a[:2]", json!([1, 2])),
        ("trigger.headers.a[-2:]", json!([2, 3])),
        ("trigger.'where'", json!([])),
        ("trigger.body.items.x", json!([])),
        ("trigger.headers.a,X-Y", json!([[1, 2, 3], "v"])),
        ("trigger.body.items[0].x | trigger.s", json!([])),
        ("trigger.body.items where x", json!([])),
        ("trigger.body.items[*] where x", json!([{"x": 1}, {"x": 2}])),
        ("trigger.s.`this`", json!(["abc"])),
        ("trigger.d.k.`parent`", json!([{"k": 1}])),
        ("trigger.headers.[X-Y]", json!(["v"])),
        ("trigger.body.items[0][x]", json!([1])),
        ("trigger[s]", json!(["abc"])),
        ("trigger.body.items.[0]", json!([{"x": 1}])),
        ("trigger.s.x", json!([])),
        ("trigger..items[1]", json!([{"x": 2}])),
        ("trigger.headers.a[3]", json!([])),
        ("trigger.headers.a[-3]", json!([1])),
        ("(trigger).s", json!(["abc"])),
        ("trigger.e[0]", json!([])),
        ("payload.s", json!([])),
        ("trigger.n", json!([null])),
        ("trigger.missing", json!([])),
    ];
    for (path, want) in ok {
        let parsed = JsonPath::parse(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let got: Vec<Json> = parsed
            .find("trigger", &p)
            .unwrap_or_else(|e| panic!("{path}: {e}"))
            .into_iter()
            .map(Cow::into_owned)
            .collect();
        assert_eq!(Json::Array(got), *want, "{path}");
        let first = parsed
            .first("trigger", &p)
            .expect("no error")
            .map(Cow::into_owned);
        assert_eq!(
            first.as_ref(),
            want.as_array().and_then(|a| a.first()),
            "{path} first"
        );
    }
    let star = JsonPath::parse("trigger.*").expect("parses");
    assert_eq!(star.find("trigger", &p).expect("no error").len(), 7);
}

#[test]
fn errors_like_jsonpath_rw() {
    let p = payload();
    let err = |path: &str| -> String {
        match JsonPath::parse(path) {
            Err(e) => e.to_string(),
            Ok(parsed) => parsed
                .first("trigger", &p)
                .expect_err("an error")
                .to_string(),
        }
    };
    let cases = [
        ("trigger.body.items[-5].x", "list index out of range"),
        ("trigger.n[*]", "object of type 'NoneType' has no len()"),
        ("trigger.d[0]", "0"),
        ("trigger.i[0]", "object of type 'int' has no len()"),
        ("trigger.n[0]", "object of type 'NoneType' has no len()"),
        ("trigger.0", "Parse error at 1:8 near token 0 (NUMBER)"),
        (
            "trigger.where",
            "Parse error at 1:8 near token where (WHERE)",
        ),
        ("trigger.a b", "Parse error at 1:10 near token b (ID)"),
        (
            "trigger.body.items[0]x",
            "Parse error at 1:21 near token x (ID)",
        ),
        ("trigger.", "'NoneType' object has no attribute 'lineno'"),
        (
            "trigger.a!",
            "Error on line 1, col 9: Unexpected character: ! ",
        ),
        (
            "trigger.'a",
            "Unexpected EOF in string literal or identifier",
        ),
        ("trigger.`up`", "Unknown named operator `up` at 1:11"),
        ("trigger.a & trigger.b", "NotImplementedError"),
    ];
    for (path, want) in cases {
        assert_eq!(err(path), want, "{path}");
    }
}

#[test]
fn simple_paths_take_the_fast_path() {
    for path in [
        "trigger.a.b",
        "trigger.headers['X-Y']",
        "trigger.a[0].b",
        "trigger",
    ] {
        assert!(
            JsonPath::parse(path).expect("parses").simple.is_some(),
            "{path}"
        );
    }
    for path in [
        "trigger.*",
        "trigger..a",
        "$.trigger",
        "trigger.a[*]",
        "trigger.a,b",
    ] {
        assert!(
            JsonPath::parse(path).expect("parses").simple.is_none(),
            "{path}"
        );
    }
}
