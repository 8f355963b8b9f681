//! `sluice eval compare RUN_A RUN_B`: what changed from A (the baseline)
//! to B (the candidate), case by case and category by category, how sure
//! we can be, and whether B passes the gate.
//!
//! Deltas are over the cases both runs have (a suite edited between the
//! runs is noted). Per case the unit is the case's mean over its repeats,
//! so every case weighs the same whatever `--repeat` was.
//!
//! Significance, two ways, both paired by case:
//! - the mean score delta with a 95 % **paired bootstrap** confidence
//!   interval (10 000 resamples of the cases, fixed seed: the same runs
//!   always give the same interval);
//! - pass/fail flips with an exact **sign test** (McNemar's exact test).
//!
//! The gate does not require significance: it fails when the pass rate
//! drops by more than `max-pass-rate-drop` points or the mean score by
//! more than `max-score-drop` points (0-100). Significance is the note that
//! says whether a change is larger than the suite's noise.

use std::collections::BTreeMap;

use serde::Serialize;

use super::run::{CaseResult, CaseStatus, Run, Target};
use super::stats;

/// Gate thresholds, in points (0-100).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Thresholds {
    pub max_pass_rate_drop: f64,
    pub max_score_drop: f64,
}

/// One run as the comparison shows it.
#[derive(Debug, Clone, Serialize)]
pub struct RunInfo {
    pub id: String,
    pub suite: String,
    pub target: Target,
    pub repeat: u32,
    /// Over the common cases, 0-100.
    pub pass_rate: f64,
    pub mean_score: Option<f64>,
    pub errors: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct CaseDelta {
    pub id: String,
    pub category: String,
    pub a_score: Option<f64>,
    pub b_score: Option<f64>,
    /// B - A, points.
    pub delta: Option<f64>,
    pub a_pass_rate: f64,
    pub b_pass_rate: f64,
    pub a_status: CaseStatus,
    pub b_status: CaseStatus,
}

#[derive(Debug, Clone, Serialize)]
pub struct CategoryDelta {
    pub category: String,
    pub cases: usize,
    pub a_pass_rate: f64,
    pub b_pass_rate: f64,
    pub pass_rate_delta: f64,
    pub a_score: Option<f64>,
    pub b_score: Option<f64>,
    pub score_delta: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Gate {
    pub passed: bool,
    pub reasons: Vec<String>,
    pub thresholds: Thresholds,
}

#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub a: RunInfo,
    pub b: RunInfo,
    /// The suite file differs between the runs.
    pub suite_changed: bool,
    /// Points (0-100), B - A.
    pub pass_rate_delta: f64,
    pub mean_score_delta: Option<f64>,
    /// 95 % paired bootstrap interval of `mean_score_delta`.
    pub score_ci: Option<(f64, f64)>,
    pub paired_cases: usize,
    pub flipped_to_pass: usize,
    pub flipped_to_fail: usize,
    pub sign_test_p: Option<f64>,
    pub significance: String,
    pub categories: Vec<CategoryDelta>,
    /// Largest drop first.
    pub cases: Vec<CaseDelta>,
    pub only_in_a: Vec<String>,
    pub only_in_b: Vec<String>,
    pub gate: Gate,
}

fn pts(x: f64) -> f64 {
    x * 100.0
}

/// Compare baseline `a` with candidate `b`.
pub fn compare(a: &Run, b: &Run, t: Thresholds) -> Comparison {
    let b_by: BTreeMap<&str, &CaseResult> = b.cases.iter().map(|c| (c.id.as_str(), c)).collect();
    let a_ids: std::collections::HashSet<&str> = a.cases.iter().map(|c| c.id.as_str()).collect();
    let pairs: Vec<(&CaseResult, &CaseResult)> = a
        .cases
        .iter()
        .filter_map(|ca| b_by.get(ca.id.as_str()).map(|cb| (ca, *cb)))
        .collect();
    let mut cases: Vec<CaseDelta> = pairs
        .iter()
        .map(|(ca, cb)| CaseDelta {
            id: ca.id.clone(),
            category: ca.category.clone(),
            a_score: ca.mean_score.map(pts),
            b_score: cb.mean_score.map(pts),
            delta: ca.mean_score.zip(cb.mean_score).map(|(x, y)| pts(y - x)),
            a_pass_rate: pts(ca.pass_rate),
            b_pass_rate: pts(cb.pass_rate),
            a_status: ca.status,
            b_status: cb.status,
        })
        .collect();
    let info = |r: &Run, mine: Vec<&CaseResult>| {
        let pass: Vec<f64> = mine.iter().map(|c| c.pass_rate).collect();
        let scores: Vec<f64> = mine.iter().filter_map(|c| c.mean_score).collect();
        RunInfo {
            id: r.id.clone(),
            suite: r.suite.clone(),
            target: r.target.clone(),
            repeat: r.repeat,
            pass_rate: pts(stats::mean(&pass).unwrap_or(0.0)),
            mean_score: stats::mean(&scores).map(pts),
            errors: mine
                .iter()
                .flat_map(|c| &c.attempts)
                .filter(|x| x.errored)
                .count(),
        }
    };
    let ai = info(a, pairs.iter().map(|p| p.0).collect());
    let bi = info(b, pairs.iter().map(|p| p.1).collect());
    let deltas: Vec<f64> = cases.iter().filter_map(|c| c.delta).collect();
    let mean_score_delta = stats::mean(&deltas);
    let score_ci = stats::bootstrap_ci(&deltas);
    let passed = |c: &CaseResult| c.status == CaseStatus::Pass;
    let flipped_to_pass = pairs
        .iter()
        .filter(|(x, y)| !passed(x) && passed(y))
        .count();
    let flipped_to_fail = pairs
        .iter()
        .filter(|(x, y)| passed(x) && !passed(y))
        .count();
    let sign_test_p = stats::sign_test(flipped_to_pass as u64, flipped_to_fail as u64);
    let pass_rate_delta = bi.pass_rate - ai.pass_rate;
    let significance = note(
        mean_score_delta,
        score_ci,
        deltas.len(),
        flipped_to_pass,
        flipped_to_fail,
        sign_test_p,
    );

    let mut groups: BTreeMap<&str, Vec<&(&CaseResult, &CaseResult)>> = BTreeMap::new();
    for p in &pairs {
        groups.entry(p.0.category.as_str()).or_default().push(p);
    }
    let categories = groups
        .into_iter()
        .map(|(cat, ps)| {
            let rate = |f: fn(&&(&CaseResult, &CaseResult)) -> f64| {
                pts(stats::mean(&ps.iter().map(f).collect::<Vec<_>>()).unwrap_or(0.0))
            };
            let score = |f: fn(&&(&CaseResult, &CaseResult)) -> Option<f64>| {
                stats::mean(&ps.iter().filter_map(f).collect::<Vec<_>>()).map(pts)
            };
            let (ap, bp) = (rate(|p| p.0.pass_rate), rate(|p| p.1.pass_rate));
            let (asc, bsc) = (score(|p| p.0.mean_score), score(|p| p.1.mean_score));
            CategoryDelta {
                category: cat.to_string(),
                cases: ps.len(),
                a_pass_rate: ap,
                b_pass_rate: bp,
                pass_rate_delta: bp - ap,
                a_score: asc,
                b_score: bsc,
                score_delta: asc.zip(bsc).map(|(x, y)| y - x),
            }
        })
        .collect();
    cases.sort_by(|x, y| {
        x.delta
            .unwrap_or(0.0)
            .total_cmp(&y.delta.unwrap_or(0.0))
            .then_with(|| x.id.cmp(&y.id))
    });

    let mut reasons = Vec::new();
    if pass_rate_delta < -t.max_pass_rate_drop {
        reasons.push(format!(
            "pass rate dropped {:.1} points ({:.1}% -> {:.1}%), more than the allowed {}",
            -pass_rate_delta, ai.pass_rate, bi.pass_rate, t.max_pass_rate_drop
        ));
    }
    if let Some(d) = mean_score_delta
        && d < -t.max_score_drop
    {
        reasons.push(format!(
            "mean score dropped {:.1} points, more than the allowed {}",
            -d, t.max_score_drop
        ));
    }
    if pairs.is_empty() {
        reasons.push("the runs have no case in common".into());
    }
    Comparison {
        suite_changed: a.suite_sha256 != b.suite_sha256,
        pass_rate_delta,
        mean_score_delta,
        score_ci,
        paired_cases: deltas.len(),
        flipped_to_pass,
        flipped_to_fail,
        sign_test_p,
        significance,
        categories,
        cases,
        only_in_a: a
            .cases
            .iter()
            .filter(|c| !b_by.contains_key(c.id.as_str()))
            .map(|c| c.id.clone())
            .collect(),
        only_in_b: b
            .cases
            .iter()
            .filter(|c| !a_ids.contains(c.id.as_str()))
            .map(|c| c.id.clone())
            .collect(),
        gate: Gate {
            passed: reasons.is_empty(),
            reasons,
            thresholds: t,
        },
        a: ai,
        b: bi,
    }
}

fn note(
    delta: Option<f64>,
    ci: Option<(f64, f64)>,
    n: usize,
    to_pass: usize,
    to_fail: usize,
    p: Option<f64>,
) -> String {
    let mut s = match (delta, ci) {
        (Some(d), Some((lo, hi))) => {
            let verdict = if lo > 0.0 {
                "an improvement beyond the suite's noise"
            } else if hi < 0.0 {
                "a drop beyond the suite's noise"
            } else {
                "the interval includes 0: not distinguishable from noise at this suite size"
            };
            format!(
                "Mean score {d:+.1} points (95% paired bootstrap CI {lo:+.1} to {hi:+.1} over {n} cases, {} resamples): {verdict}.",
                stats::BOOTSTRAP_RESAMPLES
            )
        }
        _ => "No case was scored in both runs: no score comparison.".into(),
    };
    match p {
        Some(p) => s.push_str(&format!(
            " Pass/fail flips: {to_pass} to pass, {to_fail} to fail (exact sign test p = {p:.3})."
        )),
        None => s.push_str(" No case flipped between pass and fail."),
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::run::{Attempt, Summary};
    use serde_json::Value;

    fn run(sha: &str, scores: &[(&str, f64)]) -> Run {
        let cases: Vec<CaseResult> = scores
            .iter()
            .map(|(id, s)| {
                let mut c = CaseResult {
                    id: id.to_string(),
                    category: if id.starts_with('x') { "x" } else { "y" }.into(),
                    expected: None,
                    input: Value::Null,
                    attempts: vec![Attempt {
                        output: Some("o".into()),
                        score: Some(*s),
                        passed: *s >= 0.7,
                        ..Attempt::default()
                    }],
                    mean_score: None,
                    stddev: None,
                    pass_rate: 0.0,
                    status: CaseStatus::Error,
                };
                c.finish();
                c
            })
            .collect();
        Run {
            id: format!("run-{sha}"),
            suite: "s".into(),
            suite_sha256: sha.into(),
            started_ms: 0,
            finished_ms: 0,
            target: Target::default(),
            repeat: 1,
            gateway: String::new(),
            summary: Summary::of(&cases, true),
            cases,
        }
    }

    const T: Thresholds = Thresholds {
        max_pass_rate_drop: 5.0,
        max_score_drop: 5.0,
    };

    #[test]
    fn an_equal_run_passes_the_gate() {
        let a = run("1", &[("x1", 0.9), ("x2", 0.8), ("y1", 0.3)]);
        let c = compare(&a, &a.clone(), T);
        assert!(c.gate.passed, "{:?}", c.gate);
        assert_eq!((c.pass_rate_delta, c.mean_score_delta), (0.0, Some(0.0)));
        assert!(c.significance.contains("includes 0"), "{}", c.significance);
        assert!(!c.suite_changed);
    }

    #[test]
    fn a_worse_run_fails_with_reasons_and_sorted_deltas() {
        let a = run(
            "1",
            &[
                ("x1", 0.9),
                ("x2", 0.8),
                ("x3", 0.9),
                ("y1", 0.9),
                ("gone", 1.0),
            ],
        );
        let b = run(
            "2",
            &[
                ("x1", 0.2),
                ("x2", 0.3),
                ("x3", 0.1),
                ("y1", 0.9),
                ("new", 1.0),
            ],
        );
        let c = compare(&a, &b, T);
        assert!(!c.gate.passed);
        assert_eq!(c.gate.reasons.len(), 2, "{:?}", c.gate.reasons);
        assert!(c.suite_changed);
        assert_eq!(c.cases[0].id, "x3");
        assert!((c.cases[0].delta.unwrap() + 80.0).abs() < 1e-9);
        assert_eq!(
            (c.only_in_a.as_slice(), c.only_in_b.as_slice()),
            (&["gone".to_string()][..], &["new".to_string()][..])
        );
        let x = c.categories.iter().find(|d| d.category == "x").unwrap();
        assert!((x.pass_rate_delta + 100.0).abs() < 1e-9);
        assert_eq!((c.flipped_to_pass, c.flipped_to_fail), (0, 3));
        let (lo, hi) = c.score_ci.unwrap();
        assert!(lo < hi && hi <= 0.0, "{lo} {hi}");
    }
}
