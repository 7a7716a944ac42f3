//! The `action-chain` runner (StackStorm's `action_chain_runner`): a linear workflow of
//! actions, each a child execution, the next chosen by `on-success` / `on-failure`.
//!
//! The chain file (the action's `entry_point`, under the pack's `actions/`) has `chain:` (nodes
//! `{name, ref, parameters, on-success, on-failure, publish, notify}`), `default` (the first
//! node; else the first node no other node names, else the first) and `vars`. As in StackStorm:
//!
//! - `vars` are rendered once with the chain's parameters and `st2kv`; a node's `parameters`
//!   with the chain's parameters, the results of the nodes run so far by node name (and all of
//!   them as `__results`), the vars and published values, `st2kv`, `action_context`
//!   (`{parent: {execution_id, ...}}`) and `config_context`; `publish` with the same plus the
//!   node's own result. Published values join the vars.
//! - Each node runs as a child execution (`parent` = the chain, `context.chain` = the node) and
//!   is waited for; its status picks the next node: `succeeded` → `on-success`, `failed`,
//!   `timeout` or `abandoned` → `on-failure`, `canceled` → the chain stops. The chain's status
//!   is the status of the last node it ran (`timeout` stays `timeout`), `succeeded` for an
//!   empty chain, `failed` when a node cannot be started (unknown action, parameters that do
//!   not render) or names a node that does not exist.
//! - The result is `{"tasks": [{id, name, execution_id, liveaction_id, workflow, created_at,
//!   updated_at, state, result}], "published": {...}}` (`published` only with the runner
//!   parameter `display_published`, default true), plus `error` when the chain stopped on an
//!   error.
//! - Canceling the chain cancels the running node and ends the chain `canceled`.
//!
//! The chain waits for its nodes inside the action runner (as StackStorm's does); it is not
//! resumed after a restart of its process (it becomes `abandoned`), and pausing a chain is
//! not supported.

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::context::SYSTEM_USER;
use super::executions::{self, ExecutionRequest};
use super::{now_iso, Ctx, ServiceError};
use crate::model::{Action, Execution, ExecutionStatus, JsonMap};
use crate::runners::RunOutcome;
use crate::store::repo;
use crate::template::RenderContext;

/// The runner type this module runs.
pub const RUNNER: &str = "action-chain";

/// How often the chain looks at the status of the node it waits for (at most).
const POLL_MAX: Duration = Duration::from_millis(200);

/// Whether `runner` is the action-chain runner (StackStorm also accepts `action_chain`).
pub fn handles(runner: &str) -> bool {
    runner == RUNNER || runner == "action_chain"
}

/// A chain file.
#[derive(Debug, Deserialize)]
struct ChainSpec {
    #[serde(default)]
    chain: Vec<Node>,
    #[serde(default)]
    default: Option<String>,
    #[serde(default)]
    vars: JsonMap,
}

/// One node of a chain.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Node {
    name: String,
    #[serde(rename = "ref")]
    action_ref: String,
    #[serde(default)]
    parameters: JsonMap,
    /// StackStorm's old name of `parameters`.
    #[serde(default, skip_serializing)]
    params: JsonMap,
    #[serde(
        rename = "on-success",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    on_success: Option<String>,
    #[serde(
        rename = "on-failure",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    on_failure: Option<String>,
    #[serde(default, skip_serializing_if = "JsonMap::is_empty")]
    publish: JsonMap,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    notify: Option<Value>,
}

impl ChainSpec {
    /// Reads and checks the chain file.
    fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            format!(
                "Failed to parse action chain definition from \"{}\": {e}",
                path.display()
            )
        })?;
        let spec: ChainSpec = serde_yaml::from_str(&text).map_err(|e| {
            format!(
                "Failed to parse action chain definition from \"{}\": {e}",
                path.display()
            )
        })?;
        spec.validate()?;
        Ok(spec)
    }

    /// Every `on-success`, `on-failure` and `default` names a node (names with a Jinja
    /// expression are left alone, as StackStorm does).
    fn validate(&self) -> Result<(), String> {
        let known = |name: &Option<String>| {
            name.as_deref()
                .is_none_or(|n| crate::template::is_jinja_expression(n) || self.node(n).is_some())
        };
        for node in &self.chain {
            if !known(&node.on_success) {
                return Err(format!(
                    "Unable to find node with name \"{}\" referenced in \"on-success\" in task \"{}\".",
                    node.on_success.as_deref().unwrap_or_default(),
                    node.name
                ));
            }
            if !known(&node.on_failure) {
                return Err(format!(
                    "Unable to find node with name \"{}\" referenced in \"on-failure\" in task \"{}\".",
                    node.on_failure.as_deref().unwrap_or_default(),
                    node.name
                ));
            }
        }
        if !known(&self.default) {
            return Err(format!(
                "Unable to find node with name \"{}\" referenced in \"default\".",
                self.default.as_deref().unwrap_or_default()
            ));
        }
        Ok(())
    }

    fn node(&self, name: &str) -> Option<&Node> {
        self.chain.iter().find(|n| n.name == name)
    }

    /// The first node: `default`, else the first node no `on-success`/`on-failure` names,
    /// else the first node.
    fn first(&self) -> Option<&Node> {
        if let Some(d) = &self.default {
            return self.node(d);
        }
        let named = |n: &Node| {
            self.chain.iter().any(|o| {
                o.on_success.as_deref() == Some(n.name.as_str())
                    || o.on_failure.as_deref() == Some(n.name.as_str())
            })
        };
        self.chain
            .iter()
            .find(|n| !named(n))
            .or_else(|| self.chain.first())
    }
}

/// Runs the chain of `action` for the execution `exec`, with its action parameters
/// (`params`) and runner parameters, until it ends or `cancel` fires.
pub async fn run(
    ctx: &Ctx,
    exec: &Execution,
    action: &Action,
    pack_dir: Option<&Path>,
    params: &JsonMap,
    runner_params: &JsonMap,
    cancel: &CancellationToken,
) -> RunOutcome {
    let Some(path) = pack_dir.map(|d| d.join("actions").join(&action.entry_point)) else {
        return failed(format!(
            "pack \"{}\" of action \"{}\" is not installed",
            action.pack, action.action_ref
        ));
    };
    let spec = match ChainSpec::load(&path) {
        Ok(s) => s,
        Err(e) => return failed(e),
    };
    let display_published = runner_params
        .get("display_published")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let user = exec
        .context
        .get("user")
        .and_then(Value::as_str)
        .unwrap_or(SYSTEM_USER)
        .to_string();
    Chain {
        ctx,
        exec,
        spec: &spec,
        params,
        user,
        display_published,
        cancel,
    }
    .run(action)
    .await
}

/// A failed outcome with `error`, before any node ran.
fn failed(error: String) -> RunOutcome {
    RunOutcome::new(
        ExecutionStatus::Failed,
        json!({"error": error, "tasks": []}),
    )
}

/// One run of a chain.
struct Chain<'a> {
    ctx: &'a Ctx,
    exec: &'a Execution,
    spec: &'a ChainSpec,
    params: &'a JsonMap,
    user: String,
    display_published: bool,
    cancel: &'a CancellationToken,
}

impl Chain<'_> {
    /// A render context with the datastore, then `layers` in order (later names win).
    fn render_context(&self, layers: &[&JsonMap]) -> RenderContext {
        let mut rc = RenderContext::new();
        for layer in layers {
            for (k, v) in layer.iter() {
                rc.set(k.clone(), v);
            }
        }
        if let Some(kv) = &self.ctx.kv {
            rc = rc.with_kv(kv.clone(), Some(self.user.clone()));
        }
        if let Some(d) = &self.ctx.decrypter {
            rc = rc.with_decrypter(d.clone());
        }
        rc
    }

    fn render(&self, mapping: &JsonMap, rc: &RenderContext) -> Result<JsonMap, String> {
        let mut out = JsonMap::new();
        for (k, v) in mapping {
            let rendered = self.ctx.engine.render_value(v, rc).map_err(|e| {
                format!("Failed rendering value for \"{k}\" (template string={v}): {e}")
            })?;
            out.insert(k.clone(), rendered);
        }
        Ok(out)
    }

    async fn run(self, action: &Action) -> RunOutcome {
        let mut tasks: Vec<Value> = Vec::new();
        let mut published = JsonMap::new();
        let mut results = JsonMap::new();
        let finish = |status: ExecutionStatus,
                      tasks: Vec<Value>,
                      published: JsonMap,
                      error: Option<String>| {
            let mut result = JsonMap::new();
            result.insert("tasks".into(), Value::Array(tasks));
            if self.display_published {
                result.insert("published".into(), Value::Object(published));
            }
            if let Some(e) = error {
                result.insert("error".into(), json!(e));
            }
            RunOutcome::new(status, Value::Object(result))
        };

        let mut vars = match self.render(&self.spec.vars, &self.render_context(&[self.params])) {
            Ok(v) => v,
            Err(e) => {
                return finish(
                    ExecutionStatus::Failed,
                    tasks,
                    published,
                    Some(format!("Failed initializing ``vars`` in chain. {e}")),
                )
            }
        };
        let config = executions::pack_config(self.ctx, &action.pack)
            .await
            .unwrap_or_default();
        let mut parent = JsonMap::new();
        parent.insert("execution_id".into(), json!(self.exec.id));
        for (k, v) in &self.exec.context {
            parent.insert(k.clone(), v.clone());
        }
        let mut status = ExecutionStatus::Succeeded;
        let mut node = self.spec.first().cloned();
        while let Some(n) = node.take() {
            let created_at = now_iso();
            // Parameters: chain parameters < results by node name < vars.
            let mut extra = JsonMap::new();
            extra.insert("__results".into(), Value::Object(results.clone()));
            extra.insert("action_context".into(), json!({"parent": parent}));
            extra.insert("config_context".into(), Value::Object(config.clone()));
            let rc = self.render_context(&[self.params, &results, &vars, &extra]);
            let given = if n.parameters.is_empty() {
                &n.params
            } else {
                &n.parameters
            };
            let parameters = match self.render(given, &rc) {
                Ok(p) => p,
                Err(e) => {
                    let error = format!(
                        "Failed to run task \"{}\". Parameter rendering failed. {e}",
                        n.name
                    );
                    return finish(ExecutionStatus::Failed, tasks, published, Some(error));
                }
            };
            let child = match self.start(&n, parameters, &parent).await {
                Ok(c) => c,
                Err(ServiceError::NotFound { .. }) => {
                    let error = format!(
                        "Failed to run task \"{}\". Action with reference \"{}\" doesn't exist.",
                        n.name, n.action_ref
                    );
                    return finish(ExecutionStatus::Failed, tasks, published, Some(error));
                }
                Err(e) => {
                    // Like a node that ran and failed: the chain goes on with on-failure.
                    let error =
                        json!({"error": format!("Failed running task \"{}\". {e}", n.name)});
                    results.insert(n.name.clone(), error.clone());
                    tasks.push(task_record(&n, None, &created_at, "failed", error));
                    status = ExecutionStatus::Failed;
                    match self.next(&n, n.on_failure.as_deref()) {
                        Ok(next) => node = next,
                        Err(e) => {
                            return finish(status, tasks, published, Some(e));
                        }
                    }
                    continue;
                }
            };
            let done = self.wait(&child).await;
            let child_result = done.result.clone().unwrap_or(Value::Null);
            results.insert(n.name.clone(), child_result.clone());
            let mut state = done.status.as_str().to_string();
            let mut task_result = child_result.clone();
            if !n.publish.is_empty() && done.status == ExecutionStatus::Succeeded {
                let mut own = JsonMap::new();
                own.insert(n.name.clone(), child_result.clone());
                let rc = self.render_context(&[self.params, &own, &results, &vars, &extra]);
                match self.render(&n.publish, &rc) {
                    Ok(p) => {
                        for (k, v) in p {
                            vars.insert(k.clone(), v.clone());
                            published.insert(k, v);
                        }
                    }
                    Err(e) => {
                        state = "failed".into();
                        task_result = json!({"error": format!(
                            "Failed running task \"{}\". Failed rendering value for publish parameter: {e}",
                            n.name
                        )});
                    }
                }
            }
            tasks.push(task_record(
                &n,
                Some(&done),
                &created_at,
                &state,
                task_result,
            ));
            let branch = match done.status {
                ExecutionStatus::Succeeded => {
                    status = ExecutionStatus::Succeeded;
                    n.on_success.as_deref()
                }
                ExecutionStatus::Canceled => {
                    status = ExecutionStatus::Canceled;
                    break;
                }
                ExecutionStatus::Timeout => {
                    status = ExecutionStatus::Timeout;
                    n.on_failure.as_deref()
                }
                _ => {
                    status = ExecutionStatus::Failed;
                    n.on_failure.as_deref()
                }
            };
            if self.cancel.is_cancelled() {
                status = ExecutionStatus::Canceled;
                break;
            }
            match self.next(&n, branch) {
                Ok(next) => node = next,
                Err(e) => {
                    return finish(ExecutionStatus::Failed, tasks, published, Some(e));
                }
            }
        }
        finish(status, tasks, published, None)
    }

    /// The node named by a branch of `from` (`None`: the chain ends there).
    fn next(&self, from: &Node, name: Option<&str>) -> Result<Option<Node>, String> {
        match name {
            None | Some("") => Ok(None),
            Some(n) => self.spec.node(n).cloned().map(Some).ok_or_else(|| {
                format!(
                    "Failed to get next node \"{}\". Unable to find node with name \"{n}\".",
                    from.name
                )
            }),
        }
    }

    /// Requests the node's action as a child execution of the chain.
    async fn start(
        &self,
        n: &Node,
        parameters: JsonMap,
        parent: &JsonMap,
    ) -> Result<Execution, ServiceError> {
        let mut context = JsonMap::new();
        context.insert("parent".into(), Value::Object(parent.clone()));
        context.insert(
            "chain".into(),
            serde_json::to_value(n).unwrap_or(Value::Null),
        );
        if let Some(tc) = self.exec.context.get("trace_context") {
            context.insert("trace_context".into(), tc.clone());
        }
        let child = executions::request(
            self.ctx,
            ExecutionRequest {
                action_ref: n.action_ref.clone(),
                parameters,
                user: Some(self.user.clone()),
                context,
                ..Default::default()
            },
        )
        .await?;
        if let Err(e) =
            super::workflows::add_children(self.ctx, &self.exec.id, vec![child.id.clone()]).await
        {
            tracing::warn!(execution = %self.exec.id, error = %e, "chain child not recorded");
        }
        Ok(child)
    }

    /// Waits until the child execution completes; canceling the chain cancels it.
    async fn wait(&self, child: &Execution) -> Execution {
        let mut delay = Duration::from_millis(10);
        let mut canceled = false;
        let mut last = child.clone();
        loop {
            match repo::<Execution>(&*self.ctx.store).get(&child.id).await {
                Ok(Some(e)) if e.status.is_completed() => return e,
                Ok(Some(e)) => last = e,
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(execution = %child.id, error = %e, "chain: cannot read its node")
                }
            }
            if self.cancel.is_cancelled() && !canceled {
                canceled = true;
                if let Err(e) = executions::cancel(self.ctx, &child.id).await {
                    tracing::warn!(execution = %child.id, error = %e, "chain: cannot cancel its node");
                    last.status = ExecutionStatus::Canceled;
                    return last;
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = self.cancel.cancelled(), if !canceled => {}
            }
            delay = (delay * 2).min(POLL_MAX);
        }
    }
}

/// A node's entry in the chain's `tasks`.
fn task_record(
    n: &Node,
    child: Option<&Execution>,
    created_at: &str,
    state: &str,
    result: Value,
) -> Value {
    json!({
        "id": n.name,
        "name": n.name,
        "execution_id": child.map(|c| c.id.clone()),
        "liveaction_id": child.map(|c| c.id.clone()),
        "workflow": null,
        "created_at": created_at,
        "updated_at": child.and_then(|c| c.end_timestamp.clone()).unwrap_or_else(now_iso),
        "state": state,
        "result": result,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> ChainSpec {
        serde_yaml::from_str(yaml).expect("yaml")
    }

    #[test]
    fn first_node() {
        let s = spec("chain:\n  - {name: a, ref: x.y, on-success: b}\n  - {name: b, ref: x.y}\n");
        assert_eq!(s.first().map(|n| n.name.as_str()), Some("a"));
        let s = spec("chain:\n  - {name: b, ref: x.y}\n  - {name: a, ref: x.y, on-success: b}\n");
        assert_eq!(
            s.first().map(|n| n.name.as_str()),
            Some("a"),
            "b is named by a"
        );
        let s = spec("default: b\nchain:\n  - {name: a, ref: x.y}\n  - {name: b, ref: x.y}\n");
        assert_eq!(s.first().map(|n| n.name.as_str()), Some("b"));
        assert!(spec("chain: []\n").first().is_none());
    }

    #[test]
    fn validation_names_the_missing_node() {
        let s = spec("chain:\n  - {name: a, ref: x.y, on-failure: nope}\n");
        let e = s.validate().expect_err("invalid");
        assert!(
            e.contains("\"nope\"") && e.contains("on-failure") && e.contains("\"a\""),
            "{e}"
        );
        let s = spec("default: z\nchain:\n  - {name: a, ref: x.y}\n");
        assert!(s.validate().expect_err("invalid").contains("default"));
        let s = spec("chain:\n  - {name: a, ref: x.y, on-success: \"{{ next }}\"}\n");
        assert!(s.validate().is_ok(), "Jinja names are checked at run time");
    }
}
