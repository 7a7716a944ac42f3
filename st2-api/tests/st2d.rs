//! `st2d` as an operator starts it: a fresh data dir, port 0, first-start admin, bundled packs.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(data: &Path) -> (Server, String) {
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

fn http_get(addr: &str, path: &str) -> String {
    let mut s = TcpStream::connect(addr).expect("connect");
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    out
}

#[test]
fn first_start_creates_admin_and_answers() {
    let data = tempfile::tempdir().expect("tmp");
    let (_server, addr) = start(data.path());
    let resp = http_get(&addr, "/api/v1/");
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(resp.contains("st2_version"), "{resp}");

    let pw = data.path().join("st2admin.password");
    let meta = std::fs::metadata(&pw).expect("password file");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    }
    let password = std::fs::read_to_string(&pw).expect("read");
    assert!(password.trim().len() >= 16, "a real random password");

    // The bundled packs are registered, in the store file the server uses.
    let rt = tokio::runtime::Builder::new_current_thread().build().expect("rt");
    rt.block_on(async {
        let store = st2_core::store::EmbeddedStore::open(&data.path().join("st2.db")).expect("open");
        let local = st2_core::store::repo::<st2_core::model::Action>(&store)
            .get_by_ref("core.local")
            .await
            .expect("query");
        assert!(local.is_some(), "core.local registered at start");
    });
}
