//! Prometheus metrics: what the request path records ([`Metrics`]) and
//! the `/metrics` page ([`scrape`]), in Prometheus text format 0.0.4
//! through `prometheus-client`'s encoder.
//!
//! The request path only touches atomics: series are found in an
//! `arc-swap` snapshot ([`family`]) and histograms are arrays of atomic
//! counters ([`histogram`]). Counters that other parts of the gateway
//! already keep (plugin calls and failures in `plugin/stats.rs`, breaker
//! transitions, reloads, retries) are read at scrape time, never counted
//! twice.
//!
//! Label bounds (every label value set is a series kept forever):
//! `model` is a configured gateway model or `unknown`; `provider`,
//! `upstream_model` come from the config's routes (`none` before any
//! route was tried); `status` is an HTTP status; `plugin` is a loaded
//! plugin's file name; `key` and `feature` are bounded by
//! `[server] metrics-label-limit` distinct values each (then `other`),
//! since features come from a client header and keys may be many;
//! `prompt_id` and `prompt_version` (registry prompts, `none` without one)
//! keep the first `metrics-label-limit` distinct id@version pairs, then
//! both read `other`: every new version would otherwise be a new series.

pub mod family;
pub mod histogram;
pub mod scrape;
pub mod summary;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use family::{Bound, Family};
use histogram::{COARSE, FINE, Histogram};

/// What a request with no route tried reports as provider and upstream model.
pub const NONE: &str = "none";
/// What a model the config does not name is reported as.
pub const UNKNOWN_MODEL: &str = "unknown";

/// Why a request was refused before its upstream call, for
/// `sluice_denials_total{reason}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    RateLimit,
    Budget,
}

/// One finished API request (`/v1/chat/completions`, `/v1/embeddings`).
#[derive(Debug, Clone, Copy)]
pub struct RequestSample<'a> {
    /// Bounded by the caller ([`Metrics::model_label`]).
    pub model: &'a str,
    /// The last route tried, if any.
    pub provider: Option<&'a str>,
    pub upstream_model: Option<&'a str>,
    pub status: u16,
    /// Arrival to response head.
    pub total: Duration,
    /// Time in the providers layer (zero when none was tried).
    pub upstream: Duration,
    /// The registry prompt (id, version) the request was rendered from.
    pub prompt: Option<(&'a str, u32)>,
}

/// Tokens and cost of one ledger record.
#[derive(Debug, Default)]
struct Usage {
    input: AtomicU64,
    output: AtomicU64,
    /// USD in nano-dollars: integer adds stay exact and lock-free.
    cost_nusd: AtomicU64,
}

/// Everything the request path records. Shared by the gateway (`Arc`).
pub struct Metrics {
    enabled: bool,
    /// `sluice_requests_total` is this histogram's count.
    requests: Family<Histogram>,
    upstream: Family<Histogram>,
    overhead: Family<Histogram>,
    ttft: Family<Histogram>,
    usage: Family<Usage>,
    denials: [AtomicU64; 2],
    /// `sluice_cache_lookups_total{model, result}`.
    cache: Family<AtomicU64>,
    keys: Bound,
    features: Bound,
    /// `id@version` pairs of registry prompts.
    prompts: Bound,
    /// Each serving runtime's counters, by index ([`Metrics::serving_runtime`]).
    serving: parking_lot::Mutex<Vec<Arc<ServingRuntime>>>,
}

/// What one serving runtime accepted: `sluice_server_connections_total`
/// and `sluice_server_requests_total{runtime}`. With `[server] runtime =
/// "thread-per-core"` each thread is a runtime; `multi-thread` has one.
/// Only the runtime's own thread writes them (no contended cache line).
#[derive(Debug, Default)]
pub struct ServingRuntime {
    pub connections: AtomicU64,
    pub requests: AtomicU64,
}

impl Metrics {
    /// `enabled = false` records nothing (`[server] metrics = "off"`);
    /// `label_limit`: distinct `key` and `feature` values kept each.
    pub fn new(enabled: bool, label_limit: usize) -> Self {
        Self {
            enabled,
            requests: Family::default(),
            upstream: Family::default(),
            overhead: Family::default(),
            ttft: Family::default(),
            usage: Family::default(),
            denials: Default::default(),
            cache: Family::default(),
            keys: Bound::new(label_limit),
            features: Bound::new(label_limit),
            prompts: Bound::new(label_limit),
            serving: parking_lot::Mutex::default(),
        }
    }

    /// The counters of serving runtime `index` (made on first use; counted
    /// whatever `[server] metrics` says: two atomic adds).
    pub fn serving_runtime(&self, index: usize) -> Arc<ServingRuntime> {
        let mut all = self.serving.lock();
        while all.len() <= index {
            all.push(Arc::default());
        }
        all[index].clone()
    }

    /// Every serving runtime's counters, by index.
    pub fn serving_runtimes(&self) -> Vec<Arc<ServingRuntime>> {
        self.serving.lock().clone()
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// `model` if `known`, else [`UNKNOWN_MODEL`]: a client's model string
    /// never becomes a label by itself.
    pub fn model_label(model: &str, known: bool) -> &str {
        if known { model } else { UNKNOWN_MODEL }
    }

    /// Count a finished request: its latency, its upstream time and the
    /// gateway's overhead (total − upstream).
    pub fn request(&self, r: RequestSample<'_>) {
        if !self.enabled {
            return;
        }
        let provider = r.provider.unwrap_or(NONE);
        let upstream_model = r.upstream_model.unwrap_or(NONE);
        let status = status_label(r.status);
        let version;
        let (prompt_id, prompt_version) = match r.prompt {
            None => (NONE, NONE),
            Some((id, v)) => {
                version = v.to_string();
                if self.prompts.admit(&format!("{id}@{version}")) == family::OTHER {
                    (family::OTHER, family::OTHER)
                } else {
                    (id, version.as_str())
                }
            }
        };
        let labels = [
            r.model,
            provider,
            upstream_model,
            status,
            prompt_id,
            prompt_version,
        ];
        self.requests
            .get(&labels, || Histogram::new(COARSE))
            .value
            .observe(r.total);
        if r.provider.is_some() {
            self.upstream
                .get(&[provider, upstream_model], || Histogram::new(COARSE))
                .value
                .observe(r.upstream);
        }
        self.overhead
            .get(&[r.model], || Histogram::new(FINE))
            .value
            .observe(r.total.saturating_sub(r.upstream));
    }

    /// A stream's first content chunk went to the client `after` arrival.
    pub fn first_token(&self, model: &str, after: Duration) {
        if self.enabled {
            self.ttft
                .get(&[model], || Histogram::new(COARSE))
                .value
                .observe(after);
        }
    }

    /// One ledger record's tokens and cost (`model`: a configured gateway
    /// model; `key`, `feature` are bounded here).
    pub fn usage(
        &self,
        model: &str,
        key: Option<&str>,
        feature: Option<&str>,
        tokens: (u32, u32),
        cost_usd: f64,
    ) {
        if !self.enabled {
            return;
        }
        let key = key.map_or(NONE, |k| self.keys.admit(k));
        let feature = feature.map_or(NONE, |f| self.features.admit(f));
        let s = self.usage.get(&[model, key, feature], Usage::default);
        s.value
            .input
            .fetch_add(u64::from(tokens.0), Ordering::Relaxed);
        s.value
            .output
            .fetch_add(u64::from(tokens.1), Ordering::Relaxed);
        // Negative or NaN costs do not exist; `as` saturates anyway.
        let nusd = (cost_usd.max(0.0) * 1e9).round() as u64;
        s.value.cost_nusd.fetch_add(nusd, Ordering::Relaxed);
    }

    /// One response-cache decision for a configured gateway model:
    /// `result` is `hit_exact`, `hit_semantic`, `miss` or `bypass`.
    pub fn cache(&self, model: &str, result: &'static str) {
        if self.enabled {
            self.cache
                .get(&[model, result], AtomicU64::default)
                .value
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn denied(&self, why: Denial) {
        if self.enabled {
            self.denials[why as usize].fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// HTTP status codes as static labels (no allocation per request).
fn status_label(status: u16) -> &'static str {
    static CODES: std::sync::LazyLock<Vec<String>> =
        std::sync::LazyLock::new(|| (100..600).map(|c: u16| c.to_string()).collect());
    match status {
        100..600 => &CODES[usize::from(status - 100)],
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_disabled_registry_records_nothing() {
        let m = Metrics::new(false, 10);
        m.request(RequestSample {
            model: "m",
            provider: None,
            upstream_model: None,
            status: 200,
            total: Duration::from_millis(1),
            upstream: Duration::ZERO,
            prompt: None,
        });
        m.denied(Denial::Budget);
        assert!(m.requests.all().is_empty());
        assert_eq!(m.denials[1].load(Ordering::Relaxed), 0);
    }

    #[test]
    fn overhead_is_total_minus_upstream() {
        let m = Metrics::new(true, 10);
        m.request(RequestSample {
            model: "m",
            provider: Some("p"),
            upstream_model: Some("u"),
            status: 200,
            total: Duration::from_micros(1040),
            upstream: Duration::from_micros(1000),
            prompt: None,
        });
        let o = m.overhead.all()[0].value.snapshot();
        assert_eq!(o.count, 1);
        assert!((o.sum - 40e-6).abs() < 1e-12);
        assert_eq!(m.upstream.all()[0].labels, vec!["p", "u"]);
    }

    #[test]
    fn prompt_labels_are_bounded_by_id_and_version() {
        let m = Metrics::new(true, 2);
        let sample = |prompt| RequestSample {
            model: "m",
            provider: None,
            upstream_model: None,
            status: 200,
            total: Duration::from_millis(1),
            upstream: Duration::ZERO,
            prompt,
        };
        for p in [
            None,
            Some(("summarize", 1)),
            Some(("summarize", 2)),
            Some(("summarize", 3)),
            Some(("summarize", 1)),
        ] {
            m.request(sample(p));
        }
        let labels: Vec<Vec<String>> = m
            .requests
            .all()
            .iter()
            .map(|s| s.labels[4..].to_vec())
            .collect();
        assert_eq!(
            labels,
            [
                ["none", "none"],
                ["other", "other"],
                ["summarize", "1"],
                ["summarize", "2"]
            ]
        );
        let count = |id: &str, v: &str| {
            m.requests
                .all()
                .iter()
                .find(|s| s.labels[4] == id && s.labels[5] == v)
                .map(|s| s.value.count())
        };
        assert_eq!(count("summarize", "1"), Some(2));
        assert_eq!(count("other", "other"), Some(1));
    }
}
