//! Client configuration, resolved like StackStorm's `st2client`: command-line flag, then
//! environment variable, then the INI config file (`~/.st2/config` or `$ST2_CONFIG_FILE`), then
//! defaults. This is the only place of the client that reads the environment or the home dir.
//!
//! Our server serves the API, auth and stream on one port, so the defaults are
//! `$BASE:9101/api/v1`, `$BASE:9101/auth/v1` and `$BASE:9101/stream/v1` with
//! `$BASE = http://127.0.0.1`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use clap::Args;

/// Default host of every endpoint (no port; ports are appended).
pub const DEFAULT_BASE_URL: &str = "http://127.0.0.1";

/// The port our server serves everything on.
pub const DEFAULT_PORT: u16 = 9101;

/// Connection flags shared by every command (they come before the command, like st2's).
#[derive(Debug, Clone, Default, Args)]
pub struct ConnArgs {
    /// Base URL (host only, no port) of the API, auth and stream endpoints.
    #[arg(long = "url", env = "ST2_BASE_URL")]
    pub base_url: Option<String>,
    /// API root, e.g. http://127.0.0.1:9101/api/v1.
    #[arg(long, env = "ST2_API_URL")]
    pub api_url: Option<String>,
    /// Auth root; tokens are created with POST $AUTH_URL/tokens.
    #[arg(long, env = "ST2_AUTH_URL")]
    pub auth_url: Option<String>,
    /// Stream root; the event stream is GET $STREAM_URL/stream.
    #[arg(long, env = "ST2_STREAM_URL")]
    pub stream_url: Option<String>,
    /// Authentication token.
    #[arg(short = 't', long, env = "ST2_AUTH_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// API key.
    #[arg(long, env = "ST2_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Config file (default ~/.st2/config).
    #[arg(long, env = "ST2_CONFIG_FILE")]
    pub config_file: Option<PathBuf>,
    /// Do not read the config file (also ST2_CLI_SKIP_CONFIG=1).
    #[arg(long)]
    pub skip_config: bool,
}

/// Credentials from the config file's `[credentials]` section.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    /// User to log in as automatically.
    pub username: Option<String>,
    /// Its password.
    pub password: Option<String>,
}

/// The resolved client configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// API root, no trailing slash.
    pub api_url: String,
    /// Auth root, no trailing slash.
    pub auth_url: String,
    /// Stream root, no trailing slash.
    pub stream_url: String,
    /// Token given by flag or environment.
    pub token: Option<String>,
    /// API key given by flag, environment or config file.
    pub api_key: Option<String>,
    /// Credentials for automatic login (config file).
    pub credentials: Credentials,
    /// Whether tokens obtained with the credentials are cached (`[cli] cache_token`).
    pub cache_token: bool,
    /// The config file in use (also where `st2 login` writes).
    pub config_file: PathBuf,
    /// The directory of cached tokens (`~/.st2`).
    pub token_dir: PathBuf,
}

/// The user's `~/.st2` directory.
pub fn st2_dir() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
        .join(".st2")
}

fn trim(url: &str) -> String {
    url.trim_end_matches('/').to_string()
}

fn ini_get(ini: Option<&ini::Ini>, section: &str, key: &str) -> Option<String> {
    ini?.get_from(Some(section), key)
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

fn ini_bool(v: Option<String>, default: bool) -> bool {
    match v.as_deref().map(str::to_ascii_lowercase).as_deref() {
        Some("false" | "0" | "no" | "off") => false,
        Some("true" | "1" | "yes" | "on") => true,
        _ => default,
    }
}

impl ClientConfig {
    /// Resolves flags (with their environment variables), the config file and defaults.
    pub fn resolve(args: &ConnArgs) -> anyhow::Result<Self> {
        let default_file = st2_dir().join("config");
        let skip = args.skip_config
            || std::env::var("ST2_CLI_SKIP_CONFIG").is_ok_and(|v| v == "1" || v == "true");
        let config_file = args.config_file.clone().unwrap_or(default_file.clone());
        let ini =
            if skip {
                None
            } else if config_file.exists() {
                Some(ini::Ini::load_from_file(&config_file).with_context(|| {
                    format!("cannot read config file {}", config_file.display())
                })?)
            } else if config_file != default_file {
                bail!("config file \"{}\" doesn't exist", config_file.display());
            } else {
                None
            };
        Ok(Self::from_parts(args, ini.as_ref(), config_file, st2_dir()))
    }

    /// Combines flags, a parsed config file and defaults (no environment or disk access).
    pub fn from_parts(
        args: &ConnArgs,
        ini: Option<&ini::Ini>,
        config_file: PathBuf,
        token_dir: PathBuf,
    ) -> Self {
        let base = args
            .base_url
            .clone()
            .or_else(|| ini_get(ini, "general", "base_url"))
            .map(|b| trim(&b))
            .unwrap_or_else(|| DEFAULT_BASE_URL.to_string());
        let pick = |flag: &Option<String>, section: &str, suffix: &str| {
            flag.clone()
                .or_else(|| ini_get(ini, section, "url"))
                .map(|u| trim(&u))
                .unwrap_or_else(|| format!("{base}:{DEFAULT_PORT}/{suffix}"))
        };
        Self {
            api_url: pick(&args.api_url, "api", "api/v1"),
            auth_url: pick(&args.auth_url, "auth", "auth/v1"),
            stream_url: pick(&args.stream_url, "stream", "stream/v1"),
            token: args.token.clone().filter(|t| !t.is_empty()),
            api_key: args
                .api_key
                .clone()
                .filter(|k| !k.is_empty())
                .or_else(|| ini_get(ini, "credentials", "api_key")),
            credentials: Credentials {
                username: ini_get(ini, "credentials", "username"),
                password: ini_get(ini, "credentials", "password"),
            },
            cache_token: ini_bool(ini_get(ini, "cli", "cache_token"), true),
            config_file,
            token_dir,
        }
    }

    /// The token cache file of `user` (`~/.st2/token-<user>`).
    pub fn token_file(&self, user: &str) -> PathBuf {
        self.token_dir.join(format!("token-{user}"))
    }
}

/// Writes `[credentials] username` (and `password` when given) into the config file, keeping
/// its other settings (`st2 login`).
pub fn write_credentials(file: &Path, user: &str, password: Option<&str>) -> anyhow::Result<()> {
    let mut ini = if file.exists() {
        ini::Ini::load_from_file(file)
            .with_context(|| format!("cannot read config file {}", file.display()))?
    } else {
        ini::Ini::new()
    };
    ini.with_section(Some("credentials")).set("username", user);
    match password {
        Some(p) => {
            ini.with_section(Some("credentials")).set("password", p);
        }
        None => {
            ini.delete_from(Some("credentials"), "password");
        }
    }
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    ini.write_to_file(file)
        .with_context(|| format!("cannot write config file {}", file.display()))?;
    // It may hold a password: readable by its owner only.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("cannot restrict {}", file.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(args: &ConnArgs, ini: &str) -> ClientConfig {
        let ini = ini::Ini::load_from_str(ini).expect("ini");
        ClientConfig::from_parts(args, Some(&ini), "cfg".into(), "dir".into())
    }

    #[test]
    fn defaults_are_one_port_with_nginx_prefixes() {
        let c = resolve(&ConnArgs::default(), "");
        assert_eq!(c.api_url, "http://127.0.0.1:9101/api/v1");
        assert_eq!(c.auth_url, "http://127.0.0.1:9101/auth/v1");
        assert_eq!(c.stream_url, "http://127.0.0.1:9101/stream/v1");
        assert!(c.cache_token);
        assert_eq!(c.token_file("bob"), PathBuf::from("dir/token-bob"));
    }

    #[test]
    fn flags_beat_file_and_file_beats_defaults() {
        let file = "[general]\nbase_url = http://h/\n[api]\nurl = http://a:1/api/v1/\n\
                    [credentials]\nusername = bob\npassword = pw\napi_key = K\n[cli]\ncache_token = False\n";
        let c = resolve(&ConnArgs::default(), file);
        assert_eq!(c.api_url, "http://a:1/api/v1");
        assert_eq!(c.auth_url, "http://h:9101/auth/v1");
        assert_eq!(c.api_key.as_deref(), Some("K"));
        assert_eq!(c.credentials.username.as_deref(), Some("bob"));
        assert!(!c.cache_token);
        let args = ConnArgs {
            api_url: Some("http://x/api/v1".into()),
            api_key: Some("F".into()),
            ..Default::default()
        };
        let c = resolve(&args, file);
        assert_eq!(c.api_url, "http://x/api/v1");
        assert_eq!(c.api_key.as_deref(), Some("F"));
    }
}
