//! The quality alert: when a stored eval run is worse than the latest run
//! of the same subject (model or prompt version) on the same suite, or its
//! pass rate is under `[evals] alert-min-pass-rate`, the gateway says so:
//! one `warn` log line, the alert in `POST /admin/evals`'s answer and in
//! `GET /admin/evals` (until a later run of the subject is fine again), and
//! a JSON POST to `[state] alert-webhook` when one is set (the same hook,
//! queue and sender as budget alerts; the body's `kind` is `quality`).
//!
//! A drop is judged with the CI gate's thresholds (`max-pass-rate-drop`,
//! `max-score-drop`), so what fails CI and what pages someone agree.

use serde::{Deserialize, Serialize};

use super::config::EvalsConfig;
use super::store::RunRecord;

/// One subject's quality alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QualityAlert {
    /// Always `quality` (tells it from a budget alert on a shared webhook).
    pub kind: String,
    /// `model:NAME` or `prompt:ID@VERSION`.
    pub subject: String,
    pub suite: String,
    pub run: String,
    /// 0-1.
    pub pass_rate: f64,
    /// 0-100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean_score: Option<f64>,
    /// The run it was compared with, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_run: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_pass_rate: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_mean_score: Option<f64>,
    pub reasons: Vec<String>,
    /// Unix ms of the run that raised it.
    pub at_ms: u64,
}

/// The thresholds an alert is judged by (from `[evals]`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    pub min_pass_rate: Option<f64>,
    pub max_pass_rate_drop: f64,
    pub max_score_drop: f64,
}

impl From<&EvalsConfig> for Thresholds {
    fn from(c: &EvalsConfig) -> Self {
        Thresholds {
            min_pass_rate: c.alert_min_pass_rate,
            max_pass_rate_drop: c.max_pass_rate_drop,
            max_score_drop: c.max_score_drop,
        }
    }
}

/// The alert `rec` raises for `subject`, given the subject's latest run
/// before it (compared only when it ran the same suite), or None.
pub fn check(
    subject: &str,
    rec: &RunRecord,
    previous: Option<&RunRecord>,
    t: Thresholds,
) -> Option<QualityAlert> {
    let mut reasons = Vec::new();
    let rate = rec.summary.pass_rate * 100.0;
    if let Some(min) = t.min_pass_rate
        && rate < min
    {
        reasons.push(format!("pass rate {rate:.1}% is below {min}%"));
    }
    let previous = previous.filter(|p| p.suite == rec.suite && p.id != rec.id);
    if let Some(p) = previous {
        let drop = (p.summary.pass_rate - rec.summary.pass_rate) * 100.0;
        if drop > t.max_pass_rate_drop {
            reasons.push(format!(
                "pass rate dropped {drop:.1} points (from {:.1}% in run {})",
                p.summary.pass_rate * 100.0,
                p.id
            ));
        }
        if let (Some(was), Some(now)) = (p.summary.mean_score, rec.summary.mean_score)
            && was - now > t.max_score_drop
        {
            reasons.push(format!(
                "mean score dropped {:.1} points (from {was:.1} in run {})",
                was - now,
                p.id
            ));
        }
    }
    if reasons.is_empty() {
        return None;
    }
    Some(QualityAlert {
        kind: "quality".into(),
        subject: subject.to_string(),
        suite: rec.suite.clone(),
        run: rec.id.clone(),
        pass_rate: rec.summary.pass_rate,
        mean_score: rec.summary.mean_score,
        previous_run: previous.map(|p| p.id.clone()),
        previous_pass_rate: previous.map(|p| p.summary.pass_rate),
        previous_mean_score: previous.and_then(|p| p.summary.mean_score),
        reasons,
        at_ms: rec.finished_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::run::{Summary, Target};

    fn rec(id: &str, suite: &str, pass_rate: f64, mean: f64) -> RunRecord {
        RunRecord {
            id: id.into(),
            suite: suite.into(),
            suite_sha256: String::new(),
            started_ms: 1,
            finished_ms: 2,
            target: Target::default(),
            repeat: 1,
            subjects: vec!["model:m".into()],
            summary: Summary {
                pass_rate,
                mean_score: Some(mean),
                ..Summary::default()
            },
            cases: Vec::new(),
        }
    }

    const T: Thresholds = Thresholds {
        min_pass_rate: None,
        max_pass_rate_drop: 5.0,
        max_score_drop: 5.0,
    };

    #[test]
    fn a_drop_beyond_the_gate_thresholds_alerts() {
        let before = rec("r1", "s", 0.9, 90.0);
        assert_eq!(
            check("model:m", &rec("r2", "s", 0.88, 88.0), Some(&before), T),
            None
        );
        let a = check("model:m", &rec("r2", "s", 0.7, 80.0), Some(&before), T).unwrap();
        assert_eq!(a.reasons.len(), 2, "{a:?}");
        assert!(a.reasons[0].contains("dropped 20.0 points"), "{a:?}");
        assert_eq!(a.previous_run.as_deref(), Some("r1"));
        // Another suite is not comparable.
        assert_eq!(
            check("model:m", &rec("r2", "other", 0.1, 10.0), Some(&before), T),
            None
        );
    }

    #[test]
    fn a_pass_rate_under_the_floor_alerts_without_history() {
        let t = Thresholds {
            min_pass_rate: Some(80.0),
            ..T
        };
        let a = check("prompt:p@2", &rec("r", "s", 0.5, 50.0), None, t).unwrap();
        assert_eq!(a.reasons, ["pass rate 50.0% is below 80%"]);
        assert_eq!(
            check("prompt:p@2", &rec("r", "s", 0.8, 50.0), None, t),
            None
        );
    }
}
