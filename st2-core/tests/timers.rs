//! Timers: schedule computation for the three timer trigger types (table tests, including
//! APScheduler's day_of_week numbering and a DST change), the pure schedule (no drift,
//! coalescing, misfire grace) and the engine on a manual clock (add/remove while asleep,
//! order, no replay of missed fires) plus one short real-time run.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{json, Value};
use st2_core::model::Trigger;
use st2_core::timers::{
    format_executed_at, resume_after, timer_payload, trace_tag, trigger_key, ManualClock, Resume,
    SystemClock, TimerEngine, TimerEngineConfig, TimerError, TimerSchedule, TimerSpec, CRON_TIMER,
    DATE_TIMER, INTERVAL_TIMER,
};
use tokio::sync::{mpsc, oneshot};

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("test time")
        .with_timezone(&Utc)
}

fn t0() -> DateTime<Utc> {
    utc("2024-05-01T10:00:00Z")
}

fn timer(name: &str, trigger_type: &str, parameters: Value) -> Trigger {
    Trigger {
        id: String::new(),
        name: name.into(),
        pack: "core".into(),
        trigger_ref: format!("core.{name}"),
        uid: String::new(),
        trigger_type: trigger_type.into(),
        parameters: parameters.as_object().cloned().expect("object"),
        ref_count: 1,
        description: None,
    }
}

fn spec(trigger_type: &str, parameters: Value) -> TimerSpec {
    TimerSpec::from_trigger(trigger_type, parameters.as_object().expect("object"))
        .unwrap_or_else(|e| panic!("{parameters}: {e}"))
}

/// The first `n` fire times after `start`.
fn fires(spec: &TimerSpec, start: &str, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut at = utc(start);
    for _ in 0..n {
        match spec.next_fire(at) {
            Some(t) => {
                out.push(t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
                at = t;
            }
            None => break,
        }
    }
    out
}

#[test]
fn next_fire_table() {
    let cases: Vec<(&str, Value, &str, Vec<&str>)> = vec![
        // Intervals: one period after the start, then every period.
        (
            INTERVAL_TIMER,
            json!({"unit": "seconds", "delta": 30}),
            "2024-05-01T10:00:00Z",
            vec![
                "2024-05-01T10:00:30.000Z",
                "2024-05-01T10:01:00.000Z",
                "2024-05-01T10:01:30.000Z",
            ],
        ),
        (
            INTERVAL_TIMER,
            json!({"unit": "weeks", "delta": 1}),
            "2024-05-01T10:00:00Z",
            vec!["2024-05-08T10:00:00.000Z", "2024-05-15T10:00:00.000Z"],
        ),
        (
            INTERVAL_TIMER,
            json!({"unit": "milliseconds", "delta": 250, "timezone": "UTC"}),
            "2024-05-01T10:00:00Z",
            vec!["2024-05-01T10:00:00.250Z", "2024-05-01T10:00:00.500Z"],
        ),
        // Dates: once; naive dates in the given timezone.
        (
            DATE_TIMER,
            json!({"date": "2024-12-31 23:59:59"}),
            "2024-05-01T10:00:00Z",
            vec!["2024-12-31T23:59:59.000Z"],
        ),
        (
            DATE_TIMER,
            json!({"date": "2024-12-31T23:59:59", "timezone": "America/New_York"}),
            "2024-05-01T10:00:00Z",
            vec!["2025-01-01T04:59:59.000Z"],
        ),
        (
            DATE_TIMER,
            json!({"date": "2024-01-01T00:00:00Z"}),
            "2024-05-01T10:00:00Z",
            vec![],
        ),
        // Cron: */15 seconds.
        (
            CRON_TIMER,
            json!({"second": "*/15"}),
            "2024-05-01T10:00:07Z",
            vec![
                "2024-05-01T10:00:15.000Z",
                "2024-05-01T10:00:30.000Z",
                "2024-05-01T10:00:45.000Z",
                "2024-05-01T10:01:00.000Z",
            ],
        ),
        // day_of_week 0 = Monday (APScheduler), not Sunday (Unix cron). 2024-05-01 is a Wednesday.
        (
            CRON_TIMER,
            json!({"day_of_week": 0, "hour": 8, "minute": 30}),
            "2024-05-01T10:00:00Z",
            vec!["2024-05-06T08:30:00.000Z", "2024-05-13T08:30:00.000Z"],
        ),
        (
            CRON_TIMER,
            json!({"day_of_week": "6", "hour": 8}),
            "2024-05-01T10:00:00Z",
            vec!["2024-05-05T08:00:00.000Z"],
        ),
        (
            CRON_TIMER,
            json!({"day_of_week": "mon-fri", "hour": "9", "minute": 0}),
            "2024-05-03T09:00:00Z",
            vec!["2024-05-06T09:00:00.000Z", "2024-05-07T09:00:00.000Z"],
        ),
        (
            CRON_TIMER,
            json!({"day_of_week": "sat,sun", "hour": 12}),
            "2024-05-01T00:00:00Z",
            vec![
                "2024-05-04T12:00:00.000Z",
                "2024-05-05T12:00:00.000Z",
                "2024-05-11T12:00:00.000Z",
            ],
        ),
        // Omitted lower fields take their minimum: hour 5 is 05:00:00.
        (
            CRON_TIMER,
            json!({"hour": 5}),
            "2024-05-01T10:00:00Z",
            vec!["2024-05-02T05:00:00.000Z", "2024-05-03T05:00:00.000Z"],
        ),
        (
            CRON_TIMER,
            json!({"month": 1, "day": 1, "hour": 0, "minute": 0, "second": 0}),
            "2024-05-01T10:00:00Z",
            vec!["2025-01-01T00:00:00.000Z", "2026-01-01T00:00:00.000Z"],
        ),
        (
            CRON_TIMER,
            json!({"day": "last", "hour": 23, "minute": 59}),
            "2024-01-31T23:59:00Z",
            vec!["2024-02-29T23:59:00.000Z", "2024-03-31T23:59:00.000Z"],
        ),
        // Timezone: 09:00 in New York is 13:00 UTC in summer, 14:00 in winter.
        (
            CRON_TIMER,
            json!({"hour": 9, "timezone": "America/New_York"}),
            "2024-11-01T00:00:00Z",
            vec![
                "2024-11-01T13:00:00.000Z",
                "2024-11-02T13:00:00.000Z",
                "2024-11-03T14:00:00.000Z",
                "2024-11-04T14:00:00.000Z",
            ],
        ),
        // Spring forward (2024-03-10): 02:30 does not exist; it fires at the jump (03:00 EDT).
        (
            CRON_TIMER,
            json!({"hour": 2, "minute": 30, "timezone": "America/New_York"}),
            "2024-03-09T00:00:00Z",
            vec![
                "2024-03-09T07:30:00.000Z",
                "2024-03-10T07:00:00.000Z",
                "2024-03-11T06:30:00.000Z",
            ],
        ),
        // Fall back (2024-11-03): 01:30 happens twice; it fires once, at the first.
        (
            CRON_TIMER,
            json!({"hour": 1, "minute": 30, "timezone": "America/New_York"}),
            "2024-11-02T12:00:00Z",
            vec!["2024-11-03T05:30:00.000Z", "2024-11-04T06:30:00.000Z"],
        ),
        // Every 30 minutes through the fall-back night: the repeated hour is not fired twice.
        (
            CRON_TIMER,
            json!({"minute": "*/30", "timezone": "America/New_York"}),
            "2024-11-03T04:45:00Z",
            vec![
                "2024-11-03T05:00:00.000Z",
                "2024-11-03T05:30:00.000Z",
                "2024-11-03T07:00:00.000Z",
                "2024-11-03T07:30:00.000Z",
            ],
        ),
    ];
    for (ty, params, start, want) in cases {
        let got = fires(&spec(ty, params.clone()), start, want.len() + 1);
        let want: Vec<String> = want.into_iter().map(String::from).collect();
        let n = want.len();
        assert_eq!(
            &got[..n.min(got.len())],
            &want[..],
            "{ty} {params} from {start}"
        );
        if ty == DATE_TIMER {
            assert_eq!(got.len(), n, "DateTimer fires at most once: {params}");
        }
    }
}

#[test]
fn bad_parameters_are_clear_errors() {
    for (ty, params, needle) in [
        (
            INTERVAL_TIMER,
            json!({"delta": 5}),
            "missing required parameter \"unit\"",
        ),
        (
            INTERVAL_TIMER,
            json!({"unit": "seconds", "delta": -1}),
            "positive",
        ),
        (
            DATE_TIMER,
            json!({"date": "31/12/2024 bad"}),
            "not a date-time",
        ),
        (
            CRON_TIMER,
            json!({"day_of_week": 7}),
            "higher than the maximum value (6)",
        ),
        (CRON_TIMER, json!({"second": "*/0"}), "higher than 0"),
        (
            CRON_TIMER,
            json!({"hour": "9", "timezone": "Nowhere/City"}),
            "unknown timezone",
        ),
        (CRON_TIMER, json!({"minutes": 5}), "\"minutes\""),
        (
            "core.st2.webhook",
            json!({"url": "x"}),
            "not a timer trigger type",
        ),
    ] {
        let err =
            TimerSpec::from_trigger(ty, params.as_object().expect("object")).expect_err("bad");
        assert!(err.to_string().contains(needle), "{params}: {err}");
    }
}

#[test]
fn payload_and_trace_tag_are_stackstorms() {
    let t = timer(
        "abc",
        INTERVAL_TIMER,
        json!({"unit": "seconds", "delta": 5}),
    );
    assert_eq!(
        timer_payload(&t, utc("2014-07-30T05:04:24.578325Z")),
        json!({"executed_at": "2014-07-30 05:04:24.578325+00:00", "schedule": null})
    );
    // Python's str() leaves out a zero fraction.
    assert_eq!(
        format_executed_at(utc("2024-05-01T10:00:00Z")),
        "2024-05-01 10:00:00+00:00"
    );
    assert_eq!(
        format_executed_at(utc("2024-05-01T10:00:00.5Z")),
        "2024-05-01 10:00:00.500000+00:00"
    );
    assert_eq!(trace_tag(&t), "st2.IntervalTimer-abc");
    assert_eq!(trigger_key(&t), "core.abc");
}

#[test]
fn schedule_does_not_drift_coalesces_and_honours_grace() {
    let every_10s = spec(INTERVAL_TIMER, json!({"unit": "seconds", "delta": 10}));
    let t = timer("i", INTERVAL_TIMER, json!({}));
    let mut s = TimerSchedule::new();
    assert_eq!(
        s.add(t.clone(), every_10s.clone(), t0()),
        Some(t0() + TimeDelta::seconds(10))
    );

    // Woken late (0.7 s): fires, and the next run is planned from 10 s, not from 10.7 s.
    let fired = s.due(t0() + TimeDelta::milliseconds(10_700));
    assert_eq!(fired.len(), 1);
    assert_eq!(fired[0].scheduled_at, t0() + TimeDelta::seconds(10));
    assert_eq!(
        fired[0].payload["executed_at"],
        "2024-05-01 10:00:10.700000+00:00"
    );
    assert_eq!(
        s.next_fire_of("core.i"),
        Some(t0() + TimeDelta::seconds(20))
    );
    assert!(s.due(t0() + TimeDelta::seconds(15)).is_empty());

    // Paused through 20 s, 30 s and 40 s, woken at 40.5 s: one coalesced fire for 40 s.
    let fired = s.due(t0() + TimeDelta::milliseconds(40_500));
    assert_eq!(
        fired.iter().map(|f| f.scheduled_at).collect::<Vec<_>>(),
        vec![t0() + TimeDelta::seconds(40)]
    );
    assert_eq!(
        s.next_fire_of("core.i"),
        Some(t0() + TimeDelta::seconds(50))
    );

    // Woken 5 s after the latest run (past the 1 s grace): skipped, still planned ahead.
    assert!(s.due(t0() + TimeDelta::seconds(65)).is_empty());
    assert_eq!(
        s.next_fire_of("core.i"),
        Some(t0() + TimeDelta::seconds(70))
    );

    // A 1 ms timer after an hour's pause costs nothing and does not replay.
    let mut fast = TimerSchedule::new();
    fast.add(
        t.clone(),
        spec(INTERVAL_TIMER, json!({"unit": "milliseconds", "delta": 1})),
        t0(),
    );
    let fired = fast.due(t0() + TimeDelta::hours(1));
    assert_eq!(fired.len(), 1);
    assert_eq!(fired[0].scheduled_at, t0() + TimeDelta::hours(1));

    // A wider grace lets a late fire through.
    let mut lenient = TimerSchedule::new().with_misfire_grace(TimeDelta::seconds(30));
    lenient.add(t.clone(), every_10s, t0());
    assert_eq!(lenient.due(t0() + TimeDelta::seconds(35)).len(), 1);

    // DateTimers fire once and leave; past ones are never planned.
    let d = timer("d", DATE_TIMER, json!({}));
    let once = spec(DATE_TIMER, json!({"date": "2024-05-01T10:00:05Z"}));
    let mut s = TimerSchedule::new();
    assert_eq!(
        s.add(d.clone(), once.clone(), t0()),
        Some(t0() + TimeDelta::seconds(5))
    );
    assert_eq!(s.due(t0() + TimeDelta::seconds(5)).len(), 1);
    assert!(s.is_empty());
    assert_eq!(s.add(d, once, t0() + TimeDelta::seconds(6)), None);
    assert!(s.is_empty());

    // Adding under the same key replaces (StackStorm's update = remove + add).
    let mut s = TimerSchedule::new();
    s.add(
        t.clone(),
        spec(INTERVAL_TIMER, json!({"unit": "seconds", "delta": 10})),
        t0(),
    );
    s.add(
        t,
        spec(INTERVAL_TIMER, json!({"unit": "seconds", "delta": 3})),
        t0(),
    );
    assert_eq!(s.len(), 1);
    assert_eq!(s.next_wakeup(), Some(t0() + TimeDelta::seconds(3)));
}

/// An engine on a manual clock, its fires collected on a channel.
struct Harness {
    clock: ManualClock,
    engine: TimerEngine,
    fired: mpsc::UnboundedReceiver<(String, Value)>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), TimerError>>,
}

impl Harness {
    fn start(setup: impl FnOnce(&TimerEngine)) -> Self {
        let clock = ManualClock::new(t0());
        let engine = TimerEngine::new(Arc::new(clock.clone()));
        setup(&engine);
        let (tx, fired) = mpsc::unbounded_channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let runner = engine.clone();
        let task = tokio::spawn(async move {
            runner
                .run(
                    move |trigger, payload| {
                        let _ = tx.send((trigger.name, payload));
                    },
                    async move {
                        let _ = stopped.await;
                    },
                )
                .await
        });
        Harness {
            clock,
            engine,
            fired,
            stop: Some(stop),
            task,
        }
    }

    /// The next fire (generous timeout: only a broken engine ever waits this long).
    async fn next(&mut self) -> (String, Value) {
        tokio::time::timeout(Duration::from_secs(10), self.fired.recv())
            .await
            .expect("a timer fire")
            .expect("engine alive")
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.await.expect("join").expect("run ok");
    }
}

#[tokio::test]
async fn engine_fires_in_order_without_drift() {
    let mut h = Harness::start(|e| {
        e.add(timer(
            "a",
            INTERVAL_TIMER,
            json!({"unit": "seconds", "delta": 1}),
        ))
        .expect("a");
        e.add(timer(
            "b",
            INTERVAL_TIMER,
            json!({"unit": "milliseconds", "delta": 1500}),
        ))
        .expect("b");
    });
    // Both due in one wake-up (a planned at 1.0 s, b at 1.5 s): planned order.
    h.clock.set(t0() + TimeDelta::milliseconds(1_600));
    let first = h.next().await;
    let second = h.next().await;
    assert_eq!((first.0.as_str(), second.0.as_str()), ("a", "b"));
    assert_eq!(first.1["executed_at"], "2024-05-01 10:00:01.600000+00:00");
    // Woken 0.6 s late, yet the next runs stay on the original grid.
    assert_eq!(
        h.engine.next_fire_of("core.a"),
        Some(t0() + TimeDelta::seconds(2))
    );
    assert_eq!(
        h.engine.next_fire_of("core.b"),
        Some(t0() + TimeDelta::seconds(3))
    );

    h.clock.set(t0() + TimeDelta::seconds(2));
    assert_eq!(h.next().await.0, "a");
    assert_eq!(
        h.engine.next_fire_of("core.a"),
        Some(t0() + TimeDelta::seconds(3))
    );
    h.clock.set(t0() + TimeDelta::seconds(3));
    let (x, y) = (h.next().await, h.next().await);
    assert_eq!(
        (x.0.as_str(), y.0.as_str()),
        ("a", "b"),
        "ties fire in key order"
    );
    h.stop().await;
}

#[tokio::test]
async fn engine_picks_up_adds_and_removes_while_asleep() {
    let mut h = Harness::start(|e| {
        // Far away: the engine goes to sleep until tomorrow.
        e.add(timer("daily", CRON_TIMER, json!({"hour": 3})))
            .expect("daily");
        e.add(timer(
            "doomed",
            DATE_TIMER,
            json!({"date": "2024-05-01T10:00:05Z"}),
        ))
        .expect("doomed");
        e.add(timer(
            "sentinel",
            DATE_TIMER,
            json!({"date": "2024-05-01T10:00:06Z"}),
        ))
        .expect("sentinel");
    });
    h.clock.wait_for_sleepers(1).await;

    // Added while asleep: fires after 1 s without any restart.
    assert_eq!(
        h.engine
            .add(timer(
                "new",
                INTERVAL_TIMER,
                json!({"unit": "seconds", "delta": 1})
            ))
            .expect("new"),
        Some(t0() + TimeDelta::seconds(1))
    );
    h.clock.set(t0() + TimeDelta::seconds(1));
    assert_eq!(h.next().await.0, "new");
    assert!(h.engine.remove("core.new"));

    // Removed while asleep: at 6 s only the sentinel fires ("doomed" would have come first).
    h.clock.wait_for_sleepers(1).await;
    assert!(h.engine.remove("core.doomed"));
    assert!(!h.engine.remove("core.doomed"));
    h.clock.set(t0() + TimeDelta::seconds(6));
    assert_eq!(h.next().await.0, "sentinel");
    assert_eq!(
        h.engine.keys(),
        vec!["core.daily".to_string()],
        "date timers leave after firing"
    );

    // A past DateTimer is not scheduled at all.
    assert_eq!(
        h.engine
            .add(timer("past", DATE_TIMER, json!({"date": "2020-01-01"})))
            .expect("past"),
        None
    );
    // A bad one is refused with the reason.
    let err = h
        .engine
        .add(timer("bad", CRON_TIMER, json!({"day_of_week": "7"})))
        .expect_err("bad");
    assert!(err.to_string().contains("day_of_week"), "{err}");
    h.stop().await;
}

async fn recv(rx: &mut mpsc::UnboundedReceiver<Value>) -> Value {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("fire")
        .expect("alive")
}

#[tokio::test]
async fn missed_fires_while_stopped_are_not_replayed() {
    let clock = ManualClock::new(t0());
    let engine = TimerEngine::with_config(Arc::new(clock.clone()), TimerEngineConfig::default());
    engine
        .add(timer(
            "tick",
            INTERVAL_TIMER,
            json!({"unit": "seconds", "delta": 1}),
        ))
        .expect("tick");
    // Ten runs (1 s … 10 s) pass while nothing runs the engine.
    clock.set(t0() + TimeDelta::milliseconds(10_500));

    let (tx, mut rx) = mpsc::unbounded_channel();
    let (stop, stopped) = oneshot::channel::<()>();
    let runner = engine.clone();
    let task = tokio::spawn(async move {
        runner
            .run(
                move |_, payload: Value| {
                    let _ = tx.send(payload);
                },
                async move {
                    let _ = stopped.await;
                },
            )
            .await
    });
    // One coalesced fire for the 10 s run (0.5 s late, within the grace time) ...
    assert_eq!(
        recv(&mut rx).await["executed_at"],
        "2024-05-01 10:00:10.500000+00:00"
    );
    // ... and the next one is the 11 s run: nothing was replayed in between.
    clock.set(t0() + TimeDelta::seconds(11));
    assert_eq!(
        recv(&mut rx).await["executed_at"],
        "2024-05-01 10:00:11+00:00"
    );

    // One run at a time.
    let again = engine.run(|_, _| {}, async {}).await;
    assert!(matches!(again, Err(TimerError::AlreadyRunning)));

    let _ = stop.send(());
    task.await.expect("join").expect("run ok");
    // Stopped: it can run again.
    engine.run(|_, _| {}, async {}).await.expect("restartable");
}

#[tokio::test]
async fn engine_on_the_real_clock() {
    let engine = TimerEngine::new(Arc::new(SystemClock));
    engine
        .add(timer(
            "fast",
            INTERVAL_TIMER,
            json!({"unit": "milliseconds", "delta": 100}),
        ))
        .expect("fast");
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (stop, stopped) = oneshot::channel::<()>();
    let runner = engine.clone();
    let task = tokio::spawn(async move {
        runner
            .run(
                move |t, payload: Value| {
                    let _ = tx.send((t.name, payload));
                },
                async move {
                    let _ = stopped.await;
                },
            )
            .await
    });
    let mut stamps = Vec::new();
    for _ in 0..3 {
        let (name, payload) = tokio::time::timeout(Duration::from_secs(20), rx.recv())
            .await
            .expect("a fire within 20 s")
            .expect("alive");
        assert_eq!(name, "fast");
        assert_eq!(payload["schedule"], Value::Null);
        stamps.push(payload["executed_at"].as_str().expect("string").to_string());
    }
    // Python-str() timestamps sort chronologically within one day; fires are in order.
    let mut sorted = stamps.clone();
    sorted.sort();
    assert_eq!(stamps, sorted);
    let _ = stop.send(());
    task.await.expect("join").expect("run ok");
}

/// Resuming a timer from its last recorded fire (a takeover): the interval's phase is kept, the
/// latest missed run is caught up once if within the window, a fired DateTimer is done.
#[test]
fn resume_after_takeover_table() {
    let every_2s = spec(INTERVAL_TIMER, json!({"unit": "seconds", "delta": 2}));
    let every_5min = spec(INTERVAL_TIMER, json!({"unit": "minutes", "delta": 5}));
    let every_min = spec(CRON_TIMER, json!({"second": 0}));
    let date = spec(DATE_TIMER, json!({"date": "2024-05-01T10:00:05Z"}));
    let window = TimeDelta::seconds(60);
    let at = |s: &str| Some(utc(s));
    let cases: Vec<(&str, &TimerSpec, &str, &str, Resume)> = vec![
        (
            "interval, nothing missed: next on the old phase",
            &every_2s,
            "2024-05-01T10:00:00Z",
            "2024-05-01T10:00:01.500Z",
            Resume {
                catch_up: None,
                next: at("2024-05-01T10:00:02Z"),
            },
        ),
        (
            "interval, one run missed: caught up, phase kept",
            &every_2s,
            "2024-05-01T10:00:00Z",
            "2024-05-01T10:00:02.700Z",
            Resume {
                catch_up: at("2024-05-01T10:00:02Z"),
                next: at("2024-05-01T10:00:04Z"),
            },
        ),
        (
            "interval, several missed: only the latest is fired",
            &every_2s,
            "2024-05-01T10:00:00Z",
            "2024-05-01T10:00:07Z",
            Resume {
                catch_up: at("2024-05-01T10:00:06Z"),
                next: at("2024-05-01T10:00:08Z"),
            },
        ),
        (
            "interval, missed run past the window: not fired",
            &every_5min,
            "2024-05-01T10:00:00Z",
            "2024-05-01T10:07:00Z",
            Resume {
                catch_up: None,
                next: at("2024-05-01T10:10:00Z"),
            },
        ),
        (
            "cron, a minute missed",
            &every_min,
            "2024-05-01T10:00:00Z",
            "2024-05-01T10:01:10Z",
            Resume {
                catch_up: at("2024-05-01T10:01:00Z"),
                next: at("2024-05-01T10:02:00Z"),
            },
        ),
        (
            "date timer that fired: done",
            &date,
            "2024-05-01T10:00:05Z",
            "2024-05-01T10:00:06Z",
            Resume {
                catch_up: None,
                next: None,
            },
        ),
    ];
    for (what, spec, last, now, want) in cases {
        assert_eq!(
            resume_after(spec, utc(last), utc(now), window),
            want,
            "{what}"
        );
    }
}
