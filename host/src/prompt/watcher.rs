//! Hot reload of prompt files: one thread owns reloading. It watches the
//! prompt directory (notify), waits until events have been quiet for
//! `debounce-ms`, then calls [`Prompts::reload`], which parses and validates
//! every changed file and swaps the set atomically; a broken file keeps its
//! previous version serving.
//!
//! Safe edits: write `.ID.toml.tmp` (hidden files are ignored) and rename
//! it to `ID.toml`. Editors that write in place are coped with: a
//! half-written file fails to parse, the old version keeps serving, and the
//! write's last event (or the retry below) reloads the whole file.

use std::path::Path;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use notify::{EventKind, RecursiveMode, Watcher as _};

use super::file::prompt_id;
use super::registry::Prompts;

/// After a reload in which some file failed, try once more this much
/// later, in case the failure was a file still being written.
const RETRY_AFTER_FAILURE: Duration = Duration::from_millis(750);

/// Keeps the OS watch alive; dropping it ends the reload thread.
pub(crate) struct Watcher {
    _watcher: notify::RecommendedWatcher,
}

impl Watcher {
    pub fn start(p: &Arc<Prompts>) -> notify::Result<Watcher> {
        let (tx, rx) = mpsc::channel::<()>();
        let mut watcher =
            notify::recommended_watcher(move |res: notify::Result<notify::Event>| match res {
                Ok(ev) if relevant(&ev) => {
                    let _ = tx.send(());
                }
                Ok(_) => {}
                Err(e) => tracing::warn!("prompt directory watch error: {e}"),
            })?;
        watcher.watch(p.dir(), RecursiveMode::NonRecursive)?;
        let weak = Arc::downgrade(p);
        let debounce = p.config().debounce();
        std::thread::Builder::new()
            .name("sluice-prompt-watch".into())
            .spawn(move || reload_loop(&weak, &rx, debounce))
            .map_err(|e| notify::Error::generic(&e.to_string()))?;
        Ok(Watcher { _watcher: watcher })
    }
}

fn relevant(ev: &notify::Event) -> bool {
    !matches!(ev.kind, EventKind::Access(_))
        && ev.paths.iter().any(|p| prompt_id(Path::new(p)).is_some())
}

fn reload_loop(p: &Weak<Prompts>, rx: &mpsc::Receiver<()>, debounce: Duration) {
    let mut retry_at: Option<Instant> = None;
    loop {
        let got = match retry_at.map(|t| t.saturating_duration_since(Instant::now())) {
            Some(w) => rx.recv_timeout(w),
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match got {
            Ok(()) => loop {
                match rx.recv_timeout(debounce) {
                    Ok(()) => continue,
                    Err(RecvTimeoutError::Timeout) => break,
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            },
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        let Some(p) = p.upgrade() else { return };
        let report = p.reload();
        tracing::info!(
            loaded = ?report.loaded,
            failed = report.failed.len(),
            removed = ?report.removed,
            took_ms = report.took_ms,
            "prompts reloaded"
        );
        retry_at = (!report.failed.is_empty() && retry_at.is_none())
            .then(|| Instant::now() + RETRY_AFTER_FAILURE);
    }
}
