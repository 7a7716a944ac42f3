//! Two runners through the whole in-process pipeline (request or webhook → rule → scheduler →
//! action runner → stored result), against real servers on 127.0.0.1:
//!
//! - `core.http` (`http-request`) against an axum server started by the test: StackStorm's
//!   result shape (`status_code`, `body` decoded from JSON, `parsed`, `headers`), what the
//!   server received (method, headers, JSON body), a 500 answer failing the execution.
//! - `core.remote` (`remote-shell-cmd`) against a private `sshd` (as
//!   `st2-core/tests/runners_remote.rs` starts it): the result keyed by host with `stdout`,
//!   `stderr`, `return_code`, `succeeded`, `failed`; a non-zero exit fails the execution. Needs
//!   `openssh-server` (`scripts/test.sh` installs it); without `/usr/sbin/sshd` it fails.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::IntoResponse;
use serde_json::{json, Value};

use st2_core::model::ExecutionStatus;
use st2_core::services::executions::{self, ExecutionRequest};
use st2_tests::api::Harness;

// ---------------------------------------------------------------------------------------------
// Harness (as in pipeline.rs)
// ---------------------------------------------------------------------------------------------

/// A platform whose data dir holds the `e2e` pack.
async fn start() -> Harness {
    start_with(|_| {}).await
}

/// A platform whose data dir holds the `e2e` pack, after `prepare` adds to it.
async fn start_with(prepare: impl FnOnce(&Path)) -> Harness {
    Harness::start_with(&["e2e"], prepare).await
}

/// Requests `action_ref` with `parameters` as the system user; returns the execution id.
async fn request(h: &Harness, action_ref: &str, parameters: Value) -> String {
    let req = ExecutionRequest {
        action_ref: action_ref.into(),
        parameters: parameters.as_object().cloned().expect("parameters object"),
        ..Default::default()
    };
    executions::request(&h.platform.ctx, req)
        .await
        .expect("request")
        .id
}

// ---------------------------------------------------------------------------------------------
// http-request
// ---------------------------------------------------------------------------------------------

/// What the test server received, as JSON: method, path, query, headers (lower-case names) and
/// the body (decoded when it is JSON).
fn received(method: &Method, uri: &Uri, headers: &HeaderMap, body: &str) -> Value {
    let headers: serde_json::Map<String, Value> = headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                Value::String(String::from_utf8_lossy(v.as_bytes()).into_owned()),
            )
        })
        .collect();
    json!({
        "method": method.as_str(),
        "path": uri.path(),
        "query": uri.query().unwrap_or(""),
        "headers": headers,
        "body": serde_json::from_str::<Value>(body).unwrap_or_else(|_| json!(body)),
    })
}

/// A local HTTP server: `/echo` answers 200 with JSON describing the request, `/boom` answers
/// 500 with a JSON error, `/text` answers 200 with plain text. Every answer carries
/// `X-Test-Server: yes`. Returns the base URL; the server lives as long as the runtime.
async fn start_http_server() -> String {
    use axum::routing::any;
    async fn echo(method: Method, uri: Uri, headers: HeaderMap, body: String) -> impl IntoResponse {
        (
            [("x-test-server", "yes")],
            axum::Json(received(&method, &uri, &headers, &body)),
        )
    }
    async fn boom() -> impl IntoResponse {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            [("x-test-server", "yes")],
            axum::Json(json!({"error": "boom"})),
        )
    }
    async fn text() -> impl IntoResponse {
        ([("x-test-server", "yes")], "plain ok")
    }
    let app = axum::Router::new()
        .route("/echo", any(echo))
        .route("/boom", any(boom))
        .route("/text", any(text));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

/// Adds pack `e2e_http`: a webhook `call_http` whose rule runs `core.http` with the url,
/// method, body and headers taken from the posted payload.
fn add_http_rule(data: &Path) {
    let dir = data.join("packs").join("e2e_http");
    std::fs::create_dir_all(dir.join("rules")).expect("mkdir");
    std::fs::write(
        dir.join("pack.yaml"),
        "ref: e2e_http\nname: e2e_http\ndescription: http runner test\nauthor: t\nversion: 0.1.0\n",
    )
    .expect("write");
    std::fs::write(
        dir.join("rules").join("call_http.yaml"),
        r#"name: call_http
pack: e2e_http
description: Calls the URL posted to the webhook.
enabled: true
trigger:
  type: core.st2.webhook
  parameters:
    url: call_http
action:
  ref: core.http
  parameters:
    url: "{{ trigger.body.url }}"
    method: "{{ trigger.body.method }}"
    body: "{{ trigger.body.payload }}"
    headers:
      Content-Type: application/json
      X-Custom: "{{ trigger.body.custom }}"
"#,
    )
    .expect("write");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_request_via_webhook_rule_returns_stackstorm_result() {
    let base = start_http_server().await;
    let h = start_with(add_http_rule).await;
    let answer = h
        .post(
            "/api/v1/webhooks/call_http",
            json!({
                "url": format!("{base}/echo?x=1"),
                "method": "PUT",
                "payload": "{\"a\": 1, \"b\": [true, null]}",
                "custom": "v1",
            }),
        )
        .await;
    let (status, body) = (answer.status, answer.body);
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let done = h.wait_for("core.http", |e| e.status.is_completed()).await;
    assert_eq!(done.status, ExecutionStatus::Succeeded, "{:?}", done.result);
    assert!(done.rule.is_some(), "started by the rule");
    assert_eq!(done.parameters["method"], "PUT");
    let result = done.result.clone().expect("result");

    // StackStorm's http_runner result: exactly these four keys.
    let mut keys: Vec<&str> = result
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["body", "headers", "parsed", "status_code"],
        "{result}"
    );
    assert_eq!(result["status_code"], 200);
    assert_eq!(result["parsed"], true);
    assert_eq!(result["headers"]["x-test-server"], "yes");
    assert!(
        result["headers"]["content-type"]
            .as_str()
            .is_some_and(|c| c.starts_with("application/json")),
        "{result}"
    );

    // The body is the server's JSON, decoded: what it received from the runner.
    let got = &result["body"];
    assert_eq!(got["method"], "PUT");
    assert_eq!(got["path"], "/echo");
    assert_eq!(got["query"], "x=1");
    assert_eq!(
        got["body"],
        json!({"a": 1, "b": [true, null]}),
        "a JSON text body is sent as JSON"
    );
    assert_eq!(got["headers"]["content-type"], "application/json");
    assert_eq!(got["headers"]["x-custom"], "v1");
    assert_eq!(got["headers"]["x-stanley-action"], "http");
    assert!(
        got["headers"]["user-agent"]
            .as_str()
            .is_some_and(|ua| ua.starts_with("st2/v")),
        "{got}"
    );

    // The API shows the same result.
    let a = h.get(&format!("/api/v1/executions/{}", done.id)).await;
    let (status, api) = (a.status, a.body);
    assert_eq!(status, StatusCode::OK, "{api}");
    assert_eq!(api["status"], "succeeded");
    assert_eq!(api["result"], result);
    h.platform.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_request_500_fails_and_text_is_not_parsed() {
    let base = start_http_server().await;
    let h = start().await;

    let id = request(
        &h,
        "core.http",
        json!({"url": format!("{base}/boom"), "method": "POST", "body": "x=1"}),
    )
    .await;
    let done = h.wait_done(&id).await;
    assert_eq!(done.status, ExecutionStatus::Failed, "{:?}", done.result);
    let result = done.result.expect("result");
    assert_eq!(result["status_code"], 500);
    assert_eq!(result["parsed"], true);
    assert_eq!(result["body"], json!({"error": "boom"}));
    assert_eq!(result["headers"]["x-test-server"], "yes");

    // A plain text answer stays text; GET is the default without a body.
    let id = request(&h, "core.http", json!({"url": format!("{base}/text")})).await;
    let done = h.wait_done(&id).await;
    assert_eq!(done.status, ExecutionStatus::Succeeded, "{:?}", done.result);
    let result = done.result.expect("result");
    assert_eq!(result["status_code"], 200);
    assert_eq!(result["parsed"], false);
    assert_eq!(result["body"], "plain ok");
    h.platform.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// remote-shell-cmd (private sshd as in st2-core/tests/runners_remote.rs)
// ---------------------------------------------------------------------------------------------

const SSHD: &str = "/usr/sbin/sshd";

/// A private sshd; killed when dropped.
struct Sshd {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Sshd {
    fn key(&self) -> PathBuf {
        self.dir.path().join("id_ed25519")
    }
}

fn keygen(path: &Path) {
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "st2-test", "-f"])
        .arg(path)
        .stdout(Stdio::null())
        .status()
        .expect("ssh-keygen (openssh-client) must be installed");
    assert!(status.success(), "ssh-keygen failed");
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// The name of the user this test runs as (`id -un`; `USER` may be unset in containers).
fn current_user() -> String {
    let out = Command::new("id").arg("-un").output().expect("id -un");
    assert!(out.status.success(), "id -un failed");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

async fn start_sshd() -> Sshd {
    assert!(
        Path::new(SSHD).is_file(),
        "{SSHD} not found: the remote runner tests need openssh-server; run scripts/test.sh, \
         which installs it"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    keygen(&d.join("host_key"));
    keygen(&d.join("id_ed25519"));
    std::fs::copy(d.join("id_ed25519.pub"), d.join("authorized_keys")).expect("authorized_keys");
    let root = current_user() == "root";
    if root {
        // sshd started as root insists on its privilege separation directory.
        let _ = std::fs::create_dir_all("/run/sshd");
    }
    let port = free_port();
    let config = format!(
        "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nPidFile {d}/sshd.pid\n\
         AuthorizedKeysFile {d}/authorized_keys\nStrictModes no\nUsePAM no\n\
         PubkeyAuthentication yes\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
         PermitRootLogin {}\nLogLevel FATAL\nMaxStartups 100\nMaxSessions 100\n",
        if root { "prohibit-password" } else { "no" },
        d = d.display()
    );
    std::fs::write(d.join("sshd_config"), config).expect("config");
    let child = Command::new(SSHD)
        .args(["-D", "-e", "-f"])
        .arg(d.join("sshd_config"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start sshd");
    let sshd = Sshd { child, port, dir };
    // sshd -D writes its pid file once it listens.
    let pidfile = sshd.dir.path().join("sshd.pid");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !pidfile.is_file() {
        assert!(
            Instant::now() < deadline,
            "sshd did not start listening on port {port}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    sshd
}

/// `core.remote` parameters running `cmd` on 127.0.0.1 through `sshd`.
fn remote_params(sshd: &Sshd, cmd: &str) -> Value {
    json!({
        "hosts": "127.0.0.1",
        "port": sshd.port,
        "username": current_user(),
        "private_key": sshd.key().to_string_lossy(),
        "cmd": cmd,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_command_result_is_keyed_by_host() {
    let sshd = start_sshd().await;
    let h = start().await;

    // A non-zero exit fails the execution; both streams and the code are kept, per host.
    let id = request(
        &h,
        "core.remote",
        remote_params(&sshd, "echo hi; echo err >&2; exit 3"),
    )
    .await;
    let done = h.wait_done(&id).await;
    assert_eq!(done.status, ExecutionStatus::Failed, "{:?}", done.result);
    let result = done.result.expect("result");
    let hosts: Vec<&String> = result.as_object().expect("object").keys().collect();
    assert_eq!(hosts, ["127.0.0.1"], "keyed by host: {result}");
    let host = &result["127.0.0.1"];
    assert_eq!(host["stdout"], "hi");
    assert_eq!(host["stderr"], "err");
    assert_eq!(host["return_code"], 3);
    assert_eq!(host["succeeded"], false);
    assert_eq!(host["failed"], true);
    assert!(
        done.parameters["private_key"]
            .as_str()
            .is_some_and(|k| k.starts_with(executions::ENCRYPTED_PARAM_PREFIX)),
        "the secret key parameter is sealed at rest"
    );

    // A successful command, seen through the API as st2 would.
    let id = request(
        &h,
        "core.remote",
        remote_params(
            &sshd,
            "echo hi; echo err >&2; echo \"$ST2_ACTION_PACK_NAME\"",
        ),
    )
    .await;
    let done = h.wait_done(&id).await;
    assert_eq!(done.status, ExecutionStatus::Succeeded, "{:?}", done.result);
    let a = h.get(&format!("/api/v1/executions/{id}")).await;
    let (status, api) = (a.status, a.body);
    assert_eq!(status, StatusCode::OK, "{api}");
    assert_eq!(api["status"], "succeeded");
    let host = &api["result"]["127.0.0.1"];
    assert_eq!(host["stdout"], "hi\ncore");
    assert_eq!(host["stderr"], "err");
    assert_eq!(host["return_code"], 0);
    assert_eq!(host["succeeded"], true);
    assert_eq!(host["failed"], false);
    h.platform.shutdown().await;
}
