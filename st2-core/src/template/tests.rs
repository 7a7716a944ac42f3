//! Tests of the engine, the filters and the datastore lookup. Expected outputs are
//! StackStorm's (its `st2common/tests/unit/test_jinja_render_*_filters.py` where they exist).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use serde_json::{json, Value as Json};

use super::*;

fn engine() -> TemplateEngine {
    TemplateEngine::new()
}

fn render(template: &str, ctx: Json) -> Result<String, TemplateError> {
    engine().render_str(template, &RenderContext::from_json(&ctx))
}

fn ok(template: &str, ctx: Json) -> String {
    render(template, ctx.clone()).unwrap_or_else(|e| panic!("{template} with {ctx}: {e}"))
}

/// (template, context, expected output).
fn check_table(table: &[(&str, Json, &str)]) {
    for (template, ctx, want) in table {
        assert_eq!(ok(template, ctx.clone()), *want, "{template} with {ctx}");
    }
}

#[test]
fn data_filters() {
    let obj = json!({"a": "b", "c": {"d": "e", "f": 1, "g": true}});
    check_table(&[
        (
            "{{ k1 | to_json_string }}",
            json!({"k1": obj}),
            r#"{"a": "b","c": {"d": "e","f": 1,"g": true}}"#,
        ),
        (
            "{{ k1 | to_json_string(indent=2, sort_keys=True) }}",
            json!({"k1": {"b": 1, "a": [1]}}),
            "{\n  \"a\": [\n    1\n  ],\n  \"b\": 1\n}",
        ),
        (
            "{{ k1 | to_json_string(None, true) }}",
            json!({"k1": {"b": 1, "a": 2}}),
            r#"{"a": 2,"b": 1}"#,
        ),
        (
            "{{ k1 | to_complex }}",
            json!({"k1": {"a": [1, "é"]}}),
            r#"{"a": [1, "\u00e9"]}"#,
        ),
        ("{{ k1 | to_complex }}", json!({"k1": "x"}), r#""x""#),
        (
            "{{ k1 | to_yaml_string }}",
            json!({"k1": obj}),
            "a: b\nc:\n  d: e\n  f: 1\n  g: true\n",
        ),
        (
            "{{ ('{\"a\": [1, 2]}' | from_json_string).a[1] }}",
            json!({}),
            "2",
        ),
        (
            "{{ (s | from_yaml_string).a.b }}",
            json!({"s": "a:\n  b: 3\n"}),
            "3",
        ),
        ("{{ json_parse('[1, 2]') | length }}", json!({}), "2"),
        ("{{ json_dump({'a': 1}) }}", json!({}), r#"{"a": 1}"#),
        (
            "{{ yaml_dump({'b': 1, 'a': 2}) }}",
            json!({}),
            "a: 2\nb: 1\n",
        ),
        ("{{ yaml_parse('- x')[0] }}", json!({}), "x"),
        // StackStorm's test_jinja_render_json_escape_filters.py.
        (
            "{{ s | json_escape }}",
            json!({"s": "foo \"\"\" bar"}),
            r#"foo \"\"\" bar"#,
        ),
        (
            "{{ s | json_escape }}",
            json!({"s": "foo \\ bar"}),
            r"foo \\ bar",
        ),
        (
            "{{ s | json_escape }}",
            json!({"s": "foo \u{8} bar"}),
            r"foo \b bar",
        ),
        (
            "{{ s | json_escape }}",
            json!({"s": "foo \u{c} bar"}),
            r"foo \f bar",
        ),
        (
            "{{ s | json_escape }}",
            json!({"s": "foo \n bar"}),
            r"foo \n bar",
        ),
        (
            "{{ s | json_escape }}",
            json!({"s": "foo \r bar"}),
            r"foo \r bar",
        ),
        (
            "{{ s | json_escape }}",
            json!({"s": "foo \t bar"}),
            r"foo \t bar",
        ),
        ("{{ s | json_escape }}", json!({"s": "\"a\""}), r#"\"a\"#),
        ("{{ x | use_none }}", json!({"x": null}), NONE_MAGIC_VALUE),
        ("{{ x | use_none }}", json!({"x": 0}), "0"),
    ]);
}

#[test]
fn jsonpath_query_filter() {
    let obj = json!({
        "people": [
            {"first": "James", "last": "d"},
            {"first": "Jacob", "last": "e"},
            {"first": "Jayden", "last": "f"},
            {"missing": "different"}
        ],
        "foo": {"bar": "baz"}
    });
    check_table(&[
        (
            "{{ obj | jsonpath_query('people[*].first') }}",
            json!({"obj": obj}),
            "['James', 'Jacob', 'Jayden']",
        ),
        (
            "{{ obj | jsonpath_query(query) }}",
            json!({"obj": obj, "query": "people[*].last"}),
            "['d', 'e', 'f']",
        ),
        (
            "{{ obj | jsonpath_query('query_returns_no_results') }}",
            json!({"obj": obj}),
            "None",
        ),
        (
            "{{ obj | jsonpath_query('$.foo.bar') }}",
            json!({"obj": obj}),
            "['baz']",
        ),
        (
            "{{ jsonpath_query(obj, 'foo.bar')[0] }}",
            json!({"obj": obj}),
            "baz",
        ),
    ]);
}

#[test]
fn regex_filters() {
    let addr = r"([0-9]{3} \w+ (?:Ave|St|Dr))";
    check_table(&[
        (
            r#"{{ k1 | regex_match("x") }}"#,
            json!({"k1": "xyz"}),
            "True",
        ),
        (
            r#"{{ k1 | regex_match("y") }}"#,
            json!({"k1": "xyz"}),
            "False",
        ),
        (
            r#"{{ k1 | regex_match("^v(\\d+\\.)?(\\d+\\.)?(\\*|\\d+)$") }}"#,
            json!({"k1": "v0.10.1"}),
            "True",
        ),
        (
            r#"{{ k1 | regex_match("X", ignorecase=True) }}"#,
            json!({"k1": "xyz"}),
            "True",
        ),
        (
            r#"{{ k1 | regex_search("x") }}"#,
            json!({"k1": "xyz"}),
            "True",
        ),
        (
            r#"{{ k1 | regex_search("y") }}"#,
            json!({"k1": "xyz"}),
            "True",
        ),
        (
            r#"{{ k1 | regex_search("q") }}"#,
            json!({"k1": "xyz"}),
            "False",
        ),
        (
            r#"{{ k1 | regex_replace("x", "y") }}"#,
            json!({"k1": "xyz"}),
            "yyz",
        ),
        (
            r#"{{ k1 | regex_replace("(blue|white|red)", "color") }}"#,
            json!({"k1": "blue socks and red shoes"}),
            "color socks and color shoes",
        ),
        (
            r#"{{ k1 | regex_replace("(blue|white|red)", "beautiful color \\1") }}"#,
            json!({"k1": "blue socks and red shoes"}),
            "beautiful color blue socks and beautiful color red shoes",
        ),
        (
            r#"{{ k1 | regex_replace("(?P<n>\\d+)", "<\\g<n>>$") }}"#,
            json!({"k1": "a1b22"}),
            "a<1>$b<22>$",
        ),
        (
            &format!("{{{{ s | regex_substring({addr:?}) }}}}"),
            json!({"s": "My address is 123 Somewhere Ave. See you soon!"}),
            "123 Somewhere Ave",
        ),
        (
            &format!("{{{{ s | regex_substring({addr:?}, 1) }}}}"),
            json!({"s": "Your address is 567 Elsewhere Dr. My address is 123 Somewhere Ave."}),
            "123 Somewhere Ave",
        ),
        (
            r#"{{ s | regex_substring("\\d+") }}"#,
            json!({"s": "ab 12 cd 34"}),
            "12",
        ),
        (
            r#"{{ s | regex_substring("\\d+", -1) }}"#,
            json!({"s": "ab 12 cd 34"}),
            "34",
        ),
        (
            r#"{{ s | regex_substring("(\\w)(\\d)") }}"#,
            json!({"s": "a1 b2"}),
            "['a', '1']",
        ),
        (r#"{{ regex_match('abc', 'a') }}"#, json!({}), "True"),
    ]);
    // No such match: Python's IndexError.
    for (template, s) in [
        (
            format!("{{{{ s | regex_substring({addr:?}, 1) }}}}"),
            "Your address is 567 Elsewhere Dr.",
        ),
        (
            r#"{{ s | regex_substring("([0-3]{3} \\w+ (?:Ave|St|Dr))") }}"#.to_string(),
            "My address is 986 Somewhere Ave. See you soon!",
        ),
    ] {
        let err = render(&template, json!({"s": s})).expect_err("index error");
        assert!(matches!(err, TemplateError::Render { .. }), "{err}");
        assert!(err.to_string().contains("list index out of range"), "{err}");
    }
    let err = render(r#"{{ s | regex_search("(") }}"#, json!({"s": "x"})).expect_err("bad regex");
    assert!(
        err.to_string().contains("invalid regular expression"),
        "{err}"
    );
}

#[test]
fn time_filter() {
    check_table(&[
        (
            "{{ k1 | to_human_time_from_seconds }}",
            json!({"k1": 12345}),
            "3h25m45s",
        ),
        (
            "{{ k1 | to_human_time_from_seconds }}",
            json!({"k1": 0}),
            "0s",
        ),
        (
            "{{ k1 | to_human_time_from_seconds }}",
            json!({"k1": 59}),
            "59s",
        ),
        (
            "{{ k1 | to_human_time_from_seconds }}",
            json!({"k1": 3661}),
            "1h1m1s",
        ),
        (
            "{{ k1 | to_human_time_from_seconds }}",
            json!({"k1": 3600}),
            "1h0m0s",
        ),
        (
            "{{ k1 | to_human_time_from_seconds }}",
            json!({"k1": 90061}),
            "1d1h1m1s",
        ),
        (
            "{{ k1 | to_human_time_from_seconds }}",
            json!({"k1": 31_626_061}),
            "1y1d1h1m1s",
        ),
        (
            "{{ k1 | to_human_time_from_seconds }}",
            json!({"k1": 61.5}),
            "1m2s",
        ),
        (
            "{{ k1 | to_human_time_from_seconds }}",
            json!({"k1": 0.5}),
            "0.5\u{3bc}s",
        ),
    ]);
    assert!(render(
        "{{ k1 | to_human_time_from_seconds }}",
        json!({"k1": "stuff"})
    )
    .is_err());
}

#[test]
fn version_filters() {
    let table: &[(&str, &str, &str)] = &[
        ("{{ version | version_compare('0.10.0') }}", "0.9.0", "-1"),
        ("{{ version | version_compare('0.10.0') }}", "0.10.1", "1"),
        ("{{ version | version_compare('0.10.0') }}", "0.10.0", "0"),
        (
            "{{ version | version_more_than('0.10.0') }}",
            "0.9.0",
            "False",
        ),
        (
            "{{ version | version_more_than('0.10.0') }}",
            "0.10.1",
            "True",
        ),
        (
            "{{ version | version_more_than('0.10.0') }}",
            "0.10.0",
            "False",
        ),
        (
            "{{ version | version_less_than('0.10.0') }}",
            "0.9.0",
            "True",
        ),
        (
            "{{ version | version_less_than('0.10.0') }}",
            "0.10.1",
            "False",
        ),
        (
            "{{ version | version_less_than('0.10.0') }}",
            "0.10.0",
            "False",
        ),
        ("{{ version | version_equal('0.10.0') }}", "0.9.0", "False"),
        ("{{ version | version_equal('0.10.0') }}", "0.10.0", "True"),
        ("{{ version | version_match('>0.10.0') }}", "0.10.1", "True"),
        ("{{ version | version_match('>0.10.0') }}", "0.1.1", "False"),
        ("{{ version | version_match('<0.10.0') }}", "0.1.0", "True"),
        ("{{ version | version_match('<0.10.0') }}", "1.1.0", "False"),
        (
            "{{ version | version_match('==0.10.0') }}",
            "0.10.0",
            "True",
        ),
        (
            "{{ version | version_match('==0.10.0') }}",
            "0.10.1",
            "False",
        ),
        (
            "{{ version | version_match('>=0.10.0') }}",
            "0.10.0",
            "True",
        ),
        (
            "{{ version | version_match('!=0.10.0') }}",
            "0.10.0",
            "False",
        ),
        ("{{ version | version_bump_major }}", "0.10.1", "1.0.0"),
        ("{{ version | version_bump_minor }}", "0.10.1", "0.11.0"),
        ("{{ version | version_bump_patch }}", "0.10.1", "0.10.2"),
        ("{{ version | version_strip_patch }}", "0.10.1", "0.10"),
        (
            "{{ version | version_compare('1.0.0') }}",
            "1.0.0-rc.1",
            "-1",
        ),
    ];
    for (template, version, want) in table {
        assert_eq!(
            ok(template, json!({"version": version})),
            *want,
            "{template} {version}"
        );
    }
    assert!(render("{{ v | version_match('~1.0.0') }}", json!({"v": "1.0.0"})).is_err());
    assert!(render("{{ v | version_bump_major }}", json!({"v": "1.0"})).is_err());
}

#[test]
fn path_filters() {
    check_table(&[
        (
            "{{ k1 | basename }}",
            json!({"k1": "/some/path/to/file.txt"}),
            "file.txt",
        ),
        (
            "{{ k1 | basename }}",
            json!({"k1": "/some/path/to/dir"}),
            "dir",
        ),
        (
            "{{ k1 | basename }}",
            json!({"k1": "/some/path/to/dir/"}),
            "",
        ),
        (
            "{{ k1 | dirname }}",
            json!({"k1": "/some/path/to/file.txt"}),
            "/some/path/to",
        ),
        (
            "{{ k1 | dirname }}",
            json!({"k1": "/some/path/to/dir"}),
            "/some/path/to",
        ),
        (
            "{{ k1 | dirname }}",
            json!({"k1": "/some/path/to/dir/"}),
            "/some/path/to/dir",
        ),
        ("{{ k1 | dirname }}", json!({"k1": "/file"}), "/"),
        ("{{ k1 | dirname }}", json!({"k1": "file"}), ""),
    ]);
}

#[test]
fn python_style_output_and_builtins() {
    check_table(&[
        ("{{ b }}", json!({"b": true}), "True"),
        ("{{ n }}", json!({"n": null}), "None"),
        ("{{ l }}", json!({"l": ["a", 1, false]}), "['a', 1, False]"),
        ("{{ m }}", json!({"m": {"k": [1.5]}}), "{'k': [1.5]}"),
        ("{{ f }}", json!({"f": 2.0}), "2.0"),
        ("{{ 'abc' | int }}", json!({}), "0"),
        ("{{ '12' | int + 1 }}", json!({}), "13"),
        ("{{ '1.5' | float }}", json!({}), "1.5"),
        ("{{ 3 is in [1, 3] }}", json!({}), "True"),
        // trim_blocks / lstrip_blocks.
        ("{% if true %}\n  x\n{% endif %}\n", json!({}), "  x\n"),
        (
            "a\n    {% if true %}\nb\n    {% endif %}\nc",
            json!({}),
            "a\nb\nc",
        ),
    ]);
}

#[test]
fn errors_are_precise() {
    let err = render(
        "{{ trigger.body.missing }}",
        json!({"trigger": {"body": {}}}),
    )
    .expect_err("strict undefined");
    match &err {
        TemplateError::Undefined {
            name,
            line,
            template,
        } => {
            assert_eq!(name, "trigger.body.missing");
            assert_eq!(*line, Some(1));
            assert_eq!(template, "{{ trigger.body.missing }}");
        }
        other => panic!("unexpected {other:?}"),
    }
    let err = render("line one\n{{ nope }}", json!({})).expect_err("undefined");
    assert!(
        matches!(&err, TemplateError::Undefined { name, line: Some(2), .. } if name == "nope"),
        "{err:?}"
    );
    let err = engine().compile("a\n{% if x %}").expect_err("syntax");
    assert!(
        matches!(&err, TemplateError::Syntax { line: Some(2), .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("at line 2"), "{err}");
    // The lenient engine renders undefined as "".
    let lenient = TemplateEngine::allowing_undefined();
    assert_eq!(
        lenient
            .render_str("[{{ nope }}]", &RenderContext::new())
            .expect("lenient"),
        "[]"
    );
}

#[test]
fn compiled_equals_uncompiled() {
    let ctx = json!({
        "trigger": {"body": {"x": "v", "n": 3, "l": [1, 2], "flag": false}},
        "other": "o"
    });
    let rctx = RenderContext::from_json(&ctx);
    let e = engine();
    for template in [
        "{{ trigger.body.x }}",
        "{{ trigger.body.n + 1 }}",
        "{{ trigger.body.l }}",
        "{{ trigger.body.flag }}",
        "{% for i in trigger.body.l %}{{ i }},{% endfor %}",
        "plain text",
        "{{ trigger.body | to_json_string }}",
        "{{ other | upper }}-{{ trigger.body.x | regex_replace('v', 'w') }}",
    ] {
        let compiled = e.compile(template).expect("compile");
        let once = e.render_str(template, &rctx).expect("render");
        assert_eq!(
            compiled.render(&rctx).expect("compiled"),
            once,
            "{template}"
        );
        assert_eq!(compiled.render(&rctx).expect("again"), once, "{template}");
        assert_eq!(compiled.source(), template);
    }
    // Clones share the template; dropping one leaves the other usable.
    let compiled = e.compile("{{ other }}").expect("compile");
    let clone = compiled.clone();
    drop(compiled);
    assert_eq!(clone.render(&rctx).expect("clone"), "o");
}

#[test]
fn variables_exclude_globals() {
    let vars = engine()
        .variables("{{ a.b }} {{ json_dump(c) }} {% for i in range(3) %}{{ i }}{% endfor %}")
        .expect("parse");
    assert_eq!(vars.into_iter().collect::<Vec<_>>(), vec!["a", "c"]);
    let compiled = engine()
        .compile("{{ x | to_complex }}{% set y = 1 %}{{ y }}")
        .expect("compile");
    assert_eq!(
        compiled.variables().into_iter().collect::<Vec<_>>(),
        vec!["x"]
    );
}

#[test]
fn render_value_renders_strings_only() {
    let ctx = RenderContext::new().with("trigger", json!({"a": 1, "n": null}));
    let value = json!({
        "x": "{{ trigger.a }}",
        "list": ["{{ trigger.a }}", 5, true, "no template"],
        "none": "{{ trigger.n | use_none }}",
        "{{ 'key' }}": null,
        "num": 1.5
    });
    let out = engine().render_value(&value, &ctx).expect("render");
    assert_eq!(
        out,
        json!({
            "x": "1",
            "list": ["1", 5, true, "no template"],
            "none": null,
            "key": null,
            "num": 1.5
        })
    );
    // Strings without markers never reach the engine, so "{#" stays as written.
    let raw = json!("a {# b");
    assert_eq!(engine().render_value(&raw, &ctx).expect("raw"), raw);
    // A marker that is not a template is a syntax error, as in StackStorm's render_values.
    let err = engine()
        .render_value(&json!(["plain {{"]), &ctx)
        .expect_err("syntax");
    assert!(matches!(err, TemplateError::Syntax { .. }), "{err:?}");
}

#[test]
fn render_complex_preserves_types() {
    let ctx = RenderContext::new().with(
        "trigger",
        json!({"list": ["a", 2], "n": 5, "s": "5", "obj": {"k": true}, "none": null, "text": "hi"}),
    );
    let e = engine();
    let table = [
        (json!("{{ trigger.list }}"), json!(["a", 2])),
        (json!("{{trigger.n}}"), json!(5)),
        (json!("{{ trigger.s }}"), json!("5")),
        (json!("{{ trigger.obj }}"), json!({"k": true})),
        (json!("{{ trigger.none }}"), json!(null)),
        (json!("{{ trigger.none | use_none }}"), json!(null)),
        (json!("[{{ trigger.n }}, 1]"), json!([5, 1])),
        (json!("value-{{ trigger.text }}"), json!("value-hi")),
        (
            json!("{{ trigger.text }} and {{ trigger.n }}"),
            json!("hi and 5"),
        ),
        (json!("no template"), json!("no template")),
        (json!(7), json!(7)),
        (json!(null), json!(null)),
        (json!(["{{ x }}"]), json!(["{{ x }}"])),
    ];
    for (pattern, want) in table {
        assert_eq!(
            e.render_complex(&pattern, &ctx).expect("render"),
            want,
            "{pattern}"
        );
    }
    let compiled = e.compile_pattern("{{ trigger.list }}").expect("compile");
    assert_eq!(compiled.render(&ctx).expect("compiled"), json!(["a", 2]));
    assert!(e
        .render_complex(&json!("{{ trigger.missing }}"), &ctx)
        .is_err());
}

/// A datastore that counts lookups.
struct CountingKv {
    inner: StaticKv,
    lookups: AtomicUsize,
}

impl KvLookup for CountingKv {
    fn get(&self, scope: KvScope, user: Option<&str>, key: &str) -> Option<KvValue> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        self.inner.get(scope, user, key)
    }
}

fn datastore() -> Arc<CountingKv> {
    Arc::new(CountingKv {
        inner: StaticKv::new()
            .system("k", KvValue::plain("v"))
            .system("a.b.c", KvValue::plain("deep"))
            .system("count", KvValue::plain("41"))
            .system("pack:key", KvValue::plain("ns"))
            .system(
                "secret",
                KvValue {
                    value: "CIPHER".into(),
                    secret: true,
                    encrypted: true,
                },
            )
            .user("alice", "mine", KvValue::plain("alice's"))
            .user("bob", "mine", KvValue::plain("bob's")),
        lookups: AtomicUsize::new(0),
    })
}

/// Reverses the text; fails on "BAD".
struct Reverse;

impl Decrypter for Reverse {
    fn decrypt(&self, ciphertext: &str) -> Result<String, String> {
        if ciphertext == "BAD" {
            return Err("HMAC mismatch".into());
        }
        Ok(ciphertext.chars().rev().collect())
    }
}

#[test]
fn st2kv_lazy_lookup() {
    let kv = datastore();
    let ctx = RenderContext::new()
        .with_kv(kv.clone(), Some("alice".into()))
        .with_decrypter(Arc::new(Reverse));
    let e = engine();
    let table = [
        ("{{ st2kv.system.k }}", "v"),
        ("{{ st2kv.system.a.b.c }}", "deep"),
        ("{{ st2kv.system['a']['b'].c }}", "deep"),
        ("{{ st2kv.system['pack:key'] }}", "ns"),
        ("[{{ st2kv.system.missing }}]", "[]"),
        ("[{{ st2kv.system.a.b }}]", "[]"),
        ("{{ st2kv.user.mine }}", "alice's"),
        ("{{ st2kv.system.k | upper }}", "V"),
        ("{{ st2kv.system.count | int + 1 }}", "42"),
        ("{{ st2kv.system.k ~ '!' }}", "v!"),
        ("{{ 'yes' if st2kv.system.k else 'no' }}", "yes"),
        ("{{ 'yes' if st2kv.system.missing else 'no' }}", "no"),
        ("{{ st2kv.system.k | to_complex }}", "\"v\""),
        // Secrets stay encrypted unless decrypted.
        ("{{ st2kv.system.secret }}", "CIPHER"),
        ("{{ st2kv.system.secret | decrypt_kv }}", "REHPIC"),
        ("{{ decrypt_kv(st2kv.system.secret) }}", "REHPIC"),
        ("{{ 'TXET' | decrypt_kv }}", "TEXT"),
        ("{{ st2kv.system.k | decrypt_kv }}", "v"),
    ];
    for (template, want) in table {
        assert_eq!(
            e.render_str(template, &ctx).expect(template),
            want,
            "{template}"
        );
    }
    // Lazy: chaining does not read the datastore, rendering reads it once.
    kv.lookups.store(0, Ordering::SeqCst);
    e.render_str("{{ st2kv.system.a.b.c }}", &ctx)
        .expect("render");
    assert_eq!(kv.lookups.load(Ordering::SeqCst), 1);

    // Another user sees their own keys; no user sees none.
    let bob = RenderContext::new().with_kv(kv.clone(), Some("bob".into()));
    assert_eq!(
        e.render_str("{{ st2kv.user.mine }}", &bob).expect("bob"),
        "bob's"
    );
    let nobody = RenderContext::new().with_kv(kv, None);
    assert_eq!(
        e.render_str("[{{ st2kv.user.mine }}]", &nobody)
            .expect("none"),
        "[]"
    );

    // decrypt_kv errors.
    let err = e
        .render_str("{{ st2kv.system.missing | decrypt_kv }}", &ctx)
        .expect_err("missing");
    assert!(
        err.to_string()
            .contains("Referenced datastore item \"st2kv.system.missing\" doesn't exist"),
        "{err}"
    );
    let err = e
        .render_str("{{ 'BAD' | decrypt_kv }}", &ctx)
        .expect_err("bad");
    assert!(err.to_string().contains("HMAC mismatch"), "{err}");
    let no_key = RenderContext::new().with_kv(datastore(), None);
    let err = e
        .render_str("{{ st2kv.system.secret | decrypt_kv }}", &no_key)
        .expect_err("no decrypter");
    assert!(err.to_string().contains("no decryption key"), "{err}");
}

#[test]
fn context_builder() {
    let ctx = RenderContext::from_json(&json!({"a": 1, "b": {"c": 2}})).with("d", json!("x"));
    assert!(ctx.contains("a") && ctx.contains("d"));
    assert_eq!(ctx.names().collect::<Vec<_>>(), vec!["a", "b", "d"]);
    assert_eq!(
        engine()
            .render_str("{{ a }}{{ b.c }}{{ d }}", &ctx)
            .expect("render"),
        "12x"
    );
    let from_map: RenderContext =
        (&crate::model::JsonMap::from_iter([("k".to_string(), json!(1))])).into();
    assert_eq!(
        engine().render_str("{{ k }}", &from_map).expect("render"),
        "1"
    );
}

#[test]
fn handles_are_thread_safe() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<TemplateEngine>();
    assert_send_sync::<CompiledTemplate>();
    assert_send_sync::<CompiledPattern>();
    assert_send_sync::<RenderContext>();
    assert_send_sync::<ParamRenderer>();
    // Renders from several threads share one compiled template.
    let compiled = engine().compile("{{ n * 2 }}").expect("compile");
    let handles: Vec<_> = (0..4)
        .map(|n| {
            let compiled = compiled.clone();
            std::thread::spawn(move || {
                let ctx = RenderContext::new().with("n", json!(n));
                compiled.render(&ctx).expect("render")
            })
        })
        .collect();
    let outputs: Vec<String> = handles
        .into_iter()
        .map(|h| h.join().expect("join"))
        .collect();
    assert_eq!(outputs, vec!["0", "2", "4", "6"]);
}

#[test]
fn compiled_render_timing() {
    let e = engine();
    let compiled = e.compile("{{ trigger.body.x }}").expect("compile");
    let ctx = RenderContext::new().with("trigger", json!({"body": {"x": "value", "y": [1, 2, 3]}}));
    let runs = 20_000u32;
    let start = Instant::now();
    for _ in 0..runs {
        let out = compiled.render(&ctx).expect("render");
        assert_eq!(out, "value");
    }
    let per = start.elapsed() / runs;
    println!("compiled render of {{{{ trigger.body.x }}}}: {per:?} per render");
}
