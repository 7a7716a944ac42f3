//! Parameter rendering: dependency order, cycles, casts, immutable/required/enum, contexts.

use std::sync::Arc;

use serde_json::{json, Value as Json};

use super::*;
use crate::model::ParamType;
use crate::template::{StaticKv, TemplateEngine, NONE_MAGIC_VALUE};

/// Specs from a JSON object (`name → spec`), the way they are written in metadata.
fn specs(value: Json) -> ParamMap {
    serde_json::from_value(value).expect("valid specs")
}

fn map(value: Json) -> JsonMap {
    match value {
        Json::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

fn renderer(spec: Json) -> ParamRenderer {
    ParamRenderer::new(&TemplateEngine::new(), specs(spec))
}

#[test]
fn defaults_render_in_dependency_order() {
    // Declared before what they depend on: order comes from the graph, not the file.
    let r = renderer(json!({
        "a": {"type": "string", "default": "{{ b }}-a"},
        "b": {"type": "string", "default": "{{ c }}-b"},
        "c": {"type": "string"},
        "d": {"type": "string", "default": "plain"}
    }));
    let out = r.render(&map(json!({"c": "c"}))).expect("render");
    assert_eq!(
        Json::Object(out),
        json!({"a": "c-b-a", "b": "c-b", "c": "c", "d": "plain"})
    );
}

#[test]
fn cycles_are_named() {
    let r = renderer(json!({
        "a": {"type": "string", "default": "{{ b }}"},
        "b": {"type": "string", "default": "{{ c }}"},
        "c": {"type": "string", "default": "{{ a }}"},
        "ok": {"type": "string", "default": "fine"}
    }));
    match r.render(&JsonMap::new()) {
        Err(ParamError::Cycle { cycle }) => {
            assert_eq!(cycle.first(), cycle.last());
            let mut names: Vec<_> = cycle[..cycle.len() - 1].to_vec();
            names.sort();
            assert_eq!(names, vec!["a", "b", "c"]);
        }
        other => panic!("expected a cycle, got {other:?}"),
    }
    let selfref = renderer(json!({"a": {"type": "string", "default": "x{{ a }}"}}));
    let err = selfref.render(&JsonMap::new()).expect_err("self reference");
    assert_eq!(
        err,
        ParamError::Cycle {
            cycle: vec!["a".into(), "a".into()]
        }
    );
    assert!(err
        .to_string()
        .contains("Cyclic dependency found in the following variables: a -> a"));
}

#[test]
fn casts_from_strings() {
    use ParamType::*;
    let table: Vec<(Option<ParamType>, Json, Result<Json, ()>)> = vec![
        (Some(Integer), json!("5"), Ok(json!(5))),
        (Some(Integer), json!(" -7 "), Ok(json!(-7))),
        (Some(Integer), json!(5.9), Ok(json!(5))),
        (Some(Integer), json!(true), Ok(json!(1))),
        (Some(Integer), json!("1.5"), Err(())),
        (Some(Integer), json!(""), Err(())),
        (Some(Integer), json!([1]), Err(())),
        (Some(Number), json!("1.5"), Ok(json!(1.5))),
        (Some(Number), json!("3"), Ok(json!(3.0))),
        (Some(Number), json!(2), Ok(json!(2.0))),
        (Some(Number), json!("x"), Err(())),
        (Some(Boolean), json!("true"), Ok(json!(true))),
        (Some(Boolean), json!("False"), Ok(json!(false))),
        (Some(Boolean), json!("TRUE"), Ok(json!(true))),
        (Some(Boolean), json!(false), Ok(json!(false))),
        (Some(Boolean), json!("yes"), Err(())),
        (Some(Array), json!("[1, 2]"), Ok(json!([1, 2]))),
        (Some(Array), json!("['a', 'b']"), Ok(json!(["a", "b"]))),
        (Some(Array), json!(["x"]), Ok(json!(["x"]))),
        (Some(Array), json!("\\invalid"), Err(())),
        (Some(Object), json!("{\"a\": 1}"), Ok(json!({"a": 1}))),
        (
            Some(Object),
            json!("{'a': True, 'b': None}"),
            Ok(json!({"a": true, "b": null})),
        ),
        (Some(String), json!("x"), Ok(json!("x"))),
        (Some(String), json!(""), Ok(json!(""))),
        (Some(String), json!(5), Err(())),
        (Some(Null), json!("x"), Ok(json!("x"))),
        (None, json!("5"), Ok(json!("5"))),
        (Some(Integer), json!(null), Ok(json!(null))),
        (Some(Integer), json!(NONE_MAGIC_VALUE), Ok(json!(null))),
        (None, json!(NONE_MAGIC_VALUE), Ok(json!(null))),
    ];
    for (ty, input, want) in table {
        let got = cast_value(input.clone(), ty).map_err(|_| ());
        assert_eq!(got, want, "{ty:?} from {input}");
    }
    let err = cast_value(json!(5), Some(String)).expect_err("string");
    assert_eq!(
        err,
        "Value \"5\" must either be a string or None. Got \"int\"."
    );
}

#[test]
fn rendered_values_are_cast_to_declared_types() {
    let r = renderer(json!({
        "n": {"type": "integer"},
        "count": {"type": "integer", "default": "{{ n + 1 }}"},
        "ratio": {"type": "number", "default": "{{ n / 2 }}"},
        "flag": {"type": "boolean", "default": "{{ n > 1 }}"},
        "items": {"type": "array", "default": "{{ [n, 'x'] }}"},
        "obj": {"type": "object", "default": "{{ {'k': n} | to_json_string }}"},
        "nothing": {"type": "integer", "default": "{{ none | use_none }}"},
        "complex": {"type": "object", "default": {"n": "{{n}}", "text": "n={{ n }}", "raw": 1}}
    }));
    // Templates see given values as given (StackStorm casts after rendering): n is an int.
    let out = r.render(&map(json!({"n": 2}))).expect("render");
    assert_eq!(
        Json::Object(out),
        json!({
            "n": 2,
            "count": 3,
            "ratio": 1.0,
            "flag": true,
            "items": [2, "x"],
            "obj": {"k": 2},
            "nothing": null,
            "complex": {"n": 2, "text": "n=2", "raw": 1}
        })
    );
    let err = r.render(&map(json!({"n": "2"}))).expect_err("string + int");
    assert!(
        matches!(err, ParamError::Render { ref name, .. } if name == "count"),
        "{err}"
    );
    let bad = renderer(json!({"n": {"type": "integer", "default": "{{ 'abc' }}"}}));
    assert!(matches!(
        bad.render(&JsonMap::new()),
        Err(ParamError::Cast { ref name, .. }) if name == "n"
    ));
}

#[test]
fn immutable_params() {
    let r = renderer(json!({
        "sudo": {"type": "boolean", "default": false, "immutable": true},
        "cmd": {"type": "string", "immutable": true, "default": "echo {{ who }}"},
        "who": {"type": "string", "default": "me"}
    }));
    let out = r.render(&JsonMap::new()).expect("defaults");
    assert_eq!(out["sudo"], json!(false));
    assert_eq!(out["cmd"], json!("echo me"));
    // Any value given for an immutable parameter is refused, even the default.
    for given in [json!({"sudo": true}), json!({"sudo": false, "cmd": "ls"})] {
        let err = r.render(&map(given.clone())).expect_err("immutable");
        assert!(
            matches!(err, ParamError::Immutable { .. }),
            "{given}: {err}"
        );
    }
    let err = r
        .render(&map(json!({"sudo": true})))
        .expect_err("immutable");
    assert_eq!(
        err.to_string(),
        "Override of immutable parameter(s) ['sudo'] is unsupported."
    );
    // Immutable parameters are not part of the live parameters.
    let live = r.render_live(&JsonMap::new()).expect("live");
    assert!(!live.contains_key("cmd"));
}

#[test]
fn required_unknown_and_enum() {
    let r = renderer(json!({
        "host": {"type": "string", "required": true},
        "port": {"type": "integer", "required": true, "default": 22},
        "mode": {"type": "string", "enum": ["a", "b"], "default": "a"},
        "level": {"type": "integer", "enum": [1, 2]}
    }));
    assert_eq!(
        r.render(&JsonMap::new()).expect_err("missing"),
        ParamError::Missing {
            names: vec!["host".into()]
        }
    );
    assert_eq!(
        r.render(&map(json!({"host": null}))).expect_err("null"),
        ParamError::Missing {
            names: vec!["host".into()]
        }
    );
    let err = r
        .render(&map(json!({"host": "h", "bogus": 1, "other": 2})))
        .expect_err("unknown");
    assert_eq!(
        err,
        ParamError::Unknown {
            names: vec!["bogus".into(), "other".into()]
        }
    );
    let err = r
        .render(&map(json!({"host": "h", "mode": "c"})))
        .expect_err("enum");
    assert!(
        matches!(err, ParamError::NotInEnum { ref name, .. } if name == "mode"),
        "{err}"
    );
    // Cast before the enum check: "2" is 2.
    let out = r
        .render(&map(json!({"host": "h", "level": "2"})))
        .expect("enum after cast");
    assert_eq!(out["level"], json!(2));
    assert_eq!(out["port"], json!(22));
    // Optional parameters without a value are null and valid.
    let out = r.render(&map(json!({"host": "h"}))).expect("optional");
    assert_eq!(out["level"], json!(null));
}

#[test]
fn schema_validation() {
    let r = renderer(json!({
        "name": {"type": "string", "pattern": "^[a-z]+$"},
        "n": {"type": "integer", "minimum": 1, "maximum": 5},
        "tags": {"type": "array", "items": {"type": "string"}}
    }));
    r.render(&map(json!({"name": "abc", "n": 3, "tags": ["x"]})))
        .expect("valid");
    for given in [
        json!({"name": "ABC"}),
        json!({"n": "9"}),
        json!({"tags": [1]}),
    ] {
        let err = r.render(&map(given.clone())).expect_err("invalid");
        assert!(matches!(err, ParamError::Invalid { .. }), "{given}: {err}");
    }
    let err = r.render(&map(json!({"n": 0}))).expect_err("minimum");
    assert!(
        err.to_string().starts_with("Invalid parameters: n:"),
        "{err}"
    );
}

#[test]
fn contexts_and_datastore() {
    let kv = StaticKv::new()
        .system("region", KvValue::plain("eu"))
        .system(
            "token",
            KvValue {
                value: "terces".into(),
                secret: true,
                encrypted: true,
            },
        )
        .user("alice", "home", KvValue::plain("/home/alice"))
        .user("stanley", "home", KvValue::plain("/home/stanley"));
    struct Rev;
    impl Decrypter for Rev {
        fn decrypt(&self, c: &str) -> Result<String, String> {
            Ok(c.chars().rev().collect())
        }
    }
    let r = renderer(json!({
        "user": {"type": "string", "default": "{{ action_context.user }}"},
        "api": {"type": "string", "default": "{{ config_context.api_url }}/v1"},
        "retries": {"type": "integer", "default": "{{ config_context.retries }}"},
        "region": {"type": "string", "default": "{{ st2kv.system.region }}"},
        "home": {"type": "string", "default": "{{ st2kv.user.home }}"},
        "missing": {"type": "string", "default": "{{ st2kv.system.nope }}"},
        "token": {"type": "string", "secret": true, "default": "{{ st2kv.system.token | decrypt_kv }}"}
    }))
    .action_context(map(json!({"user": "alice", "pack": "demo"})))
    .config_context(map(json!({"api_url": "https://api", "retries": 3})))
    .kv(Arc::new(kv.clone()), Some("stanley".into()))
    .decrypter(Arc::new(Rev));
    let out = r.render(&JsonMap::new()).expect("render");
    assert_eq!(
        Json::Object(out.clone()),
        json!({
            "user": "alice",
            "api": "https://api/v1",
            "retries": 3,
            "region": "eu",
            "home": "/home/alice",
            "missing": "",
            "token": "secret"
        })
    );
    let specs = r.specs().clone();
    assert_eq!(
        mask_secrets(&out, &specs)["token"],
        json!(MASKED_ATTRIBUTE_VALUE)
    );

    // `api_user` wins over `user`; without either, the system user owns st2kv.user.
    let r2 = renderer(json!({"home": {"type": "string", "default": "{{ st2kv.user.home }}"}}))
        .kv(Arc::new(kv), Some("stanley".into()));
    assert_eq!(
        r2.render(&JsonMap::new()).expect("system user")["home"],
        json!("/home/stanley")
    );
    let r3 = r2.action_context(map(json!({"user": "stanley", "api_user": "alice"})));
    assert_eq!(
        r3.render(&JsonMap::new()).expect("api user")["home"],
        json!("/home/alice")
    );

    // Without a datastore every key reads as "".
    let r4 = renderer(json!({"k": {"type": "string", "default": "{{ st2kv.system.k }}"}}));
    assert_eq!(r4.render(&JsonMap::new()).expect("no kv")["k"], json!(""));
}

#[test]
fn given_templates_and_literal_text() {
    let r = renderer(json!({
        "who": {"type": "string", "default": "world"},
        "msg": {"type": "string"},
        "wf": {"type": "string"},
        "mixed": {"type": "string"}
    }));
    let live = r
        .render_live(&map(
            json!({"msg": "hello {{ who }}", "wf": "<% ctx().x %> {{ ctx().y }}"}),
        ))
        .expect("live");
    // Given templates are rendered; text reading only unknown names is kept as written.
    assert_eq!(live["msg"], json!("hello world"));
    assert_eq!(live["wf"], json!("<% ctx().x %> {{ ctx().y }}"));
    let err = r
        .render(&map(json!({"mixed": "{{ who }} {{ nope }}"})))
        .expect_err("unsatisfied");
    assert_eq!(
        err,
        ParamError::UnsatisfiedDependency {
            name: "mixed".into(),
            missing: vec!["nope".into()]
        }
    );
    // A given null takes the default.
    let out = r.render(&map(json!({"who": null}))).expect("null");
    assert_eq!(out["who"], json!("world"));
    // A syntax error in a given value is plain text (StackStorm: "not jinja after all").
    let out = r
        .render(&map(json!({"msg": "{{ unclosed"})))
        .expect("syntax");
    assert_eq!(out["msg"], json!("{{ unclosed"));
    // Render errors name the parameter.
    let err = r
        .render(&map(json!({"msg": "{{ who | regex_substring('z') }}"})))
        .expect_err("render");
    assert!(
        matches!(err, ParamError::Render { ref name, .. } if name == "msg"),
        "{err}"
    );
}

#[test]
fn live_then_final() {
    let r = renderer(json!({
        "a": {"type": "integer", "default": 1},
        "b": {"type": "string", "default": "{{ a }}"},
        "c": {"type": "string"}
    }));
    // Live: given values plus defaults that are templates.
    let live = r.render_live(&map(json!({"a": "5"}))).expect("live");
    assert_eq!(Json::Object(live.clone()), json!({"a": 5, "b": "5"}));
    // Final: live values as they are (not rendered again), the rest from defaults.
    let fin = r
        .render_final(&map(json!({"a": 7, "c": "{{ a }}"})))
        .expect("final");
    assert_eq!(Json::Object(fin), json!({"a": 7, "b": "7", "c": "{{ a }}"}));
}

#[test]
fn runner_and_action_specs_merge() {
    let runner = specs(json!({
        "cmd": {"type": "string", "description": "command"},
        "timeout": {"type": "integer", "default": 60},
        "sudo": {"type": "boolean", "default": false}
    }));
    let action = specs(json!({
        "cmd": {"default": "ls {{ dir }}", "immutable": true},
        "timeout": {"default": 5, "required": true},
        "dir": {"type": "string", "default": "/tmp"}
    }));
    let engine = TemplateEngine::new();
    let r = ParamRenderer::for_action(&engine, "core.ls", &runner, &action).expect("merge");
    let cmd = &r.specs()["cmd"];
    assert_eq!(cmd.param_type, Some(ParamType::String));
    assert_eq!(cmd.description.as_deref(), Some("command"));
    assert!(cmd.immutable);
    assert!(r.specs()["timeout"].required);
    assert_eq!(
        r.specs().keys().collect::<Vec<_>>(),
        vec!["cmd", "timeout", "sudo", "dir"]
    );

    let out = r.render(&JsonMap::new()).expect("render");
    assert_eq!(
        Json::Object(out.clone()),
        json!({"cmd": "ls /tmp", "timeout": 5, "sudo": false, "dir": "/tmp"})
    );
    let (runner_params, action_params) = r.split(&out);
    assert_eq!(
        Json::Object(runner_params),
        json!({"cmd": "ls /tmp", "timeout": 5, "sudo": false})
    );
    assert_eq!(Json::Object(action_params), json!({"dir": "/tmp"}));

    let retyped = specs(json!({"timeout": {"type": "string"}}));
    let err = merge_param_specs("core.ls", &runner, &retyped).expect_err("type override");
    assert_eq!(
        err.to_string(),
        "The attribute \"type\" for the runner parameter \"timeout\" in action \"core.ls\" cannot be overridden."
    );
    let extra = specs(json!({"timeout": {"minimum": 1}}));
    assert!(matches!(
        merge_param_specs("core.ls", &runner, &extra),
        Err(ParamError::RunnerAttrOverride { ref attr, .. }) if attr == "minimum"
    ));
}

#[test]
fn secrets_are_masked() {
    let spec = specs(json!({
        "password": {"type": "string", "secret": true},
        "user": {"type": "string"},
        "auth": {"type": "object", "properties": {
            "token": {"type": "string", "secret": true},
            "name": {"type": "string"}
        }},
        "keys": {"type": "array", "items": {"type": "object", "properties": {
            "private": {"type": "string", "secret": true}
        }}}
    }));
    let params = map(json!({
        "password": "p",
        "user": "u",
        "auth": {"token": "t", "name": "n"},
        "keys": [{"private": "k1", "id": 1}, {"private": "k2"}],
        "undeclared": "x"
    }));
    assert_eq!(
        Json::Object(mask_secrets(&params, &spec)),
        json!({
            "password": "********",
            "user": "u",
            "auth": {"token": "********", "name": "n"},
            "keys": [{"private": "********", "id": 1}, {"private": "********"}],
            "undeclared": "x"
        })
    );
}
