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

/// One workflow's place in this process: its lock with the cached state, and the events
/// waiting for that lock (see [`process`]).
#[derive(Default)]
pub(super) struct SlotState {
    /// The lock; holds the workflow in memory.
    pub(super) live: tokio::sync::Mutex<Option<Live>>,
    /// Events waiting for the lock, applied together by its next holder.
    queued: Mutex<Vec<Queued>>,
}

pub(super) type Slot = Arc<SlotState>;

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

/// Applies events to the workflow under the caller's lock and commits them together
/// (compare-and-set on `version`, then the changed records). Each decision sees the state the
/// ones before it left; none is asked once the workflow has finished. Returns the commands to
/// carry out, in order; `None` when every decision was to do nothing.
pub(super) async fn step(
    ctx: &Ctx,
    wf_id: &str,
    live: &mut Option<Live>,
    decides: &[&Decide],
) -> Result<Option<Vec<Command>>, ServiceError> {
    for _ in 0..COMMIT_ATTEMPTS {
        if !refresh(ctx, wf_id, live).await? {
            return Ok(None);
        }
        let l = live.as_mut().expect("refreshed above");
        let mut cmds = Vec::new();
        let mut applied = false;
        for decide in decides {
            if l.wf.state.header.finished {
                break;
            }
            if let Some(event) = decide(&l.wf) {
                cmds.extend(l.wf.apply(event));
                applied = true;
            }
        }
        if !applied {
            return Ok(None);
        }
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

/// An event waiting for its workflow's lock, and where to tell how it went.
struct Queued {
    decide: Box<Decide>,
    done: tokio::sync::oneshot::Sender<Result<(), String>>,
}

/// Applies `first` and the events the commands lead to, under the workflow's lock.
///
/// Events that arrive while another holds the lock are queued; whoever takes the lock next
/// applies every queued event in one step (one commit of the header and the changed records),
/// so a with-items whose children complete faster than one commit pays one commit per batch,
/// not per child. Each caller returns once its own event has been applied and committed.
pub(super) async fn process(
    ctx: &Ctx,
    wf_id: &str,
    first: Box<Decide>,
) -> Result<(), ServiceError> {
    let (done, outcome) = tokio::sync::oneshot::channel();
    let s = slot(wf_id);
    s.queued
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(Queued {
            decide: first,
            done,
        });
    let mut guard = s.live.lock().await;
    let batch = std::mem::take(&mut *s.queued.lock().unwrap_or_else(|p| p.into_inner()));
    if batch.is_empty() {
        // An earlier holder of the lock took this event with its batch.
        drop(guard);
        return match outcome.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(reason)) => Err(ServiceError::Busy(format!(
                "workflow {wf_id}: the batch with this event failed: {reason}"
            ))),
            Err(_) => Err(ServiceError::Busy(format!(
                "workflow {wf_id}: the batch with this event was abandoned"
            ))),
        };
    }
    let decides: Vec<&Decide> = batch.iter().map(|q| &*q.decide).collect();
    let res = apply_batch(ctx, wf_id, &mut guard, &decides).await;
    drop(decides);
    drop(guard);
    // Our own event is in the batch too; its receiver is simply not read.
    let shared = res.as_ref().map(|_| ()).map_err(ToString::to_string);
    for q in batch {
        let _ = q.done.send(shared.clone());
    }
    res
}

/// One batch: its step, the commands, the follow-up events.
async fn apply_batch(
    ctx: &Ctx,
    wf_id: &str,
    live: &mut Option<Live>,
    decides: &[&Decide],
) -> Result<(), ServiceError> {
    let Some(cmds) = step(ctx, wf_id, live, decides).await? else {
        return Ok(());
    };
    let events = carry_out(ctx, live, cmds).await?;
    drain(ctx, wf_id, live, events).await
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
        if let Some(cmds) = step(ctx, wf_id, live, &[&decide]).await? {
            queue.extend(carry_out(ctx, live, cmds).await?);
        }
    }
    if live.as_ref().is_some_and(|l| l.wf.state.header.finished) {
        forget(wf_id);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::workflows::start::{store_new, NewRun};
    use crate::store::EmbeddedStore;
    use crate::workflow::machine::ActionStatus;

    const SPEC: &str = "version: 1.0\ninput:\n  - xs\ntasks:\n  each:\n    with: x in <% ctx(xs) %>\n    action: core.noop\n";

    /// Events queued while the lock is held are applied together: one commit for all.
    #[tokio::test]
    async fn events_waiting_for_the_lock_are_committed_as_one_batch() {
        let store: Arc<dyn crate::store::Store> =
            Arc::new(EmbeddedStore::open_in_memory().expect("store"));
        let ctx = Ctx::for_tests(store);
        let spec = Arc::new(WorkflowSpec::parse(SPEC).expect("spec"));
        let mut input = JsonMap::new();
        input.insert("xs".into(), json!([1, 2, 3, 4]));
        let (mut wf, cmds) = Workflow::new(spec, &input);
        assert_eq!(cmds.len(), 4, "every item started: {cmds:?}");
        let run = NewRun {
            action_execution: "parent".into(),
            spec: SPEC.into(),
            user: "tester".into(),
            trace_context: None,
            timeout: None,
        };
        let doc = store_new(&ctx, &mut wf, &cmds, run).await.expect("stored");
        let wf_id = doc.id.clone();

        let s = slot(&wf_id);
        let held = s.live.lock().await;
        let mut waiting = Vec::new();
        for item in 0..3 {
            let (ctx, wf_id) = (ctx.clone(), wf_id.clone());
            let event = Event::ActionCompleted {
                instance: 0,
                item: Some(item),
                status: ActionStatus::Succeeded,
                result: json!({"item": item}),
            };
            waiting.push(tokio::spawn(async move {
                process(&ctx, &wf_id, Box::new(move |_| Some(event.clone()))).await
            }));
        }
        // All three wait behind the lock before it is let go.
        while s.queued.lock().unwrap_or_else(|p| p.into_inner()).len() < 3 {
            tokio::task::yield_now().await;
        }
        drop(held);
        for w in waiting {
            w.await.expect("joined").expect("applied");
        }

        let stored = ctx
            .store
            .get(Collection::WorkflowExecutions, &wf_id)
            .await
            .expect("read")
            .expect("stored");
        assert_eq!(stored["version"], json!(1), "one commit for three events");
        let loaded = load(&ctx, &wf_id).await.expect("load").expect("there");
        let items = loaded.wf.state.records[0].items.as_ref().expect("items");
        assert_eq!((items.completed, items.active), (3, 1));
        assert_eq!(
            items.results[..3],
            [json!({"item": 0}), json!({"item": 1}), json!({"item": 2})]
        );
    }
}
