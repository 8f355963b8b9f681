//! The request log (`[request-log]`): one JSON line per request and its
//! answer, `metadata` or `full`, with every text a client or an upstream
//! wrote passed through `sluice-redact` (the code the `pii-redact` and
//! `secrets` plugins run) before it reaches the disk.
//!
//! The request path never touches the disk: a finished record goes into a
//! bounded queue ([`RequestLog::send`] never waits), and one dedicated
//! thread redacts, serialises, appends, rotates by size and prunes by count
//! and age ([`files`]). A full queue drops the record, counts it
//! (`sluice_request_log_dropped_total`) and says so in the gateway's log.
//! Streams get their record at their last event ([`Pending`]).

pub mod config;
pub mod files;
pub mod record;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, oneshot};

pub use config::{Mode, RequestLogConfig};
pub use record::{Outcome, Pending, Record, Start};

/// `value` as text with PII and credentials masked: for upstream and
/// client text (error messages that may echo a prompt) in the gateway's
/// own log lines.
pub fn redacted(value: impl std::fmt::Display) -> String {
    let text = value.to_string();
    match sluice_redact::redact(&text) {
        std::borrow::Cow::Borrowed(_) => text,
        std::borrow::Cow::Owned(r) => r,
    }
}

enum Msg {
    Record(Box<Record>),
    /// Everything queued before is on disk (handed to the OS) when answered.
    Flush(oneshot::Sender<()>),
}

/// The gateway's handle on the log; cheap to clone. Off: does nothing.
#[derive(Clone, Default)]
pub struct RequestLog(Option<Arc<Inner>>);

struct Inner {
    mode: Mode,
    dir: PathBuf,
    tx: mpsc::Sender<Msg>,
    counts: Arc<Counts>,
}

/// Records written, dropped at a full queue, failed to write.
#[derive(Debug, Default)]
pub struct Counts {
    pub written: AtomicU64,
    pub dropped: AtomicU64,
    pub failed: AtomicU64,
}

impl RequestLog {
    /// A log that records nothing.
    pub fn off() -> Self {
        Self(None)
    }

    /// Open the directory (`dir`, else `request-log` in `state_dir`) and
    /// start the writer thread; off when `mode = "off"`. Fails when the
    /// directory cannot be created or its current file opened.
    pub fn start(cfg: &RequestLogConfig, state_dir: &Path) -> std::io::Result<Self> {
        if cfg.mode == Mode::Off {
            return Ok(Self::off());
        }
        let dir = cfg.dir_or(state_dir);
        let retention = files::Retention {
            max_file_bytes: cfg.max_file_bytes,
            keep_files: cfg.keep_files,
            max_age: (cfg.keep_days > 0).then(|| Duration::from_secs(cfg.keep_days * 86_400)),
        };
        let files = files::Files::open(&dir, retention)?;
        let (tx, rx) = mpsc::channel(cfg.queue.max(1));
        let counts = Arc::new(Counts::default());
        let max_text = cfg.max_text_bytes;
        let c = counts.clone();
        std::thread::Builder::new()
            .name("sluice-request-log".into())
            .spawn(move || write_loop(rx, files, max_text, &c))?;
        tracing::info!(dir = %dir.display(), mode = ?cfg.mode, "request log on");
        Ok(Self(Some(Arc::new(Inner {
            mode: cfg.mode,
            dir,
            tx,
            counts,
        }))))
    }

    /// `None` when off.
    pub fn mode(&self) -> Option<Mode> {
        self.0.as_ref().map(|i| i.mode)
    }

    /// Where the files are (when on).
    pub fn dir(&self) -> Option<&Path> {
        self.0.as_ref().map(|i| i.dir.as_path())
    }

    /// Written, dropped and failed records so far (zero when off).
    pub fn counts(&self) -> (u64, u64, u64) {
        self.0.as_ref().map_or((0, 0, 0), |i| {
            let c = &i.counts;
            (
                c.written.load(Ordering::Relaxed),
                c.dropped.load(Ordering::Relaxed),
                c.failed.load(Ordering::Relaxed),
            )
        })
    }

    /// Queue a record; never waits. A full queue drops it (counted, and
    /// logged at 1, 2, 4, 8, … drops so a slow disk cannot flood the log).
    pub fn send(&self, record: Record) {
        let Some(inner) = &self.0 else { return };
        if inner.tx.try_send(Msg::Record(Box::new(record))).is_err() {
            let n = inner.counts.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::warn!(
                    dropped = n,
                    "request log queue full: record dropped (the disk is behind; see [request-log] queue)"
                );
            }
        }
    }

    /// Wait until every record queued so far is written (shutdown, tests).
    pub async fn flush(&self) {
        let Some(inner) = &self.0 else { return };
        let (tx, rx) = oneshot::channel();
        if inner.tx.send(Msg::Flush(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

/// The writer thread: until every sender is gone, then flush and exit.
fn write_loop(mut rx: mpsc::Receiver<Msg>, mut files: files::Files, max_text: usize, c: &Counts) {
    let mut line = Vec::with_capacity(4096);
    while let Some(msg) = rx.blocking_recv() {
        match msg {
            Msg::Record(mut r) => {
                r.redact(max_text);
                line.clear();
                let written = serde_json::to_writer(&mut line, &r)
                    .map_err(std::io::Error::from)
                    .and_then(|()| files.append(&line, SystemTime::now()));
                match written {
                    Ok(()) => c.written.fetch_add(1, Ordering::Relaxed),
                    Err(e) => {
                        let n = c.failed.fetch_add(1, Ordering::Relaxed) + 1;
                        if n.is_power_of_two() {
                            tracing::error!(error = %e, failed = n, "writing the request log failed");
                        }
                        n
                    }
                };
            }
            Msg::Flush(done) => {
                flush(&mut files, c);
                let _ = done.send(());
            }
        }
        // A syscall per burst, not per record: flush when caught up.
        if rx.is_empty() {
            flush(&mut files, c);
        }
    }
    flush(&mut files, c);
}

fn flush(files: &mut files::Files, c: &Counts) {
    if let Err(e) = files.flush() {
        let n = c.failed.fetch_add(1, Ordering::Relaxed) + 1;
        if n.is_power_of_two() {
            tracing::error!(error = %e, "flushing the request log failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_queue_drops_and_counts_instead_of_waiting() {
        // No writer: the queue (of 2) fills and stays full.
        let (tx, _rx) = mpsc::channel(2);
        let log = RequestLog(Some(Arc::new(Inner {
            mode: Mode::Metadata,
            dir: PathBuf::new(),
            tx,
            counts: Arc::default(),
        })));
        for _ in 0..5 {
            log.send(Record::default());
        }
        assert_eq!(log.counts(), (0, 3, 0));
        // Off: nothing is queued or counted.
        RequestLog::off().send(Record::default());
        assert_eq!(RequestLog::off().counts(), (0, 0, 0));
    }

    #[tokio::test]
    async fn records_reach_the_file_redacted_and_flush_waits_for_them() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = RequestLogConfig {
            mode: Mode::Full,
            dir: Some(dir.path().to_path_buf()),
            ..RequestLogConfig::default()
        };
        let log = RequestLog::start(&cfg, Path::new("unused")).unwrap();
        for id in ["a", "b"] {
            log.send(Record {
                id: id.into(),
                response: Some("card 4111-1111-1111-1111".into()),
                ..Record::default()
            });
        }
        log.flush().await;
        let text = std::fs::read_to_string(dir.path().join(files::CURRENT)).unwrap();
        let ids: Vec<String> = text
            .lines()
            .map(|l| serde_json::from_str::<Record>(l).unwrap().id)
            .collect();
        assert_eq!(ids, ["a", "b"]);
        assert!(!text.contains("4111") && text.contains("card [CREDIT_CARD]"));
        assert_eq!(log.counts(), (2, 0, 0));
    }
}
