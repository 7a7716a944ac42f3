//! StackStorm's exchange, queue and routing-key names, so operators recognise our topology
//! (StackStorm's `st2common/transport/queues.py`).
//!
//! Owns names only: which service publishes or consumes what is decided in each subsystem's
//! `service.rs`. [`ST2_QUEUES`] lists each well-known queue with the exchange and routing key it
//! is bound to; [`super::SubscribeSpec::st2`] turns one into a subscription.

/// Trigger instances to dispatch to the rules engine (routing key [`RK_TRIGGER_INSTANCE`]).
pub const TRIGGER_INSTANCES_DISPATCH: &str = "st2.trigger_instances_dispatch";
/// LiveAction create/update/delete events (routing keys [`RK_CREATE`], ...).
pub const LIVEACTION: &str = "st2.liveaction";
/// LiveAction status changes; the routing key is the new status (`requested`, `scheduled`, ...).
pub const LIVEACTION_STATUS: &str = "st2.liveaction.status";
/// Execution create/update/delete events.
pub const EXECUTION: &str = "st2.execution";
/// Execution output chunks (routing key [`RK_CREATE`]).
pub const EXECUTION_OUTPUT: &str = "st2.execution.output";
/// Workflow execution events.
pub const WORKFLOW: &str = "st2.workflow";
/// Workflow execution status changes; the routing key is the new status.
pub const WORKFLOW_STATUS: &str = "st2.workflow.status";
/// Trigger create/update/delete events (webhook and timer registries, sensors).
pub const TRIGGER: &str = "st2.trigger";
/// Sensor create/update/delete events (sensor container).
pub const SENSOR: &str = "st2.sensor";
/// Announcements to stream clients; the routing key is the announcement's route.
pub const ANNOUNCEMENT: &str = "st2.announcement";
/// Action alias create/update/delete events.
pub const ACTIONALIAS: &str = "st2.actionalias";

/// Where messages go after too many deliveries or a `nack` without requeue. Not StackStorm's:
/// ours. A queue `q` dead-letters with routing key `q` into this exchange, where the queue
/// [`dead_letter_queue`]`(q)` is bound.
pub const DEAD_LETTER_EXCHANGE: &str = "st2.dead_letter";

/// Every StackStorm exchange (not [`DEAD_LETTER_EXCHANGE`]), for declaring them all at start.
pub const EXCHANGES: &[&str] = &[
    TRIGGER_INSTANCES_DISPATCH,
    LIVEACTION,
    LIVEACTION_STATUS,
    EXECUTION,
    EXECUTION_OUTPUT,
    WORKFLOW,
    WORKFLOW_STATUS,
    TRIGGER,
    SENSOR,
    ANNOUNCEMENT,
    ACTIONALIAS,
];

/// Routing key of model "created" events.
pub const RK_CREATE: &str = "create";
/// Routing key of model "updated" events.
pub const RK_UPDATE: &str = "update";
/// Routing key of model "deleted" events.
pub const RK_DELETE: &str = "delete";
/// Routing key of trigger instances on [`TRIGGER_INSTANCES_DISPATCH`].
pub const RK_TRIGGER_INSTANCE: &str = "trigger_instance";

/// The rules engine's queue: every trigger instance.
pub const RULES_ENGINE_WORK: &str = "st2.trigger_instances_dispatch.rules_engine";
/// The scheduler's queue: executions in `requested`.
pub const ACTIONRUNNER_REQ: &str = "st2.actionrunner.req";
/// The action runners' queue: executions in `scheduled`.
pub const ACTIONRUNNER_WORK: &str = "st2.actionrunner.work";
/// The action runners' cancel queue: executions in `canceling`.
pub const ACTIONRUNNER_CANCEL: &str = "st2.actionrunner.cancel";
/// The action runners' pause queue: executions in `pausing`.
pub const ACTIONRUNNER_PAUSE: &str = "st2.actionrunner.pause";
/// The action runners' resume queue: executions in `resuming`.
pub const ACTIONRUNNER_RESUME: &str = "st2.actionrunner.resume";
/// The notifier's queue: execution updates.
pub const NOTIFIER_WORK: &str = "st2.notifiers.execution.work";
/// The workflow engine's queue: workflows in `requested`.
pub const WORKFLOW_WORK: &str = "st2.workflow.work";
/// The workflow engine's resume queue: workflows in `resuming`.
pub const WORKFLOW_RESUME: &str = "st2.workflow.resume";
/// The workflow engine's queue of child execution updates.
pub const WORKFLOW_ACTION_UPDATE: &str = "st2.workflow.action.update";
/// The status routing keys (on [`LIVEACTION_STATUS`]) [`WORKFLOW_ACTION_UPDATE`] is bound to:
/// the completed statuses, `pending` (an inquiry waits) and `paused` (a nested workflow).
pub const WORKFLOW_ACTION_UPDATE_KEYS: [&str; 7] = [
    "succeeded",
    "failed",
    "timeout",
    "canceled",
    "abandoned",
    "pending",
    "paused",
];

/// One of StackStorm's well-known work queues and what it is bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueName {
    /// The queue's name.
    pub queue: &'static str,
    /// The exchange it is bound to.
    pub exchange: &'static str,
    /// Its binding key (a topic pattern).
    pub binding: &'static str,
}

/// StackStorm's work queues (competing consumers), as in the reference's topology table.
pub const ST2_QUEUES: &[QueueName] = &[
    QueueName {
        queue: RULES_ENGINE_WORK,
        exchange: TRIGGER_INSTANCES_DISPATCH,
        binding: "#",
    },
    QueueName {
        queue: ACTIONRUNNER_REQ,
        exchange: LIVEACTION_STATUS,
        binding: "requested",
    },
    QueueName {
        queue: ACTIONRUNNER_WORK,
        exchange: LIVEACTION_STATUS,
        binding: "scheduled",
    },
    QueueName {
        queue: ACTIONRUNNER_CANCEL,
        exchange: LIVEACTION_STATUS,
        binding: "canceling",
    },
    QueueName {
        queue: ACTIONRUNNER_PAUSE,
        exchange: LIVEACTION_STATUS,
        binding: "pausing",
    },
    QueueName {
        queue: ACTIONRUNNER_RESUME,
        exchange: LIVEACTION_STATUS,
        binding: "resuming",
    },
    QueueName {
        queue: NOTIFIER_WORK,
        exchange: EXECUTION,
        binding: RK_UPDATE,
    },
    QueueName {
        queue: WORKFLOW_WORK,
        exchange: WORKFLOW_STATUS,
        binding: "requested",
    },
    QueueName {
        queue: WORKFLOW_RESUME,
        exchange: WORKFLOW_STATUS,
        binding: "resuming",
    },
    // Bound to every key of `WORKFLOW_ACTION_UPDATE_KEYS` by the workflow engine; the first is
    // listed here.
    QueueName {
        queue: WORKFLOW_ACTION_UPDATE,
        exchange: LIVEACTION_STATUS,
        binding: WORKFLOW_ACTION_UPDATE_KEYS[0],
    },
];

/// The dead-letter queue of `queue`: `<queue>.dead`.
pub fn dead_letter_queue(queue: &str) -> String {
    format!("{queue}.dead")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_well_known_queue_is_bound_to_a_st2_exchange() {
        for q in ST2_QUEUES {
            assert!(
                EXCHANGES.contains(&q.exchange),
                "{} -> {}",
                q.queue,
                q.exchange
            );
            assert!(q.queue.starts_with("st2."), "{}", q.queue);
        }
    }

    #[test]
    fn dead_letter_names() {
        assert_eq!(
            dead_letter_queue(ACTIONRUNNER_WORK),
            "st2.actionrunner.work.dead"
        );
    }
}
