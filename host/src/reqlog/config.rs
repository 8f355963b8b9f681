//! `[request-log]`: what is recorded per request, where, and for how long.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// How much of each request the log keeps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Nothing is recorded (no thread, no file).
    #[default]
    Off,
    /// Who, what, how it went: id, time, key id, models, status, latency,
    /// tokens, cost, guardrail verdicts, error type, prompt version.
    Metadata,
    /// Metadata plus the request's messages and the answer's text (or the
    /// error's message), PII and credentials redacted.
    Full,
}

/// `[request-log]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct RequestLogConfig {
    /// `off` (default), `metadata` or `full`. Metadata costs one ~0.4 KB
    /// JSON line per request, gathered on the request path (~6 µs,
    /// `--bench reqlog`) and written by a dedicated thread (~1 µs). `full`
    /// adds the messages and the answer (~15 µs on the request path for
    /// 1 KB of each), redacted on that thread (a linear scan, ~30 µs per
    /// KB), and as many bytes on disk as the traffic's text.
    pub mode: Mode,
    /// Directory of the JSON-lines files (`requests.jsonl`, rotated to
    /// `requests-NNNNNNNN.jsonl`). Default `request-log` inside the
    /// `[state] dir`; relative to the config file's directory.
    pub dir: Option<PathBuf>,
    /// Size at which the current file is rotated, in bytes. Default
    /// 67108864 (64 MiB). Smaller files make `sluice logs` faster and
    /// retention finer-grained; each rotation is one rename.
    pub max_file_bytes: u64,
    /// Rotated files kept (the oldest beyond this are deleted at each
    /// rotation). Default 10, so at most ~11 × `max-file-bytes` on disk.
    pub keep_files: usize,
    /// Rotated files older than this many days are deleted at rotation
    /// and at start-up. Default 7; 0 keeps files regardless of age.
    pub keep_days: u64,
    /// Records waiting for the writer thread. Default 4096. When the disk
    /// falls behind and the queue is full, records are dropped (counted in
    /// `sluice_request_log_dropped_total` and logged) rather than making
    /// requests wait; each queued record holds its text in memory.
    pub queue: usize,
    /// In `full` mode, each message and answer is cut to this many bytes
    /// (on a character boundary) before it is redacted. Default 65536.
    /// Bounds the writer's work and a record's size.
    pub max_text_bytes: usize,
}

impl Default for RequestLogConfig {
    fn default() -> Self {
        Self {
            mode: Mode::Off,
            dir: None,
            max_file_bytes: 64 << 20,
            keep_files: 10,
            keep_days: 7,
            queue: 4096,
            max_text_bytes: 65_536,
        }
    }
}

impl RequestLogConfig {
    /// A relative `dir` is relative to `base` (the config file's
    /// directory); unset, it is `request-log` in `state_dir`.
    pub fn resolve_dir(&mut self, base: &Path, state_dir: &Path) {
        self.dir = Some(match self.dir.take() {
            Some(d) if d.is_relative() => base.join(d),
            Some(d) => d,
            None => state_dir.join("request-log"),
        });
    }

    /// The directory: `dir` as resolved, else `request-log` in `state_dir`.
    pub fn dir_or(&self, state_dir: &Path) -> PathBuf {
        self.dir
            .clone()
            .unwrap_or_else(|| state_dir.join("request-log"))
    }

    /// Each problem as (key, message), for config validation.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if self.max_file_bytes < 1024 {
            out.push((
                "max-file-bytes",
                format!(
                    "{} is below 1024 (one record could not fit)",
                    self.max_file_bytes
                ),
            ));
        }
        if self.queue == 0 {
            out.push(("queue", "must be at least 1".to_string()));
        }
        if self.max_text_bytes == 0 {
            out.push(("max-text-bytes", "must be at least 1".to_string()));
        }
        out
    }
}
