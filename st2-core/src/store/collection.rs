//! The collections a store holds.

/// One collection per resource kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Collection {
    /// Packs.
    Packs,
    /// Actions.
    Actions,
    /// Rules.
    Rules,
    /// Trigger types.
    TriggerTypes,
    /// Triggers.
    Triggers,
    /// Trigger instances.
    TriggerInstances,
    /// Rule enforcements.
    RuleEnforcements,
    /// Executions.
    Executions,
    /// Live output chunks of executions (stdout/stderr), in arrival order.
    ExecutionOutput,
    /// Sensors.
    Sensors,
    /// Policies.
    Policies,
    /// Policy types.
    PolicyTypes,
    /// Action aliases.
    Aliases,
    /// Datastore key-value pairs.
    KeyValuePairs,
    /// Pack configs.
    Configs,
    /// Pack config schemas.
    ConfigSchemas,
    /// Runner types.
    RunnerTypes,
    /// Traces.
    Traces,
    /// Auth tokens.
    Tokens,
    /// API keys.
    ApiKeys,
    /// Users.
    Users,
    /// Orquesta workflow executions: the workflow-level state of one workflow run.
    WorkflowExecutions,
    /// Orquesta task executions: one record per task instance of a workflow run.
    TaskExecutions,
    /// Leases: a named lease held by one process at a time (singleton roles, sensors).
    Leases,
    /// Trigger preprocessing state (duplicate keys, throttle windows, last values), expiring.
    PreprocessState,
    /// Concurrency policy slots: one document per slot of a policy (and attribute group),
    /// naming the execution holding it.
    ConcurrencySlots,
    /// Timer fire records: one per fired tick (trigger + scheduled time), created once.
    TimerFires,
}

impl Collection {
    /// Every collection.
    pub const ALL: [Collection; 27] = [
        Self::Packs,
        Self::Actions,
        Self::Rules,
        Self::TriggerTypes,
        Self::Triggers,
        Self::TriggerInstances,
        Self::RuleEnforcements,
        Self::Executions,
        Self::ExecutionOutput,
        Self::Sensors,
        Self::Policies,
        Self::PolicyTypes,
        Self::Aliases,
        Self::KeyValuePairs,
        Self::Configs,
        Self::ConfigSchemas,
        Self::RunnerTypes,
        Self::Traces,
        Self::Tokens,
        Self::ApiKeys,
        Self::Users,
        Self::WorkflowExecutions,
        Self::TaskExecutions,
        Self::Leases,
        Self::PreprocessState,
        Self::ConcurrencySlots,
        Self::TimerFires,
    ];

    /// Table / collection name in the backend.
    pub fn name(self) -> &'static str {
        match self {
            Self::Packs => "packs",
            Self::Actions => "actions",
            Self::Rules => "rules",
            Self::TriggerTypes => "trigger_types",
            Self::Triggers => "triggers",
            Self::TriggerInstances => "trigger_instances",
            Self::RuleEnforcements => "rule_enforcements",
            Self::Executions => "executions",
            Self::ExecutionOutput => "execution_output",
            Self::Sensors => "sensors",
            Self::Policies => "policies",
            Self::PolicyTypes => "policy_types",
            Self::Aliases => "aliases",
            Self::KeyValuePairs => "key_value_pairs",
            Self::Configs => "configs",
            Self::ConfigSchemas => "config_schemas",
            Self::RunnerTypes => "runner_types",
            Self::Traces => "traces",
            Self::Tokens => "tokens",
            Self::ApiKeys => "api_keys",
            Self::Users => "users",
            Self::WorkflowExecutions => "workflow_executions",
            Self::TaskExecutions => "task_executions",
            Self::Leases => "leases",
            Self::PreprocessState => "trigger_preprocess_state",
            Self::ConcurrencySlots => "concurrency_slots",
            Self::TimerFires => "timer_fires",
        }
    }

    /// Top-level fields worth an index in this collection (backends may index them).
    pub fn indexed_fields(self) -> &'static [&'static str] {
        match self {
            Self::Packs => &["ref"],
            Self::Actions | Self::Rules | Self::TriggerTypes | Self::Sensors | Self::Policies => {
                &["ref", "pack"]
            }
            Self::Aliases => &["ref", "pack"],
            Self::Triggers => &["ref", "type"],
            Self::TriggerInstances => &["trigger", "status"],
            Self::RuleEnforcements => &["trigger_instance_id", "execution_id"],
            Self::Executions => &["status", "parent", "action.ref"],
            Self::ExecutionOutput => &["execution_id"],
            Self::KeyValuePairs => &["name", "scope"],
            Self::Configs | Self::ConfigSchemas => &["pack"],
            Self::RunnerTypes => &["name"],
            Self::Traces => &["trace_tag"],
            Self::Tokens => &["token"],
            Self::ApiKeys => &["key_hash"],
            Self::Users => &["name"],
            Self::PolicyTypes => &["ref"],
            Self::WorkflowExecutions => &["action_execution", "closed"],
            Self::TaskExecutions => &["workflow_execution"],
            Self::Leases => &[],
            Self::PreprocessState => &["expire_timestamp"],
            Self::ConcurrencySlots => &["execution"],
            Self::TimerFires => &["trigger"],
        }
    }
}
