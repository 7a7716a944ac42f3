//! Rule criteria with StackStorm's semantics, table by table: every operator (no coercion, the
//! `None` pattern, case-insensitivity, Python's `in` and ordering errors, fnmatch, regex
//! anchoring, timediff, exists on null vs missing, inside, search with each condition), key
//! resolution (`#tag`, `jsonpath_rw` brackets, indexes, dashes), the empty-payload short
//! circuit, pattern templating with type preservation and errors, and the rule set (backstop,
//! index by trigger, add/replace/remove).
//!
//! Expected values were checked against CPython 3.11, `jsonpath_rw` 1.4.0 and
//! `python-dateutil` 2.9 where Python behaviour is involved.

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{json, Value as Json};
use st2_core::model::Rule;
use st2_core::rules::{
    apply_at, filter, is_known_operator, CompiledCriteria, MatchContext, Operator, RuleSet,
};
use st2_core::template::{KvValue, RenderContext, StaticKv, TemplateEngine};

/// What a criterion evaluates to.
#[derive(Debug, Clone, Copy)]
enum Want {
    /// Holds.
    T,
    /// Does not hold, no error.
    F,
    /// Does not hold and is reported with an error containing this text.
    E(&'static str),
}
use Want::{E, F, T};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, 1, 12, 0, 0)
        .single()
        .expect("valid date")
}

/// Evaluates `{trigger.v: {type: op, pattern}}` against `{v: value, other: 1}` (`value` `None`:
/// the key is missing).
fn eval_one(op: &str, value: Option<&Json>, pattern: &Json) -> (bool, Vec<String>) {
    let mut payload = json!({"other": 1});
    if let (Some(v), Some(map)) = (value, payload.as_object_mut()) {
        map.insert("v".into(), v.clone());
    }
    let criteria = json!({"trigger.v": {"type": op, "pattern": pattern}});
    eval(&criteria, &payload)
}

fn eval(criteria: &Json, payload: &Json) -> (bool, Vec<String>) {
    eval_ctx(criteria, payload, &MatchContext::new().at(now()))
}

fn eval_ctx(criteria: &Json, payload: &Json, ctx: &MatchContext) -> (bool, Vec<String>) {
    let map = criteria.as_object().cloned().unwrap_or_default();
    let engine = TemplateEngine::new();
    let (compiled, _) = CompiledCriteria::compile("tests.rule", &map, &engine);
    let out = compiled.evaluate("tests.rule", payload, ctx);
    (
        out.matched,
        out.errors.iter().map(ToString::to_string).collect(),
    )
}

fn assert_outcome(label: &str, (matched, errors): (bool, Vec<String>), want: Want) {
    match want {
        T => assert!(
            matched && errors.is_empty(),
            "{label}: want true, got {matched} {errors:?}"
        ),
        F => assert!(
            !matched && errors.is_empty(),
            "{label}: want false, got {matched} {errors:?}"
        ),
        E(text) => {
            assert!(!matched, "{label}: want an error, matched");
            assert!(
                errors.iter().any(|e| e.contains(text)),
                "{label}: want an error with {text:?}, got {errors:?}"
            );
        }
    }
}

/// One row: operator, payload value (`None`: missing), pattern, expectation.
type Row = (&'static str, Option<Json>, Json, Want);

fn run(table: &[Row]) {
    for (op, value, pattern, want) in table {
        let label = format!("{op} value={value:?} pattern={pattern}");
        assert_outcome(&label, eval_one(op, value.as_ref(), pattern), *want);
    }
}

fn v(value: Json) -> Option<Json> {
    Some(value)
}

#[test]
fn equals_and_nequals_compare_like_python() {
    run(&[
        ("equals", v(json!("a")), json!("a"), T),
        ("equals", v(json!("A")), json!("a"), F),
        ("equals", v(json!("1")), json!(1), F),
        ("equals", v(json!(1)), json!("1"), F),
        ("equals", v(json!(1)), json!(1.0), T),
        ("equals", v(json!(true)), json!(1), T),
        ("equals", v(json!(false)), json!(0), T),
        ("equals", v(json!([1, 2])), json!([1, 2]), T),
        (
            "equals",
            v(json!({"a": 1, "b": [true]})),
            json!({"b": [1], "a": 1.0}),
            T,
        ),
        ("equals", v(json!(null)), json!(null), F),
        ("equals", None, json!(null), F),
        ("equals", None, json!("x"), F),
        ("eq", v(json!(3)), json!(3), T),
        ("EQ", v(json!(3)), json!(3), T),
        ("Equals", v(json!(3)), json!(3), T),
        ("nequals", v(json!("a")), json!("b"), T),
        ("nequals", v(json!("a")), json!("a"), F),
        ("nequals", v(json!(1)), json!(1.0), F),
        ("nequals", v(json!("1")), json!(1), T),
        // No None guard: missing != None is False, "a" != None is True.
        ("nequals", None, json!(null), F),
        ("nequals", v(json!("a")), json!(null), T),
        ("neq", None, json!("x"), T),
    ]);
}

#[test]
fn iequals_lowercases_strings_only() {
    run(&[
        ("iequals", v(json!("HeLLo")), json!("hello"), T),
        ("iequals", v(json!("ß")), json!("SS"), F),
        ("ieq", v(json!("ABC")), json!("abd"), F),
        ("iequals", v(json!("a")), json!(null), F),
        (
            "iequals",
            None,
            json!("a"),
            E("'NoneType' object has no attribute 'lower'"),
        ),
        (
            "iequals",
            v(json!(1)),
            json!("1"),
            E("'int' object has no attribute 'lower'"),
        ),
        (
            "iequals",
            v(json!("1")),
            json!(1),
            E("'int' object has no attribute 'lower'"),
        ),
    ]);
}

#[test]
fn contains_is_python_in() {
    run(&[
        ("contains", v(json!("hello world")), json!("o w"), T),
        ("contains", v(json!("hello")), json!(""), T),
        ("contains", v(json!("hello")), json!("H"), F),
        ("contains", v(json!(["a", "b"])), json!("a"), T),
        ("contains", v(json!(["a", "b"])), json!("c"), F),
        ("contains", v(json!([1, 2])), json!(1.0), T),
        ("contains", v(json!([[1], 2])), json!([1]), T),
        ("contains", v(json!({"k": 1})), json!("k"), T),
        ("contains", v(json!({"k": 1})), json!(1), F),
        ("contains", v(json!("abc")), json!(null), F),
        (
            "contains",
            v(json!("abc")),
            json!(1),
            E("'in <string>' requires string as left operand, not int"),
        ),
        (
            "contains",
            None,
            json!("a"),
            E("argument of type 'NoneType' is not iterable"),
        ),
        (
            "contains",
            v(json!(5)),
            json!(5),
            E("argument of type 'int' is not iterable"),
        ),
        (
            "contains",
            v(json!({"a": 1})),
            json!(["a"]),
            E("unhashable type: 'list'"),
        ),
        ("ncontains", v(json!("abc")), json!("x"), T),
        ("ncontains", v(json!("abc")), json!("a"), F),
        ("ncontains", v(json!(["a"])), json!("b"), T),
        ("ncontains", v(json!("abc")), json!(null), F),
        (
            "ncontains",
            None,
            json!("a"),
            E("argument of type 'NoneType' is not iterable"),
        ),
        ("icontains", v(json!("Hello")), json!("hEL"), T),
        ("icontains", v(json!("Hello")), json!("xyz"), F),
        (
            "icontains",
            v(json!(["A"])),
            json!("a"),
            E("'list' object has no attribute 'lower'"),
        ),
        (
            "icontains",
            None,
            json!("a"),
            E("'NoneType' object has no attribute 'lower'"),
        ),
        ("icontains", v(json!("a")), json!(null), F),
        ("incontains", v(json!("Hello")), json!("XYZ"), T),
        ("incontains", v(json!("Hello")), json!("LL"), F),
        (
            "incontains",
            v(json!("a")),
            json!(1),
            E("'int' object has no attribute 'lower'"),
        ),
    ]);
}

#[test]
fn startswith_endswith_need_strings() {
    run(&[
        ("startswith", v(json!("foobar")), json!("foo"), T),
        ("startswith", v(json!("foobar")), json!("bar"), F),
        ("startswith", v(json!("Foobar")), json!("foo"), F),
        ("startswith", v(json!("foo")), json!(null), F),
        (
            "startswith",
            None,
            json!("a"),
            E("'NoneType' object has no attribute 'startswith'"),
        ),
        (
            "startswith",
            v(json!(["a"])),
            json!("a"),
            E("'list' object has no attribute 'startswith'"),
        ),
        (
            "startswith",
            v(json!("abc")),
            json!(1),
            E("startswith first arg must be str or a tuple of str, not int"),
        ),
        (
            "startswith",
            v(json!("abc")),
            json!(["a"]),
            E("startswith first arg must be str or a tuple of str, not list"),
        ),
        ("istartswith", v(json!("FooBar")), json!("fOO"), T),
        (
            "istartswith",
            None,
            json!("a"),
            E("'NoneType' object has no attribute 'lower'"),
        ),
        ("endswith", v(json!("foobar")), json!("bar"), T),
        ("endswith", v(json!("foobar")), json!("BAR"), F),
        (
            "endswith",
            v(json!("foobar")),
            json!(1),
            E("endswith first arg must be str or a tuple of str, not int"),
        ),
        ("iendswith", v(json!("FooBAR")), json!("bar"), T),
        ("iendswith", v(json!("FooBAR")), json!("foo"), F),
    ]);
}

#[test]
fn lessthan_greaterthan_follow_python_ordering() {
    run(&[
        ("lessthan", v(json!(1)), json!(2), T),
        ("lessthan", v(json!(2)), json!(1), F),
        ("lessthan", v(json!(2)), json!(2.0), F),
        ("lessthan", v(json!(1.5)), json!(2), T),
        ("lessthan", v(json!(true)), json!(2), T),
        ("lessthan", v(json!("a")), json!("b"), T),
        // Strings compare lexicographically, no numeric coercion.
        ("lessthan", v(json!("10")), json!("9"), T),
        ("lessthan", v(json!([1, 2])), json!([1, 3]), T),
        ("lessthan", v(json!(5)), json!(null), F),
        ("lt", v(json!(1)), json!(2), T),
        (
            "lessthan",
            v(json!(1)),
            json!("2"),
            E("'<' not supported between instances of 'int' and 'str'"),
        ),
        (
            "lessthan",
            v(json!("1")),
            json!(2),
            E("'<' not supported between instances of 'str' and 'int'"),
        ),
        (
            "lessthan",
            None,
            json!(5),
            E("'<' not supported between instances of 'NoneType' and 'int'"),
        ),
        (
            "lessthan",
            v(json!({})),
            json!({}),
            E("'<' not supported between instances of 'dict' and 'dict'"),
        ),
        ("greaterthan", v(json!(3)), json!(2), T),
        ("greaterthan", v(json!(2)), json!(3), F),
        ("greaterthan", v(json!("b")), json!("a"), T),
        ("gt", v(json!(10.5)), json!(10), T),
        (
            "greaterthan",
            v(json!("a")),
            json!(1),
            E("'>' not supported between instances of 'str' and 'int'"),
        ),
    ]);
}

#[test]
fn matchwildcard_is_case_sensitive_fnmatch() {
    run(&[
        ("matchwildcard", v(json!("file.txt")), json!("*.txt"), T),
        ("matchwildcard", v(json!("file.TXT")), json!("*.txt"), F),
        ("matchwildcard", v(json!("abc")), json!("a?c"), T),
        ("matchwildcard", v(json!("abc")), json!("[ab]bc"), T),
        ("matchwildcard", v(json!("abc")), json!("[!a]bc"), F),
        ("matchwildcard", v(json!("a\nb")), json!("a*b"), T),
        ("matchwildcard", v(json!("xabc")), json!("abc"), F),
        ("matchwildcard", v(json!("a.b")), json!("a.b"), T),
        ("matchwildcard", v(json!("axb")), json!("a.b"), F),
        ("matchwildcard", v(json!("abc")), json!(null), F),
        (
            "matchwildcard",
            None,
            json!("*"),
            E("expected str, bytes or os.PathLike object, not NoneType"),
        ),
        (
            "matchwildcard",
            v(json!(5)),
            json!("*"),
            E("expected str, bytes or os.PathLike object, not int"),
        ),
    ]);
}

#[test]
fn regexes_follow_python_re() {
    run(&[
        // matchregex: anchored at the start, DOTALL.
        ("matchregex", v(json!("foobar")), json!("foo"), T),
        ("matchregex", v(json!("xfoobar")), json!("foo"), F),
        ("matchregex", v(json!("foo\nbar")), json!("foo.bar"), T),
        ("MatchRegex", v(json!("abc")), json!("a.c$"), T),
        ("matchregex", v(json!("abc")), json!(null), F),
        (
            "matchregex",
            v(json!("abc")),
            json!("("),
            E("There might be a problem with the criteria in rule tests.rule"),
        ),
        (
            "matchregex",
            v(json!(5)),
            json!("a"),
            E("expected string or bytes-like object, got 'int'"),
        ),
        (
            "matchregex",
            v(json!("a")),
            json!(5),
            E("first argument must be string or compiled pattern"),
        ),
        // regex: search, no DOTALL, `$` also before a final newline.
        ("regex", v(json!("xfoobar")), json!("foo"), T),
        ("regex", v(json!("foo\nbar")), json!("foo.bar"), F),
        ("regex", v(json!("foo\n")), json!("^foo$"), T),
        ("regex", v(json!("FOO")), json!("foo"), F),
        ("regex", v(json!("ab")), json!("(?<=a)b"), T),
        ("regex", v(json!("aa")), json!("(a)\\1"), T),
        (
            "regex",
            None,
            json!("a"),
            E("expected string or bytes-like object, got 'NoneType'"),
        ),
        ("iregex", v(json!("FOO")), json!("foo"), T),
        ("iregex", v(json!("xFoOx")), json!("^foo"), F),
        ("iregex", v(json!("xFoOx")), json!("foo"), T),
    ]);
}

#[test]
fn timediff_compares_elapsed_seconds_with_float_pattern() {
    // now() is 2024-01-01T12:00:00Z.
    run(&[
        (
            "timediff_lt",
            v(json!("2024-01-01T11:59:30Z")),
            json!(60),
            T,
        ),
        (
            "timediff_lt",
            v(json!("2024-01-01T11:58:00Z")),
            json!(60),
            F,
        ),
        (
            "timediff_lt",
            v(json!("2024-01-01T11:59:30")),
            json!("60"),
            T,
        ),
        (
            "timediff_lt",
            v(json!("2024-01-01 13:59:30+02:00")),
            json!(60.5),
            T,
        ),
        (
            "timediff_lt",
            v(json!("2024-01-01T13:00:00Z")),
            json!(60),
            T,
        ),
        (
            "td_lt",
            v(json!("2024-01-01T11:59:30.250000Z")),
            json!(29.75),
            F,
        ),
        (
            "timediff_lt",
            v(json!("2024-01-01T11:59:30Z")),
            json!(null),
            F,
        ),
        (
            "timediff_lt",
            None,
            json!(60),
            E("Unknown string format: None"),
        ),
        (
            "timediff_lt",
            v(json!("soon")),
            json!(60),
            E("Unknown string format: soon"),
        ),
        (
            "timediff_lt",
            v(json!("2024-01-01T11:59:30Z")),
            json!("abc"),
            E("could not convert string to float: 'abc'"),
        ),
        (
            "timediff_lt",
            v(json!("2024-01-01T11:59:30Z")),
            json!([1]),
            E("float() argument must be a string or a real number, not 'list'"),
        ),
        (
            "timediff_gt",
            v(json!("2024-01-01T11:58:00Z")),
            json!(60),
            T,
        ),
        (
            "timediff_gt",
            v(json!("2024-01-01T11:59:30Z")),
            json!(60),
            F,
        ),
        (
            "td_gt",
            v(json!("Mon, 01 Jan 2024 11:00:00 GMT")),
            json!(3599),
            T,
        ),
        ("td_gt", v(json!("12/31/2023 11:00 PM")), json!(46_799), T),
    ]);
}

#[test]
fn exists_treats_null_like_missing() {
    run(&[
        ("exists", v(json!("x")), json!(null), T),
        ("exists", v(json!(0)), json!(null), T),
        ("exists", v(json!("")), json!(null), T),
        ("exists", v(json!(false)), json!("ignored"), T),
        ("exists", v(json!(null)), json!(null), F),
        ("exists", None, json!(null), F),
        ("nexists", None, json!(null), T),
        ("nexists", v(json!(null)), json!(null), T),
        ("nexists", v(json!("x")), json!(null), F),
    ]);
}

#[test]
fn inside_is_value_in_pattern() {
    run(&[
        ("inside", v(json!("a")), json!(["a", "b"]), T),
        ("inside", v(json!("c")), json!(["a", "b"]), F),
        ("inside", v(json!("ell")), json!("hello"), T),
        ("inside", v(json!(1)), json!([1.0]), T),
        ("inside", v(json!("k")), json!({"k": 1}), T),
        ("inside", None, json!([null]), T),
        ("inside", None, json!(["a"]), F),
        ("in", v(json!(2)), json!([1, 2]), T),
        ("inside", v(json!("a")), json!(null), F),
        (
            "inside",
            None,
            json!("abc"),
            E("'in <string>' requires string as left operand, not NoneType"),
        ),
        (
            "inside",
            v(json!(1)),
            json!("abc"),
            E("'in <string>' requires string as left operand, not int"),
        ),
        (
            "inside",
            v(json!("a")),
            json!(5),
            E("argument of type 'int' is not iterable"),
        ),
        (
            "inside",
            v(json!(["a"])),
            json!({"a": 1}),
            E("unhashable type: 'list'"),
        ),
        ("ninside", v(json!("c")), json!(["a", "b"]), T),
        ("ninside", v(json!("a")), json!(["a"]), F),
        ("ninside", v(json!("a")), json!(null), F),
        ("nin", v(json!(3)), json!([1, 2]), T),
    ]);
}

#[test]
fn operator_functions_directly() {
    assert_eq!(
        apply_at(Operator::Equals, &json!(1), &json!(1.0), now()),
        Ok(true)
    );
    assert_eq!(
        apply_at(Operator::Inside, &json!("a"), &json!("cat"), now()),
        Ok(true)
    );
    let err = apply_at(Operator::Search, &json!([]), &json!({}), now()).expect_err("an error");
    assert!(err
        .to_string()
        .contains("search() missing 2 required positional arguments"));
    assert!(is_known_operator("TD_GT") && is_known_operator("nin") && !is_known_operator("like"));
}

fn fields_payload() -> Json {
    json!({"fields": [
        {"field_name": "Status", "to_value": "Approved", "n": 45},
        {"field_name": "Assignee", "to_value": "Stanley", "n": 10}
    ]})
}

fn search(condition: Option<&str>, children: Json) -> Json {
    let mut c = json!({"type": "search", "pattern": children});
    if let (Some(cond), Some(map)) = (condition, c.as_object_mut()) {
        map.insert("condition".into(), json!(cond));
    }
    json!({ "trigger.fields": c })
}

#[test]
fn search_conditions() {
    let status_approved = json!({
        "item.field_name": {"type": "equals", "pattern": "Status"},
        "item.to_value": {"type": "equals", "pattern": "Approved"},
    });
    let status_or_stanley = json!({
        "item.field_name": {"type": "equals", "pattern": "Status"},
        "item.to_value": {"type": "equals", "pattern": "Stanley"},
    });
    let nope_or_stanley = json!({
        "item.field_name": {"type": "equals", "pattern": "Nope"},
        "item.to_value": {"type": "equals", "pattern": "Stanley"},
    });
    let both_exist = json!({
        "item.field_name": {"type": "exists"},
        "item.to_value": {"type": "exists"},
    });
    let p = fields_payload();
    let cases: &[(&str, Option<&str>, &Json, Want)] = &[
        ("any: an item matches every child", Some("any"), &status_approved, T),
        ("any: no item matches both", Some("any"), &status_or_stanley, F),
        ("all: every item matches every child", Some("all"), &both_exist, T),
        ("all: not every item", Some("all"), &status_approved, F),
        ("any2any", Some("any2any"), &nope_or_stanley, T),
        ("all2any: each item matches one child", Some("all2any"), &status_or_stanley, T),
        ("all2any: the second item matches none", Some("all2any"), &status_approved, F),
        ("unknown condition", Some("some"), &status_approved, E("The 'some' condition is not recognized for type search, 'any', 'all', 'any2any' and 'all2any' are allowed")),
        ("missing condition", None, &status_approved, E("The 'None' condition is not recognized")),
        ("conditions are case-sensitive", Some("ANY"), &status_approved, E("The 'ANY' condition")),
    ];
    for (label, condition, children, want) in cases {
        assert_outcome(
            label,
            eval(&search(*condition, (*children).clone()), &p),
            *want,
        );
    }
}

#[test]
fn search_quirks() {
    // Several criteria on one field thanks to `#` tags.
    let tagged = json!({
        "item.n#1": {"type": "greaterthan", "pattern": 40},
        "item.n#2": {"type": "lessthan", "pattern": 50},
    });
    assert_outcome(
        "tags",
        eval(&search(Some("any"), tagged.clone()), &fields_payload()),
        T,
    );
    assert_outcome(
        "tags all",
        eval(&search(Some("all"), tagged), &fields_payload()),
        F,
    );
    // A dict value is searched as a one-item list.
    let crit = json!({"trigger.obj": {"type": "search", "condition": "any",
        "pattern": {"item.a": {"type": "equals", "pattern": 1}}}});
    assert_outcome("dict wrapped", eval(&crit, &json!({"obj": {"a": 1}})), T);
    // Empty list: all([]) is True, any([]) is False.
    let empty = json!({"fields": [], "x": 1});
    let child = json!({"item.a": {"type": "equals", "pattern": 1}});
    assert_outcome(
        "empty all",
        eval(&search(Some("all"), child.clone()), &empty),
        T,
    );
    assert_outcome(
        "empty any",
        eval(&search(Some("any"), child.clone()), &empty),
        F,
    );
    // A missing value is not iterable.
    assert_outcome(
        "missing",
        eval(&search(Some("any"), child.clone()), &json!({"x": 1})),
        E("'NoneType' object is not iterable"),
    );
    // `type` must be spelled exactly `search` for StackStorm to pass the children.
    let crit = json!({"trigger.fields": {"type": "Search", "condition": "any", "pattern": child}});
    assert_outcome(
        "Search",
        eval(&crit, &fields_payload()),
        E("search() missing 2 required positional arguments: 'criteria_condition' and 'check_function'"),
    );
    // A pattern that is not a dict fails once there are items.
    let crit = json!({"trigger.fields": {"type": "search", "condition": "any", "pattern": ["x"]}});
    assert_outcome(
        "list pattern",
        eval(&crit, &fields_payload()),
        E("'list' object has no attribute 'items'"),
    );
}

#[test]
fn search_children_fail_alone_and_see_item() {
    // A child that raises is false and reported; the search goes on.
    let crit = json!({"trigger.xs": {"type": "search", "condition": "any",
        "pattern": {"item": {"type": "lessthan", "pattern": 5}}}});
    let (matched, errors) = eval(&crit, &json!({"xs": ["x", 1]}));
    assert!(matched, "the second item matches");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("'<' not supported between instances of 'str' and 'int'"));
    // Child patterns are rendered with `item`, not `trigger`.
    let crit = json!({"trigger.xs": {"type": "search", "condition": "any",
        "pattern": {"item.a": {"type": "equals", "pattern": "{{ item.b }}"}}}});
    assert_outcome(
        "item in template",
        eval(&crit, &json!({"xs": [{"a": 2, "b": 2}]})),
        T,
    );
    let crit = json!({"trigger.xs": {"type": "search", "condition": "any",
        "pattern": {"item.a": {"type": "equals", "pattern": "{{ trigger.b }}"}}}});
    assert_outcome(
        "trigger not in child context",
        eval(&crit, &json!({"xs": [{"a": 2}], "b": 2})),
        E("Failed to render pattern value \"{{ trigger.b }}\" for key \"item.a\""),
    );
    // A templated search pattern is rendered into child criteria.
    let crit = json!({"trigger.xs": {"type": "search", "condition": "all", "pattern": "{{ trigger.crit }}"}});
    let payload =
        json!({"xs": [{"a": 1}, {"a": 1}], "crit": {"item.a": {"type": "eq", "pattern": 1}}});
    assert_outcome("templated children", eval(&crit, &payload), T);
}

#[test]
fn keys_are_jsonpath_rw_paths() {
    let payload = json!({
        "headers": {"X-Custom-Header": "yes", "Content-Type": "application/json"},
        "body": {"items": [{"x": 1}, {"x": 2}], "d": {"k": "v"}},
        "a": 7,
    });
    let cases: &[(&str, &str, Json, Want)] = &[
        ("trigger.headers['X-Custom-Header']", "equals", json!("yes"), T),
        ("trigger.headers[\"Content-Type\"]", "startswith", json!("application/"), T),
        ("trigger.headers.X-Custom-Header", "equals", json!("yes"), T),
        ("trigger.body.items[0].x", "equals", json!(1), T),
        ("trigger.body.items[-1].x", "equals", json!(2), T),
        ("trigger.body.items[5].x", "nexists", json!(null), T),
        ("trigger.body.items[*].x", "equals", json!(1), T),
        ("trigger..x", "equals", json!(1), T),
        ("$.trigger.a", "equals", json!(7), T),
        ("trigger.a#first", "greaterthan", json!(5), T),
        ("trigger.a#second", "lessthan", json!(10), T),
        ("payload.a", "nexists", json!(null), T),
        ("trigger.body.d.missing", "nexists", json!(null), T),
        ("trigger.body.d[0]", "exists", json!(null), E("Failed transforming criteria key trigger.body.d[0]: 0")),
        ("trigger.body.items[-9]", "exists", json!(null), E("list index out of range")),
        ("trigger.0", "exists", json!(null), E("Failed transforming criteria key trigger.0: Parse error at 1:8 near token 0 (NUMBER)")),
    ];
    for (key, op, pattern, want) in cases {
        let crit = json!({ *key: {"type": op, "pattern": pattern} });
        assert_outcome(key, eval(&crit, &payload), *want);
    }
    // Two criteria on the same field through tags are both applied.
    let crit = json!({
        "trigger.a#1": {"type": "gt", "pattern": 5},
        "trigger.a#2": {"type": "lt", "pattern": 6},
    });
    assert_outcome("both tags", eval(&crit, &payload), F);
}

#[test]
fn criteria_never_match_an_empty_payload() {
    let nexists = json!({"trigger.a": {"type": "nexists"}});
    for payload in [
        json!({}),
        json!(null),
        json!([]),
        json!(""),
        json!(0),
        json!(false),
    ] {
        assert_outcome(&format!("{payload}"), eval(&nexists, &payload), F);
    }
    assert_outcome("no criteria", eval(&json!({}), &json!({})), T);
    assert_outcome(
        "no criteria, null payload",
        eval(&json!({}), &json!(null)),
        T,
    );
    assert_outcome("non-empty", eval(&nexists, &json!({"b": 1})), T);
}

#[test]
fn criterion_without_type_and_unknown_operators() {
    let payload = json!({"a": 1});
    assert_outcome(
        "no type",
        eval(&json!({"trigger.a": {"pattern": 1}}), &payload),
        F,
    );
    assert_outcome(
        "unknown",
        eval(
            &json!({"trigger.a": {"type": "like", "pattern": 1}}),
            &payload,
        ),
        E("There might be a problem with the criteria in rule tests.rule: Invalid operator: like"),
    );
    assert_outcome(
        "case",
        eval(
            &json!({"trigger.a": {"type": "GreaterThan", "pattern": 0}}),
            &payload,
        ),
        T,
    );
}

#[test]
fn patterns_are_templates_that_keep_types() {
    let payload = json!({
        "v": "b", "n": 5, "expected_list": ["a", "b"], "prefix": "abc", "s": "5",
    });
    let cases: &[(&str, &str, Json, Want)] = &[
        (
            "trigger.v",
            "inside",
            json!("{{ trigger.expected_list }}"),
            T,
        ),
        ("trigger.n", "equals", json!("{{ trigger.n }}"), T),
        // Rendered numbers stay numbers: "5" (a string in the payload) is not 5.
        ("trigger.s", "equals", json!("{{ trigger.n }}"), F),
        ("trigger.prefix", "equals", json!("{{ trigger.prefix }}"), T),
        (
            "trigger.prefix",
            "startswith",
            json!("{{ trigger.prefix[:2] }}"),
            T,
        ),
        (
            "trigger.v",
            "equals",
            json!("{{ trigger.nope }}"),
            E("Failed to render pattern value \"{{ trigger.nope }}\" for key \"trigger.v\""),
        ),
        (
            "trigger.v",
            "equals",
            json!("{{ trigger.v "),
            E("Failed to render pattern value \"{{ trigger.v \" for key \"trigger.v\""),
        ),
        // Non-strings are not rendered.
        ("trigger.expected_list", "equals", json!(["a", "b"]), T),
    ];
    for (key, op, pattern, want) in cases {
        let crit = json!({ *key: {"type": op, "pattern": pattern} });
        assert_outcome(
            &format!("{key} {op} {pattern}"),
            eval(&crit, &payload),
            *want,
        );
    }
}

#[test]
fn patterns_see_the_datastore() {
    let kv = StaticKv::new().system("expected", KvValue::plain("hello"));
    let ctx = MatchContext::new().with_render(RenderContext::new().with_kv(Arc::new(kv), None));
    let crit = json!({"trigger.v": {"type": "equals", "pattern": "{{ st2kv.system.expected }}"}});
    assert_outcome("kv", eval_ctx(&crit, &json!({"v": "hello"}), &ctx), T);
    assert_outcome(
        "kv mismatch",
        eval_ctx(&crit, &json!({"v": "bye"}), &ctx),
        F,
    );
}

fn rule(rule_ref: &str, trigger: &str, criteria: Json) -> Rule {
    let (pack, name) = rule_ref.split_once('.').unwrap_or(("tests", rule_ref));
    serde_json::from_value(json!({
        "id": format!("id-{name}"),
        "name": name,
        "pack": pack,
        "ref": rule_ref,
        "enabled": true,
        "trigger": {"type": trigger},
        "criteria": criteria,
        "action": {"ref": "core.noop"},
    }))
    .expect("a valid rule")
}

fn backstop(mut r: Rule) -> Rule {
    r.rule_type.type_ref = "backstop".into();
    r
}

fn refs(rules: &[&Rule]) -> Vec<String> {
    rules.iter().map(|r| r.rule_ref.clone()).collect()
}

#[test]
fn one_rule_filter() {
    let engine = TemplateEngine::new();
    let mut r = rule(
        "p.one",
        "t1",
        json!({"trigger.a": {"type": "eq", "pattern": 1}}),
    );
    assert!(filter(&r, &json!({"a": 1}), &engine, &MatchContext::new()).matched);
    r.enabled = false;
    assert!(!filter(&r, &json!({"a": 1}), &engine, &MatchContext::new()).matched);
}

#[test]
fn backstop_rules_fire_only_when_no_standard_rule_matched() {
    let engine = TemplateEngine::new();
    let rules = vec![
        backstop(rule("p.fallback", "t1", json!({}))),
        // Its error would be reported if it were evaluated.
        backstop(rule(
            "p.broken_fallback",
            "t1",
            json!({"trigger.a": {"type": "lt", "pattern": "x"}}),
        )),
        rule(
            "p.one",
            "t1",
            json!({"trigger.a": {"type": "eq", "pattern": 1}}),
        ),
        rule(
            "p.two",
            "t1",
            json!({"trigger.a": {"type": "gt", "pattern": 0}}),
        ),
    ];
    let (set, issues) = RuleSet::build(rules, &engine);
    assert!(issues.is_empty(), "{issues:?}");
    let render = RenderContext::new();
    let hit = set.match_instance("t1", &json!({"a": 1}), &render);
    assert_eq!(refs(&hit.matched_standard), ["p.one", "p.two"]);
    assert!(hit.matched_backstop.is_empty());
    assert!(
        hit.errors.is_empty(),
        "backstops are not evaluated: {:?}",
        hit.errors
    );
    assert_eq!(refs(hit.matched()), ["p.one", "p.two"]);

    let miss = set.match_instance(
        "t1",
        &json!({"a": -1}),
        MatchContext::new().for_trigger_instance("ti-9"),
    );
    assert!(miss.matched_standard.is_empty());
    assert_eq!(refs(&miss.matched_backstop), ["p.fallback"]);
    assert_eq!(miss.errors.len(), 1);
    assert_eq!(miss.errors[0].0, "p.broken_fallback");
    assert_eq!(
        miss.errors[0].1,
        "Failed to match rule \"p.broken_fallback\" against trigger instance \"ti-9\": There \
         might be a problem with the criteria in rule p.broken_fallback: '<' not supported \
         between instances of 'int' and 'str'"
    );
    assert_eq!(miss.failures[0].0.rule_ref, "p.broken_fallback");
}

#[test]
fn rules_are_indexed_by_their_trigger() {
    let engine = TemplateEngine::new();
    let mut on_trigger = rule("p.by_ref", "core.st2.webhook", json!({}));
    on_trigger.trigger.trigger_ref = Some("core.8c13b3a5".into());
    let rules = vec![
        rule("p.t1", "t1", json!({"trigger.a": {"type": "exists"}})),
        // Would report an error on any payload with `a`, but listens on t2.
        rule(
            "p.t2",
            "t2",
            json!({"trigger.a": {"type": "lt", "pattern": "x"}}),
        ),
        on_trigger,
    ];
    let (set, _) = RuleSet::build(rules, &engine);
    let ctx = MatchContext::new();
    let t1 = set.match_instance("t1", &json!({"a": 1}), &ctx);
    assert_eq!(refs(&t1.matched_standard), ["p.t1"]);
    assert!(
        t1.errors.is_empty(),
        "rules of t2 are never evaluated: {:?}",
        t1.errors
    );
    let t2 = set.match_instance("t2", &json!({"a": 1}), &ctx);
    assert!(t2.matched_standard.is_empty());
    assert_eq!(t2.errors.len(), 1);
    // The Trigger ref wins over the trigger type.
    let by_ref = set.match_instance("core.8c13b3a5", &json!({}), &ctx);
    assert_eq!(refs(&by_ref.matched_standard), ["p.by_ref"]);
    assert!(set
        .match_instance("core.st2.webhook", &json!({}), &ctx)
        .matched_standard
        .is_empty());
    assert!(set
        .match_instance("unknown", &json!({"a": 1}), &ctx)
        .matched()
        .is_empty());
    assert_eq!(set.rules_for("t1").count(), 1);
}

#[test]
fn rules_are_added_replaced_and_removed() {
    let engine = TemplateEngine::new();
    let mut disabled = rule("p.off", "t1", json!({}));
    disabled.enabled = false;
    let (mut set, _) = RuleSet::build(
        vec![
            rule("p.a", "t1", json!({})),
            disabled,
            rule(
                "p.b",
                "t1",
                json!({"trigger.x": {"type": "eq", "pattern": 1}}),
            ),
        ],
        &engine,
    );
    assert_eq!(set.len(), 2);
    assert!(set.rule("p.off").is_none());
    let ctx = MatchContext::new();
    let payload = json!({"x": 2});
    assert_eq!(
        refs(set.match_instance("t1", &payload, &ctx).matched()),
        ["p.a"]
    );

    // Replace p.b: it keeps its place after p.a.
    assert!(set
        .upsert(rule(
            "p.b",
            "t1",
            json!({"trigger.x": {"type": "eq", "pattern": 2}})
        ))
        .is_empty());
    assert_eq!(
        refs(set.match_instance("t1", &payload, &ctx).matched()),
        ["p.a", "p.b"]
    );
    // Add p.c, with a compile problem reported (and kept).
    let issues = set.upsert(rule(
        "p.c",
        "t1",
        json!({"trigger.x": {"type": "eq", "pattern": "{{ oops"}}),
    ));
    assert_eq!(issues.len(), 1);
    let result = set.match_instance("t1", &payload, &ctx);
    assert_eq!(refs(result.matched()), ["p.a", "p.b"]);
    assert_eq!(result.errors.len(), 1);
    assert_eq!(result.errors[0].0, "p.c");
    // Move p.a to another trigger.
    set.upsert(rule("p.a", "t2", json!({})));
    assert_eq!(
        refs(set.match_instance("t1", &payload, &ctx).matched()),
        ["p.b"]
    );
    assert_eq!(
        refs(set.match_instance("t2", &payload, &ctx).matched()),
        ["p.a"]
    );
    // Remove, and disable through upsert.
    assert_eq!(
        set.remove("p.b").map(|r| r.rule_ref),
        Some("p.b".to_string())
    );
    assert!(set.remove("p.b").is_none());
    let mut off = rule("p.a", "t2", json!({}));
    off.enabled = false;
    set.upsert(off);
    assert!(set
        .match_instance("t2", &payload, &ctx)
        .matched()
        .is_empty());
    assert_eq!(set.len(), 1);
    assert!(set.rule("p.c").is_some());
}
