//! Live quality alerts: a rolling error rate and guardrail reject rate per
//! gateway model over `[state.quality-alerts] window-secs`. When a rate
//! crosses its threshold (with at least `min-requests` in the window) the
//! gateway logs a `warn` line and POSTs one alert to `[state]
//! alert-webhook` (the budget alerts' sender, [`Alerts::post`]); the
//! signal then stays quiet until the rate falls below `threshold ×
//! rearm-ratio` (hysteresis: a rate hovering at the threshold pages once,
//! not on every request). The episode state is per process.
//!
//! Also keeps the latest guardrail rejections for the dashboard: model,
//! plugin, code and the plugin's reason (truncated), never prompt text.
//!
//! Cost per request: one uncontended mutex on the model's window (a few
//! counters in [`SLOTS`] time slots); the model map is built once at start.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::alerts::Alerts;
use super::now_ms;

/// Time slots per window: the window slides in steps of `window / SLOTS`.
pub const SLOTS: usize = 10;
/// Latest guardrail rejections kept for the dashboard.
pub const RECENT: usize = 50;
/// A plugin's reason is cut to this many characters (it is untrusted text
/// and may quote the input it refused).
pub const REASON_CHARS: usize = 160;

/// `[state.quality-alerts]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct QualityAlertsConfig {
    /// Track the rates and fire alerts. Default true (one mutex per request).
    pub enabled: bool,
    /// Length of the rolling window in seconds. Default 300.
    pub window_secs: u64,
    /// Fewer requests than this in the window never fire (a single failure
    /// is not a 100 % error rate). Default 20.
    pub min_requests: u64,
    /// Share of answers with a 5xx status (upstream failures, timeouts,
    /// failed plugins) that fires an alert, in percent. Default 5; 0 turns
    /// this signal off.
    pub error_rate_pct: f64,
    /// Share of requests refused by a guardrail (input, output or mid-stream),
    /// in percent. Default 20; 0 turns this signal off.
    pub reject_rate_pct: f64,
    /// A fired signal re-arms when its rate drops below `threshold ×
    /// rearm-ratio`. Default 0.8; in (0, 1].
    pub rearm_ratio: f64,
}

impl Default for QualityAlertsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            window_secs: 300,
            min_requests: 20,
            error_rate_pct: 5.0,
            reject_rate_pct: 20.0,
            rearm_ratio: 0.8,
        }
    }
}

impl QualityAlertsConfig {
    /// Problems as (key path below `state.quality-alerts`, message).
    pub fn problems(&self) -> Vec<(Vec<String>, String)> {
        let mut out = Vec::new();
        let mut bad = |k: &str, m: &str| out.push((vec![k.to_string()], m.to_string()));
        if self.window_secs == 0 || self.window_secs > 86_400 {
            bad("window-secs", "must be between 1 and 86400");
        }
        if self.min_requests == 0 {
            bad("min-requests", "must be at least 1");
        }
        for (k, v) in [
            ("error-rate-pct", self.error_rate_pct),
            ("reject-rate-pct", self.reject_rate_pct),
        ] {
            if !(v.is_finite() && (0.0..=100.0).contains(&v)) {
                bad(k, "a percentage in [0, 100] (0: off)");
            }
        }
        if !(self.rearm_ratio > 0.0 && self.rearm_ratio <= 1.0) {
            bad("rearm-ratio", "must be in (0, 1]");
        }
        out
    }
}

/// How one answered request counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// A 5xx answer.
    Error,
    /// Refused by a guardrail.
    Rejected,
}

/// The two signals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Signal {
    ErrorRate,
    RejectRate,
}

impl Signal {
    fn as_str(self) -> &'static str {
        match self {
            Signal::ErrorRate => "error-rate",
            Signal::RejectRate => "reject-rate",
        }
    }
}

/// What the webhook receives (`kind` tells it from a budget alert).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QualityRateAlert {
    /// Always `quality`.
    pub kind: String,
    /// `model:NAME`.
    pub subject: String,
    /// `error-rate` or `reject-rate`.
    pub signal: String,
    pub rate_pct: f64,
    pub threshold_pct: f64,
    /// Requests in the window when it fired.
    pub requests: u64,
    pub window_secs: u64,
    /// Unix ms.
    pub at_ms: u64,
}

/// One guardrail rejection, as the dashboard shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rejection {
    /// Unix ms.
    pub at_ms: u64,
    pub request_id: String,
    pub model: String,
    pub plugin: String,
    pub code: String,
    /// The plugin's reason, at most [`REASON_CHARS`] characters.
    pub reason: String,
    /// Refused mid-stream (after the head was sent).
    pub stream: bool,
}

/// A model's rates now, for the admin API.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelQuality {
    pub model: String,
    pub requests: u64,
    pub errors: u64,
    pub rejects: u64,
    pub error_rate_pct: f64,
    pub reject_rate_pct: f64,
    /// Signals in an episode (fired, not yet re-armed).
    pub firing: Vec<Signal>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Slot {
    /// Index of the time slot these counts belong to.
    index: u64,
    requests: u64,
    errors: u64,
    rejects: u64,
}

#[derive(Debug, Default)]
struct Window {
    slots: [Slot; SLOTS],
    /// `[error-rate, reject-rate]` in an episode.
    firing: [bool; 2],
}

impl Window {
    fn slot(&mut self, index: u64) -> &mut Slot {
        let s = &mut self.slots[(index % SLOTS as u64) as usize];
        if s.index != index {
            *s = Slot {
                index,
                ..Slot::default()
            };
        }
        s
    }

    /// `(requests, errors, rejects)` over the slots still in the window.
    fn totals(&self, index: u64) -> (u64, u64, u64) {
        let live = |s: &&Slot| s.index + SLOTS as u64 > index && s.index <= index;
        self.slots.iter().filter(live).fold((0, 0, 0), |t, s| {
            (t.0 + s.requests, t.1 + s.errors, t.2 + s.rejects)
        })
    }
}

/// The tracker; one per gateway.
pub struct Quality {
    cfg: QualityAlertsConfig,
    epoch: Instant,
    slot_len: Duration,
    models: BTreeMap<String, Mutex<Window>>,
    recent: Mutex<VecDeque<Rejection>>,
    alerts: Arc<Alerts>,
}

impl std::fmt::Debug for Quality {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Quality")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

impl Quality {
    pub(crate) fn new<'a>(
        cfg: &QualityAlertsConfig,
        models: impl IntoIterator<Item = &'a String>,
        alerts: Arc<Alerts>,
        epoch: Instant,
    ) -> Self {
        let window = Duration::from_secs(cfg.window_secs.max(1));
        Self {
            cfg: cfg.clone(),
            epoch,
            slot_len: window / SLOTS as u32,
            models: models
                .into_iter()
                .map(|m| (m.clone(), Mutex::default()))
                .collect(),
            recent: Mutex::new(VecDeque::with_capacity(RECENT)),
            alerts,
        }
    }

    fn index(&self, now: Instant) -> u64 {
        let since = now.saturating_duration_since(self.epoch);
        (since.as_nanos() / self.slot_len.as_nanos().max(1)) as u64
    }

    /// Count one answered request of `model` (a configured model; others
    /// are ignored) and fire what crossed.
    pub fn record(&self, model: &str, outcome: Outcome) {
        let _fired = self.record_at(model, outcome, Instant::now());
    }

    /// [`Self::record`] at `now` (tests drive the clock); returns the
    /// alerts it fired.
    pub fn record_at(&self, model: &str, outcome: Outcome, now: Instant) -> Vec<QualityRateAlert> {
        self.count(model, now, |s| {
            s.requests += 1;
            match outcome {
                Outcome::Ok => {}
                Outcome::Error => s.errors += 1,
                Outcome::Rejected => s.rejects += 1,
            }
        })
    }

    /// A stream already counted as answered was refused mid-way.
    pub fn rejected_late(&self, model: &str) {
        let _fired = self.count(model, Instant::now(), |s| s.rejects += 1);
    }

    /// A stream already counted as answered failed mid-way (upstream error,
    /// timeout, failed plugin).
    pub fn failed_late(&self, model: &str) {
        let _fired = self.count(model, Instant::now(), |s| s.errors += 1);
    }

    fn count(
        &self,
        model: &str,
        now: Instant,
        add: impl FnOnce(&mut Slot),
    ) -> Vec<QualityRateAlert> {
        if !self.cfg.enabled {
            return Vec::new();
        }
        let Some(w) = self.models.get(model) else {
            return Vec::new();
        };
        let index = self.index(now);
        let fired = {
            let mut w = w.lock();
            add(w.slot(index));
            let (requests, errors, rejects) = w.totals(index);
            let mut fired = Vec::new();
            for (i, (signal, n, threshold)) in [
                (Signal::ErrorRate, errors, self.cfg.error_rate_pct),
                (Signal::RejectRate, rejects, self.cfg.reject_rate_pct),
            ]
            .into_iter()
            .enumerate()
            {
                if threshold <= 0.0 || requests < self.cfg.min_requests {
                    continue;
                }
                let rate = (n as f64 / requests as f64 * 100.0).min(100.0);
                if !w.firing[i] && rate >= threshold {
                    w.firing[i] = true;
                    fired.push((signal, rate, threshold, requests));
                } else if w.firing[i] && rate < threshold * self.cfg.rearm_ratio {
                    w.firing[i] = false;
                    tracing::info!(
                        model,
                        signal = signal.as_str(),
                        rate_pct = rate,
                        "quality alert resolved"
                    );
                }
            }
            fired
        };
        fired
            .into_iter()
            .map(|(signal, rate, threshold, requests)| {
                let alert = QualityRateAlert {
                    kind: "quality".into(),
                    subject: format!("model:{model}"),
                    signal: signal.as_str().into(),
                    rate_pct: rate,
                    threshold_pct: threshold,
                    requests,
                    window_secs: self.cfg.window_secs,
                    at_ms: now_ms(),
                };
                self.fire(&alert);
                alert
            })
            .collect()
    }

    fn fire(&self, alert: &QualityRateAlert) {
        tracing::warn!(
            subject = alert.subject,
            signal = alert.signal,
            rate_pct = alert.rate_pct,
            threshold_pct = alert.threshold_pct,
            requests = alert.requests,
            "quality alert: a rate crossed its threshold"
        );
        match serde_json::to_value(alert) {
            Ok(body) => self.alerts.post(body),
            Err(e) => tracing::error!(error = %e, "quality alert not serialisable; only logged"),
        }
    }

    /// Remember a guardrail rejection for the dashboard (`reason` is cut to
    /// [`REASON_CHARS`]).
    pub fn remember(&self, mut r: Rejection) {
        if let Some((cut, _)) = r.reason.char_indices().nth(REASON_CHARS) {
            r.reason.truncate(cut);
            r.reason.push('…');
        }
        let mut recent = self.recent.lock();
        if recent.len() == RECENT {
            recent.pop_front();
        }
        recent.push_back(r);
    }

    /// The latest rejections, newest first.
    pub fn recent(&self) -> Vec<Rejection> {
        self.recent.lock().iter().rev().cloned().collect()
    }

    /// Every configured model's rates over the window ending now.
    pub fn snapshot(&self) -> Vec<ModelQuality> {
        let index = self.index(Instant::now());
        self.models
            .iter()
            .map(|(model, w)| {
                let w = w.lock();
                let (requests, errors, rejects) = w.totals(index);
                let pct = |n: u64| {
                    if requests == 0 {
                        0.0
                    } else {
                        (n as f64 / requests as f64 * 100.0).min(100.0)
                    }
                };
                let firing = [Signal::ErrorRate, Signal::RejectRate]
                    .into_iter()
                    .zip(w.firing)
                    .filter_map(|(s, on)| on.then_some(s))
                    .collect();
                ModelQuality {
                    model: model.clone(),
                    requests,
                    errors,
                    rejects,
                    error_rate_pct: pct(errors),
                    reject_rate_pct: pct(rejects),
                    firing,
                }
            })
            .collect()
    }

    pub fn config(&self) -> &QualityAlertsConfig {
        &self.cfg
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quality(cfg: QualityAlertsConfig, at: Instant) -> Quality {
        let alerts = Arc::new(Alerts::start(&[], None, Duration::from_secs(1)));
        Quality::new(&cfg, [&"m".to_string()], alerts, at)
    }

    fn cfg() -> QualityAlertsConfig {
        QualityAlertsConfig {
            window_secs: 100,
            min_requests: 10,
            error_rate_pct: 20.0,
            reject_rate_pct: 50.0,
            rearm_ratio: 0.5,
            ..QualityAlertsConfig::default()
        }
    }

    fn signals(fired: &[QualityRateAlert]) -> Vec<&str> {
        fired.iter().map(|a| a.signal.as_str()).collect()
    }

    #[tokio::test]
    async fn fires_once_per_episode_and_rearms_below_the_hysteresis() {
        let t0 = Instant::now();
        let q = quality(cfg(), t0);
        let mut fired = Vec::new();
        // 8 ok + 2 errors: 20 % at the 10th request (min-requests) fires.
        for i in 0..10 {
            let o = if i < 8 { Outcome::Ok } else { Outcome::Error };
            fired.extend(q.record_at("m", o, t0));
        }
        assert_eq!(signals(&fired), ["error-rate"]);
        assert_eq!(fired[0].requests, 10);
        assert!((fired[0].rate_pct - 20.0).abs() < 1e-9);
        // Still above 10 % (20 % × 0.5): no second alert.
        for _ in 0..5 {
            assert!(q.record_at("m", Outcome::Error, t0).is_empty());
        }
        assert_eq!(q.snapshot()[0].firing, [Signal::ErrorRate]);
        // 7/15 errors; 55 more ok requests: 7/70 = 10 %, not below: still firing.
        for _ in 0..55 {
            assert!(q.record_at("m", Outcome::Ok, t0).is_empty());
        }
        assert_eq!(q.snapshot()[0].firing, [Signal::ErrorRate]);
        // 7/71 < 10 %: re-armed, silently.
        assert!(q.record_at("m", Outcome::Ok, t0).is_empty());
        assert!(q.snapshot()[0].firing.is_empty());
        // A new episode fires again.
        let mut again = Vec::new();
        for _ in 0..20 {
            again.extend(q.record_at("m", Outcome::Error, t0));
        }
        assert_eq!(signals(&again), ["error-rate"]);
    }

    #[tokio::test]
    async fn too_few_requests_never_fire_and_old_slots_leave_the_window() {
        let t0 = Instant::now();
        let q = quality(cfg(), t0);
        for _ in 0..9 {
            assert!(q.record_at("m", Outcome::Rejected, t0).is_empty());
        }
        // 100 s later the nine rejections are out of the window.
        let later = t0 + Duration::from_secs(100);
        for _ in 0..9 {
            assert!(q.record_at("m", Outcome::Ok, later).is_empty());
        }
        let fired = q.record_at("m", Outcome::Rejected, later);
        assert!(fired.is_empty(), "1 of 10 in the window: {fired:?}");
        // Unknown models are not tracked.
        assert!(q.record_at("other", Outcome::Error, t0).is_empty());
    }

    #[tokio::test]
    async fn a_zero_threshold_or_disabled_tracker_never_fires() {
        let t0 = Instant::now();
        let off = quality(
            QualityAlertsConfig {
                error_rate_pct: 0.0,
                ..cfg()
            },
            t0,
        );
        let disabled = quality(
            QualityAlertsConfig {
                enabled: false,
                ..cfg()
            },
            t0,
        );
        for _ in 0..30 {
            assert!(off.record_at("m", Outcome::Error, t0).is_empty());
            assert!(disabled.record_at("m", Outcome::Rejected, t0).is_empty());
        }
    }

    #[tokio::test]
    async fn rejections_are_bounded_and_reasons_cut() {
        let q = quality(cfg(), Instant::now());
        for i in 0..RECENT + 5 {
            q.remember(Rejection {
                at_ms: i as u64,
                request_id: format!("r{i}"),
                model: "m".into(),
                plugin: "p".into(),
                code: "c".into(),
                reason: "é".repeat(REASON_CHARS + 10),
                stream: false,
            });
        }
        let recent = q.recent();
        assert_eq!(recent.len(), RECENT);
        assert_eq!(recent[0].request_id, format!("r{}", RECENT + 4));
        assert_eq!(recent[0].reason.chars().count(), REASON_CHARS + 1);
    }

    #[test]
    fn config_problems_name_the_key() {
        let bad = QualityAlertsConfig {
            window_secs: 0,
            reject_rate_pct: 120.0,
            rearm_ratio: 0.0,
            ..QualityAlertsConfig::default()
        };
        let keys: Vec<String> = bad
            .problems()
            .into_iter()
            .map(|(k, _)| k[0].clone())
            .collect();
        assert_eq!(keys, ["window-secs", "reject-rate-pct", "rearm-ratio"]);
        assert!(QualityAlertsConfig::default().problems().is_empty());
    }
}
