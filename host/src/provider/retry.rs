//! Retry policy: exponential backoff with full jitter, `Retry-After`, and a
//! retry budget.
//!
//! Full jitter (sleep a uniform random time in `[0, min(cap, base·2ⁿ)]`)
//! spreads the retries of many clients that failed together, which is what
//! keeps a recovering upstream from being knocked over again. The budget
//! bounds retries to a fraction of recent requests, so during an outage the
//! gateway adds at most that fraction of load instead of multiplying it by
//! `max-attempts`.

use std::time::{Duration, Instant, SystemTime};

use parking_lot::Mutex;
use rand::Rng;
use serde::Deserialize;

/// `[retry]` (global) or `[providers.retry]` (per-provider override; a
/// provider's table replaces the global one as a whole, unset keys taking
/// the defaults below).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct RetryConfig {
    /// Attempts per route, the first one included; `1` disables retries.
    /// Default `3`. After the last one the next route (fallback) is tried.
    pub max_attempts: u32,
    /// Backoff ceiling for the first retry, before jitter. Default `100` ms.
    pub initial_backoff_ms: u64,
    /// Growth factor of the ceiling per retry. Default `2.0`.
    pub multiplier: f64,
    /// Upper bound of the backoff ceiling. Default `5000` ms.
    pub max_backoff_ms: u64,
    /// `Retry-After` (or `retry-after-ms`) is obeyed up to this long; a
    /// longer demand is not waited for on this route (the next route is
    /// tried, or the 429 is returned with its `Retry-After`). Default `30000` ms.
    pub max_retry_after_ms: u64,
    /// Retries allowed as a fraction of requests in the budget window.
    /// Default `0.2` (at most one retry per five requests, plus the floor below).
    pub budget_ratio: f64,
    /// Retries always allowed per second regardless of traffic, so a quiet
    /// gateway can still retry. Default `10`.
    pub budget_min_per_sec: u32,
    /// Window over which requests and retries are counted. Default `10000` ms.
    pub budget_window_ms: u64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            initial_backoff_ms: 100,
            multiplier: 2.0,
            max_backoff_ms: 5000,
            max_retry_after_ms: 30_000,
            budget_ratio: 0.2,
            budget_min_per_sec: 10,
            budget_window_ms: 10_000,
        }
    }
}

impl RetryConfig {
    /// Problems with the values, for config validation (empty when fine).
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.max_attempts == 0 {
            out.push("max-attempts must be at least 1".to_string());
        }
        if !(self.multiplier >= 1.0 && self.multiplier.is_finite()) {
            out.push("multiplier must be a finite number >= 1".to_string());
        }
        if !(0.0..=10.0).contains(&self.budget_ratio) {
            out.push("budget-ratio must be between 0 and 10".to_string());
        }
        if self.budget_window_ms < 1000 {
            out.push("budget-window-ms must be at least 1000".to_string());
        }
        out
    }

    /// The jitter ceiling before retry number `retry` (1 = first retry).
    pub fn backoff_ceiling(&self, retry: u32) -> Duration {
        let exp = self.multiplier.powi(retry.saturating_sub(1).min(64) as i32);
        let ms = (self.initial_backoff_ms as f64 * exp).min(self.max_backoff_ms as f64);
        Duration::from_millis(ms as u64)
    }

    /// Full-jitter delay before retry number `retry`: uniform in `[0, ceiling]`.
    pub fn backoff(&self, retry: u32) -> Duration {
        let ceiling = self.backoff_ceiling(retry);
        if ceiling.is_zero() {
            return ceiling;
        }
        let ms = rand::rng().random_range(0..=ceiling.as_millis() as u64);
        Duration::from_millis(ms)
    }
}

/// Parses a `Retry-After` value: delay-seconds or an HTTP date (RFC 9110).
/// A date in the past means "now".
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    // Some servers send fractional seconds; accept them rather than ignore.
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The delay an upstream asked for, from `retry-after-ms` (OpenAI, Azure)
/// or `Retry-After`.
pub fn retry_after_from_headers(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    if let Some(ms) = headers
        .get("retry-after-ms")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|ms| ms.is_finite() && *ms >= 0.0)
    {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    let v = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    parse_retry_after(v, SystemTime::now())
}

/// Sliding-window retry budget, one per upstream: a retry is allowed while
/// `retries < ratio × requests + min_per_sec × window_secs` over the window.
/// Counts live in one-second buckets so the check is O(buckets).
#[derive(Debug)]
pub struct RetryBudget {
    ratio: f64,
    floor: f64,
    bucket: Duration,
    inner: Mutex<BudgetWindow>,
}

#[derive(Debug)]
struct BudgetWindow {
    origin: Instant,
    /// (bucket index since origin, requests, retries), oldest first.
    buckets: Vec<(u64, u64, u64)>,
    len: usize,
}

impl RetryBudget {
    pub fn new(cfg: &RetryConfig, now: Instant) -> Self {
        let window_secs = (cfg.budget_window_ms / 1000).max(1);
        Self {
            ratio: cfg.budget_ratio,
            floor: cfg.budget_min_per_sec as f64 * window_secs as f64,
            bucket: Duration::from_secs(1),
            inner: Mutex::new(BudgetWindow {
                origin: now,
                buckets: vec![(u64::MAX, 0, 0); window_secs as usize],
                len: window_secs as usize,
            }),
        }
    }

    /// Counts a first attempt.
    pub fn record_request(&self, now: Instant) {
        let mut w = self.inner.lock();
        let slot = w.slot(now, self.bucket);
        slot.1 += 1;
    }

    /// Takes a retry from the budget; `false` means "do not retry".
    pub fn try_retry(&self, now: Instant) -> bool {
        let mut w = self.inner.lock();
        let current = w.index(now, self.bucket);
        let oldest = current.saturating_sub(w.len as u64 - 1);
        let (mut requests, mut retries) = (0u64, 0u64);
        for &(idx, req, ret) in &w.buckets {
            if idx != u64::MAX && idx >= oldest && idx <= current {
                requests += req;
                retries += ret;
            }
        }
        let allowed = self.ratio * requests as f64 + self.floor;
        if (retries as f64) < allowed {
            w.slot(now, self.bucket).2 += 1;
            true
        } else {
            false
        }
    }
}

impl BudgetWindow {
    fn index(&self, now: Instant, bucket: Duration) -> u64 {
        (now.saturating_duration_since(self.origin).as_millis() / bucket.as_millis()) as u64
    }

    fn slot(&mut self, now: Instant, bucket: Duration) -> &mut (u64, u64, u64) {
        let idx = self.index(now, bucket);
        let pos = (idx % self.len as u64) as usize;
        let slot = &mut self.buckets[pos];
        if slot.0 != idx {
            *slot = (idx, 0, 0);
        }
        slot
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_exponentially_up_to_the_cap() {
        let cfg = RetryConfig {
            initial_backoff_ms: 100,
            multiplier: 2.0,
            max_backoff_ms: 1000,
            ..RetryConfig::default()
        };
        let ceilings: Vec<u64> = (1..=6)
            .map(|n| cfg.backoff_ceiling(n).as_millis() as u64)
            .collect();
        assert_eq!(ceilings, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(cfg.backoff_ceiling(u32::MAX).as_millis(), 1000);
    }

    #[test]
    fn full_jitter_stays_in_bounds_and_spreads() {
        let cfg = RetryConfig::default();
        let samples: Vec<Duration> = (0..2000).map(|_| cfg.backoff(3)).collect();
        let ceiling = cfg.backoff_ceiling(3);
        assert!(samples.iter().all(|d| *d <= ceiling));
        // Full jitter covers the whole range, not just the top of it.
        assert!(samples.iter().any(|d| *d < ceiling / 4));
        assert!(samples.iter().any(|d| *d > ceiling * 3 / 4));
    }

    #[test]
    fn retry_after_seconds_and_http_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after("3", now), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_retry_after(" 0.5 ", now),
            Some(Duration::from_millis(500))
        );
        let later = httpdate::fmt_http_date(now + Duration::from_secs(42));
        assert_eq!(
            parse_retry_after(&later, now),
            Some(Duration::from_secs(42))
        );
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(42));
        assert_eq!(parse_retry_after(&earlier, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-1", now), None);
    }

    #[test]
    fn retry_after_ms_header_wins() {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert("retry-after", "9".parse().unwrap());
        assert_eq!(retry_after_from_headers(&h), Some(Duration::from_secs(9)));
        h.insert("retry-after-ms", "250".parse().unwrap());
        assert_eq!(
            retry_after_from_headers(&h),
            Some(Duration::from_millis(250))
        );
    }

    #[test]
    fn budget_allows_ratio_of_requests_plus_floor() {
        let cfg = RetryConfig {
            budget_ratio: 0.25,
            budget_min_per_sec: 0,
            budget_window_ms: 10_000,
            ..RetryConfig::default()
        };
        let t0 = Instant::now();
        let b = RetryBudget::new(&cfg, t0);
        assert!(!b.try_retry(t0), "no requests, no floor: no retries");
        for _ in 0..100 {
            b.record_request(t0);
        }
        let granted = (0..100).filter(|_| b.try_retry(t0)).count();
        assert_eq!(granted, 25);
        // Once the window has passed, old requests no longer pay for retries.
        let later = t0 + Duration::from_secs(11);
        assert!(!b.try_retry(later));
    }

    #[test]
    fn budget_floor_allows_retries_without_traffic() {
        let cfg = RetryConfig {
            budget_ratio: 0.0,
            budget_min_per_sec: 1,
            budget_window_ms: 5_000,
            ..RetryConfig::default()
        };
        let t0 = Instant::now();
        let b = RetryBudget::new(&cfg, t0);
        let granted = (0..20).filter(|_| b.try_retry(t0)).count();
        assert_eq!(granted, 5);
    }
}
