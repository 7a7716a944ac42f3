//! Benchmark: registering 100 generated packs with 50 actions, 20 rules and 5 sensors each
//! into a file-backed embedded store, cold and then re-registered. Prints a table with wall
//! time and peak RSS (VmHWM).
//!
//! Usage: `cargo run --release -p st2-tests --bin bench-register [-- PACKS]`

/// mimalloc: the pipeline allocates and frees many small JSON values; glibc malloc spent a
/// third of the CPU on them.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use st2_core::packs::{ContentTypes, PackPaths, RegisterOptions, Registrar};
use st2_core::store::{Collection, EmbeddedStore, Query, Store};

const ACTIONS: usize = 50;
const RULES: usize = 20;
const SENSORS: usize = 5;

fn generate(base: &Path, packs: usize) -> std::io::Result<()> {
    for p in 0..packs {
        let dir = base.join(format!("bench_{p:03}"));
        for sub in ["actions", "rules", "sensors"] {
            std::fs::create_dir_all(dir.join(sub))?;
        }
        std::fs::write(
            dir.join("pack.yaml"),
            format!("ref: bench_{p:03}\nname: bench_{p:03}\ndescription: generated\nauthor: bench\nversion: 1.0.{p}\npython_versions: [\"3\"]\n"),
        )?;
        for a in 0..ACTIONS {
            std::fs::write(
                dir.join(format!("actions/action_{a:02}.yaml")),
                format!(
                    "name: action_{a:02}\ndescription: generated action {a}\nrunner_type: local-shell-cmd\nenabled: true\nparameters:\n  cmd:\n    type: string\n    default: echo {a}\n  count:\n    type: integer\n    default: {a}\n  flag:\n    type: boolean\n    default: false\n"
                ),
            )?;
        }
        for s in 0..SENSORS {
            std::fs::write(
                dir.join(format!("sensors/sensor_{s}.py")),
                "class S: pass\n",
            )?;
            std::fs::write(
                dir.join(format!("sensors/sensor_{s}.yaml")),
                format!(
                    "class_name: Sensor{s}\nentry_point: sensor_{s}.py\ndescription: generated\npoll_interval: 30\ntrigger_types:\n  - name: event_{s}\n    description: generated\n    payload_schema:\n      type: object\n      properties:\n        level:\n          type: string\n"
                ),
            )?;
        }
        for r in 0..RULES {
            let mut y = String::new();
            let _ = write!(
                y,
                "name: rule_{r:02}\ndescription: generated\nenabled: true\ntrigger:\n  type: bench_{p:03}.event_{}\ncriteria:\n  trigger.level:\n    type: equals\n    pattern: critical\naction:\n  ref: bench_{p:03}.action_{r:02}\n  parameters:\n    cmd: \"echo {{{{ trigger.level }}}}\"\n",
                r % SENSORS
            );
            std::fs::write(dir.join(format!("rules/rule_{r:02}.yaml")), y)?;
        }
    }
    Ok(())
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|kb| kb.parse::<f64>().ok())
            })
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let packs: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(100);
    let tmp = tempfile::tempdir()?;
    let packs_dir = tmp.path().join("packs");
    generate(&packs_dir, packs)?;
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(&tmp.path().join("st2.db"))?);
    let paths = PackPaths {
        packs_base_paths: vec![packs_dir],
        configs_dir: tmp.path().join("configs"),
        virtualenvs_dir: tmp.path().join("venvs"),
    };
    let reg = Registrar::new(
        store.clone(),
        paths,
        RegisterOptions {
            types: ContentTypes::ALL,
            ..Default::default()
        },
    );
    println!("| run | packs | actions | rules | sensors | wall (s) | peak RSS (MiB) |");
    println!("|---|---|---|---|---|---|---|");
    for run in ["cold", "re-register"] {
        let t = Instant::now();
        let report = reg.register_all().await?;
        let wall = t.elapsed().as_secs_f64();
        let all = Query::all();
        println!(
            "| {run} | {} | {} | {} | {} | {wall:.3} | {:.1} |",
            report.packs.len(),
            store.count(Collection::Actions, &all).await?,
            store.count(Collection::Rules, &all).await?,
            store.count(Collection::Sensors, &all).await?,
            peak_rss_mib()
        );
    }
    Ok(())
}
