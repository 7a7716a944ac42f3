//! The content and runtime model: plain serde types with StackStorm's field names and defaults.
//!
//! Owns the shapes of every stored document (packs, actions, rules, executions, ...). It must not
//! do I/O: loading from disk lives in `packs`, persistence in `store`.

mod action;
mod alias;
mod auth;
mod config;
mod execution;
mod id;
mod kv;
mod pack;
mod param;
mod policy;
mod reference;
mod rule;
mod runner;
mod sensor;
mod trace;
mod trigger;

pub use action::{Action, Notify, NotifySubSchema};
pub use alias::ActionAlias;
pub use auth::{ApiKey, Token, User};
pub use config::{Config, ConfigSchema};
pub use execution::{Execution, ExecutionOutput, ExecutionStatus, LiveActionRef};
pub use id::{derived_id, new_id};
pub use kv::KeyValuePair;
pub use pack::{Pack, SYSTEM_PACKS};
pub use param::{ParamMap, ParamSpec, ParamType, RUNNER_PARAM_OVERRIDABLE_ATTRS};
pub use policy::{Policy, PolicyType};
pub use reference::{ResourceRef, DEFAULT_PACK};
pub use rule::{Rule, RuleAction, RuleEnforcement, RuleTrigger, RuleType};
pub use runner::RunnerType;
pub use sensor::Sensor;
pub use trace::{Trace, TraceComponent};
pub use trigger::{Trigger, TriggerInstance, TriggerType};

use crate::store::Collection;

/// A stored document: every model type kept in the store implements this.
pub trait Document: serde::Serialize + serde::de::DeserializeOwned + Send + Sync + Clone {
    /// The collection the document lives in.
    const COLLECTION: Collection;
    /// The document's id (ObjectId-like hex string), empty before first save.
    fn id(&self) -> &str;
    /// Sets the document's id.
    fn set_id(&mut self, id: String);
    /// The `pack.name` reference, for resources that have one.
    fn reference(&self) -> Option<String> {
        None
    }
}

/// Implements [`Document`] for a type with `id: String` and optionally `pack`/`name` fields.
macro_rules! document {
    ($ty:ty, $coll:expr) => {
        impl $crate::model::Document for $ty {
            const COLLECTION: $crate::store::Collection = $coll;
            fn id(&self) -> &str {
                &self.id
            }
            fn set_id(&mut self, id: String) {
                self.id = id;
            }
        }
    };
    ($ty:ty, $coll:expr, ref) => {
        impl $crate::model::Document for $ty {
            const COLLECTION: $crate::store::Collection = $coll;
            fn id(&self) -> &str {
                &self.id
            }
            fn set_id(&mut self, id: String) {
                self.id = id;
            }
            fn reference(&self) -> Option<String> {
                Some(format!("{}.{}", self.pack, self.name))
            }
        }
    };
}
pub(crate) use document;

/// Serde default helper: `true`.
pub(crate) fn default_true() -> bool {
    true
}

/// Serde default helper: the `default` pack.
pub(crate) fn default_pack() -> String {
    DEFAULT_PACK.to_string()
}

/// Serde helper: skip serialising `false` booleans.
pub(crate) fn is_false(b: &bool) -> bool {
    !*b
}

/// A JSON object, order preserved.
pub type JsonMap = serde_json::Map<String, serde_json::Value>;
