//! Shared by the tests that run `st2d` as an operator does: start it on port 0 with a fresh
//! data dir, speak HTTP to it, log in as the first-start admin.
#![allow(dead_code)]

pub mod cluster;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `st2d`, killed on drop.
pub struct Server(pub Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `st2d` on 127.0.0.1:0 over `data`; returns it and its address.
pub fn start(data: &Path) -> (Server, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_st2d"))
        .arg("--data-dir")
        .arg(data)
        .arg("--bind")
        .arg("127.0.0.1:0")
        .env("RUST_LOG", "warn")
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn st2d");
    let stderr = child.stderr.take().expect("stderr");
    let server = Server(child);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut lines = BufReader::new(stderr).lines();
    loop {
        assert!(Instant::now() < deadline, "st2d did not start in time");
        let line = lines.next().expect("st2d exited early").expect("read");
        if let Some(rest) = line.split("listening on http://").nth(1) {
            let addr = rest.split('/').next().expect("addr").to_string();
            // Keep draining stderr so the server never blocks on a full pipe.
            std::thread::spawn(move || for _ in lines {});
            return (server, addr);
        }
    }
}

/// One HTTP/1.1 request; the whole raw response.
pub fn http(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> String {
    let mut s = TcpStream::connect(addr).expect("connect");
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    out
}

/// Logs in as st2admin with the first-start password file; returns a token.
pub fn login(addr: &str, data: &Path) -> String {
    use base64::Engine as _;
    let pw = std::fs::read_to_string(data.join("st2admin.password")).expect("password");
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("st2admin:{}", pw.trim()));
    let resp = http(
        addr,
        "POST",
        "/auth/v1/tokens",
        &[
            ("Authorization", &format!("Basic {basic}")),
            ("Content-Type", "application/json"),
        ],
        "{}",
    );
    assert!(resp.starts_with("HTTP/1.1 201"), "{resp}");
    let body = resp.split("\r\n\r\n").nth(1).expect("body");
    let v: serde_json::Value = serde_json::from_str(body).expect("json");
    assert!(
        v["expiry"].as_str().is_some_and(|e| e.ends_with('Z')),
        "{v}"
    );
    v["token"].as_str().expect("token").to_string()
}

/// Polls `f` until it holds (60 s at most).
pub fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Copies a directory tree.
pub fn copy_tree(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).expect("mkdir");
    for e in std::fs::read_dir(src).expect("read dir") {
        let e = e.expect("entry");
        let to = dst.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy_tree(&e.path(), &to);
        } else {
            std::fs::copy(e.path(), &to).expect("copy");
        }
    }
}
