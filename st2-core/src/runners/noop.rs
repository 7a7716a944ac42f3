//! Runners that start nothing: `noop`, `announcement` and `inquirer`.
//!
//! - `noop` always succeeds with `{failed: false, succeeded: true, return_code: 0}`.
//! - `announcement` checks the `experimental` flag and returns StackStorm's result: the action
//!   parameters under `output` and merged at the top level. Publishing them on
//!   `st2.announcement` with the `route` runner parameter is the service's job.
//! - `inquirer` returns status `pending` and `{schema, roles, users, route, ttl}`. Dispatching
//!   `core.st2.generic.inquiry` and pausing a parent workflow is the service's job.

use async_trait::async_trait;
use serde_json::{json, Value};

use super::{RunContext, RunOutcome, Runner};
use crate::model::ExecutionStatus;

/// `noop`.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoopRunner;

#[async_trait]
impl Runner for NoopRunner {
    fn name(&self) -> &str {
        "noop"
    }

    async fn run(&self, _ctx: RunContext) -> RunOutcome {
        RunOutcome::new(
            ExecutionStatus::Succeeded,
            json!({"failed": false, "succeeded": true, "return_code": 0}),
        )
    }
}

/// `announcement`.
#[derive(Debug, Clone, Copy, Default)]
pub struct AnnouncementRunner;

#[async_trait]
impl Runner for AnnouncementRunner {
    fn name(&self) -> &str {
        "announcement"
    }

    async fn run(&self, ctx: RunContext) -> RunOutcome {
        if !super::params::bool_param(&ctx.runner_params, "experimental", false) {
            return RunOutcome::failed(format!(
                "Experimental flag is missing for action {}",
                ctx.action_ref()
            ));
        }
        let mut result = serde_json::Map::new();
        result.insert("output".into(), Value::Object(ctx.action_params.clone()));
        for (k, v) in &ctx.action_params {
            result.insert(k.clone(), v.clone());
        }
        RunOutcome::new(ExecutionStatus::Succeeded, Value::Object(result))
    }
}

/// `inquirer`.
#[derive(Debug, Clone, Copy, Default)]
pub struct InquirerRunner;

/// The runner type's default `schema`: one required boolean, `continue`.
fn default_schema() -> Value {
    json!({
        "title": "response_data",
        "type": "object",
        "properties": {
            "continue": {
                "type": "boolean",
                "description": "Would you like to continue the workflow?",
                "required": true
            }
        }
    })
}

#[async_trait]
impl Runner for InquirerRunner {
    fn name(&self) -> &str {
        "inquirer"
    }

    async fn run(&self, ctx: RunContext) -> RunOutcome {
        let rp = &ctx.runner_params;
        let get = |k: &str| rp.get(k).filter(|v| !v.is_null()).cloned();
        RunOutcome::new(
            ExecutionStatus::Pending,
            json!({
                "schema": get("schema").unwrap_or_else(default_schema),
                "roles": get("roles").unwrap_or_else(|| json!([])),
                "users": get("users").unwrap_or_else(|| json!([])),
                "route": get("route").unwrap_or_else(|| json!("")),
                "ttl": get("ttl").unwrap_or_else(|| json!(1440)),
            }),
        )
    }
}
