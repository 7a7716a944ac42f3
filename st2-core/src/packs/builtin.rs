//! Built-in runner types (the repository's `runners/*.yaml`, compiled in) and policy types.

use std::path::Path;

use serde_json::{json, Value};

use crate::model::{PolicyType, RunnerType};
use crate::schema::{self, ContentError, MetadataKind};

/// `(file name, text)` of every runner type definition shipped with the platform.
const RUNNER_FILES: &[(&str, &str)] = &[
    (
        "local-shell-cmd.yaml",
        include_str!("../../../runners/local-shell-cmd.yaml"),
    ),
    (
        "local-shell-script.yaml",
        include_str!("../../../runners/local-shell-script.yaml"),
    ),
    (
        "remote-shell-cmd.yaml",
        include_str!("../../../runners/remote-shell-cmd.yaml"),
    ),
    (
        "remote-shell-script.yaml",
        include_str!("../../../runners/remote-shell-script.yaml"),
    ),
    (
        "python-script.yaml",
        include_str!("../../../runners/python-script.yaml"),
    ),
    (
        "http-request.yaml",
        include_str!("../../../runners/http-request.yaml"),
    ),
    (
        "action-chain.yaml",
        include_str!("../../../runners/action-chain.yaml"),
    ),
    (
        "orquesta.yaml",
        include_str!("../../../runners/orquesta.yaml"),
    ),
    (
        "inquirer.yaml",
        include_str!("../../../runners/inquirer.yaml"),
    ),
    ("noop.yaml", include_str!("../../../runners/noop.yaml")),
    (
        "announcement.yaml",
        include_str!("../../../runners/announcement.yaml"),
    ),
    (
        "winrm-cmd.yaml",
        include_str!("../../../runners/winrm-cmd.yaml"),
    ),
    (
        "winrm-ps-cmd.yaml",
        include_str!("../../../runners/winrm-ps-cmd.yaml"),
    ),
    (
        "winrm-ps-script.yaml",
        include_str!("../../../runners/winrm-ps-script.yaml"),
    ),
    ("wasm.yaml", include_str!("../../../runners/wasm.yaml")),
];

/// Every built-in runner type, validated against `schemas/runner_type.json`.
pub fn runner_types() -> Result<Vec<RunnerType>, ContentError> {
    RUNNER_FILES
        .iter()
        .map(|(name, text)| {
            let file = Path::new("runners").join(name);
            let doc = schema::parse_yaml(&file, text)?;
            schema::validate(MetadataKind::RunnerType, &file, &doc).map_err(|mut e| e.remove(0))?;
            let mut r: RunnerType = serde_json::from_value(doc)
                .map_err(|e| ContentError::new(&file, "", e.to_string()))?;
            r.uid = format!("runner_type:{}", r.name);
            Ok(r)
        })
        .collect()
}

fn policy_type(
    resource: &str,
    name: &str,
    description: &str,
    module: &str,
    params: Value,
) -> PolicyType {
    PolicyType {
        id: String::new(),
        name: name.into(),
        resource_type: resource.into(),
        policy_type_ref: format!("{resource}.{name}"),
        uid: format!("policy_type:{resource}:{name}"),
        description: Some(description.into()),
        enabled: true,
        module: module.into(),
        parameters: match params {
            Value::Object(m) => m,
            _ => Default::default(),
        },
        extra: None,
    }
}

/// The policy types StackStorm ships, plus our rate limit.
pub fn policy_types() -> Vec<PolicyType> {
    vec![
        policy_type(
            "action",
            "concurrency",
            "Limits the concurrent executions for the action.",
            "st2actions.policies.concurrency",
            json!({
                "threshold": {"type": "integer", "required": true, "minimum": 0,
                              "description": "Maximum number of concurrent executions."},
                "action": {"type": "string", "enum": ["delay", "cancel"], "default": "delay",
                           "description": "What to do with executions over the threshold."}
            }),
        ),
        policy_type(
            "action",
            "concurrency.attr",
            "Limits the concurrent executions for the action with the same attribute values.",
            "st2actions.policies.concurrency_by_attr",
            json!({
                "threshold": {"type": "integer", "required": true, "minimum": 0,
                              "description": "Maximum number of concurrent executions."},
                "action": {"type": "string", "enum": ["delay", "cancel"], "default": "delay",
                           "description": "What to do with executions over the threshold."},
                "attributes": {"type": "array", "required": true, "items": {"type": "string"},
                               "description": "Parameter names whose values group executions."}
            }),
        ),
        policy_type(
            "action",
            "retry",
            "Retries an execution on failure, timeout or abandonment.",
            "st2actions.policies.retry",
            json!({
                "retry_on": {"type": "string", "required": true,
                             "enum": ["failure", "timeout", "abandoned"],
                             "description": "Which outcome triggers a retry (`abandoned`, beyond StackStorm: the action runner died)."},
                "max_retry_count": {"type": "integer", "default": 2, "minimum": 0,
                                    "description": "Maximum number of retries."},
                "delay": {"type": "number", "default": 0, "minimum": 0,
                          "description": "Seconds to wait before retrying."}
            }),
        ),
        policy_type(
            "action",
            "ratelimit",
            "Limits how many executions of the action start per time window.",
            "st2.policies.ratelimit",
            json!({
                "limit": {"type": "integer", "required": true, "minimum": 1,
                          "description": "Executions allowed per window."},
                "interval": {"type": "number", "default": 60, "minimum": 0,
                             "description": "Window length in seconds."},
                "action": {"type": "string", "enum": ["delay", "cancel"], "default": "delay",
                           "description": "What to do with executions over the limit."}
            }),
        ),
    ]
}
