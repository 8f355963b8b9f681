//! Circuit breaker, one per upstream.
//!
//! Closed: calls flow; failures are counted. Open: calls are refused at once
//! (the fallback walk skips this upstream without waiting for a timeout).
//! Half-open: after the cool-down exactly one probe call is let through; its
//! success closes the breaker, its failure re-opens it for another cool-down.
//! Every method takes `now` so the state machine is tested with a fake clock.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::Serialize;

use super::config::BreakerConfig;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half-open",
        }
    }
}

impl fmt::Display for BreakerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a call went, as far as the upstream's health is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
    /// Neither (a 429 or a client error): says nothing about health.
    Neutral,
}

/// Transition and refusal counts, for metrics.
#[derive(Debug, Default)]
pub struct BreakerCounters {
    pub opened: AtomicU64,
    pub half_opened: AtomicU64,
    pub closed: AtomicU64,
    /// Calls refused because the breaker was open.
    pub rejected: AtomicU64,
}

/// A snapshot of [`BreakerCounters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct BreakerMetrics {
    pub opened: u64,
    pub half_opened: u64,
    pub closed: u64,
    pub rejected: u64,
}

#[derive(Debug)]
pub struct Breaker {
    name: String,
    cfg: BreakerConfig,
    inner: Mutex<Inner>,
    counters: BreakerCounters,
}

#[derive(Debug)]
struct Inner {
    state: BreakerState,
    opened_at: Instant,
    probe_in_flight: bool,
    consecutive_failures: u32,
    /// (time, failed) per call inside the window, oldest first.
    window: VecDeque<(Instant, bool)>,
    failures_in_window: usize,
}

/// Admission to call the upstream. `is_probe` marks the half-open probe,
/// whose outcome decides the breaker's next state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Permit {
    pub is_probe: bool,
}

impl Breaker {
    pub fn new(name: impl Into<String>, cfg: BreakerConfig, now: Instant) -> Self {
        Self {
            name: name.into(),
            cfg,
            inner: Mutex::new(Inner {
                state: BreakerState::Closed,
                opened_at: now,
                probe_in_flight: false,
                consecutive_failures: 0,
                window: VecDeque::new(),
                failures_in_window: 0,
            }),
            counters: BreakerCounters::default(),
        }
    }

    /// May a call go out now? `None` means the breaker is open (or its
    /// single half-open probe is already out): skip this upstream.
    pub fn try_acquire(&self, now: Instant) -> Option<Permit> {
        if !self.cfg.enabled {
            return Some(Permit { is_probe: false });
        }
        let mut s = self.inner.lock();
        if s.state == BreakerState::Open && now >= s.opened_at + self.cool_down() {
            self.transition(&mut s, BreakerState::HalfOpen);
        }
        match s.state {
            BreakerState::Closed => Some(Permit { is_probe: false }),
            BreakerState::HalfOpen if !s.probe_in_flight => {
                s.probe_in_flight = true;
                Some(Permit { is_probe: true })
            }
            _ => {
                self.counters.rejected.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// Reports how a permitted call went.
    pub fn record(&self, permit: Permit, outcome: Outcome, now: Instant) {
        if !self.cfg.enabled {
            return;
        }
        let mut s = self.inner.lock();
        if permit.is_probe {
            s.probe_in_flight = false;
            if s.state == BreakerState::HalfOpen {
                match outcome {
                    Outcome::Success => {
                        s.reset_window();
                        self.transition(&mut s, BreakerState::Closed);
                    }
                    Outcome::Failure => {
                        s.opened_at = now;
                        self.transition(&mut s, BreakerState::Open);
                    }
                    // Let the next call probe instead.
                    Outcome::Neutral => {}
                }
                return;
            }
        }
        if s.state != BreakerState::Closed || outcome == Outcome::Neutral {
            return;
        }
        let failed = outcome == Outcome::Failure;
        s.consecutive_failures = if failed {
            s.consecutive_failures + 1
        } else {
            0
        };
        s.window.push_back((now, failed));
        s.failures_in_window += failed as usize;
        let window = Duration::from_millis(self.cfg.window_ms);
        while let Some(&(t, f)) = s.window.front() {
            if now.saturating_duration_since(t) <= window {
                break;
            }
            s.window.pop_front();
            s.failures_in_window -= f as usize;
        }
        let calls = s.window.len();
        let rate_tripped = calls >= self.cfg.min_requests as usize
            && calls > 0
            && s.failures_in_window as f64 / calls as f64 >= self.cfg.error_rate;
        if failed && (s.consecutive_failures >= self.cfg.failure_threshold || rate_tripped) {
            tracing::warn!(
                upstream = %self.name,
                consecutive = s.consecutive_failures,
                failures_in_window = s.failures_in_window,
                calls_in_window = calls,
                "circuit breaker tripped"
            );
            s.opened_at = now;
            self.transition(&mut s, BreakerState::Open);
        }
    }

    /// The state as a caller would see it now (an open breaker whose
    /// cool-down is over reports half-open: the next call will probe).
    pub fn state(&self, now: Instant) -> BreakerState {
        let s = self.inner.lock();
        if s.state == BreakerState::Open && now >= s.opened_at + self.cool_down() {
            BreakerState::HalfOpen
        } else {
            s.state
        }
    }

    pub fn metrics(&self) -> BreakerMetrics {
        let c = &self.counters;
        BreakerMetrics {
            opened: c.opened.load(Ordering::Relaxed),
            half_opened: c.half_opened.load(Ordering::Relaxed),
            closed: c.closed.load(Ordering::Relaxed),
            rejected: c.rejected.load(Ordering::Relaxed),
        }
    }

    fn cool_down(&self) -> Duration {
        Duration::from_millis(self.cfg.cool_down_ms)
    }

    fn transition(&self, s: &mut Inner, to: BreakerState) {
        let from = s.state;
        if from == to {
            return;
        }
        s.state = to;
        let counter = match to {
            BreakerState::Open => &self.counters.opened,
            BreakerState::HalfOpen => &self.counters.half_opened,
            BreakerState::Closed => &self.counters.closed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        tracing::info!(upstream = %self.name, %from, %to, "circuit breaker transition");
    }
}

impl Inner {
    fn reset_window(&mut self) {
        self.window.clear();
        self.failures_in_window = 0;
        self.consecutive_failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> BreakerConfig {
        BreakerConfig {
            failure_threshold: 3,
            error_rate: 0.5,
            min_requests: 10,
            window_ms: 1000,
            cool_down_ms: 500,
            enabled: true,
        }
    }

    fn call(b: &Breaker, outcome: Outcome, now: Instant) -> bool {
        match b.try_acquire(now) {
            Some(p) => {
                b.record(p, outcome, now);
                true
            }
            None => false,
        }
    }

    #[test]
    fn opens_after_consecutive_failures_and_refuses_calls() {
        let t = Instant::now();
        let b = Breaker::new("a", cfg(), t);
        assert!(call(&b, Outcome::Failure, t));
        assert!(call(&b, Outcome::Success, t), "a success resets the run");
        for _ in 0..2 {
            assert!(call(&b, Outcome::Failure, t));
        }
        assert_eq!(b.state(t), BreakerState::Closed);
        assert!(call(&b, Outcome::Failure, t));
        assert_eq!(b.state(t), BreakerState::Open);
        assert!(b.try_acquire(t + Duration::from_millis(499)).is_none());
        assert_eq!(b.metrics().opened, 1);
        assert_eq!(b.metrics().rejected, 1);
    }

    #[test]
    fn opens_on_error_rate_once_enough_requests() {
        let t = Instant::now();
        let b = Breaker::new("a", cfg(), t);
        // Alternate so the consecutive threshold is never reached.
        for i in 0..9 {
            let o = if i % 2 == 0 {
                Outcome::Failure
            } else {
                Outcome::Success
            };
            assert!(call(&b, o, t));
        }
        assert_eq!(b.state(t), BreakerState::Closed, "below min-requests");
        assert!(call(&b, Outcome::Failure, t));
        // 6 failures of 10 calls >= 0.5.
        assert_eq!(b.state(t), BreakerState::Open);
    }

    #[test]
    fn old_calls_leave_the_window() {
        let t = Instant::now();
        let b = Breaker::new("a", cfg(), t);
        for _ in 0..9 {
            call(&b, Outcome::Success, t);
            call(&b, Outcome::Neutral, t);
        }
        for i in 0..9 {
            let o = if i % 2 == 0 {
                Outcome::Failure
            } else {
                Outcome::Success
            };
            call(&b, o, t + Duration::from_millis(2000));
        }
        // Counting the old successes this is 5/18; they expired, so it is 5/9
        // but under min-requests: still closed.
        assert_eq!(
            b.state(t + Duration::from_millis(2000)),
            BreakerState::Closed
        );
    }

    #[test]
    fn half_open_allows_one_probe_then_closes_on_success() {
        let t = Instant::now();
        let b = Breaker::new("a", cfg(), t);
        for _ in 0..3 {
            call(&b, Outcome::Failure, t);
        }
        let later = t + Duration::from_millis(500);
        assert_eq!(b.state(later), BreakerState::HalfOpen);
        let probe = b.try_acquire(later).expect("probe admitted");
        assert!(probe.is_probe);
        assert!(b.try_acquire(later).is_none(), "only one probe at a time");
        b.record(probe, Outcome::Success, later);
        assert_eq!(b.state(later), BreakerState::Closed);
        let m = b.metrics();
        assert_eq!((m.opened, m.half_opened, m.closed), (1, 1, 1));
    }

    #[test]
    fn failed_probe_reopens_for_a_new_cool_down() {
        let t = Instant::now();
        let b = Breaker::new("a", cfg(), t);
        for _ in 0..3 {
            call(&b, Outcome::Failure, t);
        }
        let t1 = t + Duration::from_millis(600);
        let probe = b.try_acquire(t1).unwrap();
        b.record(probe, Outcome::Failure, t1);
        assert_eq!(b.state(t1), BreakerState::Open);
        assert!(b.try_acquire(t1 + Duration::from_millis(499)).is_none());
        assert!(b.try_acquire(t1 + Duration::from_millis(500)).is_some());
        assert_eq!(b.metrics().opened, 2);
    }

    #[test]
    fn neutral_probe_lets_another_probe_through() {
        let t = Instant::now();
        let b = Breaker::new("a", cfg(), t);
        for _ in 0..3 {
            call(&b, Outcome::Failure, t);
        }
        let t1 = t + Duration::from_millis(500);
        let probe = b.try_acquire(t1).unwrap();
        b.record(probe, Outcome::Neutral, t1);
        assert_eq!(b.state(t1), BreakerState::HalfOpen);
        assert!(b.try_acquire(t1).unwrap().is_probe);
    }

    #[test]
    fn disabled_breaker_never_opens() {
        let t = Instant::now();
        let b = Breaker::new(
            "a",
            BreakerConfig {
                enabled: false,
                ..cfg()
            },
            t,
        );
        for _ in 0..50 {
            assert!(call(&b, Outcome::Failure, t));
        }
        assert_eq!(b.state(t), BreakerState::Closed);
    }
}
