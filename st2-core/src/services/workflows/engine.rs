//! The workflow engine role: consumes child completions and control requests from the bus.

use std::sync::Arc;

use serde_json::Value;

use super::children::{child_completed, child_suspended};
use super::control::control;
use super::{CONCURRENCY, CONTROL_QUEUE, CONTROL_STATUSES};
use crate::bus::{names, Delivery, SubscribeSpec, Subscription};
use crate::model::Execution;
use crate::services::{Ctx, ServiceError};
use crate::store::repo;

/// The workflow engine role: consumes child completions and control requests.
pub struct WorkflowEngine {
    ctx: Ctx,
}

impl WorkflowEngine {
    /// An engine over the shared context.
    pub fn new(ctx: Ctx) -> Arc<Self> {
        Arc::new(Self { ctx })
    }

    /// Subscribes to both queues, then consumes them in a task until the bus closes.
    pub async fn start(self: Arc<Self>) -> Result<tokio::task::JoinHandle<()>, ServiceError> {
        let updates = self
            .ctx
            .bus
            .subscribe(
                SubscribeSpec::work(
                    names::WORKFLOW_ACTION_UPDATE,
                    names::LIVEACTION_STATUS,
                    names::WORKFLOW_ACTION_UPDATE_KEYS,
                )
                .with_prefetch(CONCURRENCY as u16),
            )
            .await?;
        let control = self
            .ctx
            .bus
            .subscribe(
                SubscribeSpec::work(CONTROL_QUEUE, names::LIVEACTION_STATUS, CONTROL_STATUSES)
                    .with_prefetch(CONCURRENCY as u16),
            )
            .await?;
        Ok(tokio::spawn(self.consume(updates, control)))
    }

    async fn consume(self: Arc<Self>, mut updates: Subscription, mut control: Subscription) {
        let slots = Arc::new(tokio::sync::Semaphore::new(CONCURRENCY));
        loop {
            // At shutdown the engine stops taking events: what is left is redelivered (durable
            // queues) or found again by `recover` at the next start.
            let (d, is_control) = tokio::select! {
                _ = self.ctx.shutdown.cancelled() => break,
                d = updates.next() => (d, false),
                d = control.next() => (d, true),
            };
            let Some(d) = d else { break };
            let Ok(d) = d else { continue };
            let Ok(permit) = Arc::clone(&slots).acquire_owned().await else {
                break;
            };
            let me = Arc::clone(&self);
            tokio::spawn(async move {
                me.handle(d, is_control).await;
                drop(permit);
            });
        }
        let _ = slots.acquire_many(CONCURRENCY as u32).await;
    }

    async fn handle(&self, d: Delivery, is_control: bool) {
        // Updates carry the child's document; control requests are read afresh.
        let exec = if is_control {
            let id = d
                .message()
                .value()
                .ok()
                .and_then(|v| v.get("id").and_then(Value::as_str).map(String::from));
            match id {
                Some(id) => repo::<Execution>(&*self.ctx.store)
                    .get(&id)
                    .await
                    .map_err(ServiceError::from),
                None => Ok(None),
            }
        } else if concerns_no_workflow(d.message()) {
            Ok(None)
        } else {
            crate::services::executions::from_status_message(&self.ctx, d.message()).await
        };
        let res = match exec {
            Ok(Some(e)) if is_control => control(&self.ctx, &e).await,
            Ok(Some(e)) if e.status.is_completed() => child_completed(&self.ctx, &e).await,
            Ok(Some(e)) if e.parent.is_some() => child_suspended(&self.ctx, &e).await,
            Ok(_) => Ok(()),
            Err(e) => Err(e),
        };
        match res {
            Ok(()) => {
                let _ = d.ack().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "workflow event failed; requeued");
                let _ = d.nack(true).await;
            }
        }
    }
}

/// True when an update carries an execution's document and that execution has no parent: no
/// workflow waits for it, so the engine acks it without decoding the whole document (most
/// executions are not a workflow's children). A bare `{"id"}` is looked up as before.
fn concerns_no_workflow(msg: &crate::bus::Message) -> bool {
    /// The two fields looked at; the rest of the document is skipped unparsed.
    #[derive(serde::Deserialize)]
    struct Head {
        #[serde(default)]
        status: Option<serde::de::IgnoredAny>,
        #[serde(default)]
        parent: Option<String>,
    }
    matches!(
        msg.decode::<Head>(),
        Ok(Head {
            status: Some(_),
            parent: None
        })
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::Message;

    #[test]
    fn only_documents_without_a_parent_are_skipped() {
        let msg = |v: Value| Message::json(&v);
        let top = serde_json::json!({"id": "e1", "status": "succeeded", "result": {"x": [1]}});
        assert!(concerns_no_workflow(&msg(top)));
        let null_parent = serde_json::json!({"id": "e1", "status": "running", "parent": null});
        assert!(concerns_no_workflow(&msg(null_parent)));
        let child = serde_json::json!({"id": "e2", "status": "succeeded", "parent": "e1"});
        assert!(!concerns_no_workflow(&msg(child)));
        let bare = serde_json::json!({"id": "e3"});
        assert!(!concerns_no_workflow(&msg(bare)), "a bare id is looked up");
        assert!(!concerns_no_workflow(&Message::new(
            &b"not json"[..],
            "application/json"
        )));
    }
}
