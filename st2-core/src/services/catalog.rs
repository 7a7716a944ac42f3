//! The catalog: content that only changes at registration (actions with their runner type, pack
//! configs, policies, triggers with their type and compiled payload validator), cached so that
//! the event pipeline does not read and decode the same documents for every event.
//!
//! Entries live at most [`Catalog::TTL`], so content registered by another process (`st2ctl
//! reload` on the same store) is seen within that time, as the rules engine's reload is; changes
//! made in this process call [`Catalog::invalidate`] and are seen at once. Misses are not
//! cached: content registered a moment ago is found on the next lookup.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::ServiceError;
use crate::model::{
    Action, Config, ConfigSchema, JsonMap, Policy, RunnerType, Trigger, TriggerType,
};
use crate::schema::{ContentError, InstanceValidator};
use crate::store::{repo, Query, Store};

/// An action with its runner type, and both as the JSON an execution embeds.
#[derive(Debug)]
pub struct LoadedAction {
    /// The action.
    pub action: Action,
    /// Its runner type.
    pub runner: RunnerType,
    /// `action` serialised (the execution's `action` field).
    pub action_json: Value,
    /// `runner` serialised (the execution's `runner` field).
    pub runner_json: Value,
}

/// A trigger (or the shadow trigger of a trigger type) with its type.
#[derive(Debug)]
pub struct ResolvedTrigger {
    /// The trigger.
    pub trigger: Trigger,
    /// Its type, when registered.
    pub trigger_type: Option<TriggerType>,
    /// The type's `payload_schema` compiled, when it has one.
    payload: Option<InstanceValidator>,
}

impl ResolvedTrigger {
    /// Checks a payload against the trigger type's `payload_schema`; errors name `payload/...`.
    pub fn validate_payload(&self, payload: &Value) -> Result<(), Vec<ContentError>> {
        match &self.payload {
            Some(v) => v.validate(payload).map_err(|mut errs| {
                for e in &mut errs {
                    e.field = format!("payload{}", e.field);
                }
                errs
            }),
            None => Ok(()),
        }
    }
}

/// One kind of cached entry, keyed by ref.
struct Cache<V> {
    entries: Mutex<HashMap<String, (Instant, Arc<V>)>>,
    /// Held while an entry is loaded from the store: concurrent misses (a burst when an entry
    /// expires) wait for the one load instead of each reading the store.
    loading: tokio::sync::Mutex<()>,
}

impl<V> Default for Cache<V> {
    fn default() -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            loading: tokio::sync::Mutex::new(()),
        }
    }
}

impl<V> Cache<V> {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, Arc<V>)>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn get(&self, key: &str, ttl: Duration) -> Option<Arc<V>> {
        let guard = self.lock();
        let (at, v) = guard.get(key)?;
        (at.elapsed() < ttl).then(|| Arc::clone(v))
    }

    fn put(&self, key: &str, v: Arc<V>) {
        self.lock().insert(key.to_string(), (Instant::now(), v));
    }

    fn clear(&self) {
        self.lock().clear();
    }
}

/// Registration-time content, cached (see the module docs).
#[derive(Default)]
pub struct Catalog {
    /// Bumped by [`Catalog::invalidate`]; a load that started before a bump is not cached.
    generation: AtomicU64,
    actions: Cache<LoadedAction>,
    configs: Cache<JsonMap>,
    policies: Cache<Vec<Policy>>,
    triggers: Cache<ResolvedTrigger>,
    /// Triggers of one type (webhooks), by type ref.
    triggers_of_type: Cache<Vec<Trigger>>,
    /// Serialised API answers about registration-time content (body, total), by request.
    listings: Cache<(bytes::Bytes, u64)>,
    /// Auth tokens seen valid: token → (user, expiry as Unix seconds). Tokens cannot be
    /// revoked, only expire, so a cached one is as good as a stored one until its expiry.
    tokens: Cache<(String, i64)>,
    /// Compiled trigger preprocessing pipelines and their per-type locks.
    pub preprocessors: super::preprocess::Preprocessors,
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalog")
            .field("generation", &self.generation.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Catalog {
    /// Longest an entry is used before it is read again from the store.
    pub const TTL: Duration = Duration::from_secs(2);

    /// Drops every entry: call after changing actions, runners, configs, policies or triggers.
    pub fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.actions.clear();
        self.configs.clear();
        self.policies.clear();
        self.triggers.clear();
        self.listings.clear();
        self.triggers_of_type.clear();
    }

    /// The triggers of a trigger type (e.g. every `core.st2.webhook` trigger a rule made).
    pub async fn triggers_of_type(
        &self,
        store: &dyn Store,
        type_ref: &str,
    ) -> Result<Arc<Vec<Trigger>>, ServiceError> {
        self.cached(&self.triggers_of_type, type_ref, || async {
            Ok(repo::<Trigger>(store)
                .find(&Query::all().eq("type", type_ref))
                .await?)
        })
        .await
    }

    /// The current generation: pass it back to [`put_listing`](Self::put_listing) so that a
    /// listing computed across an [`invalidate`](Self::invalidate) is not cached.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// A cached API answer (serialised body and total) for `key`, if fresh.
    pub fn listing(&self, key: &str) -> Option<Arc<(bytes::Bytes, u64)>> {
        self.listings.get(key, Self::TTL)
    }

    /// Caches an API answer computed from the generation `started`.
    pub fn put_listing(&self, key: &str, started: u64, body: bytes::Bytes, total: u64) {
        self.cache(&self.listings, key, started, &Arc::new((body, total)));
    }

    /// The user of a token seen valid before, if it has not expired since.
    pub fn token_user(&self, token: &str) -> Option<String> {
        let hit = self.tokens.get(token, Self::TTL)?;
        (hit.1 > chrono::Utc::now().timestamp()).then(|| hit.0.clone())
    }

    /// Remembers a valid token with its expiry (Unix seconds).
    pub fn put_token(&self, token: &str, user: &str, expiry: i64) {
        let mut tokens = self.tokens.lock();
        if tokens.len() > 10_000 {
            tokens.clear(); // bounded: a burst of distinct tokens only costs re-reads
        }
        tokens.insert(
            token.to_string(),
            (Instant::now(), Arc::new((user.to_string(), expiry))),
        );
    }

    /// The entry for `key` in `cache`, loaded by `load` when missing or expired. Concurrent
    /// misses wait for the one load; a load an [`invalidate`](Self::invalidate) overtook is
    /// returned but not cached.
    async fn cached<V, F, Fut>(
        &self,
        cache: &Cache<V>,
        key: &str,
        load: F,
    ) -> Result<Arc<V>, ServiceError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<V, ServiceError>>,
    {
        if let Some(hit) = cache.get(key, Self::TTL) {
            return Ok(hit);
        }
        let _loading = cache.loading.lock().await;
        if let Some(hit) = cache.get(key, Self::TTL) {
            return Ok(hit);
        }
        let started = self.generation.load(Ordering::SeqCst);
        let v = Arc::new(load().await?);
        self.cache(cache, key, started, &v);
        Ok(v)
    }

    fn cache<V>(&self, cache: &Cache<V>, key: &str, started: u64, v: &Arc<V>) {
        if self.generation.load(Ordering::SeqCst) == started {
            cache.put(key, Arc::clone(v));
        }
    }

    /// The action (by ref or id) and its runner type, or a precise error.
    pub async fn action(
        &self,
        store: &dyn Store,
        action_ref: &str,
    ) -> Result<Arc<LoadedAction>, ServiceError> {
        self.cached(&self.actions, action_ref, || async {
            let action = repo::<Action>(store)
                .get_by_ref_or_id(action_ref)
                .await?
                .ok_or_else(|| ServiceError::NotFound {
                    kind: "action",
                    id: action_ref.to_string(),
                })?;
            let runner = repo::<RunnerType>(store)
                .find_one(Query::all().eq("name", action.runner_type.as_str()))
                .await?
                .ok_or_else(|| ServiceError::NotFound {
                    kind: "runner type",
                    id: action.runner_type.clone(),
                })?;
            Ok(LoadedAction {
                action_json: serde_json::to_value(&action).unwrap_or(Value::Null),
                runner_json: serde_json::to_value(&runner).unwrap_or(Value::Null),
                action,
                runner,
            })
        })
        .await
    }

    /// The pack config an action sees: the stored config, or the schema's defaults.
    pub async fn pack_config(
        &self,
        store: &dyn Store,
        pack: &str,
    ) -> Result<Arc<JsonMap>, ServiceError> {
        self.cached(&self.configs, pack, || async {
            Ok(
                match repo::<Config>(store)
                    .find_one(Query::all().eq("pack", pack))
                    .await?
                {
                    Some(c) => c.values,
                    None => match repo::<ConfigSchema>(store)
                        .find_one(Query::all().eq("pack", pack))
                        .await?
                    {
                        Some(schema) => crate::schema::validate_config(
                            std::path::Path::new(pack),
                            &schema.attributes,
                            &JsonMap::new(),
                        )
                        .unwrap_or_default(),
                        None => JsonMap::new(),
                    },
                },
            )
        })
        .await
    }

    /// The enabled policies of an action.
    pub async fn policies(
        &self,
        store: &dyn Store,
        action_ref: &str,
    ) -> Result<Arc<Vec<Policy>>, ServiceError> {
        self.cached(&self.policies, action_ref, || async {
            Ok(repo::<Policy>(store)
                .find(
                    &Query::all()
                        .eq("resource_ref", action_ref)
                        .eq("enabled", true),
                )
                .await?)
        })
        .await
    }

    /// The trigger for a ref — a trigger document, or the shadow trigger of a trigger type —
    /// with its type.
    pub async fn trigger(
        &self,
        store: &dyn Store,
        trigger_ref: &str,
    ) -> Result<Arc<ResolvedTrigger>, ServiceError> {
        self.cached(&self.triggers, trigger_ref, || async {
            let trigger = match repo::<Trigger>(store).get_by_ref(trigger_ref).await? {
                Some(t) => t,
                None => {
                    let tt = repo::<TriggerType>(store)
                        .get_by_ref(trigger_ref)
                        .await?
                        .ok_or_else(|| ServiceError::NotFound {
                            kind: "trigger",
                            id: trigger_ref.to_string(),
                        })?;
                    Trigger {
                        id: String::new(),
                        name: tt.name.clone(),
                        pack: tt.pack.clone(),
                        trigger_ref: tt.trigger_type_ref.clone(),
                        uid: String::new(),
                        trigger_type: tt.trigger_type_ref.clone(),
                        parameters: Default::default(),
                        ref_count: 0,
                        description: tt.description.clone(),
                    }
                }
            };
            let trigger_type = repo::<TriggerType>(store)
                .get_by_ref(&trigger.trigger_type)
                .await?;
            let payload = match &trigger_type {
                Some(tt) if !tt.payload_schema.is_empty() => Some(
                    InstanceValidator::new(
                        &Value::Object(tt.payload_schema.clone()),
                        std::path::Path::new(&tt.trigger_type_ref),
                    )
                    .map_err(ServiceError::Schema)?,
                ),
                _ => None,
            };
            Ok(ResolvedTrigger {
                trigger,
                trigger_type,
                payload,
            })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use async_trait::async_trait;

    use super::*;
    use crate::store::{Collection, EmbeddedStore, Result, Write};

    /// Counts the queries that reach the store.
    struct Counting {
        inner: EmbeddedStore,
        finds: AtomicUsize,
    }

    #[async_trait]
    impl Store for Counting {
        async fn get(&self, c: Collection, id: &str) -> Result<Option<Value>> {
            self.finds.fetch_add(1, Ordering::SeqCst);
            self.inner.get(c, id).await
        }
        async fn find(&self, c: Collection, q: &Query) -> Result<Vec<Value>> {
            self.finds.fetch_add(1, Ordering::SeqCst);
            // Slow enough that the concurrent callers all miss together.
            tokio::time::sleep(Duration::from_millis(20)).await;
            self.inner.find(c, q).await
        }
        async fn count(&self, c: Collection, q: &Query) -> Result<u64> {
            self.inner.count(c, q).await
        }
        async fn apply(&self, writes: Vec<Write>) -> Result<()> {
            self.inner.apply(writes).await
        }
        async fn compare_and_set(
            &self,
            c: Collection,
            id: &str,
            field: &str,
            expected: &[Value],
            patch: JsonMap,
        ) -> Result<Option<Value>> {
            self.inner
                .compare_and_set(c, id, field, expected, patch)
                .await
        }
        async fn append(&self, c: Collection, id: &str, values: JsonMap) -> Result<bool> {
            self.inner.append(c, id, values).await
        }
        async fn insert_new(&self, c: Collection, doc: Value) -> Result<bool> {
            self.inner.insert_new(c, doc).await
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_misses_load_once() {
        let store = Arc::new(Counting {
            inner: EmbeddedStore::open_in_memory().expect("store"),
            finds: AtomicUsize::new(0),
        });
        let catalog = Arc::new(Catalog::default());
        let calls: Vec<_> = (0..16)
            .map(|_| {
                let (store, catalog) = (Arc::clone(&store), Arc::clone(&catalog));
                tokio::spawn(async move { catalog.policies(&*store, "core.noop").await })
            })
            .collect();
        for c in calls {
            assert!(c.await.expect("task").expect("policies").is_empty());
        }
        assert_eq!(
            store.finds.load(Ordering::SeqCst),
            1,
            "one load for 16 misses"
        );
        catalog.invalidate();
        catalog
            .policies(&*store, "core.noop")
            .await
            .expect("policies");
        assert_eq!(
            store.finds.load(Ordering::SeqCst),
            2,
            "read again after invalidate"
        );
    }
}
