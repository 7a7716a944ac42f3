//! The datastore as Python actions see it (`self.action_service.get_value(...)` etc.): the
//! runners' [`DatastoreAccess`] seam implemented over the platform's [`Datastore`].

use std::sync::Arc;

use async_trait::async_trait;

use crate::datastore::{self, Datastore, ListKeys, Scope, SetKey};
use crate::model::KeyValuePair;
use crate::runners::{DatastoreAccess, DatastoreError, KvKey};
use crate::template::KvScope;

/// [`DatastoreAccess`] backed by the platform datastore.
pub struct ActionDatastore(pub Arc<Datastore>);

fn scope(s: KvScope) -> Scope {
    match s {
        KvScope::System => Scope::System,
        KvScope::User => Scope::User,
    }
}

fn err(e: datastore::DatastoreError) -> DatastoreError {
    match e {
        datastore::DatastoreError::Store(s) => DatastoreError::Backend(s.to_string()),
        other => DatastoreError::Rejected(other.to_string()),
    }
}

fn owner(key: &KvKey) -> Option<&str> {
    (key.scope == KvScope::User).then_some(key.user.as_str())
}

#[async_trait]
impl DatastoreAccess for ActionDatastore {
    async fn get_value(
        &self,
        key: &KvKey,
        decrypt: bool,
    ) -> Result<Option<String>, DatastoreError> {
        let pair = self
            .0
            .get(&key.name, scope(key.scope), owner(key), decrypt)
            .await
            .map_err(err)?;
        Ok(pair.map(|p| p.value))
    }

    async fn set_value(
        &self,
        key: &KvKey,
        value: &str,
        ttl: Option<u64>,
        encrypt: bool,
    ) -> Result<(), DatastoreError> {
        let mut req = SetKey::new(key.name.clone(), value).scope(scope(key.scope));
        if key.scope == KvScope::User {
            req = req.user(key.user.clone());
        }
        if encrypt {
            req = req.secret();
        }
        if let Some(t) = ttl {
            req = req.ttl(t);
        }
        self.0.set(req).await.map_err(err)?;
        Ok(())
    }

    async fn delete_value(&self, key: &KvKey) -> Result<bool, DatastoreError> {
        Ok(self
            .0
            .delete(&key.name, scope(key.scope), owner(key))
            .await
            .map_err(err)?
            .is_some())
    }

    async fn list_values(
        &self,
        s: KvScope,
        user: &str,
        prefix: Option<&str>,
    ) -> Result<Vec<KeyValuePair>, DatastoreError> {
        let q = ListKeys {
            scope: Some(scope(s)),
            user: (s == KvScope::User).then(|| user.to_string()),
            prefix: prefix.map(String::from),
            decrypt: false,
        };
        self.0.list(&q).await.map_err(err)
    }
}
