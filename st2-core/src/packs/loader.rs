//! Reads a pack directory into validated model objects.
//!
//! Every metadata file is parsed, validated against its JSON Schema and turned into a model
//! type; every problem found is collected (not just the first) so an operator sees them all at
//! once. This module reads files only: it never touches the store.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::PackError;
use crate::model::{
    Action, ActionAlias, ConfigSchema, JsonMap, Pack, Policy, ResourceRef, Rule, Sensor,
    TriggerType,
};
use crate::schema::{self, ContentError, MetadataKind};

/// Which kinds of content a registration covers (StackStorm's `--register-*` flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentTypes {
    /// Runner types.
    pub runners: bool,
    /// Actions.
    pub actions: bool,
    /// Rules.
    pub rules: bool,
    /// Sensors (and the trigger types they declare).
    pub sensors: bool,
    /// Trigger types in `triggers/`.
    pub triggers: bool,
    /// Policies.
    pub policies: bool,
    /// Action aliases.
    pub aliases: bool,
    /// Pack configs (`<configs dir>/<pack>.yaml`) and config schemas.
    pub configs: bool,
}

impl ContentTypes {
    /// `--register-all`: everything, policies included.
    pub const ALL: Self = Self {
        runners: true,
        actions: true,
        rules: true,
        sensors: true,
        triggers: true,
        policies: true,
        aliases: true,
        configs: true,
    };

    /// Nothing selected.
    pub const NONE: Self = Self {
        runners: false,
        actions: false,
        rules: false,
        sensors: false,
        triggers: false,
        policies: false,
        aliases: false,
        configs: false,
    };

    /// What `st2ctl reload` does with no flags: everything but policies.
    pub const DEFAULT: Self = Self {
        policies: false,
        ..Self::ALL
    };

    /// Parses StackStorm's type names (`actions`, `rules`, `sensors`, `triggers`, `policies`,
    /// `aliases`, `configs`, `runners`, `all`), as used by `POST /api/v1/packs/register`.
    pub fn from_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        let mut t = Self::NONE;
        for n in names {
            match n {
                "all" => t = Self::ALL,
                "runner" | "runners" => t.runners = true,
                "action" | "actions" => {
                    t.actions = true;
                    t.runners = true;
                }
                "rule" | "rules" => t.rules = true,
                "sensor" | "sensors" => t.sensors = true,
                "trigger" | "triggers" => t.triggers = true,
                "policy" | "policies" => t.policies = true,
                "alias" | "aliases" => t.aliases = true,
                "config" | "configs" => t.configs = true,
                other => return Err(format!("unknown content type \"{other}\"")),
            }
        }
        Ok(t)
    }
}

/// Everything read from one pack directory.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedPack {
    /// pack.yaml.
    pub pack: Pack,
    /// The pack directory.
    pub dir: PathBuf,
    /// Actions (`actions/*.yaml`).
    pub actions: Vec<Action>,
    /// Rules (`rules/*.yaml`).
    pub rules: Vec<Rule>,
    /// Sensors (`sensors/*.yaml`).
    pub sensors: Vec<Sensor>,
    /// Trigger types from `triggers/*.yaml` and from sensors' inline declarations.
    pub trigger_types: Vec<TriggerType>,
    /// Policies (`policies/*.yaml`).
    pub policies: Vec<Policy>,
    /// Aliases (`aliases/*.yaml`).
    pub aliases: Vec<ActionAlias>,
    /// `config.schema.yaml`, if present.
    pub config_schema: Option<ConfigSchema>,
}

/// Runners whose actions need an `entry_point` file.
const RUNNERS_WITH_ENTRY_POINT: &[&str] = &[
    "local-shell-script",
    "remote-shell-script",
    "python-script",
    "orquesta",
    "action-chain",
    "wasm",
    "winrm-ps-script",
];

fn read_yaml(file: &Path) -> Result<Value, ContentError> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| ContentError::new(file, "", format!("cannot read file: {e}")))?;
    schema::parse_yaml(file, &text)
}

/// Reads, validates and decodes one metadata file.
fn read_metadata<T: DeserializeOwned>(
    kind: MetadataKind,
    file: &Path,
    prepare: impl FnOnce(&mut Value),
) -> Result<T, Vec<ContentError>> {
    let mut doc = read_yaml(file).map_err(|e| vec![e])?;
    if !doc.is_object() {
        return Err(vec![ContentError::new(
            file,
            "",
            "expected a YAML mapping at the top level",
        )]);
    }
    prepare(&mut doc);
    schema::validate(kind, file, &doc)?;
    serde_json::from_value(doc).map_err(|e| vec![ContentError::new(file, "", e.to_string())])
}

/// True when `s` is a valid pack ref (`^[a-z0-9_]+$`).
pub fn is_valid_pack_ref(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Reads `pack.yaml` and resolves the pack ref: `ref` field, else the directory name if valid,
/// else `name` if valid, else an error.
pub fn read_pack_meta(dir: &Path) -> Result<Pack, PackError> {
    let file = dir.join("pack.yaml");
    if !file.is_file() {
        return Err(PackError::InvalidContent(vec![ContentError::new(
            &file,
            "",
            "pack.yaml is missing: not a pack directory",
        )]));
    }
    let dir_name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("")
        .to_string();
    let mut pack: Pack = read_metadata(MetadataKind::Pack, &file, |doc| {
        // StackStorm casts unquoted numeric versions (`version: 0.1`) to strings.
        if let Some(v) = doc.get_mut("version") {
            if v.is_number() {
                *v = Value::String(v.to_string());
            }
        }
        if let Some(obj) = doc.as_object_mut() {
            let name_ref = obj.get("name").and_then(Value::as_str).map(str::to_string);
            if !obj.contains_key("ref") {
                let resolved = if is_valid_pack_ref(&dir_name) {
                    Some(dir_name.clone())
                } else {
                    name_ref.filter(|n| is_valid_pack_ref(n))
                };
                if let Some(r) = resolved {
                    obj.insert("ref".into(), Value::String(r));
                }
            }
        }
    })
    .map_err(PackError::InvalidContent)?;
    if pack.pack_ref.is_empty() {
        return Err(PackError::InvalidContent(vec![ContentError::new(
            &file,
            "/ref",
            format!(
                "cannot resolve the pack ref: no \"ref\" field, and neither the directory name \
                 \"{dir_name}\" nor the name \"{}\" matches ^[a-z0-9_]+$",
                pack.name
            ),
        )]));
    }
    pack.uid = format!("pack:{}", pack.pack_ref);
    pack.path = Some(dir.to_string_lossy().into_owned());
    pack.files = list_files(dir);
    Ok(pack)
}

fn list_files(dir: &Path) -> Vec<String> {
    let mut files: Vec<String> = walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_entry(|e| {
            let n = e.file_name().to_string_lossy();
            !(n.starts_with('.') && e.depth() > 0) && n != "__pycache__"
        })
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .filter_map(|e| {
            e.path()
                .strip_prefix(dir)
                .ok()
                .map(|p| p.to_string_lossy().into_owned())
        })
        .collect();
    files.sort();
    files
}

/// The `*.yaml`/`*.yml` files directly inside `dir`, sorted; empty when `dir` is absent.
fn metadata_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = rd
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && matches!(
                    p.extension().and_then(|e| e.to_str()),
                    Some("yaml") | Some("yml")
                )
        })
        .collect();
    files.sort();
    files
}

/// Sets `pack` when absent; rejects a `pack` field that names another pack.
fn claim_pack(doc: &mut Value, pack_ref: &str, errs: &mut Vec<ContentError>, file: &Path) {
    let Some(obj) = doc.as_object_mut() else {
        return;
    };
    match obj.get("pack").and_then(Value::as_str) {
        None => {
            obj.insert("pack".into(), Value::String(pack_ref.to_string()));
        }
        Some(p) if p == pack_ref => {}
        Some(p) => errs.push(ContentError::new(
            file,
            "/pack",
            format!("resource says it is in pack \"{p}\" but is loaded from pack \"{pack_ref}\""),
        )),
    }
}

fn rel(dir: &Path, file: &Path) -> String {
    file.strip_prefix(dir)
        .unwrap_or(file)
        .to_string_lossy()
        .into_owned()
}

/// Loads one kind of resource from `<pack>/<sub>/*.yaml`.
fn load_kind<T: DeserializeOwned>(
    dir: &Path,
    sub: &str,
    kind: MetadataKind,
    pack_ref: &str,
    errs: &mut Vec<ContentError>,
) -> Vec<(PathBuf, T)> {
    let mut out = Vec::new();
    for file in metadata_files(&dir.join(sub)) {
        let mut claim_errs = Vec::new();
        let res = read_metadata::<T>(kind, &file, |doc| {
            claim_pack(doc, pack_ref, &mut claim_errs, &file)
        });
        errs.append(&mut claim_errs);
        match res {
            Ok(v) => out.push((file, v)),
            Err(mut e) => errs.append(&mut e),
        }
    }
    out
}

fn check_ref(file: &Path, field: &str, value: &str, what: &str, errs: &mut Vec<ContentError>) {
    if ResourceRef::parse(value).is_none() {
        errs.push(ContentError::new(
            file,
            field,
            format!("invalid {what} ref \"{value}\": expected \"<pack>.<name>\""),
        ));
    }
}

/// Reads the whole pack at `dir`: pack.yaml plus the content kinds selected by `types`.
/// Every invalid file is reported in one [`PackError::InvalidContent`].
pub fn load_pack(dir: &Path, types: &ContentTypes) -> Result<LoadedPack, PackError> {
    let pack = read_pack_meta(dir)?;
    let pack_ref = pack.pack_ref.clone();
    let mut errs = Vec::new();

    let mut actions = Vec::new();
    if types.actions {
        for (file, mut a) in
            load_kind::<Action>(dir, "actions", MetadataKind::Action, &pack_ref, &mut errs)
        {
            a.action_ref = format!("{}.{}", a.pack, a.name);
            a.uid = format!("action:{}:{}", a.pack, a.name);
            a.metadata_file = Some(rel(dir, &file));
            if RUNNERS_WITH_ENTRY_POINT.contains(&a.runner_type.as_str()) {
                check_entry_point(dir, &file, &a, &mut errs);
            }
            actions.push(a);
        }
    }

    let mut trigger_types = Vec::new();
    if types.triggers {
        for (file, mut t) in load_kind::<TriggerType>(
            dir,
            "triggers",
            MetadataKind::TriggerType,
            &pack_ref,
            &mut errs,
        ) {
            t.trigger_type_ref = format!("{}.{}", t.pack, t.name);
            t.uid = format!("trigger_type:{}:{}", t.pack, t.name);
            t.metadata_file = Some(rel(dir, &file));
            check_preprocessing(&file, "", &t, &mut errs);
            trigger_types.push(t);
        }
    }

    let mut sensors = Vec::new();
    if types.sensors {
        for file in metadata_files(&dir.join("sensors")) {
            match load_sensor(dir, &file, &pack_ref) {
                Ok((s, tts)) => {
                    sensors.push(s);
                    trigger_types.extend(tts);
                }
                Err(mut e) => errs.append(&mut e),
            }
        }
    }

    let mut rules = Vec::new();
    if types.rules {
        for (file, mut r) in
            load_kind::<Rule>(dir, "rules", MetadataKind::Rule, &pack_ref, &mut errs)
        {
            r.metadata_file = Some(rel(dir, &file));
            finish_rule(&mut r, &file, &mut errs);
            rules.push(r);
        }
    }

    let mut policies = Vec::new();
    if types.policies {
        for (file, mut p) in
            load_kind::<Policy>(dir, "policies", MetadataKind::Policy, &pack_ref, &mut errs)
        {
            p.metadata_file = Some(rel(dir, &file));
            finish_policy(&mut p, &file, &mut errs);
            policies.push(p);
        }
    }

    let mut aliases = Vec::new();
    if types.aliases {
        for (file, mut a) in
            load_kind::<ActionAlias>(dir, "aliases", MetadataKind::Alias, &pack_ref, &mut errs)
        {
            a.alias_ref = format!("{}.{}", a.pack, a.name);
            a.uid = format!("action:{}:{}", a.pack, a.name);
            a.metadata_file = Some(rel(dir, &file));
            check_ref(&file, "/action_ref", &a.action_ref, "action", &mut errs);
            aliases.push(a);
        }
    }

    let mut config_schema = None;
    if types.configs {
        let file = dir.join("config.schema.yaml");
        if file.is_file() {
            match read_yaml(&file) {
                Ok(Value::Object(attrs)) => {
                    if let Err(mut e) = schema::validate(
                        MetadataKind::ConfigSchema,
                        &file,
                        &Value::Object(attrs.clone()),
                    ) {
                        errs.append(&mut e);
                    } else {
                        config_schema = Some(ConfigSchema {
                            id: String::new(),
                            pack: pack_ref.clone(),
                            attributes: attrs,
                        });
                    }
                }
                Ok(Value::Null) => {
                    config_schema = Some(ConfigSchema {
                        id: String::new(),
                        pack: pack_ref.clone(),
                        attributes: JsonMap::new(),
                    });
                }
                Ok(_) => errs.push(ContentError::new(
                    &file,
                    "",
                    "expected a mapping of attribute name to schema",
                )),
                Err(e) => errs.push(e),
            }
        }
    }

    check_unique(&actions, |a| &a.name, "action", &mut errs, dir);
    check_unique(&rules, |r| &r.name, "rule", &mut errs, dir);
    check_unique(&trigger_types, |t| &t.name, "trigger type", &mut errs, dir);
    check_unique(&sensors, |s| &s.class_name, "sensor", &mut errs, dir);

    if !errs.is_empty() {
        return Err(PackError::InvalidContent(errs));
    }
    Ok(LoadedPack {
        pack,
        dir: dir.to_path_buf(),
        actions,
        rules,
        sensors,
        trigger_types,
        policies,
        aliases,
        config_schema,
    })
}

/// Fills a rule's computed fields (`ref`, `uid`) and checks what its schema cannot: the
/// trigger type and action refs are `pack.name`, the rule type is known.
fn finish_rule(r: &mut Rule, file: &Path, errs: &mut Vec<ContentError>) {
    r.rule_ref = format!("{}.{}", r.pack, r.name);
    r.uid = format!("rule:{}:{}", r.pack, r.name);
    check_ref(
        file,
        "/trigger/type",
        &r.trigger.trigger_type,
        "trigger type",
        errs,
    );
    check_ref(file, "/action/ref", &r.action.action_ref, "action", errs);
    if !matches!(r.rule_type.type_ref.as_str(), "standard" | "backstop") {
        errs.push(ContentError::new(
            file,
            "/type/ref",
            format!(
                "unknown rule type \"{}\": expected standard or backstop",
                r.rule_type.type_ref
            ),
        ));
    }
}

/// Fills a policy's computed fields (`ref`, `uid`) and checks its `resource_ref` format.
fn finish_policy(p: &mut Policy, file: &Path, errs: &mut Vec<ContentError>) {
    p.policy_ref = format!("{}.{}", p.pack, p.name);
    p.uid = format!("policy:{}:{}", p.pack, p.name);
    check_ref(file, "/resource_ref", &p.resource_ref, "action", errs);
}

/// Decodes one metadata document given as a value (not read from a file), validated like
/// a file of `kind`; `file` only names it in errors.
fn from_document<T: DeserializeOwned>(
    kind: MetadataKind,
    file: &Path,
    doc: Value,
) -> Result<T, Vec<ContentError>> {
    if !doc.is_object() {
        return Err(vec![ContentError::new(file, "", "expected an object")]);
    }
    schema::validate(kind, file, &doc)?;
    serde_json::from_value(doc).map_err(|e| vec![ContentError::new(file, "", e.to_string())])
}

/// A rule given as a document (the body of `POST /rules`), read as loading `rules/*.yaml` reads
/// it: schema, computed `ref`/`uid`, ref formats, rule type. `file` only names it in errors.
/// References to other content are checked by [`super::register::check_rule`].
pub fn rule_from_document(file: &Path, doc: Value) -> Result<Rule, Vec<ContentError>> {
    let mut r: Rule = from_document(MetadataKind::Rule, file, doc)?;
    let mut errs = Vec::new();
    finish_rule(&mut r, file, &mut errs);
    if errs.is_empty() {
        Ok(r)
    } else {
        Err(errs)
    }
}

/// A policy given as a document (the body of `POST /policies`), read as loading
/// `policies/*.yaml` reads it. The policy type is checked by [`super::register::check_policy`].
pub fn policy_from_document(file: &Path, doc: Value) -> Result<Policy, Vec<ContentError>> {
    let mut p: Policy = from_document(MetadataKind::Policy, file, doc)?;
    let mut errs = Vec::new();
    finish_policy(&mut p, file, &mut errs);
    if errs.is_empty() {
        Ok(p)
    } else {
        Err(errs)
    }
}

/// A trigger type given as a document (the body of `POST /triggertypes`), read as loading
/// `triggers/*.yaml` reads it: schema, computed `ref`/`uid`.
pub fn trigger_type_from_document(
    file: &Path,
    doc: Value,
) -> Result<TriggerType, Vec<ContentError>> {
    let mut t: TriggerType = from_document(MetadataKind::TriggerType, file, doc)?;
    t.trigger_type_ref = format!("{}.{}", t.pack, t.name);
    t.uid = format!("trigger_type:{}:{}", t.pack, t.name);
    let mut errs = Vec::new();
    check_preprocessing(file, "", &t, &mut errs);
    if !errs.is_empty() {
        return Err(errs);
    }
    Ok(t)
}

/// Reports each trigger preprocessing step that does not compile (bad regex, template,
/// JSONPath, missing field) as `<prefix>/preprocessing/<i>`.
fn check_preprocessing(file: &Path, prefix: &str, t: &TriggerType, errs: &mut Vec<ContentError>) {
    if t.preprocessing.is_empty() {
        return;
    }
    let engine = crate::template::TemplateEngine::new();
    for (i, reason) in crate::services::preprocess::check(&engine, &t.preprocessing) {
        errs.push(ContentError::new(
            file,
            format!("{prefix}/preprocessing/{i}"),
            reason,
        ));
    }
}

fn check_unique<T>(
    items: &[T],
    name: impl Fn(&T) -> &String,
    what: &str,
    errs: &mut Vec<ContentError>,
    dir: &Path,
) {
    let mut seen = std::collections::HashSet::new();
    for it in items {
        if !seen.insert(name(it)) {
            errs.push(ContentError::new(
                dir,
                "/name",
                format!("duplicate {what} name \"{}\" in this pack", name(it)),
            ));
        }
    }
}

fn check_entry_point(dir: &Path, file: &Path, a: &Action, errs: &mut Vec<ContentError>) {
    if a.entry_point.is_empty() {
        errs.push(ContentError::new(
            file,
            "/entry_point",
            format!("runner \"{}\" needs an entry_point", a.runner_type),
        ));
        return;
    }
    let path = dir.join("actions").join(&a.entry_point);
    if !path.is_file() {
        errs.push(ContentError::new(
            file,
            "/entry_point",
            format!(
                "entry point file \"actions/{}\" does not exist",
                a.entry_point
            ),
        ));
        return;
    }
    let kind = match a.runner_type.as_str() {
        "orquesta" => MetadataKind::Workflow,
        "action-chain" => MetadataKind::ActionChain,
        _ => return,
    };
    match read_yaml(&path) {
        Ok(doc) => {
            if let Err(mut e) = schema::validate(kind, &path, &doc) {
                errs.append(&mut e);
            }
        }
        Err(e) => errs.push(e),
    }
}

fn load_sensor(
    dir: &Path,
    file: &Path,
    pack_ref: &str,
) -> Result<(Sensor, Vec<TriggerType>), Vec<ContentError>> {
    let mut doc = read_yaml(file).map_err(|e| vec![e])?;
    if !doc.is_object() {
        return Err(vec![ContentError::new(
            file,
            "",
            "expected a YAML mapping at the top level",
        )]);
    }
    let mut claim_errs = Vec::new();
    claim_pack(&mut doc, pack_ref, &mut claim_errs, file);
    if !claim_errs.is_empty() {
        return Err(claim_errs);
    }
    schema::validate(MetadataKind::Sensor, file, &doc)?;
    // Inline trigger type definitions become trigger types; the sensor keeps their refs.
    let inline = match doc.get_mut("trigger_types").map(Value::take) {
        Some(Value::Array(tts)) => tts,
        _ => Vec::new(),
    };
    if let Some(obj) = doc.as_object_mut() {
        obj.insert("trigger_types".into(), Value::Array(Vec::new()));
    }
    let mut s: Sensor = serde_json::from_value(doc)
        .map_err(|e| vec![ContentError::new(file, "", e.to_string())])?;
    let mut errs = Vec::new();
    let mut tts = Vec::new();
    for (i, t) in inline.into_iter().enumerate() {
        let mut t = t;
        if let Some(obj) = t.as_object_mut() {
            obj.entry("pack")
                .or_insert_with(|| Value::String(pack_ref.to_string()));
        }
        match serde_json::from_value::<TriggerType>(t) {
            Ok(mut tt) => {
                // A declared name may already be a full ref (`pack.name`).
                if let Some(stripped) = tt.name.strip_prefix(&format!("{pack_ref}.")) {
                    tt.name = stripped.to_string();
                }
                tt.pack = pack_ref.to_string();
                tt.trigger_type_ref = format!("{}.{}", tt.pack, tt.name);
                tt.uid = format!("trigger_type:{}:{}", tt.pack, tt.name);
                tt.metadata_file = Some(rel(dir, file));
                check_preprocessing(file, &format!("/trigger_types/{i}"), &tt, &mut errs);
                s.trigger_types.push(tt.trigger_type_ref.clone());
                tts.push(tt);
            }
            Err(e) => errs.push(ContentError::new(
                file,
                format!("/trigger_types/{i}"),
                e.to_string(),
            )),
        }
    }
    if s.name.is_empty() {
        s.name = s.class_name.clone();
    }
    s.sensor_ref = format!("{}.{}", s.pack, s.class_name);
    s.uid = format!("sensor_type:{}:{}", s.pack, s.class_name);
    s.metadata_file = Some(rel(dir, file));
    if let Some(name) = crate::sensors::builtin::builtin_name(&s.entry_point) {
        // Run by the platform itself: no code file.
        if !crate::sensors::builtin::BUILTIN_NAMES.contains(&name) {
            errs.push(ContentError::new(
                file,
                "/entry_point",
                format!(
                    "unknown built-in sensor \"{name}\" (known: {})",
                    crate::sensors::builtin::BUILTIN_NAMES.join(", ")
                ),
            ));
        }
    } else if !s.entry_point.is_empty() {
        let code = dir.join("sensors").join(&s.entry_point);
        if !code.is_file() {
            errs.push(ContentError::new(
                file,
                "/entry_point",
                format!(
                    "entry point file \"sensors/{}\" does not exist",
                    s.entry_point
                ),
            ));
        }
        s.artifact_uri = Some(format!("file://{}", code.to_string_lossy()));
    }
    if !errs.is_empty() {
        return Err(errs);
    }
    Ok((s, tts))
}
