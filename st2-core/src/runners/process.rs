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
//!
//! Each child started is reported as a [`ChildProcess`] (pid = process group id, start time,
//! boot id) to [`ProcessSpec::report`], so that a later run of this program can kill the group
//! if this one died without doing it ([`ChildProcess::kill_if_alive`], Linux only).

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use serde::{Deserialize, Serialize};
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
    /// Where to report the child once it is started (see [`ChildProcess`]); `None`: nowhere.
    pub report: Option<ProcessSink>,
}

/// A child process a local runner started, in a session and process group of its own, named
/// precisely enough that another process can later tell whether it still runs: a pid alone
/// may have been reused, a pid with its start time (and the boot it counts from) may not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChildProcess {
    /// The child's pid.
    pub pid: u32,
    /// Its process group id; the child leads its group and session, so this equals `pid`.
    pub pgid: u32,
    /// When it started, in clock ticks after boot (field 22 of `/proc/<pid>/stat`).
    pub start_time: u64,
    /// The kernel's boot id (`/proc/sys/kernel/random/boot_id`), which start times count from;
    /// `None` when unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<String>,
}

/// Where a runner reports the processes it starts (one message per child, so unbounded is
/// bounded by the number of children).
pub type ProcessSink = tokio::sync::mpsc::UnboundedSender<ChildProcess>;

/// What this module reads of `/proc/<pid>/stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ProcStat {
    /// Zombie or dead: nothing left to kill.
    gone: bool,
    /// Process group id (field 5).
    pgrp: i32,
    /// Session id (field 6).
    session: i32,
    /// Start time in clock ticks after boot (field 22).
    start_time: u64,
}

/// Parses the text of `/proc/<pid>/stat`: "pid (comm) state ppid pgrp session ..."; comm may
/// hold spaces and parentheses, so fields are counted from the last `)`.
fn parse_stat(stat: &str) -> Option<ProcStat> {
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // `fields[0]` is field 3 (state), so field n is `fields[n - 3]`.
    Some(ProcStat {
        gone: matches!(*fields.first()?, "Z" | "X" | "x"),
        pgrp: fields.get(2)?.parse().ok()?,
        session: fields.get(3)?.parse().ok()?,
        start_time: fields.get(19)?.parse().ok()?,
    })
}

/// `/proc/<pid>/stat` of a process, if it exists (Linux; `None` elsewhere).
fn proc_stat(pid: i32) -> Option<ProcStat> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// The kernel's boot id, if known.
fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

impl ChildProcess {
    /// The just-started child `pid`, which leads its own process group; `None` when its start
    /// time cannot be read (no `/proc`).
    fn started(pid: u32) -> Option<Self> {
        let stat = proc_stat(i32::try_from(pid).ok()?)?;
        Some(Self {
            pid,
            // Not read from /proc: setsid(1) may not have called setsid(2) yet.
            pgid: pid,
            start_time: stat.start_time,
            boot_id: boot_id(),
        })
    }

    /// Kills (SIGKILL) what is left of this child's process group and session, if it is still
    /// the same child: its pid runs with the recorded start time in the recorded boot. When the
    /// leader is gone, its group and session members started no earlier than it are killed
    /// (Linux does not reuse a pid while it names a live group or session). Never touches the
    /// caller's own group or session. Returns whether anything was killed; always false
    /// outside Linux.
    pub fn kill_if_alive(&self) -> bool {
        if !cfg!(target_os = "linux") {
            return false;
        }
        if self.boot_id.is_some() && self.boot_id != boot_id() {
            return false; // another boot: everything of that one is gone
        }
        let Ok(leader) = i32::try_from(self.pgid) else {
            return false;
        };
        let me = std::process::id();
        let own = i32::try_from(me).ok().and_then(proc_stat);
        if leader <= 1
            || self.pgid == me
            || own.is_some_and(|o| o.pgrp == leader || o.session == leader)
        {
            return false;
        }
        match proc_stat(leader) {
            Some(s) if s.start_time == self.start_time => {
                if s.gone && members(leader, self.start_time).is_empty() {
                    return false;
                }
                kill_session(self.pgid);
                true
            }
            Some(_) => false, // pid reused: the group was empty before it could be
            None => {
                let mut killed = false;
                for _ in 0..20 {
                    let left = members(leader, self.start_time);
                    if left.is_empty() {
                        break;
                    }
                    for pid in left {
                        killed = true;
                        let _ = nix::sys::signal::kill(
                            nix::unistd::Pid::from_raw(pid),
                            nix::sys::signal::Signal::SIGKILL,
                        );
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                killed
            }
        }
    }
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
    members(leader, 0)
}

/// [`session_members`] started at or after `min_start_time` (clock ticks after boot).
fn members(leader: i32, min_start_time: u64) -> Vec<i32> {
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
        let Some(stat) = proc_stat(pid) else {
            continue;
        };
        if !stat.gone
            && (stat.pgrp == leader || stat.session == leader)
            && stat.start_time >= min_start_time
        {
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
    if let (Some(report), Some(pid)) = (&spec.report, leader) {
        match ChildProcess::started(pid) {
            Some(p) => {
                let _ = report.send(p);
            }
            None => tracing::debug!(pid, "cannot read the start time of a child; not reported"),
        }
    }
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

    #[test]
    fn stat_fields() {
        let line = "4242 (sh (x) y) S 1 4242 4240 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 \
                    987654 2400000 200 18446744073709551615";
        assert_eq!(
            parse_stat(line),
            Some(ProcStat {
                gone: false,
                pgrp: 4242,
                session: 4240,
                start_time: 987654,
            })
        );
        let zombie = line.replace(") S ", ") Z ");
        assert!(parse_stat(&zombie).is_some_and(|s| s.gone));
        assert_eq!(parse_stat("4242 (sh) S 1 2"), None);
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn reported_child_is_killed_only_while_it_is_the_same_process() {
        let (report, mut reported) = tokio::sync::mpsc::unbounded_channel();
        let spec = ProcessSpec {
            program: "/bin/sh".into(),
            args: vec!["-c".into(), "sleep 30 & sleep 30".into()],
            timeout: Some(Duration::from_secs(20)),
            report: Some(report),
            ..ProcessSpec::default()
        };
        let cancel = CancellationToken::new();
        let run = {
            let cancel = cancel.clone();
            tokio::spawn(async move {
                run_process(spec, &super::super::discard_output(), &cancel, None).await
            })
        };
        let child = reported.recv().await.expect("reported");
        assert_eq!(child.pid, child.pgid);
        let leader = i32::try_from(child.pid).expect("pid");
        let stale = ChildProcess {
            start_time: child.start_time + 1,
            ..child.clone()
        };
        assert!(!stale.kill_if_alive(), "another start time: not ours");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while session_members(leader).len() < 2 {
            assert!(std::time::Instant::now() < deadline, "both sleeps start");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(child.kill_if_alive());
        assert!(
            session_members(leader).is_empty(),
            "the whole group is gone"
        );
        let p = run.await.expect("join").expect("run");
        assert_eq!(p.ending, Ending::Exited);
        assert_eq!(p.exit_code, -9);
        assert!(!child.kill_if_alive(), "nothing left to kill");
        cancel.cancel();
    }
}
