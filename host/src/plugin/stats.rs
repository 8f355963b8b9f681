//! Call counters of one plugin version: how often it was called, how long
//! it ran, and how each failure ended. Lock-free; read as a [`CallStats`]
//! snapshot for `sluice plugin list`, the admin API and metrics.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;

use super::error::PluginFailure;

/// A snapshot of [`CallCounters`] (a reload starts from zero).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct CallStats {
    pub calls: u64,
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
}

/// Live counters, one field per failure kind.
#[derive(Debug, Default)]
pub(crate) struct CallCounters {
    calls: AtomicU64,
    total_ns: AtomicU64,
    traps: AtomicU64,
    deadlines: AtomicU64,
    memory: AtomicU64,
    fuel: AtomicU64,
    output_too_large: AtomicU64,
    instantiate: AtomicU64,
    invalid_answer: AtomicU64,
}

impl CallCounters {
    /// Count one finished call.
    pub fn record(&self, elapsed: Duration, failure: Option<&PluginFailure>) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.total_ns.fetch_add(ns, Ordering::Relaxed);
        if let Some(f) = failure {
            self.failed(f);
        }
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

    pub fn snapshot(&self) -> CallStats {
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
    }
}
