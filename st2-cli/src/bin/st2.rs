//! The `st2` client: StackStorm's CLI (same commands and flags) over the platform's REST API.

use std::process::ExitCode;

use clap::Parser;

use st2_cli::client::{cli::Cli, main_with};

fn main() -> ExitCode {
    st2_cli::init_logging();
    main_with(Cli::parse())
}
