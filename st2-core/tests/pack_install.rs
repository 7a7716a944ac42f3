//! `st2 pack install` / `st2 pack remove` end to end: real git repositories (bare, built with
//! git2 in a temp dir), real directories, real registration into the embedded store.
//!
//! Contents:
//! - sources: default branch, tags, `=<semver>` → `v<semver>`, branches, commit shas, plain
//!   directories, unknown refs, index names;
//! - versions: upgrade and downgrade swap the registered content;
//! - dependencies: recursive install, conflicts, `--force`;
//! - safety: `stackstorm_version` / `python_versions`, invalid new versions and registration
//!   failures keep the old version, concurrent installs, reserved and bundled packs;
//! - removal;
//! - virtualenvs (python3, offline).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use git2::{Oid, Repository, Signature};
use st2_core::model::{Action, Pack, Rule};
use st2_core::packs::index::PackIndex;
use st2_core::packs::install::{InstallOptions, InstallReport, PackManager};
use st2_core::packs::{ContentTypes, PackError, PackPaths, RegisterOptions, Registrar};
use st2_core::store::{repo, EmbeddedStore, Query, Store};

type Files = BTreeMap<String, String>;

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

const WEBHOOK_TRIGGER: &str = "\
name: st2.webhook
pack: core
description: Webhook trigger type.
parameters_schema:
  type: object
  properties:
    url:
      type: string
      required: true
  additionalProperties: false
payload_schema:
  type: object
";

/// A minimal valid pack: pack.yaml (+ `extra_meta` lines), one local-shell-cmd action per name
/// and, when there is a `hello` action, a webhook rule running it.
fn pack_files(pack_ref: &str, version: &str, actions: &[&str], extra_meta: &str) -> Files {
    let mut f = Files::new();
    f.insert(
        "pack.yaml".into(),
        format!(
            "---\nname: {pack_ref}\nref: {pack_ref}\ndescription: Test pack {pack_ref}\n\
             author: st2 tests\nemail: tests@example.com\nversion: {version}\n{extra_meta}"
        ),
    );
    for a in actions {
        f.insert(
            format!("actions/{a}.yaml"),
            format!(
                "---\nname: {a}\ndescription: Runs {a}\nrunner_type: local-shell-cmd\nenabled: true\n\
                 parameters:\n  cmd:\n    default: \"echo {a} {version}\"\n"
            ),
        );
    }
    if actions.contains(&"hello") {
        f.insert(
            "rules/on_hook.yaml".into(),
            format!(
                "---\nname: on_hook\npack: {pack_ref}\ndescription: Say hello on a webhook\nenabled: true\n\
                 trigger:\n  type: core.st2.webhook\n  parameters:\n    url: {pack_ref}\n\
                 action:\n  ref: {pack_ref}.hello\n"
            ),
        );
    }
    f
}

fn with(mut files: Files, path: &str, text: &str) -> Files {
    files.insert(path.into(), text.into());
    files
}

fn write_files(dir: &Path, files: &Files) {
    for (path, text) in files {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().expect("file has a parent")).expect("mkdir");
        std::fs::write(&p, text).expect("write fixture");
    }
}

/// A bare git repository built commit by commit, without a working tree.
struct GitRepo {
    repo: Repository,
    path: PathBuf,
}

impl GitRepo {
    fn new(path: PathBuf) -> Self {
        let repo = Repository::init_bare(&path).expect("init bare repo");
        Self { repo, path }
    }

    fn url(&self) -> String {
        format!("file://{}", self.path.display())
    }

    fn tree(&self, files: &Files) -> Oid {
        let mut tb = self.repo.treebuilder(None).expect("treebuilder");
        let mut subdirs: BTreeMap<String, Files> = BTreeMap::new();
        for (path, text) in files {
            match path.split_once('/') {
                Some((dir, rest)) => {
                    subdirs
                        .entry(dir.into())
                        .or_default()
                        .insert(rest.into(), text.clone());
                }
                None => {
                    let blob = self.repo.blob(text.as_bytes()).expect("blob");
                    tb.insert(path, blob, 0o100644).expect("insert blob");
                }
            }
        }
        for (dir, sub) in subdirs {
            let t = self.tree(&sub);
            tb.insert(&dir, t, 0o040000).expect("insert tree");
        }
        tb.write().expect("write tree")
    }

    /// Commits `files` as the whole tree on `branch` (created or moved), on top of `parent`.
    fn commit(&self, branch: &str, parent: Option<Oid>, files: &Files) -> Oid {
        let sig = Signature::now("st2 tests", "tests@example.com").expect("signature");
        let tree = self.repo.find_tree(self.tree(files)).expect("tree");
        let parents: Vec<git2::Commit<'_>> = parent
            .map(|p| self.repo.find_commit(p).expect("parent"))
            .into_iter()
            .collect();
        let refs: Vec<&git2::Commit<'_>> = parents.iter().collect();
        let oid = self
            .repo
            .commit(None, &sig, &sig, "commit", &tree, &refs)
            .expect("commit");
        self.repo
            .reference(&format!("refs/heads/{branch}"), oid, true, "branch")
            .expect("branch ref");
        oid
    }

    fn annotated_tag(&self, name: &str, oid: Oid) {
        let sig = Signature::now("st2 tests", "tests@example.com").expect("signature");
        let obj = self.repo.find_object(oid, None).expect("object");
        self.repo.tag(name, &obj, &sig, name, false).expect("tag");
    }

    fn lightweight_tag(&self, name: &str, oid: Oid) {
        let obj = self.repo.find_object(oid, None).expect("object");
        self.repo.tag_lightweight(name, &obj, false).expect("tag");
    }

    fn head(&self, branch: &str) {
        self.repo
            .set_head(&format!("refs/heads/{branch}"))
            .expect("set HEAD");
    }
}

/// The `alpha` repository's commits.
struct Alpha {
    repo: GitRepo,
    /// v0.1.0: actions bye, hello.
    c1: Oid,
    /// v0.2.0: actions greet, hello (bye removed).
    c2: Oid,
    /// main (HEAD): 0.3.0.
    c3: Oid,
}

struct Env {
    tmp: tempfile::TempDir,
    store: Arc<dyn Store>,
    paths: PackPaths,
    mgr: PackManager,
}

fn opts() -> InstallOptions {
    InstallOptions {
        force: false,
        skip_dependencies: false,
        setup_virtualenv: false,
    }
}

fn forced() -> InstallOptions {
    InstallOptions {
        force: true,
        ..opts()
    }
}

impl Env {
    /// A data dir, a system packs dir with a minimal bundled `core` pack (registered), and a
    /// manager.
    async fn new() -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let system = tmp.path().join("system_packs");
        let core = with(
            pack_files("core", "3.9.0", &[], ""),
            "triggers/st2.webhook.yaml",
            WEBHOOK_TRIGGER,
        );
        write_files(&system.join("core"), &core);
        let paths = PackPaths::under_data_dir(&tmp.path().join("data"), Some(&system));
        let store: Arc<dyn Store> =
            Arc::new(EmbeddedStore::open_in_memory().expect("in-memory store"));
        let registrar = Registrar::new(
            store.clone(),
            paths.clone(),
            RegisterOptions {
                types: ContentTypes::ALL,
                fail_on_failure: true,
                ..RegisterOptions::default()
            },
        );
        registrar
            .register_pack_dir(&system.join("core"))
            .await
            .expect("register bundled core");
        let mgr = PackManager::new(store.clone(), paths.clone());
        Self {
            tmp,
            store,
            paths,
            mgr,
        }
    }

    fn git(&self, name: &str) -> GitRepo {
        GitRepo::new(self.tmp.path().join("repos").join(format!("{name}.git")))
    }

    /// A one-commit repository `<pack_ref>.git` tagged `v<version>`.
    fn simple_repo(&self, pack_ref: &str, version: &str, extra_meta: &str) -> GitRepo {
        let g = self.git(pack_ref);
        let c = g.commit(
            "main",
            None,
            &pack_files(pack_ref, version, &["hello"], extra_meta),
        );
        g.annotated_tag(&format!("v{version}"), c);
        g.head("main");
        g
    }

    fn alpha(&self) -> Alpha {
        let repo = self.git("alpha");
        let c1 = repo.commit(
            "main",
            None,
            &pack_files("alpha", "0.1.0", &["hello", "bye"], ""),
        );
        repo.annotated_tag("v0.1.0", c1);
        let c2 = repo.commit(
            "main",
            Some(c1),
            &pack_files("alpha", "0.2.0", &["hello", "greet"], ""),
        );
        repo.lightweight_tag("v0.2.0", c2);
        let c3 = repo.commit(
            "main",
            Some(c2),
            &pack_files("alpha", "0.3.0", &["hello", "greet"], ""),
        );
        repo.commit(
            "feature",
            Some(c1),
            &pack_files("alpha", "0.1.1", &["hello", "bye", "feature_only"], ""),
        );
        let broken = with(
            pack_files("alpha", "0.1.2", &["hello", "bye"], ""),
            "actions/broken.yaml",
            "---\nname: broken\nrunner_type: local-shell-cmd\nenabled: \"yes please\"\n",
        );
        repo.commit("broken", Some(c1), &broken);
        let unregistrable = with(
            pack_files("alpha", "0.1.3", &["hello", "bye"], ""),
            "rules/dangling.yaml",
            "---\nname: dangling\nenabled: true\ntrigger:\n  type: nope.missing\naction:\n  ref: alpha.hello\n",
        );
        repo.commit("unregistrable", Some(c1), &unregistrable);
        repo.head("main");
        Alpha { repo, c1, c2, c3 }
    }

    async fn install(&self, spec: &str, opts: InstallOptions) -> Result<InstallReport, PackError> {
        self.mgr.install(&[spec.to_string()], opts).await
    }

    async fn pack(&self, pack_ref: &str) -> Option<Pack> {
        repo::<Pack>(&*self.store)
            .get_by_ref(pack_ref)
            .await
            .expect("query packs")
    }

    async fn version(&self, pack_ref: &str) -> Option<String> {
        self.pack(pack_ref).await.map(|p| p.version)
    }

    async fn actions(&self, pack_ref: &str) -> Vec<String> {
        let mut names: Vec<String> = repo::<Action>(&*self.store)
            .find(&Query::all().eq("pack", pack_ref))
            .await
            .expect("query actions")
            .into_iter()
            .map(|a| a.name)
            .collect();
        names.sort();
        names
    }

    async fn rules(&self, pack_ref: &str) -> Vec<String> {
        let mut names: Vec<String> = repo::<Rule>(&*self.store)
            .find(&Query::all().eq("pack", pack_ref))
            .await
            .expect("query rules")
            .into_iter()
            .map(|r| r.name)
            .collect();
        names.sort();
        names
    }

    fn installed(&self, pack_ref: &str) -> PathBuf {
        self.paths.install_dir().join(pack_ref)
    }

    fn disk_version(&self, pack_ref: &str) -> Option<String> {
        st2_core::packs::read_pack_meta(&self.installed(pack_ref))
            .ok()
            .map(|p| p.version)
    }

    /// Hidden entries (staging dirs, backups) left in the install and virtualenv dirs.
    fn leftovers(&self) -> Vec<String> {
        let mut out = Vec::new();
        for dir in [
            self.paths.install_dir(),
            self.paths.virtualenvs_dir.as_path(),
        ] {
            let Ok(rd) = std::fs::read_dir(dir) else {
                continue;
            };
            out.extend(
                rd.filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with('.')),
            );
        }
        out
    }
}

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn python3_available() -> bool {
    Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

// ---------------------------------------------------------------------------------------------
// Sources and versions
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn installs_default_branch_from_file_url() {
    let env = Env::new().await;
    let alpha = env.alpha();
    let report = env
        .install(&alpha.repo.url(), opts())
        .await
        .expect("install");

    assert_eq!(report.packs_list(), names(&["alpha"]));
    let p = &report.packs[0];
    assert_eq!(p.version, "0.3.0");
    assert_eq!(p.commit.as_deref(), Some(alpha.c3.to_string().as_str()));
    assert_eq!(p.url, alpha.repo.url());
    assert_eq!(p.spec, alpha.repo.url());
    assert_eq!(p.previous_version, None);
    assert_eq!(p.required_by, None);
    assert_eq!(p.path, env.installed("alpha"));

    assert_eq!(env.version("alpha").await.as_deref(), Some("0.3.0"));
    assert_eq!(env.actions("alpha").await, names(&["greet", "hello"]));
    assert_eq!(env.rules("alpha").await, names(&["on_hook"]));
    assert!(env.installed("alpha").join("pack.yaml").is_file());
    // The clone's history is kept (like StackStorm), checked out at the installed commit.
    let installed =
        Repository::open(env.installed("alpha")).expect("installed copy is a git checkout");
    assert_eq!(installed.head().expect("HEAD").target(), Some(alpha.c3));
    assert!(env.leftovers().is_empty(), "{:?}", env.leftovers());
}

#[tokio::test]
async fn installs_tags_semver_branches_and_commits() {
    let env = Env::new().await;
    let alpha = env.alpha();
    let url = alpha.repo.url();
    let cases: Vec<(String, &str, Oid, Vec<String>)> = vec![
        (
            format!("{url}=v0.1.0"),
            "0.1.0",
            alpha.c1,
            names(&["bye", "hello"]),
        ),
        (
            format!("{url}=0.2.0"),
            "0.2.0",
            alpha.c2,
            names(&["greet", "hello"]),
        ),
        (
            format!("{url}=feature"),
            "0.1.1",
            Oid::zero(),
            names(&["bye", "feature_only", "hello"]),
        ),
        (
            format!("{url}={}", alpha.c2),
            "0.2.0",
            alpha.c2,
            names(&["greet", "hello"]),
        ),
        (
            format!("{url}={}", &alpha.c1.to_string()[..10]),
            "0.1.0",
            alpha.c1,
            names(&["bye", "hello"]),
        ),
        (
            format!("{url}=main"),
            "0.3.0",
            alpha.c3,
            names(&["greet", "hello"]),
        ),
    ];
    for (spec, version, commit, actions) in cases {
        let report = env
            .install(&spec, opts())
            .await
            .unwrap_or_else(|e| panic!("{spec}: {e}"));
        assert_eq!(report.packs[0].version, version, "{spec}");
        if !commit.is_zero() {
            assert_eq!(report.packs[0].commit, Some(commit.to_string()), "{spec}");
        }
        assert_eq!(
            env.version("alpha").await.as_deref(),
            Some(version),
            "{spec}"
        );
        assert_eq!(
            env.disk_version("alpha").as_deref(),
            Some(version),
            "{spec}"
        );
        assert_eq!(env.actions("alpha").await, actions, "{spec}");
    }
    // A branch install leaves the checkout on that branch.
    env.install(&format!("{url}=feature"), opts())
        .await
        .expect("branch");
    let installed = Repository::open(env.installed("alpha")).expect("git checkout");
    assert_eq!(installed.head().expect("HEAD").shorthand(), Some("feature"));
    assert!(env.leftovers().is_empty(), "{:?}", env.leftovers());
}

#[tokio::test]
async fn upgrade_and_downgrade_swap_registered_content() {
    let env = Env::new().await;
    let url = env.alpha().repo.url();

    env.install(&format!("{url}=0.1.0"), opts())
        .await
        .expect("0.1.0");
    assert_eq!(env.actions("alpha").await, names(&["bye", "hello"]));

    let up = env
        .install(&format!("{url}=0.2.0"), opts())
        .await
        .expect("upgrade");
    assert_eq!(up.packs[0].previous_version.as_deref(), Some("0.1.0"));
    assert_eq!(env.version("alpha").await.as_deref(), Some("0.2.0"));
    // `bye` is gone from 0.2.0: unregistered, and gone from disk.
    assert_eq!(env.actions("alpha").await, names(&["greet", "hello"]));
    assert!(!env.installed("alpha").join("actions/bye.yaml").exists());
    let hello = repo::<Action>(&*env.store)
        .get_by_ref("alpha.hello")
        .await
        .expect("query")
        .expect("hello");
    assert_eq!(
        hello.parameters["cmd"].default,
        Some(serde_json::json!("echo hello 0.2.0"))
    );

    let down = env
        .install(&format!("{url}=v0.1.0"), opts())
        .await
        .expect("downgrade");
    assert_eq!(down.packs[0].previous_version.as_deref(), Some("0.2.0"));
    assert_eq!(env.version("alpha").await.as_deref(), Some("0.1.0"));
    assert_eq!(env.actions("alpha").await, names(&["bye", "hello"]));
    assert!(!env.installed("alpha").join("actions/greet.yaml").exists());
    assert_eq!(env.rules("alpha").await, names(&["on_hook"]));
    assert!(env.leftovers().is_empty(), "{:?}", env.leftovers());
}

#[tokio::test]
async fn unknown_ref_lists_version_tags() {
    let env = Env::new().await;
    let url = env.alpha().repo.url();
    let spec = format!("{url}=nope");
    let err = env.install(&spec, opts()).await.expect_err("unknown ref");
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("\"{spec}\"")),
        "names the spec: {msg}"
    );
    assert!(msg.contains("\"nope\" is not a valid version"), "{msg}");
    assert!(msg.contains("v0.1.0, v0.2.0"), "lists the versions: {msg}");
    match err.root() {
        PackError::UnknownRef {
            available,
            reference,
            ..
        } => {
            assert_eq!(reference, "nope");
            assert_eq!(available, &names(&["v0.1.0", "v0.2.0"]));
        }
        other => panic!("expected UnknownRef, got {other:?}"),
    }
    // A semver version with no tag is unknown too.
    let err = env
        .install(&format!("{url}=9.9.9"), opts())
        .await
        .expect_err("no such version");
    assert!(matches!(err.root(), PackError::UnknownRef { .. }), "{err}");
    assert!(env.pack("alpha").await.is_none());
    assert!(!env.installed("alpha").exists());
    assert!(env.leftovers().is_empty(), "{:?}", env.leftovers());
}

#[tokio::test]
async fn copies_plain_directories() {
    let env = Env::new().await;
    let dir = env.tmp.path().join("plain").join("beta");
    write_files(&dir, &pack_files("beta", "1.0.0", &["hello"], ""));
    let url = format!("file://{}", dir.display());

    let report = env.install(&url, opts()).await.expect("install plain dir");
    assert_eq!(report.packs[0].commit, None);
    assert_eq!(env.version("beta").await.as_deref(), Some("1.0.0"));
    assert_eq!(env.actions("beta").await, names(&["hello"]));
    assert!(env.installed("beta").join("actions/hello.yaml").is_file());
    assert!(!env.installed("beta").join(".git").exists());
    // The source is copied, not moved.
    assert!(dir.join("pack.yaml").is_file());

    let err = env
        .install(&format!("{url}=v1.0.0"), opts())
        .await
        .expect_err("pin on a plain dir");
    assert!(err.to_string().contains("not a git repository"), "{err}");

    let missing = format!("file://{}", env.tmp.path().join("nowhere").display());
    let err = env
        .install(&missing, opts())
        .await
        .expect_err("missing dir");
    assert!(err.to_string().contains("does not exist"), "{err}");

    let not_a_pack = env.tmp.path().join("plain").join("empty");
    std::fs::create_dir_all(&not_a_pack).expect("mkdir");
    let err = env
        .install(&format!("file://{}", not_a_pack.display()), opts())
        .await
        .expect_err("no pack.yaml");
    assert!(err.to_string().contains("pack.yaml is missing"), "{err}");
    assert!(env.leftovers().is_empty(), "{:?}", env.leftovers());
}

#[tokio::test]
async fn installs_by_index_name() {
    let mut env = Env::new().await;
    let url = env.alpha().repo.url();
    let index_file = env.tmp.path().join("index.json");
    let index = serde_json::json!({
        "metadata": {"generated_ts": 1_700_000_000, "hash": "x"},
        "packs": {
            "alpha": {"name": "alpha", "description": "Alpha test pack", "keywords": ["greeting"],
                      "version": "0.2.0", "author": "st2 tests", "email": "tests@example.com",
                      "repo_url": url},
            "ghost": {"name": "ghost", "description": "Not there", "version": "1.0.0",
                      "author": "st2 tests", "repo_url": "ghost"}
        }
    });
    std::fs::write(&index_file, index.to_string()).expect("write index");

    let err = env
        .install("alpha", opts())
        .await
        .expect_err("no index configured");
    assert!(
        err.to_string().contains("no pack index is configured"),
        "{err}"
    );

    env.mgr.index_urls = vec![format!("file://{}", index_file.display())];
    let index = PackIndex::load_all(&env.mgr.index_urls).await.ok();
    assert_eq!(index.as_ref().map(|i| i.search("greet").len()), Some(1));

    // No pin: the index version's tag, not the newer default branch.
    let report = env.install("alpha", opts()).await.expect("install by name");
    assert_eq!(report.packs[0].version, "0.2.0");
    assert_eq!(report.packs[0].url, url);
    assert_eq!(env.version("alpha").await.as_deref(), Some("0.2.0"));

    env.install("alpha=0.1.0", opts())
        .await
        .expect("pinned by name");
    assert_eq!(env.version("alpha").await.as_deref(), Some("0.1.0"));

    let err = env
        .install("nonexistent", opts())
        .await
        .expect_err("unknown name");
    assert!(
        err.to_string()
            .contains("no record of the \"nonexistent\" pack in the index"),
        "{err}"
    );
    let err = env
        .install("ghost", opts())
        .await
        .expect_err("bad repo_url");
    assert!(err.to_string().contains("not a URL"), "{err}");
}

/// Serves `body` as `/v1/index.json` on a local port; the index's URL.
async fn serve_index(body: String) -> String {
    let app = axum::Router::new().route(
        "/v1/index.json",
        axum::routing::get(move || {
            let body = body.clone();
            async move { body }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/v1/index.json")
}

#[tokio::test]
async fn installs_by_name_from_a_remote_index_fetched_when_needed() {
    let mut env = Env::new().await;
    let url = env.alpha().repo.url();
    // An index nobody serves: a URL install must not need it.
    env.mgr.index_urls = vec!["http://127.0.0.1:9/v1/index.json".into()];
    env.install(&url, opts()).await.expect("install by URL");
    let err = env
        .install("alpha", opts())
        .await
        .expect_err("the index cannot be fetched");
    assert!(
        err.to_string().contains("cannot look up \"alpha\"")
            && err.to_string().contains("127.0.0.1:9"),
        "{err}"
    );

    let mut env = Env::new().await;
    let url = env.alpha().repo.url();
    let index = serde_json::json!({
        "metadata": {},
        "packs": {"alpha": {"name": "alpha", "description": "Alpha", "version": "0.2.0",
                            "author": "st2 tests", "repo_url": url}}
    });
    env.mgr.index_urls = vec![serve_index(index.to_string()).await];
    let report = env.install("alpha", opts()).await.expect("install by name");
    assert_eq!(report.packs[0].version, "0.2.0");
    assert_eq!(report.packs[0].url, url);
    assert_eq!(env.version("alpha").await.as_deref(), Some("0.2.0"));
}

// ---------------------------------------------------------------------------------------------
// Dependencies
// ---------------------------------------------------------------------------------------------

fn dependency_chain(env: &Env) -> (GitRepo, GitRepo, GitRepo) {
    let c = env.git("gamma_c");
    let c1 = c.commit(
        "main",
        None,
        &pack_files("gamma_c", "0.1.0", &["hello"], ""),
    );
    c.annotated_tag("v0.1.0", c1);
    let c2 = c.commit(
        "main",
        Some(c1),
        &pack_files("gamma_c", "0.2.0", &["hello"], ""),
    );
    c.annotated_tag("v0.2.0", c2);
    c.head("main");
    let b = env.simple_repo(
        "gamma_b",
        "1.0.0",
        &format!("dependencies:\n  - \"{}=0.1.0\"\n", c.url()),
    );
    let a = env.simple_repo(
        "gamma_a",
        "1.0.0",
        &format!("dependencies:\n  - \"{}\"\n", b.url()),
    );
    (a, b, c)
}

#[tokio::test]
async fn installs_dependencies_recursively_dependencies_first() {
    let env = Env::new().await;
    let (a, b, c) = dependency_chain(&env);
    let report = env
        .install(&a.url(), opts())
        .await
        .expect("install with dependencies");

    assert_eq!(
        report.packs_list(),
        names(&["gamma_c", "gamma_b", "gamma_a"])
    );
    assert_eq!(
        report.packs[0].version, "0.1.0",
        "the pinned version, not main"
    );
    assert_eq!(report.packs[0].spec, format!("{}=0.1.0", c.url()));
    assert_eq!(report.packs[0].required_by.as_deref(), Some("gamma_b"));
    assert_eq!(report.packs[1].spec, b.url());
    assert_eq!(report.packs[1].required_by.as_deref(), Some("gamma_a"));
    assert_eq!(report.packs[2].required_by, None);
    for r in ["gamma_a", "gamma_b", "gamma_c"] {
        assert!(env.pack(r).await.is_some(), "{r} registered");
        assert_eq!(env.actions(r).await, names(&["hello"]), "{r}");
    }

    // Installing again: the dependencies are already there and are not reinstalled.
    let again = env.install(&a.url(), opts()).await.expect("reinstall");
    assert_eq!(again.packs_list(), names(&["gamma_a"]));
    assert_eq!(again.already_installed, names(&["gamma_b 1.0.0"]));
    assert!(env.leftovers().is_empty(), "{:?}", env.leftovers());
}

#[tokio::test]
async fn skip_dependencies_installs_only_the_pack() {
    let env = Env::new().await;
    let (a, _, _) = dependency_chain(&env);
    let o = InstallOptions {
        skip_dependencies: true,
        ..opts()
    };
    let report = env.install(&a.url(), o).await.expect("install");
    assert_eq!(report.packs_list(), names(&["gamma_a"]));
    assert!(env.pack("gamma_b").await.is_none());
}

#[tokio::test]
async fn dependency_cycles_stop() {
    let env = Env::new().await;
    // p → q → p: the second p is the one being installed.
    let p_url = format!(
        "file://{}",
        env.tmp.path().join("repos/cyc_p.git").display()
    );
    let q = env.simple_repo(
        "cyc_q",
        "1.0.0",
        &format!("dependencies:\n  - \"{p_url}\"\n"),
    );
    let p = env.simple_repo(
        "cyc_p",
        "1.0.0",
        &format!("dependencies:\n  - \"{}\"\n", q.url()),
    );
    assert_eq!(p.url(), p_url);
    let report = env.install(&p.url(), opts()).await.expect("cycle");
    assert_eq!(report.packs_list(), names(&["cyc_q", "cyc_p"]));
}

#[tokio::test]
async fn dependency_nesting_is_limited() {
    let env = Env::new().await;
    // n0 → n1 → n2 → n3 → n4: n4 is beyond the limit of 3 levels.
    let mut prev: Option<GitRepo> = None;
    for i in (0..5).rev() {
        let deps = prev
            .as_ref()
            .map(|r| format!("dependencies:\n  - \"{}\"\n", r.url()))
            .unwrap_or_default();
        prev = Some(env.simple_repo(&format!("nest{i}"), "1.0.0", &deps));
    }
    let top = prev.expect("n0");
    let report = env.install(&top.url(), opts()).await.expect("install");
    assert_eq!(
        report.packs_list(),
        names(&["nest3", "nest2", "nest1", "nest0"])
    );
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.contains("nest4") && w.contains("3 levels")),
        "{:?}",
        report.warnings
    );
}

#[tokio::test]
async fn conflicting_dependency_versions() {
    let env = Env::new().await;
    let (_, _, c) = dependency_chain(&env);
    env.install(&format!("{}=0.1.0", c.url()), opts())
        .await
        .expect("gamma_c 0.1.0");

    // delta wants gamma_c 0.2.0 but 0.1.0 is installed.
    let d = env.simple_repo(
        "delta",
        "1.0.0",
        &format!("dependencies:\n  - \"{}=0.2.0\"\n", c.url()),
    );
    let err = env.install(&d.url(), opts()).await.expect_err("conflict");
    let msg = err.to_string();
    assert!(matches!(err, PackError::DependencyConflict(_)), "{msg}");
    assert!(
        msg.contains("delta") && msg.contains("0.2.0") && msg.contains("gamma_c\" 0.1.0"),
        "{msg}"
    );
    assert!(
        env.pack("delta").await.is_none(),
        "nothing installed on conflict"
    );

    // With force the installed version is kept and the conflict reported.
    let report = env.install(&d.url(), forced()).await.expect("forced");
    assert_eq!(report.packs_list(), names(&["delta"]));
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.contains("0.2.0") && w.contains("force")),
        "{:?}",
        report.warnings
    );
    assert_eq!(env.version("gamma_c").await.as_deref(), Some("0.1.0"));

    // Within one install: eps wants gamma_c=0.2.0 and gamma_b, which wants gamma_c=0.1.0.
    let env = Env::new().await;
    let (_, b2, c2) = dependency_chain(&env);
    let eps = env.simple_repo(
        "eps",
        "1.0.0",
        &format!(
            "dependencies:\n  - \"{}=0.2.0\"\n  - \"{}\"\n",
            c2.url(),
            b2.url()
        ),
    );
    let err = env
        .install(&eps.url(), opts())
        .await
        .expect_err("conflict within the run");
    let msg = err.to_string();
    assert!(
        msg.contains("gamma_b") && msg.contains("0.1.0") && msg.contains("version 0.2.0"),
        "{msg}"
    );
    assert!(env.pack("gamma_c").await.is_none());
    assert!(env.leftovers().is_empty(), "{:?}", env.leftovers());
}

#[tokio::test]
async fn failing_dependency_names_both_specs() {
    let env = Env::new().await;
    let missing = format!(
        "file://{}",
        env.tmp.path().join("repos/missing.git").display()
    );
    let a = env.simple_repo(
        "needy",
        "1.0.0",
        &format!("dependencies:\n  - \"{missing}\"\n"),
    );
    let err = env
        .install(&a.url(), opts())
        .await
        .expect_err("missing dependency");
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("cannot install \"{}\"", a.url())) && msg.contains(&missing),
        "{msg}"
    );
    assert!(env.pack("needy").await.is_none());
}

// ---------------------------------------------------------------------------------------------
// Safety
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn stackstorm_and_python_versions_are_checked_unless_forced() {
    let env = Env::new().await;
    let future = env.simple_repo("future", "1.0.0", "stackstorm_version: \">=99.0.0\"\n");
    let err = env
        .install(&future.url(), opts())
        .await
        .expect_err("too new");
    let msg = err.to_string();
    assert!(
        matches!(err.root(), PackError::Incompatible { .. }),
        "{msg}"
    );
    assert!(
        msg.contains(">=99.0.0") && msg.contains("3.9.0") && msg.contains("force"),
        "{msg}"
    );
    assert!(env.pack("future").await.is_none());
    let report = env.install(&future.url(), forced()).await.expect("forced");
    assert!(
        report.warnings.iter().any(|w| w.contains(">=99.0.0")),
        "{:?}",
        report.warnings
    );
    assert!(env.pack("future").await.is_some());

    let fine = env.simple_repo(
        "fine",
        "1.0.0",
        "stackstorm_version: \">=3.0.0, <4.0.0\"\npython_versions:\n  - \"2\"\n  - \"3\"\n",
    );
    env.install(&fine.url(), opts()).await.expect("compatible");

    let py2 = env.simple_repo("oldpy", "1.0.0", "python_versions:\n  - \"2\"\n");
    let err = env
        .install(&py2.url(), opts())
        .await
        .expect_err("python 2 only");
    assert!(err.to_string().contains("Python 2"), "{err}");
    env.install(&py2.url(), forced())
        .await
        .expect("forced python 2");
}

#[tokio::test]
async fn invalid_new_version_keeps_the_old_one() {
    let env = Env::new().await;
    let url = env.alpha().repo.url();
    env.install(&format!("{url}=v0.1.0"), opts())
        .await
        .expect("0.1.0");

    // Invalid metadata: refused before the installed pack is touched.
    let err = env
        .install(&format!("{url}=broken"), opts())
        .await
        .expect_err("broken action");
    let msg = err.to_string();
    assert!(matches!(err.root(), PackError::InvalidContent(_)), "{msg}");
    assert!(
        msg.contains("actions/broken.yaml") && msg.contains("/enabled"),
        "names file and field: {msg}"
    );
    assert!(!msg.contains(".staging"), "no temporary paths: {msg}");
    assert_eq!(env.disk_version("alpha").as_deref(), Some("0.1.0"));
    assert_eq!(env.version("alpha").await.as_deref(), Some("0.1.0"));
    assert_eq!(env.actions("alpha").await, names(&["bye", "hello"]));

    // Valid files but registration fails (unknown trigger type): rolled back after the swap.
    let err = env
        .install(&format!("{url}=unregistrable"), opts())
        .await
        .expect_err("dangling rule");
    let msg = err.to_string();
    assert!(
        msg.contains("nope.missing") && msg.contains("rules/dangling.yaml"),
        "{msg}"
    );
    assert_eq!(env.disk_version("alpha").as_deref(), Some("0.1.0"));
    assert!(!env.installed("alpha").join("rules/dangling.yaml").exists());
    assert_eq!(env.version("alpha").await.as_deref(), Some("0.1.0"));
    assert_eq!(env.rules("alpha").await, names(&["on_hook"]));
    assert!(env.leftovers().is_empty(), "{:?}", env.leftovers());
}

#[tokio::test]
async fn reserved_pack_names_need_force() {
    let env = Env::new().await;
    let fake_core = env.simple_repo("core", "9.0.0", "");
    let err = env
        .install(&fake_core.url(), opts())
        .await
        .expect_err("reserved");
    assert!(err.to_string().contains("reserved pack name"), "{err}");
    assert_eq!(env.version("core").await.as_deref(), Some("3.9.0"));
}

#[tokio::test]
async fn concurrent_installs_of_one_pack_do_not_interleave() {
    let env = Env::new().await;
    let url = env.alpha().repo.url();
    let (s1, s2) = (format!("{url}=0.1.0"), format!("{url}=0.2.0"));
    let (r1, r2) = tokio::join!(env.install(&s1, opts()), env.install(&s2, opts()));
    r1.expect("first");
    r2.expect("second");
    let disk = env.disk_version("alpha").expect("installed");
    assert_eq!(
        env.version("alpha").await,
        Some(disk.clone()),
        "store matches disk"
    );
    let want = if disk == "0.1.0" {
        names(&["bye", "hello"])
    } else {
        names(&["greet", "hello"])
    };
    assert_eq!(env.actions("alpha").await, want);
    assert!(env.leftovers().is_empty(), "{:?}", env.leftovers());
}

// ---------------------------------------------------------------------------------------------
// Removal
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn remove_unregisters_and_deletes_but_keeps_the_config() {
    let env = Env::new().await;
    let url = env.alpha().repo.url();
    env.install(&url, opts()).await.expect("install");
    std::fs::create_dir_all(&env.paths.configs_dir).expect("mkdir configs");
    let config = env.paths.config_file("alpha");
    std::fs::write(&config, "greeting: hi\n").expect("write config");
    std::fs::create_dir_all(env.paths.virtualenv("alpha").join("bin")).expect("fake venv");

    let report = env.mgr.remove(&names(&["alpha"])).await.expect("remove");
    assert_eq!(report.packs.len(), 1);
    let r = &report.packs[0];
    assert!(r.unregistered && r.virtualenv_removed);
    assert_eq!(r.path.as_deref(), Some(env.installed("alpha").as_path()));
    assert!(env.pack("alpha").await.is_none());
    assert!(env.actions("alpha").await.is_empty());
    assert!(env.rules("alpha").await.is_empty());
    assert!(!env.installed("alpha").exists());
    assert!(!env.paths.virtualenv("alpha").exists());
    assert!(config.is_file(), "configs are kept");

    let err = env
        .mgr
        .remove(&names(&["alpha"]))
        .await
        .expect_err("already removed");
    assert!(matches!(err, PackError::NotFound(_)), "{err}");

    // Bundled packs stay.
    let err = env
        .mgr
        .remove(&names(&["core"]))
        .await
        .expect_err("bundled");
    assert!(err.to_string().contains("cannot be removed"), "{err}");
    assert!(env.pack("core").await.is_some());

    // Every ref is checked before anything is removed.
    env.install(&url, opts()).await.expect("install again");
    let err = env
        .mgr
        .remove(&names(&["alpha", "nope"]))
        .await
        .expect_err("unknown ref");
    assert!(matches!(err, PackError::NotFound(_)), "{err}");
    assert!(env.pack("alpha").await.is_some());
}

// ---------------------------------------------------------------------------------------------
// Virtualenvs
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn virtualenv_with_empty_requirements() {
    if !python3_available() {
        eprintln!("python3 not found: skipping");
        return;
    }
    let env = Env::new().await;
    let g = env.git("venvy");
    let files = with(
        pack_files("venvy", "1.0.0", &["hello"], ""),
        "requirements.txt",
        "# nothing yet\n",
    );
    g.commit("main", None, &files);
    g.head("main");
    let o = InstallOptions {
        setup_virtualenv: true,
        ..opts()
    };
    let report = env.install(&g.url(), o).await.expect("install with venv");
    let venv = report.packs[0].virtualenv.clone().expect("venv reported");
    assert_eq!(venv, env.paths.virtualenv("venvy"));
    assert!(venv.join("bin/python").exists());
    assert!(std::fs::read_to_string(venv.join("pyvenv.cfg"))
        .expect("pyvenv.cfg")
        .contains("include-system-site-packages = true"));
}

/// A pyproject package with an in-tree build backend and no build requirements, so pip can
/// build and install it with `--no-index` (no network).
fn local_python_package(dir: &Path) {
    let backend = r#"import base64, hashlib, os, zipfile

NAME, VERSION = "st2testpkg", "0.1.0"
DIST = NAME + "-" + VERSION + ".dist-info"
FILES = {
    NAME + ".py": "VALUE = 42\n",
    DIST + "/METADATA": "Metadata-Version: 2.1\nName: " + NAME + "\nVersion: " + VERSION + "\n",
    DIST + "/WHEEL": "Wheel-Version: 1.0\nGenerator: st2-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
}


def _digest(text):
    raw = hashlib.sha256(text.encode()).digest()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    name = NAME + "-" + VERSION + "-py3-none-any.whl"
    record = "".join(p + ",sha256=" + _digest(t) + "," + str(len(t.encode())) + "\n" for p, t in FILES.items())
    record += DIST + "/RECORD,,\n"
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w") as z:
        for path, text in FILES.items():
            z.writestr(path, text)
        z.writestr(DIST + "/RECORD", record)
    return name
"#;
    let pyproject =
        "[build-system]\nrequires = []\nbuild-backend = \"backend\"\nbackend-path = [\".\"]\n\n\
                     [project]\nname = \"st2testpkg\"\nversion = \"0.1.0\"\n";
    std::fs::create_dir_all(dir).expect("mkdir");
    std::fs::write(dir.join("backend.py"), backend).expect("write backend");
    std::fs::write(dir.join("pyproject.toml"), pyproject).expect("write pyproject");
}

#[tokio::test]
async fn virtualenv_installs_requirements_offline_and_failures_roll_back() {
    if !python3_available() {
        eprintln!("python3 not found: skipping");
        return;
    }
    let env = Env::new().await;
    let pkg = env.tmp.path().join("pydist").join("st2testpkg");
    local_python_package(&pkg);
    let g = env.git("pyreq");
    let good = with(
        pack_files("pyreq", "1.0.0", &["hello"], ""),
        "requirements.txt",
        &format!("# offline\n--no-index\n{}\n", pkg.display()),
    );
    let c1 = g.commit("main", None, &good);
    g.annotated_tag("v1.0.0", c1);
    let bad = with(
        pack_files("pyreq", "2.0.0", &["hello"], ""),
        "requirements.txt",
        "--no-index\nst2-no-such-package-anywhere==1.0\n",
    );
    g.commit("main", Some(c1), &bad);
    g.head("main");
    let o = InstallOptions {
        setup_virtualenv: true,
        ..opts()
    };

    let report = env
        .install(&format!("{}=1.0.0", g.url()), o)
        .await
        .expect("install with requirements");
    let venv = report.packs[0].virtualenv.clone().expect("venv");
    let out = Command::new(venv.join("bin/python"))
        .args(["-c", "import st2testpkg; print(st2testpkg.VALUE)"])
        .output()
        .expect("run venv python");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "42",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // 2.0.0's requirements cannot be installed: the install fails with pip's message and 1.0.0
    // (files, registration and virtualenv) stays.
    let err = env
        .install(&g.url(), o)
        .await
        .expect_err("unsatisfiable requirement");
    let msg = err.to_string();
    assert!(matches!(err.root(), PackError::Virtualenv { .. }), "{msg}");
    assert!(
        msg.contains("st2-no-such-package-anywhere"),
        "pip's stderr: {msg}"
    );
    assert_eq!(env.disk_version("pyreq").as_deref(), Some("1.0.0"));
    assert_eq!(env.version("pyreq").await.as_deref(), Some("1.0.0"));
    let out = Command::new(venv.join("bin/python"))
        .args(["-c", "import st2testpkg"])
        .output()
        .expect("run venv python");
    assert!(out.status.success(), "old virtualenv restored");
    assert!(env.leftovers().is_empty(), "{:?}", env.leftovers());
}
