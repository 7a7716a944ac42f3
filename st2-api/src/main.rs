//! `st2d`: the platform in one process (standalone) or any subset of its roles.

/// mimalloc: the pipeline allocates and frees many small JSON values; glibc malloc spent a
/// third of the CPU on them.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

use st2_api::server::{resolve_config, run, ServerArgs};

/// st2d: the st2 platform server.
#[derive(Debug, Parser)]
#[command(name = "st2d", version, about)]
struct Cli {
    /// st2.conf-style config file.
    #[arg(long, env = "ST2_CONFIG_PATH")]
    config: Option<PathBuf>,
    /// Data directory (embedded store, installed packs, configs, virtualenvs); also ST2_DATA_DIR.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Address to listen on (default 127.0.0.1:9101).
    #[arg(long)]
    bind: Option<SocketAddr>,
    /// Comma-separated roles to run (default all).
    #[arg(long, value_delimiter = ',', default_value = "all")]
    roles: Vec<String>,
}

fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let args = ServerArgs {
        config: cli.config,
        data_dir: cli.data_dir,
        bind: cli.bind,
        roles: cli.roles,
    };
    match start(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("st2d: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn start(args: ServerArgs) -> anyhow::Result<()> {
    let cfg = resolve_config(&args)?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async move {
        let args = args;
        let listener = tokio::net::TcpListener::bind(cfg.api.bind).await?;
        let shutdown = async {
            #[cfg(unix)]
            {
                use tokio::signal::unix::{signal, SignalKind};
                match signal(SignalKind::terminate()) {
                    Ok(mut term) => {
                        tokio::select! {
                            _ = tokio::signal::ctrl_c() => {}
                            _ = term.recv() => {}
                        }
                    }
                    Err(_) => {
                        let _ = tokio::signal::ctrl_c().await;
                    }
                }
            }
            #[cfg(not(unix))]
            let _ = tokio::signal::ctrl_c().await;
            eprintln!("st2d: shutting down (draining running executions)");
        };
        run(cfg, &args.roles, listener, shutdown).await
    })
}
