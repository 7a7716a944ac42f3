//! `st2d` start-up: configuration, store, first-start admin user, content registration, serving.

use std::net::SocketAddr;
use std::path::PathBuf;

use tokio::net::TcpListener;

use st2_core::config::Config;
use st2_core::platform::Platform;

use crate::AppState;

/// Command-line settings of `st2d` (they override the config file and environment).
#[derive(Debug, Clone, Default)]
pub struct ServerArgs {
    /// st2.conf-style config file.
    pub config: Option<PathBuf>,
    /// Data directory.
    pub data_dir: Option<PathBuf>,
    /// Listen address.
    pub bind: Option<SocketAddr>,
    /// Roles to run (`all` by default).
    pub roles: Vec<String>,
}

pub use st2_core::platform::ROLES;

/// Resolves the configuration from file, environment and flags.
pub fn resolve_config(args: &ServerArgs) -> anyhow::Result<Config> {
    let mut cfg = Config::load(args.config.as_deref())?;
    if let Some(d) = &args.data_dir {
        cfg.system.data_dir = d.clone();
    }
    if let Some(b) = args.bind {
        cfg.api.bind = b;
    }
    for r in &args.roles {
        if r != "all" && !ROLES.contains(&r.as_str()) {
            anyhow::bail!("unknown role \"{r}\" (known: all, {})", ROLES.join(", "));
        }
    }
    Ok(cfg)
}

/// Runs the platform until `shutdown` resolves.
pub async fn run(
    cfg: Config,
    roles: &[String],
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let platform = Platform::start(&cfg, roles).await?;
    let store = platform.ctx.store.clone();
    if let Some(file) = st2_core::auth::ensure_admin(&*store, &cfg.system.data_dir).await? {
        tracing::warn!(
            user = st2_core::auth::ADMIN_USER,
            password_file = %file.display(),
            "first start: created the admin user; its password is in the file"
        );
        eprintln!(
            "st2d: created user {} — password in {}",
            st2_core::auth::ADMIN_USER,
            file.display()
        );
    }
    let state = AppState {
        store,
        services: Some(platform.ctx.clone()),
        auth_enabled: cfg.auth.enable,
        token_ttl: cfg.auth.token_ttl,
    };
    let app = crate::service(state);
    // Start-up is over: what registration freed goes back to the system.
    crate::memory::release_freed();
    let addr = listener.local_addr()?;
    eprintln!("st2d: listening on http://{addr}/api/v1/");
    axum::serve(
        listener,
        axum::ServiceExt::<axum::extract::Request>::into_make_service(app),
    )
    .with_graceful_shutdown(shutdown)
    .await?;
    platform.shutdown().await;
    Ok(())
}
