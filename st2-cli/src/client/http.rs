//! The HTTP side of the client: authentication (token, API key, automatic login with the
//! configured credentials and the `~/.st2/token-<user>` cache) and JSON calls that turn error
//! answers into [`ApiError`] (`ERROR: <status> <reason>` / `MESSAGE: <faultstring>`).

use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use base64::Engine as _;
use reqwest::blocking::{Client as Http, RequestBuilder, Response};
use reqwest::Method;
use serde_json::{json, Value};

use super::config::ClientConfig;

/// An error answer of the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status code.
    pub status: u16,
    /// Reason phrase (`Not Found`).
    pub reason: String,
    /// The URL called, without its query string (which may hold a token).
    pub url: String,
    /// StackStorm's `faultstring`, or the body text when it is not JSON.
    pub message: String,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = if self.status >= 500 {
            "Server Error"
        } else {
            "Client Error"
        };
        write!(
            f,
            "{} {kind}: {} for url: {}",
            self.status, self.reason, self.url
        )?;
        if !self.message.is_empty() {
            write!(f, "\nMESSAGE: {}", self.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiError {}

/// The token answer of `POST /tokens`.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
pub struct Token {
    /// The user it belongs to.
    pub user: String,
    /// The token.
    pub token: String,
    /// ISO-8601 UTC expiry.
    pub expiry: String,
}

/// Which credential the client sends.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Auth {
    None,
    Token(String),
    ApiKey(String),
    Both(String, String),
}

/// A client of one st2 API (blocking).
pub struct Client {
    /// The resolved configuration.
    pub config: ClientConfig,
    http: Http,
    /// Client for long calls (the event stream): no overall timeout.
    stream_http: Http,
    auth: std::cell::RefCell<Auth>,
    /// Credentials to log in again with when a cached token is refused (the server forgot it).
    relogin: Option<(String, String)>,
}

/// Creates a token: `POST $AUTH_URL/tokens` with basic auth and `{}` or `{"ttl": N}`.
pub fn create_token(
    http: &Http,
    auth_url: &str,
    user: &str,
    password: &str,
    ttl: Option<u64>,
) -> anyhow::Result<Token> {
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let body = match ttl {
        Some(t) => json!({ "ttl": t }),
        None => json!({}),
    };
    let resp = http
        .post(format!("{auth_url}/tokens"))
        .header("Authorization", format!("Basic {basic}"))
        .json(&body)
        .send()
        .with_context(|| format!("cannot reach the auth endpoint {auth_url}"))?;
    let v = check(resp)?;
    serde_json::from_value(v).context("unexpected token answer")
}

/// Reads a cached token of the st2client format (`{"token", "expire_timestamp"}`), unless it
/// expires within 15 seconds.
pub fn read_cached_token(file: &Path) -> Option<String> {
    let text = std::fs::read_to_string(file).ok()?;
    let v: Value = serde_json::from_str(&text).ok()?;
    let expires = v.get("expire_timestamp")?.as_f64()?;
    let now = chrono::Utc::now().timestamp() as f64;
    (expires > now + 15.0)
        .then(|| v.get("token")?.as_str().map(str::to_string))
        .flatten()
}

/// Caches a token in st2client's format, readable by the owner only.
pub fn write_cached_token(file: &Path, token: &Token) -> anyhow::Result<()> {
    let expires = chrono::DateTime::parse_from_rfc3339(&token.expiry)
        .map(|d| d.timestamp())
        .with_context(|| format!("token expiry \"{}\" is not ISO-8601", token.expiry))?;
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts
        .open(file)
        .with_context(|| format!("cannot write {}", file.display()))?;
    let body = json!({ "token": token.token, "expire_timestamp": expires });
    f.write_all(body.to_string().as_bytes())?;
    Ok(())
}

/// Turns an answer into its JSON body (`null` when empty, a string when not JSON), or an
/// [`ApiError`] for any status outside 2xx.
pub fn check(resp: Response) -> anyhow::Result<Value> {
    let status = resp.status();
    let mut url = resp.url().clone();
    url.set_query(None);
    let text = resp.text().context("cannot read the answer")?;
    let body = if text.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    if status.is_success() {
        return Ok(body);
    }
    let message = match &body {
        Value::Object(o) => o
            .get("faultstring")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| body.to_string()),
        Value::String(s) => s.clone(),
        _ => String::new(),
    };
    Err(ApiError {
        status: status.as_u16(),
        reason: status.canonical_reason().unwrap_or("").to_string(),
        url: url.to_string(),
        message,
    }
    .into())
}

/// Whether `err` is an API answer with `status`.
pub fn is_status(err: &anyhow::Error, status: u16) -> bool {
    err.downcast_ref::<ApiError>()
        .is_some_and(|e| e.status == status)
}

impl Client {
    /// A client for `config`, logging in with the configured credentials when no token or API
    /// key was given (reusing a cached token when it is still valid).
    pub fn connect(config: ClientConfig) -> anyhow::Result<Self> {
        let http = Http::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .context("cannot build the HTTP client")?;
        let stream_http = Http::builder()
            .timeout(None)
            .build()
            .context("cannot build the HTTP client")?;
        let mut auth = match (config.token.clone(), config.api_key.clone()) {
            (Some(t), Some(k)) => Auth::Both(t, k),
            (Some(t), None) => Auth::Token(t),
            (None, Some(k)) => Auth::ApiKey(k),
            (None, None) => Auth::None,
        };
        let mut relogin = None;
        if auth == Auth::None {
            if let (Some(user), Some(pw)) = (
                config.credentials.username.clone(),
                config.credentials.password.clone(),
            ) {
                let file = config.token_file(&user);
                let cached = config
                    .cache_token
                    .then(|| read_cached_token(&file))
                    .flatten();
                let token = match cached {
                    Some(t) => {
                        relogin = Some((user.clone(), pw.clone()));
                        t
                    }
                    None => {
                        let t = create_token(&http, &config.auth_url, &user, &pw, None)?;
                        if config.cache_token {
                            if let Err(e) = write_cached_token(&file, &t) {
                                tracing::warn!(error = %e, "cannot cache the token");
                            }
                        }
                        t.token
                    }
                };
                auth = Auth::Token(token);
            } else if let Some(user) = config.credentials.username.clone() {
                // `st2 login` keeps only the user name: its cached token is the credential.
                if let Some(t) = read_cached_token(&config.token_file(&user)) {
                    auth = Auth::Token(t);
                }
            }
        }
        Ok(Self {
            config,
            http,
            stream_http,
            auth: std::cell::RefCell::new(auth),
            relogin,
        })
    }

    /// The plain HTTP client (for calls outside the API, like creating a token).
    pub fn http(&self) -> &Http {
        &self.http
    }

    /// The token in use, if any.
    pub fn token(&self) -> Option<String> {
        match &*self.auth.borrow() {
            Auth::Token(t) | Auth::Both(t, _) => Some(t.clone()),
            _ => None,
        }
    }

    /// The API key in use, if any.
    pub fn api_key(&self) -> Option<String> {
        match &*self.auth.borrow() {
            Auth::ApiKey(k) | Auth::Both(_, k) => Some(k.clone()),
            _ => None,
        }
    }

    /// After a cached token was refused: logs in again with the configured credentials,
    /// caches the new token and uses it. False when there is nothing to retry with.
    fn refresh_token(&self) -> anyhow::Result<bool> {
        let Some((user, pw)) = &self.relogin else {
            return Ok(false);
        };
        let t = create_token(&self.http, &self.config.auth_url, user, pw, None)?;
        if let Err(e) = write_cached_token(&self.config.token_file(user), &t) {
            tracing::warn!(error = %e, "cannot cache the token");
        }
        *self.auth.borrow_mut() = Auth::Token(t.token);
        Ok(true)
    }

    fn authed(&self, req: RequestBuilder) -> RequestBuilder {
        let mut req = req;
        if let Some(t) = self.token() {
            req = req.header("X-Auth-Token", t);
        }
        if let Some(k) = self.api_key() {
            req = req.header("St2-Api-Key", k);
        }
        req
    }

    /// Builds an authenticated request to `$API_URL{path}` (path starts with `/`).
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.authed(
            self.http
                .request(method, format!("{}{path}", self.config.api_url)),
        )
    }

    /// Sends a request and checks its answer (once more with a new token when a cached token
    /// is refused).
    pub fn send(&self, req: RequestBuilder) -> anyhow::Result<Value> {
        let resp = self.send_raw(req)?;
        check(resp)
    }

    fn send_raw(&self, req: RequestBuilder) -> anyhow::Result<Response> {
        let retry = req.try_clone();
        let resp = req
            .send()
            .with_context(|| format!("cannot reach the st2 API at {}", self.config.api_url))?;
        if resp.status() == reqwest::StatusCode::UNAUTHORIZED {
            if let Some(retry) = retry {
                if self.refresh_token()? {
                    let token = self.token().unwrap_or_default();
                    let mut retry = retry.build().context("cannot build the request")?;
                    retry.headers_mut().insert(
                        "X-Auth-Token",
                        reqwest::header::HeaderValue::from_str(&token)
                            .context("the new token is not a valid header")?,
                    );
                    return self.http.execute(retry).with_context(|| {
                        format!("cannot reach the st2 API at {}", self.config.api_url)
                    });
                }
            }
        }
        Ok(resp)
    }

    /// `GET $API{path}` with query parameters.
    pub fn get(&self, path: &str, query: &[(&str, String)]) -> anyhow::Result<Value> {
        self.send(self.request(Method::GET, path).query(query))
    }

    /// `GET` returning the body and the `X-Total-Count` header.
    pub fn get_counted(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> anyhow::Result<(Value, Option<u64>)> {
        let resp = self.send_raw(self.request(Method::GET, path).query(query))?;
        let total = resp
            .headers()
            .get("x-total-count")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        Ok((check(resp)?, total))
    }

    /// `GET $API{path}` as text (`/executions/ID/output`).
    pub fn get_text(&self, path: &str, query: &[(&str, String)]) -> anyhow::Result<String> {
        let v = self.get(path, query)?;
        Ok(match v {
            Value::Null => String::new(),
            Value::String(s) => s,
            other => other.to_string(),
        })
    }

    /// `POST $API{path}` with a JSON body.
    pub fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.send(self.request(Method::POST, path).json(body))
    }

    /// `PUT $API{path}` with a JSON body.
    pub fn put(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.send(self.request(Method::PUT, path).json(body))
    }

    /// `DELETE $API{path}`.
    pub fn delete(&self, path: &str, query: &[(&str, String)]) -> anyhow::Result<Value> {
        self.send(self.request(Method::DELETE, path).query(query))
    }

    /// Opens the event stream `GET $STREAM_URL/stream` with the token or key in the query
    /// string (as st2client does) and returns the open response.
    pub fn open_stream(&self, query: &[(&str, String)]) -> anyhow::Result<Response> {
        let mut q: Vec<(&str, String)> = query.to_vec();
        if let Some(t) = self.token() {
            q.push(("x-auth-token", t));
        } else if let Some(k) = self.api_key() {
            q.push(("st2-api-key", k));
        }
        let resp = self
            .stream_http
            .get(format!("{}/stream", self.config.stream_url))
            .query(&q)
            .send()
            .with_context(|| format!("cannot reach the stream at {}", self.config.stream_url))?;
        if resp.status().is_success() {
            Ok(resp)
        } else {
            Err(check(resp)
                .err()
                .unwrap_or_else(|| anyhow::anyhow!("stream refused")))
        }
    }
}

/// One server-sent event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Event name (`st2.execution__update`).
    pub name: String,
    /// Parsed `data` (JSON).
    pub data: Value,
}

/// Reads events from an SSE body, calling `f` for each one until it returns `false` or the
/// stream ends. Heartbeats (empty data) are skipped.
pub fn read_events(
    resp: Response,
    mut f: impl FnMut(Event) -> anyhow::Result<bool>,
) -> anyhow::Result<()> {
    use std::io::BufRead as _;
    let reader = std::io::BufReader::new(resp);
    let mut name = String::new();
    let mut data = String::new();
    for line in reader.lines() {
        let line = line.context("the stream broke")?;
        if line.is_empty() {
            if !data.is_empty() {
                let parsed = serde_json::from_str(&data).unwrap_or(Value::String(data.clone()));
                let ev = Event {
                    name: if name.is_empty() {
                        "message".into()
                    } else {
                        name.clone()
                    },
                    data: parsed,
                };
                if !f(ev)? {
                    return Ok(());
                }
            }
            name.clear();
            data.clear();
        } else if let Some(v) = line.strip_prefix("event:") {
            name = v.trim().to_string();
        } else if let Some(v) = line.strip_prefix("data:") {
            if !data.is_empty() {
                data.push('\n');
            }
            data.push_str(v.strip_prefix(' ').unwrap_or(v));
        }
    }
    Ok(())
}
