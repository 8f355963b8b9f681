//! Budget alerts: when a scope's spend in a period crosses a threshold
//! (default 50 / 80 / 100 % of its budget), one log line and one webhook
//! POST, once per threshold, scope and period across every gateway sharing
//! the store.
//!
//! "Once" is a claim in the store (`put_if_absent` on
//! `alerts/SCOPE|PERIOD|PCT`, kept until the period's counters expire): the
//! gateway whose settle crossed the line first wins it. A process-local set
//! remembers claims already decided, so later settles in the same period
//! cost no store call. Webhook POSTs run on their own task with a timeout;
//! the request that crossed the threshold never waits for them. Quality
//! alerts ([`super::quality`]) go out through the same sender
//! ([`Alerts::post`]), so one URL, queue and timeout serve both.

use std::collections::HashSet;
use std::time::Duration;

use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::{mpsc, watch};

use super::store::{CounterKey, CounterValue, Nanos, Store, to_usd};
use super::{StateError, now_ms};

const NS: &str = "alerts";
/// Webhook POSTs waiting to be sent; beyond this, alerts are logged only.
const QUEUE: usize = 1024;
/// Local memory of decided claims; cleared when it grows past this (the
/// store still deduplicates, at one call per settle per crossed threshold).
const LOCAL_MAX: usize = 10_000;

/// What the webhook receives (JSON).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Alert {
    pub scope: String,
    pub period: String,
    pub threshold_pct: f64,
    pub spent_usd: f64,
    pub budget_usd: f64,
    /// Unix ms.
    pub at_ms: u64,
}

pub(crate) struct Alerts {
    thresholds: Vec<f64>,
    decided: Mutex<HashSet<String>>,
    /// JSON bodies to POST: budget [`Alert`]s and quality alerts.
    webhook: Option<mpsc::Sender<serde_json::Value>>,
    /// POSTs queued or in flight.
    pending: watch::Sender<usize>,
}

impl Alerts {
    /// Start the webhook sender (if a URL is configured) on the current
    /// tokio runtime.
    pub(crate) fn start(thresholds: &[f64], webhook: Option<&str>, timeout: Duration) -> Self {
        let mut thresholds = thresholds.to_vec();
        thresholds.sort_by(f64::total_cmp);
        thresholds.dedup();
        let (pending, _) = watch::channel(0usize);
        let webhook = webhook.map(|url| {
            let (tx, rx) = mpsc::channel(QUEUE);
            tokio::spawn(send_loop(url.to_string(), timeout, rx, pending.clone()));
            tx
        });
        Self {
            thresholds,
            decided: Mutex::new(HashSet::new()),
            webhook,
            pending,
        }
    }

    /// Fire every threshold that `value` has crossed on a budgeted counter
    /// and that no gateway has fired yet this period.
    pub(crate) async fn check(
        &self,
        store: &dyn Store,
        counter: &CounterKey,
        limit: Nanos,
        value: CounterValue,
    ) -> Result<(), StateError> {
        if limit <= 0 {
            return Ok(());
        }
        let share = value.spent as f64 / limit as f64 * 100.0;
        for &t in self.thresholds.iter().filter(|t| share >= **t) {
            let id = format!("{}|{}|{t}", counter.scope, counter.period);
            if self.decided.lock().contains(&id) {
                continue;
            }
            let ttl =
                Duration::from_secs(counter.expires_at.saturating_sub(now_ms() / 1000).max(60));
            let at = now_ms();
            let won = store
                .put_if_absent(NS, &id, at.to_string().as_bytes(), Some(ttl))
                .await?;
            {
                let mut decided = self.decided.lock();
                if decided.len() >= LOCAL_MAX {
                    decided.clear();
                }
                decided.insert(id);
            }
            if won {
                self.fire(Alert {
                    scope: counter.scope.clone(),
                    period: counter.period.clone(),
                    threshold_pct: t,
                    spent_usd: to_usd(value.spent),
                    budget_usd: to_usd(limit),
                    at_ms: at,
                });
            }
        }
        Ok(())
    }

    fn fire(&self, alert: Alert) {
        tracing::warn!(
            scope = alert.scope,
            period = alert.period,
            threshold_pct = alert.threshold_pct,
            spent_usd = alert.spent_usd,
            budget_usd = alert.budget_usd,
            "budget alert: spend crossed a threshold"
        );
        match serde_json::to_value(&alert) {
            Ok(body) => self.post(body),
            Err(e) => tracing::error!(error = %e, "budget alert not serialisable; only logged"),
        }
    }

    /// Queue one JSON body for the webhook (a no-op without one). Never
    /// waits: a full queue drops the POST (the caller has logged the alert).
    pub(crate) fn post(&self, body: serde_json::Value) {
        let Some(tx) = &self.webhook else { return };
        self.pending.send_modify(|n| *n += 1);
        if let Err(e) = tx.try_send(body) {
            self.pending.send_modify(|n| *n -= 1);
            tracing::warn!(error = %e, "alert webhook queue full or closed; alert only logged");
        }
    }

    /// Wait until every queued webhook POST has been sent (or has failed).
    pub(crate) async fn drain(&self) {
        let mut rx = self.pending.subscribe();
        let _ = rx.wait_for(|n| *n == 0).await;
    }
}

async fn send_loop(
    url: String,
    timeout: Duration,
    mut rx: mpsc::Receiver<serde_json::Value>,
    pending: watch::Sender<usize>,
) {
    let client = match reqwest::Client::builder().timeout(timeout).build() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "alert webhook client; alerts are logged only");
            while rx.recv().await.is_some() {
                pending.send_modify(|n| *n -= 1);
            }
            return;
        }
    };
    while let Some(alert) = rx.recv().await {
        match client.post(&url).json(&alert).send().await {
            Ok(r) if r.status().is_success() => {}
            Ok(r) => {
                tracing::warn!(status = %r.status(), url, "alert webhook refused the alert")
            }
            Err(e) => tracing::warn!(error = %e, url, "alert webhook failed"),
        }
        pending.send_modify(|n| *n -= 1);
    }
}
