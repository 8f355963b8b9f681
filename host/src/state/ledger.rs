//! The usage ledger: one append-only record per request that reached an
//! upstream, written together with the spend it adds ([`State::finish`]),
//! and reports over a time range grouped by key, user, feature, model or
//! day.
//!
//! Records are JSON in the store's log (`ledger`): self-describing, so a
//! later field is added with `#[serde(default)]` and old records still read.
//! Reports scan and decode the range (`reports_group_and_total` prints the
//! time for 10k records: ~0.2 s in a debug build): fine for `sluice usage`
//! and the admin endpoint, not for a per-request path; rollups can come
//! later if months of records make reports slow.

use std::collections::BTreeMap;

use std::sync::{Arc, Weak};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::pricing::TokenUsage;
use super::store::Store;
use super::{LEDGER_LOG, State, StateError, now_ms, period};

/// How often `ledger-retention-days` is applied (and once at start).
pub const RETENTION_EVERY: Duration = Duration::from_secs(3600);

/// Records per store read while scanning a range.
const PAGE: usize = 1000;

/// What one plugin of the guardrail chain said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuardrailOutcome {
    pub plugin: String,
    /// `pass`, `transform` or `reject`.
    pub verdict: String,
    /// The plugin's component SHA-256 (hex), naming the exact build.
    pub sha256: String,
}

/// Whether the response cache answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum CacheStatus {
    /// No cache configured or not applicable.
    #[default]
    None,
    Hit,
    Miss,
    /// The model caches, but this request neither looked up nor was
    /// answered from the cache (a directive, not deterministic).
    Bypass,
}

/// How the request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum RecordStatus {
    #[default]
    Ok,
    /// An output guardrail rejected the answer (the tokens were paid for).
    Rejected,
    /// The client went away mid-stream.
    ClientDisconnected,
    /// The upstream failed but reported usage.
    UpstreamError,
}

/// One ledger record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct UsageRecord {
    pub request_id: String,
    /// Unix ms when the request arrived.
    pub time_ms: u64,
    pub key_id: Option<String>,
    pub user: Option<String>,
    pub feature: Option<String>,
    pub tags: Vec<String>,
    pub provider: String,
    /// The model name sent upstream.
    pub upstream_model: String,
    /// The gateway model the client asked for.
    pub gateway_model: String,
    #[serde(flatten)]
    pub usage: TokenUsage,
    pub cost_usd: f64,
    /// Time in the providers layer (streams: until the last chunk).
    pub upstream_ms: f64,
    /// Gateway time outside the upstream (total - upstream).
    pub overhead_ms: f64,
    pub attempts: u32,
    pub cache: CacheStatus,
    /// On a cache hit: what the stored answer cost upstream, not spent again.
    pub saved_usd: f64,
    pub status: RecordStatus,
    pub stream: bool,
    pub guardrails: Vec<GuardrailOutcome>,
    /// Token counts were estimated with the tokenizer (the upstream
    /// reported no usage).
    pub estimated: bool,
    /// The prompt template and version used, once templates exist.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_version: Option<String>,
}

/// The dimension a report groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GroupBy {
    Key,
    User,
    Feature,
    /// The gateway model.
    Model,
    /// The UTC day (`YYYY-MM-DD`).
    Day,
}

impl GroupBy {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "key" => Self::Key,
            "user" => Self::User,
            "feature" => Self::Feature,
            "model" => Self::Model,
            "day" => Self::Day,
            _ => return None,
        })
    }

    fn group_of(self, r: &UsageRecord) -> String {
        let or_none = |v: &Option<String>| v.clone().unwrap_or_else(|| "(none)".into());
        match self {
            Self::Key => or_none(&r.key_id),
            Self::User => or_none(&r.user),
            Self::Feature => or_none(&r.feature),
            Self::Model => r.gateway_model.clone(),
            Self::Day => period::date_label(r.time_ms),
        }
    }
}

/// A report request: records with `since_ms <= time < until_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageQuery {
    pub by: GroupBy,
    pub since_ms: u64,
    pub until_ms: u64,
}

impl UsageQuery {
    /// From the CLI's and admin API's arguments: `by` (default `key`),
    /// `since` (default: the start of this UTC month) and `until` (default:
    /// now), each as [`period::parse_bound`] reads them.
    pub fn parse(
        by: Option<&str>,
        since: Option<&str>,
        until: Option<&str>,
        now_ms: u64,
    ) -> Result<UsageQuery, String> {
        let by = match by {
            None => GroupBy::Key,
            Some(b) => GroupBy::parse(b).ok_or_else(|| {
                format!("unknown grouping `{b}`: expected key, user, feature, model or day")
            })?,
        };
        let bound = |v: Option<&str>, end: bool, default: u64| {
            match v {
            None => Ok(default),
            Some(s) => period::parse_bound(s, end, now_ms).ok_or_else(|| {
                format!("cannot read `{s}` as a time: use YYYY-MM-DD, YYYY-MM, now, 7d / 12h / 30m ago, or unix ms")
            }),
        }
        };
        let month_start = period::parse_date(&period::Periods::at(now_ms).month).unwrap_or(0);
        let since_ms = bound(since, false, month_start)?;
        let until_ms = bound(until, true, now_ms + 1)?;
        if until_ms <= since_ms {
            return Err("`until` must be after `since`".into());
        }
        Ok(UsageQuery {
            by,
            since_ms,
            until_ms,
        })
    }
}

/// Sums over a group of records.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UsageRow {
    pub group: String,
    pub requests: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cached_input_tokens: u64,
    pub reasoning_tokens: u64,
    pub cost_usd: f64,
    /// Requests whose tokens were estimated.
    pub estimated: u64,
    /// Requests answered from the response cache.
    pub cache_hits: u64,
    /// Requests the cache looked up (hits and misses; bypasses excluded).
    pub cache_lookups: u64,
    /// Upstream cost the cache hits did not spend again.
    pub saved_usd: f64,
}

impl UsageRow {
    fn add(&mut self, r: &UsageRecord) {
        self.requests += 1;
        self.prompt_tokens += u64::from(r.usage.prompt_tokens);
        self.completion_tokens += u64::from(r.usage.completion_tokens);
        self.cached_input_tokens += u64::from(r.usage.cached_input_tokens);
        self.reasoning_tokens += u64::from(r.usage.reasoning_tokens);
        self.cost_usd += r.cost_usd;
        self.estimated += u64::from(r.estimated);
        let hit = r.cache == CacheStatus::Hit;
        self.cache_hits += u64::from(hit);
        self.cache_lookups += u64::from(hit || r.cache == CacheStatus::Miss);
        self.saved_usd += r.saved_usd;
    }

    /// Hits per lookup, when the cache looked any up.
    pub fn cache_hit_rate(&self) -> Option<f64> {
        (self.cache_lookups > 0).then(|| self.cache_hits as f64 / self.cache_lookups as f64)
    }
}

/// A report: one row per group (by descending cost), and the total. What
/// `sluice usage --json` prints and `GET /admin/usage` returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageReport {
    pub by: GroupBy,
    pub since_ms: u64,
    pub until_ms: u64,
    pub rows: Vec<UsageRow>,
    pub total: UsageRow,
}

impl UsageReport {
    /// Plain-text table for the CLI.
    pub fn to_table(&self) -> String {
        let mut out = format!(
            "{:<28} {:>9} {:>12} {:>12} {:>10} {:>12} {:>10} {:>12}\n",
            "group",
            "requests",
            "prompt",
            "completion",
            "cached",
            "cost USD",
            "cache hit",
            "saved USD"
        );
        for r in self.rows.iter().chain(std::iter::once(&self.total)) {
            let rate = r
                .cache_hit_rate()
                .map_or_else(|| "-".to_string(), |h| format!("{:.1} %", h * 100.0));
            out.push_str(&format!(
                "{:<28} {:>9} {:>12} {:>12} {:>10} {:>12.6} {:>10} {:>12.6}\n",
                r.group,
                r.requests,
                r.prompt_tokens,
                r.completion_tokens,
                r.cached_input_tokens,
                r.cost_usd,
                rate,
                r.saved_usd
            ));
        }
        out
    }
}

/// Drop ledger records older than `days` before `now_ms`; how many went.
async fn trim(store: &dyn Store, days: u32, now_ms: u64) -> Result<u64, StateError> {
    let before = now_ms.saturating_sub(u64::from(days) * 86_400_000);
    Ok(store.trim_log(LEDGER_LOG, before).await?)
}

/// Apply `[state] ledger-retention-days` now and every
/// [`RETENTION_EVERY`] while the store is open (no-op outside a runtime).
pub(super) fn spawn_retention(store: Weak<dyn Store>, days: u32) {
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        return;
    };
    rt.spawn(async move {
        let mut tick = tokio::time::interval(RETENTION_EVERY);
        loop {
            tick.tick().await;
            let Some(store): Option<Arc<dyn Store>> = store.upgrade() else {
                return;
            };
            match trim(store.as_ref(), days, now_ms()).await {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(records = n, days, "ledger: dropped records past retention")
                }
                Err(e) => tracing::warn!(error = %e, "ledger: applying retention failed"),
            }
        }
    });
}

impl State {
    /// Drop ledger records older than `[state] ledger-retention-days`
    /// before `now_ms` (none when unset); how many went. The gateway does
    /// it hourly on its own.
    pub async fn trim_ledger(&self, now_ms: u64) -> Result<u64, StateError> {
        match self.config.ledger_retention_days {
            Some(days) => trim(self.store.as_ref(), days, now_ms).await,
            None => Ok(0),
        }
    }

    /// Every record in `[since_ms, until_ms)`, oldest first, handed to `f`
    /// one page at a time (memory stays bounded over long ranges).
    pub async fn scan_records(
        &self,
        since_ms: u64,
        until_ms: u64,
        mut f: impl FnMut(UsageRecord),
    ) -> Result<(), StateError> {
        let mut after: Option<Vec<u8>> = None;
        loop {
            let page = self
                .store
                .read_log(LEDGER_LOG, since_ms, until_ms, after.as_deref(), PAGE)
                .await?;
            for bytes in &page.records {
                let r: UsageRecord = serde_json::from_slice(bytes)
                    .map_err(|e| StateError::Corrupt(format!("ledger record: {e}")))?;
                // Redis orders its stream by server time: filter on ours too.
                if (since_ms..until_ms).contains(&r.time_ms) {
                    f(r);
                }
            }
            match page.next {
                Some(n) => after = Some(n),
                None => return Ok(()),
            }
        }
    }

    /// Every record in the range (for exports and tests; reports use
    /// [`State::usage`]).
    pub async fn records(
        &self,
        since_ms: u64,
        until_ms: u64,
    ) -> Result<Vec<UsageRecord>, StateError> {
        let mut out = Vec::new();
        self.scan_records(since_ms, until_ms, |r| out.push(r))
            .await?;
        Ok(out)
    }

    /// Usage grouped per `query.by` over the query's range.
    pub async fn usage(&self, query: &UsageQuery) -> Result<UsageReport, StateError> {
        let mut groups: BTreeMap<String, UsageRow> = BTreeMap::new();
        let mut total = UsageRow {
            group: "total".into(),
            ..UsageRow::default()
        };
        self.scan_records(query.since_ms, query.until_ms, |r| {
            let g = query.by.group_of(&r);
            groups
                .entry(g.clone())
                .or_insert_with(|| UsageRow {
                    group: g,
                    ..UsageRow::default()
                })
                .add(&r);
            total.add(&r);
        })
        .await?;
        let mut rows: Vec<UsageRow> = groups.into_values().collect();
        if query.by == GroupBy::Day {
            rows.sort_by(|a, b| a.group.cmp(&b.group));
        } else {
            rows.sort_by(|a, b| {
                b.cost_usd
                    .total_cmp(&a.cost_usd)
                    .then(a.group.cmp(&b.group))
            });
        }
        Ok(UsageReport {
            by: query.by,
            since_ms: query.since_ms,
            until_ms: query.until_ms,
            rows,
            total,
        })
    }
}
