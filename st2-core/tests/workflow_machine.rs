//! The workflow state machine driven through the fixture corpus (`tests/fixtures/workflows`):
//! each `<name>.yaml` runs with the scripted action results of `<name>.expect.yaml`, and the
//! tasks started, timers, final status, output and errors are compared with the expectation.
//! Also: spec checks, pause/resume/cancel, and the cost per transition at scale.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{json, Map, Value};
use st2_core::workflow::machine::{
    ActionStatus, Command, Event, Workflow, WorkflowState, WorkflowStatus,
};
use st2_core::workflow::spec::WorkflowSpec;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/workflows")
}

/// What a scripted run observed.
#[derive(Debug, Default)]
struct Run {
    started: Vec<String>,
    inputs: BTreeMap<String, Vec<Value>>,
    timers: Vec<String>,
    max_in_flight: usize,
    /// Workflow statuses announced (`Command::Status`), in order.
    statuses: Vec<String>,
    finished: Option<(WorkflowStatus, Value)>,
}

/// Runs `wf` to the end: actions complete in the order they were started (scripted results
/// per task, consumed in order; by default success echoing `input.message` as `stdout`),
/// timers fire before actions complete.
fn drive(
    wf: Workflow,
    first: Vec<Command>,
    scripted: &BTreeMap<String, Vec<Value>>,
    max_events: usize,
) -> (Workflow, Run) {
    drive_persisting(wf, first, scripted, max_events, None)
}

/// The persisted form of a workflow: its header and records, written per event as a store
/// would (only the records an event changed).
#[derive(Default)]
struct Store {
    header: Option<Value>,
    ctx: Option<Map<String, Value>>,
    records: BTreeMap<usize, Vec<u8>>,
    items: Vec<Vec<u8>>,
    bytes_written: usize,
}

impl Store {
    fn save(&mut self, wf: &mut Workflow) {
        if self.ctx.is_none() {
            // The initial context is written once (the header leaves it out).
            let ctx = wf.state.header.ctx.clone();
            self.bytes_written += serde_json::to_vec(&ctx).expect("ctx").len();
            self.ctx = Some(ctx);
        }
        let delta = wf.delta();
        let header = serde_json::to_value(&delta.header).expect("header serializes");
        self.bytes_written += header.to_string().len();
        self.header = Some(header);

        for r in delta.records {
            let bytes = serde_json::to_vec(&r).expect("record serializes");
            self.bytes_written += bytes.len();
            self.records.insert(r.instance, bytes);
        }
        for c in delta.items {
            let bytes = serde_json::to_vec(&c).expect("item change serializes");
            self.bytes_written += bytes.len();
            self.items.push(bytes);
        }
    }

    fn load(&self, spec: Arc<WorkflowSpec>) -> Workflow {
        let mut header: st2_core::workflow::machine::WorkflowHeader =
            serde_json::from_value(self.header.clone().expect("saved")).expect("header");
        header.ctx = self.ctx.clone().unwrap_or_default();
        let mut records: Vec<_> = self
            .records
            .values()
            .map(|b| serde_json::from_slice(b).expect("record"))
            .collect();
        let items = self
            .items
            .iter()
            .map(|b| serde_json::from_slice(b).expect("item change"))
            .collect();
        WorkflowState::apply_items(&mut records, items);
        Workflow::restore(spec, WorkflowState::from_parts(header, records), None)
    }
}

fn drive_persisting(
    mut wf: Workflow,
    first: Vec<Command>,
    scripted: &BTreeMap<String, Vec<Value>>,
    max_events: usize,
    mut store: Option<&mut Store>,
) -> (Workflow, Run) {
    let mut run = Run::default();
    let mut in_flight: VecDeque<(usize, Option<usize>, String, Value)> = VecDeque::new();
    let mut timers: VecDeque<usize> = VecDeque::new();
    let mut used: BTreeMap<String, usize> = BTreeMap::new();
    // Inquiries waiting for their response (scripted `pending`): answered once nothing else
    // is in flight, with the scripted result.
    let mut answers: VecDeque<(usize, Value)> = VecDeque::new();
    let mut cmds = first;
    for _ in 0..max_events {
        for cmd in cmds.drain(..) {
            match cmd {
                Command::RunAction {
                    task,
                    instance,
                    item,
                    input,
                    ..
                } => {
                    run.started.push(task.clone());
                    run.inputs
                        .entry(task.clone())
                        .or_default()
                        .push(input.clone());
                    in_flight.push_back((instance, item, task, input));
                    run.max_in_flight = run.max_in_flight.max(in_flight.len());
                }
                Command::ScheduleTimer { task, instance, .. } => {
                    run.timers.push(task);
                    timers.push_back(instance);
                }
                Command::Finished { status, result } => run.finished = Some((status, result)),
                Command::Status(s) => run.statuses.push(s.as_str().to_string()),
                _ => {}
            }
        }
        let event = if let Some(instance) = timers.pop_front() {
            Event::TimerFired { instance }
        } else if let Some((instance, item, task, input)) = in_flight.pop_front() {
            let n = used.entry(task.clone()).or_default();
            let script = scripted
                .get(&task)
                .and_then(|list| list.get(*n).or(list.last()));
            *n += 1;
            if script.is_some_and(|s| s["status"] == "pending") {
                let result = script.map(|s| s["result"].clone()).unwrap_or_default();
                answers.push_back((instance, result));
                cmds = wf.apply(Event::ActionPending { instance });
                if let Some(store) = store.as_deref_mut() {
                    store.save(&mut wf);
                }
                continue;
            }
            let (status, result) = match script {
                Some(s) => (
                    match s["status"].as_str() {
                        Some("failed") => ActionStatus::Failed,
                        Some("timeout") => ActionStatus::Timeout,
                        Some("canceled") => ActionStatus::Canceled,
                        _ => ActionStatus::Succeeded,
                    },
                    s["result"].clone(),
                ),
                None => (ActionStatus::Succeeded, json!({"stdout": input["message"]})),
            };
            Event::ActionCompleted {
                instance,
                item,
                status,
                result,
            }
        } else if let Some((instance, result)) = answers.pop_front() {
            Event::ActionCompleted {
                instance,
                item: None,
                status: ActionStatus::Succeeded,
                result,
            }
        } else {
            break;
        };
        cmds = wf.apply(event);
        if let Some(store) = store.as_deref_mut() {
            store.save(&mut wf);
        }
    }
    (wf, run)
}

fn load_spec(path: &Path) -> Arc<WorkflowSpec> {
    let text = std::fs::read_to_string(path).expect("fixture readable");
    Arc::new(
        WorkflowSpec::parse(&text)
            .unwrap_or_else(|e| panic!("{}: invalid workflow: {e:?}", path.display())),
    )
}

/// `actual` contains every key of `expected` with the same value.
fn subset(expected: &Value, actual: &Value) -> bool {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => e
            .iter()
            .all(|(k, v)| a.get(k).is_some_and(|av| subset(v, av))),
        _ => expected == actual,
    }
}

#[test]
fn fixture_corpus() {
    let mut names: Vec<PathBuf> = std::fs::read_dir(fixtures())
        .expect("fixture folder")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|x| x == "yaml")
                && !p.to_string_lossy().ends_with(".expect.yaml")
        })
        .collect();
    names.sort();
    assert!(names.len() >= 12, "fixture corpus too small: {names:?}");
    for path in names {
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
        let expect_path = path.with_file_name(format!("{name}.expect.yaml"));
        let expect: Value = serde_yaml::from_str(
            &std::fs::read_to_string(&expect_path)
                .unwrap_or_else(|_| panic!("{name}: no expectation")),
        )
        .expect("expectation is YAML");
        let spec = load_spec(&path);
        let input: Map<String, Value> = expect["input"].as_object().cloned().unwrap_or_default();
        let scripted: BTreeMap<String, Vec<Value>> =
            serde_json::from_value(expect.get("results").cloned().unwrap_or(json!({})))
                .expect("results: task -> list");
        let (wf, cmds) = Workflow::new(spec, &input);
        let (wf, run) = drive(wf, cmds, &scripted, 10_000);
        let (status, result) = run.finished.clone().unwrap_or_else(|| {
            panic!(
                "{name}: workflow did not finish: {:?}",
                wf.state.header.status
            )
        });
        let want_tasks: Vec<String> =
            serde_json::from_value(expect["tasks"].clone()).expect("tasks: list");
        assert_eq!(run.started, want_tasks, "{name}: tasks started");
        assert_eq!(
            status.as_str(),
            expect["status"].as_str().unwrap_or("?"),
            "{name}: status ({result})"
        );
        assert_eq!(result["output"], expect["output"], "{name}: output");
        if let Some(statuses) = expect.get("statuses") {
            assert_eq!(json!(run.statuses), *statuses, "{name}: workflow statuses");
        }
        if let Some(timers) = expect.get("timers") {
            assert_eq!(json!(run.timers), *timers, "{name}: timers");
        }
        if let Some(max) = expect.get("max_in_flight") {
            assert_eq!(
                json!(run.max_in_flight),
                *max,
                "{name}: actions in flight at most"
            );
        }
        if let Some(inputs) = expect.get("inputs").and_then(Value::as_object) {
            for (task, want) in inputs {
                assert_eq!(
                    json!(run.inputs.get(task)),
                    *want,
                    "{name}: inputs of {task}"
                );
            }
        }
        match expect.get("errors").and_then(Value::as_array) {
            Some(want) => {
                let got = result["errors"].as_array().cloned().unwrap_or_default();
                assert_eq!(got.len(), want.len(), "{name}: errors {got:?}");
                for (w, g) in want.iter().zip(&got) {
                    assert!(subset(w, g), "{name}: error {g} does not match {w}");
                }
            }
            None => assert!(
                result.get("errors").is_none(),
                "{name}: unexpected errors {result}"
            ),
        }
    }
}

#[test]
fn spec_errors_name_task_and_field() {
    let cases = [
        (
            "version: 1.0\ntasks:\n  t1:\n    action: core.noop\n    next:\n      - do: missing\n",
            Some("t1"),
            "next[0].do",
            "not defined",
        ),
        (
            "version: 1.0\ntasks:\n  noop:\n    action: core.noop\n",
            Some("noop"),
            "",
            "reserved",
        ),
        (
            "version: 1.0\ntasks:\n  t1:\n    action: core.noop\n  a:\n    next: [{do: b}]\n  b:\n    next: [{do: a}]\n",
            Some("a"),
            "",
            "unreachable",
        ),
        (
            "version: 1.0\ntasks:\n  t1:\n    action: core.echo\n    input:\n      message: '{{ 1 + }}'\n",
            Some("t1"),
            "input",
            "JinjaEvaluationException",
        ),
        (
            "version: 1.0\ntasks:\n  t1:\n    action: core.noop\n    next: [{when: '{{ ctx( }}', do: t1}]\n",
            Some("t1"),
            "next[0].when",
            "Jinja",
        ),
        ("version: 1.0\ntasks:\n  t1:\n    bogus: 1\n", None, "bogus", ""),
    ];
    for (text, task, field, reason) in cases {
        let errors = WorkflowSpec::parse(text).expect_err(text);
        assert!(
            errors.iter().any(|e| e.task.as_deref() == task
                && e.field.contains(field)
                && e.to_string().contains(reason)),
            "{text}: {errors:?}"
        );
    }
}

#[test]
fn pause_resume_and_cancel() {
    let spec = load_spec(&fixtures().join("sequential.yaml"));
    let input: Map<String, Value> = json!({"who": "x"}).as_object().cloned().unwrap_or_default();
    let (mut wf, cmds) = Workflow::new(spec.clone(), &input);
    assert!(matches!(cmds.as_slice(), [Command::RunAction { task, .. }] if task == "t1"));
    assert_eq!(
        wf.apply(Event::PauseRequested),
        vec![Command::Status(WorkflowStatus::Pausing)]
    );
    let done = Event::ActionCompleted {
        instance: 0,
        item: None,
        status: ActionStatus::Succeeded,
        result: json!({"stdout": "a"}),
    };
    // t1 completes while pausing: t2 is held, the workflow is paused.
    assert_eq!(
        wf.apply(done),
        vec![Command::Status(WorkflowStatus::Paused)]
    );
    let cmds = wf.apply(Event::ResumeRequested);
    assert!(
        cmds.iter()
            .any(|c| matches!(c, Command::RunAction { task, .. } if task == "t2")),
        "{cmds:?}"
    );
    let cmds = wf.apply(Event::CancelRequested);
    assert!(cmds
        .iter()
        .any(|c| matches!(c, Command::CancelTask { task, .. } if task == "t2")));
    assert_eq!(wf.state.header.status, WorkflowStatus::Canceling);
    let cmds = wf.apply(Event::ActionCompleted {
        instance: 1,
        item: None,
        status: ActionStatus::Canceled,
        result: Value::Null,
    });
    assert!(matches!(
        cmds.last(),
        Some(Command::Finished {
            status: WorkflowStatus::Canceled,
            ..
        })
    ));
}

fn sequence_spec(n: usize) -> Arc<WorkflowSpec> {
    let mut text = String::from("version: 1.0\nvars:\n  - i: 0\ntasks:\n");
    for i in 0..n {
        text.push_str(&format!("  t{i}:\n    action: core.noop\n"));
        if i + 1 < n {
            text.push_str(&format!(
                "    next:\n      - when: '{{{{ succeeded() }}}}'\n        publish: [{{i: '{{{{ ctx().i + 1 }}}}'}}]\n        do: t{}\n",
                i + 1
            ));
        }
    }
    Arc::new(WorkflowSpec::parse(&text).expect("generated spec is valid"))
}

/// Runs an n-task sequence to the end (saving the changed state per event if asked). Its cost
/// per transition is measured by the `bench-workflow` binary, not here.
fn run_sequence(n: usize, persist: bool) {
    let spec = sequence_spec(n);
    let mut store = Store::default();
    let (wf, cmds) = Workflow::new(spec, &Map::new());
    let store = persist.then_some(&mut store);
    let (_, run) = drive_persisting(wf, cmds, &BTreeMap::new(), n + 10, store);
    assert_eq!(run.started.len(), n);
    assert!(matches!(run.finished, Some((WorkflowStatus::Succeeded, _))));
}

#[test]
fn long_sequences_complete_with_and_without_saved_state() {
    run_sequence(100, false);
    run_sequence(1000, false);
    run_sequence(1000, true);
}

#[test]
fn with_items_runs_every_item_within_its_concurrency() {
    for n in [1000, 10_000] {
        let text = "version: 1.0\ninput: [xs]\ntasks:\n  each:\n    with:\n      items: x in {{ ctx().xs }}\n      concurrency: 10\n    action: core.echo message=\"{{ item('x') }}\"\n";
        let spec = Arc::new(WorkflowSpec::parse(text).expect("valid"));
        let input: Map<String, Value> = json!({"xs": (0..n).collect::<Vec<_>>()})
            .as_object()
            .cloned()
            .unwrap_or_default();
        let (wf, cmds) = Workflow::new(spec, &input);
        let (_, run) = drive(wf, cmds, &BTreeMap::new(), n + 10);
        assert_eq!(run.started.len(), n);
        assert_eq!(run.max_in_flight, 10);
        let (status, result) = run.finished.expect("finished");
        assert_eq!(status, WorkflowStatus::Succeeded, "{result}");
    }
}

#[test]
fn restored_from_incremental_saves_the_workflow_completes() {
    let spec = load_spec(&fixtures().join("cycle.yaml"));
    let (mut wf, cmds) = Workflow::new(spec.clone(), &Map::new());
    let mut store = Store::default();
    store.save(&mut wf);
    // Run five events, saving what each changed, then "crash" and reload from the store.
    let (wf, run) = drive_persisting(wf, cmds, &BTreeMap::new(), 3, Some(&mut store));
    assert!(run.finished.is_none());
    let running: Vec<(usize, String)> = wf
        .state
        .records
        .iter()
        .filter(|r| r.status.as_str() == "running")
        .map(|r| (r.instance, r.task.clone()))
        .collect();
    drop(wf);
    let mut restored = store.load(spec);
    assert_eq!(restored.state.active, running.len());
    // The running action completes after the restart; the workflow goes on to the end.
    let mut cmds = Vec::new();
    for (instance, _) in &running {
        cmds.extend(restored.apply(Event::ActionCompleted {
            instance: *instance,
            item: None,
            status: ActionStatus::Succeeded,
            result: json!({}),
        }));
    }
    let (_, run) = drive(restored, cmds, &BTreeMap::new(), 100);
    let (status, result) = run.finished.expect("finished after restore");
    assert_eq!(status, WorkflowStatus::Succeeded);
    assert_eq!(result["output"], json!({"n": 3}));
    assert!(store.bytes_written > 0);
}

#[test]
fn pause_during_with_items_holds_remaining_items() {
    let text = "version: 1.0\ntasks:\n  each:\n    with:\n      items: '{{ [1, 2, 3, 4] }}'\n      concurrency: 2\n    action: core.echo message=\"{{ item() }}\"\n";
    let spec = Arc::new(WorkflowSpec::parse(text).expect("valid"));
    let (mut wf, cmds) = Workflow::new(spec, &Map::new());
    let items = |cmds: &[Command]| -> Vec<usize> {
        cmds.iter()
            .filter_map(|c| match c {
                Command::RunAction { item, .. } => *item,
                _ => None,
            })
            .collect()
    };
    assert_eq!(items(&cmds), vec![0, 1]);
    wf.apply(Event::PauseRequested);
    let done = |i: usize| Event::ActionCompleted {
        instance: 0,
        item: Some(i),
        status: ActionStatus::Succeeded,
        result: json!(i),
    };
    assert!(items(&wf.apply(done(0))).is_empty());
    assert_eq!(
        wf.apply(done(1)),
        vec![Command::Status(WorkflowStatus::Paused)]
    );
    let cmds = wf.apply(Event::ResumeRequested);
    assert_eq!(items(&cmds), vec![2, 3]);
    wf.apply(done(3));
    let cmds = wf.apply(done(2));
    match cmds.last() {
        Some(Command::Finished { status, .. }) => assert_eq!(*status, WorkflowStatus::Succeeded),
        other => panic!("not finished: {other:?}"),
    }
    assert_eq!(wf.state.records[0].result, Some(json!([0, 1, 2, 3])));
}

#[test]
fn cancel_stops_with_items_and_cascades() {
    let text = "version: 1.0\ntasks:\n  each:\n    with:\n      items: '{{ [1, 2, 3] }}'\n      concurrency: 1\n    action: core.noop\n";
    let spec = Arc::new(WorkflowSpec::parse(text).expect("valid"));
    let (mut wf, _) = Workflow::new(spec, &Map::new());
    let cmds = wf.apply(Event::CancelRequested);
    assert_eq!(
        cmds,
        vec![
            Command::Status(WorkflowStatus::Canceling),
            Command::CancelTask {
                task: "each".into(),
                instance: 0
            }
        ]
    );
    let cmds = wf.apply(Event::ActionCompleted {
        instance: 0,
        item: Some(0),
        status: ActionStatus::Canceled,
        result: Value::Null,
    });
    assert!(
        matches!(cmds.last(), Some(Command::Finished { status: WorkflowStatus::Canceled, result }) if result["output"].is_null()),
        "{cmds:?}"
    );
}

#[test]
fn item_completion_reported_twice_counts_once_and_running_actions_lists_started_items() {
    let spec = Arc::new(
        WorkflowSpec::parse(
            "version: 1.0\ntasks:\n  each:\n    with:\n      items: <% range(0, 3) %>\n      concurrency: 2\n    action: core.noop\n",
        )
        .expect("spec"),
    );
    let (mut wf, cmds) = Workflow::new(spec, &Map::new());
    assert_eq!(cmds.len(), 2, "two items at once: {cmds:?}");
    let running = |wf: &Workflow| -> Vec<Option<usize>> {
        wf.running_actions()
            .into_iter()
            .filter_map(|c| match c {
                Command::RunAction { item, .. } => Some(item),
                _ => None,
            })
            .collect()
    };
    assert_eq!(running(&wf), [Some(0), Some(1)]);
    let done = |item| Event::ActionCompleted {
        instance: 0,
        item: Some(item),
        status: ActionStatus::Succeeded,
        result: json!({}),
    };
    let next = wf.apply(done(0));
    assert!(matches!(
        next.as_slice(),
        [Command::RunAction { item: Some(2), .. }]
    ));
    assert!(
        wf.apply(done(0)).is_empty(),
        "a redelivered completion is ignored"
    );
    assert_eq!(running(&wf), [Some(1), Some(2)]);
    wf.apply(done(1));
    let end = wf.apply(done(2));
    assert!(
        matches!(
            end.as_slice(),
            [Command::Finished {
                status: WorkflowStatus::Succeeded,
                ..
            }]
        ),
        "{end:?}"
    );
    assert!(running(&wf).is_empty());
}

#[test]
fn rerun_from_a_failed_task_keeps_the_original_context() {
    let spec = Arc::new(
        WorkflowSpec::parse(
            r#"version: 1.0
tasks:
  a:
    action: core.echo
    next:
      - when: <% succeeded() %>
        publish: [{from_a: <% result().stdout %>}]
        do: b
  b:
    action: core.echo
    next:
      - when: <% succeeded() %>
        publish: [{from_b: <% result().stdout %>}]
output:
  - a: <% ctx().from_a %>
  - b: <% ctx().from_b %>
"#,
        )
        .expect("valid"),
    );
    let script =
        |v: Value| -> BTreeMap<String, Vec<Value>> { serde_json::from_value(v).expect("script") };
    let (wf, cmds) = Workflow::new(spec, &Map::new());
    let first = script(json!({
        "a": [{"result": {"stdout": "A"}}],
        "b": [{"status": "failed", "result": {"stdout": ""}}],
    }));
    let (mut wf, run) = drive(wf, cmds, &first, 100);
    assert_eq!(run.finished.expect("finished").0, WorkflowStatus::Failed);

    let err = wf
        .rerun(&["nowhere".to_string()], &[])
        .expect_err("unknown task");
    assert!(err.contains("nowhere"), "{err}");

    let cmds = wf.rerun(&["b".to_string()], &[]).expect("re-run");
    let second = script(json!({"b": [{"result": {"stdout": "B"}}]}));
    let (_, run) = drive(wf, cmds, &second, 100);
    assert_eq!(run.started, ["b"], "only the re-run task runs");
    let (status, result) = run.finished.expect("finished again");
    assert_eq!(status, WorkflowStatus::Succeeded, "{result}");
    assert_eq!(result, json!({"output": {"a": "A", "b": "B"}}));
}

#[test]
fn with_items_persists_the_same_bytes_per_item_at_any_count_and_restores() {
    let text = "version: 1.0\ninput: [xs]\ntasks:\n  each:\n    with:\n      items: x in <% ctx().xs %>\n      concurrency: 10\n    action: core.echo message=\"{{ item('x') }}\"\n    next:\n      - publish: [{n: <% len(result()) %>}]\noutput:\n  - n: <% ctx().n %>\n";
    let spec = Arc::new(WorkflowSpec::parse(text).expect("valid"));
    let input = |n: usize| -> Map<String, Value> {
        json!({"xs": (0..n).collect::<Vec<_>>()})
            .as_object()
            .cloned()
            .unwrap_or_default()
    };
    let per_item = |n: usize| {
        let (mut wf, cmds) = Workflow::new(spec.clone(), &input(n));
        let mut store = Store::default();
        store.save(&mut wf);
        let (_, run) = drive_persisting(wf, cmds, &BTreeMap::new(), n + 10, Some(&mut store));
        let (status, result) = run.finished.expect("finished");
        assert_eq!(status, WorkflowStatus::Succeeded, "{result}");
        assert_eq!(result["output"]["n"], json!(n));
        store.bytes_written / n
    };
    let (small, large) = (per_item(500), per_item(4_000));
    eprintln!("bytes persisted per item: 500 items {small}, 4,000 items {large}");
    assert!(
        large * 2 < small * 3,
        "per-item bytes grow: {small} then {large}"
    );

    // Half-way, "crash" and reload: the started items run again, the rest follow.
    let n = 100;
    let (mut wf, cmds) = Workflow::new(spec.clone(), &input(n));
    let mut store = Store::default();
    store.save(&mut wf);
    let (wf, _) = drive_persisting(wf, cmds, &BTreeMap::new(), n / 2, Some(&mut store));
    drop(wf);
    let restored = store.load(spec);
    let again = restored.running_actions();
    assert_eq!(again.len(), 10, "the items in flight: {again:?}");
    let (_, run) = drive(restored, again, &BTreeMap::new(), n + 10);
    let (status, result) = run.finished.expect("finished after restore");
    assert_eq!(status, WorkflowStatus::Succeeded, "{result}");
    assert_eq!(result["output"]["n"], json!(n));
}
