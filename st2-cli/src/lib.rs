//! st2-cli: code shared by the `st2` client and `st2ctl`.
//!
//! # Layout
//! - [`client`]: the `st2` client (config, HTTP, output, commands).
//! - [`reload`]: `st2ctl reload` (content registration).
//! - [`status`]: `st2ctl status` (is `st2d` running, and which version).

pub mod client;
pub mod reload;
pub mod status;

/// Logs to stderr, `warn` by default, `RUST_LOG` to change.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
