//! Platform configuration: st2.conf-style INI sections, layered defaults → file → environment
//! (`ST2_<SECTION>__<KEY>`, plus the `ST2_DATA_DIR` shorthand) → command-line flags.
//!
//! This is the only module that reads environment variables for the platform's settings.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::packs::PackPaths;

/// Errors reading configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read or parsed.
    #[error("config file {}: {reason}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A value has the wrong shape.
    #[error("config [{section}] {key}: {reason}")]
    Value {
        /// Section.
        section: String,
        /// Key.
        key: String,
        /// Why.
        reason: String,
    },
}

/// `[api]`: the HTTP server.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiConfig {
    /// Address and port to listen on (default 127.0.0.1:9101).
    pub bind: SocketAddr,
}

/// `[system]`: where state lives.
#[derive(Debug, Clone, PartialEq)]
pub struct SystemConfig {
    /// Data directory: embedded store, installed packs, configs, virtualenvs (default `st2-data`).
    pub data_dir: PathBuf,
}

/// StackStorm's public pack index, the default `[content] index_url`.
pub const DEFAULT_INDEX_URL: &str = "https://index.stackstorm.org/v1/index.json";

/// `[content]`: packs.
#[derive(Debug, Clone, PartialEq)]
pub struct ContentConfig {
    /// Bundled packs (`core`, `packs`, `linux`, `examples`), registered at start.
    pub system_packs_base_path: Option<PathBuf>,
    /// Extra pack directories searched after the bundled ones (colon-separated in the file).
    pub packs_base_paths: Vec<PathBuf>,
    /// Pack indexes, files or `http(s)` URLs (comma-separated), StackStorm's `index_url`.
    /// Default: [`DEFAULT_INDEX_URL`]; an empty value configures none.
    pub index_url: Vec<String>,
}

/// `[database]`: the store backend.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DatabaseConfig {
    /// `mongodb://...` selects MongoDB; absent selects the embedded store.
    pub url: Option<String>,
}

/// `[messaging]`: the bus backend.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MessagingConfig {
    /// `amqp://...` selects RabbitMQ; absent selects the in-process bus.
    pub url: Option<String>,
    /// `consumer_concurrency`: how many messages each pipeline consumer (rules engine,
    /// scheduler, notifier) handles at once; absent: [`MessagingConfig::DEFAULT_CONCURRENCY_EMBEDDED`]
    /// with the embedded store (whose writer commits concurrent writes together), else
    /// [`MessagingConfig::DEFAULT_CONCURRENCY`].
    pub consumer_concurrency: Option<usize>,
}

impl MessagingConfig {
    /// Messages a consumer handles at once over a MongoDB store.
    pub const DEFAULT_CONCURRENCY: usize = 16;
    /// Messages a consumer handles at once over the embedded store.
    pub const DEFAULT_CONCURRENCY_EMBEDDED: usize = 64;
}

impl Config {
    /// How many messages each pipeline consumer handles at once: the configured
    /// `[messaging] consumer_concurrency`, or the default for the store backend.
    pub fn consumer_concurrency(&self) -> usize {
        let default = if self.database.url.is_some() {
            MessagingConfig::DEFAULT_CONCURRENCY
        } else {
            MessagingConfig::DEFAULT_CONCURRENCY_EMBEDDED
        };
        self.messaging
            .consumer_concurrency
            .unwrap_or(default)
            .max(1)
    }
}

/// `[auth]`: authentication.
#[derive(Debug, Clone, PartialEq)]
pub struct AuthConfig {
    /// Whether API calls need a token or API key (default true).
    pub enable: bool,
    /// Token lifetime in seconds (default 86400).
    pub token_ttl: u64,
}

/// `[actionrunner]`: running actions.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionRunnerConfig {
    /// Python used for pack virtualenvs and Python actions (default `python3`).
    pub python_binary: String,
}

/// `[garbagecollector]`: TTLs in days (unset = kept forever, like StackStorm) and the pass
/// interval.
#[derive(Debug, Clone, PartialEq)]
pub struct GarbageCollectorConfig {
    /// Seconds between passes (default 600).
    pub collection_interval: u64,
    /// Completed executions older than this many days are deleted.
    pub action_executions_ttl: Option<u64>,
    /// Trigger instances older than this many days are deleted.
    pub trigger_instances_ttl: Option<u64>,
    /// Rule enforcements older than this many days are deleted.
    pub rule_enforcements_ttl: Option<u64>,
    /// Traces older than this many days are deleted.
    pub traces_ttl: Option<u64>,
}

impl Default for GarbageCollectorConfig {
    fn default() -> Self {
        Self {
            collection_interval: 600,
            action_executions_ttl: None,
            trigger_instances_ttl: None,
            rule_enforcements_ttl: None,
            traces_ttl: None,
        }
    }
}

/// `[coordination]`: leases, heartbeats and failover in distributed mode (beyond StackStorm,
/// whose `[coordination]` section names a tooz backend instead: here the store coordinates).
/// Durations are in seconds (fractions allowed). See `docs/distributed.md`, "Failure handling".
#[derive(Debug, Clone, PartialEq)]
pub struct CoordinationConfig {
    /// Time to live of a singleton role's lease (timers engine, garbage collector): a dead
    /// holder is replaced within this plus a third of it (default 3).
    pub lease_ttl: Duration,
    /// Time to live of an action runner's heartbeat lease (`actionrunner:<node id>`), renewed
    /// every third of it (default 5).
    pub heartbeat_ttl: Duration,
    /// How often the scheduler's watchdog looks for executions whose runner's heartbeat
    /// expired (default 2).
    pub watchdog_interval: Duration,
    /// How late a timer tick missed during a failover may be and still be fired once by the
    /// new timers engine (default 300).
    pub timer_catchup_window: Duration,
    /// Age after which a trigger instance still `pending` or an execution still `requested` is
    /// taken as never published (its process died between storing and publishing it) and the
    /// watchdog publishes it again (default 60).
    pub republish_after: Duration,
}

impl Default for CoordinationConfig {
    fn default() -> Self {
        Self {
            lease_ttl: Duration::from_secs(3),
            heartbeat_ttl: Duration::from_secs(5),
            watchdog_interval: Duration::from_secs(2),
            timer_catchup_window: Duration::from_secs(300),
            republish_after: Duration::from_secs(60),
        }
    }
}

/// `[keyvalue]`: datastore encryption.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct KeyValueConfig {
    /// The symmetric key file (StackStorm's format); default `<data_dir>/keys/datastore_key.json`,
    /// generated on first start.
    pub encryption_key_path: Option<PathBuf>,
}

/// The whole configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `[api]`.
    pub api: ApiConfig,
    /// `[system]`.
    pub system: SystemConfig,
    /// `[content]`.
    pub content: ContentConfig,
    /// `[database]`.
    pub database: DatabaseConfig,
    /// `[messaging]`.
    pub messaging: MessagingConfig,
    /// `[auth]`.
    pub auth: AuthConfig,
    /// `[actionrunner]`.
    pub actionrunner: ActionRunnerConfig,
    /// `[garbagecollector]`.
    pub garbagecollector: GarbageCollectorConfig,
    /// `[keyvalue]`.
    pub keyvalue: KeyValueConfig,
    /// `[coordination]`.
    pub coordination: CoordinationConfig,
}

/// The bundled packs of this source tree, when it is still where it was built.
fn default_system_packs() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("packs");
    p.join("core").join("pack.yaml").is_file().then_some(p)
}

impl Default for Config {
    fn default() -> Self {
        Self {
            api: ApiConfig {
                bind: SocketAddr::from(([127, 0, 0, 1], 9101)),
            },
            system: SystemConfig {
                data_dir: PathBuf::from("st2-data"),
            },
            content: ContentConfig {
                system_packs_base_path: default_system_packs(),
                packs_base_paths: Vec::new(),
                index_url: vec![DEFAULT_INDEX_URL.to_string()],
            },
            database: DatabaseConfig::default(),
            messaging: MessagingConfig::default(),
            auth: AuthConfig {
                enable: true,
                token_ttl: 86_400,
            },
            actionrunner: ActionRunnerConfig {
                python_binary: "python3".into(),
            },
            garbagecollector: GarbageCollectorConfig::default(),
            keyvalue: KeyValueConfig::default(),
            coordination: CoordinationConfig::default(),
        }
    }
}

/// Raw `section → key → value` settings.
pub type RawSettings = BTreeMap<String, BTreeMap<String, String>>;

impl Config {
    /// Loads defaults, then `file` (if given), then the process environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut raw = RawSettings::new();
        if let Some(f) = file {
            raw = read_ini(f)?;
        }
        merge(&mut raw, env_settings(std::env::vars()));
        Self::from_raw(&raw)
    }

    /// Builds a config from raw settings over the defaults; unknown keys are warned about.
    pub fn from_raw(raw: &RawSettings) -> Result<Self, ConfigError> {
        let mut c = Self::default();
        for (section, keys) in raw {
            for (key, value) in keys {
                c.set(section, key, value)?;
            }
        }
        Ok(c)
    }

    fn set(&mut self, section: &str, key: &str, value: &str) -> Result<(), ConfigError> {
        let bad = |reason: String| ConfigError::Value {
            section: section.into(),
            key: key.into(),
            reason,
        };
        match (section, key) {
            ("api", "bind") => {
                self.api.bind = value
                    .parse()
                    .map_err(|e| bad(format!("{e}: \"{value}\"")))?
            }
            ("api", "host") => {
                let ip = value
                    .parse()
                    .map_err(|e| bad(format!("{e}: \"{value}\"")))?;
                self.api.bind.set_ip(ip);
            }
            ("api", "port") => {
                let port = value
                    .parse()
                    .map_err(|e| bad(format!("{e}: \"{value}\"")))?;
                self.api.bind.set_port(port);
            }
            ("system", "data_dir") | ("system", "base_path") => {
                self.system.data_dir = PathBuf::from(value)
            }
            ("content", "system_packs_base_path") => {
                self.content.system_packs_base_path =
                    (!value.is_empty()).then(|| PathBuf::from(value))
            }
            ("content", "packs_base_paths") => {
                self.content.packs_base_paths = value
                    .split(':')
                    .filter(|s| !s.is_empty())
                    .map(PathBuf::from)
                    .collect()
            }
            ("content", "index_url") => {
                self.content.index_url = value
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect()
            }
            ("database", "url") => self.database.url = (!value.is_empty()).then(|| value.into()),
            ("messaging", "url") => self.messaging.url = (!value.is_empty()).then(|| value.into()),
            ("messaging", "consumer_concurrency") => {
                let n: usize = value
                    .parse()
                    .map_err(|e| bad(format!("{e}: \"{value}\"")))?;
                if n == 0 || n > usize::from(u16::MAX) {
                    return Err(bad(format!("must be 1 to 65535: \"{value}\"")));
                }
                self.messaging.consumer_concurrency = Some(n);
            }
            ("auth", "enable") => {
                self.auth.enable =
                    parse_bool(value).ok_or_else(|| bad(format!("not a boolean: \"{value}\"")))?
            }
            ("auth", "token_ttl") => {
                self.auth.token_ttl = value
                    .parse()
                    .map_err(|e| bad(format!("{e}: \"{value}\"")))?
            }
            ("actionrunner", "python_binary") => self.actionrunner.python_binary = value.into(),
            ("keyvalue", "encryption_key_path") => {
                self.keyvalue.encryption_key_path =
                    (!value.is_empty()).then(|| PathBuf::from(value))
            }
            ("garbagecollector", k) => {
                let n: u64 = value
                    .parse()
                    .map_err(|e| bad(format!("{e}: \"{value}\"")))?;
                match k {
                    "collection_interval" => self.garbagecollector.collection_interval = n,
                    "action_executions_ttl" => {
                        self.garbagecollector.action_executions_ttl = Some(n)
                    }
                    "trigger_instances_ttl" => {
                        self.garbagecollector.trigger_instances_ttl = Some(n)
                    }
                    "rule_enforcements_ttl" => {
                        self.garbagecollector.rule_enforcements_ttl = Some(n)
                    }
                    "traces_ttl" => self.garbagecollector.traces_ttl = Some(n),
                    _ => tracing::warn!(section, key, "unknown config key ignored"),
                }
            }
            ("coordination", k) => {
                let secs: f64 = value
                    .parse()
                    .map_err(|e| bad(format!("{e}: \"{value}\"")))?;
                let d = Duration::try_from_secs_f64(secs)
                    .ok()
                    .filter(|d| !d.is_zero())
                    .ok_or_else(|| bad(format!("not a positive number of seconds: \"{value}\"")))?;
                match k {
                    "lease_ttl" => self.coordination.lease_ttl = d,
                    "heartbeat_ttl" => self.coordination.heartbeat_ttl = d,
                    "watchdog_interval" => self.coordination.watchdog_interval = d,
                    "timer_catchup_window" => self.coordination.timer_catchup_window = d,
                    "republish_after" => self.coordination.republish_after = d,
                    _ => tracing::warn!(section, key, "unknown config key ignored"),
                }
            }
            _ => tracing::warn!(section, key, "unknown config key ignored"),
        }
        Ok(())
    }

    /// Where packs, configs and virtualenvs live under this config.
    pub fn pack_paths(&self) -> PackPaths {
        let mut p = PackPaths::under_data_dir(
            &self.system.data_dir,
            self.content.system_packs_base_path.as_deref(),
        );
        // Extra base paths go between the bundled packs and the install dir.
        let install = p.packs_base_paths.pop();
        p.packs_base_paths
            .extend(self.content.packs_base_paths.iter().cloned());
        p.packs_base_paths.extend(install);
        p
    }

    /// Opens the store this config selects: MongoDB for a `mongodb://` `[database] url`, else
    /// the embedded store in the data dir (created either way: packs and keys live there).
    pub async fn open_store(&self) -> crate::Result<std::sync::Arc<dyn crate::store::Store>> {
        std::fs::create_dir_all(&self.system.data_dir).map_err(|e| ConfigError::Value {
            section: "system".into(),
            key: "data_dir".into(),
            reason: format!("cannot create {}: {e}", self.system.data_dir.display()),
        })?;
        if let Some(url) = &self.database.url {
            if !(url.starts_with("mongodb://") || url.starts_with("mongodb+srv://")) {
                // Only the scheme: the rest of the URL may hold a password.
                let scheme = url.split("://").next().unwrap_or_default();
                return Err(ConfigError::Value {
                    section: "database".into(),
                    key: "url".into(),
                    reason: format!(
                        "unsupported scheme {scheme:?}: use mongodb:// (or leave it unset for the embedded store)"
                    ),
                }
                .into());
            }
            let store = crate::store::MongoStore::connect(url).await?;
            return Ok(std::sync::Arc::new(store));
        }
        let store = crate::store::EmbeddedStore::open(&self.store_file())?;
        Ok(std::sync::Arc::new(store))
    }

    /// The datastore's symmetric key file.
    pub fn datastore_key_file(&self) -> PathBuf {
        self.keyvalue
            .encryption_key_path
            .clone()
            .unwrap_or_else(|| self.system.data_dir.join("keys").join("datastore_key.json"))
    }

    /// The embedded store file.
    pub fn store_file(&self) -> PathBuf {
        self.system.data_dir.join("st2.db")
    }
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

fn merge(into: &mut RawSettings, from: RawSettings) {
    for (s, keys) in from {
        into.entry(s).or_default().extend(keys);
    }
}

/// Reads an st2.conf-style INI file.
pub fn read_ini(path: &Path) -> Result<RawSettings, ConfigError> {
    let ini = ini::Ini::load_from_file(path).map_err(|e| ConfigError::File {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let mut raw = RawSettings::new();
    for (section, props) in ini.iter() {
        let Some(section) = section else { continue };
        let entry = raw.entry(section.to_ascii_lowercase()).or_default();
        for (k, v) in props.iter() {
            entry.insert(k.to_ascii_lowercase(), v.to_string());
        }
    }
    Ok(raw)
}

/// Settings from environment variables: `ST2_<SECTION>__<KEY>=value`, and `ST2_DATA_DIR`.
pub fn env_settings(vars: impl IntoIterator<Item = (String, String)>) -> RawSettings {
    let mut raw = RawSettings::new();
    for (k, v) in vars {
        if k == "ST2_DATA_DIR" {
            raw.entry("system".into())
                .or_default()
                .insert("data_dir".into(), v);
            continue;
        }
        let Some(rest) = k.strip_prefix("ST2_") else {
            continue;
        };
        let Some((section, key)) = rest.split_once("__") else {
            continue;
        };
        raw.entry(section.to_ascii_lowercase())
            .or_default()
            .insert(key.to_ascii_lowercase(), v);
    }
    raw
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layered_file_then_env() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("st2.conf");
        std::fs::write(
            &f,
            "[api]\nport = 9999\n[database]\nurl = mongodb://db/st2\n[content]\nindex_url = a.json, b.json\n",
        )
        .expect("write");
        let mut raw = read_ini(&f).expect("ini");
        merge(
            &mut raw,
            env_settings([
                ("ST2_DATA_DIR".to_string(), "/srv/st2".to_string()),
                (
                    "ST2_MESSAGING__URL".to_string(),
                    "amqp://guest:guest@localhost:5672/".to_string(),
                ),
                ("ST2_API__PORT".to_string(), "9102".to_string()),
                ("HOME".to_string(), "/root".to_string()),
            ]),
        );
        let c = Config::from_raw(&raw).expect("config");
        assert_eq!(c.api.bind.port(), 9102, "env wins over file");
        assert_eq!(c.database.url.as_deref(), Some("mongodb://db/st2"));
        assert_eq!(
            c.messaging.url.as_deref(),
            Some("amqp://guest:guest@localhost:5672/")
        );
        assert_eq!(c.system.data_dir, PathBuf::from("/srv/st2"));
        assert_eq!(c.content.index_url, vec!["a.json", "b.json"]);
    }

    #[test]
    fn index_url_defaults_to_stackstorms_and_an_empty_value_configures_none() {
        let c = Config::from_raw(&env_settings([])).expect("config");
        assert_eq!(c.content.index_url, vec![DEFAULT_INDEX_URL]);
        let c = Config::from_raw(&env_settings([(
            "ST2_CONTENT__INDEX_URL".to_string(),
            String::new(),
        )]))
        .expect("config");
        assert!(c.content.index_url.is_empty());
    }

    #[test]
    fn consumer_concurrency_defaults_by_store_and_can_be_set() {
        let embedded = Config::from_raw(&env_settings([])).expect("config");
        assert_eq!(
            embedded.consumer_concurrency(),
            MessagingConfig::DEFAULT_CONCURRENCY_EMBEDDED
        );
        let mongo = Config::from_raw(&env_settings([(
            "ST2_DATABASE__URL".to_string(),
            "mongodb://db/st2".to_string(),
        )]))
        .expect("config");
        assert_eq!(
            mongo.consumer_concurrency(),
            MessagingConfig::DEFAULT_CONCURRENCY
        );
        let set = Config::from_raw(&env_settings([(
            "ST2_MESSAGING__CONSUMER_CONCURRENCY".to_string(),
            "8".to_string(),
        )]))
        .expect("config");
        assert_eq!(set.consumer_concurrency(), 8);
        let e = Config::from_raw(&env_settings([(
            "ST2_MESSAGING__CONSUMER_CONCURRENCY".to_string(),
            "0".to_string(),
        )]))
        .expect_err("zero is refused")
        .to_string();
        assert!(e.contains("[messaging] consumer_concurrency"), "{e}");
    }

    #[test]
    fn coordination_durations_in_seconds() {
        let raw = env_settings([
            (
                "ST2_COORDINATION__HEARTBEAT_TTL".to_string(),
                "1.5".to_string(),
            ),
            (
                "ST2_COORDINATION__WATCHDOG_INTERVAL".to_string(),
                "0.25".to_string(),
            ),
        ]);
        let c = Config::from_raw(&raw).expect("config");
        assert_eq!(c.coordination.heartbeat_ttl, Duration::from_millis(1500));
        assert_eq!(c.coordination.watchdog_interval, Duration::from_millis(250));
        assert_eq!(
            c.coordination.lease_ttl,
            Duration::from_secs(3),
            "default kept"
        );
        for bad in ["0", "-1", "soon"] {
            let raw = env_settings([("ST2_COORDINATION__LEASE_TTL".to_string(), bad.to_string())]);
            let e = Config::from_raw(&raw).expect_err(bad).to_string();
            assert!(e.contains("[coordination] lease_ttl"), "{e}");
        }
    }

    #[test]
    fn bad_value_names_section_and_key() {
        let mut raw = RawSettings::new();
        raw.entry("api".into())
            .or_default()
            .insert("port".into(), "abc".into());
        let e = Config::from_raw(&raw).expect_err("must fail").to_string();
        assert!(e.contains("[api] port"), "{e}");
    }
}
