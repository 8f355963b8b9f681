//! The HTML report: one self-contained file. Tables and the failing cases
//! (output beside expectation and every scorer's verdict) are rendered
//! here, so they read without JavaScript; `chart.js` (inlined) draws the
//! score distribution and per-category charts as SVG from the run data
//! embedded as JSON, and filters the failing cases by category. It marks
//! `<body data-rendered="true">` when done (the browser test waits for it).

use std::fmt::Write as _;

use serde_json::json;

use super::super::run::{CaseResult, Run};
use super::{fmt_cost, fmt_score, status_label, utc};

const STYLE: &str = include_str!("style.css");
const SCRIPT: &str = include_str!("chart.js");

/// Text for HTML content and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// JSON safe inside `<script>`: `<`, `>` and `&` only occur inside JSON
/// strings, where their `\u` escapes mean the same.
fn script_json(v: &serde_json::Value) -> String {
    v.to_string()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

fn meter(rate: f64) -> String {
    format!(
        r#"<span class="meter"><span style="width:{:.1}%"></span></span>{:.1}%"#,
        rate * 100.0,
        rate * 100.0
    )
}

pub fn run(r: &Run) -> String {
    let s = &r.summary;
    let data = json!({
        "histogram": s.histogram,
        "categories": s.by_category.iter().map(|(name, c)| json!({
            "name": name, "mean": c.mean_score, "pass_rate": c.pass_rate,
        })).collect::<Vec<_>>(),
    });
    let mut h = String::new();
    let _ = write!(
        h,
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Eval {suite}: {target}</title><style>{STYLE}</style></head>
<body>
<header><h1>Eval <code>{suite}</code>: {target}</h1>
<p class="meta">Run <code>{id}</code>, started {started}, {cases} case(s) x {repeat} repeat(s), through {gateway}</p></header>
<section class="cards">
<div class="card"><div class="label">pass rate</div><div class="value" id="pass-rate">{rate:.1}%</div><div class="label">{passed} of {attempts} attempts</div></div>
<div class="card"><div class="label">mean score (0-100)</div><div class="value">{mean}</div><div class="label">sd {sd}</div></div>
<div class="card"><div class="label">errors</div><div class="value">{errors}</div><div class="label">not scored</div></div>
<div class="card"><div class="label">latency p50 / p95</div><div class="value">{p50} / {p95}</div><div class="label">ms</div></div>
<div class="card"><div class="label">tokens in / out</div><div class="value">{tin} / {tout}</div></div>
<div class="card"><div class="label">cost</div><div class="value">{cost}</div><div class="label">judge {judge_cost}</div></div>
</section>
<h2>Score distribution</h2>
<svg id="score-chart" viewBox="0 0 640 240" role="img" aria-label="Attempts per score range"></svg>
<h2>By category</h2>
<svg id="category-chart" viewBox="0 0 640 40" role="img" aria-label="Mean score per category"></svg>
<table><thead><tr><th>category</th><th>cases</th><th>pass rate</th><th>mean score</th><th>sd</th></tr></thead><tbody>
"#,
        suite = esc(&r.suite),
        target = esc(&r.target.to_string()),
        id = esc(&r.id),
        started = utc(r.started_ms),
        cases = s.cases,
        repeat = r.repeat,
        gateway = esc(&r.gateway),
        rate = s.pass_rate * 100.0,
        passed = s.passed,
        attempts = s.attempts,
        mean = fmt_score(s.mean_score),
        sd = fmt_score(s.score_stddev),
        errors = s.errors,
        p50 = s.latency_p50_ms.map_or("-".into(), |v| format!("{v:.0}")),
        p95 = s.latency_p95_ms.map_or("-".into(), |v| format!("{v:.0}")),
        tin = s.prompt_tokens,
        tout = s.completion_tokens,
        cost = esc(&fmt_cost(s.cost_usd)),
        judge_cost = esc(&fmt_cost(s.judge_cost_usd)),
    );
    for (cat, c) in &s.by_category {
        let _ = writeln!(
            h,
            r#"<tr class="category-row"><td>{}</td><td class="num">{}</td><td>{}</td><td class="num">{}</td><td class="num">{}</td></tr>"#,
            esc(cat),
            c.cases,
            meter(c.pass_rate),
            fmt_score(c.mean_score),
            fmt_score(c.score_stddev)
        );
    }
    h.push_str("</tbody></table>\n");

    let failing = r.failing();
    let _ = writeln!(h, "<h2>Failing cases ({})</h2>", failing.len());
    if failing.is_empty() {
        h.push_str("<p>None: every case passed every attempt.</p>\n");
    } else {
        h.push_str(r#"<div class="filter"><label>Category <select id="category-filter"><option value="">all</option>"#);
        for cat in s.by_category.keys() {
            let _ = write!(h, r#"<option value="{0}">{0}</option>"#, esc(cat));
        }
        h.push_str("</select></label></div>\n");
        for c in failing {
            failing_case(&mut h, c);
        }
    }

    h.push_str("<h2>Every case</h2>\n<table><thead><tr><th>case</th><th>category</th><th>status</th><th>score</th><th>sd</th><th>passed</th></tr></thead><tbody>\n");
    for c in &r.cases {
        let status = status_label(c.status);
        let _ = writeln!(
            h,
            r#"<tr><td><code>{}</code></td><td>{}</td><td class="status-{}">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}/{}</td></tr>"#,
            esc(&c.id),
            esc(&c.category),
            status.to_lowercase(),
            status,
            fmt_score(c.mean_score),
            fmt_score(c.stddev),
            c.attempts.iter().filter(|a| a.passed).count(),
            c.attempts.len()
        );
    }
    let _ = write!(
        h,
        "</tbody></table>\n<script type=\"application/json\" id=\"run-data\">{}</script>\n<script>{SCRIPT}</script>\n</body></html>\n",
        script_json(&data)
    );
    h
}

fn failing_case(h: &mut String, c: &CaseResult) {
    let status = status_label(c.status);
    let _ = write!(
        h,
        r#"<article class="failing-case" data-category="{cat}"><h3><code>{id}</code> <span class="status-{cls}">{status}</span> score {score}, passed {passed}/{n} ({cat})</h3><div class="side-by-side"><div class="expected"><h4>Expected</h4>"#,
        cat = esc(&c.category),
        id = esc(&c.id),
        cls = status.to_lowercase(),
        score = fmt_score(c.mean_score),
        passed = c.attempts.iter().filter(|a| a.passed).count(),
        n = c.attempts.len(),
    );
    match &c.expected {
        Some(e) => {
            let _ = write!(h, "<pre>{}</pre>", esc(e));
        }
        None => h.push_str("<p>(no expected text: see the scorers)</p>"),
    }
    let _ = write!(
        h,
        "<h4>Input</h4><pre>{}</pre>",
        esc(&serde_json::to_string_pretty(&c.input).unwrap_or_default())
    );
    h.push_str(r#"</div><div class="actual"><h4>Output</h4>"#);
    let attempt = c.attempts.iter().find(|a| !a.passed).or(c.attempts.first());
    if let Some(a) = attempt {
        match (&a.output, &a.error) {
            (Some(o), _) => {
                let _ = write!(h, "<pre class=\"output\">{}</pre>", esc(o));
            }
            (None, Some(e)) => {
                let _ = write!(h, "<pre class=\"output error\">{}</pre>", esc(e));
            }
            (None, None) => {}
        }
        h.push_str(r#"<h4>Scorers</h4><ul class="scorers">"#);
        for s in &a.scores {
            let (mark, cls) = match (&s.error, s.passed) {
                (Some(_), _) => ("error", "status-error"),
                (None, true) => ("pass", "status-pass"),
                (None, false) => ("fail", "status-fail"),
            };
            let why = s.error.as_deref().or(s.detail.as_deref()).unwrap_or("");
            let _ = write!(
                h,
                r#"<li><span class="mark {cls}">{mark}</span> <code>{}</code> {}</li>"#,
                esc(&s.label),
                esc(why)
            );
        }
        h.push_str("</ul>");
    }
    h.push_str("</div></div></article>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_embedded_json_cannot_break_out() {
        assert_eq!(esc("<b a=\"x\">&'"), "&lt;b a=&quot;x&quot;&gt;&amp;&#39;");
        let v = json!({"name": "</script><script>alert(1)</script>"});
        let s = script_json(&v);
        assert!(!s.contains("</script"), "{s}");
        assert_eq!(serde_json::from_str::<serde_json::Value>(&s).unwrap(), v);
        assert_eq!(utc(86_399_000), "1970-01-01 23:59:59 UTC");
    }
}
