//! Retry policy: exponential backoff with full jitter, `Retry-After`, and a
//! retry budget.
//!
//! Full jitter (sleep a uniform random time in `[0, min(cap, base·2ⁿ)]`)
//! spreads the retries of many clients that failed together, which is what
//! keeps a recovering upstream from being knocked over again. The budget
//! bounds retries to a fraction of recent requests, so during an outage the
//! gateway adds at most that fraction of load instead of multiplying it by
//! `max-attempts`. The budget is tower's `TpsBudget` (Finagle's design): a
//! deposit per first attempt, a withdrawal per retry, over a sliding TTL.

use std::time::{Duration, SystemTime};

use rand::Rng;
use tower::retry::budget::TpsBudget;

use super::config::RetryConfig;

impl RetryConfig {
    /// A fresh retry budget with these settings. Values are clamped to what
    /// `TpsBudget` accepts (a TTL of 1-60 s, a ratio of 0-1000); config
    /// validation refuses anything outside that range before it gets here.
    pub fn budget(&self) -> TpsBudget {
        let ttl = Duration::from_millis(self.budget_window_ms)
            .clamp(Duration::from_secs(1), Duration::from_secs(60));
        let ratio = if self.budget_ratio.is_finite() {
            self.budget_ratio.clamp(0.0, 1000.0) as f32
        } else {
            0.0
        };
        TpsBudget::new(ttl, self.budget_min_per_sec, ratio)
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
pub fn retry_after_from_headers(headers: &http::HeaderMap) -> Option<Duration> {
    if let Some(ms) = headers
        .get("retry-after-ms")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|ms| ms.is_finite() && *ms >= 0.0)
    {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    let v = headers.get(http::header::RETRY_AFTER)?.to_str().ok()?;
    parse_retry_after(v, SystemTime::now())
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
        let mut h = http::HeaderMap::new();
        h.insert("retry-after", "9".parse().unwrap());
        assert_eq!(retry_after_from_headers(&h), Some(Duration::from_secs(9)));
        h.insert("retry-after-ms", "250".parse().unwrap());
        assert_eq!(
            retry_after_from_headers(&h),
            Some(Duration::from_millis(250))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn budget_allows_ratio_of_requests_plus_floor() {
        use tower::retry::budget::Budget;
        let cfg = RetryConfig {
            budget_ratio: 0.25,
            budget_min_per_sec: 0,
            budget_window_ms: 10_000,
            ..RetryConfig::default()
        };
        let b = cfg.budget();
        assert!(!b.withdraw(), "no requests, no floor: no retries");
        for _ in 0..100 {
            b.deposit();
        }
        let granted = (0..100).filter(|_| b.withdraw()).count();
        assert_eq!(granted, 25);
        // Once the window has passed, old requests no longer pay for retries.
        for _ in 0..100 {
            b.deposit();
        }
        tokio::time::advance(Duration::from_secs(11)).await;
        assert!(!b.withdraw());
    }

    #[tokio::test(start_paused = true)]
    async fn budget_floor_allows_retries_without_traffic() {
        use tower::retry::budget::Budget;
        let cfg = RetryConfig {
            budget_ratio: 0.0,
            budget_min_per_sec: 1,
            budget_window_ms: 5_000,
            ..RetryConfig::default()
        };
        let b = cfg.budget();
        let granted = (0..20).filter(|_| b.withdraw()).count();
        assert_eq!(granted, 5);
    }
}
