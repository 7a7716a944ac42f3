//! Pack indexes: StackStorm's `index.json`, used to install packs by name and by `st2 pack search`.
//!
//! Shape: `{"metadata": {...}, "packs": {"<name>": {name, ref?, description, keywords[], version,
//! author, email, repo_url, ...}}}`. Several indexes may be configured (`content.index_url` is a
//! list); they are merged in order and a later index wins for the same pack name. An index is read
//! from a local file (`file:///path` or a plain path) or fetched over `http(s)://` (StackStorm's
//! default index is on GitHub); this module does not touch the store.

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use std::path::Path;

use super::PackError;
use crate::model::JsonMap;
use crate::schema::{self, MetadataKind};

/// One pack of an index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexEntry {
    /// Display name (usually also the ref).
    #[serde(default)]
    pub name: String,
    /// Pack ref, when it differs from the name.
    #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
    pub pack_ref: Option<String>,
    /// What the pack does.
    #[serde(default)]
    pub description: String,
    /// Search keywords.
    #[serde(default)]
    pub keywords: Vec<String>,
    /// Latest released version (installed as the `v<version>` tag by default).
    #[serde(default)]
    pub version: String,
    /// Who wrote it.
    #[serde(default)]
    pub author: String,
    /// Author e-mail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Git repository to install from.
    #[serde(default)]
    pub repo_url: String,
    /// Other fields (pack.yaml extras, content counts), kept verbatim.
    #[serde(flatten)]
    pub extra: JsonMap,
}

impl IndexEntry {
    /// The pack ref: `ref` if given, else the name.
    pub fn pack_ref(&self) -> &str {
        self.pack_ref
            .as_deref()
            .filter(|r| !r.is_empty())
            .unwrap_or(&self.name)
    }
}

/// How loading one index went (for `/api/v1/packs/index/health`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IndexStatus {
    /// The location as configured.
    pub url: String,
    /// Packs it contributed, when it loaded.
    pub packs: usize,
    /// Why it failed, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One or several merged pack indexes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PackIndex {
    /// `metadata` of the indexes, merged (later wins per key).
    pub metadata: JsonMap,
    /// Packs by index key (the pack name), in index order.
    pub packs: IndexMap<String, IndexEntry>,
    /// Each location loaded, in order, with its outcome.
    pub sources: Vec<IndexStatus>,
}

impl PackIndex {
    /// Parses index JSON; `location` only names it in errors. A document without a `packs`
    /// object is a "malformed index" error.
    pub fn parse(text: &str, location: &str) -> Result<Self, PackError> {
        let err = |reason: String| PackError::Index {
            location: location.to_string(),
            reason,
        };
        let doc: Value =
            serde_json::from_str(text).map_err(|e| err(format!("invalid JSON: {e}")))?;
        if !doc.get("packs").is_some_and(Value::is_object) {
            return Err(err("malformed index: no \"packs\" object".into()));
        }
        // The rest of the shape (field types) is checked against `schemas/pack_index.json`.
        if let Err(errs) = schema::validate(MetadataKind::PackIndex, Path::new(location), &doc) {
            let reasons: Vec<String> = errs
                .iter()
                .map(|e| {
                    format!(
                        "{}: {}",
                        if e.field.is_empty() {
                            "(document)"
                        } else {
                            &e.field
                        },
                        e.reason
                    )
                })
                .collect();
            return Err(err(format!("malformed index: {}", reasons.join("; "))));
        }
        let Value::Object(mut doc) = doc else {
            return Err(err("malformed index: expected a JSON object".into()));
        };
        let metadata = match doc.remove("metadata") {
            Some(Value::Object(m)) => m,
            _ => JsonMap::new(),
        };
        let Some(Value::Object(raw)) = doc.remove("packs") else {
            return Err(err("malformed index: no \"packs\" object".into()));
        };
        let mut packs = IndexMap::new();
        for (key, value) in raw {
            let mut entry: IndexEntry = serde_json::from_value(value)
                .map_err(|e| err(format!("malformed index: pack \"{key}\": {e}")))?;
            if entry.name.is_empty() {
                entry.name = key.clone();
            }
            packs.insert(key, entry);
        }
        let sources = vec![IndexStatus {
            url: location.to_string(),
            packs: packs.len(),
            error: None,
        }];
        Ok(Self {
            metadata,
            packs,
            sources,
        })
    }

    /// Reads one index from `file:///path`, a plain path, or an `http(s)://` URL (fetched with a
    /// [`FETCH_TIMEOUT`] limit; a non-2xx answer is an error naming its status).
    pub async fn load(location: &str) -> Result<Self, PackError> {
        let err = |reason: String| PackError::Index {
            location: location.to_string(),
            reason,
        };
        let text = if location.starts_with("http://") || location.starts_with("https://") {
            fetch(location).await.map_err(err)?
        } else {
            let path = location.strip_prefix("file://").unwrap_or(location);
            tokio::fs::read_to_string(path)
                .await
                .map_err(|e| err(format!("cannot read: {e}")))?
        };
        Self::parse(&text, location)
    }

    /// Loads and merges several indexes, later ones winning. An index that fails is recorded in [`PackIndex::sources`] and skipped, like StackStorm does;
    /// it is an error only when none loads (or the list is empty).
    pub async fn load_all<S: AsRef<str>>(locations: &[S]) -> Result<Self, PackError> {
        let mut merged = Self::default();
        let mut loaded = 0;
        for loc in locations {
            let loc = loc.as_ref();
            match Self::load(loc).await {
                Ok(idx) => {
                    loaded += 1;
                    merged.merge(idx);
                }
                Err(e) => {
                    tracing::warn!(index = loc, error = %e, "cannot load pack index");
                    merged.sources.push(IndexStatus {
                        url: loc.to_string(),
                        packs: 0,
                        error: Some(e.to_string()),
                    });
                }
            }
        }
        if loaded == 0 {
            let tried: Vec<String> = merged
                .sources
                .iter()
                .map(|s| format!("{} ({})", s.url, s.error.as_deref().unwrap_or("")))
                .collect();
            return Err(PackError::Index {
                location: locations
                    .iter()
                    .map(|l| l.as_ref())
                    .collect::<Vec<_>>()
                    .join(", "),
                reason: if tried.is_empty() {
                    "no pack index configured".into()
                } else {
                    format!("no index could be loaded: {}", tried.join("; "))
                },
            });
        }
        Ok(merged)
    }

    /// Adds `other`'s packs and metadata over these.
    pub fn merge(&mut self, other: PackIndex) {
        self.metadata.extend(other.metadata);
        self.packs.extend(other.packs);
        self.sources.extend(other.sources);
    }

    /// The pack with this index key, name or ref.
    pub fn get(&self, name_or_ref: &str) -> Option<&IndexEntry> {
        self.packs.get(name_or_ref).or_else(|| {
            self.packs
                .values()
                .find(|e| e.pack_ref() == name_or_ref || e.name == name_or_ref)
        })
    }

    /// `st2 pack search`: packs whose fields contain `query` (case-insensitive), ranked like
    /// StackStorm — name (or ref) matches first, then keyword matches, then any other field
    /// (description, author, ...; never `repo_url` or `email`).
    pub fn search(&self, query: &str) -> Vec<&IndexEntry> {
        let q = query.to_lowercase();
        let hit = |s: &str| s.to_lowercase().contains(&q);
        let mut ranked: [Vec<&IndexEntry>; 3] = Default::default();
        for e in self.packs.values() {
            let rank = if hit(&e.name) || hit(e.pack_ref()) {
                0
            } else if e.keywords.iter().any(|k| hit(k)) {
                1
            } else if hit(&e.description)
                || hit(&e.author)
                || hit(&e.version)
                || e.extra.values().any(|v| value_contains(v, &q))
            {
                2
            } else {
                continue;
            };
            ranked[rank].push(e);
        }
        ranked.into_iter().flatten().collect()
    }
}

/// How long fetching one remote index may take, connection included.
pub const FETCH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The body of a remote index, or why it could not be had.
async fn fetch(url: &str) -> Result<String, String> {
    let client = reqwest::Client::builder()
        .timeout(FETCH_TIMEOUT)
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
    let resp = client
        .get(url)
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| format!("cannot fetch: {e}"))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(format!("fetch answered HTTP {status}"));
    }
    resp.text()
        .await
        .map_err(|e| format!("cannot read the fetched body: {e}"))
}

/// True when a string anywhere inside `v` contains `q` (already lower-cased).
fn value_contains(v: &Value, q: &str) -> bool {
    match v {
        Value::String(s) => s.to_lowercase().contains(q),
        Value::Array(a) => a.iter().any(|x| value_contains(x, q)),
        Value::Object(_) | Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INDEX: &str = r#"{
        "metadata": {"generated_ts": 1, "hash": "abc"},
        "packs": {
            "aws": {"name": "aws", "description": "Amazon Web Services integration",
                    "keywords": ["cloud", "ec2", "s3"], "version": "1.2.0", "author": "StackStorm",
                    "email": "info@stackstorm.com", "repo_url": "https://github.com/StackStorm-Exchange/stackstorm-aws"},
            "slack": {"name": "slack", "description": "Chat with AWS alerts", "keywords": ["chat"],
                      "version": "2.0.0", "author": "StackStorm", "repo_url": "https://github.com/x/stackstorm-slack",
                      "content": {"actions": {"count": 3}}},
            "My Pack": {"name": "My Pack", "ref": "my_pack", "description": "demo", "keywords": ["aws-free"],
                        "version": "0.1.0", "author": "me", "repo_url": "file:///srv/packs/my_pack"}
        }
    }"#;

    fn index() -> PackIndex {
        PackIndex::parse(INDEX, "test").expect("valid index")
    }

    #[test]
    fn parses_and_looks_up() {
        let idx = index();
        assert_eq!(idx.packs.len(), 3);
        assert_eq!(idx.metadata.get("hash"), Some(&Value::from("abc")));
        let aws = idx.get("aws").expect("aws");
        assert_eq!(aws.version, "1.2.0");
        assert_eq!(aws.pack_ref(), "aws");
        assert_eq!(idx.get("my_pack").map(|e| e.name.as_str()), Some("My Pack"));
        assert_eq!(
            idx.get("My Pack").map(IndexEntry::pack_ref),
            Some("my_pack")
        );
        assert!(idx.get("nope").is_none());
        assert!(idx.packs["slack"].extra.contains_key("content"));
    }

    #[test]
    fn malformed_indexes() {
        for (text, needle) in [
            (r#"{"metadata": {}}"#, "malformed index: no \"packs\""),
            (r#"{"packs": []}"#, "malformed index: no \"packs\""),
            ("[]", "malformed index"),
            (r#"{"packs": {"x": {"repo_url": ""}}}"#, "repo_url"),
            ("{", "invalid JSON"),
            (r#"{"packs": {"x": {"keywords": "notalist"}}}"#, "keywords"),
        ] {
            let err = PackIndex::parse(text, "idx.json").expect_err(text);
            let msg = err.to_string();
            assert!(
                msg.contains(needle) && msg.contains("idx.json"),
                "{text}: {msg}"
            );
        }
    }

    #[test]
    fn searches_like_st2_pack_search() {
        let idx = index();
        let names = |q: &str| {
            idx.search(q)
                .into_iter()
                .map(|e| e.name.clone())
                .collect::<Vec<_>>()
        };
        // Name match first, then keyword match, then description match.
        assert_eq!(names("AWS"), vec!["aws", "My Pack", "slack"]);
        assert_eq!(names("chat"), vec!["slack"]);
        assert_eq!(names("cloud"), vec!["aws"]);
        assert_eq!(names("my_pack"), vec!["My Pack"]);
        // repo_url and email are not searched.
        assert!(names("github").is_empty());
        assert!(names("info@").is_empty());
        assert!(names("zzz").is_empty());
    }

    #[tokio::test]
    async fn loads_and_merges_files_later_wins() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let a = tmp.path().join("a.json");
        let b = tmp.path().join("b.json");
        std::fs::write(&a, INDEX).expect("write");
        std::fs::write(
            &b,
            r#"{"metadata": {"hash": "b"}, "packs": {"aws": {"name": "aws", "version": "9.9.9", "repo_url": "file:///aws"},
                "extra": {"name": "extra", "version": "0.0.1", "repo_url": "file:///extra"}}}"#,
        )
        .expect("write");
        let a_url = format!("file://{}", a.display());
        let b_path = b.display().to_string();
        let missing = tmp.path().join("missing.json").display().to_string();
        let idx = PackIndex::load_all(&[a_url.clone(), b_path.clone(), missing.clone()])
            .await
            .expect("merged");
        assert_eq!(idx.packs.len(), 4);
        assert_eq!(idx.get("aws").map(|e| e.version.as_str()), Some("9.9.9"));
        assert_eq!(idx.metadata.get("hash"), Some(&Value::from("b")));
        assert_eq!(idx.sources.len(), 3);
        assert_eq!(
            idx.sources[0],
            IndexStatus {
                url: a_url,
                packs: 3,
                error: None
            }
        );
        assert!(idx.sources[2]
            .error
            .as_deref()
            .is_some_and(|e| e.contains("cannot read")));

        let err = PackIndex::load_all(&[missing])
            .await
            .expect_err("nothing loads");
        assert!(
            err.to_string().contains("no index could be loaded"),
            "{err}"
        );
        let none: [&str; 0] = [];
        assert!(PackIndex::load_all(&none).await.is_err());
    }

    /// Serves `INDEX` at `/v1/index.json`, a 404 elsewhere and broken JSON at `/broken.json`;
    /// returns the base URL.
    async fn index_server() -> String {
        use axum::routing::get;
        let app = axum::Router::new()
            .route("/v1/index.json", get(|| async { INDEX }))
            .route("/broken.json", get(|| async { "{not json" }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn fetches_remote_indexes_over_http() {
        let base = index_server().await;
        let url = format!("{base}/v1/index.json");
        let idx = PackIndex::load(&url).await.expect("fetched");
        assert_eq!(idx.packs.len(), 3);
        assert_eq!(idx.sources[0].url, url);
        assert_eq!(
            idx.search("chat")
                .iter()
                .map(|e| e.name.as_str())
                .collect::<Vec<_>>(),
            vec!["slack"]
        );

        let missing = format!("{base}/nothing.json");
        let err = PackIndex::load(&missing).await.expect_err("404");
        assert!(err.to_string().contains("HTTP 404"), "{err}");
        assert!(err.to_string().contains(&missing), "{err}");
        let broken = format!("{base}/broken.json");
        let err = PackIndex::load(&broken).await.expect_err("bad JSON");
        assert!(err.to_string().contains("invalid JSON"), "{err}");

        // A failing remote index is skipped; the others still load.
        let idx = PackIndex::load_all(&[missing, url])
            .await
            .expect("one loads");
        assert_eq!(idx.packs.len(), 3);
        assert!(idx.sources[0]
            .error
            .as_deref()
            .is_some_and(|e| e.contains("HTTP 404")));
    }
}
