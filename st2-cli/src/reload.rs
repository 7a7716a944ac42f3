//! `st2ctl reload`: StackStorm's content registration flags, applied to the platform's store.
//!
//! The store is the one the platform uses (embedded file in the data dir, shared safely with a
//! running `st2d`), so registered content is live for the running platform.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;

use st2_core::config::Config;
use st2_core::packs::{ContentTypes, RegisterOptions, Registrar};

/// Flags of `st2ctl reload` (StackStorm's names).
#[derive(Debug, Clone, Default, Args)]
pub struct ReloadArgs {
    /// Register everything: triggers, sensors, runners, actions, rules, aliases, policies, configs.
    #[arg(long)]
    pub register_all: bool,
    /// Register runner types.
    #[arg(long)]
    pub register_runners: bool,
    /// Register actions (implies runners).
    #[arg(long)]
    pub register_actions: bool,
    /// Register rules.
    #[arg(long)]
    pub register_rules: bool,
    /// Register sensors.
    #[arg(long)]
    pub register_sensors: bool,
    /// Register trigger types.
    #[arg(long)]
    pub register_triggers: bool,
    /// Register policies.
    #[arg(long)]
    pub register_policies: bool,
    /// Register action aliases.
    #[arg(long)]
    pub register_aliases: bool,
    /// Register pack configs and config schemas.
    #[arg(long)]
    pub register_configs: bool,
    /// Create or update pack virtualenvs.
    #[arg(long)]
    pub register_setup_virtualenvs: bool,
    /// Fail (exit non-zero, write nothing) on any invalid file. The default.
    #[arg(long, conflicts_with = "register_no_fail_on_failure")]
    pub register_fail_on_failure: bool,
    /// Skip invalid packs instead of failing.
    #[arg(long)]
    pub register_no_fail_on_failure: bool,
    /// Register only the pack in this directory.
    #[arg(long)]
    pub register_pack: Option<PathBuf>,
    /// Print what was registered in detail.
    #[arg(long, short)]
    pub verbose: bool,
}

impl ReloadArgs {
    /// The content types selected; with no `--register-*` flag, StackStorm's default set
    /// (everything but policies).
    pub fn content_types(&self) -> ContentTypes {
        if self.register_all {
            return ContentTypes::ALL;
        }
        let mut t = ContentTypes::NONE;
        t.runners = self.register_runners || self.register_actions;
        t.actions = self.register_actions;
        t.rules = self.register_rules;
        t.sensors = self.register_sensors;
        t.triggers = self.register_triggers;
        t.policies = self.register_policies;
        t.aliases = self.register_aliases;
        t.configs = self.register_configs;
        if t == ContentTypes::NONE {
            ContentTypes::DEFAULT
        } else {
            t
        }
    }
}

/// Runs `st2ctl reload`.
pub fn reload(
    config: Option<&Path>,
    data_dir: Option<&Path>,
    args: &ReloadArgs,
) -> anyhow::Result<ExitCode> {
    let mut cfg = Config::load(config)?;
    if let Some(d) = data_dir {
        cfg.system.data_dir = d.to_path_buf();
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let store = cfg.open_store().await?;
        let opts = RegisterOptions {
            types: args.content_types(),
            fail_on_failure: !args.register_no_fail_on_failure,
            setup_virtualenvs: args.register_setup_virtualenvs,
            python: cfg.actionrunner.python_binary.clone(),
        };
        let registrar = Registrar::new(store, cfg.pack_paths(), opts);
        let report = match &args.register_pack {
            Some(dir) => registrar.register_pack_dir(dir).await,
            None => registrar.register_all().await,
        };
        let report = match report {
            Ok(r) => r,
            Err(e) => {
                eprintln!("ERROR: registration failed, nothing was registered:\n{e}");
                return Ok(ExitCode::FAILURE);
            }
        };
        for (kind, n) in &report.counts {
            println!("Registered {n} {}.", kind.replace('_', " "));
        }
        if args.verbose {
            println!("Packs: {}", report.packs.join(", "));
        }
        for p in &report.removed_packs {
            println!("Unregistered pack {p} (no longer on disk).");
        }
        for f in &report.failures {
            eprintln!("WARNING: skipped: {f}");
        }
        Ok(ExitCode::SUCCESS)
    })
}
