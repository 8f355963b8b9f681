//! Reload history: the latest [`KEEP`] rescans of the plugin directory,
//! each with what triggered it and what it changed, for the admin API
//! and the dashboard. A `watch` counter lets a caller wait for the next
//! reload without polling.

use std::collections::{BTreeSet, VecDeque};

use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::watch;

use super::registry::ReloadReport;

/// Reload events kept (older ones are dropped).
pub const KEEP: usize = 32;

/// What started a rescan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReloadTrigger {
    /// The load at start.
    Initial,
    /// The directory watcher saw a change (or retried a failure).
    Watcher,
    /// `POST /admin/reload` or a direct call.
    Api,
}

/// One rescan, as the operator reads it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct ReloadEvent {
    /// 1 for the first reload of this process, then counting up.
    pub seq: u64,
    /// Unix ms when it finished.
    pub at_ms: u64,
    pub trigger: ReloadTrigger,
    /// New plugin names.
    pub added: Vec<String>,
    /// Plugins whose wasm or manifest changed and whose new version serves.
    pub changed: Vec<String>,
    pub removed: Vec<String>,
    /// Failed to load (`name`, `error`); a previous version, if any, serves.
    pub failed: Vec<Failure>,
    pub unchanged: usize,
    pub took_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Failure {
    pub plugin: String,
    pub error: String,
}

impl ReloadEvent {
    /// The event for `report`, given the names that served before it.
    pub(crate) fn new(
        trigger: ReloadTrigger,
        before: &BTreeSet<String>,
        report: &ReloadReport,
    ) -> Self {
        let (changed, added) = report
            .loaded
            .iter()
            .cloned()
            .partition(|n| before.contains(n));
        ReloadEvent {
            seq: 0,
            at_ms: crate::state::now_ms(),
            trigger,
            added,
            changed,
            removed: report.removed.clone(),
            failed: report
                .failed
                .iter()
                .map(|(plugin, error)| Failure {
                    plugin: plugin.clone(),
                    error: error.clone(),
                })
                .collect(),
            unchanged: report.unchanged.len(),
            took_ms: report.took_ms,
        }
    }
}

/// The bounded ring, newest last.
#[derive(Debug)]
pub(crate) struct History {
    ring: Mutex<VecDeque<ReloadEvent>>,
    seq: watch::Sender<u64>,
}

impl Default for History {
    fn default() -> Self {
        Self {
            ring: Mutex::new(VecDeque::with_capacity(KEEP)),
            seq: watch::Sender::new(0),
        }
    }
}

impl History {
    /// Number `ev`, keep it, wake waiters; returns it numbered.
    pub(crate) fn push(&self, mut ev: ReloadEvent) -> ReloadEvent {
        let mut ring = self.ring.lock();
        ev.seq = ring.back().map_or(1, |l| l.seq + 1);
        if ring.len() == KEEP {
            ring.pop_front();
        }
        ring.push_back(ev.clone());
        drop(ring);
        self.seq.send_replace(ev.seq);
        ev
    }

    /// Newest first.
    pub(crate) fn list(&self) -> Vec<ReloadEvent> {
        self.ring.lock().iter().rev().cloned().collect()
    }

    /// The latest reload's `seq` (0 before the first), changing with each.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.seq.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_added_from_changed_and_the_ring_is_bounded() {
        let h = History::default();
        let before: BTreeSet<String> = ["a".to_string()].into();
        let report = ReloadReport {
            loaded: vec!["a".into(), "b".into()],
            failed: vec![("c".into(), "bad".into())],
            unchanged: vec!["d".into()],
            ..ReloadReport::default()
        };
        let ev = h.push(ReloadEvent::new(ReloadTrigger::Api, &before, &report));
        assert_eq!(
            (ev.seq, ev.added.as_slice(), ev.changed.as_slice()),
            (1, &["b".to_string()][..], &["a".to_string()][..])
        );
        assert_eq!(ev.failed[0].plugin, "c");
        assert_eq!(ev.unchanged, 1);
        let rx = h.subscribe();
        for _ in 0..KEEP + 3 {
            h.push(ReloadEvent::new(
                ReloadTrigger::Watcher,
                &before,
                &ReloadReport::default(),
            ));
        }
        let list = h.list();
        assert_eq!(list.len(), KEEP);
        assert_eq!(list[0].seq, KEEP as u64 + 4);
        assert_eq!(*rx.borrow(), KEEP as u64 + 4);
    }
}
