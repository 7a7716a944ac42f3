//! [`Datastore`]: key-value pairs over the store, with encryption, TTLs and change events.
//!
//! The only file of the datastore that touches the store. Writes are serialised through one
//! async mutex so a write's events come out in write order and the in-memory lookup snapshot
//! never misses one.

use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

use super::lookup::KvCache;
use super::{
    to_api_json, uid, DatastoreError, DatastoreLookup, KvEvent, ListKeys, Scope, SetKey,
    SymmetricKey, KEY_SEPARATOR,
};
use crate::model::KeyValuePair;
use crate::store::{Collection, Query, Store, Write};

/// The clock the datastore reads for TTLs (tests pass a fixed one).
pub type NowFn = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// Where change events go.
type EventSink = Arc<dyn Fn(KvEvent) + Send + Sync>;

/// Key-value pairs over an [`Arc<dyn Store>`]: StackStorm's datastore service.
///
/// Cheap to clone; clones share the write lock, the lookup snapshot and the event callback.
///
/// ```
/// # let rt = tokio::runtime::Runtime::new().unwrap();
/// # rt.block_on(async {
/// use std::sync::Arc;
/// use st2_core::datastore::{Datastore, Scope, SetKey};
/// use st2_core::store::EmbeddedStore;
///
/// let store = Arc::new(EmbeddedStore::open_in_memory().unwrap());
/// let ds = Datastore::new(store);
/// ds.set(SetKey::new("api_url", "http://x")).await.unwrap();
/// let got = ds.get("api_url", Scope::System, None, false).await.unwrap().unwrap();
/// assert_eq!(got.value, "http://x");
/// # });
/// ```
#[derive(Clone)]
pub struct Datastore {
    store: Arc<dyn Store>,
    /// `keyvalue.encryption_key_path`'s key; secrets cannot be written or decrypted without it.
    key: Option<Arc<SymmetricKey>>,
    /// The caller's hook for `core.st2.key_value_pair.*` (the dispatch is someone else's).
    events: Option<EventSink>,
    now: NowFn,
    /// Serialises read-modify-write sequences (and orders their events).
    write_lock: Arc<Mutex<()>>,
    /// Snapshot behind [`DatastoreLookup`], loaded on first use.
    cache: Arc<KvCache>,
}

impl std::fmt::Debug for Datastore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Datastore")
            .field("key", &self.key)
            .field("events", &self.events.is_some())
            .finish_non_exhaustive()
    }
}

impl Datastore {
    /// A datastore without a crypto key (secrets are refused), events or fake clock.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Datastore {
            store,
            key: None,
            events: None,
            now: Arc::new(Utc::now),
            write_lock: Arc::new(Mutex::new(())),
            cache: Arc::new(KvCache::default()),
        }
    }

    /// Sets the crypto key secrets are encrypted with.
    pub fn with_key(mut self, key: SymmetricKey) -> Self {
        self.key = Some(Arc::new(key));
        self
    }

    /// Reports every change to `sink`, in write order, after the write is stored.
    pub fn with_events(mut self, sink: impl Fn(KvEvent) + Send + Sync + 'static) -> Self {
        self.events = Some(Arc::new(sink));
        self
    }

    /// Reads time from `now` instead of the system clock (for TTL tests).
    pub fn with_clock(mut self, now: impl Fn() -> DateTime<Utc> + Send + Sync + 'static) -> Self {
        self.now = Arc::new(now);
        self
    }

    /// The crypto key, if one is configured.
    pub fn key(&self) -> Option<&SymmetricKey> {
        self.key.as_deref()
    }

    /// Writes a pair (create or replace), returning it in API shape with secrets encrypted.
    ///
    /// A secret is encrypted with the key; a pre-encrypted value is verified against the key and
    /// stored unchanged. Either without a key is [`DatastoreError::CryptoKeyMissing`]. Emits
    /// `create` (the pair did not exist or had expired) or `update`, then `value_change` when the
    /// value differs from the previous one (secrets are compared decrypted, so re-setting the
    /// same secret is no change even though its ciphertext, with a fresh IV, differs).
    pub async fn set(&self, req: SetKey) -> Result<KeyValuePair, DatastoreError> {
        validate_name(&req.name)?;
        let stored_name = req.scope.stored_name(&req.name, req.user.as_deref())?;
        let secret = req.secret || req.encrypted;
        let value = if req.encrypted {
            let key = self.require_key(&req.name)?;
            key.decrypt(&req.value)
                .map_err(|source| DatastoreError::IntegrityCheckFailed {
                    name: req.name.clone(),
                    source,
                })?;
            req.value.clone()
        } else if secret {
            self.require_key(&req.name)?.encrypt(&req.value)
        } else {
            req.value.clone()
        };
        let now = (self.now)();
        let ttl = req.ttl.filter(|t| *t > 0);
        let expire_timestamp = match ttl {
            Some(t) => {
                let secs = i64::try_from(t).map_err(|_| DatastoreError::InvalidName {
                    name: req.name.clone(),
                    reason: format!("ttl {t} is out of range"),
                })?;
                let at = chrono::TimeDelta::try_seconds(secs)
                    .and_then(|d| now.checked_add_signed(d))
                    .ok_or_else(|| DatastoreError::InvalidName {
                        name: req.name.clone(),
                        reason: format!("ttl {t} is out of range"),
                    })?;
                Some(format_timestamp(at))
            }
            None => None,
        };

        let _guard = self.write_lock.lock().await;
        let existing = self.find_stored(req.scope, &stored_name).await?;
        let live = existing.as_ref().filter(|p| !is_expired(p, now)).cloned();
        let id = existing
            .as_ref()
            .map(|p| p.id.clone())
            .unwrap_or_else(|| stable_id(req.scope, &stored_name));
        let doc = KeyValuePair {
            id,
            name: stored_name.clone(),
            value,
            secret,
            encrypted: secret,
            scope: req.scope.as_str().to_string(),
            user: match req.scope {
                Scope::User => req.user.clone(),
                Scope::System => None,
            },
            ttl,
            expire_timestamp,
            uid: uid(req.scope, &stored_name),
        };
        let json = serde_json::to_value(&doc).map_err(|e| {
            DatastoreError::Store(crate::store::StoreError::InvalidDocument {
                collection: Collection::KeyValuePairs,
                reason: e.to_string(),
            })
        })?;
        self.store
            .apply(vec![Write::Put {
                collection: Collection::KeyValuePairs,
                doc: json,
            }])
            .await?;
        self.cache.upsert(&doc);

        let view = self.view(&doc, false)?;
        match &live {
            None => self.emit(KvEvent::Create {
                object: to_api_json(&view),
            }),
            Some(old) => {
                self.emit(KvEvent::Update {
                    object: to_api_json(&view),
                });
                if self.value_changed(old, &doc) {
                    let old_view = self.view(old, false)?;
                    self.emit(KvEvent::ValueChange {
                        old_object: to_api_json(&old_view),
                        new_object: to_api_json(&view),
                    });
                }
            }
        }
        Ok(view)
    }

    /// One pair in API shape, or `None` when missing or expired. With `decrypt`, a secret's value
    /// is returned in plaintext and `encrypted` is false; without, the ciphertext is returned
    /// with `encrypted: true` (StackStorm's API does the same).
    pub async fn get(
        &self,
        name: &str,
        scope: Scope,
        user: Option<&str>,
        decrypt: bool,
    ) -> Result<Option<KeyValuePair>, DatastoreError> {
        let stored_name = scope.stored_name(name, user)?;
        let now = (self.now)();
        match self.find_stored(scope, &stored_name).await? {
            Some(p) if !is_expired(&p, now) => Ok(Some(self.view(&p, decrypt)?)),
            _ => Ok(None),
        }
    }

    /// Live pairs matching `query`, in API shape, system scope first then by name.
    pub async fn list(&self, query: &ListKeys) -> Result<Vec<KeyValuePair>, DatastoreError> {
        let prefix = query.prefix.clone().unwrap_or_default();
        let user = query.user.as_deref().filter(|u| !u.is_empty());
        let scopes: Vec<Scope> = match query.scope {
            Some(Scope::User) if user.is_none() => {
                return Err(DatastoreError::MissingUser { name: prefix });
            }
            Some(s) => vec![s],
            // `all`: system keys plus the caller's own; no user means system keys only.
            None if user.is_some() => vec![Scope::System, Scope::User],
            None => vec![Scope::System],
        };
        let now = (self.now)();
        let mut out = Vec::new();
        for scope in scopes {
            let stored_prefix = match (scope, user) {
                (Scope::User, Some(u)) => format!("{u}{KEY_SEPARATOR}{prefix}"),
                _ => prefix.clone(),
            };
            let mut q =
                Query::all().is_in("scope", vec![scope.as_str().into(), scope.short().into()]);
            if !stored_prefix.is_empty() {
                q = q.prefix("name", stored_prefix);
            }
            let mut pairs = self.find(&q).await?;
            pairs.retain(|p| !is_expired(p, now));
            pairs.sort_by(|a, b| a.name.cmp(&b.name));
            for p in &pairs {
                out.push(self.view(p, query.decrypt)?);
            }
        }
        Ok(out)
    }

    /// Deletes a live pair; returns it (API shape, secrets encrypted), or `None` when it did not
    /// exist or had expired (an expired leftover is removed silently). Emits `delete`.
    pub async fn delete(
        &self,
        name: &str,
        scope: Scope,
        user: Option<&str>,
    ) -> Result<Option<KeyValuePair>, DatastoreError> {
        let stored_name = scope.stored_name(name, user)?;
        let _guard = self.write_lock.lock().await;
        let Some(existing) = self.find_stored(scope, &stored_name).await? else {
            return Ok(None);
        };
        self.store
            .apply(vec![Write::Delete {
                collection: Collection::KeyValuePairs,
                id: existing.id.clone(),
            }])
            .await?;
        self.cache.remove(scope, &stored_name);
        if is_expired(&existing, (self.now)()) {
            return Ok(None);
        }
        let view = self.view(&existing, false)?;
        self.emit(KvEvent::Delete {
            object: to_api_json(&view),
        });
        Ok(Some(view))
    }

    /// Deletes every expired pair; returns how many. Emits no events: StackStorm's expiry is
    /// MongoDB's TTL index, which fires no trigger either.
    pub async fn purge_expired(&self) -> Result<usize, DatastoreError> {
        let _guard = self.write_lock.lock().await;
        let now = (self.now)();
        let expired: Vec<KeyValuePair> = self
            .find(&Query::all())
            .await?
            .into_iter()
            .filter(|p| is_expired(p, now))
            .collect();
        if expired.is_empty() {
            return Ok(0);
        }
        let writes = expired
            .iter()
            .map(|p| Write::Delete {
                collection: Collection::KeyValuePairs,
                id: p.id.clone(),
            })
            .collect();
        self.store.apply(writes).await?;
        for p in &expired {
            if let Ok(scope) = p.scope.parse::<Scope>() {
                self.cache.remove(scope, &p.name);
            }
        }
        Ok(expired.len())
    }

    /// A synchronous lookup for templates (`{{ st2kv.system.x }}`), served from an in-memory
    /// snapshot of the whole collection: loaded here on first use, then kept current by every
    /// write made through this datastore (and its clones). Writes made by other processes are
    /// seen after [`refresh_cache`](Self::refresh_cache), which a service calls when it learns
    /// of them (for instance on `core.st2.key_value_pair.*` trigger instances).
    pub async fn lookup(&self) -> Result<DatastoreLookup, DatastoreError> {
        if !self.cache.is_loaded() {
            self.refresh_cache().await?;
        }
        Ok(DatastoreLookup::new(self.cache.clone(), self.now.clone()))
    }

    /// Reloads the lookup snapshot from the store.
    pub async fn refresh_cache(&self) -> Result<(), DatastoreError> {
        let _guard = self.write_lock.lock().await;
        let all = self.find(&Query::all()).await?;
        self.cache.replace_all(&all);
        Ok(())
    }

    /// The stored document (expired or not) for a scope and stored name.
    async fn find_stored(
        &self,
        scope: Scope,
        stored_name: &str,
    ) -> Result<Option<KeyValuePair>, DatastoreError> {
        let q = Query::all()
            .eq("name", stored_name)
            .is_in("scope", vec![scope.as_str().into(), scope.short().into()]);
        Ok(self.find(&q).await?.into_iter().next())
    }

    async fn find(&self, q: &Query) -> Result<Vec<KeyValuePair>, DatastoreError> {
        Ok(crate::store::repo::<KeyValuePair>(self.store.as_ref())
            .find(q)
            .await?)
    }

    /// API shape: user-scoped names without the owner prefix, the owner in `user`, and the
    /// value decrypted on request.
    fn view(&self, stored: &KeyValuePair, decrypt: bool) -> Result<KeyValuePair, DatastoreError> {
        let mut v = stored.clone();
        let scope = stored.scope.parse::<Scope>().unwrap_or(Scope::System);
        v.scope = scope.as_str().to_string();
        if scope == Scope::User {
            if let Some((owner, name)) = stored.name.split_once(KEY_SEPARATOR) {
                v.user = Some(owner.to_string());
                v.name = name.to_string();
            }
        }
        v.encrypted = stored.secret;
        if stored.secret && decrypt {
            let key = self.require_key(&v.name)?;
            v.value = key
                .decrypt(&stored.value)
                .map_err(|source| DatastoreError::Decrypt {
                    name: v.name.clone(),
                    source,
                })?;
            v.encrypted = false;
        }
        Ok(v)
    }

    fn value_changed(&self, old: &KeyValuePair, new: &KeyValuePair) -> bool {
        if old.secret != new.secret {
            return true;
        }
        if old.secret {
            if let Some(key) = &self.key {
                if let (Ok(a), Ok(b)) = (key.decrypt(&old.value), key.decrypt(&new.value)) {
                    return a != b;
                }
            }
        }
        old.value != new.value
    }

    fn require_key(&self, name: &str) -> Result<&SymmetricKey, DatastoreError> {
        self.key
            .as_deref()
            .ok_or_else(|| DatastoreError::CryptoKeyMissing {
                name: name.to_string(),
            })
    }

    fn emit(&self, event: KvEvent) {
        tracing::debug!(operation = event.operation(), "datastore change");
        if let Some(sink) = &self.events {
            sink(event);
        }
    }
}

fn validate_name(name: &str) -> Result<(), DatastoreError> {
    if name.is_empty() {
        return Err(DatastoreError::InvalidName {
            name: name.to_string(),
            reason: "must not be empty".into(),
        });
    }
    Ok(())
}

/// StackStorm's `isotime.format(dt, offset=False)`: `2024-05-01T10:00:00.000000Z`.
pub(crate) fn format_timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// When the pair expires, if it has a readable `expire_timestamp`.
pub(crate) fn expires_at(pair: &KeyValuePair) -> Option<DateTime<Utc>> {
    let ts = pair.expire_timestamp.as_deref()?;
    match DateTime::parse_from_rfc3339(ts) {
        Ok(t) => Some(t.with_timezone(&Utc)),
        Err(e) => {
            tracing::warn!(key = %pair.name, expire_timestamp = ts, error = %e,
                "unreadable expire_timestamp; treating the key as never expiring");
            None
        }
    }
}

fn is_expired(pair: &KeyValuePair, now: DateTime<Utc>) -> bool {
    expires_at(pair).is_some_and(|t| t <= now)
}

/// A document id derived from the pair's identity, so two writers racing to create the same key
/// write the same document instead of two.
fn stable_id(scope: Scope, stored_name: &str) -> String {
    let digest = Sha256::digest(uid(scope, stored_name).as_bytes());
    hex::encode(&digest[..12])
}
