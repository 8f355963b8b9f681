//! Hot reload of a watched directory (plugins, prompts): one thread owns
//! reloading. It watches the directory (notify), waits until events have
//! been quiet for the debounce time, then calls the owner's reload, which
//! validates off the request path and swaps atomically. A reload in which
//! something failed is retried once a little later, in case the failure
//! was a file still being written.
//!
//! The thread holds only a weak reference: dropping the owner (and the
//! returned [`DirWatch`]) ends it.

use std::path::Path;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use notify::{EventKind, RecursiveMode, Watcher as _};

/// After a reload in which something failed, try once more this much later.
const RETRY_AFTER_FAILURE: Duration = Duration::from_millis(750);

/// What to watch and how.
pub(crate) struct Spec<'a> {
    pub dir: &'a Path,
    /// Names the thread (`sluice-NAME-watch`) and watch errors in the log.
    pub name: &'static str,
    pub debounce: Duration,
    /// Whether an event on this path concerns the owner (others are ignored).
    pub relevant: fn(&Path) -> bool,
}

/// Keeps the OS watch alive; dropping it ends the reload thread.
pub(crate) struct DirWatch {
    _watcher: notify::RecommendedWatcher,
}

/// Start watching `spec.dir`; `reload` runs on the watch thread after each
/// quiet period and returns whether anything failed.
pub(crate) fn start<T: Send + Sync + 'static>(
    owner: &Arc<T>,
    spec: Spec<'_>,
    reload: fn(&T) -> bool,
) -> notify::Result<DirWatch> {
    let (tx, rx) = mpsc::channel::<()>();
    let (name, relevant) = (spec.name, spec.relevant);
    let mut watcher =
        notify::recommended_watcher(move |res: notify::Result<notify::Event>| match res {
            Ok(ev)
                if !matches!(ev.kind, EventKind::Access(_))
                    && ev.paths.iter().any(|p| relevant(p)) =>
            {
                let _ = tx.send(());
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("{name} directory watch error: {e}"),
        })?;
    watcher.watch(spec.dir, RecursiveMode::NonRecursive)?;
    let weak = Arc::downgrade(owner);
    let debounce = spec.debounce;
    std::thread::Builder::new()
        .name(format!("sluice-{name}-watch"))
        .spawn(move || reload_loop(&weak, &rx, debounce, reload))
        .map_err(|e| notify::Error::generic(&e.to_string()))?;
    Ok(DirWatch { _watcher: watcher })
}

fn reload_loop<T>(
    owner: &Weak<T>,
    rx: &mpsc::Receiver<()>,
    debounce: Duration,
    reload: fn(&T) -> bool,
) {
    let mut retry_at: Option<Instant> = None;
    loop {
        let got = match retry_at.map(|t| t.saturating_duration_since(Instant::now())) {
            Some(w) => rx.recv_timeout(w),
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match got {
            // Debounce: wait for `debounce` of quiet.
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
        let Some(owner) = owner.upgrade() else { return };
        let failed = reload(&owner);
        retry_at = (failed && retry_at.is_none()).then(|| Instant::now() + RETRY_AFTER_FAILURE);
    }
}
