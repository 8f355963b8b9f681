//! Markdown summaries: of a run (for a PR comment or a CI log) and of a
//! comparison (what `sluice eval compare` prints).

use std::fmt::Write as _;

use super::super::compare::Comparison;
use super::super::run::{CaseResult, Run};
use super::{fmt_cost, fmt_score, status_label};

/// Table cells cannot hold newlines or pipes.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
}

/// A fenced block that the text cannot close early.
fn fenced(s: &str) -> String {
    let fence = if s.contains("```") { "~~~~" } else { "```" };
    format!("{fence}text\n{}\n{fence}\n", s.trim_end())
}

pub fn run(r: &Run) -> String {
    let s = &r.summary;
    let mut out = String::new();
    let _ = writeln!(out, "# Eval `{}`: {}\n", r.suite, r.target);
    let _ = writeln!(
        out,
        "Run `{}` against {} ({} case(s) x {} repeat(s)).\n",
        r.id, r.gateway, s.cases, r.repeat
    );
    let _ = writeln!(
        out,
        "| pass rate | mean score | spread (sd) | errors | latency p50 / p95 | tokens in / out | cost | judge cost |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|");
    let _ = writeln!(
        out,
        "| {:.1}% ({}/{}) | {} | {} | {} | {} / {} ms | {} / {} | {} | {} |\n",
        s.pass_rate * 100.0,
        s.passed,
        s.attempts,
        fmt_score(s.mean_score),
        fmt_score(s.score_stddev),
        s.errors,
        s.latency_p50_ms.map_or("-".into(), |v| format!("{v:.0}")),
        s.latency_p95_ms.map_or("-".into(), |v| format!("{v:.0}")),
        s.prompt_tokens,
        s.completion_tokens,
        fmt_cost(s.cost_usd),
        fmt_cost(s.judge_cost_usd),
    );
    let _ = writeln!(out, "## By category\n");
    let _ = writeln!(out, "| category | cases | pass rate | mean score |");
    let _ = writeln!(out, "|---|---|---|---|");
    for (cat, c) in &s.by_category {
        let _ = writeln!(
            out,
            "| {} | {} | {:.1}% | {} |",
            cell(cat),
            c.cases,
            c.pass_rate * 100.0,
            fmt_score(c.mean_score)
        );
    }
    let failing = r.failing();
    let _ = writeln!(out, "\n## Failing cases ({})\n", failing.len());
    if failing.is_empty() {
        let _ = writeln!(out, "None.");
    }
    for c in failing {
        failing_case(&mut out, c);
    }
    let _ = writeln!(out, "\n## Every case\n");
    let _ = writeln!(
        out,
        "| case | category | status | score (mean ± sd) | passed | latency |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|");
    for c in &r.cases {
        let lat: Vec<f64> = c.attempts.iter().map(|a| a.latency_ms).collect();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} ± {} | {}/{} | {} ms |",
            cell(&c.id),
            cell(&c.category),
            status_label(c.status),
            fmt_score(c.mean_score),
            fmt_score(c.stddev),
            c.attempts.iter().filter(|a| a.passed).count(),
            c.attempts.len(),
            super::super::stats::mean(&lat).map_or("-".into(), |v| format!("{v:.0}")),
        );
    }
    out
}

fn failing_case(out: &mut String, c: &CaseResult) {
    let _ = writeln!(
        out,
        "### `{}` ({}): {}, score {}\n",
        c.id,
        c.category,
        status_label(c.status),
        fmt_score(c.mean_score)
    );
    if let Some(e) = &c.expected {
        let _ = writeln!(out, "Expected:\n\n{}", fenced(e));
    }
    // The first attempt that did not pass.
    let Some(a) = c.attempts.iter().find(|a| !a.passed).or(c.attempts.first()) else {
        return;
    };
    match (&a.output, &a.error) {
        (Some(o), _) => {
            let _ = writeln!(out, "Output:\n\n{}", fenced(o));
        }
        (None, Some(e)) => {
            let _ = writeln!(out, "Error: {}\n", cell(e));
        }
        (None, None) => {}
    }
    for s in &a.scores {
        let mark = if s.error.is_some() {
            "ERROR"
        } else if s.passed {
            "pass"
        } else {
            "FAIL"
        };
        let why = s.error.as_deref().or(s.detail.as_deref()).unwrap_or("");
        let _ = writeln!(out, "- {mark} `{}` {}", cell(&s.label), cell(why));
    }
    let _ = writeln!(out);
}

pub fn comparison(c: &Comparison) -> String {
    let mut out = String::new();
    let verdict = if c.gate.passed { "PASS" } else { "FAIL" };
    let _ = writeln!(out, "# Eval comparison: {verdict}\n");
    let _ = writeln!(out, "| | run | target | pass rate | mean score | errors |");
    let _ = writeln!(out, "|---|---|---|---|---|---|");
    for (side, r) in [("A (baseline)", &c.a), ("B (candidate)", &c.b)] {
        let _ = writeln!(
            out,
            "| {side} | `{}` | {} | {:.1}% | {} | {} |",
            r.id,
            r.target,
            r.pass_rate,
            r.mean_score.map_or("-".into(), |s| format!("{s:.1}")),
            r.errors
        );
    }
    let _ = writeln!(
        out,
        "\nPass rate {:+.1} points, mean score {}.\n",
        c.pass_rate_delta,
        c.mean_score_delta
            .map_or("not comparable".into(), |d| format!("{d:+.1} points"))
    );
    let _ = writeln!(out, "{}\n", c.significance);
    if c.suite_changed {
        let _ = writeln!(
            out,
            "Note: the suite file changed between the runs; only common cases are compared.\n"
        );
    }
    for r in &c.gate.reasons {
        let _ = writeln!(out, "- gate: {r}");
    }
    if !c.gate.reasons.is_empty() {
        let _ = writeln!(out);
    }
    let _ = writeln!(out, "## By category\n");
    let _ = writeln!(
        out,
        "| category | cases | pass rate A -> B | mean score A -> B |"
    );
    let _ = writeln!(out, "|---|---|---|---|");
    for d in &c.categories {
        let _ = writeln!(
            out,
            "| {} | {} | {:.1}% -> {:.1}% ({:+.1}) | {} -> {} ({}) |",
            cell(&d.category),
            d.cases,
            d.a_pass_rate,
            d.b_pass_rate,
            d.pass_rate_delta,
            d.a_score.map_or("-".into(), |s| format!("{s:.1}")),
            d.b_score.map_or("-".into(), |s| format!("{s:.1}")),
            d.score_delta.map_or("-".into(), |s| format!("{s:+.1}")),
        );
    }
    let _ = writeln!(out, "\n## By case (largest drop first)\n");
    let _ = writeln!(
        out,
        "| case | category | score A -> B | delta | status A -> B |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|");
    for d in &c.cases {
        let _ = writeln!(
            out,
            "| {} | {} | {} -> {} | {} | {} -> {} |",
            cell(&d.id),
            cell(&d.category),
            d.a_score.map_or("-".into(), |s| format!("{s:.1}")),
            d.b_score.map_or("-".into(), |s| format!("{s:.1}")),
            d.delta.map_or("-".into(), |s| format!("{s:+.1}")),
            status_label(d.a_status),
            status_label(d.b_status),
        );
    }
    for (what, ids) in [("only in A", &c.only_in_a), ("only in B", &c.only_in_b)] {
        if !ids.is_empty() {
            let _ = writeln!(out, "\nCases {what}: {}", ids.join(", "));
        }
    }
    out
}
