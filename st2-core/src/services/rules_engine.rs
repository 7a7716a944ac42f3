//! The rules engine service: consumes `st2.trigger_instances_dispatch.rules_engine`, matches each
//! trigger instance against the rules of its trigger (an indexed, pre-compiled [`RuleSet`]),
//! renders the matched rules' action parameters and requests executions, recording a rule
//! enforcement for every match (failed ones with the reason).
//!
//! Delivery is at least once (a redelivery after a crash, a duplicate publish after a lost
//! confirm), so processing is idempotent: the execution and the enforcement of a (trigger
//! instance, rule) pair have ids derived from both ([`crate::model::derived_id`]) and are
//! inserted only if absent.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::RwLock;

use super::executions::{self, ExecutionRequest};
use super::{dispatch, now_iso, Ctx, ServiceError};
use crate::bus::Subscription;
use crate::model::{
    derived_id, JsonMap, Rule, RuleEnforcement, Trace, TraceComponent, Trigger, TriggerInstance,
    TriggerType,
};
use crate::rules::{MatchContext, RuleSet};
use crate::store::{repo, Collection, Query, StoreError};
use crate::template::RenderContext;

/// The collection whose instances the rules engine claims and settles.
const TI: Collection = Collection::TriggerInstances;

/// How often the rule set is reloaded from the store (rules registered by another process, e.g.
/// `st2ctl reload`, become live within this time; changes in this process invalidate the catalog,
/// and the next trigger instance reloads the rules first).
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(2);

/// The rules engine.
pub struct RulesEngine {
    ctx: Ctx,
    rules: RwLock<Arc<RuleSet>>,
    /// The catalog generation the rule set was loaded at.
    loaded: std::sync::atomic::AtomicU64,
    /// Held while reloading, so an instance that found the rules stale waits for the new set.
    reloading: tokio::sync::Mutex<()>,
}

impl RulesEngine {
    /// A rules engine with the enabled rules of the store loaded.
    pub async fn new(ctx: Ctx) -> Result<Arc<Self>, ServiceError> {
        let me = Arc::new(Self {
            ctx,
            rules: RwLock::new(Arc::new(RuleSet::default())),
            loaded: std::sync::atomic::AtomicU64::new(0),
            reloading: tokio::sync::Mutex::new(()),
        });
        me.reload().await?;
        Ok(me)
    }

    /// Reloads every enabled rule from the store and recompiles the rule set.
    pub async fn reload(&self) -> Result<(), ServiceError> {
        let _one_at_a_time = self.reloading.lock().await;
        self.load().await
    }

    /// [`reload`](Self::reload)'s work; the caller holds `reloading`.
    async fn load(&self) -> Result<(), ServiceError> {
        // Noted before reading, so a change made during the read triggers another reload.
        let generation = self.ctx.catalog.generation();
        let rules: Vec<Rule> = repo::<Rule>(&*self.ctx.store)
            .find(&Query::all().eq("enabled", true))
            .await?;
        let (set, errors) = RuleSet::build(rules, &self.ctx.engine);
        for (rule, error) in errors {
            tracing::warn!(rule = %rule, error = %error, "rule not loaded");
        }
        *self.rules.write().await = Arc::new(set);
        self.loaded
            .store(generation, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }

    /// Subscribes, then consumes trigger instances in a task until the bus closes; reloads
    /// rules periodically.
    pub async fn start(self: Arc<Self>) -> Result<tokio::task::JoinHandle<()>, ServiceError> {
        let sub = self
            .ctx
            .bus
            .subscribe(super::topology::rules_engine().with_prefetch(self.ctx.consumer_prefetch()))
            .await?;
        Ok(tokio::spawn(self.consume(sub)))
    }

    async fn consume(self: Arc<Self>, mut sub: Subscription) {
        let reloader = {
            let me = Arc::clone(&self);
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(RELOAD_INTERVAL);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    if let Err(e) = me.reload().await {
                        tracing::warn!(error = %e, "rule reload failed");
                    }
                }
            })
        };
        // Instances are processed concurrently (each waits on its own store writes, which the
        // store commits in groups); the queue's prefetch bounds how many are in hand.
        let slots = Arc::new(tokio::sync::Semaphore::new(
            self.ctx.consumer_prefetch().into(),
        ));
        while let Some(delivery) = sub.next().await {
            let delivery = match delivery {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(error = %e, "rules engine delivery failed");
                    continue;
                }
            };
            let Ok(permit) = Arc::clone(&slots).acquire_owned().await else {
                break;
            };
            let me = Arc::clone(&self);
            tokio::spawn(async move {
                let msg = delivery.message().value().unwrap_or(Value::Null);
                match me.process(&msg).await {
                    Ok(()) => {
                        let _ = delivery.ack().await;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "trigger instance processing failed; requeued");
                        let _ = delivery.nack(true).await;
                    }
                }
                drop(permit);
            });
        }
        // Let the instances in hand finish.
        let _ = slots
            .acquire_many(self.ctx.consumer_prefetch().into())
            .await;
        reloader.abort();
    }

    /// Whether content changed in this process since the rule set was loaded.
    fn is_stale(&self) -> bool {
        self.loaded.load(std::sync::atomic::Ordering::SeqCst) != self.ctx.catalog.generation()
    }

    /// Processes one dispatched trigger instance message (`{trigger_instance, trace_id}`).
    pub async fn process(&self, msg: &Value) -> Result<(), ServiceError> {
        let ti: TriggerInstance =
            serde_json::from_value(msg.get("trigger_instance").cloned().unwrap_or(Value::Null))
                .map_err(|e| ServiceError::Invalid(format!("bad trigger instance message: {e}")))?;
        let trace_id = msg
            .get("trace_id")
            .and_then(Value::as_str)
            .map(str::to_string);
        // Rules changed in this process (API, registration) take effect for the next instance.
        if self.is_stale() {
            let _one_at_a_time = self.reloading.lock().await;
            // Another instance may have reloaded while this one waited.
            if self.is_stale() {
                self.load().await?;
            }
        }
        let set = Arc::clone(&*self.rules.read().await);
        let render_ctx = self.render_context();
        let match_ctx = MatchContext::from(&render_ctx).for_trigger_instance(ti.id.clone());
        let result = set.match_instance(&ti.trigger, &ti.payload, match_ctx);
        let pending = [json!("pending"), json!("processing")];
        if result.errors.is_empty()
            && result.matched_standard.is_empty()
            && result.matched_backstop.is_empty()
        {
            // Nothing to enforce: one write takes it straight to `processed` (a redelivered
            // instance already processed is left alone).
            let mut patch = JsonMap::new();
            patch.insert("status".into(), json!("processed"));
            self.ctx
                .store
                .set_if(TI, &ti.id, "status", &pending, patch)
                .await?;
            return Ok(());
        }
        // The instance goes from `pending` to `processed` in one write, after its enforcements
        // (StackStorm's intermediate `processing` is not written: nobody waits on it, and it
        // cost a write per instance). A redelivered instance (we crashed mid-way, or a duplicate
        // of the message is processed concurrently) is processed again: executions and
        // enforcements have ids derived from the instance and the rule, so it creates none
        // twice, and the trace records only what was created.
        // The trace's tag comes with the message; an older message (or a republished one)
        // without it has the trace read for it.
        let trace_tag = match (&trace_id, msg.get("trace_tag").and_then(Value::as_str)) {
            (Some(_), Some(tag)) => Some(tag.to_string()),
            (Some(id), None) => repo::<Trace>(&*self.ctx.store)
                .get(id)
                .await?
                .map(|t| t.trace_tag),
            (None, _) => None,
        };
        let outcome = self
            .enforce(
                &ti,
                &set,
                result,
                render_ctx,
                (trace_id.as_deref(), trace_tag),
            )
            .await;
        let mut patch = JsonMap::new();
        patch.insert(
            "status".into(),
            json!(if outcome.is_ok() {
                "processed"
            } else {
                "processing_failed"
            }),
        );
        self.ctx
            .store
            .set_if(TI, &ti.id, "status", &pending, patch)
            .await?;
        outcome
    }

    /// The template context of rule parameters (datastore and decryption when configured).
    fn render_context(&self) -> RenderContext {
        let mut render_ctx = RenderContext::new();
        if let Some(kv) = &self.ctx.kv {
            render_ctx = render_ctx.with_kv(kv.clone(), None);
        }
        if let Some(d) = &self.ctx.decrypter {
            render_ctx = render_ctx.with_decrypter(d.clone());
        }
        render_ctx
    }

    async fn enforce(
        &self,
        ti: &TriggerInstance,
        set: &RuleSet,
        result: crate::rules::MatchResult<'_>,
        render_ctx: RenderContext,
        (trace_id, trace_tag): (Option<&str>, Option<String>),
    ) -> Result<(), ServiceError> {
        for (rule_ref, reason) in &result.errors {
            if let Some(rule) = set.rule(rule_ref) {
                self.record(ti, rule, None, Some(reason.clone())).await?;
            }
        }
        let matched: Vec<&Rule> = if result.matched_standard.is_empty() {
            result.matched_backstop
        } else {
            result.matched_standard
        };
        if matched.is_empty() {
            return Ok(());
        }
        let (trigger, tt) = dispatch::resolve_trigger(&self.ctx, &ti.trigger)
            .await
            .unwrap_or_else(|_| {
                (
                    Trigger {
                        id: String::new(),
                        name: ti.trigger.clone(),
                        pack: String::new(),
                        trigger_ref: ti.trigger.clone(),
                        uid: String::new(),
                        trigger_type: ti.trigger.clone(),
                        parameters: JsonMap::new(),
                        ref_count: 0,
                        description: None,
                    },
                    None::<TriggerType>,
                )
            });
        let trigger_ctx = render_ctx.clone().with("trigger", ti.payload.clone());
        // What the matched rules caused, appended to the trace at the end.
        let (mut traced_rules, mut traced_executions) = (Vec::new(), Vec::new());
        // Enforcements of executions requested, written with the trace at the end.
        let mut enforced = Vec::new();
        for rule in matched {
            let rendered = self
                .ctx
                .engine
                .render_value(&Value::Object(rule.action.parameters.clone()), &trigger_ctx);
            let params = match rendered {
                Ok(Value::Object(m)) => m,
                Ok(_) => JsonMap::new(),
                Err(e) => {
                    self.record(
                        ti,
                        rule,
                        None,
                        Some(format!(
                            "Failed to render parameters of action \"{}\": {e}",
                            rule.action.action_ref
                        )),
                    )
                    .await?;
                    continue;
                }
            };
            let mut context = JsonMap::new();
            context.insert(
                "trigger_instance".into(),
                json!({"id": ti.id, "name": Value::Null}),
            );
            context.insert("rule".into(), json!({"id": rule.id, "name": rule.name}));
            if let Some(id) = trace_id {
                context.insert(
                    "trace_context".into(),
                    json!({"id_": id, "trace_tag": trace_tag}),
                );
            }
            let req = ExecutionRequest {
                action_ref: rule.action.action_ref.clone(),
                parameters: params,
                user: None,
                context,
                trigger: serde_json::to_value(&trigger).ok(),
                trigger_type: tt.as_ref().and_then(|t| serde_json::to_value(t).ok()),
                trigger_instance: serde_json::to_value(ti).ok(),
                rule: serde_json::to_value(rule).ok(),
                delay: None,
            };
            // One execution per (instance, rule), however often the instance is delivered.
            let exec_id = derived_id(&ti.id, &format!("execution:{}", rule.id));
            match executions::request_once(&self.ctx, exec_id, req).await {
                Ok((exec, created)) => {
                    if created && trace_id.is_some() {
                        let now = now_iso();
                        traced_rules.push(TraceComponent {
                            object_id: rule.id.clone(),
                            component_ref: rule.rule_ref.clone(),
                            updated_at: now.clone(),
                            caused_by: json!({"type": "trigger_instance", "id": ti.id}),
                        });
                        traced_executions.push(TraceComponent { object_id: exec.id.clone(), component_ref: rule.action.action_ref.clone(), updated_at: now, caused_by: json!({"type": "rule", "id": format!("{}:{}", rule.id, ti.id)}) });
                    }
                    enforced.push(enforcement_doc(ti, rule, Some(exec.id.clone()), None)?);
                }
                Err(ServiceError::Store(e)) => return Err(ServiceError::Store(e)),
                Err(ServiceError::Bus(e)) => return Err(ServiceError::Bus(e)),
                Err(e) => self.record(ti, rule, None, Some(e.to_string())).await?,
            }
        }
        let store = &self.ctx.store;
        let enforcements = async {
            for doc in enforced {
                store.insert_new(Collection::RuleEnforcements, doc).await?;
            }
            Ok::<_, ServiceError>(())
        };
        // One write adds what every matched rule caused to the trace, alongside the
        // enforcements (the instance is marked processed only after both).
        let trace_write = async {
            if let Some(id) = trace_id.filter(|_| !traced_rules.is_empty()) {
                let mut items = JsonMap::new();
                items.insert("rules".into(), json!(traced_rules));
                items.insert("action_executions".into(), json!(traced_executions));
                store.append(Collection::Traces, id, items).await?;
            }
            Ok::<_, ServiceError>(())
        };
        tokio::try_join!(enforcements, trace_write)?;
        Ok(())
    }

    async fn record(
        &self,
        ti: &TriggerInstance,
        rule: &Rule,
        execution_id: Option<String>,
        failure: Option<String>,
    ) -> Result<(), ServiceError> {
        let doc = enforcement_doc(ti, rule, execution_id, failure)?;
        self.ctx
            .store
            .insert_new(Collection::RuleEnforcements, doc)
            .await?;
        Ok(())
    }
}

/// The enforcement document of `rule` on `ti`: one per (instance, rule), under an id derived
/// from both, so that a redelivered instance records none again. A failure is logged.
fn enforcement_doc(
    ti: &TriggerInstance,
    rule: &Rule,
    execution_id: Option<String>,
    failure: Option<String>,
) -> Result<Value, ServiceError> {
    if let Some(reason) = &failure {
        tracing::info!(rule = %rule.rule_ref, trigger_instance = %ti.id, reason = %reason, "rule enforcement failed");
    }
    let e = RuleEnforcement {
        id: derived_id(&ti.id, &format!("enforcement:{}", rule.id)),
        trigger_instance_id: ti.id.clone(),
        execution_id,
        rule: json!({"id": rule.id, "ref": rule.rule_ref, "uid": rule.uid}),
        status: if failure.is_some() {
            "failed".into()
        } else {
            "succeeded".into()
        },
        failure_reason: failure,
        enforced_at: now_iso(),
    };
    serde_json::to_value(&e).map_err(|err| {
        ServiceError::Store(StoreError::InvalidDocument {
            collection: Collection::RuleEnforcements,
            reason: err.to_string(),
        })
    })
}
