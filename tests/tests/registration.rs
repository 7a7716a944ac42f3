//! Registration end to end: real pack directories on disk, the embedded store, StackStorm's
//! registration semantics (idempotent, removed content unregistered, all-or-nothing).

use std::path::Path;
use std::sync::Arc;

use st2_core::model::{
    Action, Config, ConfigSchema, Pack, Policy, Rule, RunnerType, Sensor, Trigger, TriggerType,
};
use st2_core::packs::{ContentTypes, PackError, PackPaths, RegisterOptions, Registrar};
use st2_core::store::{repo, EmbeddedStore, Query, Store};
use st2_tests::{bundled_packs, copy_dir, fixture_configs, fixture_pack};

fn store() -> Arc<dyn Store> {
    Arc::new(EmbeddedStore::open_in_memory().expect("store"))
}

/// Paths with the bundled packs first, then `extra` (a temp dir of test packs).
fn paths(extra: &Path, configs: &Path) -> PackPaths {
    PackPaths {
        packs_base_paths: vec![bundled_packs(), extra.to_path_buf()],
        configs_dir: configs.to_path_buf(),
        virtualenvs_dir: extra.join(".venvs"),
    }
}

fn registrar(store: &Arc<dyn Store>, paths: PackPaths, fail: bool) -> Registrar {
    Registrar::new(
        store.clone(),
        paths,
        RegisterOptions {
            types: ContentTypes::ALL,
            fail_on_failure: fail,
            ..Default::default()
        },
    )
}

async fn count<T: st2_core::model::Document>(store: &Arc<dyn Store>, q: Query) -> u64 {
    repo::<T>(&**store).count(&q).await.expect("count")
}

#[tokio::test]
async fn bundled_and_exchange_pack_register_end_to_end() {
    let tmp = tempfile::tempdir().expect("tmp");
    copy_dir(
        &fixture_pack("exchange_like"),
        &tmp.path().join("exchange_like"),
    )
    .expect("copy");
    let store = store();
    let reg = registrar(&store, paths(tmp.path(), &fixture_configs()), true);
    let report = reg.register_all().await.expect("register");
    for p in ["core", "packs", "linux", "examples", "exchange_like"] {
        assert!(
            report.packs.contains(&p.to_string()),
            "{p} registered: {:?}",
            report.packs
        );
    }

    // Runner types, with their parameters, as the st2 client needs them.
    let local = repo::<RunnerType>(&*store)
        .find_one(Query::all().eq("name", "local-shell-cmd"))
        .await
        .expect("query")
        .expect("local-shell-cmd registered");
    assert!(local.runner_parameters.contains_key("cmd"));
    assert!(
        local
            .runner_parameters
            .values()
            .all(|p| p.param_type.is_some()),
        "every runner param has a type"
    );

    // core.local with StackStorm's shape.
    let core_local = repo::<Action>(&*store)
        .get_by_ref("core.local")
        .await
        .expect("q")
        .expect("core.local");
    assert_eq!(core_local.runner_type, "local-shell-cmd");
    assert!(core_local.enabled);
    assert_eq!(core_local.uid, "action:core:local");
    assert!(repo::<TriggerType>(&*store)
        .get_by_ref("core.st2.webhook")
        .await
        .expect("q")
        .is_some());
    assert!(repo::<TriggerType>(&*store)
        .get_by_ref("core.st2.IntervalTimer")
        .await
        .expect("q")
        .is_some());

    // The Exchange-style pack: every kind of resource.
    let pack = repo::<Pack>(&*store)
        .get_by_ref("exchange_like")
        .await
        .expect("q")
        .expect("pack");
    assert_eq!(pack.version, "0.1.0");
    assert!(pack.files.iter().any(|f| f == "pack.yaml"));
    let by_pack = Query::all().eq("pack", "exchange_like");
    assert!(count::<Action>(&store, by_pack.clone()).await >= 3);
    assert_eq!(count::<Sensor>(&store, by_pack.clone()).await, 1);
    assert!(count::<Rule>(&store, by_pack.clone()).await >= 2);
    assert!(count::<TriggerType>(&store, by_pack.clone()).await >= 1);
    let sensor = repo::<Sensor>(&*store)
        .find_one(by_pack.clone())
        .await
        .expect("q")
        .expect("sensor");
    assert!(
        !sensor.trigger_types.is_empty(),
        "sensor lists its trigger types"
    );
    for tt in &sensor.trigger_types {
        assert!(
            repo::<TriggerType>(&*store)
                .get_by_ref(tt)
                .await
                .expect("q")
                .is_some(),
            "{tt} registered"
        );
    }
    // Rules point at a registered trigger.
    for rule in repo::<Rule>(&*store).find(&by_pack).await.expect("q") {
        let tref = rule
            .trigger
            .trigger_ref
            .clone()
            .expect("rule has a trigger ref");
        assert!(
            repo::<Trigger>(&*store)
                .get_by_ref(&tref)
                .await
                .expect("q")
                .is_some(),
            "trigger {tref}"
        );
    }
    // Config schema and config, defaults merged.
    let schema = repo::<ConfigSchema>(&*store)
        .find_one(by_pack.clone())
        .await
        .expect("q")
        .expect("schema");
    let config = repo::<Config>(&*store)
        .find_one(by_pack.clone())
        .await
        .expect("q")
        .expect("config");
    for (attr, spec) in &schema.attributes {
        if spec.get("default").is_some() {
            assert!(
                config.values.contains_key(attr),
                "default of {attr} merged into the config"
            );
        }
    }
}

#[tokio::test]
async fn reregister_is_idempotent_and_removes_deleted_content() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("exchange_like");
    copy_dir(&fixture_pack("exchange_like"), &dir).expect("copy");
    let store = store();
    let reg = registrar(&store, paths(tmp.path(), &fixture_configs()), true);
    reg.register_all().await.expect("first");
    let by_pack = Query::all().eq("pack", "exchange_like");
    let before: Vec<Action> = repo::<Action>(&*store).find(&by_pack).await.expect("q");
    let total_before = store
        .count(st2_core::store::Collection::Actions, &Query::all())
        .await
        .expect("c");

    reg.register_all().await.expect("second");
    let after: Vec<Action> = repo::<Action>(&*store).find(&by_pack).await.expect("q");
    assert_eq!(before, after, "same documents, same ids");
    assert_eq!(
        total_before,
        store
            .count(st2_core::store::Collection::Actions, &Query::all())
            .await
            .expect("c")
    );

    // Remove one action file from disk: re-registering unregisters it.
    let victim = &before[0];
    let meta = victim.metadata_file.clone().expect("metadata file");
    std::fs::remove_file(dir.join(&meta)).expect("rm");
    reg.register_all().await.expect("third");
    assert!(repo::<Action>(&*store)
        .get_by_ref(&victim.action_ref)
        .await
        .expect("q")
        .is_none());
    assert_eq!(
        count::<Action>(&store, by_pack.clone()).await,
        before.len() as u64 - 1
    );

    // Remove the whole pack: a full reload unregisters it.
    std::fs::remove_dir_all(&dir).expect("rm pack");
    let report = reg.register_all().await.expect("fourth");
    assert_eq!(report.removed_packs, vec!["exchange_like".to_string()]);
    assert!(repo::<Pack>(&*store)
        .get_by_ref("exchange_like")
        .await
        .expect("q")
        .is_none());
    assert_eq!(count::<Action>(&store, by_pack.clone()).await, 0);
    assert_eq!(count::<Rule>(&store, by_pack).await, 0);
}

fn content_errors(e: PackError) -> Vec<st2_core::schema::ContentError> {
    match e {
        PackError::InvalidContent(errs) => errs,
        other => panic!("expected invalid content, got {other}"),
    }
}

#[tokio::test]
async fn broken_action_registers_nothing_and_keeps_old_version() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("broken_action");
    // First a good version: only the valid files of the fixture.
    copy_dir(&fixture_pack("broken_action"), &dir).expect("copy");
    let store = store();
    let reg = registrar(&store, paths(tmp.path(), &fixture_configs()), true);

    let err = reg
        .register_pack_dir(&dir)
        .await
        .expect_err("broken pack must fail");
    let errs = content_errors(err);
    assert!(!errs.is_empty());
    for e in &errs {
        assert!(
            e.file.starts_with(&dir),
            "error names a file of the pack: {e}"
        );
        assert!(!e.field.is_empty(), "error names a field: {e}");
    }
    let text: String = errs
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        text.contains("unknown field") || text.contains("not allowed"),
        "{text}"
    );
    assert!(
        repo::<Pack>(&*store)
            .get_by_ref("broken_action")
            .await
            .expect("q")
            .is_none(),
        "no half-registered pack"
    );
    assert_eq!(
        count::<Action>(&store, Query::all().eq("pack", "broken_action")).await,
        0
    );

    // Make it valid by removing the broken files, register, then break it again.
    let mut broken: Vec<_> = errs.iter().map(|e| e.file.clone()).collect();
    broken.sort();
    broken.dedup();
    let saved: Vec<(std::path::PathBuf, Vec<u8>)> = broken
        .iter()
        .map(|f| (f.clone(), std::fs::read(f).expect("read")))
        .collect();
    for f in &broken {
        std::fs::remove_file(f).expect("rm");
    }
    reg.register_pack_dir(&dir)
        .await
        .expect("valid version registers");
    let good: Vec<Action> = repo::<Action>(&*store)
        .find(&Query::all().eq("pack", "broken_action"))
        .await
        .expect("q");
    assert!(!good.is_empty());
    for (f, bytes) in saved {
        std::fs::write(f, bytes).expect("restore");
    }
    reg.register_pack_dir(&dir).await.expect_err("broken again");
    let still: Vec<Action> = repo::<Action>(&*store)
        .find(&Query::all().eq("pack", "broken_action"))
        .await
        .expect("q");
    assert_eq!(good, still, "the previous registration is intact");
}

#[tokio::test]
async fn no_fail_on_failure_skips_bad_packs_only() {
    let tmp = tempfile::tempdir().expect("tmp");
    copy_dir(
        &fixture_pack("broken_action"),
        &tmp.path().join("broken_action"),
    )
    .expect("copy");
    copy_dir(
        &fixture_pack("exchange_like"),
        &tmp.path().join("exchange_like"),
    )
    .expect("copy");
    let store = store();
    let err = registrar(&store, paths(tmp.path(), &fixture_configs()), true)
        .register_all()
        .await
        .expect_err("fail on failure is the default");
    assert!(matches!(err, PackError::InvalidContent(_)));
    assert_eq!(
        store
            .count(st2_core::store::Collection::Packs, &Query::all())
            .await
            .expect("c"),
        0,
        "nothing written"
    );

    let report = registrar(&store, paths(tmp.path(), &fixture_configs()), false)
        .register_all()
        .await
        .expect("lenient");
    assert!(report.packs.contains(&"exchange_like".to_string()));
    assert!(!report.packs.contains(&"broken_action".to_string()));
    assert_eq!(report.failures.len(), 1, "{:?}", report.failures);
    assert!(repo::<Pack>(&*store)
        .get_by_ref("core")
        .await
        .expect("q")
        .is_some());
}

#[tokio::test]
async fn bad_config_and_bad_yaml_name_file_and_reason() {
    let tmp = tempfile::tempdir().expect("tmp");
    copy_dir(&fixture_pack("bad_config"), &tmp.path().join("bad_config")).expect("copy");
    let store = store();
    let reg = registrar(&store, paths(tmp.path(), &fixture_configs()), true);
    let errs = content_errors(
        reg.register_pack_dir(&tmp.path().join("bad_config"))
            .await
            .expect_err("bad config"),
    );
    assert!(
        errs.iter()
            .any(|e| e.file.ends_with("configs/bad_config.yaml") && !e.field.is_empty()),
        "{errs:?}"
    );

    let tmp2 = tempfile::tempdir().expect("tmp");
    copy_dir(&fixture_pack("bad_yaml"), &tmp2.path().join("bad_yaml")).expect("copy");
    let reg2 = registrar(&store, paths(tmp2.path(), &fixture_configs()), true);
    let errs = content_errors(
        reg2.register_pack_dir(&tmp2.path().join("bad_yaml"))
            .await
            .expect_err("bad yaml"),
    );
    assert!(
        errs.iter()
            .any(|e| e.reason.contains("YAML syntax error") && e.reason.contains("line")),
        "{errs:?}"
    );
}

#[tokio::test]
async fn unknown_references_are_reported() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("refs");
    std::fs::create_dir_all(dir.join("actions")).expect("mkdir");
    std::fs::create_dir_all(dir.join("rules")).expect("mkdir");
    std::fs::create_dir_all(dir.join("policies")).expect("mkdir");
    std::fs::write(
        dir.join("pack.yaml"),
        "name: refs\ndescription: d\nauthor: a\nversion: 0.1.0\n",
    )
    .expect("w");
    std::fs::write(
        dir.join("actions/a.yaml"),
        "name: a\nrunner_type: no-such-runner\n",
    )
    .expect("w");
    std::fs::write(
        dir.join("actions/b.yaml"),
        "name: b\nrunner_type: local-shell-cmd\nparameters:\n  cmd:\n    type: integer\n",
    )
    .expect("w");
    std::fs::write(
        dir.join("rules/r.yaml"),
        "name: r\nenabled: true\ntrigger:\n  type: nope.missing\ncriteria:\n  trigger.x:\n    type: like\n    pattern: y\naction:\n  ref: core.local\n",
    )
    .expect("w");
    std::fs::write(
        dir.join("policies/p.yaml"),
        "name: p\nresource_ref: refs.b\npolicy_type: action.nothing\n",
    )
    .expect("w");
    let store = store();
    let reg = registrar(&store, paths(tmp.path(), &fixture_configs()), true);
    let errs = content_errors(reg.register_pack_dir(&dir).await.expect_err("bad refs"));
    let has = |field: &str, word: &str| {
        errs.iter()
            .any(|e| e.field == field && e.reason.contains(word))
    };
    assert!(has("/runner_type", "no-such-runner"), "{errs:#?}");
    assert!(
        has("/parameters/cmd/type", "cannot be overridden"),
        "{errs:#?}"
    );
    assert!(has("/trigger/type", "nope.missing"), "{errs:#?}");
    assert!(has("/criteria/trigger.x/type", "like"), "{errs:#?}");
    assert!(has("/policy_type", "action.nothing"), "{errs:#?}");
    assert_eq!(
        store
            .count(
                st2_core::store::Collection::Actions,
                &Query::all().eq("pack", "refs")
            )
            .await
            .expect("c"),
        0
    );
    let _ = count::<Policy>(&store, Query::all()).await;
}
