//! In-process GCRA rate limits for the sled backend, on the `governor`
//! crate. One keyed limiter per distinct per-minute limit (limits come from
//! a handful of config values and key records, so there are few), each
//! holding one GCRA state per subject. State lives in memory: a restart
//! starts every subject with a full burst, as a fresh governor does.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::HashMapStateStore;
use governor::{Quota, RateLimiter};
use parking_lot::RwLock;

use super::store::{RateCheck, RateResult, reset_when_allowed, reset_when_denied};

type Limiter =
    RateLimiter<String, HashMapStateStore<String>, DefaultClock, StateInformationMiddleware>;

/// Checks between two sweeps of idle subjects (a subject whose bucket is
/// full again holds no information and is dropped).
const SWEEP_EVERY: u64 = 4096;

#[derive(Default)]
pub(crate) struct LocalLimiter {
    by_limit: RwLock<HashMap<u32, Arc<Limiter>>>,
    checks: AtomicU64,
}

impl LocalLimiter {
    fn limiter(&self, limit: NonZeroU32) -> Arc<Limiter> {
        if let Some(l) = self.by_limit.read().get(&limit.get()) {
            return l.clone();
        }
        self.by_limit
            .write()
            .entry(limit.get())
            .or_insert_with(|| {
                Arc::new(
                    RateLimiter::hashmap(Quota::per_minute(limit))
                        .with_middleware::<StateInformationMiddleware>(),
                )
            })
            .clone()
    }

    /// See [`super::store::Store::rate`]: in order, stop at the first denial.
    pub(crate) fn check(&self, checks: &[RateCheck]) -> Vec<RateResult> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            for l in self.by_limit.read().values() {
                l.retain_recent();
            }
        }
        let mut out = Vec::with_capacity(checks.len());
        for c in checks {
            let r = self.check_one(c);
            out.push(r);
            if !r.allowed {
                break;
            }
        }
        out
    }

    fn check_one(&self, c: &RateCheck) -> RateResult {
        let (Some(limit), Some(cost)) = (NonZeroU32::new(c.limit), NonZeroU32::new(c.cost)) else {
            // A zero limit admits nothing; a zero cost charges nothing.
            return if c.limit == 0 {
                RateResult {
                    allowed: false,
                    too_large: true,
                    remaining: 0,
                    reset: Default::default(),
                    retry_after: None,
                }
            } else {
                RateResult {
                    allowed: true,
                    too_large: false,
                    remaining: c.limit,
                    reset: Default::default(),
                    retry_after: None,
                }
            };
        };
        let limiter = self.limiter(limit);
        match limiter.check_key_n(&c.key, cost) {
            Ok(Ok(snapshot)) => {
                let remaining = snapshot.remaining_burst_capacity();
                RateResult {
                    allowed: true,
                    too_large: false,
                    remaining,
                    reset: reset_when_allowed(c.limit, remaining),
                    retry_after: None,
                }
            }
            Ok(Err(not_until)) => {
                let retry = not_until.wait_time_from(limiter.clock().now());
                RateResult {
                    allowed: false,
                    too_large: false,
                    remaining: 0,
                    reset: reset_when_denied(c.limit, c.cost, retry),
                    retry_after: Some(retry),
                }
            }
            Err(_insufficient) => RateResult {
                allowed: false,
                too_large: true,
                remaining: 0,
                reset: Default::default(),
                retry_after: None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn check(key: &str, limit: u32, cost: u32) -> RateCheck {
        RateCheck {
            key: key.into(),
            limit,
            cost,
        }
    }

    #[test]
    fn a_burst_of_limit_then_denial_with_retry_after() {
        let l = LocalLimiter::default();
        for i in 0..5 {
            let r = l.check(&[check("k", 5, 1)]);
            assert!(r[0].allowed, "request {i}");
            assert_eq!(r[0].remaining, 4 - i);
        }
        let r = l.check(&[check("k", 5, 1)])[0];
        assert!(!r.allowed && !r.too_large);
        // One cell every 12 s; the first was taken moments ago.
        let retry = r.retry_after.unwrap();
        assert!(retry > Duration::ZERO && retry <= Duration::from_secs(12));
        assert_eq!(r.reset, retry + Duration::from_secs(48));
        // Another subject is unaffected.
        assert!(l.check(&[check("other", 5, 1)])[0].allowed);
    }

    #[test]
    fn stops_at_the_first_denial_and_reports_too_large() {
        let l = LocalLimiter::default();
        let r = l.check(&[check("a", 10, 1), check("b", 100, 101), check("c", 10, 1)]);
        assert_eq!(r.len(), 2);
        assert!(r[0].allowed);
        assert!(!r[1].allowed && r[1].too_large && r[1].retry_after.is_none());
        // "c" was never charged.
        assert_eq!(l.check(&[check("c", 10, 1)])[0].remaining, 9);
        // A token cost is charged as that many cells.
        assert_eq!(l.check(&[check("t", 1000, 400)])[0].remaining, 600);
    }
}
