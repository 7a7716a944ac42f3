//! `st2 pack install` / `st2 pack remove`: fetching packs, checking them, swapping them into the
//! install directory and registering them.
//!
//! An install runs in two phases, so nothing installed is touched until everything is known:
//!
//! 1. **Resolve** — each spec ([`source`](super::source)) is fetched into a staging directory
//!    `<install_dir>/.staging-<uuid>` (hidden, so the registrar's scan ignores it), its
//!    `pack.yaml` read, reserved names and `stackstorm_version` / `python_versions` checked
//!    (unless `force`), every metadata file validated with [`load_pack`], and its
//!    `dependencies` queued (unless `skip_dependencies`; at most [`MAX_DEPENDENCY_DEPTH`] levels
//!    deep like StackStorm; cycles stop at packs already in this run). A dependency that is
//!    already installed is not reinstalled; one pinned at a version other than the installed (or
//!    already resolved) one is a conflict, an error unless `force` (then the installed version
//!    is kept, as StackStorm does).
//! 2. **Install** — dependencies first, each pack under a per-ref lock: the old
//!    `<install_dir>/<ref>` is renamed to a hidden backup, the staged directory renamed into
//!    place and registered (all content types, fail on failure); then its virtualenv is
//!    (re)created. If registration or the virtualenv fails, the new directory is dropped, the
//!    backup (and the old virtualenv) put back and re-registered, so the previous version stays
//!    on disk and in the store. On success the backups are deleted.
//!
//! The `.git` directory of a cloned pack is kept (see [`source`](super::source)). Removal
//! unregisters the pack, deletes its directory (only under the install directory: bundled
//! packs cannot be removed) and its virtualenv, and keeps its config file, like StackStorm.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use semver::Version;
use tokio::sync::Mutex;

use super::index::PackIndex;
use super::source::{self, Fetched, GitRef, InstallSpec, PackSource};
use super::virtualenv;
use super::{
    load_pack, read_pack_meta, ContentTypes, PackError, PackPaths, RegisterOptions, Registrar,
};
use crate::model::{Pack, SYSTEM_PACKS};
use crate::schema::ContentError;
use crate::store::{repo, Store};

/// The StackStorm version we claim compatibility with, for `stackstorm_version` checks.
pub const STACKSTORM_COMPAT_VERSION: Version = Version::new(3, 9, 0);

/// How deep dependencies of dependencies are followed (StackStorm's `nested: 3`).
pub const MAX_DEPENDENCY_DEPTH: usize = 3;

/// Pack refs users may not install over without `force`.
pub const RESERVED_PACK_REFS: &[&str] = &["core", "packs", "_global"];

/// The major Python version pack virtualenvs use.
const PYTHON_MAJOR: &str = "3";

/// Flags of `st2 pack install`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstallOptions {
    /// Ignore reserved names, `stackstorm_version`/`python_versions` and dependency conflicts.
    pub force: bool,
    /// Do not install the packs listed in `dependencies`.
    pub skip_dependencies: bool,
    /// (Re)create each installed pack's virtualenv (StackStorm always does).
    pub setup_virtualenv: bool,
}

impl Default for InstallOptions {
    fn default() -> Self {
        Self {
            force: false,
            skip_dependencies: false,
            setup_virtualenv: true,
        }
    }
}

/// One pack an install put in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledPack {
    /// Pack ref (= directory name).
    pub pack_ref: String,
    /// Version from its `pack.yaml`.
    pub version: String,
    /// The version it replaced, if another one was installed.
    pub previous_version: Option<String>,
    /// The install spec it came from.
    pub spec: String,
    /// Where it was fetched from (git URL or `file://` path).
    pub url: String,
    /// The commit checked out, for git sources.
    pub commit: Option<String>,
    /// Where it is installed.
    pub path: PathBuf,
    /// The pack whose `dependencies` brought it in (`None` for requested packs).
    pub required_by: Option<String>,
    /// Its virtualenv, when one was set up.
    pub virtualenv: Option<PathBuf>,
}

/// What an install did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstallReport {
    /// Installed packs, in install order (dependencies first).
    pub packs: Vec<InstalledPack>,
    /// Dependencies left alone because they were already installed.
    pub already_installed: Vec<String>,
    /// Things the operator should know: conflicts ignored with `force`, dependencies beyond the
    /// nesting limit, version checks skipped with `force`.
    pub warnings: Vec<String>,
}

impl InstallReport {
    /// The refs of the installed packs (the API's `packs_list`).
    pub fn packs_list(&self) -> Vec<String> {
        self.packs.iter().map(|p| p.pack_ref.clone()).collect()
    }
}

/// One pack a removal took away.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemovedPack {
    /// Pack ref.
    pub pack_ref: String,
    /// The directory deleted, if there was one.
    pub path: Option<PathBuf>,
    /// True when its resources were in the store and were unregistered.
    pub unregistered: bool,
    /// True when a virtualenv was deleted.
    pub virtualenv_removed: bool,
    /// A bundled pack with the same ref that was registered again in its place.
    pub restored_bundled: Option<PathBuf>,
}

/// What a removal did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemoveReport {
    /// Removed packs, in the order asked.
    pub packs: Vec<RemovedPack>,
}

/// Installs and removes packs.
pub struct PackManager {
    /// Where packs are registered.
    pub store: Arc<dyn Store>,
    /// Pack directories; installs go to [`PackPaths::install_dir`].
    pub paths: PackPaths,
    /// Pack indexes (files or URLs), loaded the first time a pack name needs looking up; with
    /// none, name specs are an error.
    pub index_urls: Vec<String>,
    /// The index loaded from `index_urls` (or why it could not be), once looked up.
    loaded_index: tokio::sync::OnceCell<Result<PackIndex, String>>,
    /// Python interpreter for virtualenvs (`actionrunner.python_binary`).
    pub python: String,
    /// Our StackStorm-compatible version, checked against `stackstorm_version`.
    pub stackstorm_version: Version,
    /// One lock per pack ref, so two installs or removals of a pack do not interleave.
    locks: Mutex<HashMap<String, Arc<Mutex<()>>>>,
}

/// A pack fetched and validated, waiting in its staging directory.
struct Staged {
    spec: String,
    fetched: Fetched,
    pack: Pack,
    required_by: Option<String>,
    /// Indices (in the resolution's node list) of the packs it depends on.
    deps: Vec<usize>,
}

/// Phase 1 state.
#[derive(Default)]
struct Resolution {
    nodes: Vec<Staged>,
    by_ref: HashMap<String, usize>,
    conflicts: Vec<String>,
    warnings: Vec<String>,
    already_installed: Vec<String>,
}

/// Deletes the staging directories left over when an install ends (early or not).
#[derive(Default)]
struct StagingDirs(Vec<PathBuf>);

impl Drop for StagingDirs {
    fn drop(&mut self) {
        for d in &self.0 {
            if d.exists() {
                if let Err(e) = std::fs::remove_dir_all(d) {
                    tracing::warn!(dir = %d.display(), error = %e, "cannot delete staging directory");
                }
            }
        }
    }
}

/// A queued spec: the spec, its dependency depth, and the index of the pack requiring it.
type Pending = (String, usize, Option<usize>);

impl PackManager {
    /// A manager with no pack index, `python3` and [`STACKSTORM_COMPAT_VERSION`].
    pub fn new(store: Arc<dyn Store>, paths: PackPaths) -> Self {
        Self {
            store,
            paths,
            index_urls: Vec::new(),
            loaded_index: tokio::sync::OnceCell::new(),
            python: "python3".into(),
            stackstorm_version: STACKSTORM_COMPAT_VERSION,
            locks: Mutex::new(HashMap::new()),
        }
    }

    /// Installs the packs named by `specs` (and their dependencies). Either every pack is
    /// installed, or the error names the spec that failed; packs installed before the failing
    /// one (dependencies come first) stay installed.
    pub async fn install(
        &self,
        specs: &[String],
        opts: InstallOptions,
    ) -> Result<InstallReport, PackError> {
        if specs.is_empty() {
            return Err(PackError::Install("no pack to install".into()));
        }
        let install_dir = self.paths.install_dir().to_path_buf();
        std::fs::create_dir_all(&install_dir).map_err(|e| PackError::Io {
            path: install_dir.clone(),
            source: e,
        })?;

        let mut staging = StagingDirs::default();
        let res = self.resolve(specs, opts, &mut staging).await?;
        if !res.conflicts.is_empty() && !opts.force {
            return Err(PackError::DependencyConflict(res.conflicts));
        }
        let mut report = InstallReport {
            packs: Vec::new(),
            already_installed: res.already_installed,
            warnings: res.warnings,
        };
        report.warnings.extend(
            res.conflicts
                .into_iter()
                .map(|c| format!("{c} (kept the installed version: force)")),
        );

        let order = install_order(&res.nodes);
        let mut nodes: Vec<Option<Staged>> = res.nodes.into_iter().map(Some).collect();
        for i in order {
            let Some(node) = nodes[i].take() else {
                continue;
            };
            let spec = node.spec.clone();
            let installed =
                self.install_staged(node, opts)
                    .await
                    .map_err(|e| PackError::InstallSpec {
                        spec,
                        source: Box::new(e),
                    })?;
            report.packs.push(installed);
        }
        Ok(report)
    }

    /// Phase 1: fetch, check and validate every requested pack and its dependencies.
    async fn resolve(
        &self,
        specs: &[String],
        opts: InstallOptions,
        staging: &mut StagingDirs,
    ) -> Result<Resolution, PackError> {
        let mut res = Resolution::default();
        let mut queue: VecDeque<Pending> = specs.iter().map(|s| (s.clone(), 0, None)).collect();
        while let Some((spec, depth, parent)) = queue.pop_front() {
            // An unparsable spec already names itself.
            let wrap = |e: PackError| match e {
                e @ PackError::InvalidSpec { .. } => e,
                e => PackError::InstallSpec {
                    spec: spec.clone(),
                    source: Box::new(e),
                },
            };
            let outcome = self
                .resolve_one(&spec, depth, parent, opts, &mut res, staging)
                .await;
            let idx = match (outcome, parent) {
                (Ok(Some(idx)), _) => idx,
                (Ok(None), _) => continue,
                // A dependency's failure names both the pack that needs it and the dependency.
                (Err(e), Some(p)) => {
                    return Err(PackError::InstallSpec {
                        spec: res.nodes[p].spec.clone(),
                        source: Box::new(wrap(e)),
                    })
                }
                (Err(e), None) => return Err(wrap(e)),
            };
            if opts.skip_dependencies {
                continue;
            }
            let node = &res.nodes[idx];
            for dep in &node.pack.dependencies {
                if depth < MAX_DEPENDENCY_DEPTH {
                    queue.push_back((dep.clone(), depth + 1, Some(idx)));
                } else {
                    res.warnings.push(format!(
                        "dependency \"{dep}\" of pack \"{}\" was not installed: dependencies are followed \
                         {MAX_DEPENDENCY_DEPTH} levels deep",
                        node.pack.pack_ref
                    ));
                }
            }
        }
        Ok(res)
    }

    /// Resolves one spec; `Ok(None)` when nothing needs installing (an already installed or
    /// already resolved pack).
    async fn resolve_one(
        &self,
        spec: &str,
        depth: usize,
        parent: Option<usize>,
        opts: InstallOptions,
        res: &mut Resolution,
        staging: &mut StagingDirs,
    ) -> Result<Option<usize>, PackError> {
        let parsed = InstallSpec::parse(spec)?;
        let pin = parsed.version.clone();
        // A dependency that looks installed is not fetched at all.
        if let (Some(p), Some(guess)) = (parent, parsed.guessed_ref()) {
            if self.dependency_present(res, &guess, pin.as_deref(), p, spec) {
                return Ok(None);
            }
        }

        let (source, git_ref) = self.resolve_source(&parsed).await?;
        let dir = self
            .paths
            .install_dir()
            .join(format!(".staging-{}", uuid::Uuid::new_v4().simple()));
        staging.0.push(dir.clone());
        let dest = dir.clone();
        let fetched = tokio::task::spawn_blocking(move || source::fetch(&source, &git_ref, &dest))
            .await
            .map_err(|e| PackError::Install(format!("fetch task failed: {e}")))??;
        let pack = read_pack_meta(&dir).map_err(|e| relativize(e, &dir))?;
        let pack_ref = pack.pack_ref.clone();

        if let Some(p) = parent {
            if self.dependency_present(res, &pack_ref, pin.as_deref(), p, spec) {
                remove_quietly(&dir);
                return Ok(None);
            }
        } else if let Some(&other) = res.by_ref.get(&pack_ref) {
            let prev = &res.nodes[other];
            if prev.pack.version != pack.version {
                return Err(PackError::Install(format!(
                    "pack \"{pack_ref}\" is requested twice, at versions {} (\"{}\") and {} (\"{spec}\")",
                    prev.pack.version, prev.spec, pack.version
                )));
            }
            remove_quietly(&dir);
            return Ok(None);
        }

        self.check_pack(&pack, opts, &mut res.warnings)?;
        load_pack(&dir, &ContentTypes::ALL).map_err(|e| relativize(e, &dir))?;
        tracing::info!(pack = %pack_ref, version = %pack.version, spec, depth, "pack fetched and valid");

        let idx = res.nodes.len();
        res.nodes.push(Staged {
            spec: spec.to_string(),
            fetched,
            pack,
            required_by: parent.map(|p| res.nodes[p].pack.pack_ref.clone()),
            deps: Vec::new(),
        });
        res.by_ref.insert(pack_ref, idx);
        if let Some(p) = parent {
            res.nodes[p].deps.push(idx);
        }
        Ok(Some(idx))
    }

    /// For a dependency `spec` of node `parent` that installs `pack_ref`: true when the pack is
    /// already part of this install or installed on disk (then it is not installed again).
    /// A version pin that differs from that version is recorded as a conflict.
    fn dependency_present(
        &self,
        res: &mut Resolution,
        pack_ref: &str,
        pin: Option<&str>,
        parent: usize,
        spec: &str,
    ) -> bool {
        let parent_ref = res.nodes[parent].pack.pack_ref.clone();
        if let Some(&i) = res.by_ref.get(pack_ref) {
            if i != parent && !res.nodes[parent].deps.contains(&i) {
                res.nodes[parent].deps.push(i);
            }
            let have = res.nodes[i].pack.version.clone();
            if pin_conflicts(pin, &have) {
                res.conflicts.push(format!(
                    "pack \"{parent_ref}\" requires \"{spec}\" but version {have} of \"{pack_ref}\" is being installed"
                ));
            }
            return true;
        }
        let Some(dir) = self.paths.find_pack(pack_ref) else {
            return false;
        };
        let Ok(installed) = read_pack_meta(&dir) else {
            // A broken installed copy is replaced.
            return false;
        };
        if pin_conflicts(pin, &installed.version) {
            res.conflicts.push(format!(
                "pack \"{parent_ref}\" requires \"{spec}\" but \"{pack_ref}\" {} is installed",
                installed.version
            ));
        } else {
            res.already_installed
                .push(format!("{pack_ref} {}", installed.version));
        }
        true
    }

    /// Turns a parsed spec into something fetchable, looking names up in the index.
    async fn resolve_source(&self, spec: &InstallSpec) -> Result<(PackSource, GitRef), PackError> {
        let named = |v: &Option<String>| v.clone().map_or(GitRef::Default, GitRef::Named);
        let PackSource::Index { name } = &spec.source else {
            return Ok((spec.source.clone(), named(&spec.version)));
        };
        if self.index_urls.is_empty() {
            return Err(PackError::Install(format!(
                "cannot look up \"{name}\": no pack index is configured (use a git URL or file:///path)"
            )));
        }
        let index = self
            .loaded_index
            .get_or_init(|| async {
                PackIndex::load_all(&self.index_urls)
                    .await
                    .map_err(|e| e.to_string())
            })
            .await
            .as_ref()
            .map_err(|e| PackError::Install(format!("cannot look up \"{name}\": {e}")))?;
        let Some(entry) = index.get(name) else {
            return Err(PackError::Install(format!(
                "no record of the \"{name}\" pack in the index"
            )));
        };
        if entry.repo_url.is_empty() {
            return Err(PackError::Install(format!(
                "the index entry of \"{name}\" has no repo_url"
            )));
        }
        let source = match source::parse_location(&entry.repo_url) {
            Ok(PackSource::Index { .. }) => {
                return Err(PackError::Install(format!(
                    "the index entry of \"{name}\" has repo_url \"{}\", which is not a URL",
                    entry.repo_url
                )))
            }
            Err(reason) => {
                return Err(PackError::Install(format!(
                    "the index entry of \"{name}\" has an invalid repo_url \"{}\": {reason}",
                    entry.repo_url
                )))
            }
            Ok(s) => s,
        };
        let git_ref = match (&spec.version, entry.version.is_empty()) {
            (Some(v), _) => GitRef::Named(v.clone()),
            (None, false) => GitRef::PreferVersionTag(entry.version.clone()),
            (None, true) => GitRef::Default,
        };
        Ok((source, git_ref))
    }

    /// Reserved refs and version compatibility (skipped with `force`, then warned about).
    fn check_pack(
        &self,
        pack: &Pack,
        opts: InstallOptions,
        warnings: &mut Vec<String>,
    ) -> Result<(), PackError> {
        let pack_ref = &pack.pack_ref;
        let mut problems = Vec::new();
        if RESERVED_PACK_REFS.contains(&pack_ref.as_str()) {
            if !opts.force {
                return Err(PackError::Install(format!(
                    "\"{pack_ref}\" is a reserved pack name; packs cannot be installed over it without force"
                )));
            }
            problems.push(format!("installed over the reserved pack \"{pack_ref}\""));
        }
        if let Some(req) = pack
            .stackstorm_version
            .as_deref()
            .filter(|r| !r.trim().is_empty())
        {
            let reason = match version_satisfies(req, &self.stackstorm_version) {
                Ok(true) => None,
                Ok(false) => Some(format!(
                    "requires StackStorm \"{req}\", but the current version is \"{}\"",
                    self.stackstorm_version
                )),
                Err(e) => Some(format!("has an invalid stackstorm_version: {e}")),
            };
            if let Some(reason) = reason {
                if !opts.force {
                    return Err(PackError::Incompatible {
                        pack: pack_ref.clone(),
                        reason,
                    });
                }
                problems.push(reason);
            }
        }
        if !pack.python_versions.is_empty()
            && !pack.python_versions.iter().any(|v| v == PYTHON_MAJOR)
        {
            let reason = format!(
                "requires Python {}.x, but the current Python version is {PYTHON_MAJOR}",
                pack.python_versions.join("/")
            );
            if !opts.force {
                return Err(PackError::Incompatible {
                    pack: pack_ref.clone(),
                    reason,
                });
            }
            problems.push(reason);
        }
        warnings.extend(
            problems
                .into_iter()
                .map(|p| format!("pack \"{pack_ref}\" {p} (installed because of force)")),
        );
        Ok(())
    }

    fn registrar(&self) -> Registrar {
        Registrar::new(
            self.store.clone(),
            self.paths.clone(),
            RegisterOptions {
                types: ContentTypes::ALL,
                fail_on_failure: true,
                setup_virtualenvs: false,
                ..RegisterOptions::default()
            },
        )
    }

    async fn lock_for(&self, pack_ref: &str) -> Arc<Mutex<()>> {
        self.locks
            .lock()
            .await
            .entry(pack_ref.to_string())
            .or_default()
            .clone()
    }

    /// Phase 2 for one pack: swap it into place, register it, set up its virtualenv; roll back
    /// on failure.
    async fn install_staged(
        &self,
        node: Staged,
        opts: InstallOptions,
    ) -> Result<InstalledPack, PackError> {
        let pack_ref = node.pack.pack_ref.clone();
        let lock = self.lock_for(&pack_ref).await;
        let _held = lock.lock().await;

        let install_dir = self.paths.install_dir().to_path_buf();
        let target = install_dir.join(&pack_ref);
        let previous_version = read_pack_meta(&target).ok().map(|p| p.version);
        let backup = if target.symlink_metadata().is_ok() {
            let b = install_dir.join(format!(
                ".backup-{pack_ref}-{}",
                uuid::Uuid::new_v4().simple()
            ));
            std::fs::rename(&target, &b).map_err(|e| PackError::Io {
                path: target.clone(),
                source: e,
            })?;
            Some(b)
        } else {
            None
        };
        if let Err(e) = std::fs::rename(&node.fetched.dir, &target) {
            if let Some(b) = &backup {
                restore(b, &target);
            }
            return Err(PackError::Io {
                path: target,
                source: e,
            });
        }

        let registrar = self.registrar();
        if let Err(e) = registrar.register_pack_dir(&target).await {
            self.rollback(&registrar, &pack_ref, &target, backup.as_deref(), false)
                .await;
            return Err(relativize(e, &target));
        }

        let mut venv = None;
        if opts.setup_virtualenv {
            match self.setup_virtualenv(&pack_ref, &target).await {
                Ok(v) => venv = Some(v),
                Err(e) => {
                    self.rollback(&registrar, &pack_ref, &target, backup.as_deref(), true)
                        .await;
                    return Err(e);
                }
            }
        }
        if let Some(b) = &backup {
            remove_quietly(b);
        }
        tracing::info!(pack = %pack_ref, version = %node.pack.version, previous = ?previous_version, "pack installed");
        Ok(InstalledPack {
            pack_ref,
            version: node.pack.version,
            previous_version,
            spec: node.spec,
            url: node.fetched.url,
            commit: node.fetched.commit,
            path: target,
            required_by: node.required_by,
            virtualenv: venv,
        })
    }

    /// Recreates the pack's virtualenv, keeping the old one aside until the new one works.
    async fn setup_virtualenv(
        &self,
        pack_ref: &str,
        pack_dir: &Path,
    ) -> Result<PathBuf, PackError> {
        let venv = self.paths.virtualenv(pack_ref);
        let old = if venv.symlink_metadata().is_ok() {
            let b = self.paths.virtualenvs_dir.join(format!(
                ".backup-{pack_ref}-{}",
                uuid::Uuid::new_v4().simple()
            ));
            std::fs::rename(&venv, &b).map_err(|e| PackError::Io {
                path: venv.clone(),
                source: e,
            })?;
            Some(b)
        } else {
            None
        };
        let (paths, r, dir, python) = (
            self.paths.clone(),
            pack_ref.to_string(),
            pack_dir.to_path_buf(),
            self.python.clone(),
        );
        let result = tokio::task::spawn_blocking(move || {
            virtualenv::setup_virtualenv(&paths, &r, &dir, &python)
        })
        .await
        .map_err(|e| PackError::Install(format!("virtualenv task failed: {e}")))
        .and_then(|r| r);
        match (&result, &old) {
            (Ok(_), Some(b)) => remove_quietly(b),
            (Err(_), Some(b)) => {
                remove_quietly(&venv);
                restore(b, &venv);
            }
            (Err(_), None) => remove_quietly(&venv),
            (Ok(_), None) => {}
        }
        result
    }

    /// Drops the new pack directory and puts the previous one back (re-registered), or, when
    /// there was none, unregisters the new pack if it got registered.
    async fn rollback(
        &self,
        registrar: &Registrar,
        pack_ref: &str,
        target: &Path,
        backup: Option<&Path>,
        new_registered: bool,
    ) {
        remove_quietly(target);
        match backup {
            Some(b) => {
                restore(b, target);
                if let Err(e) = registrar.register_pack_dir(target).await {
                    tracing::error!(pack = pack_ref, error = %e, "cannot re-register the previous version after a failed install");
                }
            }
            None if new_registered => match registrar.unregister_pack(pack_ref).await {
                Ok(()) | Err(PackError::NotFound(_)) => {}
                Err(e) => {
                    tracing::error!(pack = pack_ref, error = %e, "cannot unregister a pack after a failed install")
                }
            },
            None => {}
        }
    }

    /// Removes installed packs: unregisters their resources, deletes their directory and
    /// virtualenv, keeps their config. Every ref is checked before anything is removed.
    pub async fn remove(&self, refs: &[String]) -> Result<RemoveReport, PackError> {
        let install_dir = self.paths.install_dir().to_path_buf();
        let mut plans = Vec::new();
        for r in refs {
            let registered = repo::<Pack>(&*self.store).get_by_ref(r).await?;
            let dir = self.removable_dir(r, registered.as_ref(), &install_dir)?;
            if registered.is_none() && dir.is_none() {
                return Err(PackError::NotFound(r.clone()));
            }
            plans.push((r.clone(), registered.is_some(), dir));
        }

        let registrar = self.registrar();
        let mut report = RemoveReport::default();
        for (pack_ref, registered, dir) in plans {
            let lock = self.lock_for(&pack_ref).await;
            let _held = lock.lock().await;
            let mut unregistered = false;
            if registered {
                match registrar.unregister_pack(&pack_ref).await {
                    Ok(()) => unregistered = true,
                    Err(PackError::NotFound(_)) => {}
                    Err(e) => return Err(e),
                }
            }
            if let Some(d) = &dir {
                std::fs::remove_dir_all(d).map_err(|e| PackError::Io {
                    path: d.clone(),
                    source: e,
                })?;
            }
            let virtualenv_removed = virtualenv::remove_virtualenv(&self.paths, &pack_ref)?;
            // A bundled pack the removed one was shadowing comes back.
            let mut restored_bundled = None;
            if let Some(bundled) = self.paths.find_pack(&pack_ref) {
                registrar.register_pack_dir(&bundled).await?;
                restored_bundled = Some(bundled);
            }
            tracing::info!(pack = %pack_ref, unregistered, virtualenv_removed, "pack removed");
            report.packs.push(RemovedPack {
                pack_ref,
                path: dir,
                unregistered,
                virtualenv_removed,
                restored_bundled,
            });
        }
        Ok(report)
    }

    /// The directory to delete when removing `pack_ref`: `<install_dir>/<ref>` or the registered
    /// path, which must lie in the install directory. Bundled packs are refused.
    fn removable_dir(
        &self,
        pack_ref: &str,
        registered: Option<&Pack>,
        install_dir: &Path,
    ) -> Result<Option<PathBuf>, PackError> {
        let refuse = |dir: &Path| {
            PackError::Install(format!(
                "pack \"{pack_ref}\" is a bundled system pack ({}); it cannot be removed",
                dir.display()
            ))
        };
        if RESERVED_PACK_REFS.contains(&pack_ref) || !super::loader::is_valid_pack_ref(pack_ref) {
            return Err(PackError::Install(format!(
                "pack \"{pack_ref}\" is a reserved system pack; it cannot be removed"
            )));
        }
        let mut candidates = vec![install_dir.join(pack_ref)];
        if let Some(p) = registered.and_then(|p| p.path.as_deref()) {
            candidates.push(PathBuf::from(p));
        }
        let mut found = None;
        for c in candidates
            .into_iter()
            .filter(|c| c.join("pack.yaml").is_file())
        {
            if !is_inside(&c, install_dir) {
                return Err(refuse(&c));
            }
            found.get_or_insert(c);
        }
        if found.is_none() {
            if let Some(bundled) = self.paths.find_pack(pack_ref) {
                return Err(refuse(&bundled));
            }
            if SYSTEM_PACKS.contains(&pack_ref) && registered.is_some() {
                return Err(PackError::Install(format!(
                    "pack \"{pack_ref}\" is a system pack; it cannot be removed"
                )));
            }
        }
        Ok(found)
    }
}

/// True when `dir` is a direct child of `base` (both resolved through symlinks).
fn is_inside(dir: &Path, base: &Path) -> bool {
    match (dir.canonicalize(), base.canonicalize()) {
        (Ok(d), Ok(b)) => d.parent() == Some(b.as_path()),
        _ => false,
    }
}

/// True when `pin` is a version (`1.2.3` or `v1.2.3`) other than `have`. Branch or commit pins
/// cannot be compared and never conflict.
fn pin_conflicts(pin: Option<&str>, have: &str) -> bool {
    let Some(pin) = pin else { return false };
    let Ok(want) = Version::parse(pin.strip_prefix('v').unwrap_or(pin)) else {
        return false;
    };
    match Version::parse(have.strip_prefix('v').unwrap_or(have)) {
        Ok(have) => have != want,
        Err(_) => true,
    }
}

/// Checks a version against StackStorm's `stackstorm_version` syntax: comma-separated
/// constraints `<op><x.y.z>` with op one of `>=`, `<=`, `>`, `<`, `==`, `=`, `!=` (none means `==`),
/// all of which must hold.
pub fn version_satisfies(constraints: &str, version: &Version) -> Result<bool, String> {
    use std::cmp::Ordering::{Equal, Greater, Less};
    let mut seen = false;
    let mut ok = true;
    for part in constraints
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        seen = true;
        let op_len = part
            .find(|c: char| !matches!(c, '<' | '>' | '=' | '!'))
            .unwrap_or(part.len());
        let (op, rest) = part.split_at(op_len);
        let rest = rest.trim();
        let want = Version::parse(rest.strip_prefix('v').unwrap_or(rest))
            .map_err(|e| format!("invalid version \"{rest}\" in \"{constraints}\": {e}"))?;
        let ord = version.cmp_precedence(&want);
        let holds = match op {
            ">=" => ord != Less,
            "<=" => ord != Greater,
            ">" => ord == Greater,
            "<" => ord == Less,
            "" | "=" | "==" => ord == Equal,
            "!=" => ord != Equal,
            other => return Err(format!("unknown operator \"{other}\" in \"{constraints}\"")),
        };
        ok &= holds;
    }
    if !seen {
        return Err(format!("no constraint in \"{constraints}\""));
    }
    Ok(ok)
}

/// Install order: dependencies before the packs needing them (depth-first post-order; an edge
/// back to a pack still being visited — a cycle — is ignored).
fn install_order(nodes: &[Staged]) -> Vec<usize> {
    let deps: Vec<Vec<usize>> = nodes.iter().map(|n| n.deps.clone()).collect();
    topo_order(&deps)
}

fn topo_order(deps: &[Vec<usize>]) -> Vec<usize> {
    fn visit(i: usize, deps: &[Vec<usize>], state: &mut [u8], order: &mut Vec<usize>) {
        if state[i] != 0 {
            return;
        }
        state[i] = 1;
        for &d in &deps[i] {
            visit(d, deps, state, order);
        }
        state[i] = 2;
        order.push(i);
    }
    let mut state = vec![0u8; deps.len()];
    let mut order = Vec::with_capacity(deps.len());
    for i in 0..deps.len() {
        visit(i, deps, &mut state, &mut order);
    }
    order
}

/// Rewrites file paths of content errors under `dir` (a staging or install directory) to paths
/// relative to the pack, so messages name `actions/x.yaml` rather than a temporary directory.
fn relativize(e: PackError, dir: &Path) -> PackError {
    match e {
        PackError::InvalidContent(errs) => PackError::InvalidContent(
            errs.into_iter()
                .map(|mut c: ContentError| {
                    if let Ok(rel) = c.file.strip_prefix(dir) {
                        c.file = rel.to_path_buf();
                    }
                    c
                })
                .collect(),
        ),
        other => other,
    }
}

fn remove_quietly(path: &Path) {
    if path.symlink_metadata().is_ok() {
        if let Err(e) = std::fs::remove_dir_all(path) {
            tracing::warn!(path = %path.display(), error = %e, "cannot delete directory");
        }
    }
}

fn restore(backup: &Path, target: &Path) {
    if let Err(e) = std::fs::rename(backup, target) {
        tracing::error!(backup = %backup.display(), target = %target.display(), error = %e,
            "cannot put the previous version back; move the backup into place by hand");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stackstorm_version_constraints() {
        let v = Version::new(3, 9, 0);
        let cases = [
            (">=3.0.0, <4.0.0", Ok(true)),
            (">=3.0.0,<4.0.0", Ok(true)),
            (">=99.0.0", Ok(false)),
            ("<3.9.0", Ok(false)),
            ("<=3.9.0", Ok(true)),
            (">3.8.9", Ok(true)),
            ("3.9.0", Ok(true)),
            ("==3.9.0", Ok(true)),
            ("=3.8.0", Ok(false)),
            ("!=3.9.0", Ok(false)),
            (">= v3.0.0", Ok(true)),
            (">=2.0.0, <3.0.0", Ok(false)),
        ];
        for (c, want) in cases {
            assert_eq!(version_satisfies(c, &v), want, "{c}");
        }
        for bad in ["", " , ", ">=3.0", "~>3.0.0", ">=abc"] {
            assert!(version_satisfies(bad, &v).is_err(), "{bad}");
        }
    }

    #[test]
    fn version_pins() {
        let cases = [
            (None, "1.0.0", false),
            (Some("1.0.0"), "1.0.0", false),
            (Some("v1.0.0"), "1.0.0", false),
            (Some("1.0.1"), "1.0.0", true),
            (Some("v0.2.0"), "0.1.0", true),
            (Some("main"), "0.1.0", false),
            (Some("3f2c9e1"), "0.1.0", false),
        ];
        for (pin, have, want) in cases {
            assert_eq!(pin_conflicts(pin, have), want, "{pin:?} vs {have}");
        }
    }

    #[test]
    fn dependencies_install_first() {
        // 0 → 1 → 2, 0 → 2, 2 → 0 (cycle), 3 alone.
        let deps = vec![vec![1, 2], vec![2], vec![0], vec![]];
        assert_eq!(topo_order(&deps), vec![2, 1, 0, 3]);
        // 0 → 2 → 1: order must respect the edge even though 1 was queued first.
        let deps = vec![vec![1, 2], vec![], vec![1]];
        assert_eq!(topo_order(&deps), vec![1, 2, 0]);
    }

    #[test]
    fn content_error_paths_become_relative() {
        let dir = Path::new("/x/.staging-1");
        let e = PackError::InvalidContent(vec![ContentError::new(
            &dir.join("actions/a.yaml"),
            "/cmd",
            "bad",
        )]);
        let msg = relativize(e, dir).to_string();
        assert!(msg.starts_with("actions/a.yaml: /cmd: bad"), "{msg}");
    }
}
