//! Table-driven tests of the schemas and of validation, with real YAML.

use std::path::Path;

use serde_json::{json, Value};

use super::*;
use crate::model::JsonMap;

fn file() -> &'static Path {
    Path::new("test.yaml")
}

fn yaml(text: &str) -> Value {
    match parse_yaml(file(), text) {
        Ok(v) => v,
        Err(e) => panic!("test YAML does not parse: {e}"),
    }
}

fn map(text: &str) -> JsonMap {
    match yaml(text) {
        Value::Object(m) => m,
        other => panic!("expected a mapping, got {other}"),
    }
}

fn errors_of(kind: MetadataKind, text: &str) -> Vec<ContentError> {
    match validate(kind, file(), &yaml(text)) {
        Ok(()) => Vec::new(),
        Err(errors) => errors,
    }
}

/// Asserts that one error has `field` and a reason holding every word of `words`.
fn assert_error(errors: &[ContentError], field: &str, words: &[&str], context: &str) {
    let found = errors
        .iter()
        .any(|e| e.field == field && words.iter().all(|w| e.reason.contains(w)));
    assert!(
        found,
        "{context}: no error at {field:?} with {words:?}; got {errors:#?}"
    );
}

const ACTION: &str = r#"
---
name: "echo"
pack: "examples"
runner_type: "local-shell-cmd"
description: "Echo a message"
enabled: true
entry_point: ""
parameters:
  message:
    type: string
    description: "What to say"
    required: true
    position: 0
  cmd:
    immutable: true
    default: 'echo "{{ message }}"'
  count:
    type: integer
    default: 1
    minimum: 1
    exclusiveMinimum: false
  mode:
    type: string
    enum: [fast, slow]
  options:
    type: object
    properties:
      verbose:
        type: boolean
        default: false
    additionalProperties: false
  hosts:
    type: array
    items:
      type: string
  pair:
    type: array
    items:
      - type: string
      - type: integer
    additionalItems: false
  token:
    type: string
    secret: true
  either:
    anyOf:
      - type: string
      - type: integer
notify:
  on-failure:
    message: "failed"
    routes: [slack]
tags:
  - name: team
    value: ops
output_schema:
  type: object
  properties:
    stdout: {type: string}
"#;

const RULE: &str = r#"
---
name: "notify_on_push"
pack: "examples"
description: "Echo the ref of every push"
enabled: true
trigger:
  type: "core.st2.webhook"
  parameters:
    url: "push"
criteria:
  trigger.body.ref:
    type: "equals"
    pattern: "refs/heads/main"
  trigger.body.commits:
    pattern: "no operator here"
  trigger.body.items:
    type: search
    condition: any
    pattern:
      item.name:
        type: equals
        pattern: x
action:
  ref: "core.local"
  parameters:
    cmd: "echo {{ trigger.body.ref }}"
type:
  ref: standard
"#;

const PACK: &str = r#"
---
ref: examples
name: Examples
description: Example pack
version: 1.0.0
author: StackStorm
email: info@example.com
keywords: [example]
python_versions: ["3"]
stackstorm_version: ">=3.0.0, <4.0.0"
dependencies: ["core", "https://github.com/x/y=1.0.0"]
contributors: ["Jane <jane@example.com>"]
custom_field: extra fields are allowed in pack.yaml
"#;

const SENSOR: &str = r#"
---
class_name: "FileWatchSensor"
enabled: true
entry_point: "file_watch_sensor.py"
description: "Sensor which monitors files for new lines"
poll_interval: 30
trigger_types:
  - name: "file_watch.line"
    pack: "linux"
    description: "Trigger which indicates a new line has been detected"
    parameters_schema:
      type: "object"
      properties:
        file_path:
          description: "Path to the file to monitor"
          type: "string"
          required: true
      additionalProperties: false
    payload_schema:
      type: "object"
      properties:
        file_path: {type: "string"}
        line: {type: "string"}
"#;

const TRIGGER: &str = r#"
---
name: event
pack: examples
description: An event
payload_schema:
  type: object
  properties:
    id: {type: integer, required: true}
parameters_schema: {}
tags: [{name: source, value: test}]
"#;

const POLICY: &str = r#"
---
name: echo.retry
pack: examples
description: Retry echo on timeout
enabled: true
resource_ref: examples.echo
policy_type: action.retry
parameters:
  retry_on: timeout
  max_retry_count: 2
"#;

const ALIAS: &str = r#"
---
name: "remote_shell_cmd"
pack: "examples"
action_ref: "core.remote"
description: "Execute a command on a remote host via SSH."
enabled: true
formats:
  - "run {{cmd}} on {{hosts}}"
  - display: "ssh <hosts> <cmd>"
    representation:
      - "ssh {{hosts}} {{cmd}}"
ack:
  enabled: true
  format: "running {{ actionalias.ref }}"
  append_url: false
result:
  format: "{{ execution.result }}"
  extra:
    slack: {color: green}
immutable_parameters:
  sudo: false
"#;

const WORKFLOW: &str = r#"
version: 1.0
description: A sample workflow.
input:
  - name
  - greeting: "hello"
vars:
  - count: 0
tasks:
  task1:
    action: core.echo message="<% ctx(name) %>"
    next:
      - when: <% succeeded() %>
        publish:
          - greeting: <% result().stdout %>
        do: task2
      - when: <% failed() %>
        publish: failed=true
        do: fail
  task2:
    action: core.local
    input:
      cmd: echo {{ ctx().greeting }}
    with: host in <% ctx(hosts) %>
    retry:
      when: <% failed() %>
      count: 3
      delay: 5
    next:
      - do:
          - task3
  task3:
    join: all
    delay: 1
  task4:
    action: core.noop
    with:
      items: x in <% ctx(xs) %>
      concurrency: 2
    join: 2
output:
  - greeting: <% ctx(greeting) %>
"#;

const RUNNER: &str = r#"
- name: local-shell-cmd
  description: A runner to execute local actions as a fixed user.
  enabled: true
  runner_package: local_runner
  runner_module: local_shell_command_runner
  runner_parameters:
    cmd:
      description: Arbitrary Linux command to be executed on the host.
      type: string
    sudo_password:
      default: null
      type: string
      secret: true
      required: false
  output_key: stdout
  output_schema:
    type: object
"#;

const CHAIN: &str = r#"
vars:
  greeting: hello
chain:
  - name: c1
    ref: core.local
    parameters:
      cmd: "echo {{ greeting }}"
    publish:
      out: "{{ c1.stdout }}"
    on-success: c2
    on-failure: c3
  - name: c2
    ref: core.local
    params: {cmd: "echo done"}
    notify:
      on-complete: {message: done}
  - name: c3
    ref: core.noop
default: c1
"#;

const CONFIG_SCHEMA: &str = r#"
api_url:
  type: string
  description: Base URL of the API
  default: https://api.example.com
api_key:
  type: string
  secret: true
  required: true
timeout:
  type: integer
  default: 30
  required: true
proxy:
  type: object
  properties:
    host: {type: string, default: proxy.local}
    port: {type: integer, default: 3128}
    auth:
      type: object
      properties:
        user: {type: string, default: anonymous}
regions:
  type: array
  items:
    type: object
    properties:
      name: {type: string, required: true}
      zone: {type: string, default: a}
labels:
  type: object
  patternProperties:
    "^x_":
      type: object
      properties:
        enabled: {type: boolean, default: true}
  additionalProperties:
    type: object
    properties:
      weight: {type: integer, default: 1}
"#;

const PACK_INDEX: &str = r#"{
  "metadata": {"generated_ts": 1700000000, "hash": "abc"},
  "packs": {
    "aws": {
      "name": "aws",
      "description": "AWS integration",
      "version": "1.0.0",
      "author": "StackStorm",
      "repo_url": "https://github.com/StackStorm-Exchange/stackstorm-aws",
      "keywords": ["aws", "cloud"],
      "content": {"actions": {"count": 3, "resources": ["a", "b", "c"]}}
    }
  }
}"#;

#[test]
fn every_schema_compiles_and_documents_its_fields() {
    /// Every entry of every `properties` map, at any depth, must have a description.
    fn check_descriptions(schema: &Value, at: &str, missing: &mut Vec<String>) {
        let Value::Object(m) = schema else { return };
        for (keyword, value) in m {
            let here = format!("{at}/{keyword}");
            match (keyword.as_str(), value) {
                ("properties", Value::Object(props)) => {
                    for (name, prop) in props {
                        if prop.get("description").is_none() {
                            missing.push(format!("{here}/{name}"));
                        }
                        check_descriptions(prop, &format!("{here}/{name}"), missing);
                    }
                }
                ("$defs" | "patternProperties" | "dependentSchemas", Value::Object(subs)) => {
                    for (name, sub) in subs {
                        check_descriptions(sub, &format!("{here}/{name}"), missing);
                    }
                }
                ("allOf" | "anyOf" | "oneOf" | "prefixItems", Value::Array(subs)) => {
                    for (i, sub) in subs.iter().enumerate() {
                        check_descriptions(sub, &format!("{here}/{i}"), missing);
                    }
                }
                (
                    "items"
                    | "additionalProperties"
                    | "if"
                    | "then"
                    | "else"
                    | "not"
                    | "contains"
                    | "propertyNames",
                    sub,
                ) => check_descriptions(sub, &here, missing),
                _ => {}
            }
        }
    }
    let mut missing = Vec::new();
    for kind in MetadataKind::ALL {
        let _ = embedded::validator(kind);
        let schema = schema_json(kind);
        assert!(
            schema.get("description").is_some(),
            "{} has no description",
            kind.schema_file()
        );
        check_descriptions(schema, kind.schema_file(), &mut missing);
    }
    let params = embedded::document("action_param.json").expect("action_param.json is embedded");
    check_descriptions(params, "action_param.json", &mut missing);
    assert!(
        missing.is_empty(),
        "fields without description: {missing:#?}"
    );
}

#[test]
fn valid_documents_pass() {
    let cases = [
        (MetadataKind::Action, ACTION),
        (MetadataKind::Rule, RULE),
        (MetadataKind::Pack, PACK),
        (MetadataKind::Sensor, SENSOR),
        (MetadataKind::TriggerType, TRIGGER),
        (MetadataKind::Policy, POLICY),
        (MetadataKind::Alias, ALIAS),
        (MetadataKind::Workflow, WORKFLOW),
        (MetadataKind::RunnerType, RUNNER),
        (MetadataKind::ActionChain, CHAIN),
        (MetadataKind::ConfigSchema, CONFIG_SCHEMA),
        (MetadataKind::PackIndex, PACK_INDEX),
        // Minimal documents.
        (MetadataKind::Action, "name: a\nrunner_type: noop\n"),
        (
            MetadataKind::Rule,
            "name: r\ntrigger: {type: core.st2.webhook}\naction: {ref: core.noop}\n",
        ),
        (
            MetadataKind::Pack,
            "name: p\ndescription: d\nversion: 0.1.0-rc.1+build.5\nauthor: a\n",
        ),
        (MetadataKind::Sensor, "class_name: S\nentry_point: s.py\n"),
        (MetadataKind::TriggerType, "name: t\n"),
        (
            MetadataKind::Policy,
            "name: p\nresource_ref: a.b\npolicy_type: action.concurrency\n",
        ),
        (MetadataKind::Alias, "name: a\naction_ref: core.local\n"),
        (MetadataKind::Workflow, "tasks:\n  only: {}\n"),
        (
            MetadataKind::RunnerType,
            "name: noop\nrunner_module: noop_runner\n",
        ),
        (MetadataKind::ActionChain, "chain: []\n"),
        (MetadataKind::ConfigSchema, "{}\n"),
        (MetadataKind::PackIndex, "packs: {}\n"),
    ];
    for (kind, text) in cases {
        let errors = errors_of(kind, text);
        assert!(
            errors.is_empty(),
            "{kind:?} should be valid, got {errors:#?}\n{text}"
        );
    }
}

#[test]
fn invalid_documents_give_precise_errors() {
    // (kind, document, field, words the reason must contain)
    let cases: &[(MetadataKind, &str, &str, &[&str])] = &[
        // Unknown field, with the allowed ones and a suggestion.
        (
            MetadataKind::Action,
            "name: a\nrunner_type: noop\nrunner_typo: x\n",
            "/runner_typo",
            &["unknown field \"runner_typo\"", "allowed: name, pack, runner_type", "did you mean \"runner_type\""],
        ),
        // Missing required field: the path of the field itself.
        (MetadataKind::Action, "name: a\n", "/runner_type", &["missing required field \"runner_type\""]),
        (MetadataKind::Action, "runner_type: noop\n", "/name", &["missing required field \"name\""]),
        // Wrong types.
        (MetadataKind::Action, "name: a\nrunner_type: noop\nenabled: \"yes\"\n", "/enabled", &["expected boolean, got string \"yes\""]),
        (MetadataKind::Action, "name: 5\nrunner_type: noop\n", "/name", &["expected string, got integer 5"]),
        (MetadataKind::Action, "name: a\nrunner_type: noop\nparameters: [a]\n", "/parameters", &["expected object, got array"]),
        // Parameter schemas.
        (
            MetadataKind::Action,
            "name: a\nrunner_type: noop\nparameters:\n  cmd: {type: strng}\n",
            "/parameters/cmd/type",
            &["\"strng\" is not one of", "\"string\"", "\"integer\""],
        ),
        (
            MetadataKind::Action,
            "name: a\nrunner_type: noop\nparameters:\n  cmd: {type: string, required: \"yes\"}\n",
            "/parameters/cmd/required",
            &["expected boolean, got string \"yes\""],
        ),
        (
            MetadataKind::Action,
            "name: a\nrunner_type: noop\nparameters:\n  cmd: {type: string, requried: true}\n",
            "/parameters/cmd/requried",
            &["unknown field \"requried\"", "did you mean \"required\""],
        ),
        (
            MetadataKind::Action,
            "name: a\nrunner_type: noop\nparameters:\n  bad-name: {type: string}\n",
            "/parameters/bad-name",
            &["invalid name \"bad-name\"", "^\\w+$"],
        ),
        (
            MetadataKind::Action,
            "name: a\nrunner_type: noop\nparameters:\n  cmd: {type: string, position: -1}\n",
            "/parameters/cmd/position",
            &["-1 is less than the minimum 0"],
        ),
        (
            MetadataKind::Action,
            "name: a\nrunner_type: noop\nparameters:\n  o:\n    type: object\n    properties:\n      x: {type: 5}\n",
            "/parameters/o/properties/x/type",
            &["5 is not one of"],
        ),
        (
            MetadataKind::Action,
            "name: a\nrunner_type: noop\nparameters:\n  l:\n    type: array\n    items: {type: string, secrett: true}\n",
            "/parameters/l/items/secrett",
            &["unknown field \"secrett\"", "did you mean \"secret\""],
        ),
        (
            MetadataKind::Action,
            "name: a\nrunner_type: noop\nparameters:\n  n: {type: integer, exclusiveMinimum: true}\n",
            "/parameters/n/minimum",
            &["missing required field \"minimum\""],
        ),
        (
            MetadataKind::Action,
            "name: a\nrunner_type: noop\nparameters:\n  e: {type: string, enum: []}\n",
            "/parameters/e/enum",
            &["must not be an empty list"],
        ),
        // Pack refs and notify.
        (MetadataKind::Action, "name: a\nrunner_type: noop\npack: Bad-Pack\n", "/pack", &["\"Bad-Pack\" does not match ^[a-z0-9_]+$"]),
        (
            MetadataKind::Action,
            "name: a\nrunner_type: noop\nnotify:\n  on-sucess: {message: hi}\n",
            "/notify/on-sucess",
            &["unknown field", "did you mean \"on-success\""],
        ),
        // Not an object at all.
        (MetadataKind::Action, "- a\n- b\n", "", &["expected object, got array"]),
        // pack.yaml.
        (MetadataKind::Pack, "ref: Bad-Name\nname: p\ndescription: d\nversion: 1.0.0\nauthor: a\n", "/ref", &["\"Bad-Name\" does not match ^[a-z0-9_]+$"]),
        (MetadataKind::Pack, "name: p\ndescription: d\nversion: v1.0.0\nauthor: a\n", "/version", &["\"v1.0.0\" does not match ^(?:0|[1-9]\\d*)\\.", "[\\da-z\\-]", "semantic version"]),
        // Unquoted numbers are cast to strings, as StackStorm does, then fail the semver check.
        (MetadataKind::Pack, "name: p\ndescription: d\nversion: 1.0\nauthor: a\n", "/version", &["\"1.0\" does not match", "semantic version"]),
        (MetadataKind::Pack, "name: p\ndescription: d\nversion: 1.0.0\n", "/author", &["missing required field \"author\""]),
        (MetadataKind::Pack, "name: p\ndescription: d\nversion: 1.0.0\nauthor: a\npython_versions: [\"4\"]\n", "/python_versions/0", &["\"4\" is not one of \"2\", \"3\""]),
        (MetadataKind::Pack, "name: p\ndescription: d\nversion: 1.0.0\nauthor: a\npython_versions: [\"3\", \"3\"]\n", "/python_versions", &["must be unique", "\"3\""]),
        (MetadataKind::Pack, "name: p\ndescription: d\nversion: 1.0.0\nauthor: a\nstackstorm_version: \"3.0\"\n", "/stackstorm_version", &["does not match"]),
        // Rules: action.ref is required; rule.action allows no other fields.
        (
            MetadataKind::Rule,
            "name: r\ntrigger: {type: core.st2.webhook}\naction:\n  parameters: {}\n",
            "/action/ref",
            &["missing required field \"ref\""],
        ),
        (
            MetadataKind::Rule,
            "name: r\ntrigger: {type: core.st2.webhook}\naction: {ref: core.noop, params: {}}\n",
            "/action/params",
            &["unknown field \"params\"", "allowed: ref, parameters, description"],
        ),
        (MetadataKind::Rule, "name: r\ntrigger: {parameters: {}}\naction: {ref: core.noop}\n", "/trigger/type", &["missing required field \"type\""]),
        (MetadataKind::Rule, "name: r\naction: {ref: core.noop}\n", "/trigger", &["missing required field \"trigger\""]),
        (
            MetadataKind::Rule,
            "name: r\ntrigger: {type: t}\naction: {ref: a}\ntype: {ref: fallback}\n",
            "/type/ref",
            &["\"fallback\" is not one of \"standard\", \"backstop\""],
        ),
        (
            MetadataKind::Rule,
            "name: r\ntrigger: {type: t}\naction: {ref: a}\ncriteria:\n  trigger.x: {type: search, condition: some}\n",
            "/criteria/trigger.x/condition",
            &["\"some\" is not one of"],
        ),
        // Sensors and their inline trigger types.
        (MetadataKind::Sensor, "entry_point: s.py\n", "/class_name", &["missing required field \"class_name\""]),
        (
            MetadataKind::Sensor,
            "class_name: S\nentry_point: s.py\ntrigger_types:\n  - name: t\n    payload: {}\n",
            "/trigger_types/0/payload",
            &["unknown field \"payload\"", "payload_schema"],
        ),
        (MetadataKind::Sensor, "class_name: S\nentry_point: s.py\npoll_interval: soon\n", "/poll_interval", &["expected number, got string \"soon\""]),
        // Trigger types.
        (MetadataKind::TriggerType, "name: t\npayload_schema: []\n", "/payload_schema", &["expected object, got array"]),
        // Policies.
        (
            MetadataKind::Policy,
            "name: p\nresource_ref: a.b\npolicy_type: throttle\n",
            "/policy_type",
            &["\"throttle\" does not match"],
        ),
        (
            MetadataKind::Policy,
            "name: p\nresource_ref: a.b\npolicy_type: action.retry\nparameters: {retry_on: null}\n",
            "/parameters/retry_on",
            &["expected a value, got null"],
        ),
        (MetadataKind::Policy, "name: p\npolicy_type: action.retry\n", "/resource_ref", &["missing required field \"resource_ref\""]),
        // Aliases.
        (MetadataKind::Alias, "name: a\naction_ref: x.y\nformats: [5]\n", "/formats/0", &["expected string or object, got integer 5"]),
        (
            MetadataKind::Alias,
            "name: a\naction_ref: x.y\nformats:\n  - display: d\n    representation: d\n",
            "/formats/0/representation",
            &["expected array, got string \"d\""],
        ),
        // Orquesta workflows.
        (MetadataKind::Workflow, "version: 1.0\n", "/tasks", &["missing required field \"tasks\""]),
        (MetadataKind::Workflow, "version: 2.0\ntasks: {t: {}}\n", "/version", &["2.0 is not one of"]),
        (MetadataKind::Workflow, "tasks:\n  t1: {actions: core.noop}\n", "/tasks/t1/actions", &["unknown field \"actions\"", "did you mean \"action\""]),
        (MetadataKind::Workflow, "tasks:\n  t1: {join: some}\n", "/tasks/t1/join", &["expected \"all\", got \"some\""]),
        (MetadataKind::Workflow, "tasks:\n  t1: {join: -1}\n", "/tasks/t1/join", &["-1 is less than the minimum 0"]),
        (MetadataKind::Workflow, "tasks:\n  t1:\n    retry: {delay: 1}\n", "/tasks/t1/retry/count", &["missing required field \"count\""]),
        (MetadataKind::Workflow, "vars:\n  - {a: 1, b: 2}\ntasks: {t: {}}\n", "/vars/0", &["expected exactly one entry, got 2"]),
        (MetadataKind::Workflow, "tasks:\n  t1:\n    next:\n      - do: 5\n", "/tasks/t1/next/0/do", &["expected string or array, got integer 5"]),
        (MetadataKind::Workflow, "tasks:\n  t1:\n    next:\n      - when: \"\"\n", "/tasks/t1/next/0/when", &["must not be empty"]),
        (MetadataKind::Workflow, "tasks: {}\n", "/tasks", &["must not be an empty map"]),
        // Action chains.
        (
            MetadataKind::ActionChain,
            "chain:\n  - name: a\n    ref: core.noop\n    params: {x: 1}\n    parameters: {y: 2}\n",
            "/chain/0/params",
            &["either \"params\"", "not both"],
        ),
        (MetadataKind::ActionChain, "chain:\n  - name: a\n    ref: core.noop\n  - name: b\n", "/chain/1/ref", &["missing required field \"ref\""]),
        (MetadataKind::ActionChain, "chain:\n  - name: a\n    ref: x\n    on_success: b\n", "/chain/0/on_success", &["unknown field", "did you mean \"on-success\""]),
        // Runner types (a runner.yaml holds a list).
        (MetadataKind::RunnerType, "- name: r\n", "/0/runner_module", &["missing required field \"runner_module\""]),
        (MetadataKind::RunnerType, "name: r\nrunner_module: m\naliases: [x]\n", "/aliases", &["unknown field \"aliases\""]),
        // Config schemas.
        (MetadataKind::ConfigSchema, "api-key: {type: string}\n", "/api-key", &["invalid name \"api-key\""]),
        (MetadataKind::ConfigSchema, "timeout: {type: int}\n", "/timeout/type", &["\"int\" is not one of"]),
        (MetadataKind::ConfigSchema, "token: {type: string, secret: \"yes\"}\n", "/token/secret", &["expected boolean"]),
        // Pack indexes.
        (MetadataKind::PackIndex, "metadata: {}\n", "/packs", &["missing required field \"packs\""]),
        (MetadataKind::PackIndex, "packs:\n  aws: {version: 1.0.0}\n", "/packs/aws/repo_url", &["missing required field \"repo_url\""]),
    ];
    for (kind, text, field, words) in cases {
        let errors = errors_of(*kind, text);
        assert_error(&errors, field, words, &format!("{kind:?} {text:?}"));
        for e in &errors {
            assert_eq!(e.file, file());
        }
    }
}

#[test]
fn every_violation_is_reported_most_specific_first() {
    let text = "name: a\nbogus: 1\nparameters:\n  cmd: {type: strng, bad: 1}\n";
    let errors = errors_of(MetadataKind::Action, text);
    let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    for expected in [
        "/parameters/cmd/type",
        "/parameters/cmd/bad",
        "/runner_type",
        "/bogus",
    ] {
        assert!(
            fields.contains(&expected),
            "{expected} missing from {fields:?}"
        );
    }
    let depths: Vec<usize> = fields.iter().map(|f| f.matches('/').count()).collect();
    assert!(
        depths.windows(2).all(|w| w[0] >= w[1]),
        "not most specific first: {fields:?}"
    );
    let rendered = errors[0].to_string();
    assert!(
        rendered.starts_with("test.yaml: /parameters/cmd/"),
        "{rendered}"
    );
}

#[test]
fn yaml_syntax_errors_carry_the_line() {
    let cases = [
        (
            "name: ok\nparameters:\n  cmd: {type: string\nrunner_type: x\n",
            "line 4",
        ),
        ("name: ok\n  bad indentation: here\n", "line 2"),
        ("key: [unclosed\n", "line 2"),
    ];
    for (text, line) in cases {
        let e = parse_yaml(file(), text).expect_err("should not parse");
        assert_eq!(e.field, "");
        assert!(
            e.reason.starts_with("YAML syntax error at "),
            "{}",
            e.reason
        );
        assert!(e.reason.contains(line), "expected {line} in {:?}", e.reason);
    }
}

#[test]
fn yaml_merge_keys_are_applied() {
    let doc =
        yaml("base: &b {type: string}\nparameters:\n  cmd:\n    <<: *b\n    required: true\n");
    assert_eq!(
        doc["parameters"]["cmd"],
        json!({"type": "string", "required": true})
    );
}

#[test]
fn numeric_pack_version_is_cast_like_stackstorm() {
    // The caller's document is left alone.
    let doc = yaml("name: p\ndescription: d\nversion: 0.1\nauthor: a\n");
    let errors = validate(MetadataKind::Pack, file(), &doc).expect_err("0.1 is not semver");
    assert_error(&errors, "/version", &["\"0.1\" does not match"], "cast");
    assert!(doc["version"].is_number());
}

#[test]
fn ad_hoc_schemas_follow_stackstorm_dialect() {
    let schema = yaml(
        r#"
type: object
properties:
  id: {type: integer, required: true}
  name: {type: string}
  retries: {type: integer, required: true, default: 3}
  nested:
    type: object
    properties:
      flag: {type: boolean, default: false}
      level: {type: integer, required: true}
additionalProperties: false
"#,
    );
    // Defaults are assigned; a required field with a default is never missing.
    let cleaned =
        validate_instance_with_defaults(&schema, file(), &json!({"id": 1, "nested": {"level": 2}}))
            .expect("valid payload");
    assert_eq!(
        cleaned,
        json!({"id": 1, "nested": {"level": 2, "flag": false}, "retries": 3})
    );
    // Optional properties without a default accept null.
    assert!(validate_instance(&schema, file(), &json!({"id": 1, "name": null})).is_ok());

    let cases: &[(Value, &str, &[&str])] = &[
        (json!({}), "/id", &["missing required field \"id\""]),
        (
            json!({"id": "x"}),
            "/id",
            &["expected integer, got string \"x\""],
        ),
        (
            json!({"id": 1, "extra": true}),
            "/extra",
            &[
                "unknown field \"extra\"",
                "allowed: id, name, retries, nested",
            ],
        ),
        (
            json!({"id": 1, "nested": {}}),
            "/nested/level",
            &["missing required field \"level\""],
        ),
        (json!({"id": null}), "/id", &["expected integer, got null"]),
    ];
    for (doc, field, words) in cases {
        let errors = validate_instance(&schema, file(), doc).expect_err("invalid payload");
        assert_error(&errors, field, words, &doc.to_string());
    }

    // An empty schema accepts anything; a broken one is reported, not a panic.
    assert!(validate_instance(&json!({}), file(), &json!({"any": [1]})).is_ok());
    let errors =
        validate_instance(&json!({"type": 5}), file(), &json!({})).expect_err("bad schema");
    assert_error(&errors, "", &["invalid schema at /type"], "broken schema");
}

#[test]
fn policy_type_parameters_get_their_defaults() {
    // action.retry's parameters, as StackStorm defines them.
    let schema = yaml(
        r#"
type: object
properties:
  retry_on: {type: string, required: true, enum: [failure, timeout]}
  max_retry_count: {type: integer, required: true, default: 2}
  delay: {type: integer, required: false}
additionalProperties: false
"#,
    );
    let cleaned = validate_instance_with_defaults(&schema, file(), &json!({"retry_on": "timeout"}))
        .expect("valid parameters");
    assert_eq!(cleaned["max_retry_count"], json!(2));
    let errors =
        validate_instance(&schema, file(), &json!({"retry_on": "always"})).expect_err("bad enum");
    assert_error(
        &errors,
        "/retry_on",
        &["\"always\" is not one of \"failure\", \"timeout\""],
        "enum",
    );
}

#[test]
fn config_schema_becomes_standard_json_schema() {
    let converted = config_schema_to_json_schema(&map(CONFIG_SCHEMA));
    assert_eq!(
        converted["$schema"],
        json!("http://json-schema.org/draft-04/schema#")
    );
    assert_eq!(converted["type"], json!("object"));
    assert_eq!(converted["required"], json!(["api_key", "timeout"]));
    assert_eq!(
        converted["properties"]["regions"]["items"]["required"],
        json!(["name"])
    );
    assert!(converted["properties"]["api_key"].get("secret").is_none());
    assert!(converted["properties"]["api_key"].get("required").is_none());
    assert_eq!(converted["properties"]["api_key"]["type"], json!("string"));
    // Usable as is by a standard validator.
    let validator = jsonschema::validator_for(&converted).expect("compiles");
    assert!(validator.is_valid(&json!({"api_key": "k", "timeout": 1})));
    assert!(!validator.is_valid(&json!({"timeout": 1})));
}

#[test]
fn config_defaults_are_merged_recursively() {
    let values = map(r#"
api_key: "{{ st2kv.system.api_key }}"
regions:
  - name: eu
  - name: us
    zone: b
labels:
  x_one: {}
  other: {}
extra_key: kept
"#);
    let merged = validate_config(file(), &map(CONFIG_SCHEMA), &values).expect("valid config");
    assert_eq!(
        Value::Object(merged),
        json!({
            "api_key": "{{ st2kv.system.api_key }}",
            "regions": [{"name": "eu", "zone": "a"}, {"name": "us", "zone": "b"}],
            "labels": {"x_one": {"enabled": true}, "other": {"weight": 1}},
            "extra_key": "kept",
            "api_url": "https://api.example.com",
            "timeout": 30,
            "proxy": {"host": "proxy.local", "port": 3128, "auth": {"user": "anonymous"}},
        })
    );
}

#[test]
fn config_violations_are_reported() {
    let schema = map(CONFIG_SCHEMA);
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "timeout: 5\n",
            "/api_key",
            &["missing required field \"api_key\""],
        ),
        (
            "api_key: 5\n",
            "/api_key",
            &["expected string, got integer 5"],
        ),
        (
            "api_key: k\ntimeout: abc\n",
            "/timeout",
            &["expected integer, got string \"abc\""],
        ),
        (
            "api_key: k\nproxy: {port: \"x\"}\n",
            "/proxy/port",
            &["expected integer, got string \"x\""],
        ),
        (
            "api_key: k\nregions: [{zone: a}]\n",
            "/regions/0/name",
            &["missing required field \"name\""],
        ),
        (
            "api_key: k\nproxy: []\n",
            "/proxy",
            &["expected object", "got array"],
        ),
        (
            "api_key: \"{{ st2kv.system.key | decrypt_kv }}\"\n",
            "/api_key",
            &["decrypt_kv", "secret"],
        ),
    ];
    for (text, field, words) in cases {
        let errors = validate_config(file(), &schema, &map(text)).expect_err("invalid config");
        assert_error(&errors, field, words, text);
    }
    // Optional attributes may be null (StackStorm's allow_default_none); the top-level default
    // is used for the check, the value itself is returned as given.
    let merged =
        validate_config(file(), &schema, &map("api_key: k\napi_url: null\n")).expect("valid");
    assert_eq!(merged["api_url"], Value::Null);
    // An empty schema accepts any config.
    assert!(validate_config(file(), &JsonMap::new(), &map("a: 1\n")).is_ok());
}
