//! The SSH side of the remote runners: connecting (directly or through a bastion) and logging
//! in, running one command in a channel with a deadline and cancellation, and copying files
//! with `cat` (no SFTP needed on the host).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use russh::client::{self, Handle};
use russh::keys::{PrivateKey, PrivateKeyWithHashAlg};
use russh::ChannelMsg;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::super::args::quote_unix;
use super::super::{OutputChunk, OutputSink, OutputStream};

/// One host of `hosts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Target {
    /// Host name or address, without port or brackets (the result key).
    pub host: String,
    /// SSH port.
    pub port: u16,
}

/// How to log in.
#[derive(Clone)]
pub(super) enum Auth {
    /// Password authentication.
    Password(String),
    /// Public key authentication with this (decrypted) key.
    Key(Arc<PrivateKey>),
}

/// Who logs in where, and how: the same for every host of a run.
pub(super) struct Login {
    /// The SSH user.
    pub username: String,
    /// Password or key.
    pub auth: Auth,
    /// Tunnel every connection through this host (same credentials).
    pub bastion: Option<Target>,
    /// How long connecting and logging in may take.
    pub connect_timeout: Duration,
}

/// The files a script run copies.
pub(super) struct Upload {
    /// `<dir>/<execution id>`: created first, removed at the end.
    pub remote_dir: String,
    /// Where the script goes (mode 0744).
    pub remote_script: String,
    /// The local script.
    pub script: PathBuf,
    /// The local `lib/` folder next to the script, copied to `<remote_dir>/lib`.
    pub libs: Option<PathBuf>,
}

/// Accepts any host key (paramiko's `AutoAddPolicy`).
struct AcceptAnyHostKey;

impl client::Handler for AcceptAnyHostKey {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        _key: &russh::keys::PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        Ok(true)
    }
}

/// A logged-in connection (and the bastion connection it is tunnelled through).
pub(super) struct Session {
    handle: Handle<AcceptAnyHostKey>,
    _bastion: Option<Handle<AcceptAnyHostKey>>,
}

impl Session {
    /// Says goodbye to the server (best effort).
    pub(super) async fn disconnect(&self) {
        let _ = self
            .handle
            .disconnect(russh::Disconnect::ByApplication, "", "en")
            .await;
    }
}

/// What one command on one host did.
pub(super) enum Exec {
    Done {
        stdout: String,
        stderr: String,
        code: i32,
    },
    TimedOut {
        stdout: String,
        stderr: String,
    },
}

fn ssh_error(e: &russh::Error) -> String {
    e.to_string()
}

async fn authenticate(
    h: &mut Handle<AcceptAnyHostKey>,
    user: &str,
    auth: &Auth,
) -> Result<(), String> {
    let result = match auth {
        Auth::Password(p) => h.authenticate_password(user, p).await,
        Auth::Key(key) => {
            let hash = if key.algorithm().is_rsa() {
                h.best_supported_rsa_hash().await.ok().flatten().flatten()
            } else {
                None
            };
            h.authenticate_publickey(user, PrivateKeyWithHashAlg::new(Arc::clone(key), hash))
                .await
        }
    };
    match result {
        Ok(r) if r.success() => Ok(()),
        Ok(_) => Err(format!("Authentication failed for user {user}")),
        Err(e) => Err(ssh_error(&e)),
    }
}

pub(super) async fn connect(login: &Login, target: &Target) -> Result<Session, String> {
    let config = Arc::new(client::Config {
        inactivity_timeout: None,
        ..client::Config::default()
    });
    let work = async {
        match &login.bastion {
            None => {
                let mut h = client::connect(
                    config,
                    (target.host.as_str(), target.port),
                    AcceptAnyHostKey,
                )
                .await
                .map_err(|e| ssh_error(&e))?;
                authenticate(&mut h, &login.username, &login.auth).await?;
                Ok(Session {
                    handle: h,
                    _bastion: None,
                })
            }
            Some(b) => {
                let mut bh = client::connect(
                    Arc::clone(&config),
                    (b.host.as_str(), b.port),
                    AcceptAnyHostKey,
                )
                .await
                .map_err(|e| format!("bastion {}: {}", b.host, ssh_error(&e)))?;
                authenticate(&mut bh, &login.username, &login.auth)
                    .await
                    .map_err(|e| format!("bastion {}: {e}", b.host))?;
                let tunnel = bh
                    .channel_open_direct_tcpip(
                        target.host.clone(),
                        u32::from(target.port),
                        "127.0.0.1",
                        0,
                    )
                    .await
                    .map_err(|e| format!("bastion {}: {}", b.host, ssh_error(&e)))?;
                let mut h = client::connect_stream(config, tunnel.into_stream(), AcceptAnyHostKey)
                    .await
                    .map_err(|e| ssh_error(&e))?;
                authenticate(&mut h, &login.username, &login.auth).await?;
                Ok(Session {
                    handle: h,
                    _bastion: Some(bh),
                })
            }
        }
    };
    match tokio::time::timeout(login.connect_timeout, work).await {
        Ok(r) => r,
        Err(_) => Err(format!(
            "the SSH connection did not succeed in {} seconds",
            login.connect_timeout.as_secs()
        )),
    }
}

/// Runs `cmd` in a new channel: `stdin` is written then closed; output is streamed to
/// `output` (when given) and collected.
pub(super) async fn exec(
    session: &Session,
    cmd: &str,
    stdin: Option<&[u8]>,
    deadline: Option<Instant>,
    output: Option<&OutputSink>,
    cancel: &CancellationToken,
) -> Result<Exec, String> {
    let mut ch = session
        .handle
        .channel_open_session()
        .await
        .map_err(|e| ssh_error(&e))?;
    if cmd.starts_with("sudo") {
        ch.request_pty(false, "xterm", 80, 24, 0, 0, &[])
            .await
            .map_err(|e| ssh_error(&e))?;
    }
    ch.exec(true, cmd).await.map_err(|e| ssh_error(&e))?;
    if let Some(data) = stdin {
        ch.data(data).await.map_err(|e| ssh_error(&e))?;
    }
    ch.eof().await.map_err(|e| ssh_error(&e))?;

    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    let mut code: Option<i32> = None;
    loop {
        let stopped = tokio::select! {
            m = ch.wait() => Err(m),
            _ = sleep_until(deadline) => Ok(()),
            _ = cancel.cancelled() => Ok(()),
        };
        let msg = match stopped {
            Err(m) => m,
            Ok(()) => {
                // Best effort: ask sshd to kill the command, then drop the channel.
                let _ = ch.signal(russh::Sig::KILL).await;
                let _ = ch.close().await;
                return Ok(Exec::TimedOut {
                    stdout: String::from_utf8_lossy(&stdout).into_owned(),
                    stderr: String::from_utf8_lossy(&stderr).into_owned(),
                });
            }
        };
        match msg {
            Some(ChannelMsg::Data { data }) => {
                stdout.extend_from_slice(&data);
                stream(output, OutputStream::Stdout, &data).await;
            }
            Some(ChannelMsg::ExtendedData { data, ext: 1 }) => {
                stderr.extend_from_slice(&data);
                stream(output, OutputStream::Stderr, &data).await;
            }
            Some(ChannelMsg::ExitStatus { exit_status }) => {
                code = Some(i32::try_from(exit_status).unwrap_or(-1));
            }
            // No exit status: paramiko's recv_exit_status gives -1.
            Some(ChannelMsg::ExitSignal { .. }) => code = code.or(Some(-1)),
            Some(_) => {}
            None => break,
        }
    }
    Ok(Exec::Done {
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
        code: code.unwrap_or(-1),
    })
}

async fn stream(output: Option<&OutputSink>, stream: OutputStream, data: &[u8]) {
    if let Some(out) = output {
        if !out.is_closed() {
            let text = String::from_utf8_lossy(data).into_owned();
            let _ = out.send(OutputChunk { stream, data: text }).await;
        }
    }
}

pub(super) async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Runs a helper command (mkdir, upload, cleanup) that must exit 0.
pub(super) async fn must(
    session: &Session,
    cmd: &str,
    stdin: Option<&[u8]>,
    timeout: Duration,
) -> Result<(), String> {
    let never = CancellationToken::new();
    match exec(
        session,
        cmd,
        stdin,
        Some(Instant::now() + timeout),
        None,
        &never,
    )
    .await?
    {
        Exec::Done { code: 0, .. } => Ok(()),
        Exec::Done { stderr, code, .. } => {
            Err(format!("`{cmd}` exited with {code}: {}", stderr.trim()))
        }
        Exec::TimedOut { .. } => Err(format!(
            "`{cmd}` did not finish in {} seconds",
            timeout.as_secs()
        )),
    }
}

/// Copies the script (and its `lib/`) to the host.
pub(super) async fn upload(
    session: &Session,
    up: &Upload,
    timeout: Duration,
) -> Result<(), String> {
    let read = |p: &Path| std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()));
    let dir = quote_unix(&up.remote_dir);
    must(session, &format!("mkdir -p {dir}"), None, timeout).await?;
    let script = quote_unix(&up.remote_script);
    let content = read(&up.script)?;
    must(
        session,
        &format!("cat > {script} && chmod 744 {script}"),
        Some(&content),
        timeout,
    )
    .await?;
    if let Some(libs) = &up.libs {
        let base = format!("{}/lib", up.remote_dir);
        for entry in walkdir::WalkDir::new(libs)
            .sort_by_file_name()
            .into_iter()
            .flatten()
        {
            let Ok(rel) = entry.path().strip_prefix(libs) else {
                continue;
            };
            let rel = rel.to_string_lossy();
            let remote = if rel.is_empty() {
                base.clone()
            } else {
                format!("{base}/{rel}")
            };
            let remote = quote_unix(&remote);
            if entry.file_type().is_dir() {
                must(session, &format!("mkdir -p {remote}"), None, timeout).await?;
            } else if entry.file_type().is_file() {
                use std::os::unix::fs::PermissionsExt;
                let mode = entry
                    .metadata()
                    .map(|m| m.permissions().mode() & 0o7777)
                    .unwrap_or(0o644);
                let content = read(entry.path())?;
                let cmd = format!("cat > {remote} && chmod {mode:o} {remote}");
                must(session, &cmd, Some(&content), timeout).await?;
            }
        }
    }
    Ok(())
}
