//! What a run recorded: per case and attempt the output, every scorer's
//! result, latency, tokens and cost; and the aggregates the reports and
//! `eval compare` read. This is the JSON report's schema (`RUN_ID.json`);
//! fields are added with `#[serde(default)]` so older runs still load.
//!
//! Scores are 0..=1 everywhere (a judge's 7/10 is 0.7); reports print
//! them as 0-100. An attempt's score is the mean of its scorers' scores;
//! it passes when every scorer passes. An attempt whose request failed, or
//! one of whose scorers could not score (a judge that refused, an
//! unreachable judge), is an *error*: it counts against the pass rate and
//! is left out of the mean score, so a flaky judge shows as errors rather
//! than as a quality change.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::stats;
use crate::prompt::PromptRef;

/// One evaluation run of a suite.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Run {
    pub id: String,
    pub suite: String,
    /// SHA-256 of the suite file: runs of different suite texts compare
    /// with a warning.
    pub suite_sha256: String,
    pub started_ms: u64,
    pub finished_ms: u64,
    pub target: Target,
    pub repeat: u32,
    pub gateway: String,
    pub cases: Vec<CaseResult>,
    pub summary: Summary,
}

/// What was evaluated: the flags (or suite defaults) of the run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<PromptRef>,
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.model, &self.prompt) {
            (Some(m), Some(p)) => write!(f, "prompt {p} on model {m}"),
            (Some(m), None) => write!(f, "model {m}"),
            (None, Some(p)) => write!(f, "prompt {p}"),
            (None, None) => write!(f, "suite defaults"),
        }
    }
}

/// One case over all its repeats.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CaseResult {
    pub id: String,
    pub category: String,
    /// What the case expects (shown beside failing outputs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    /// The case's input as written (messages, or prompt id + variables).
    pub input: Value,
    pub attempts: Vec<Attempt>,
    /// Mean and sample standard deviation of the scored attempts.
    #[serde(default)]
    pub mean_score: Option<f64>,
    #[serde(default)]
    pub stddev: Option<f64>,
    /// Share of attempts that passed.
    pub pass_rate: f64,
    pub status: CaseStatus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CaseStatus {
    /// Every attempt passed.
    Pass,
    /// Some attempts passed, some did not (only with `--repeat`).
    Flaky,
    /// No attempt passed, and at least one was scored.
    Fail,
    /// No attempt could be scored.
    Error,
}

/// One request for one case, and its scores.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Attempt {
    #[serde(default)]
    pub output: Option<String>,
    /// Why there is no output (the gateway's error, or a transport failure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The gateway's error code (`guardrail_rejected`, ...), when it answered one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    pub scores: Vec<ScoreResult>,
    #[serde(default)]
    pub score: Option<f64>,
    pub passed: bool,
    /// True when the request failed or a scorer could not score.
    #[serde(default)]
    pub errored: bool,
    /// The final request's time, retries not included.
    pub latency_ms: f64,
    #[serde(default)]
    pub retries: u32,
    #[serde(default)]
    pub prompt_tokens: Option<u32>,
    #[serde(default)]
    pub completion_tokens: Option<u32>,
    /// From the gateway's `x-sluice-cost-usd`, else priced from the
    /// config's routes (`--config`), else unknown.
    #[serde(default)]
    pub cost_usd: Option<f64>,
    /// `x-sluice-provider` / `x-sluice-model` / `x-sluice-prompt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
}

/// One scorer's verdict on one output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoreResult {
    /// `exact`, `contains`, `judge`, ...
    pub scorer: String,
    /// What it checked, for people: `contains "Paris"`.
    pub label: String,
    #[serde(default)]
    pub score: Option<f64>,
    pub passed: bool,
    /// Why (a judge's reason, the schema violation, the number found).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The scorer could not score (a judge refusal, a plugin failure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What scoring cost through the gateway (the judge's request).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
}

impl ScoreResult {
    pub fn pass_fail(scorer: &str, label: String, passed: bool, detail: Option<String>) -> Self {
        Self {
            scorer: scorer.into(),
            label,
            score: Some(if passed { 1.0 } else { 0.0 }),
            passed,
            detail,
            error: None,
            cost_usd: None,
        }
    }

    pub fn error(scorer: &str, label: String, error: String) -> Self {
        Self {
            scorer: scorer.into(),
            label,
            score: None,
            passed: false,
            detail: None,
            error: Some(error),
            cost_usd: None,
        }
    }
}

/// Aggregates of a run (or of one category).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub cases: usize,
    pub attempts: usize,
    pub passed: usize,
    pub errors: usize,
    /// Passed attempts / attempts.
    pub pass_rate: f64,
    /// Mean of the scored attempts' scores.
    #[serde(default)]
    pub mean_score: Option<f64>,
    #[serde(default)]
    pub score_stddev: Option<f64>,
    /// Scored attempts per tenth of the score range.
    #[serde(default)]
    pub histogram: [u32; 10],
    #[serde(default)]
    pub latency_p50_ms: Option<f64>,
    #[serde(default)]
    pub latency_p95_ms: Option<f64>,
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
    /// Sum over attempts whose cost is known (the answers evaluated).
    #[serde(default)]
    pub cost_usd: Option<f64>,
    /// What judging them cost, apart: comparing two models' `cost_usd`
    /// must not count the judge.
    #[serde(default)]
    pub judge_cost_usd: Option<f64>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub by_category: BTreeMap<String, Summary>,
}

impl CaseResult {
    /// Fill in the case's aggregates from its attempts.
    pub fn finish(&mut self) {
        let scores: Vec<f64> = self.attempts.iter().filter_map(|a| a.score).collect();
        self.mean_score = stats::mean(&scores);
        self.stddev = stats::stddev(&scores);
        let n = self.attempts.len().max(1);
        let passed = self.attempts.iter().filter(|a| a.passed).count();
        self.pass_rate = passed as f64 / n as f64;
        self.status = if passed == self.attempts.len() && passed > 0 {
            CaseStatus::Pass
        } else if passed > 0 {
            CaseStatus::Flaky
        } else if self.attempts.iter().all(|a| a.errored) {
            CaseStatus::Error
        } else {
            CaseStatus::Fail
        };
    }
}

impl Summary {
    /// Aggregate `cases` (and, when `by_category`, each category on its own).
    pub fn of<'a>(
        cases: impl IntoIterator<Item = &'a CaseResult> + Clone,
        by_category: bool,
    ) -> Summary {
        let attempts: Vec<&Attempt> = cases
            .clone()
            .into_iter()
            .flat_map(|c| &c.attempts)
            .collect();
        let scores: Vec<f64> = attempts.iter().filter_map(|a| a.score).collect();
        let latencies: Vec<f64> = attempts
            .iter()
            .filter(|a| a.output.is_some())
            .map(|a| a.latency_ms)
            .collect();
        let costs: Vec<f64> = attempts.iter().filter_map(|a| a.cost_usd).collect();
        let judge_costs: Vec<f64> = attempts
            .iter()
            .flat_map(|a| &a.scores)
            .filter_map(|s| s.cost_usd)
            .collect();
        let passed = attempts.iter().filter(|a| a.passed).count();
        let mut by = BTreeMap::new();
        if by_category {
            let mut groups: BTreeMap<&str, Vec<&CaseResult>> = BTreeMap::new();
            for c in cases.clone() {
                groups.entry(c.category.as_str()).or_default().push(c);
            }
            for (cat, cs) in groups {
                by.insert(cat.to_string(), Summary::of(cs.iter().copied(), false));
            }
        }
        Summary {
            cases: cases.into_iter().count(),
            attempts: attempts.len(),
            passed,
            errors: attempts.iter().filter(|a| a.errored).count(),
            pass_rate: if attempts.is_empty() {
                0.0
            } else {
                passed as f64 / attempts.len() as f64
            },
            mean_score: stats::mean(&scores),
            score_stddev: stats::stddev(&scores),
            histogram: stats::histogram(&scores),
            latency_p50_ms: stats::percentile(&latencies, 50.0),
            latency_p95_ms: stats::percentile(&latencies, 95.0),
            prompt_tokens: attempts
                .iter()
                .filter_map(|a| a.prompt_tokens)
                .map(u64::from)
                .sum(),
            completion_tokens: attempts
                .iter()
                .filter_map(|a| a.completion_tokens)
                .map(u64::from)
                .sum(),
            cost_usd: (!costs.is_empty()).then(|| costs.iter().sum()),
            judge_cost_usd: (!judge_costs.is_empty()).then(|| judge_costs.iter().sum()),
            by_category: by,
        }
    }
}

impl Run {
    /// Read a run's JSON report.
    pub fn load(path: &std::path::Path) -> anyhow::Result<Run> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
        serde_json::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{} is not an eval run report: {e}", path.display()))
    }

    /// The failing cases (fail, flaky or error), worst first.
    pub fn failing(&self) -> Vec<&CaseResult> {
        let mut v: Vec<&CaseResult> = self
            .cases
            .iter()
            .filter(|c| c.status != CaseStatus::Pass)
            .collect();
        v.sort_by(|a, b| {
            a.mean_score
                .unwrap_or(-1.0)
                .total_cmp(&b.mean_score.unwrap_or(-1.0))
                .then_with(|| a.id.cmp(&b.id))
        });
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(score: Option<f64>, passed: bool) -> Attempt {
        Attempt {
            output: score.map(|_| "x".into()),
            score,
            passed,
            errored: score.is_none(),
            latency_ms: 10.0,
            cost_usd: Some(0.001),
            ..Attempt::default()
        }
    }

    fn case(id: &str, cat: &str, attempts: Vec<Attempt>) -> CaseResult {
        let mut c = CaseResult {
            id: id.into(),
            category: cat.into(),
            expected: None,
            input: Value::Null,
            attempts,
            mean_score: None,
            stddev: None,
            pass_rate: 0.0,
            status: CaseStatus::Error,
        };
        c.finish();
        c
    }

    #[test]
    fn statuses_and_aggregates() {
        let flaky = case(
            "a",
            "x",
            vec![attempt(Some(0.8), true), attempt(Some(0.6), false)],
        );
        assert_eq!(flaky.status, CaseStatus::Flaky);
        assert!((flaky.mean_score.unwrap() - 0.7).abs() < 1e-12);
        let errored = case("b", "y", vec![attempt(None, false)]);
        assert_eq!(errored.status, CaseStatus::Error);
        let failed = case(
            "c",
            "y",
            vec![attempt(Some(0.0), false), attempt(None, false)],
        );
        assert_eq!(failed.status, CaseStatus::Fail);
        let cases = [flaky, errored, failed];
        let s = Summary::of(&cases, true);
        assert_eq!((s.cases, s.attempts, s.passed, s.errors), (3, 5, 1, 2));
        assert!((s.pass_rate - 0.2).abs() < 1e-12);
        assert_eq!(s.by_category["y"].cases, 2);
        assert_eq!(s.histogram.iter().sum::<u32>(), 3);
        assert!((s.cost_usd.unwrap() - 0.005).abs() < 1e-12);
    }
}
