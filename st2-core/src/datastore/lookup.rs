//! Template access to the datastore: [`DatastoreLookup`] implements the template module's
//! synchronous [`KvLookup`] from an in-memory snapshot, and [`SymmetricKey`] implements its
//! [`Decrypter`] (the `decrypt_kv` filter).
//!
//! Why a snapshot and not `block_in_place` + `Handle::block_on` on the store: templates render
//! inside async tasks, `block_in_place` panics on a current-thread runtime (which every
//! `#[tokio::test]` uses) and stalls a worker per lookup; key-value collections are small. The
//! snapshot is loaded by [`Datastore::lookup`](super::Datastore::lookup), updated by every write
//! through the [`Datastore`](super::Datastore), and reloaded by
//! [`Datastore::refresh_cache`](super::Datastore::refresh_cache). Expiry is checked at read time.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{PoisonError, RwLock};

use chrono::{DateTime, Utc};

use super::service::{expires_at, NowFn};
use super::{Scope, SymmetricKey};
use crate::model::KeyValuePair;
use crate::template::{Decrypter, KvLookup, KvScope, KvValue};

/// One cached pair.
#[derive(Debug, Clone)]
struct CachedKv {
    value: String,
    secret: bool,
    expires: Option<DateTime<Utc>>,
}

/// The snapshot: `(scope, stored name) → pair`.
#[derive(Debug, Default)]
pub(crate) struct KvCache {
    loaded: AtomicBool,
    entries: RwLock<HashMap<(Scope, String), CachedKv>>,
}

impl KvCache {
    pub(crate) fn is_loaded(&self) -> bool {
        self.loaded.load(Ordering::Acquire)
    }

    pub(crate) fn replace_all(&self, pairs: &[KeyValuePair]) {
        let map = pairs
            .iter()
            .filter_map(|p| Some(((p.scope.parse::<Scope>().ok()?, p.name.clone()), cached(p))))
            .collect();
        *self.entries.write().unwrap_or_else(PoisonError::into_inner) = map;
        self.loaded.store(true, Ordering::Release);
    }

    /// Records a write; ignored until the snapshot is loaded (a partial snapshot would answer
    /// "missing" for keys it never saw).
    pub(crate) fn upsert(&self, pair: &KeyValuePair) {
        if !self.is_loaded() {
            return;
        }
        if let Ok(scope) = pair.scope.parse::<Scope>() {
            self.entries
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .insert((scope, pair.name.clone()), cached(pair));
        }
    }

    pub(crate) fn remove(&self, scope: Scope, stored_name: &str) {
        self.entries
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&(scope, stored_name.to_string()));
    }

    fn get(&self, scope: Scope, stored_name: &str, now: DateTime<Utc>) -> Option<KvValue> {
        let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
        let hit = entries.get(&(scope, stored_name.to_string()))?;
        if hit.expires.is_some_and(|t| t <= now) {
            return None;
        }
        Some(KvValue {
            value: hit.value.clone(),
            secret: hit.secret,
            encrypted: hit.secret,
        })
    }
}

fn cached(p: &KeyValuePair) -> CachedKv {
    CachedKv {
        value: p.value.clone(),
        secret: p.secret,
        expires: expires_at(p),
    }
}

/// The datastore as templates read it (see the module docs for how it stays current).
/// Secret values are returned as stored (ciphertext, `encrypted: true`); templates decrypt
/// them with `| decrypt_kv`.
#[derive(Clone)]
pub struct DatastoreLookup {
    cache: std::sync::Arc<KvCache>,
    now: NowFn,
}

impl std::fmt::Debug for DatastoreLookup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatastoreLookup").finish_non_exhaustive()
    }
}

impl DatastoreLookup {
    pub(crate) fn new(cache: std::sync::Arc<KvCache>, now: NowFn) -> Self {
        DatastoreLookup { cache, now }
    }
}

impl KvLookup for DatastoreLookup {
    fn get(&self, scope: KvScope, user: Option<&str>, key: &str) -> Option<KvValue> {
        let scope = match scope {
            KvScope::System => Scope::System,
            KvScope::User => Scope::User,
        };
        let stored = scope.stored_name(key, user).ok()?;
        self.cache.get(scope, &stored, (self.now)())
    }
}

impl Decrypter for SymmetricKey {
    fn decrypt(&self, ciphertext: &str) -> Result<String, String> {
        SymmetricKey::decrypt(self, ciphertext).map_err(|e| e.to_string())
    }
}
