//! The one abstraction both backends implement: [`Store`].
//!
//! Two kinds of operations, chosen so that every method is atomic on its own
//! and no caller ever has to read, decide and write back:
//!
//! - **Generic primitives** whose atomicity is a single key's: KV with TTL
//!   and prefix scan, `put_if_absent` (a claim: alerts fire once, ids are
//!   unique), an append-only log with time-range reads. Future users (the
//!   response cache, a human-review queue, prompt activation records, eval
//!   results) build on these.
//! - **Domain operations** whose correctness needs several keys to change
//!   together under one check: budget reservation across every applicable
//!   scope, settling (release + add the cost + append the ledger record in
//!   one step), and GCRA rate checks across several limits. Built from the
//!   primitives these would be read-modify-write races between gateways;
//!   instead each backend implements them atomically where the data lives
//!   (sled: one process owns the directory, so an in-memory book under one
//!   mutex, persisted in atomic sled batches; Redis: one Lua script, run by
//!   `EVALSHA`).
//!
//! Money is integer nano-USD ([`Nanos`]) inside the store: sums of many
//! tiny costs stay exact, and Redis's Lua numbers (doubles) hold them exactly
//! up to 2^53 n$ (about $9M per scope and period).

use std::time::Duration;

use async_trait::async_trait;

/// Integer nano-USD (1e-9 USD).
pub type Nanos = i64;

/// USD to nano-USD, rounded; negative and non-finite amounts count as 0.
pub fn to_nanos(usd: f64) -> Nanos {
    if usd.is_finite() && usd > 0.0 {
        (usd * 1e9).round().min(i64::MAX as f64) as i64
    } else {
        0
    }
}

/// Nano-USD to USD.
pub fn to_usd(n: Nanos) -> f64 {
    n as f64 / 1e9
}

/// A failure inside a backend (I/O, connection, a corrupt value).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("sled: {0}")]
    Sled(#[from] sled::Error),
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("corrupt value under {key}: {reason}")]
    Corrupt { key: String, reason: String },
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// One budget counter: the spend of one scope (`key:k1`, `user:alice`,
/// `feature:chat`) in one period (`2026-11`, `day:2026-11-27`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CounterKey {
    pub scope: String,
    pub period: String,
    /// Unix seconds after which the counter may be dropped (the period's
    /// end plus a margin; the ledger keeps the history).
    pub expires_at: u64,
}

/// A counter's value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CounterValue {
    /// Settled spend.
    pub spent: Nanos,
    /// Sum of live (not settled, not expired) reservations.
    pub reserved: Nanos,
}

/// Reserve `amount` against every line's limit, all or nothing.
#[derive(Debug, Clone)]
pub struct Reserve<'a> {
    /// Counters with a limit (nano-USD) to check and reserve against.
    pub lines: &'a [(CounterKey, Nanos)],
    pub amount: Nanos,
    /// Unique per request; names the reservation in every counter.
    pub id: &'a str,
    /// After this long an unsettled reservation (a crashed gateway, a lost
    /// request) stops counting, so it cannot leak forever.
    pub ttl: Duration,
}

/// The outcome of [`Store::reserve`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reserved {
    /// Reserved on every line; the values after the reservation.
    Ok(Vec<CounterValue>),
    /// Line `index` had no room; nothing was reserved anywhere.
    Denied { index: usize, value: CounterValue },
}

/// Settle a reservation: release it where it was made, add `cost` to every
/// counter, and append `record` to the ledger, as one atomic step.
#[derive(Debug, Clone)]
pub struct Settle<'a> {
    /// Every counter the request's cost is added to.
    pub counters: &'a [CounterKey],
    /// The reservation's id (released in every counter that holds it; a
    /// reservation that already expired is simply gone).
    pub id: &'a str,
    pub cost: Nanos,
    /// `(unix ms, bytes)` of the ledger record; None to release only.
    pub record: Option<(u64, &'a [u8])>,
}

/// One GCRA limit: `limit` cells per minute, burst = `limit`, charged `cost`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateCheck {
    pub key: String,
    pub limit: u32,
    pub cost: u32,
}

/// A GCRA limit's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateResult {
    pub allowed: bool,
    /// `cost` is larger than the whole burst: it can never pass.
    pub too_large: bool,
    /// Cells left right now after this request.
    pub remaining: u32,
    /// Until the limit is back at its full burst.
    pub reset: Duration,
    /// When denied: until `cost` cells fit.
    pub retry_after: Option<Duration>,
}

/// A page of log records.
#[derive(Debug, Clone, Default)]
pub struct LogPage {
    pub records: Vec<Vec<u8>>,
    /// Pass back to read on; None when the range is exhausted.
    pub next: Option<Vec<u8>>,
}

/// The storage backend. Every method is atomic on its own (see the module
/// doc); callers never learn which backend they talk to.
///
/// Namespaces (`ns`) are short ASCII names chosen by the caller (`keys`,
/// `alerts`, `cache`); keys are UTF-8. Values are opaque bytes.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// `sled` or `redis`, for logs.
    fn backend(&self) -> &'static str;

    async fn get(&self, ns: &str, key: &str) -> Result<Option<Vec<u8>>>;
    /// Several keys, possibly in different namespaces, read at one instant
    /// (one round trip on Redis).
    async fn get_many(&self, keys: &[(&str, &str)]) -> Result<Vec<Option<Vec<u8>>>>;
    /// Set `key` (TTL: absent after `ttl`; None keeps it).
    async fn put(&self, ns: &str, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<()>;
    /// Set `key` only if absent (or expired); true when this call set it.
    async fn put_if_absent(
        &self,
        ns: &str,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool>;
    /// True when something was deleted.
    async fn delete(&self, ns: &str, key: &str) -> Result<bool>;
    /// Up to `limit` live entries whose key starts with `prefix`, in key
    /// order on sled and unordered on Redis (`SCAN`: cost grows with the
    /// whole keyspace, so keep it off the request path).
    async fn scan(&self, ns: &str, prefix: &str, limit: usize) -> Result<Vec<(String, Vec<u8>)>>;

    /// Append `record` to the log `log` at `time_ms` (unix ms).
    async fn append(&self, log: &str, time_ms: u64, record: &[u8]) -> Result<()>;
    /// Records with `since_ms <= time < until_ms`, oldest first, `limit` at
    /// most per page; `after` is the previous page's `next`.
    async fn read_log(
        &self,
        log: &str,
        since_ms: u64,
        until_ms: u64,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<LogPage>;
    /// Drop the log's records with `time < before_ms`; how many went.
    async fn trim_log(&self, log: &str, before_ms: u64) -> Result<u64>;
    /// Make every write so far durable (fsync on sled; Redis persists by
    /// its own `appendfsync` setting, so this is a no-op there).
    async fn flush(&self) -> Result<()>;

    async fn reserve(&self, req: &Reserve<'_>) -> Result<Reserved>;
    /// The counters' values after settling, in `counters` order. The ledger
    /// record goes to the log `ledger`.
    async fn settle(&self, req: &Settle<'_>) -> Result<Vec<CounterValue>>;
    async fn counters(&self, keys: &[CounterKey]) -> Result<Vec<CounterValue>>;

    /// GCRA over `checks` in order, stopping at the first denial: limits
    /// before it have charged their cells, the denying one and those after
    /// it have not (governor, the in-process limiter, cannot take cells
    /// back, and Redis does the same so both behave alike). Returns one
    /// result per limit checked.
    async fn rate(&self, checks: &[RateCheck]) -> Result<Vec<RateResult>>;
}

/// GCRA parameters of a per-minute limit, shared by both backends so they
/// compute the same numbers: emission interval `t` and tolerance `tau`.
pub(crate) fn gcra_params(limit: u32) -> (Duration, Duration) {
    let t = Duration::from_secs(60) / limit.max(1);
    (t, t * (limit.max(1) - 1))
}

/// `reset` for a denied request: until the bucket is full again.
pub(crate) fn reset_when_denied(limit: u32, cost: u32, retry_after: Duration) -> Duration {
    let (t, tau) = gcra_params(limit);
    retry_after + tau.saturating_sub(t * cost.saturating_sub(1))
}

/// `reset` for an allowed request with `remaining` cells left.
pub(crate) fn reset_when_allowed(limit: u32, remaining: u32) -> Duration {
    gcra_params(limit).0 * limit.saturating_sub(remaining)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usd_round_trips_through_nanos() {
        assert_eq!(to_nanos(0.000_000_15), 150);
        assert_eq!(to_nanos(1.5), 1_500_000_000);
        assert_eq!(to_nanos(-3.0), 0);
        assert_eq!(to_nanos(f64::NAN), 0);
        assert!((to_usd(to_nanos(12.345_678_9)) - 12.345_678_9).abs() < 1e-12);
    }

    #[test]
    fn gcra_parameters_match_a_per_minute_quota() {
        let (t, tau) = gcra_params(60);
        assert_eq!(t, Duration::from_secs(1));
        assert_eq!(tau, Duration::from_secs(59));
        assert_eq!(reset_when_allowed(60, 59), Duration::from_secs(1));
        assert_eq!(
            reset_when_denied(60, 1, Duration::from_millis(500)),
            Duration::from_millis(59_500)
        );
    }
}
