//! st2-cli: code shared by the `st2` client and `st2ctl`.
//!
//! # Layout
//! - [`reload`]: `st2ctl reload` (content registration).

pub mod reload;

/// Logs to stderr, `warn` by default, `RUST_LOG` to change.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
