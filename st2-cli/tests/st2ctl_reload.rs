//! `st2ctl reload` as a user runs it: the real binary, a data dir, StackStorm's flags.

use std::path::Path;
use std::process::Command;

use st2_core::model::{Action, Pack, Policy, Rule};
use st2_core::store::{repo, EmbeddedStore, Query};

fn repo_root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn st2ctl(data: &Path, args: &[&str]) -> std::process::Output {
    let conf = data.join("st2.conf");
    std::fs::write(
        &conf,
        format!(
            "[system]\ndata_dir = {}\n[content]\nsystem_packs_base_path = {}\n",
            data.display(),
            repo_root().join("packs").display()
        ),
    )
    .expect("write conf");
    Command::new(env!("CARGO_BIN_EXE_st2ctl"))
        .arg("--config")
        .arg(&conf)
        .args(args)
        .env_remove("ST2_DATA_DIR")
        .output()
        .expect("run st2ctl")
}

#[tokio::test]
async fn default_reload_skips_policies_and_register_all_includes_them() {
    let data = tempfile::tempdir().expect("tmp");
    let out = st2ctl(data.path(), &["reload"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("Registered") && stdout.contains("actions"),
        "{stdout}"
    );
    {
        let store = EmbeddedStore::open(&data.path().join("st2.db")).expect("open");
        assert!(repo::<Pack>(&store)
            .get_by_ref("core")
            .await
            .expect("q")
            .is_some());
        assert!(repo::<Action>(&store)
            .get_by_ref("core.local")
            .await
            .expect("q")
            .is_some());
        assert_eq!(
            repo::<Policy>(&store)
                .count(&Query::all())
                .await
                .expect("q"),
            0,
            "policies not in the default set"
        );
    }
    let out = st2ctl(data.path(), &["reload", "--register-all"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let store = EmbeddedStore::open(&data.path().join("st2.db")).expect("open");
    assert!(
        repo::<Policy>(&store)
            .count(&Query::all())
            .await
            .expect("q")
            > 0,
        "--register-all registers policies"
    );
    assert!(repo::<Rule>(&store).count(&Query::all()).await.expect("q") > 0);

    let out = st2ctl(
        data.path(),
        &[
            "reload",
            "--register-actions",
            "--register-setup-virtualenvs",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for pack in ["core", "examples"] {
        let py = data
            .path()
            .join("virtualenvs")
            .join(pack)
            .join("bin")
            .join("python");
        assert!(
            py.exists(),
            "virtualenv of {pack} created at {}",
            py.display()
        );
    }
}

#[test]
fn broken_pack_fails_with_precise_error_unless_no_fail() {
    let data = tempfile::tempdir().expect("tmp");
    let packs = data.path().join("packs");
    std::fs::create_dir_all(packs.join("mine/actions")).expect("mkdir");
    std::fs::write(
        packs.join("mine/pack.yaml"),
        "name: mine\ndescription: d\nauthor: a\nversion: 0.1.0\n",
    )
    .expect("w");
    std::fs::write(
        packs.join("mine/actions/x.yaml"),
        "name: x\nrunner_type: local-shell-cmd\nbogus: 1\n",
    )
    .expect("w");

    let out = st2ctl(data.path(), &["reload", "--register-actions"]);
    assert!(!out.status.success(), "fail-on-failure is the default");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("x.yaml") && stderr.contains("bogus"),
        "{stderr}"
    );

    let out = st2ctl(
        data.path(),
        &[
            "reload",
            "--register-actions",
            "--register-no-fail-on-failure",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("skipped") && stderr.contains("bogus"),
        "{stderr}"
    );
}
