//! Registration: writes loaded packs into the store, like StackStorm's `st2ctl reload`.
//!
//! A registration first loads and validates every pack it covers, then checks references across
//! packs (runner types, trigger types, policy types), and only then writes — everything in one
//! atomic [`Store::apply`] batch. Re-registering is idempotent: resources keep their ids, and
//! resources of a pack that are gone from disk are deleted in the same batch.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::builtin;
use super::loader::{is_valid_pack_ref, load_pack, ContentTypes, LoadedPack};
use super::{PackError, PackPaths};
use crate::model::{
    Config, Document, JsonMap, Pack, Policy, PolicyType, ResourceRef, Rule, RunnerType, Trigger,
    TriggerType, RUNNER_PARAM_OVERRIDABLE_ATTRS,
};
use crate::rules::is_known_operator;
use crate::schema::{self, ContentError};
use crate::store::{repo, Collection, Query, Repo, Store, Write};

/// How a registration behaves (StackStorm's `st2ctl reload` flags).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterOptions {
    /// Kinds of content to register.
    pub types: ContentTypes,
    /// Abort, writing nothing, when any file is invalid (the default).
    pub fail_on_failure: bool,
    /// Create/update each pack's virtualenv.
    pub setup_virtualenvs: bool,
    /// Python interpreter used for virtualenvs.
    pub python: String,
}

impl Default for RegisterOptions {
    fn default() -> Self {
        Self {
            types: ContentTypes::DEFAULT,
            fail_on_failure: true,
            setup_virtualenvs: false,
            python: "python3".into(),
        }
    }
}

/// What a registration did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegisterReport {
    /// Pack refs registered.
    pub packs: Vec<String>,
    /// Count registered per kind (`actions`, `rules`, ...).
    pub counts: BTreeMap<String, usize>,
    /// Failures skipped because fail-on-failure was off.
    pub failures: Vec<String>,
    /// Pack refs unregistered because their directory is gone.
    pub removed_packs: Vec<String>,
}

impl RegisterReport {
    fn add(&mut self, kind: &str, n: usize) {
        *self.counts.entry(kind.to_string()).or_default() += n;
    }
}

/// Registers pack content into a store.
pub struct Registrar {
    store: Arc<dyn Store>,
    paths: PackPaths,
    opts: RegisterOptions,
}

/// The writes of one registration, built up before anything is applied.
#[derive(Default)]
struct Batch {
    writes: Vec<Write>,
    /// Trigger types known after this batch (ref → doc), for rule validation.
    trigger_types: HashMap<String, TriggerType>,
    /// Triggers to upsert (ref → doc).
    triggers: BTreeMap<String, Trigger>,
}

impl Registrar {
    /// A registrar writing into `store`, reading packs under `paths`.
    pub fn new(store: Arc<dyn Store>, paths: PackPaths, opts: RegisterOptions) -> Self {
        Self { store, paths, opts }
    }

    /// The pack directories under the base paths, by ref (a later base path wins).
    pub fn discover(&self) -> BTreeMap<String, PathBuf> {
        let mut found = BTreeMap::new();
        for base in &self.paths.packs_base_paths {
            let Ok(rd) = std::fs::read_dir(base) else {
                continue;
            };
            let mut dirs: Vec<PathBuf> = rd.filter_map(Result::ok).map(|e| e.path()).collect();
            dirs.sort();
            for d in dirs {
                let hidden = d
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_none_or(|n| n.starts_with('.'));
                if hidden || !d.join("pack.yaml").is_file() {
                    continue;
                }
                let key = super::read_pack_meta(&d)
                    .map(|p| p.pack_ref)
                    .unwrap_or_else(|_| {
                        d.file_name()
                            .map(|n| n.to_string_lossy().into_owned())
                            .unwrap_or_default()
                    });
                found.insert(key, d);
            }
        }
        found
    }

    /// Registers every pack found under the base paths (plus runner and policy types), and
    /// unregisters packs whose directory is gone.
    pub async fn register_all(&self) -> Result<RegisterReport, PackError> {
        let dirs: Vec<PathBuf> = self.discover().into_values().collect();
        let mut report = self.register_dirs(&dirs).await?;
        let on_disk: HashSet<String> = report.packs.iter().cloned().collect();
        let failed: HashSet<String> = self.discover().into_keys().collect();
        for pack in repo::<Pack>(&*self.store).find(&Query::all()).await? {
            if !on_disk.contains(&pack.pack_ref) && !failed.contains(&pack.pack_ref) {
                self.unregister_pack(&pack.pack_ref).await?;
                report.removed_packs.push(pack.pack_ref);
            }
        }
        Ok(report)
    }

    /// Registers the pack at `dir` (validated whole first; written in one atomic batch).
    pub async fn register_pack_dir(&self, dir: &Path) -> Result<RegisterReport, PackError> {
        self.register_dirs(&[dir.to_path_buf()]).await
    }

    /// Registers the packs with these refs, found under the base paths.
    pub async fn register_packs(&self, refs: &[String]) -> Result<RegisterReport, PackError> {
        let found = self.discover();
        let mut dirs = Vec::new();
        for r in refs {
            let d = found.get(r).ok_or_else(|| PackError::NotFound(r.clone()))?;
            dirs.push(d.clone());
        }
        self.register_dirs(&dirs).await
    }

    /// Registers the packs at `dirs` in one atomic batch.
    pub async fn register_dirs(&self, dirs: &[PathBuf]) -> Result<RegisterReport, PackError> {
        let types = self.opts.types;
        let mut report = RegisterReport::default();
        let mut batch = Batch::default();

        if types.runners {
            self.add_builtin_types(&mut batch, &mut report).await?;
        }

        // Load and validate every pack before writing anything.
        let mut loaded: Vec<LoadedPack> = Vec::new();
        for dir in dirs {
            match load_pack(dir, &types) {
                Ok(p) => loaded.push(p),
                Err(e) if self.opts.fail_on_failure => return Err(e),
                Err(e) => {
                    tracing::warn!(dir = %dir.display(), error = %e, "skipping invalid pack");
                    report.failures.push(e.to_string());
                }
            }
        }
        let mut configs = Vec::new();
        for p in &loaded {
            configs.push(if types.configs {
                self.read_config(p)
            } else {
                Ok(None)
            });
        }

        // Trigger types of this batch are visible to rules of this batch.
        for p in &loaded {
            for t in &p.trigger_types {
                batch
                    .trigger_types
                    .insert(t.trigger_type_ref.clone(), t.clone());
            }
        }

        let mut kept = Vec::new();
        for (p, config) in loaded.into_iter().zip(configs) {
            let mut errs = self.check_references(&p, &batch).await?;
            let config = match config {
                Ok(c) => c,
                Err(mut e) => {
                    errs.append(&mut e);
                    None
                }
            };
            if !errs.is_empty() {
                let e = PackError::InvalidContent(errs);
                if self.opts.fail_on_failure {
                    return Err(e);
                }
                report.failures.push(e.to_string());
                continue;
            }
            kept.push((p, config));
        }

        for (p, config) in &kept {
            self.add_pack(&mut batch, p, config.clone(), &mut report)
                .await?;
        }
        self.add_triggers(&mut batch).await?;
        let n = batch.writes.len();
        self.store.apply(batch.writes).await?;
        tracing::info!(packs = report.packs.len(), writes = n, "registered content");

        if self.opts.setup_virtualenvs {
            for (p, _) in &kept {
                let (paths, pack_ref, dir, python) = (
                    self.paths.clone(),
                    p.pack.pack_ref.clone(),
                    p.dir.clone(),
                    self.opts.python.clone(),
                );
                tokio::task::spawn_blocking(move || {
                    super::virtualenv::setup_virtualenv(&paths, &pack_ref, &dir, &python)
                })
                .await
                .map_err(|e| PackError::Install(format!("virtualenv task failed: {e}")))??;
            }
        }
        Ok(report)
    }

    /// Removes every resource of the pack from the store, in one atomic batch.
    pub async fn unregister_pack(&self, pack_ref: &str) -> Result<(), PackError> {
        let mut writes = Vec::new();
        let by_pack = Query::all().eq("pack", pack_ref);
        for c in [
            Collection::Actions,
            Collection::Rules,
            Collection::Sensors,
            Collection::TriggerTypes,
            Collection::Policies,
            Collection::Aliases,
            Collection::Configs,
            Collection::ConfigSchemas,
        ] {
            for doc in self.store.find(c, &by_pack).await? {
                if let Some(id) = doc.get("id").and_then(Value::as_str) {
                    writes.push(Write::Delete {
                        collection: c,
                        id: id.to_string(),
                    });
                }
            }
        }
        // Triggers of the pack's trigger types, and parameterised triggers no rule uses anymore.
        for doc in self.store.find(Collection::Triggers, &by_pack).await? {
            if let Some(id) = doc.get("id").and_then(Value::as_str) {
                writes.push(Write::Delete {
                    collection: Collection::Triggers,
                    id: id.to_string(),
                });
            }
        }
        let mut found = false;
        for doc in self
            .store
            .find(Collection::Packs, &Query::all().eq("ref", pack_ref))
            .await?
        {
            if let Some(id) = doc.get("id").and_then(Value::as_str) {
                found = true;
                writes.push(Write::Delete {
                    collection: Collection::Packs,
                    id: id.to_string(),
                });
            }
        }
        if !found && writes.is_empty() {
            return Err(PackError::NotFound(pack_ref.to_string()));
        }
        self.store.apply(writes).await?;
        self.gc_triggers().await?;
        Ok(())
    }

    /// Deletes parameterised triggers that no rule references anymore.
    async fn gc_triggers(&self) -> Result<(), PackError> {
        delete_unused_triggers(&*self.store).await
    }

    async fn add_builtin_types(
        &self,
        batch: &mut Batch,
        report: &mut RegisterReport,
    ) -> Result<(), PackError> {
        let runners = builtin::runner_types().map_err(|e| PackError::InvalidContent(vec![e]))?;
        let rrepo = repo::<RunnerType>(&*self.store);
        for mut r in runners {
            if let Some(old) = rrepo
                .find_one(Query::all().eq("name", r.name.as_str()))
                .await?
            {
                r.id = old.id;
            }
            batch.writes.push(Repo::<RunnerType>::to_write(&mut r)?);
        }
        report.add("runners", batch.writes.len());
        let prepo = repo::<PolicyType>(&*self.store);
        for mut p in builtin::policy_types() {
            if let Some(old) = prepo
                .find_one(Query::all().eq("ref", p.policy_type_ref.as_str()))
                .await?
            {
                p.id = old.id;
            }
            batch.writes.push(Repo::<PolicyType>::to_write(&mut p)?);
            report.add("policy_types", 1);
        }
        Ok(())
    }

    /// Reads `<configs>/<pack>.yaml`, validating it against the pack's config schema and merging
    /// the schema's defaults.
    fn read_config(&self, p: &LoadedPack) -> Result<Option<Config>, Vec<ContentError>> {
        let file = self.paths.config_file(&p.pack.pack_ref);
        if !file.is_file() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&file).map_err(|e| {
            vec![ContentError::new(
                &file,
                "",
                format!("cannot read file: {e}"),
            )]
        })?;
        let values = match schema::parse_yaml(&file, &text).map_err(|e| vec![e])? {
            Value::Object(m) => m,
            Value::Null => JsonMap::new(),
            _ => {
                return Err(vec![ContentError::new(
                    &file,
                    "",
                    "expected a mapping of config values",
                )])
            }
        };
        let values = match &p.config_schema {
            Some(s) => schema::validate_config(&file, &s.attributes, &values)?,
            None => values,
        };
        Ok(Some(Config {
            id: String::new(),
            pack: p.pack.pack_ref.clone(),
            values,
        }))
    }

    /// Checks what the JSON Schemas cannot: that runner types, trigger types and policy types a
    /// pack refers to exist, that runner parameters are only overridden where allowed, and that
    /// rule criteria use known operators.
    async fn check_references(
        &self,
        p: &LoadedPack,
        batch: &Batch,
    ) -> Result<Vec<ContentError>, PackError> {
        let mut errs = Vec::new();
        let runners: HashMap<String, RunnerType> = {
            let mut m: HashMap<String, RunnerType> = repo::<RunnerType>(&*self.store)
                .find(&Query::all())
                .await?
                .into_iter()
                .map(|r| (r.name.clone(), r))
                .collect();
            for w in &batch.writes {
                if let Write::Put {
                    collection: Collection::RunnerTypes,
                    doc,
                } = w
                {
                    if let Ok(r) = serde_json::from_value::<RunnerType>(doc.clone()) {
                        m.insert(r.name.clone(), r);
                    }
                }
            }
            m
        };
        for a in &p.actions {
            let file = p.dir.join(a.metadata_file.as_deref().unwrap_or(""));
            let Some(runner) = runners.get(&a.runner_type) else {
                let mut known: Vec<&String> = runners.keys().collect();
                known.sort();
                errs.push(ContentError::new(
                    &file,
                    "/runner_type",
                    format!(
                        "unknown runner type \"{}\" (known: {})",
                        a.runner_type,
                        known
                            .iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
                continue;
            };
            for (name, spec) in &a.parameters {
                let Some(rspec) = runner.runner_parameters.get(name) else {
                    continue;
                };
                let (Ok(Value::Object(ov)), Ok(Value::Object(rv))) =
                    (serde_json::to_value(spec), serde_json::to_value(rspec))
                else {
                    continue;
                };
                for (attr, val) in &ov {
                    if RUNNER_PARAM_OVERRIDABLE_ATTRS.contains(&attr.as_str()) {
                        continue;
                    }
                    if rv.get(attr) != Some(val) {
                        errs.push(ContentError::new(
                            &file,
                            format!("/parameters/{name}/{attr}"),
                            format!(
                                "the attribute \"{attr}\" of runner parameter \"{name}\" cannot be overridden \
                                 (only {} can)",
                                RUNNER_PARAM_OVERRIDABLE_ATTRS.join(", ")
                            ),
                        ));
                    }
                }
            }
        }

        for r in &p.rules {
            let file = p.dir.join(r.metadata_file.as_deref().unwrap_or(""));
            errs.append(&mut check_rule(&*self.store, r, &file, &batch.trigger_types).await?);
        }

        for pol in &p.policies {
            let file = p.dir.join(pol.metadata_file.as_deref().unwrap_or(""));
            errs.append(&mut check_policy(pol, &file));
        }
        Ok(errs)
    }

    /// Adds the writes registering one pack: upserts with stable ids, deletes of resources gone
    /// from disk.
    async fn add_pack(
        &self,
        batch: &mut Batch,
        p: &LoadedPack,
        config: Option<Config>,
        report: &mut RegisterReport,
    ) -> Result<(), PackError> {
        let types = self.opts.types;
        let pref = p.pack.pack_ref.as_str();
        if !is_valid_pack_ref(pref) {
            return Err(PackError::Install(format!("invalid pack ref \"{pref}\"")));
        }
        let mut pack = p.pack.clone();
        if let Some(old) = repo::<Pack>(&*self.store).get_by_ref(pref).await? {
            pack.id = old.id;
        }
        batch.writes.push(Repo::<Pack>::to_write(&mut pack)?);
        report.packs.push(pref.to_string());

        if types.actions {
            self.sync_kind(batch, pref, p.actions.clone(), "actions", report)
                .await?;
        }
        if types.triggers || types.sensors {
            // Trigger types come from triggers/ and from sensors; both flags cover them.
            self.sync_kind(
                batch,
                pref,
                p.trigger_types.clone(),
                "trigger_types",
                report,
            )
            .await?;
            for tt in &p.trigger_types {
                if let Some(t) = shadow_trigger(tt) {
                    batch.triggers.insert(t.trigger_ref.clone(), t);
                }
            }
        }
        if types.sensors {
            self.sync_kind(batch, pref, p.sensors.clone(), "sensors", report)
                .await?;
        }
        if types.rules {
            let mut rules = p.rules.clone();
            for r in &mut rules {
                let t = trigger_for_rule(r, batch);
                r.trigger.trigger_ref = Some(t.trigger_ref.clone());
                batch.triggers.entry(t.trigger_ref.clone()).or_insert(t);
            }
            self.sync_kind(batch, pref, rules, "rules", report).await?;
        }
        if types.policies {
            self.sync_kind(batch, pref, p.policies.clone(), "policies", report)
                .await?;
        }
        if types.aliases {
            self.sync_kind(batch, pref, p.aliases.clone(), "aliases", report)
                .await?;
        }
        if types.configs {
            let schemas: Vec<_> = p.config_schema.iter().cloned().collect();
            self.sync_by_pack(batch, pref, schemas, "config_schemas", report)
                .await?;
            let configs: Vec<_> = config.into_iter().collect();
            self.sync_by_pack(batch, pref, configs, "configs", report)
                .await?;
        }
        Ok(())
    }

    /// Upserts `items` (keyed by ref, ids kept) and deletes the pack's other documents of that kind.
    async fn sync_kind<T: Document + DeserializeOwned>(
        &self,
        batch: &mut Batch,
        pack_ref: &str,
        items: Vec<T>,
        kind: &str,
        report: &mut RegisterReport,
    ) -> Result<(), PackError> {
        let existing = self
            .store
            .find(T::COLLECTION, &Query::all().eq("pack", pack_ref))
            .await?;
        let mut old_ids: HashMap<String, String> = HashMap::new();
        for doc in existing {
            if let (Some(r), Some(id)) = (
                doc.get("ref").and_then(Value::as_str),
                doc.get("id").and_then(Value::as_str),
            ) {
                old_ids.insert(r.to_string(), id.to_string());
            }
        }
        report.add(kind, items.len());
        for mut item in items {
            let r = item.reference().unwrap_or_default();
            if let Some(id) = old_ids.remove(&r) {
                item.set_id(id);
            }
            batch.writes.push(Repo::<T>::to_write(&mut item)?);
        }
        for (_, id) in old_ids {
            batch.writes.push(Write::Delete {
                collection: T::COLLECTION,
                id,
            });
        }
        Ok(())
    }

    /// Upserts the (at most one) per-pack document of a kind keyed by `pack`.
    async fn sync_by_pack<T: Document>(
        &self,
        batch: &mut Batch,
        pack_ref: &str,
        items: Vec<T>,
        kind: &str,
        report: &mut RegisterReport,
    ) -> Result<(), PackError> {
        let existing = self
            .store
            .find(T::COLLECTION, &Query::all().eq("pack", pack_ref))
            .await?;
        let mut old: Vec<String> = existing
            .iter()
            .filter_map(|d| d.get("id").and_then(Value::as_str).map(str::to_string))
            .collect();
        report.add(kind, items.len());
        for mut item in items {
            if let Some(id) = old.pop() {
                item.set_id(id);
            }
            batch.writes.push(Repo::<T>::to_write(&mut item)?);
        }
        for id in old {
            batch.writes.push(Write::Delete {
                collection: T::COLLECTION,
                id,
            });
        }
        Ok(())
    }

    /// Adds the trigger upserts collected from trigger types and rules, keeping existing ids.
    async fn add_triggers(&self, batch: &mut Batch) -> Result<(), PackError> {
        let trepo = repo::<Trigger>(&*self.store);
        let triggers = std::mem::take(&mut batch.triggers);
        for (r, mut t) in triggers {
            if let Some(old) = trepo.get_by_ref(&r).await? {
                t.id = old.id;
                t.ref_count = t.ref_count.max(old.ref_count);
            }
            batch.writes.push(Repo::<Trigger>::to_write(&mut t)?);
        }
        Ok(())
    }
}

/// A stable short hash of trigger parameters (canonical JSON, keys sorted).
fn params_hash(params: &JsonMap) -> String {
    let canonical: BTreeMap<&String, &Value> = params.iter().collect();
    let text = serde_json::to_string(&canonical).unwrap_or_default();
    let digest = Sha256::digest(text.as_bytes());
    hex::encode(&digest[..16])
}

/// The trigger a rule listens on: the shadow trigger of its type when it gives no parameters,
/// otherwise one shared by every rule with the same type and parameters.
fn trigger_for_rule(r: &Rule, batch: &Batch) -> Trigger {
    let tref = ResourceRef::parse(&r.trigger.trigger_type).unwrap_or_else(|| {
        ResourceRef::new(crate::model::DEFAULT_PACK, r.trigger.trigger_type.clone())
    });
    let params = &r.trigger.parameters;
    let hash = params_hash(params);
    let name = if params.is_empty() {
        tref.name.clone()
    } else {
        let h = &hash;
        format!(
            "{}-{}-{}-{}-{}",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        )
    };
    Trigger {
        id: String::new(),
        name: name.clone(),
        pack: tref.pack.clone(),
        trigger_ref: format!("{}.{}", tref.pack, name),
        uid: format!("trigger:{}:{}:{}", tref.pack, tref.name, hash),
        trigger_type: r.trigger.trigger_type.clone(),
        parameters: params.clone(),
        ref_count: 1,
        description: batch
            .trigger_types
            .get(&r.trigger.trigger_type)
            .and_then(|t| t.description.clone()),
    }
}

/// StackStorm's "shadow trigger": the one trigger of a trigger type without parameters
/// (`None` when the type takes parameters; rules then make their own triggers).
pub fn shadow_trigger(tt: &TriggerType) -> Option<Trigger> {
    if !tt.parameters_schema.is_empty() {
        return None;
    }
    Some(Trigger {
        id: String::new(),
        name: tt.name.clone(),
        pack: tt.pack.clone(),
        trigger_ref: tt.trigger_type_ref.clone(),
        uid: format!(
            "trigger:{}:{}:{}",
            tt.pack,
            tt.name,
            params_hash(&JsonMap::new())
        ),
        trigger_type: tt.trigger_type_ref.clone(),
        parameters: JsonMap::new(),
        ref_count: 0,
        description: tt.description.clone(),
    })
}

/// Checks a rule's references as registration does: its trigger type exists (in `known`, the
/// trigger types of the batch being registered, or in the store), its trigger parameters are
/// valid against the type's `parameters_schema`, and its criteria use known operators.
pub async fn check_rule(
    store: &dyn Store,
    r: &Rule,
    file: &Path,
    known: &HashMap<String, TriggerType>,
) -> Result<Vec<ContentError>, PackError> {
    let mut errs = Vec::new();
    let tref = &r.trigger.trigger_type;
    let tt = match known.get(tref) {
        Some(t) => Some(t.clone()),
        None => repo::<TriggerType>(store).get_by_ref(tref).await?,
    };
    match tt {
        None => errs.push(ContentError::new(
            file,
            "/trigger/type",
            format!("trigger type \"{tref}\" is not registered"),
        )),
        Some(tt) if !tt.parameters_schema.is_empty() => {
            let schema = Value::Object(tt.parameters_schema.clone());
            if let Err(mut e) = schema::validate_instance(
                &schema,
                file,
                &Value::Object(r.trigger.parameters.clone()),
            ) {
                for x in &mut e {
                    x.field = format!("/trigger/parameters{}", x.field);
                }
                errs.append(&mut e);
            }
        }
        Some(_) => {}
    }
    for (key, crit) in &r.criteria {
        if let Some(op) = crit.get("type").and_then(Value::as_str) {
            if !is_known_operator(op) {
                errs.push(ContentError::new(
                    file,
                    format!("/criteria/{key}/type"),
                    format!("unknown criteria operator \"{op}\""),
                ));
            }
        }
    }
    Ok(errs)
}

/// Checks a policy as registration does: its policy type exists and its parameters are valid
/// against the type's parameter specs.
pub fn check_policy(pol: &Policy, file: &Path) -> Vec<ContentError> {
    let mut errs = Vec::new();
    let known_policy_types: HashMap<String, PolicyType> = builtin::policy_types()
        .into_iter()
        .map(|p| (p.policy_type_ref.clone(), p))
        .collect();
    if let Some(pt) = known_policy_types.get(&pol.policy_type) {
        let schema = serde_json::json!({
            "type": "object",
            "properties": pt.parameters,
            "additionalProperties": false,
        });
        if let Err(mut e) =
            schema::validate_instance(&schema, file, &Value::Object(pol.parameters.clone()))
        {
            for x in &mut e {
                x.field = format!("/parameters{}", x.field);
            }
            errs.append(&mut e);
        }
    } else {
        let mut known: Vec<&String> = known_policy_types.keys().collect();
        known.sort();
        errs.push(ContentError::new(
            file,
            "/policy_type",
            format!(
                "unknown policy type \"{}\" (known: {})",
                pol.policy_type,
                known
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    errs
}

/// Validates a rule against the store ([`check_rule`]) and returns the writes saving it with
/// the trigger it listens on, made or shared exactly as registration does (the shadow trigger
/// of its type, or one trigger per type and parameters, its id kept when it exists). Sets
/// `rule.trigger.ref` and gives the rule an id when it has none. Nothing is written.
pub async fn rule_writes(
    store: &dyn Store,
    rule: &mut Rule,
    file: &Path,
) -> Result<Vec<Write>, PackError> {
    let errs = check_rule(store, rule, file, &HashMap::new()).await?;
    if !errs.is_empty() {
        return Err(PackError::InvalidContent(errs));
    }
    let mut batch = Batch::default();
    if let Some(tt) = repo::<TriggerType>(store)
        .get_by_ref(&rule.trigger.trigger_type)
        .await?
    {
        batch.trigger_types.insert(tt.trigger_type_ref.clone(), tt);
    }
    let mut trigger = trigger_for_rule(rule, &batch);
    rule.trigger.trigger_ref = Some(trigger.trigger_ref.clone());
    if let Some(old) = repo::<Trigger>(store)
        .get_by_ref(&trigger.trigger_ref)
        .await?
    {
        trigger.id = old.id;
        trigger.ref_count = trigger.ref_count.max(old.ref_count);
    }
    Ok(vec![
        Repo::<Trigger>::to_write(&mut trigger)?,
        Repo::<Rule>::to_write(rule)?,
    ])
}

/// Deletes parameterised triggers that no rule references anymore (after rules are removed or
/// changed).
pub async fn delete_unused_triggers(store: &dyn Store) -> Result<(), PackError> {
    let rules = repo::<Rule>(store).find(&Query::all()).await?;
    let used: HashSet<String> = rules
        .iter()
        .filter_map(|r| r.trigger.trigger_ref.clone())
        .collect();
    let mut writes = Vec::new();
    for t in repo::<Trigger>(store).find(&Query::all()).await? {
        if !t.parameters.is_empty() && !used.contains(&t.trigger_ref) {
            writes.push(Write::Delete {
                collection: Collection::Triggers,
                id: t.id,
            });
        }
    }
    if !writes.is_empty() {
        store.apply(writes).await?;
    }
    Ok(())
}
