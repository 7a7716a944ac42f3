//! `st2ctl`: platform control. `st2ctl reload [--register-*]` registers pack content into the
//! platform's store, like StackStorm's `st2ctl reload` / `st2-register-content`; `st2ctl status`
//! tells whether `st2d` answers and which version it is.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use st2_cli::reload::{reload, ReloadArgs};
use st2_cli::status::{status, StatusArgs};

/// st2ctl: control the st2 platform.
#[derive(Debug, Parser)]
#[command(name = "st2ctl", version, about)]
struct Cli {
    /// st2.conf-style config file.
    #[arg(long, global = true, env = "ST2_CONFIG_PATH")]
    config: Option<PathBuf>,
    /// Data directory (overrides the config file; also ST2_DATA_DIR).
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Register pack content (runners, actions, rules, sensors, ...) into the platform.
    Reload(ReloadArgs),
    /// Tell whether st2d is running (it answers GET /api/v1/) and its version.
    Status(StatusArgs),
}

fn main() -> ExitCode {
    st2_cli::init_logging();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Reload(args) => reload(cli.config.as_deref(), cli.data_dir.as_deref(), &args),
        Command::Status(args) => status(cli.config.as_deref(), cli.data_dir.as_deref(), &args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ERROR: {e:#}");
            ExitCode::FAILURE
        }
    }
}
