//! `builtin:file_watch`: tails the file a `linux.file_watch.line` trigger names
//! (`parameters.file_path`) and dispatches one instance per new line, with StackStorm's linux
//! pack payload `{file_path, file_name, line}`.
//!
//! Only lines written after the watch starts are sent. A line is sent once it is complete
//! (ends with a newline). A truncated file is read again from its start; a rotated file (the
//! path now names another file) is read to its end, then the new file from its start. A file
//! that does not exist yet is waited for. The file is polled ([`FileWatch::interval`]), which
//! works on every filesystem, network mounts included.

use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::{str_param, BuiltinSensor, SensorError};
use crate::model::Trigger;
use crate::services::{dispatch, Ctx};

/// The name after `builtin:`.
pub const NAME: &str = "file_watch";

/// Longest line kept; a longer one is cut there (a file without newlines must not grow memory).
pub const MAX_LINE_BYTES: usize = 1024 * 1024;

/// The file tail sensor.
#[derive(Debug, Clone)]
pub struct FileWatch {
    /// How often the file is checked for new data.
    pub interval: Duration,
}

impl Default for FileWatch {
    fn default() -> Self {
        Self {
            interval: Duration::from_millis(200),
        }
    }
}

/// The open file being tailed.
struct Tail {
    file: std::fs::File,
    /// Device and inode: a change means the path was rotated.
    id: (u64, u64),
    /// Bytes consumed so far.
    pos: u64,
    /// An incomplete last line.
    partial: Vec<u8>,
}

impl Tail {
    fn open(path: &Path, from_end: bool) -> std::io::Result<Option<Tail>> {
        let file = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let meta = file.metadata()?;
        Ok(Some(Tail {
            file,
            id: (meta.dev(), meta.ino()),
            pos: if from_end { meta.len() } else { 0 },
            partial: Vec::new(),
        }))
    }

    /// Reads what was appended since the last call; returns the complete lines.
    fn read_lines(&mut self) -> std::io::Result<Vec<String>> {
        let len = self.file.metadata()?.len();
        if len < self.pos {
            // Truncated: start over.
            self.pos = 0;
            self.partial.clear();
        }
        if len == self.pos {
            return Ok(Vec::new());
        }
        self.file.seek(SeekFrom::Start(self.pos))?;
        let mut buf = Vec::new();
        let n = (&mut self.file)
            .take(len - self.pos)
            .read_to_end(&mut buf)?;
        self.pos += n as u64;
        let mut lines = Vec::new();
        for chunk in buf.split_inclusive(|b| *b == b'\n') {
            if chunk.ends_with(b"\n") {
                self.partial.extend_from_slice(&chunk[..chunk.len() - 1]);
                let mut line = std::mem::take(&mut self.partial);
                if line.ends_with(b"\r") {
                    line.pop();
                }
                lines.push(String::from_utf8_lossy(&line).into_owned());
            } else {
                self.partial.extend_from_slice(chunk);
                self.partial.truncate(MAX_LINE_BYTES);
            }
        }
        Ok(lines)
    }
}

fn file_id(path: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

#[async_trait]
impl BuiltinSensor for FileWatch {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn watch(
        &self,
        ctx: &Ctx,
        trigger: &Trigger,
        stop: CancellationToken,
    ) -> Result<(), SensorError> {
        let file_path = str_param(trigger, "file_path")?.to_string();
        let path = Path::new(&file_path);
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let io = |source| SensorError::Io {
            path: file_path.clone(),
            source,
        };
        // Lines already in the file when the watch starts are not sent.
        let mut tail = Tail::open(path, true).map_err(io)?;
        tracing::info!(file = %file_path, trigger = %trigger.trigger_ref, "watching file");
        loop {
            let mut lines = Vec::new();
            if let Some(t) = &mut tail {
                lines = t.read_lines().map_err(io)?;
                if file_id(path).is_some_and(|id| id != t.id) {
                    // Rotated: the old file was read to its end above; follow the new one.
                    tail = Tail::open(path, false).map_err(io)?;
                    if let Some(t) = &mut tail {
                        lines.extend(t.read_lines().map_err(io)?);
                    }
                }
            } else if let Some(mut t) = Tail::open(path, false).map_err(io)? {
                // Created after the watch started: everything in it is new.
                lines = t.read_lines().map_err(io)?;
                tail = Some(t);
            }
            for line in lines {
                let payload = json!({"file_path": file_path, "file_name": file_name, "line": line});
                dispatch::dispatch(ctx, &trigger.trigger_ref, payload, None).await?;
            }
            tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                _ = tokio::time::sleep(self.interval) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn lines_are_complete_and_truncation_starts_over() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("log");
        std::fs::write(&p, "old\n").expect("write");
        let mut t = Tail::open(&p, true).expect("open").expect("exists");
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&p)
            .expect("open");
        f.write_all(b"one\ntw").expect("write");
        assert_eq!(t.read_lines().expect("read"), vec!["one"]);
        f.write_all(b"o\r\n").expect("write");
        assert_eq!(t.read_lines().expect("read"), vec!["two"]);
        std::fs::write(&p, "x\n").expect("truncate");
        assert_eq!(t.read_lines().expect("read"), vec!["x"]);
    }
}
