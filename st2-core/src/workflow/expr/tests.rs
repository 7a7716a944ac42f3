//! Table-driven tests of the expression dialects and Orquesta's functions.
use super::*;
use serde_json::json;

fn vars() -> Map<String, Value> {
    json!({"n": 3, "name": "web", "list": [1, 2], "flag": true})
        .as_object()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn jinja_whole_expression_keeps_type() {
    let v = vars();
    let scope = Scope::vars(&v);
    let cases = [
        ("{{ ctx().n }}", json!(3)),
        ("{{ ctx('list') }}", json!([1, 2])),
        ("{{ ctx().flag }}", json!(true)),
        ("  {{ ctx().n + 1 }} ", json!(4)),
        ("{{ ctx().name }}", json!("web")),
        ("host-{{ ctx().name }}-{{ ctx().n }}", json!("host-web-3")),
        ("plain", json!("plain")),
        ("{{ zip([1, 2], ['a', 'b']) }}", json!([[1, "a"], [2, "b"]])),
        ("{{ json('{\"a\": 1}').a }}", json!(1)),
        ("{{ ctx().list | length }}", json!(2)),
    ];
    for (expr, want) in cases {
        assert_eq!(evaluate(expr, &scope).expect(expr), want, "{expr}");
    }
}

#[test]
fn nested_values_render_recursively() {
    let v = vars();
    let scope = Scope::vars(&v);
    let value = json!({"a": ["{{ ctx().n }}", {"b": "x{{ ctx().name }}"}], "c": 1});
    assert_eq!(
        render(&value, &scope).expect("renders"),
        json!({"a": [3, {"b": "xweb"}], "c": 1})
    );
}

#[test]
fn task_functions() {
    let v = vars();
    let result = json!({"stdout": "ok"});
    let statuses: BTreeMap<String, String> = [("t1".to_string(), "failed".to_string())]
        .into_iter()
        .collect();
    let item = json!({"x": 1});
    let scope = Scope {
        vars: &v,
        task: Some(TaskView {
            id: "t2",
            route: 0,
            status: Some("succeeded"),
            result: Some(&result),
        }),
        item: Some(&item),
        statuses: &statuses,
        kv: None,
    };
    let cases = [
        ("{{ succeeded() }}", json!(true)),
        ("{{ failed() }}", json!(false)),
        ("{{ completed() }}", json!(true)),
        ("{{ result().stdout }}", json!("ok")),
        ("{{ task_status('t1') }}", json!("failed")),
        ("{{ task().id }}", json!("t2")),
        ("{{ item('x') }}", json!(1)),
        ("{{ item().x }}", json!(1)),
    ];
    for (expr, want) in cases {
        assert_eq!(evaluate(expr, &scope).expect(expr), want, "{expr}");
    }
}

#[test]
fn errors_are_values() {
    let v = vars();
    let scope = Scope::vars(&v);
    for expr in [
        "{{ ctx().missing.deeper }}",
        "{{ ctx('missing') }}",
        "{{ result() }}",
        "{{ 1 + }}",
        "{{ item() }}",
    ] {
        let err = evaluate(expr, &scope).expect_err(expr);
        assert_eq!(err.kind, "JinjaEvaluationException", "{expr}");
        assert!(err.message.contains(expr), "{expr}: {}", err.message);
    }
    assert!(check("{{ 1 + }}").is_err());
    assert!(check("{{ ctx().n }}").is_ok());
    assert!(check("<% $.x ").is_err());
}

#[test]
fn st2kv_goes_through_the_source() {
    struct Kv;
    impl KvSource for Kv {
        fn get(&self, key: &str, decrypt: bool) -> Result<Option<Value>, String> {
            Ok((key == "system.k").then(|| json!(if decrypt { "plain" } else { "cipher" })))
        }
    }
    let v = vars();
    let kv: Arc<dyn KvSource> = Arc::new(Kv);
    let scope = Scope {
        kv: Some(&kv),
        ..Scope::vars(&v)
    };
    assert_eq!(
        evaluate("{{ st2kv('system.k', true) }}", &scope).expect("kv"),
        json!("plain")
    );
    assert!(evaluate("{{ st2kv('system.nope') }}", &scope).is_err());
}

#[test]
fn truthiness_is_python_like() {
    for (v, want) in [
        (json!(null), false),
        (json!(0), false),
        (json!(""), false),
        (json!([]), false),
        (json!("x"), true),
        (json!(1), true),
    ] {
        assert_eq!(truthy(&v), want, "{v}");
    }
}

#[test]
fn yaql_whole_expression_keeps_type_and_reaches_orquesta_functions() {
    let v = vars();
    let scope = Scope::vars(&v);
    let cases = [
        ("<% ctx().n %>", json!(3)),
        ("<% ctx(n) %>", json!(3)),
        ("<% ctx().n + 1 %>", json!(4)),
        ("<% ctx().list.select($ * 10) %>", json!([10, 20])),
        ("<% len(ctx().list) %>", json!(2)),
        ("<% ctx().flag and ctx().n > 2 %>", json!(true)),
        ("host-<% ctx().name %>-<% ctx().n %>", json!("host-web-3")),
        ("<% zip([1, 2], ['a', 'b']) %>", json!([[1, "a"], [2, "b"]])),
        ("<% dict(a => ctx().n) %>", json!({"a": 3})),
    ];
    for (expr, want) in cases {
        assert_eq!(evaluate(expr, &scope).expect(expr), want, "{expr}");
    }
    for bad in [
        "<% ctx().n + %>",
        "<% nosuchfunction() %>",
        "<% ctx(missing) %>",
    ] {
        let err = evaluate(bad, &scope).expect_err(bad);
        assert_eq!(err.kind, "YaqlEvaluationException", "{bad}: {err:?}");
    }
    assert!(check("<% ctx().n + %>").is_err());
    assert!(check("<% ctx().n %>").is_ok());
}
