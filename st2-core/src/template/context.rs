//! What a template sees: [`RenderContext`] (named values), the lazy datastore lookup behind
//! `st2kv.system.*` / `st2kv.user.*`, and the hooks callers plug in ([`KvLookup`],
//! [`Decrypter`]).
//!
//! The datastore is only ever read through [`KvLookup`]; this file does no I/O itself.

use std::fmt;
use std::sync::Arc;

use indexmap::IndexMap;
use minijinja::value::{Enumerator, Object, ObjectRepr, Value as MjValue};
use serde_json::Value as Json;

use crate::model::JsonMap;

/// Name of the hidden context variable carrying the [`Decrypter`] to `decrypt_kv`.
pub(crate) const DECRYPTER_VAR: &str = "__st2_decrypter";

/// Name under which the datastore is exposed to templates.
pub const DATASTORE_VAR: &str = "st2kv";

/// The two datastore scopes templates can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KvScope {
    /// `st2kv.system.<key>`: keys shared by everyone.
    System,
    /// `st2kv.user.<key>`: keys of the user the template is rendered for.
    User,
}

impl KvScope {
    /// The name used after `st2kv.` (`system` or `user`).
    pub fn as_str(self) -> &'static str {
        match self {
            KvScope::System => "system",
            KvScope::User => "user",
        }
    }
}

/// One datastore value as a template sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvValue {
    /// The stored text (ciphertext when `encrypted`).
    pub value: String,
    /// The key is marked secret.
    pub secret: bool,
    /// `value` is ciphertext; templates see it as is unless `| decrypt_kv` is applied.
    pub encrypted: bool,
}

impl KvValue {
    /// A plain, non-secret value.
    pub fn plain(value: impl Into<String>) -> Self {
        KvValue {
            value: value.into(),
            secret: false,
            encrypted: false,
        }
    }
}

/// Reads datastore keys for templates. Implemented over the store by the service layer; the
/// template module only calls it when a `st2kv.*` value is actually rendered or used.
pub trait KvLookup: Send + Sync {
    /// The value of `key` in `scope`; for [`KvScope::User`], `user` is the owner (no user:
    /// nothing is found). `None` when the key does not exist (it renders as `""`).
    fn get(&self, scope: KvScope, user: Option<&str>, key: &str) -> Option<KvValue>;
}

/// Decrypts datastore ciphertext for the `decrypt_kv` filter.
pub trait Decrypter: Send + Sync {
    /// The plaintext of `ciphertext`, or why it could not be decrypted.
    fn decrypt(&self, ciphertext: &str) -> Result<String, String>;
}

/// A [`KvLookup`] over a fixed map, for tests and tools: `(scope, user, key) → value`.
#[derive(Debug, Clone, Default)]
pub struct StaticKv {
    entries: Vec<(KvScope, Option<String>, String, KvValue)>,
}

impl StaticKv {
    /// An empty datastore.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a `st2kv.system` key.
    pub fn system(mut self, key: impl Into<String>, value: KvValue) -> Self {
        self.entries
            .push((KvScope::System, None, key.into(), value));
        self
    }

    /// Adds a `st2kv.user` key owned by `user`.
    pub fn user(mut self, user: impl Into<String>, key: impl Into<String>, value: KvValue) -> Self {
        self.entries
            .push((KvScope::User, Some(user.into()), key.into(), value));
        self
    }
}

impl KvLookup for StaticKv {
    fn get(&self, scope: KvScope, user: Option<&str>, key: &str) -> Option<KvValue> {
        self.entries
            .iter()
            .find(|(s, u, k, _)| {
                *s == scope && k == key && (scope == KvScope::System || u.as_deref() == user)
            })
            .map(|(_, _, _, v)| v.clone())
    }
}

/// The named values a template is rendered with, plus the optional datastore and decrypter.
///
/// Built once and reused: values are converted to template values when added, so rendering
/// many templates against one context (a rule's criteria and parameters against one trigger
/// instance) converts the payload once. Cloning is cheap (shared).
///
/// ```
/// use st2_core::template::{RenderContext, TemplateEngine};
/// let ctx = RenderContext::new().with("trigger", serde_json::json!({"n": 1}));
/// let out = TemplateEngine::new().render_str("{{ trigger.n }}", &ctx).unwrap();
/// assert_eq!(out, "1");
/// ```
#[derive(Clone, Default)]
pub struct RenderContext {
    vars: Arc<Vars>,
}

impl fmt::Debug for RenderContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RenderContext")
            .field("names", &self.vars.map.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl RenderContext {
    /// An empty context.
    pub fn new() -> Self {
        Self::default()
    }

    /// A context whose names are the keys of a JSON object (anything else gives an empty
    /// context).
    pub fn from_json(value: &Json) -> Self {
        let mut ctx = Self::new();
        if let Json::Object(map) = value {
            for (name, v) in map {
                ctx.set(name.clone(), v);
            }
        }
        ctx
    }

    /// Adds (or replaces) `name`.
    pub fn with(mut self, name: impl Into<String>, value: Json) -> Self {
        self.set(name, &value);
        self
    }

    /// Adds (or replaces) `name` in place.
    pub fn set(&mut self, name: impl Into<String>, value: &Json) {
        self.set_value(name.into(), MjValue::from_serialize(value));
    }

    /// Exposes the datastore as `st2kv.system.*` and `st2kv.user.*`; `user` owns the
    /// `st2kv.user` keys (StackStorm: the execution's `api_user` or `user`, else the system user).
    pub fn with_kv(mut self, lookup: Arc<dyn KvLookup>, user: Option<String>) -> Self {
        let root = KvRoot {
            store: Arc::new(KvStore { lookup, user }),
        };
        self.set_value(DATASTORE_VAR.into(), MjValue::from_object(root));
        self
    }

    /// Lets `decrypt_kv` decrypt ciphertext.
    pub fn with_decrypter(mut self, decrypter: Arc<dyn Decrypter>) -> Self {
        self.set_value(
            DECRYPTER_VAR.into(),
            MjValue::from_object(DecrypterHandle(decrypter)),
        );
        self
    }

    /// Whether `name` is defined.
    pub fn contains(&self, name: &str) -> bool {
        self.vars.map.contains_key(name)
    }

    /// Names defined in this context, in insertion order (hidden helper variables excluded).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.vars
            .map
            .keys()
            .map(String::as_str)
            .filter(|n| *n != DECRYPTER_VAR)
    }

    pub(crate) fn set_value(&mut self, name: String, value: MjValue) {
        Arc::make_mut(&mut self.vars).map.insert(name, value);
    }

    /// The root value templates are rendered with.
    pub(crate) fn root(&self) -> MjValue {
        MjValue::from_dyn_object(self.vars.clone())
    }
}

impl From<&Json> for RenderContext {
    fn from(value: &Json) -> Self {
        RenderContext::from_json(value)
    }
}

impl From<&JsonMap> for RenderContext {
    fn from(map: &JsonMap) -> Self {
        let mut ctx = RenderContext::new();
        for (name, v) in map {
            ctx.set(name.clone(), v);
        }
        ctx
    }
}

/// The context's variables as a template map.
#[derive(Debug, Clone, Default)]
struct Vars {
    map: IndexMap<String, MjValue>,
}

impl Object for Vars {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &MjValue) -> Option<MjValue> {
        self.map.get(key.as_str()?).cloned()
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Values(
            self.map
                .keys()
                .filter(|k| *k != DECRYPTER_VAR)
                .map(|k| MjValue::from(k.as_str()))
                .collect(),
        )
    }
}

/// Carries the [`Decrypter`] to the `decrypt_kv` filter.
pub(crate) struct DecrypterHandle(pub(crate) Arc<dyn Decrypter>);

impl fmt::Debug for DecrypterHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Decrypter")
    }
}

impl Object for DecrypterHandle {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }
}

/// The datastore and the user `st2kv.user` keys belong to.
struct KvStore {
    lookup: Arc<dyn KvLookup>,
    user: Option<String>,
}

impl fmt::Debug for KvStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KvStore").field("user", &self.user).finish()
    }
}

/// `st2kv`: a map with `system` and `user`.
#[derive(Debug)]
struct KvRoot {
    store: Arc<KvStore>,
}

impl Object for KvRoot {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &MjValue) -> Option<MjValue> {
        let scope = match key.as_str()? {
            "system" => KvScope::System,
            "user" => KvScope::User,
            _ => return None,
        };
        Some(MjValue::from_object(KvNode {
            store: self.store.clone(),
            scope,
            key: String::new(),
        }))
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Str(&["system", "user"])
    }
}

/// A lazy datastore lookup: `st2kv.system.a.b` (or `st2kv.system["a"]["b"]`) is the node for
/// key `a.b`; the datastore is read only when the node is rendered or its value used, and a
/// missing key reads as `""` (StackStorm's `KeyValueLookup`).
#[derive(Debug)]
pub(crate) struct KvNode {
    store: Arc<KvStore>,
    scope: KvScope,
    key: String,
}

impl KvNode {
    /// The stored value, if the key exists.
    pub(crate) fn resolve(&self) -> Option<KvValue> {
        if self.key.is_empty() {
            return None;
        }
        let user = match self.scope {
            KvScope::System => None,
            KvScope::User => Some(self.store.user.as_deref()?),
        };
        self.store.lookup.get(self.scope, user, &self.key)
    }

    /// The text a template sees: the stored value (ciphertext if encrypted) or `""`.
    pub(crate) fn text(&self) -> String {
        self.resolve().map(|v| v.value).unwrap_or_default()
    }

    /// `st2kv.<scope>.<key>`, for messages.
    pub(crate) fn full_name(&self) -> String {
        format!("{DATASTORE_VAR}.{}.{}", self.scope.as_str(), self.key)
    }
}

impl Object for KvNode {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }

    fn get_value(self: &Arc<Self>, key: &MjValue) -> Option<MjValue> {
        let part = match key.as_str() {
            Some(s) => s.to_string(),
            None if key.is_number() => key.to_string(),
            None => return None,
        };
        let key = if self.key.is_empty() {
            part
        } else {
            format!("{}.{part}", self.key)
        };
        Some(MjValue::from_object(KvNode {
            store: self.store.clone(),
            scope: self.scope,
            key,
        }))
    }

    fn is_true(self: &Arc<Self>) -> bool {
        !self.text().is_empty()
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text())
    }
}

/// If `value` is a datastore lookup, its text; otherwise `None`.
pub(crate) fn kv_text(value: &MjValue) -> Option<String> {
    value.downcast_object_ref::<KvNode>().map(KvNode::text)
}
