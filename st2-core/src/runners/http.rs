//! `http-request`: StackStorm's `http_runner`, over reqwest (rustls, no system OpenSSL).
//!
//! Runner parameters: `url` (required), `headers`, `cookies`, `username`/`password` (basic
//! auth), `allow_redirects` (default false), `verify_ssl_cert` (default true), `http_proxy`,
//! `https_proxy`, `url_hosts_blacklist` / `url_hosts_whitelist` (mutually exclusive). Action
//! parameters (`core.http`): `method` (default POST with a body or file, else GET), `body`
//! (text, or an object: form-encoded like `requests`, JSON when the `Content-Type` header is
//! `application/json`, in which case a text body is parsed and re-encoded), `params` (query),
//! `timeout` (seconds, default 60), `file_name` + `file_content` (+ `file_content_type`) for a
//! multipart upload. `auth` is accepted and ignored, as it has no effect in StackStorm either.
//!
//! Every request carries `User-Agent: st2/v<version>` and `X-Stanley-Action: <action name>`.
//! Result `{status_code, body, parsed, headers}`: the body is JSON-decoded when the response's
//! content type is `application/json` (`parsed: true`). Status codes 200–206 succeed, any other
//! fails; a timeout gives status `timeout` and `{error}`.

use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{json, Map, Value};

use super::args::py_str;
use super::params::{bool_param, nonempty_str_param, seconds_param, str_param};
use super::{RunContext, RunOutcome, Runner, RunnerError};
use crate::model::{ExecutionStatus, JsonMap};

/// Default request timeout, in seconds (`core.http`'s `timeout`).
pub const DEFAULT_TIMEOUT: f64 = 60.0;
/// Status codes that mean success (StackStorm's `SUCCESS_STATUS_CODES`).
pub const SUCCESS_STATUS_CODES: std::ops::RangeInclusive<u16> = 200..=206;
/// At most this many redirects are followed when `allow_redirects` is on (as `requests`).
const MAX_REDIRECTS: usize = 30;

/// The `http-request` runner.
#[derive(Debug, Clone, Default)]
pub struct HttpRunner;

impl HttpRunner {
    /// The runner.
    pub fn new() -> Self {
        Self
    }
}

/// The text of an error and its sources.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut msg = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !msg.contains(&s_text) {
            msg.push_str(": ");
            msg.push_str(&s_text);
        }
        source = s.source();
    }
    msg
}

/// A JSON object's entries as text pairs (`requests` sends `str(value)`; lists repeat the key).
fn pairs(v: Option<&Value>) -> Vec<(String, String)> {
    let Some(Value::Object(o)) = v else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (k, v) in o {
        match v {
            Value::Null => {}
            Value::Array(items) => {
                out.extend(items.iter().map(|i| (k.clone(), py_str(i))));
            }
            other => out.push((k.clone(), py_str(other))),
        }
    }
    out
}

/// The host of `url` without port or brackets (`_get_host_from_url`).
fn url_host(url: &reqwest::Url) -> String {
    url.host_str()
        .unwrap_or_default()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string()
}

/// A string list parameter.
fn str_list(m: &JsonMap, key: &str) -> Vec<String> {
    match m.get(key) {
        Some(Value::Array(a)) => a.iter().map(py_str).collect(),
        Some(Value::String(s)) if !s.is_empty() => vec![s.clone()],
        _ => Vec::new(),
    }
}

/// Response headers as an object; repeated headers are joined with `, ` (as `requests`).
fn headers_json(h: &HeaderMap) -> Value {
    let mut out = Map::new();
    for (name, value) in h {
        let text = String::from_utf8_lossy(value.as_bytes()).into_owned();
        match out.get_mut(name.as_str()) {
            Some(Value::String(prev)) => {
                prev.push_str(", ");
                prev.push_str(&text);
            }
            _ => {
                out.insert(name.as_str().to_string(), Value::String(text));
            }
        }
    }
    Value::Object(out)
}

/// The body to send.
enum Body {
    None,
    Bytes(Vec<u8>),
    Form(Vec<(String, String)>),
    Multipart(reqwest::multipart::Form),
}

impl HttpRunner {
    async fn execute(&self, ctx: &RunContext) -> Result<RunOutcome, RunnerError> {
        let rp = &ctx.runner_params;
        let ap = &ctx.action_params;
        let url_text = nonempty_str_param(rp, "url")
            .ok_or_else(|| RunnerError::Invalid("URL must be specified.".into()))?;
        let url = reqwest::Url::parse(&url_text)
            .map_err(|e| RunnerError::Invalid(format!("Invalid URL \"{url_text}\": {e}")))?;

        let blacklist = str_list(rp, "url_hosts_blacklist");
        let whitelist = str_list(rp, "url_hosts_whitelist");
        if !blacklist.is_empty() && !whitelist.is_empty() {
            return Err(RunnerError::Invalid(
                "\"url_hosts_blacklist\" and \"url_hosts_whitelist\" parameters are mutually \
                 exclusive. Only one should be provided."
                    .into(),
            ));
        }
        let host = url_host(&url);
        if blacklist.contains(&host) {
            return Err(RunnerError::Invalid(format!(
                "URL \"{url_text}\" is blacklisted"
            )));
        }
        if !whitelist.is_empty() && !whitelist.contains(&host) {
            return Err(RunnerError::Invalid(format!(
                "URL \"{url_text}\" is not whitelisted"
            )));
        }

        // Headers: the action's, then ours (which win, as in StackStorm's dict).
        let mut header_pairs = pairs(rp.get("headers"));
        header_pairs.push((
            "User-Agent".into(),
            format!("st2/v{}", env!("CARGO_PKG_VERSION")),
        ));
        header_pairs.push(("X-Stanley-Action".into(), ctx.action.name.clone()));
        let cookies = pairs(rp.get("cookies"));
        if !cookies.is_empty() {
            let jar: Vec<String> = cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
            header_pairs.push(("Cookie".into(), jar.join("; ")));
        }
        let mut headers = HeaderMap::new();
        for (k, v) in &header_pairs {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|e| RunnerError::Invalid(format!("invalid header name \"{k}\": {e}")))?;
            let value = HeaderValue::from_str(v).map_err(|e| {
                RunnerError::Invalid(format!("invalid value of header \"{k}\": {e}"))
            })?;
            headers.insert(name, value);
        }
        let json_content = headers
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("application/json"));

        // Body.
        let body_value = ap.get("body").filter(|v| !v.is_null());
        let file_name = nonempty_str_param(ap, "file_name");
        let file_content = str_param(ap, "file_content").filter(|s| !s.is_empty());
        let has_body = body_value.is_some_and(|b| !matches!(b, Value::String(s) if s.is_empty()));
        let body = if let (Some(name), Some(content)) = (file_name, file_content) {
            let mut part = reqwest::multipart::Part::text(content).file_name(name.clone());
            if let Some(ct) = nonempty_str_param(ap, "file_content_type") {
                part = part
                    .mime_str(&ct)
                    .map_err(|e| RunnerError::Invalid(format!("invalid file_content_type: {e}")))?;
            }
            let mut form = reqwest::multipart::Form::new().part(name, part);
            for (k, v) in pairs(body_value) {
                form = form.text(k, v);
            }
            Body::Multipart(form)
        } else {
            match body_value {
                None => Body::None,
                Some(Value::String(s)) if s.is_empty() => Body::None,
                Some(b) if json_content => {
                    let parsed = match b {
                        Value::String(s) => serde_json::from_str::<Value>(s).map_err(|_| {
                            RunnerError::Invalid(format!(
                                "Request body ({s}) can't be parsed as JSON"
                            ))
                        })?,
                        other => other.clone(),
                    };
                    Body::Bytes(parsed.to_string().into_bytes())
                }
                Some(Value::String(s)) => Body::Bytes(s.clone().into_bytes()),
                Some(Value::Object(_)) => Body::Form(pairs(body_value)),
                Some(other) => Body::Bytes(py_str(other).into_bytes()),
            }
        };
        let default_method = if has_body || matches!(body, Body::Multipart(_)) {
            "POST"
        } else {
            "GET"
        };
        let method_text = nonempty_str_param(ap, "method").unwrap_or_else(|| default_method.into());
        let method = reqwest::Method::from_bytes(method_text.to_ascii_uppercase().as_bytes())
            .map_err(|_| RunnerError::Invalid(format!("invalid HTTP method \"{method_text}\"")))?;
        let timeout = seconds_param(ap, "timeout").unwrap_or(DEFAULT_TIMEOUT);

        // Client: redirects, certificate checks and proxies are per action.
        let mut builder = reqwest::Client::builder()
            .redirect(if bool_param(rp, "allow_redirects", false) {
                reqwest::redirect::Policy::limited(MAX_REDIRECTS)
            } else {
                reqwest::redirect::Policy::none()
            })
            .danger_accept_invalid_certs(!bool_param(rp, "verify_ssl_cert", true));
        if timeout > 0.0 && timeout.is_finite() {
            builder = builder.timeout(Duration::from_secs_f64(timeout));
        }
        if let Some(p) = nonempty_str_param(rp, "http_proxy") {
            let proxy = reqwest::Proxy::http(p.as_str())
                .map_err(|e| RunnerError::Invalid(format!("invalid http_proxy: {e}")))?;
            builder = builder.proxy(proxy);
        }
        if let Some(p) = nonempty_str_param(rp, "https_proxy") {
            let proxy = reqwest::Proxy::https(p.as_str())
                .map_err(|e| RunnerError::Invalid(format!("invalid https_proxy: {e}")))?;
            builder = builder.proxy(proxy);
        }
        let client = builder.build().map_err(|e| {
            RunnerError::Invalid(format!("cannot build an HTTP client: {}", error_chain(&e)))
        })?;

        let mut req = client.request(method, url).headers(headers);
        let query = pairs(ap.get("params"));
        if !query.is_empty() {
            req = req.query(&query);
        }
        let username = str_param(rp, "username");
        let password = str_param(rp, "password");
        if username.is_some() || password.is_some() {
            req = req.basic_auth(username.unwrap_or_default(), password);
        }
        req = match body {
            Body::None => req,
            Body::Bytes(b) => req.body(b),
            Body::Form(f) => req.form(&f),
            Body::Multipart(m) => req.multipart(m),
        };

        let sent = async {
            let resp = req.send().await?;
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            let text = resp.text().await?;
            Ok::<_, reqwest::Error>((status, headers, text))
        };
        let (status_code, resp_headers, text) = tokio::select! {
            r = sent => match r {
                Ok(v) => v,
                Err(e) if e.is_timeout() => {
                    return Ok(RunOutcome::new(ExecutionStatus::Timeout, json!({"error": error_chain(&e)})));
                }
                Err(e) => return Ok(RunOutcome::failed(error_chain(&e))),
            },
            _ = ctx.cancel.cancelled() => {
                return Ok(RunOutcome::new(ExecutionStatus::Canceled, json!({"error": "Action was canceled"})));
            }
        };

        let is_json = resp_headers
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or("").trim().to_string())
            .is_some_and(|ct| ct == "application/json");
        let (body, parsed) = match is_json.then(|| serde_json::from_str::<Value>(&text)) {
            Some(Ok(v)) => (v, true),
            _ => (Value::String(text), false),
        };
        let status = if SUCCESS_STATUS_CODES.contains(&status_code) {
            ExecutionStatus::Succeeded
        } else {
            ExecutionStatus::Failed
        };
        Ok(RunOutcome::new(
            status,
            json!({
                "status_code": status_code,
                "body": body,
                "parsed": parsed,
                "headers": headers_json(&resp_headers),
            }),
        ))
    }
}

#[async_trait]
impl Runner for HttpRunner {
    fn name(&self) -> &str {
        "http-request"
    }

    async fn run(&self, ctx: RunContext) -> RunOutcome {
        self.execute(&ctx).await.unwrap_or_else(RunOutcome::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_of_urls() {
        let cases = [
            ("http://example.com/x", "example.com"),
            ("https://example.com:8443/", "example.com"),
            ("http://[::1]:80/", "::1"),
            ("http://127.0.0.1/", "127.0.0.1"),
        ];
        for (u, want) in cases {
            let url = reqwest::Url::parse(u).expect("test url");
            assert_eq!(url_host(&url), want, "{u}");
        }
    }

    #[test]
    fn object_pairs() {
        let v = json!({"a": "x", "b": 2, "c": ["1", 2], "d": null, "e": true});
        assert_eq!(
            pairs(Some(&v)),
            vec![
                ("a".to_string(), "x".to_string()),
                ("b".into(), "2".into()),
                ("c".into(), "1".into()),
                ("c".into(), "2".into()),
                ("e".into(), "True".into()),
            ]
        );
    }
}
