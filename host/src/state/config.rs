//! `[state]`: where the gateway's memory lives (usage ledger, budgets,
//! virtual keys, rate limits) and the policies on it. Every key is
//! documented with its default and its cost, like the rest of the config.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::quality::QualityAlertsConfig;

/// `[state]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct StateConfig {
    /// `sled` (default): embedded, one directory, nothing else to run; one
    /// gateway process per directory. `redis`: several gateways share keys,
    /// spend, budgets and rate limits through one Redis at `redis-url`
    /// (a network round trip per state operation, about 4 per request).
    pub backend: BackendKind,
    /// sled's data directory. Default `data`; a relative path is taken
    /// relative to the config file's directory. Unused with Redis.
    pub dir: PathBuf,
    /// Redis URL (`redis://[:password@]host:port/db`, or `${REDIS_URL}`).
    /// Required when `backend = "redis"`.
    pub redis_url: Option<String>,
    /// Prefix of every Redis key, so several deployments (or tests) can
    /// share one server. Default `sluice:`.
    pub key_prefix: String,
    /// How long one Redis command (or connecting) may take, in ms, before
    /// the request that needed it fails with 503 `state_unavailable`.
    /// Default 2000: above a loaded server's queueing under bursts (the
    /// client library's own 500 ms failed requests in the 1000-request
    /// budget race on a 2-core machine), below a client's patience.
    pub redis_timeout_ms: u64,
    /// When a usage record (and the spend it adds) is durable.
    /// `group` (default): the ledger writer fsyncs within `group-commit-ms`
    /// of a write (ledger records, spend, KV entries); a crash loses
    /// at most that window, and the request path never waits for a disk.
    /// `sync`: fsync before the response completes (the client never holds
    /// an answer the ledger lacks), costing one fsync per request (about
    /// 1-10 ms on SSDs, concurrent requests share them). With Redis this is
    /// Redis's own `appendfsync` (the gateway warns when it is not `always`).
    pub durability: Durability,
    /// The group-commit window in ms: the most a crash can lose in `group`
    /// mode. Default 10. Smaller = more fsyncs per second (the ledger
    /// writer flushes on its own thread, off the request path; at light load
    /// each window with a write costs ~15 thread wake-ups, mostly sled's I/O
    /// pool: `bench/README.md`).
    pub group_commit_ms: u64,
    /// sled's page cache in MiB. Default 64 (sled's own default is 1 GiB).
    pub sled_cache_mb: u64,
    /// How long a budget reservation counts before it expires, in ms, so
    /// the reservation of a request whose gateway crashed does not hold
    /// budget forever. Must exceed the longest request (a stream can run
    /// for minutes). Default 900000 (15 min).
    pub reservation_ttl_ms: u64,
    /// Budget shares (percent) at which an alert fires, once per threshold,
    /// scope and period, across every gateway sharing the store.
    /// Default [50, 80, 100].
    pub alert_thresholds: Vec<f64>,
    /// URL that receives a JSON POST per alert (besides the log line).
    /// Default unset: log only. Sent off the request path.
    pub alert_webhook: Option<String>,
    /// Timeout of one webhook POST in ms. Default 5000.
    pub alert_webhook_timeout_ms: u64,
    /// Load the tokenizer (~0.33 s of CPU, measured: `benches/state.rs`
    /// prints it) on a background thread at start instead of on the first
    /// request that needs an estimate. Default true.
    pub warm_tokenizer: bool,
    /// Keep usage ledger records this many days, then drop them (hourly, on
    /// every gateway; a range delete on sled, `XTRIM MINID` on Redis).
    /// Default unset: keep every record. The ledger grows by one JSON
    /// record per answered request, in the sled directory or in Redis's
    /// memory, so a busy gateway on Redis wants this set (and reports
    /// exported before records age out). Budget counters expire on their
    /// own and are not affected.
    pub ledger_retention_days: Option<u32>,
    /// `[state.budgets]`.
    pub budgets: BudgetsConfig,
    /// `[state.rate-limits]`.
    pub rate_limits: RateLimitsConfig,
    /// `[state.quality-alerts]`: rolling error and reject rates per model;
    /// keys documented on [`QualityAlertsConfig`].
    pub quality_alerts: QualityAlertsConfig,
}

impl Default for StateConfig {
    fn default() -> Self {
        Self {
            backend: BackendKind::Sled,
            dir: PathBuf::from("data"),
            redis_url: None,
            key_prefix: "sluice:".into(),
            redis_timeout_ms: 2000,
            durability: Durability::Group,
            group_commit_ms: 10,
            sled_cache_mb: 64,
            reservation_ttl_ms: 900_000,
            alert_thresholds: vec![50.0, 80.0, 100.0],
            alert_webhook: None,
            alert_webhook_timeout_ms: 5000,
            warm_tokenizer: true,
            ledger_retention_days: None,
            budgets: BudgetsConfig::default(),
            rate_limits: RateLimitsConfig::default(),
            quality_alerts: QualityAlertsConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum BackendKind {
    #[default]
    Sled,
    Redis,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Durability {
    #[default]
    Group,
    Sync,
}

/// A budget in USD per UTC day and per UTC calendar month; unset = none.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Budget {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub day_usd: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub month_usd: Option<f64>,
}

impl Budget {
    pub fn is_empty(&self) -> bool {
        self.day_usd.is_none() && self.month_usd.is_none()
    }
}

/// `[state.budgets]`: budgets of users and features (a key's budget is on
/// the key). Every applicable budget is reserved against before a call.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct BudgetsConfig {
    /// Per user name: `alice = { day-usd = 5.0, month-usd = 100.0 }`.
    pub users: BTreeMap<String, Budget>,
    /// Per feature (`x-sluice-feature`): `chat = { month-usd = 500.0 }`.
    pub features: BTreeMap<String, Budget>,
    /// For users without an entry in `users`. Default none.
    pub default_user: Budget,
    /// For keys without a budget of their own. Default none.
    pub default_key: Budget,
    /// The whole gateway's spend (every request, scope `global`): a last
    /// line against a runaway bill. Default none. Costs one more counter in
    /// each request's reservation and settlement; on Redis every gateway
    /// updates that one key.
    pub global: Budget,
}

/// `[state.rate-limits]`: defaults per tier for keys (a key may carry its
/// own) and for users. Unset = unlimited. Each configured limit costs one
/// GCRA check per request (in memory on sled; inside the one rate script
/// on Redis).
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct RateLimitsConfig {
    pub key: TierLimits,
    pub user: TierLimits,
}

/// Limits for the two tiers: `interactive` (default tier) and `batch`.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct TierLimits {
    pub interactive: RateLimit,
    pub batch: RateLimit,
}

/// Requests and tokens per minute (GCRA, burst = the per-minute figure).
/// Tokens are charged before the call as the prompt estimate plus the
/// completion cap, the way OpenAI counts its own TPM limits.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RateLimit {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rpm: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tpm: Option<u32>,
}

impl RateLimit {
    /// Each field from `self` when set, else from `fallback`.
    pub fn or(self, fallback: RateLimit) -> RateLimit {
        RateLimit {
            rpm: self.rpm.or(fallback.rpm),
            tpm: self.tpm.or(fallback.tpm),
        }
    }
}

/// Service tier of a request: separate rate limits per tier.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Hash, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Tier {
    #[default]
    Interactive,
    Batch,
}

impl Tier {
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Interactive => "interactive",
            Tier::Batch => "batch",
        }
    }

    /// From an `x-sluice-tier` header value.
    pub fn parse(s: &str) -> Option<Tier> {
        match s.trim().to_ascii_lowercase().as_str() {
            "interactive" => Some(Tier::Interactive),
            "batch" => Some(Tier::Batch),
            _ => None,
        }
    }
}

impl TierLimits {
    pub fn get(&self, tier: Tier) -> RateLimit {
        match tier {
            Tier::Interactive => self.interactive,
            Tier::Batch => self.batch,
        }
    }
}

impl StateConfig {
    /// Make a relative `dir` relative to `base` (the config file's directory).
    pub fn resolve_dir(&mut self, base: &Path) {
        if self.dir.is_relative() {
            self.dir = base.join(&self.dir);
        }
    }

    pub fn group_commit(&self) -> Duration {
        Duration::from_millis(self.group_commit_ms)
    }

    pub fn reservation_ttl(&self) -> Duration {
        Duration::from_millis(self.reservation_ttl_ms)
    }

    pub fn redis_timeout(&self) -> Duration {
        Duration::from_millis(self.redis_timeout_ms)
    }

    pub fn webhook_timeout(&self) -> Duration {
        Duration::from_millis(self.alert_webhook_timeout_ms)
    }

    /// The budget of `user`: its own entry, else `default-user`.
    pub fn user_budget(&self, user: &str) -> Budget {
        self.budgets
            .users
            .get(user)
            .copied()
            .unwrap_or(self.budgets.default_user)
    }

    /// Problems as (key path below `state`, message), for the config
    /// validator to place at `file:line:col`.
    pub fn problems(&self) -> Vec<(Vec<String>, String)> {
        let mut out = Vec::new();
        let mut bad = |path: &[&str], msg: String| {
            out.push((path.iter().map(|s| s.to_string()).collect(), msg));
        };
        match (&self.backend, &self.redis_url) {
            (BackendKind::Redis, None) => {
                bad(&["backend"], "backend = \"redis\" needs `redis-url`".into())
            }
            (_, Some(url)) => {
                if let Err(e) = redis::Client::open(url.as_str()) {
                    bad(&["redis-url"], format!("invalid Redis URL: {e}"));
                }
            }
            _ => {}
        }
        if self.redis_timeout_ms == 0 {
            bad(&["redis-timeout-ms"], "must be at least 1".into());
        }
        if !(1..=10_000).contains(&self.group_commit_ms) {
            bad(&["group-commit-ms"], "must be between 1 and 10000".into());
        }
        if self.sled_cache_mb == 0 {
            bad(&["sled-cache-mb"], "must be at least 1".into());
        }
        if self.reservation_ttl_ms < 1000 {
            bad(&["reservation-ttl-ms"], "must be at least 1000".into());
        }
        if self.alert_webhook_timeout_ms == 0 {
            bad(&["alert-webhook-timeout-ms"], "must be at least 1".into());
        }
        if self.ledger_retention_days == Some(0) {
            bad(
                &["ledger-retention-days"],
                "must be at least 1 (leave it unset to keep every record)".into(),
            );
        }
        for (i, t) in self.alert_thresholds.iter().enumerate() {
            if !(t.is_finite() && *t > 0.0 && *t <= 1000.0) {
                out.push((
                    vec!["alert-thresholds".into()],
                    format!("entry {i}: a threshold is a percentage in (0, 1000], got {t}"),
                ));
            }
        }
        if let Some(url) = &self.alert_webhook {
            match reqwest::Url::parse(url) {
                Ok(u) if matches!(u.scheme(), "http" | "https") => {}
                Ok(u) => out.push((
                    vec!["alert-webhook".into()],
                    format!("scheme must be http or https, got `{}`", u.scheme()),
                )),
                Err(e) => out.push((vec!["alert-webhook".into()], format!("invalid URL: {e}"))),
            }
        }
        for (mut path, msg) in self.quality_alerts.problems() {
            path.insert(0, "quality-alerts".into());
            out.push((path, msg));
        }
        let budgets = [
            ("users", &self.budgets.users),
            ("features", &self.budgets.features),
        ];
        for (section, map) in budgets {
            for (name, b) in map {
                budget_problems(b, &["budgets", section, name], &mut out);
            }
        }
        budget_problems(
            &self.budgets.default_user,
            &["budgets", "default-user"],
            &mut out,
        );
        budget_problems(
            &self.budgets.default_key,
            &["budgets", "default-key"],
            &mut out,
        );
        budget_problems(&self.budgets.global, &["budgets", "global"], &mut out);
        for (who, t) in [
            ("key", &self.rate_limits.key),
            ("user", &self.rate_limits.user),
        ] {
            for (tier, l) in [("interactive", &t.interactive), ("batch", &t.batch)] {
                for (k, v) in [("rpm", l.rpm), ("tpm", l.tpm)] {
                    if v == Some(0) {
                        out.push((
                            ["rate-limits", who, tier, k].map(String::from).to_vec(),
                            "must be at least 1 (leave it unset for no limit)".into(),
                        ));
                    }
                }
            }
        }
        out
    }
}

fn budget_problems(b: &Budget, path: &[&str], out: &mut Vec<(Vec<String>, String)>) {
    for (k, v) in [("day-usd", b.day_usd), ("month-usd", b.month_usd)] {
        if v.is_some_and(|v| !(v.is_finite() && v >= 0.0)) {
            let mut p: Vec<String> = path.iter().map(|s| s.to_string()).collect();
            p.push(k.into());
            out.push((p, "must be a non-negative number".into()));
        }
    }
}
