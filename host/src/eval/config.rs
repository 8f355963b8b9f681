//! `[evals]`: defaults of `sluice eval run` and `sluice eval compare` (a
//! flag or the suite overrides each), and how long the gateway keeps eval
//! results. Every key with its default and its cost.

use std::path::PathBuf;

use serde::Deserialize;

/// `[evals]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct EvalsConfig {
    /// Gateway model the `judge` scorer asks when neither the scorer nor
    /// the suite names one. Default unset: a suite using `judge` must name
    /// it. Each judged case costs one more request through the gateway.
    pub judge_model: Option<String>,
    /// Case runs in flight at once. Default 4. More finishes sooner but
    /// spends rate limits and upstream capacity faster.
    pub concurrency: usize,
    /// Retries of one request after a 429, a 5xx, a timeout or a broken
    /// connection (exponential backoff from 500 ms, `Retry-After` obeyed up
    /// to 30 s). Default 2. Each retry is another paid request.
    pub retries: u32,
    /// Timeout of one request through the gateway, in ms. Default 120000.
    pub timeout_ms: u64,
    /// Judge score (0-10) at or above which the judge scorer passes.
    /// Default 7.
    pub pass_score: f64,
    /// Directory a run's reports are written to (`RUN_ID.json`, `.md`,
    /// `.html`), relative to the working directory. Default `eval-results`.
    pub results_dir: PathBuf,
    /// `sluice eval compare` fails when the pass rate drops by more than
    /// this many percentage points. Default 5.
    pub max_pass_rate_drop: f64,
    /// `sluice eval compare` fails when the mean score (0-100) drops by
    /// more than this many points. Default 5.
    pub max_score_drop: f64,
    /// The quality alert fires when a stored run's pass rate (0-100) is
    /// under this, besides when it drops against the subject's previous
    /// run by more than `max-pass-rate-drop` or `max-score-drop`. Default
    /// unset (drops only). Costs nothing per request: checked once per
    /// stored run.
    pub alert_min_pass_rate: Option<f64>,
    /// How long the gateway keeps eval results it is sent
    /// (`POST /admin/evals`), in days. Default 90. One record of a few KB
    /// per run, plus the latest per model and per prompt version (kept
    /// until replaced).
    pub keep_days: u64,
}

impl Default for EvalsConfig {
    fn default() -> Self {
        Self {
            judge_model: None,
            concurrency: 4,
            retries: 2,
            timeout_ms: 120_000,
            pass_score: 7.0,
            results_dir: PathBuf::from("eval-results"),
            max_pass_rate_drop: 5.0,
            max_score_drop: 5.0,
            alert_min_pass_rate: None,
            keep_days: 90,
        }
    }
}

impl EvalsConfig {
    /// Problems as (key below `evals`, message) for the config validator.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if !(1..=256).contains(&self.concurrency) {
            out.push(("concurrency", "must be between 1 and 256".into()));
        }
        if self.retries > 10 {
            out.push(("retries", "must be at most 10".into()));
        }
        if self.timeout_ms == 0 {
            out.push(("timeout-ms", "must be at least 1".into()));
        }
        if !(0.0..=10.0).contains(&self.pass_score) {
            out.push(("pass-score", "must be between 0 and 10".into()));
        }
        for (key, v) in [
            ("max-pass-rate-drop", self.max_pass_rate_drop),
            ("max-score-drop", self.max_score_drop),
        ] {
            if !(0.0..=100.0).contains(&v) {
                out.push((key, "must be between 0 and 100".into()));
            }
        }
        if let Some(v) = self.alert_min_pass_rate
            && !(0.0..=100.0).contains(&v)
        {
            out.push(("alert-min-pass-rate", "must be between 0 and 100".into()));
        }
        if self.keep_days == 0 {
            out.push(("keep-days", "must be at least 1".into()));
        }
        out
    }
}
