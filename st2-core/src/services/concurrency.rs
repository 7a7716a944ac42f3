//! Concurrency slots in the store, so that `action.concurrency` and `action.concurrency.attr`
//! hold across several schedulers (StackStorm needs a tooz coordination backend for this).
//!
//! A policy with threshold `t` has `t` slot documents in
//! [`Collection::ConcurrencySlots`]: `{id: "<group>#<n>", group, execution, node, claimed_at}`,
//! where the group is the policy ref (plus a digest of the attribute values for
//! `action.concurrency.attr`). A scheduler claims a free slot for an execution before it
//! becomes `scheduled`: the first claim of a slot creates it ([`Store::insert_new`]), later
//! ones are a compare-and-set of `execution` from `null`. Of two racing schedulers exactly one
//! gets a slot, so at most `t` executions of a group hold one, and only holders are scheduled.
//!
//! A slot is released (`execution: null`) when its execution completes (the scheduler's
//! completion subscription), and taken over lazily by a claimer that finds its holder
//! completed, gone, or still `requested`/`delayed` long after the claim (a scheduler that died
//! between claim and schedule): so an `abandoned` execution frees its slot even if the
//! completion message is lost. A `paused` workflow keeps its slot.
//!
//! Rate limits (`action.ratelimit`: at most `limit` executions scheduled per `interval`) use
//! the same collection: `limit` slots `{id: "<policy ref>@rate#<n>", execution, rate_at}`,
//! where `rate_at` is when the slot was last taken (ms). A slot is free once `rate_at` is more
//! than `interval` ago; taking it is a compare-and-set from the `rate_at` read, so of racing
//! schedulers one wins, and at most `limit` executions are scheduled in any `interval`, across
//! every scheduler. A completion leaves a rate slot taken (the window counts scheduled
//! executions, finished or not); a claim for an execution that is then not scheduled is given
//! back ([`unclaim`]).
//!
//! This module decides nothing about policies; the scheduler calls it.

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::{Ctx, ServiceError};
use crate::model::{Execution, ExecutionStatus, JsonMap};
use crate::store::{repo, Collection, Query, Store};

/// How long a slot claimed for an execution still `requested`/`delayed` stays reserved: past
/// this, the claiming scheduler is presumed dead and the slot may be taken over.
pub const CLAIM_GRACE: chrono::TimeDelta = chrono::TimeDelta::seconds(30);

/// The slot group of a policy: its ref, plus a digest of the execution's values of
/// `attributes` for `action.concurrency.attr`.
pub fn group(policy_ref: &str, attrs: Option<(&[String], &JsonMap)>) -> String {
    let Some((names, params)) = attrs else {
        return policy_ref.to_string();
    };
    let values: Vec<&Value> = names
        .iter()
        .map(|n| params.get(n).unwrap_or(&Value::Null))
        .collect();
    let canonical = serde_json::to_string(&values).unwrap_or_default();
    let digest = hex::encode(Sha256::digest(canonical.as_bytes()));
    format!("{policy_ref}/{}", &digest[..16])
}

/// Claims one of the `threshold` slots of `group` for `exec_id`; the slot's id, or `None`
/// when every slot is held. Claiming again for the same execution returns the slot it holds.
pub async fn claim(
    ctx: &Ctx,
    group: &str,
    threshold: u64,
    exec_id: &str,
) -> Result<Option<String>, ServiceError> {
    let store = &*ctx.store;
    let mut held = Vec::new();
    for n in 0..threshold {
        let id = format!("{group}#{n}");
        match store.get(Collection::ConcurrencySlots, &id).await? {
            None => {
                if store
                    .insert_new(
                        Collection::ConcurrencySlots,
                        slot_doc(ctx, &id, group, exec_id),
                    )
                    .await?
                {
                    return Ok(Some(id));
                }
                // Lost the race for a new slot: someone holds it now.
            }
            Some(doc) => match doc.get("execution").and_then(Value::as_str) {
                None => {
                    if take(store, ctx, &id, group, Value::Null, exec_id).await? {
                        return Ok(Some(id));
                    }
                }
                Some(holder) if holder == exec_id => return Ok(Some(id)),
                Some(holder) => held.push((id, holder.to_string(), doc)),
            },
        }
    }
    // Every slot is held: take over one whose holder no longer needs it.
    for (id, holder, doc) in held {
        if holder_done(ctx, &holder, &doc).await?
            && take(store, ctx, &id, group, json!(holder), exec_id).await?
        {
            tracing::info!(slot = %id, previous = %holder, "concurrency slot taken over from a finished execution");
            return Ok(Some(id));
        }
    }
    Ok(None)
}

/// Takes one of the `limit` rate slots of `group` for `exec_id` (see the module docs); the
/// slot's id, or `None` when each was taken less than `interval` ago. Claiming again for the
/// same execution returns the slot it holds.
pub async fn claim_rate(
    ctx: &Ctx,
    group: &str,
    limit: u64,
    interval: chrono::TimeDelta,
    exec_id: &str,
) -> Result<Option<String>, ServiceError> {
    let store = &*ctx.store;
    let now = chrono::Utc::now().timestamp_millis();
    let free_before = now.saturating_sub(interval.num_milliseconds());
    let taken = |id: &str| {
        let mut doc = slot_doc(ctx, id, group, exec_id);
        doc["rate_at"] = json!(now);
        doc
    };
    for n in 0..limit {
        let id = format!("{group}#{n}");
        let Some(doc) = store.get(Collection::ConcurrencySlots, &id).await? else {
            if store
                .insert_new(Collection::ConcurrencySlots, taken(&id))
                .await?
            {
                return Ok(Some(id));
            }
            continue; // lost the race for a new slot
        };
        if doc.get("execution").and_then(Value::as_str) == Some(exec_id) {
            return Ok(Some(id));
        }
        let at = doc.get("rate_at").cloned().unwrap_or(Value::Null);
        if at.as_i64().is_some_and(|t| t >= free_before) {
            continue;
        }
        let Value::Object(patch) = taken(&id) else {
            continue;
        };
        if store
            .set_if(Collection::ConcurrencySlots, &id, "rate_at", &[at], patch)
            .await?
        {
            return Ok(Some(id));
        }
    }
    Ok(None)
}

/// Gives back a slot claimed for `exec_id` that was then not scheduled: a concurrency slot
/// becomes free, a rate slot counts no more in its window.
pub async fn unclaim(ctx: &Ctx, id: &str, exec_id: &str) -> Result<bool, ServiceError> {
    free(ctx, id, exec_id, true).await
}

/// Releases every slot `exec_id` holds; returns how many.
pub async fn release(ctx: &Ctx, exec_id: &str) -> Result<usize, ServiceError> {
    let slots = ctx
        .store
        .find(
            Collection::ConcurrencySlots,
            &Query::all().eq("execution", exec_id),
        )
        .await?;
    let mut n = 0;
    for s in slots {
        let Some(id) = s.get("id").and_then(Value::as_str) else {
            continue;
        };
        if release_slot(ctx, id, exec_id).await? {
            n += 1;
        }
    }
    Ok(n)
}

/// Releases the slot `id` if `exec_id` still holds it (a rate slot stays counted in its
/// window).
pub async fn release_slot(ctx: &Ctx, id: &str, exec_id: &str) -> Result<bool, ServiceError> {
    free(ctx, id, exec_id, false).await
}

/// Frees slot `id` if `exec_id` holds it; with `window`, its rate window too.
async fn free(ctx: &Ctx, id: &str, exec_id: &str, window: bool) -> Result<bool, ServiceError> {
    let mut patch = JsonMap::new();
    patch.insert("execution".into(), Value::Null);
    if window {
        patch.insert("rate_at".into(), Value::Null);
    }
    Ok(ctx
        .store
        .set_if(
            Collection::ConcurrencySlots,
            id,
            "execution",
            &[json!(exec_id)],
            patch,
        )
        .await?)
}

/// How many slots of `group` are held now (for tests and operators).
pub async fn held(store: &dyn Store, group: &str) -> Result<u64, ServiceError> {
    let docs = store
        .find(
            Collection::ConcurrencySlots,
            &Query::all().eq("group", group),
        )
        .await?;
    Ok(docs
        .iter()
        .filter(|d| d.get("execution").is_some_and(|e| !e.is_null()))
        .count() as u64)
}

fn slot_doc(ctx: &Ctx, id: &str, group: &str, exec_id: &str) -> Value {
    json!({
        "id": id,
        "group": group,
        "execution": exec_id,
        "node": ctx.node_id,
        "claimed_at": super::now_iso(),
    })
}

/// Moves slot `id` from holder `from` (`null`: free) to `exec_id`.
async fn take(
    store: &dyn Store,
    ctx: &Ctx,
    id: &str,
    group: &str,
    from: Value,
    exec_id: &str,
) -> Result<bool, ServiceError> {
    let mut patch = JsonMap::new();
    if let Value::Object(m) = slot_doc(ctx, id, group, exec_id) {
        patch.extend(m.into_iter().filter(|(k, _)| k != "id"));
    }
    Ok(store
        .compare_and_set(
            Collection::ConcurrencySlots,
            id,
            "execution",
            &[from],
            patch,
        )
        .await?
        .is_some())
}

/// Whether the holder of a slot no longer needs it: completed, gone, or not yet scheduled
/// long after the claim.
async fn holder_done(ctx: &Ctx, holder: &str, slot: &Value) -> Result<bool, ServiceError> {
    let Some(e) = repo::<Execution>(&*ctx.store).get(holder).await? else {
        return Ok(true);
    };
    if e.status.is_completed() {
        return Ok(true);
    }
    if matches!(
        e.status,
        ExecutionStatus::Requested | ExecutionStatus::Delayed
    ) {
        let claimed = slot
            .get("claimed_at")
            .and_then(Value::as_str)
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
        return Ok(claimed.is_none_or(|t| chrono::Utc::now() - t.to_utc() > CLAIM_GRACE));
    }
    Ok(false)
}
