//! Pack operations the API asks for: the stand-in for the `packs.install` / `packs.uninstall`
//! workflows, and saving a pack config (`PUT /api/v1/configs/<pack>`).
//!
//! # The install/uninstall stand-in
//! In StackStorm, `POST /packs/install` and `/packs/uninstall` start executions of the Orquesta
//! workflows `packs.install` and `packs.uninstall` (bundled in the `packs` pack). Until the
//! Orquesta engine runs those workflows, the action runner service hands executions of these two
//! actions to [`run`] instead of a runner (see [`handles`]): it calls the Rust installer
//! ([`PackManager`]: git2 fetch, dependencies, version checks, virtualenvs, registration; removal
//! and unregistration), invalidates the content catalog, and returns StackStorm's workflow
//! result `{"output": {"packs_list", "warning_list", "conflict_list", "message"}}` (lists, never
//! null) with status `succeeded` or `failed` (then also `error`). Delete this hook (and its call
//! in `worker.rs`) once the workflows run for real.
//!
//! Operations are serialised by one lock per process, so two installs never interleave.

use std::path::Path;

use serde_json::{json, Value};

use super::Ctx;
use crate::model::{Config, ConfigSchema, ExecutionStatus, JsonMap, Pack};
use crate::packs::index::PackIndex;
use crate::packs::install::{InstallOptions, PackManager};
use crate::packs::PackError;
use crate::runners::RunOutcome;
use crate::schema::{self, ContentError};
use crate::store::{repo, Query};

/// The action `POST /packs/install` runs.
pub const INSTALL_ACTION: &str = "packs.install";
/// The action `POST /packs/uninstall` runs.
pub const UNINSTALL_ACTION: &str = "packs.uninstall";

/// What pack operations need from the configuration.
#[derive(Debug, Default)]
pub struct PackOps {
    /// Pack indexes, files or URLs (`content.index_url`), for installs by name and `/packs/index/search`.
    pub index_urls: Vec<String>,
    /// Python interpreter for pack virtualenvs (`actionrunner.python_binary`); `None`: `python3`.
    pub python: Option<String>,
    /// Serialises installs and removals in this process.
    lock: tokio::sync::Mutex<()>,
}

impl PackOps {
    /// Settings with these index files and Python interpreter.
    pub fn new(index_urls: Vec<String>, python: Option<String>) -> Self {
        Self {
            index_urls,
            python,
            lock: tokio::sync::Mutex::new(()),
        }
    }

    /// The merged pack index, or why there is none (no index configured, none readable).
    pub async fn index(&self) -> Result<PackIndex, PackError> {
        PackIndex::load_all(&self.index_urls).await
    }
}

/// Whether executions of `action_ref` are carried out by [`run`] rather than a runner.
pub fn handles(action_ref: &str) -> bool {
    action_ref == INSTALL_ACTION || action_ref == UNINSTALL_ACTION
}

/// StackStorm's workflow result for pack operations.
fn result(
    packs: Vec<String>,
    warnings: Vec<String>,
    conflicts: Vec<String>,
    message: &str,
) -> Value {
    json!({"output": {
        "packs_list": packs,
        "warning_list": warnings,
        "conflict_list": conflicts,
        "message": message,
    }})
}

/// A failed outcome with the result shape kept (lists empty, `message` and `error` set).
fn failed(message: String, conflicts: Vec<String>) -> RunOutcome {
    let mut r = result(Vec::new(), Vec::new(), conflicts, &message);
    if let Some(obj) = r.as_object_mut() {
        obj.insert("error".into(), Value::String(message));
    }
    RunOutcome::new(ExecutionStatus::Failed, r)
}

/// The `packs` parameter: a list of strings (a lone string is accepted).
fn packs_param(params: &JsonMap) -> Result<Vec<String>, String> {
    match params.get("packs") {
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| format!("\"packs\" must be a list of strings, got {v}"))
            })
            .collect(),
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        _ => Err("parameter \"packs\" is required (a list of pack names or URLs)".into()),
    }
}

fn bool_param(params: &JsonMap, name: &str) -> bool {
    params.get(name).and_then(Value::as_bool).unwrap_or(false)
}

/// Carries out an execution of `packs.install` or `packs.uninstall` with its final parameters.
/// Never fails with an error: failures are `failed` outcomes naming the reason.
pub async fn run(ctx: &Ctx, action_ref: &str, params: &JsonMap) -> RunOutcome {
    let packs = match packs_param(params) {
        Ok(p) if !p.is_empty() => p,
        Ok(_) => return failed("no pack given in \"packs\"".into(), Vec::new()),
        Err(e) => return failed(e, Vec::new()),
    };
    let ops = &ctx.pack_ops;
    let _held = ops.lock.lock().await;
    let mut mgr = PackManager::new(ctx.store.clone(), ctx.paths.clone());
    if let Some(p) = &ops.python {
        mgr.python = p.clone();
    }
    let outcome = if action_ref == INSTALL_ACTION {
        // Loaded only if a pack is named rather than given by URL or path.
        mgr.index_urls = ops.index_urls.clone();
        let opts = InstallOptions {
            force: bool_param(params, "force"),
            skip_dependencies: bool_param(params, "skip_dependencies"),
            setup_virtualenv: true,
        };
        match mgr.install(&packs, opts).await {
            Ok(report) => {
                let mut warnings = report.warnings.clone();
                warnings.extend(
                    report
                        .already_installed
                        .iter()
                        .map(|p| format!("dependency \"{p}\" is already installed")),
                );
                tracing::info!(packs = ?report.packs_list(), "packs installed");
                RunOutcome::new(
                    ExecutionStatus::Succeeded,
                    result(report.packs_list(), warnings, Vec::new(), ""),
                )
            }
            Err(e) => {
                let conflicts = conflicts_of(&e);
                tracing::warn!(packs = ?packs, error = %e, "pack install failed");
                failed(e.to_string(), conflicts)
            }
        }
    } else {
        match mgr.remove(&packs).await {
            Ok(report) => {
                let removed: Vec<String> = report.packs.into_iter().map(|p| p.pack_ref).collect();
                tracing::info!(packs = ?removed, "packs removed");
                RunOutcome::new(
                    ExecutionStatus::Succeeded,
                    result(removed, Vec::new(), Vec::new(), ""),
                )
            }
            Err(e) => {
                tracing::warn!(packs = ?packs, error = %e, "pack removal failed");
                failed(e.to_string(), Vec::new())
            }
        }
    };
    // Even a failed install may have installed dependencies first.
    ctx.catalog.invalidate();
    outcome
}

/// The dependency conflicts an install error reports, if any.
fn conflicts_of(e: &PackError) -> Vec<String> {
    match e {
        PackError::DependencyConflict(c) => c.clone(),
        PackError::InstallSpec { source, .. } => conflicts_of(source),
        _ => Vec::new(),
    }
}

/// Why a config could not be saved.
#[derive(Debug, thiserror::Error)]
pub enum ConfigSaveError {
    /// No registered pack with that ref.
    #[error("pack \"{0}\" not found")]
    UnknownPack(String),
    /// The values violate the pack's config schema.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<ContentError>),
    /// Writing the file or the store failed.
    #[error("{0}")]
    Io(String),
}

/// `PUT /configs/<pack>`: validates `values` against the pack's config schema (if it has one),
/// writes `<configs_dir>/<pack>.yaml`, stores the config (schema defaults merged in, as
/// registration does) and invalidates the catalog. Returns the stored config.
pub async fn save_config(
    ctx: &Ctx,
    pack_ref: &str,
    values: &JsonMap,
) -> Result<Config, ConfigSaveError> {
    let store_err = |e: crate::store::StoreError| ConfigSaveError::Io(e.to_string());
    if repo::<Pack>(&*ctx.store)
        .get_by_ref(pack_ref)
        .await
        .map_err(store_err)?
        .is_none()
    {
        return Err(ConfigSaveError::UnknownPack(pack_ref.to_string()));
    }
    let file = ctx.paths.config_file(pack_ref);
    let schema_doc = repo::<ConfigSchema>(&*ctx.store)
        .find_one(Query::all().eq("pack", pack_ref))
        .await
        .map_err(store_err)?;
    let merged = match &schema_doc {
        Some(s) => schema::validate_config(
            Path::new(&format!("{pack_ref}.yaml")),
            &s.attributes,
            values,
        )
        .map_err(ConfigSaveError::Invalid)?,
        None => values.clone(),
    };
    let text = serde_yaml::to_string(values).map_err(|e| ConfigSaveError::Io(e.to_string()))?;
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| ConfigSaveError::Io(format!("cannot create {}: {e}", dir.display())))?;
    }
    std::fs::write(&file, text)
        .map_err(|e| ConfigSaveError::Io(format!("cannot write {}: {e}", file.display())))?;
    let configs = repo::<Config>(&*ctx.store);
    let id = configs
        .find_one(Query::all().eq("pack", pack_ref))
        .await
        .map_err(store_err)?
        .map(|c| c.id)
        .unwrap_or_default();
    let saved = configs
        .save(Config {
            id,
            pack: pack_ref.to_string(),
            values: merged,
        })
        .await
        .map_err(store_err)?;
    ctx.catalog.invalidate();
    Ok(saved)
}
