//! Call counters of one plugin version: how often it was called, how long
//! it ran, and how each failure ended. Lock-free; read as a [`CallStats`]
//! snapshot for `sluice plugin list`, the admin API and metrics.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;

use super::error::PluginFailure;
use crate::metrics::histogram::{FINE, Histogram, Snapshot};

/// What a guardrail's call came to, for the verdict counters: its own
/// verdict, or (on a failure) its failure mode's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerdictKind {
    Pass,
    Transform,
    Reject,
    Flag,
    /// The call failed and `failure-mode = "open"` let it pass.
    FailOpen,
    /// The call failed and `failure-mode = "closed"` failed the request.
    FailClosed,
}

/// A snapshot of [`CallCounters`] (a reload starts from zero).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct CallStats {
    pub calls: u64,
    /// Calls served by an instance that had served one before
    /// (`limits.calls-per-instance` > 1); the rest ran on a fresh instance.
    pub reused: u64,
    pub failures: u64,
    pub traps: u64,
    pub deadlines: u64,
    pub memory: u64,
    pub fuel: u64,
    /// Answers over `max-output-kb` or `max-output-entries`.
    pub output_too_large: u64,
    pub instantiate: u64,
    /// Answers the pipeline could not use (e.g. a downgrade to an unknown model).
    pub invalid_answer: u64,
    /// Sum of call wall times, in microseconds.
    pub total_time_us: u64,
    /// Guardrail verdicts, and failures by the failure mode's answer (any
    /// plugin kind).
    pub pass: u64,
    pub transform: u64,
    pub reject: u64,
    pub flag: u64,
    pub fail_open: u64,
    pub fail_closed: u64,
}

/// Live counters, one field per failure kind and verdict.
#[derive(Debug)]
pub(crate) struct CallCounters {
    /// Wall time per call (`sluice_plugin_call_duration_seconds`).
    durations: Histogram,
    verdicts: [AtomicU64; 6],
    calls: AtomicU64,
    reused: AtomicU64,
    total_ns: AtomicU64,
    traps: AtomicU64,
    deadlines: AtomicU64,
    memory: AtomicU64,
    fuel: AtomicU64,
    output_too_large: AtomicU64,
    instantiate: AtomicU64,
    invalid_answer: AtomicU64,
}

impl Default for CallCounters {
    fn default() -> Self {
        Self {
            durations: Histogram::new(FINE),
            verdicts: Default::default(),
            calls: AtomicU64::default(),
            reused: AtomicU64::default(),
            total_ns: AtomicU64::default(),
            traps: AtomicU64::default(),
            deadlines: AtomicU64::default(),
            memory: AtomicU64::default(),
            fuel: AtomicU64::default(),
            output_too_large: AtomicU64::default(),
            instantiate: AtomicU64::default(),
            invalid_answer: AtomicU64::default(),
        }
    }
}

impl CallCounters {
    /// Count one finished call.
    pub fn record(&self, elapsed: Duration, failure: Option<&PluginFailure>) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.durations.observe(elapsed);
        let ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.total_ns.fetch_add(ns, Ordering::Relaxed);
        if let Some(f) = failure {
            self.failed(f);
        }
    }

    /// Count a call that runs on an instance which served calls before.
    pub fn reused(&self) {
        self.reused.fetch_add(1, Ordering::Relaxed);
    }

    /// Count a failure found after the call was counted (an answer the
    /// pipeline could not use).
    pub fn failed(&self, f: &PluginFailure) {
        let counter = match f {
            PluginFailure::Trap(_) => &self.traps,
            PluginFailure::Deadline => &self.deadlines,
            PluginFailure::Memory => &self.memory,
            PluginFailure::Fuel => &self.fuel,
            PluginFailure::OutputTooLarge { .. } | PluginFailure::TooManyEntries { .. } => {
                &self.output_too_large
            }
            PluginFailure::Instantiate(_) => &self.instantiate,
            PluginFailure::InvalidAnswer(_) => &self.invalid_answer,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Count what a call came to (see [`VerdictKind`]).
    pub fn verdict(&self, v: VerdictKind) {
        self.verdicts[v as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn durations(&self) -> Snapshot {
        self.durations.snapshot()
    }

    pub fn snapshot(&self) -> CallStats {
        let verdict = |v: VerdictKind| self.verdicts[v as usize].load(Ordering::Relaxed);
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let traps = get(&self.traps);
        let deadlines = get(&self.deadlines);
        let memory = get(&self.memory);
        let fuel = get(&self.fuel);
        let output_too_large = get(&self.output_too_large);
        let instantiate = get(&self.instantiate);
        let invalid_answer = get(&self.invalid_answer);
        CallStats {
            calls: get(&self.calls),
            reused: get(&self.reused),
            failures: traps
                + deadlines
                + memory
                + fuel
                + output_too_large
                + instantiate
                + invalid_answer,
            traps,
            deadlines,
            memory,
            fuel,
            output_too_large,
            instantiate,
            invalid_answer,
            total_time_us: get(&self.total_ns) / 1000,
            pass: verdict(VerdictKind::Pass),
            transform: verdict(VerdictKind::Transform),
            reject: verdict(VerdictKind::Reject),
            flag: verdict(VerdictKind::Flag),
            fail_open: verdict(VerdictKind::FailOpen),
            fail_closed: verdict(VerdictKind::FailClosed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_failure_kind_has_its_counter() {
        let c = CallCounters::default();
        c.record(Duration::from_micros(10), None);
        c.record(Duration::from_micros(20), Some(&PluginFailure::Deadline));
        c.record(Duration::from_micros(30), Some(&PluginFailure::Memory));
        c.record(
            Duration::from_micros(40),
            Some(&PluginFailure::OutputTooLarge { limit: 1, got: 2 }),
        );
        let s = c.snapshot();
        assert_eq!(
            (
                s.calls,
                s.failures,
                s.deadlines,
                s.memory,
                s.output_too_large
            ),
            (4, 3, 1, 1, 1)
        );
        assert_eq!((s.traps, s.fuel, s.instantiate), (0, 0, 0));
        assert_eq!(s.total_time_us, 100);
        assert_eq!(c.durations().count, 4);
        c.verdict(VerdictKind::FailClosed);
        c.verdict(VerdictKind::Transform);
        let s = c.snapshot();
        assert_eq!((s.transform, s.fail_closed, s.pass), (1, 1, 0));
    }
}
