//! Child processes as StackStorm's local runners run them: in a session of their own, output
//! captured whole and streamed as it comes, killed as a whole on timeout or cancel.
//!
//! A child is started through `setsid` (util-linux) when it is installed, so it leads a new
//! session and process group; otherwise it gets a new process group. Stopping it sends SIGKILL
//! to the group, then to every process still in the session or group (read from `/proc`), which
//! also catches grandchildren that moved to another group (`timeout`, `bash -m`) or were
//! orphaned (`(sleep 100 &)`). Only a process that starts a session of its own escapes, which is
//! how a daemon detaches on purpose. The direct child is always reaped, never left a zombie.
//!
//! Like StackStorm, a run lasts until the child has exited **and** both pipes are closed: a
//! background process that keeps stdout open keeps the run going (until the timeout); one that
//! redirected its output is left alone when the child exits.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{OutputChunk, OutputSink, OutputStream, RunnerError};

/// A future run next to the child (the Python runner's control channel), and the token the
/// process watcher cancels once the child has exited.
pub(crate) type SideTask<'a> = (
    Pin<Box<dyn Future<Output = ()> + Send + 'a>>,
    CancellationToken,
);

/// How long a side task may still run after the child exited and its pipes closed.
const SIDE_GRACE: Duration = Duration::from_secs(2);
/// How long to keep reading pipes after killing the child, for output written before the kill.
const DRAIN_AFTER_KILL: Duration = Duration::from_millis(500);

/// What to run.
#[derive(Debug, Clone, Default)]
pub(crate) struct ProcessSpec {
    /// The program (looked up in `PATH` when it has no `/`).
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// Variables set on top of this process's environment, in order (later wins).
    pub env: Vec<(String, String)>,
    /// Variables removed from the inherited environment.
    pub env_remove: Vec<String>,
    /// Working directory.
    pub cwd: Option<PathBuf>,
    /// Bytes written to stdin (then closed); `None`: stdin is `/dev/null`.
    pub stdin: Option<Vec<u8>>,
    /// Kill everything after this long.
    pub timeout: Option<Duration>,
}

/// How the run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    /// The child exited by itself (or was killed by a signal it did not get from us).
    Exited,
    /// The timeout elapsed; everything was killed.
    TimedOut,
    /// The cancellation token fired; everything was killed.
    Canceled,
}

/// What came out.
#[derive(Debug, Clone)]
pub(crate) struct ProcessResult {
    /// Everything written to stdout (invalid UTF-8 replaced).
    pub stdout: String,
    /// Everything written to stderr.
    pub stderr: String,
    /// The exit code, or minus the signal number when a signal ended the child (Python's
    /// `returncode` convention, which StackStorm's status mapping relies on).
    pub exit_code: i32,
    /// How it ended.
    pub ending: Ending,
}

/// Whether util-linux's `setsid` is installed, and where.
fn setsid_binary() -> Option<&'static Path> {
    static FOUND: OnceLock<Option<&'static Path>> = OnceLock::new();
    *FOUND.get_or_init(|| {
        [Path::new("/usr/bin/setsid"), Path::new("/bin/setsid")]
            .into_iter()
            .find(|p| p.is_file())
    })
}

/// The child's exit code in Python's convention.
fn exit_code(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| -s))
        .unwrap_or(-1)
}

/// Incremental UTF-8 decoding of a stream: never splits a character across chunks.
#[derive(Default)]
struct Utf8Chunker {
    pending: Vec<u8>,
}

impl Utf8Chunker {
    /// Length of an incomplete multi-byte sequence at the end of `b`.
    fn incomplete_tail(b: &[u8]) -> usize {
        for i in 1..=b.len().min(3) {
            let byte = b[b.len() - i];
            if byte & 0xC0 == 0x80 {
                continue; // continuation byte
            }
            let needed = match byte {
                0xF0..=0xFF => 4,
                0xE0..=0xEF => 3,
                0xC0..=0xDF => 2,
                _ => 1,
            };
            return if needed > i { i } else { 0 };
        }
        0
    }

    fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let cut = self.pending.len() - Self::incomplete_tail(&self.pending);
        let text = String::from_utf8_lossy(&self.pending[..cut]).into_owned();
        self.pending.drain(..cut);
        text
    }

    fn finish(&mut self) -> String {
        let text = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        text
    }
}

/// One output pipe being read.
struct Pipe<R> {
    reader: Option<R>,
    captured: Vec<u8>,
    chunker: Utf8Chunker,
    stream: OutputStream,
}

impl<R: AsyncRead + Unpin> Pipe<R> {
    fn new(reader: Option<R>, stream: OutputStream) -> Self {
        Self {
            reader,
            captured: Vec::new(),
            chunker: Utf8Chunker::default(),
            stream,
        }
    }

    fn open(&self) -> bool {
        self.reader.is_some()
    }

    /// Reads once; `None` at end of stream (or error), else the text to stream.
    async fn read(&mut self, buf: &mut [u8]) -> Option<String> {
        let reader = self.reader.as_mut()?;
        match reader.read(buf).await {
            Ok(0) | Err(_) => {
                self.reader = None;
                None
            }
            Ok(n) => {
                self.captured.extend_from_slice(&buf[..n]);
                Some(self.chunker.push(&buf[..n]))
            }
        }
    }

    fn into_text(self) -> String {
        String::from_utf8_lossy(&self.captured).into_owned()
    }
}

/// Sends a chunk of live output, waiting for room but not past the deadline or a cancel.
async fn send(
    output: &OutputSink,
    stream: OutputStream,
    data: String,
    deadline: Option<Instant>,
    cancel: &CancellationToken,
) {
    if data.is_empty() || output.is_closed() {
        return;
    }
    let chunk = OutputChunk { stream, data };
    tokio::select! {
        _ = output.send(chunk) => {}
        _ = cancel.cancelled() => {}
        _ = sleep_until(deadline) => {}
    }
}

/// Sleeps until `deadline`, forever without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Kills the session and process group led by `leader`, and every process left in them.
pub(crate) fn kill_session(leader: u32) {
    use nix::sys::signal::{kill, killpg, Signal};
    use nix::unistd::Pid;
    let Ok(raw) = i32::try_from(leader) else {
        return;
    };
    let _ = killpg(Pid::from_raw(raw), Signal::SIGKILL);
    for _ in 0..20 {
        let members = session_members(raw);
        if members.is_empty() {
            return;
        }
        for pid in members {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Live (not zombie) processes whose session or process group is `leader` (Linux `/proc`;
/// empty elsewhere).
pub(crate) fn session_members(leader: i32) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ppid pgrp session ..."; comm may hold spaces and parentheses.
        let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let fields: Vec<&str> = after.split_whitespace().collect();
        if fields.len() < 4 || matches!(fields[0], "Z" | "X" | "x") {
            continue;
        }
        let pgrp = fields[2].parse::<i32>().unwrap_or(0);
        let session = fields[3].parse::<i32>().unwrap_or(0);
        if pgrp == leader || session == leader {
            found.push(pid);
        }
    }
    found
}

/// Starts `spec`'s program in a session of its own.
fn spawn(spec: &ProcessSpec) -> Result<Child, RunnerError> {
    let mut cmd = match setsid_binary() {
        Some(setsid) => {
            // Our child is not a group leader, so setsid(1) calls setsid(2) and execs without
            // forking: the pid we watch is the session leader.
            let mut c = Command::new(setsid);
            c.arg(&spec.program);
            c
        }
        None => {
            let mut c = Command::new(&spec.program);
            c.process_group(0);
            c
        }
    };
    cmd.args(&spec.args);
    for k in &spec.env_remove {
        cmd.env_remove(k);
    }
    cmd.envs(spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    if let Some(cwd) = &spec.cwd {
        cmd.current_dir(cwd);
    }
    cmd.stdin(if spec.stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .kill_on_drop(true);
    if let Some(cwd) = spec.cwd.as_ref().filter(|d| !d.is_dir()) {
        return Err(RunnerError::Invalid(format!(
            "the working directory {} does not exist",
            cwd.display()
        )));
    }
    cmd.spawn()
        .map_err(|e| RunnerError::io(format!("failed to start {}", spec.program.display()), e))
}

/// Runs `spec` to its end: streams output to `output`, honours the timeout and `cancel`,
/// and runs `side` concurrently (see [`SideTask`]).
pub(crate) async fn run_process(
    spec: ProcessSpec,
    output: &OutputSink,
    cancel: &CancellationToken,
    side: Option<SideTask<'_>>,
) -> Result<ProcessResult, RunnerError> {
    let mut child = spawn(&spec)?;
    let leader = child.id();
    let deadline = spec.timeout.map(|t| Instant::now() + t);

    if let (Some(input), Some(mut stdin)) = (spec.stdin.clone(), child.stdin.take()) {
        tokio::spawn(async move {
            let _ = stdin.write_all(&input).await;
            let _ = stdin.shutdown().await;
        });
    }
    let mut out = Pipe::new(child.stdout.take(), OutputStream::Stdout);
    let mut err = Pipe::new(child.stderr.take(), OutputStream::Stderr);
    let (mut side_fut, exited) = match side {
        Some((f, token)) => (Some(f), Some(token)),
        None => (None, None),
    };
    let mut out_buf = vec![0u8; 16 * 1024];
    let mut err_buf = vec![0u8; 16 * 1024];
    let mut status: Option<ExitStatus> = None;
    let mut ending = Ending::Exited;

    loop {
        if status.is_some() && !out.open() && !err.open() {
            break;
        }
        tokio::select! {
            text = out.read(&mut out_buf), if out.open() => {
                if let Some(text) = text {
                    send(output, out.stream, text, deadline, cancel).await;
                }
            }
            text = err.read(&mut err_buf), if err.open() => {
                if let Some(text) = text {
                    send(output, err.stream, text, deadline, cancel).await;
                }
            }
            s = child.wait(), if status.is_none() => {
                let s = s.map_err(|e| RunnerError::io("failed to wait for the action", e))?;
                status = Some(s);
                if let Some(t) = &exited {
                    t.cancel();
                }
            }
            _ = async { if let Some(f) = side_fut.as_mut() { f.await } }, if side_fut.is_some() => {
                side_fut = None;
            }
            _ = sleep_until(deadline) => {
                ending = Ending::TimedOut;
                break;
            }
            _ = cancel.cancelled() => {
                ending = Ending::Canceled;
                break;
            }
        }
    }

    if ending != Ending::Exited {
        if let Some(pid) = leader {
            kill_session(pid);
        }
        if status.is_none() {
            let s = child
                .wait()
                .await
                .map_err(|e| RunnerError::io("failed to reap the action", e))?;
            status = Some(s);
        }
        // Output written before the kill is still in the pipes.
        let drain_until = Instant::now() + DRAIN_AFTER_KILL;
        while out.open() || err.open() {
            tokio::select! {
                text = out.read(&mut out_buf), if out.open() => {
                    if let Some(text) = text {
                        send(output, out.stream, text, Some(drain_until), cancel).await;
                    }
                }
                text = err.read(&mut err_buf), if err.open() => {
                    if let Some(text) = text {
                        send(output, err.stream, text, Some(drain_until), cancel).await;
                    }
                }
                _ = tokio::time::sleep_until(drain_until) => break,
            }
        }
    } else if let Some(f) = side_fut.take() {
        // The child is gone; let the side task finish reading what it wrote.
        let until = Instant::now() + SIDE_GRACE;
        let until = deadline.map_or(until, |d| d.min(until));
        let _ = tokio::time::timeout_at(until, f).await;
    }

    if ending == Ending::Exited {
        let tail = out.chunker.finish();
        send(output, OutputStream::Stdout, tail, deadline, cancel).await;
        let tail = err.chunker.finish();
        send(output, OutputStream::Stderr, tail, deadline, cancel).await;
    }
    Ok(ProcessResult {
        stdout: out.into_text(),
        stderr: err.into_text(),
        exit_code: status.map_or(-9, exit_code),
        ending,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_chunks_never_split_characters() {
        let text = "héllo wörld ✓ 𝄞";
        let bytes = text.as_bytes();
        for split in 0..bytes.len() {
            let mut c = Utf8Chunker::default();
            let mut got = c.push(&bytes[..split]);
            got.push_str(&c.push(&bytes[split..]));
            got.push_str(&c.finish());
            assert_eq!(got, text, "split at {split}");
        }
        let mut c = Utf8Chunker::default();
        assert_eq!(c.push(b"a\xffb"), "a\u{fffd}b");
    }
}
