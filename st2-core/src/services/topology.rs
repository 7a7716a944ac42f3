//! The work queues of the pipeline's roles, in one place. Every process declares them at start
//! ([`declare_work_queues`]), whatever roles it runs, so that a message published before the
//! first consumer of its queue ever started (an action runner started after the scheduler, a
//! rules engine started after the API) waits in its queue instead of being dropped as
//! unroutable. Each spec here must be the one its service subscribes with (a queue's properties
//! are fixed by its first declaration; bindings add up).
//!
//! This module declares; it must not consume.

use crate::bus::{names, Bus, SubscribeSpec};

use super::{notifier, ServiceError};

/// The rules engine's queue: every trigger instance.
pub fn rules_engine() -> SubscribeSpec {
    SubscribeSpec::work(
        names::RULES_ENGINE_WORK,
        names::TRIGGER_INSTANCES_DISPATCH,
        ["#"],
    )
}

/// The scheduler's queue: executions in `requested`.
pub fn scheduler() -> SubscribeSpec {
    SubscribeSpec::work(
        names::ACTIONRUNNER_REQ,
        names::LIVEACTION_STATUS,
        ["requested"],
    )
}

/// The action runners' queue: executions in `scheduled`.
pub fn action_runner() -> SubscribeSpec {
    SubscribeSpec::work(
        names::ACTIONRUNNER_WORK,
        names::LIVEACTION_STATUS,
        ["scheduled"],
    )
}

/// The notifier's queue: completed executions.
pub fn notifier() -> SubscribeSpec {
    SubscribeSpec::work(
        names::NOTIFIER_WORK,
        names::LIVEACTION_STATUS,
        notifier::COMPLETED_STATUSES,
    )
}

/// The work queues of the event pipeline's roles, which every distributed deployment runs
/// (rules engine, scheduler, action runner, notifier). The workflow engine's queues are left to
/// it: a deployment without workflows never runs one, and a declared queue nobody consumes
/// would fill up and, at its bound, block every publisher routing to it.
pub fn work_queues() -> Vec<SubscribeSpec> {
    vec![rules_engine(), scheduler(), action_runner(), notifier()]
}

/// Declares every work queue (idempotent).
pub async fn declare_work_queues(bus: &dyn Bus) -> Result<(), ServiceError> {
    for spec in work_queues() {
        bus.declare_queue(spec).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A process running no role declares the queues; messages published then wait for the
    /// consumer that subscribes later.
    #[tokio::test]
    async fn a_message_published_before_its_consumer_started_waits() {
        let bus = crate::bus::MemoryBus::new();
        bus.declare_st2_exchanges().await.expect("exchanges");
        declare_work_queues(&bus).await.expect("declare");
        bus.publish_json(
            names::LIVEACTION_STATUS,
            "scheduled",
            &serde_json::json!({"id": "e1"}),
        )
        .await
        .expect("publish");
        let mut sub = bus.subscribe(action_runner()).await.expect("subscribe");
        let d = tokio::time::timeout(std::time::Duration::from_secs(5), sub.next())
            .await
            .expect("in time")
            .expect("open")
            .expect("delivery");
        assert_eq!(
            d.message().value().expect("json"),
            serde_json::json!({"id": "e1"})
        );
    }
}
