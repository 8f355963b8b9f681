//! Hot reload: one thread owns reloading. It watches the plugin directory
//! (notify), waits until events have been quiet for `debounce-ms`, then calls
//! [`PluginRuntime::reload`], which compiles and validates off the request
//! path and swaps atomically.
//!
//! Convention for replacing a plugin: write the new file under a hidden or
//! temporary name in the same directory (`.NAME.wasm.tmp`) and `rename` it to
//! `NAME.wasm`; the rename is atomic, so the loader never sees half a file.
//! Editors and `cp` that write in place are coped with: a half-written file
//! fails to compile, the old version keeps serving, and the write's last
//! event (or the retry below) triggers a reload that picks up the full file.
//! `NAME.wasm` is what makes a plugin exist: deleting it removes the plugin
//! from every chain (a leftover `NAME.toml` is ignored). Install a new
//! plugin's `NAME.toml` before its `NAME.wasm`.

use std::path::Path;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use notify::{EventKind, RecursiveMode, Watcher as _};

use super::loader::plugin_name;
use super::registry::PluginRuntime;

/// After a reload in which some plugin failed, try once more this much
/// later, in case the failure was a file still being written.
const RETRY_AFTER_FAILURE: Duration = Duration::from_millis(750);

/// Keeps the OS watch alive; dropping it ends the reload thread.
pub(crate) struct Watcher {
    _watcher: notify::RecommendedWatcher,
}

impl Watcher {
    pub fn start(rt: &Arc<PluginRuntime>) -> notify::Result<Watcher> {
        let (tx, rx) = mpsc::channel::<()>();
        let mut watcher =
            notify::recommended_watcher(move |res: notify::Result<notify::Event>| match res {
                Ok(ev) if relevant(&ev) => {
                    let _ = tx.send(());
                }
                Ok(_) => {}
                Err(e) => tracing::warn!("plugin directory watch error: {e}"),
            })?;
        watcher.watch(&rt.config().dir, RecursiveMode::NonRecursive)?;
        let weak = Arc::downgrade(rt);
        let debounce = Duration::from_millis(rt.config().debounce_ms);
        std::thread::Builder::new()
            .name("sluice-plugin-watch".into())
            .spawn(move || reload_loop(&weak, &rx, debounce))
            .map_err(|e| notify::Error::generic(&e.to_string()))?;
        Ok(Watcher { _watcher: watcher })
    }
}

fn relevant(ev: &notify::Event) -> bool {
    !matches!(ev.kind, EventKind::Access(_))
        && ev
            .paths
            .iter()
            .any(|p: &std::path::PathBuf| plugin_name(Path::new(p)).is_some())
}

fn reload_loop(rt: &Weak<PluginRuntime>, rx: &mpsc::Receiver<()>, debounce: Duration) {
    let mut retry_at: Option<Instant> = None;
    loop {
        let wait = retry_at.map(|t| t.saturating_duration_since(Instant::now()));
        let got = match wait {
            Some(w) => rx.recv_timeout(w),
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match got {
            Ok(()) => {
                // Debounce: wait for `debounce` of quiet.
                loop {
                    match rx.recv_timeout(debounce) {
                        Ok(()) => continue,
                        Err(RecvTimeoutError::Timeout) => break,
                        Err(RecvTimeoutError::Disconnected) => return,
                    }
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        let Some(rt) = rt.upgrade() else { return };
        let report = rt.reload_by(super::history::ReloadTrigger::Watcher).0;
        tracing::info!(
            loaded = ?report.loaded,
            failed = report.failed.len(),
            removed = ?report.removed,
            took_ms = report.took_ms,
            "plugins reloaded"
        );
        retry_at = (!report.failed.is_empty() && retry_at.is_none())
            .then(|| Instant::now() + RETRY_AFTER_FAILURE);
    }
}
