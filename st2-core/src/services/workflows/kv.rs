//! `st2kv(key, decrypt)` in workflow expressions, over the platform's datastore lookup.

use std::sync::Arc;

use serde_json::Value;

use crate::services::Ctx;
use crate::template::{Decrypter, KvLookup, KvScope};
use crate::workflow::expr::KvSource;
/// `st2kv(key, decrypt)` over the platform's datastore lookup.
pub(super) struct WorkflowKv {
    kv: Arc<dyn KvLookup>,
    decrypter: Option<Arc<dyn Decrypter>>,
    user: String,
}

impl KvSource for WorkflowKv {
    fn get(&self, key: &str, decrypt: bool) -> Result<Option<Value>, String> {
        let (scope, name) = match key.split_once('.') {
            Some(("system", rest)) => (KvScope::System, rest),
            Some(("user", rest)) => (KvScope::User, rest),
            _ => (KvScope::System, key),
        };
        let Some(v) = self.kv.get(scope, Some(&self.user), name) else {
            return Ok(None);
        };
        if decrypt && v.encrypted {
            let d = self
                .decrypter
                .as_ref()
                .ok_or_else(|| format!("cannot decrypt \"{key}\": no key configured"))?;
            return d.decrypt(&v.value).map(|s| Some(Value::String(s)));
        }
        Ok(Some(Value::String(v.value)))
    }
}

pub(super) fn kv_for(ctx: &Ctx, user: &str) -> Option<Arc<dyn KvSource>> {
    ctx.kv.clone().map(|kv| {
        Arc::new(WorkflowKv {
            kv,
            decrypter: ctx.decrypter.clone(),
            user: user.to_string(),
        }) as Arc<dyn KvSource>
    })
}
