//! Applying one event to a workflow: the in-memory copy and lock per workflow, loading from
//! the store, compare-and-set commits of the header and writes of the changed records.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, LazyLock, Mutex};

use serde_json::{json, Value};

use super::children::carry_out;
use super::kv::kv_for;
use super::{
    decode, encode, epoch_ms, items_key, CtxDoc, ItemDoc, TaskDoc, WorkflowDoc, COMMIT_ATTEMPTS,
};
use crate::model::JsonMap;
use crate::services::{now_iso, Ctx, ServiceError};
use crate::store::{Collection, Query, Write};
use crate::workflow::machine::{Command, Event, TaskRecord, TaskStatus, Workflow, WorkflowState};
use crate::workflow::spec::WorkflowSpec;

/// A workflow in memory, valid while the stored `version` equals its own.
pub(super) struct Live {
    pub(super) version: u64,
    pub(super) wf: Workflow,
    pub(super) doc: WorkflowDoc,
}

pub(super) type Slot = Arc<tokio::sync::Mutex<Option<Live>>>;

/// Per-workflow locks (and cached state) of this process.
static LOCKS: LazyLock<Mutex<HashMap<String, Slot>>> = LazyLock::new(Default::default);

pub(super) fn slot(wf_id: &str) -> Slot {
    LOCKS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .entry(wf_id.to_string())
        .or_default()
        .clone()
}

pub(super) fn forget(wf_id: &str) {
    LOCKS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(wf_id);
}

/// Updates the header fields that follow from the commands of an event: timers armed, the
/// result once finished.
pub(super) fn note_commands(doc: &mut WorkflowDoc, wf: &Workflow, cmds: &[Command]) {
    let now = epoch_ms();
    for c in cmds {
        match c {
            Command::ScheduleTimer {
                instance, delay, ..
            } => {
                let due = now.saturating_add(i64::try_from(*delay).unwrap_or(i64::MAX / 2) * 1000);
                doc.timers.insert(instance.to_string(), due);
            }
            Command::Finished { result, .. } => {
                doc.result = Some(result.clone());
                doc.end_timestamp = Some(now_iso());
            }
            _ => {}
        }
    }
    doc.timers.retain(|k, _| {
        k.parse::<usize>()
            .ok()
            .and_then(|i| wf.state.records.get(i))
            .is_some_and(|r| r.status == TaskStatus::Delayed)
    });
    doc.status = wf.state.header.status.as_str().to_string();
    doc.records = wf.state.records.len();
}

/// Loads a workflow run from the store: the header, every record, the pending records of the
/// last commit laid over them (and written, in case a crash came before).
pub(super) async fn load(ctx: &Ctx, wf_id: &str) -> Result<Option<Live>, ServiceError> {
    let Some(doc) = ctx.store.get(Collection::WorkflowExecutions, wf_id).await? else {
        return Ok(None);
    };
    let mut doc: WorkflowDoc = decode(Collection::WorkflowExecutions, doc)?;
    let initial = ctx
        .store
        .get(Collection::TaskExecutions, &format!("{wf_id}_ctx"))
        .await?;
    if let Some(c) = initial {
        let c: CtxDoc = decode(Collection::TaskExecutions, c)?;
        doc.state.ctx = c.ctx;
    }
    let q = Query::all().eq("workflow_execution", wf_id);
    let mut records: Vec<Option<TaskRecord>> = vec![None; doc.records];
    for d in ctx.store.find(Collection::TaskExecutions, &q).await? {
        let t: TaskDoc = decode(Collection::TaskExecutions, d)?;
        if t.instance >= records.len() {
            records.resize(t.instance + 1, None);
        }
        records[t.instance] = Some(t.record);
    }
    if !doc.pending.is_empty() {
        let mut writes = Vec::new();
        for r in &doc.pending {
            if r.instance >= records.len() {
                records.resize(r.instance + 1, None);
            }
            records[r.instance] = Some(r.clone());
            writes.push(Write::Put {
                collection: Collection::TaskExecutions,
                doc: encode(Collection::TaskExecutions, &TaskDoc::of(wf_id, r))?,
            });
        }
        ctx.store.apply(writes).await?;
    }
    let mut records: Vec<TaskRecord> = records.into_iter().flatten().collect();
    let q = Query::all().eq("workflow_execution", items_key(wf_id).as_str());
    let mut changes = Vec::new();
    for d in ctx.store.find(Collection::TaskExecutions, &q).await? {
        let item: ItemDoc = decode(Collection::TaskExecutions, d)?;
        changes.push(item.change);
    }
    if !doc.pending_items.is_empty() {
        let mut writes = Vec::new();
        for c in &doc.pending_items {
            writes.push(Write::Put {
                collection: Collection::TaskExecutions,
                doc: encode(Collection::TaskExecutions, &ItemDoc::of(wf_id, c))?,
            });
        }
        ctx.store.apply(writes).await?;
        changes.extend(doc.pending_items.iter().cloned());
    }
    WorkflowState::apply_items(&mut records, changes);
    let spec = WorkflowSpec::parse(&doc.spec).map_err(|errors| {
        ServiceError::Invalid(format!(
            "stored workflow definition of {wf_id} no longer parses: {}",
            errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        ))
    })?;
    let state = WorkflowState::from_parts(doc.state.clone(), records);
    let wf = Workflow::restore(Arc::new(spec), state, kv_for(ctx, &doc.user));
    Ok(Some(Live {
        version: doc.version,
        wf,
        doc,
    }))
}

/// Makes `live` current: keeps it when the stored version is its own, else loads again.
pub(super) async fn refresh(
    ctx: &Ctx,
    wf_id: &str,
    live: &mut Option<Live>,
) -> Result<bool, ServiceError> {
    let stored = ctx.store.get(Collection::WorkflowExecutions, wf_id).await?;
    let Some(stored) = stored else {
        *live = None;
        return Ok(false);
    };
    let version = stored.get("version").and_then(Value::as_u64);
    if live.as_ref().map(|l| l.version) != version {
        *live = load(ctx, wf_id).await?;
    }
    Ok(live.is_some())
}

/// What to do with the current state: an event to apply (`None`: nothing to do).
pub(super) type Decide = dyn Fn(&Workflow) -> Option<Event> + Send + Sync;

/// Applies an event to the workflow under the caller's lock and commits it (compare-and-set on
/// `version`, then the changed records). Returns the commands to carry out, `None` when the
/// decision was to do nothing.
pub(super) async fn step(
    ctx: &Ctx,
    wf_id: &str,
    live: &mut Option<Live>,
    decide: &Decide,
) -> Result<Option<Vec<Command>>, ServiceError> {
    for _ in 0..COMMIT_ATTEMPTS {
        if !refresh(ctx, wf_id, live).await? {
            return Ok(None);
        }
        let l = live.as_mut().expect("refreshed above");
        if l.wf.state.header.finished {
            return Ok(None);
        }
        let Some(event) = decide(&l.wf) else {
            return Ok(None);
        };
        let cmds = l.wf.apply(event);
        let delta = l.wf.delta();
        let mut doc = l.doc.clone();
        doc.version = l.version + 1;
        doc.state = delta.header;
        doc.pending = delta.records;
        doc.pending_items = delta.items;
        note_commands(&mut doc, &l.wf, &cmds);
        let mut patch = JsonMap::new();
        if let Value::Object(m) = encode(Collection::WorkflowExecutions, &doc)? {
            patch = m;
        }
        // Fields fixed at start are not written again.
        for fixed in [
            "id",
            "spec",
            "action_execution",
            "user",
            "trace_context",
            "start_timestamp",
            "closed",
        ] {
            patch.remove(fixed);
        }
        let committed = ctx
            .store
            .compare_and_set(
                Collection::WorkflowExecutions,
                wf_id,
                "version",
                &[json!(l.version)],
                patch,
            )
            .await?;
        if committed.is_none() {
            // Another process committed first: start again from the stored state.
            *live = None;
            continue;
        }
        let mut writes = Vec::with_capacity(doc.pending.len() + doc.pending_items.len());
        for r in &doc.pending {
            writes.push(Write::Put {
                collection: Collection::TaskExecutions,
                doc: encode(Collection::TaskExecutions, &TaskDoc::of(wf_id, r))?,
            });
        }
        for c in &doc.pending_items {
            writes.push(Write::Put {
                collection: Collection::TaskExecutions,
                doc: encode(Collection::TaskExecutions, &ItemDoc::of(wf_id, c))?,
            });
        }
        if !writes.is_empty() {
            ctx.store.apply(writes).await?;
        }
        l.version = doc.version;
        l.doc = doc;
        return Ok(Some(cmds));
    }
    Err(ServiceError::Conflict {
        id: wf_id.to_string(),
        expected: "an uncontended workflow version".into(),
    })
}

/// Applies `first` and the events the commands lead to, one at a time, under the lock.
pub(super) async fn process(
    ctx: &Ctx,
    wf_id: &str,
    first: Box<Decide>,
) -> Result<(), ServiceError> {
    let s = slot(wf_id);
    let mut guard = s.lock().await;
    let Some(cmds) = step(ctx, wf_id, &mut guard, &*first).await? else {
        return Ok(());
    };
    let events = carry_out(ctx, &mut guard, cmds).await?;
    drain(ctx, wf_id, &mut guard, events).await
}

/// Applies follow-up events (from failed requests) until none are left.
pub(super) async fn drain(
    ctx: &Ctx,
    wf_id: &str,
    live: &mut Option<Live>,
    events: Vec<Event>,
) -> Result<(), ServiceError> {
    let mut queue: VecDeque<Event> = events.into();
    while let Some(ev) = queue.pop_front() {
        let decide = move |_: &Workflow| Some(ev.clone());
        if let Some(cmds) = step(ctx, wf_id, live, &decide).await? {
            queue.extend(carry_out(ctx, live, cmds).await?);
        }
    }
    if live.as_ref().is_some_and(|l| l.wf.state.header.finished) {
        forget(wf_id);
    }
    Ok(())
}
