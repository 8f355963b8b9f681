//! The `/metrics` page: every family, in Prometheus text format 0.0.4.
//!
//! A scrape reads the request path's series ([`super::Metrics`]) and the
//! counters the rest of the gateway keeps (plugins, reloads, providers),
//! through a `prometheus-client` [`Collector`] built for the scrape.

use std::fmt;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeGaugeValue, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::histogram::Snapshot;
use crate::pipeline::Gateway;
use crate::plugin::{CallStats, PluginKind};
use crate::provider::BreakerState;

/// Content type of the page (Prometheus text format 0.0.4).
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The page for `gw`.
pub fn render(gw: &Arc<Gateway>) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Scrape(gw.clone())));
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry);
    out
}

struct Scrape(Arc<Gateway>);

impl fmt::Debug for Scrape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Scrape")
    }
}

type Labels<'a> = Vec<(&'a str, &'a str)>;

fn labels<'a>(names: &[&'a str], values: &'a [String]) -> Labels<'a> {
    names
        .iter()
        .copied()
        .zip(values.iter().map(String::as_str))
        .collect()
}

fn counter(e: &mut MetricEncoder<'_>, l: &Labels<'_>, v: u64) -> fmt::Result {
    e.encode_family(l)?
        .encode_counter::<NoLabelSet, _, u64>(&v, None)
}

fn gauge<V: EncodeGaugeValue>(e: &mut MetricEncoder<'_>, l: &Labels<'_>, v: V) -> fmt::Result {
    e.encode_family(l)?.encode_gauge(&v)
}

fn histogram(e: &mut MetricEncoder<'_>, l: &Labels<'_>, h: &Snapshot) -> fmt::Result {
    e.encode_family(l)?
        .encode_histogram::<NoLabelSet>(h.sum, h.count, &h.buckets, None)
}

const REQUEST: &[&str] = &[
    "model",
    "provider",
    "upstream_model",
    "status",
    "prompt_id",
    "prompt_version",
];

impl Collector for Scrape {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        let gw = &self.0;
        let m = &gw.metrics;
        let requests = m.requests.all();
        let mut e = enc.encode_descriptor(
            "sluice_requests",
            "API requests answered, by gateway model, last route tried and HTTP status.",
            None,
            MetricType::Counter,
        )?;
        for s in &requests {
            counter(&mut e, &labels(REQUEST, &s.labels), s.value.count())?;
        }
        let mut e = enc.encode_descriptor(
            "sluice_request_duration_seconds",
            "Arrival to response head (streams: the head is sent with the first checked chunk).",
            None,
            MetricType::Histogram,
        )?;
        for s in &requests {
            histogram(&mut e, &labels(REQUEST, &s.labels), &s.value.snapshot())?;
        }
        for (name, help, family, names) in [
            (
                "sluice_upstream_duration_seconds",
                "Time in the providers layer (all attempts; streams: to the first chunk).",
                &m.upstream,
                &["provider", "upstream_model"][..],
            ),
            (
                "sluice_overhead_seconds",
                "Gateway overhead per request: total minus upstream time.",
                &m.overhead,
                &["model"][..],
            ),
            (
                "sluice_time_to_first_token_seconds",
                "Streams: arrival to the first content chunk sent to the client.",
                &m.ttft,
                &["model"][..],
            ),
        ] {
            let mut e = enc.encode_descriptor(name, help, None, MetricType::Histogram)?;
            for s in family.all() {
                histogram(&mut e, &labels(names, &s.labels), &s.value.snapshot())?;
            }
        }
        self.usage(&mut enc)?;
        let mut e = enc.encode_descriptor(
            "sluice_denials",
            "Requests refused before the upstream by a rate limit or a budget.",
            None,
            MetricType::Counter,
        )?;
        for (reason, i) in [("rate_limit", 0), ("budget", 1)] {
            let n = m.denials[i].load(std::sync::atomic::Ordering::Relaxed);
            counter(&mut e, &vec![("reason", reason)], n)?;
        }
        let mut e = enc.encode_descriptor(
            "sluice_cache_lookups",
            "Response-cache decisions by gateway model: hit_exact, hit_semantic, miss, bypass.",
            None,
            MetricType::Counter,
        )?;
        for s in &m.cache.all() {
            let n = s.value.load(std::sync::atomic::Ordering::Relaxed);
            counter(&mut e, &labels(&["model", "result"], &s.labels), n)?;
        }
        let (written, dropped, failed) = gw.reqlog.counts();
        for (name, help, n) in [
            (
                "sluice_request_log_written",
                "Request log records written.",
                written,
            ),
            (
                "sluice_request_log_dropped",
                "Request log records dropped at a full queue.",
                dropped,
            ),
            (
                "sluice_request_log_failed",
                "Request log write or flush errors.",
                failed,
            ),
        ] {
            let mut e = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
            e.encode_counter::<NoLabelSet, _, u64>(&n, None)?;
        }
        self.serving(&mut enc)?;
        self.providers(&mut enc)?;
        self.plugins(&mut enc)
    }
}

impl Scrape {
    fn serving(&self, enc: &mut DescriptorEncoder) -> fmt::Result {
        use std::sync::atomic::Ordering::Relaxed;
        let runtimes = self.0.metrics.serving_runtimes();
        let index: Vec<String> = (0..runtimes.len()).map(|i| i.to_string()).collect();
        for (name, help, conns) in [
            (
                "sluice_server_connections",
                "Client connections accepted, by serving runtime (`[server] runtime`).",
                true,
            ),
            (
                "sluice_server_requests",
                "HTTP requests received, by serving runtime (`[server] runtime`).",
                false,
            ),
        ] {
            let mut e = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (r, i) in runtimes.iter().zip(&index) {
                let n = if conns { &r.connections } else { &r.requests };
                counter(&mut e, &vec![("runtime", i.as_str())], n.load(Relaxed))?;
            }
        }
        Ok(())
    }

    fn usage(&self, enc: &mut DescriptorEncoder) -> fmt::Result {
        use std::sync::atomic::Ordering::Relaxed;
        const NAMES: &[&str] = &["model", "key", "feature"];
        let usage = self.0.metrics.usage.all();
        let mut e = enc.encode_descriptor(
            "sluice_tokens",
            "Tokens of ledger records (upstream usage, else estimated), by direction.",
            None,
            MetricType::Counter,
        )?;
        for s in &usage {
            for (dir, n) in [("in", &s.value.input), ("out", &s.value.output)] {
                let mut l = labels(NAMES, &s.labels);
                l.push(("direction", dir));
                counter(&mut e, &l, n.load(Relaxed))?;
            }
        }
        let mut e = enc.encode_descriptor(
            "sluice_cost_usd",
            "Cost of ledger records in USD.",
            None,
            MetricType::Counter,
        )?;
        for s in &usage {
            let usd = s.value.cost_nusd.load(Relaxed) as f64 / 1e9;
            e.encode_family(&labels(NAMES, &s.labels))?
                .encode_counter::<NoLabelSet, _, u64>(&usd, None)?;
        }
        Ok(())
    }

    fn providers(&self, enc: &mut DescriptorEncoder) -> fmt::Result {
        let p = &self.0.providers;
        let walks = p.walk_counts();
        for (name, help, pick) in [
            (
                "sluice_upstream_retries",
                "Attempts on a route after its first.",
                (|w: &(String, u64, u64)| w.1) as fn(&(String, u64, u64)) -> u64,
            ),
            (
                "sluice_upstream_fallbacks",
                "Route walks that left this provider for the next route.",
                |w| w.2,
            ),
        ] {
            let mut e = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
            for w in &walks {
                counter(&mut e, &vec![("provider", w.0.as_str())], pick(w))?;
            }
        }
        let mut e = enc.encode_descriptor(
            "sluice_breaker_state",
            "Circuit breaker state per provider: 1 for the current state.",
            None,
            MetricType::Gauge,
        )?;
        for (provider, state) in p.breaker_states() {
            for s in [
                BreakerState::Closed,
                BreakerState::Open,
                BreakerState::HalfOpen,
            ] {
                gauge(
                    &mut e,
                    &vec![("provider", provider.as_str()), ("state", s.as_str())],
                    u64::from(s == state),
                )?;
            }
        }
        let mut e = enc.encode_descriptor(
            "sluice_breaker_transitions",
            "Circuit breaker transitions into a state, and calls refused while open (`rejected`).",
            None,
            MetricType::Counter,
        )?;
        for (provider, b) in p.breaker_metrics() {
            for (to, n) in [
                ("open", b.opened),
                ("half-open", b.half_opened),
                ("closed", b.closed),
                ("rejected", b.rejected),
            ] {
                counter(
                    &mut e,
                    &vec![("provider", provider.as_str()), ("to", to)],
                    n,
                )?;
            }
        }
        Ok(())
    }

    fn plugins(&self, enc: &mut DescriptorEncoder) -> fmt::Result {
        let rt = &self.0.plugins;
        let (ok, failed) = rt.reload_counts();
        let mut e = enc.encode_descriptor(
            "sluice_plugin_reloads",
            "Plugin versions loaded (`ok`) and plugin loads that failed, initial load included.",
            None,
            MetricType::Counter,
        )?;
        counter(&mut e, &vec![("result", "ok")], ok)?;
        counter(&mut e, &vec![("result", "failed")], failed)?;
        let set = rt.current();
        let plugins: Vec<_> = set.all().map(|p| (p, p.stats())).collect();
        let mut e = enc.encode_descriptor(
            "sluice_plugin",
            "The plugin version serving: its kind and the SHA-256 of its wasm.",
            None,
            MetricType::Info,
        )?;
        for (p, _) in &plugins {
            let kind = match p.kind() {
                PluginKind::Guardrail => "guardrail",
                PluginKind::Router => "router",
                PluginKind::CostPolicy => "cost-policy",
            };
            e.encode_info(&vec![
                ("plugin", p.name()),
                ("kind", kind),
                ("sha256", p.sha256()),
            ])?;
        }
        let mut e = enc.encode_descriptor(
            "sluice_plugin_call_duration_seconds",
            "Wall time of plugin calls (instantiation included), since the version loaded.",
            None,
            MetricType::Histogram,
        )?;
        for (p, _) in &plugins {
            histogram(&mut e, &vec![("plugin", p.name())], &p.call_durations())?;
        }
        type Pick = fn(&CallStats) -> u64;
        let mut e = enc.encode_descriptor(
            "sluice_plugin_verdicts",
            "What plugin calls came to: a guardrail's verdict, or a failure's failure-mode answer.",
            None,
            MetricType::Counter,
        )?;
        let verdicts: [(&str, Pick); 6] = [
            ("pass", |s| s.pass),
            ("transform", |s| s.transform),
            ("reject", |s| s.reject),
            ("flag", |s| s.flag),
            ("fail-open", |s| s.fail_open),
            ("fail-closed", |s| s.fail_closed),
        ];
        for (p, s) in &plugins {
            for (v, pick) in verdicts {
                counter(&mut e, &vec![("plugin", p.name()), ("verdict", v)], pick(s))?;
            }
        }
        let mut e = enc.encode_descriptor(
            "sluice_plugin_failures",
            "Failed plugin calls by kind (trap, deadline, memory limit, fuel, output too large, instantiation, invalid answer).",
            None,
            MetricType::Counter,
        )?;
        let failures: [(&str, Pick); 7] = [
            ("trap", |s| s.traps),
            ("deadline", |s| s.deadlines),
            ("memory", |s| s.memory),
            ("fuel", |s| s.fuel),
            ("output_too_large", |s| s.output_too_large),
            ("instantiate", |s| s.instantiate),
            ("invalid_answer", |s| s.invalid_answer),
        ];
        for (p, s) in &plugins {
            for (kind, pick) in failures {
                counter(&mut e, &vec![("plugin", p.name()), ("kind", kind)], pick(s))?;
            }
        }
        let mut e = enc.encode_descriptor(
            "sluice_plugin_instantiations",
            "Plugin calls that ran on a fresh instance (new or from the pool), since the version loaded; calls on an instance reused under `limits.calls-per-instance` are not counted.",
            None,
            MetricType::Counter,
        )?;
        for (p, s) in &plugins {
            counter(&mut e, &vec![("plugin", p.name())], s.calls - s.reused)?;
        }
        // Guest code outliving its caller: a caller is answered at the
        // deadline, the guest stops at its next epoch check. These say it did.
        let mut e = enc.encode_descriptor(
            "sluice_plugin_guests_running",
            "Calls whose guest code is running now, including calls whose caller was already answered at the deadline.",
            None,
            MetricType::Gauge,
        )?;
        for (p, _) in &plugins {
            gauge(
                &mut e,
                &vec![("plugin", p.name())],
                p.guests_running() as u64,
            )?;
        }
        let mut e = enc.encode_descriptor(
            "sluice_plugin_guest_overrun_max_seconds",
            "The longest guest code ran past its call's deadline, since the version loaded (0 when none did).",
            None,
            MetricType::Gauge,
        )?;
        for (p, _) in &plugins {
            gauge(
                &mut e,
                &vec![("plugin", p.name())],
                p.max_guest_overrun().as_secs_f64(),
            )?;
        }
        Ok(())
    }
}
