//! `st2ctl status`: asks the configured `st2d` for `GET /api/v1/` and reports whether it runs
//! and which version it is.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use serde_json::Value;

use st2_core::config::Config;

/// Flags of `st2ctl status`.
#[derive(Debug, Clone, Default, Args)]
pub struct StatusArgs {
    /// Server root to ask instead of the configured listen address (e.g. http://h:9101).
    #[arg(long)]
    pub url: Option<String>,
}

/// The URL to ask: the flag, else the configured listen address (a wildcard address is asked
/// on loopback).
pub fn server_url(bind: SocketAddr, flag: Option<&str>) -> String {
    if let Some(u) = flag {
        return u.trim_end_matches('/').to_string();
    }
    let ip = if bind.ip().is_unspecified() {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        bind.ip()
    };
    format!("http://{}", SocketAddr::new(ip, bind.port()))
}

/// Prints whether `st2d` answers, with its version; exit code 1 when it does not.
pub fn status(
    config: Option<&Path>,
    data_dir: Option<&Path>,
    args: &StatusArgs,
) -> anyhow::Result<ExitCode> {
    let mut cfg = Config::load(config)?;
    if let Some(d) = data_dir {
        cfg.system.data_dir = d.to_path_buf();
    }
    let base = server_url(cfg.api.bind, args.url.as_deref());
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    let answer = http
        .get(format!("{base}/api/v1/"))
        .send()
        .and_then(|r| r.error_for_status())
        .and_then(|r| r.json::<Value>());
    match answer {
        Ok(v) => {
            let version = v
                .get("version")
                .and_then(Value::as_str)
                .unwrap_or("unknown");
            let st2 = v
                .get("st2_version")
                .and_then(Value::as_str)
                .unwrap_or("unknown");
            println!("st2d is running at {base} (version {version}, StackStorm API {st2})");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            println!("st2d is not running at {base} ({e})");
            Ok(ExitCode::FAILURE)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_binds_are_asked_on_loopback() {
        let bind: SocketAddr = "0.0.0.0:9101".parse().expect("addr");
        assert_eq!(server_url(bind, None), "http://127.0.0.1:9101");
        assert_eq!(server_url(bind, Some("http://h:1/")), "http://h:1");
        let bind: SocketAddr = "10.0.0.1:80".parse().expect("addr");
        assert_eq!(server_url(bind, None), "http://10.0.0.1:80");
    }
}
