//! The metrics as the dashboard reads them (`GET /admin/overview`): per
//! model request and 5xx counts and p50 / p99 gateway overhead, spend by
//! model and by feature. Everything counts since the gateway started (the
//! dashboard turns counts into rates between two polls); `/admin/usage`
//! has the ledger's durable totals.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering::Relaxed;

use serde::Serialize;

use super::Metrics;
use super::histogram::Snapshot;

/// One gateway model's traffic.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelTraffic {
    pub model: String,
    pub requests: u64,
    /// Answers with a 5xx status.
    pub errors: u64,
    /// Gateway overhead quantiles in ms (none before the first request).
    pub overhead_p50_ms: Option<f64>,
    pub overhead_p99_ms: Option<f64>,
}

/// Spend of one model or feature.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Spend {
    pub name: String,
    pub cost_usd: f64,
    pub tokens_in: u64,
    pub tokens_out: u64,
}

/// What the dashboard shows of the metrics.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// False when `[server] metrics = "off"`: everything below is empty.
    pub enabled: bool,
    pub requests: u64,
    pub overhead_p50_ms: Option<f64>,
    pub overhead_p99_ms: Option<f64>,
    pub models: Vec<ModelTraffic>,
    pub spend_by_model: Vec<Spend>,
    pub spend_by_feature: Vec<Spend>,
}

/// The `q` quantile (0-1) of a histogram, interpolated linearly inside the
/// bucket that holds it (as Prometheus' `histogram_quantile` does); `count`
/// includes the `+Inf` bucket, whose quantiles read as the last finite
/// bound. None without observations.
pub fn quantile(buckets: &[(f64, u64)], count: u64, q: f64) -> Option<f64> {
    if count == 0 {
        return None;
    }
    let rank = q.clamp(0.0, 1.0) * count as f64;
    let mut below = 0u64;
    let mut lower = 0.0;
    for &(upper, n) in buckets {
        if n > 0 && (below + n) as f64 >= rank {
            let into = (rank - below as f64) / n as f64;
            return Some(lower + (upper - lower) * into);
        }
        below += n;
        lower = upper;
    }
    buckets.last().map(|b| b.0)
}

fn merge(into: &mut Option<Snapshot>, s: &Snapshot) {
    match into {
        None => *into = Some(s.clone()),
        Some(m) => {
            m.count += s.count;
            m.sum += s.sum;
            for (a, b) in m.buckets.iter_mut().zip(&s.buckets) {
                a.1 += b.1;
            }
        }
    }
}

fn ms(s: Option<&Snapshot>, q: f64) -> Option<f64> {
    s.and_then(|s| quantile(&s.buckets, s.count, q))
        .map(|v| v * 1e3)
}

impl Metrics {
    /// See [`Summary`].
    pub fn summary(&self) -> Summary {
        let mut models: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        for s in self.requests.all() {
            let e = models.entry(s.labels[0].clone()).or_default();
            let n = s.value.count();
            e.0 += n;
            if s.labels[3].starts_with('5') {
                e.1 += n;
            }
        }
        let mut overall = None;
        let mut overhead = BTreeMap::new();
        for s in self.overhead.all() {
            let snap = s.value.snapshot();
            merge(&mut overall, &snap);
            overhead.insert(s.labels[0].clone(), snap);
        }
        let mut by_model: BTreeMap<String, Spend> = BTreeMap::new();
        let mut by_feature: BTreeMap<String, Spend> = BTreeMap::new();
        for s in self.usage.all() {
            let cost = s.value.cost_nusd.load(Relaxed) as f64 / 1e9;
            let (i, o) = (s.value.input.load(Relaxed), s.value.output.load(Relaxed));
            for (map, name) in [
                (&mut by_model, &s.labels[0]),
                (&mut by_feature, &s.labels[2]),
            ] {
                let e = map.entry(name.clone()).or_insert_with(|| Spend {
                    name: name.clone(),
                    ..Spend::default()
                });
                e.cost_usd += cost;
                e.tokens_in += i;
                e.tokens_out += o;
            }
        }
        Summary {
            enabled: self.enabled,
            requests: models.values().map(|m| m.0).sum(),
            overhead_p50_ms: ms(overall.as_ref(), 0.5),
            overhead_p99_ms: ms(overall.as_ref(), 0.99),
            models: models
                .into_iter()
                .map(|(model, (requests, errors))| {
                    let o = overhead.get(&model);
                    ModelTraffic {
                        overhead_p50_ms: ms(o, 0.5),
                        overhead_p99_ms: ms(o, 0.99),
                        model,
                        requests,
                        errors,
                    }
                })
                .collect(),
            spend_by_model: by_model.into_values().collect(),
            spend_by_feature: by_feature.into_values().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::RequestSample;
    use super::*;

    #[test]
    fn quantiles_interpolate_inside_the_bucket() {
        // 10 in (0, 1], 10 in (1, 2], none in (2, 4], 0 in +Inf.
        let b = [(1.0, 10), (2.0, 10), (4.0, 0)];
        assert_eq!(quantile(&b, 20, 0.5), Some(1.0));
        assert_eq!(quantile(&b, 20, 0.25), Some(0.5));
        assert_eq!(quantile(&b, 20, 0.75), Some(1.5));
        assert_eq!(quantile(&b, 20, 1.0), Some(2.0));
        // Two more in +Inf: p99 reads as the last finite bound.
        assert_eq!(quantile(&b, 22, 0.99), Some(4.0));
        assert_eq!(quantile(&b, 0, 0.5), None);
    }

    #[test]
    fn the_summary_adds_models_statuses_and_spend() {
        let m = Metrics::new(true, 10);
        for (status, upstream) in [(200, 900), (200, 900), (502, 0)] {
            m.request(RequestSample {
                model: "chat",
                provider: Some("p"),
                upstream_model: Some("u"),
                status,
                total: Duration::from_micros(1000),
                upstream: Duration::from_micros(upstream),
                prompt: None,
            });
        }
        m.usage("chat", Some("k"), Some("search"), (10, 5), 0.25);
        m.usage("chat", Some("k"), None, (1, 1), 0.5);
        let s = m.summary();
        assert_eq!(s.requests, 3);
        assert_eq!((s.models[0].requests, s.models[0].errors), (3, 1));
        // Two overheads of 100 µs (in (75, 100] µs), one of 1 ms.
        let p50 = s.overhead_p50_ms.unwrap();
        assert!(p50 > 0.075 && p50 <= 0.1, "{p50}");
        let p99 = s.overhead_p99_ms.unwrap();
        assert!(p99 > 0.75 && p99 <= 1.0, "{p99}");
        assert_eq!(s.spend_by_model.len(), 1);
        assert!((s.spend_by_model[0].cost_usd - 0.75).abs() < 1e-9);
        let features: Vec<&str> = s.spend_by_feature.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(features, ["none", "search"]);
    }
}
