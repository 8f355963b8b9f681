//! Running a suite through a gateway: every case `repeat` times, at most
//! `concurrency` requests in flight, each scored by its scorers; a
//! progress bar (`indicatif`, drawn only on a terminal) ticks per attempt.
//!
//! What each case sends:
//! - `messages` cases: to `--model`, else the suite's `model`.
//! - `variables` cases: the `prompt` extension with the case's prompt id,
//!   else the suite's, else `--prompt`'s; the version is `--prompt`'s when
//!   its id matches, else the active one. The model is `--model` when given,
//!   else the prompt version's own.
//!
//! Everything a run needs (a model for every case, a judge model for every
//! judge, the plugins of guardrail scorers) is checked before the first
//! request, so a misconfigured run fails at once instead of half-way.

use std::collections::BTreeMap;

use futures_util::StreamExt;
use indicatif::ProgressBar;
use serde_json::{Map, Value, json};

use super::client::{Answer, Client, Failure};
use super::guardrail::Guardrails;
use super::judge;
use super::run::{Attempt, CaseResult, CaseStatus, Run, ScoreResult, Summary, Target};
use super::scorer::Scorer;
use super::suite::{Case, Input, Suite};
use crate::prompt::PromptRef;
use crate::state::{now_ms, period};

/// What to evaluate and how.
#[derive(Debug, Clone)]
pub struct Options {
    /// `--model`: the gateway model for every case.
    pub model: Option<String>,
    /// `--prompt ID@VERSION`: the prompt version for `variables` cases.
    pub prompt: Option<PromptRef>,
    /// Attempts per case (`--repeat`), to measure variance.
    pub repeat: u32,
    pub concurrency: usize,
    /// Judge model when neither the scorer nor the suite names one.
    pub judge_model: Option<String>,
    /// Judge pass score (0-10) when neither the scorer nor the suite sets one.
    pub pass_score: f64,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            model: None,
            prompt: None,
            repeat: 1,
            concurrency: 4,
            judge_model: None,
            pass_score: 7.0,
        }
    }
}

/// Run `suite` through `client`'s gateway.
pub async fn run(
    suite: &Suite,
    opts: &Options,
    client: &Client,
    guardrails: Option<&Guardrails>,
    progress: &ProgressBar,
) -> anyhow::Result<Run> {
    let bodies = plan(suite, opts, guardrails.is_some())?;
    let started_ms = now_ms();
    let id = run_id(&suite.name, started_ms);
    let repeat = opts.repeat.max(1);
    progress.set_length(suite.cases.len() as u64 * u64::from(repeat));
    let jobs = suite
        .cases
        .iter()
        .zip(&bodies)
        .enumerate()
        .flat_map(|(i, (case, body))| (0..repeat).map(move |r| (i, r, case, body)));
    let ctx = Ctx {
        suite,
        opts,
        client,
        guardrails,
        run_id: &id,
    };
    let mut done: Vec<(usize, u32, Attempt)> = futures_util::stream::iter(jobs)
        .map(|(i, r, case, body)| {
            let ctx = &ctx;
            async move {
                let a = ctx.attempt(case, body).await;
                progress.inc(1);
                (i, r, a)
            }
        })
        .buffer_unordered(opts.concurrency.max(1))
        .collect()
        .await;
    done.sort_by_key(|(i, r, _)| (*i, *r));
    let mut by_case: BTreeMap<usize, Vec<Attempt>> = BTreeMap::new();
    for (i, _, a) in done {
        by_case.entry(i).or_default().push(a);
    }
    let cases: Vec<CaseResult> = suite
        .cases
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let mut r = CaseResult {
                id: c.id.clone(),
                category: c.category.clone(),
                expected: c.expected.clone(),
                input: c.input.to_value(),
                attempts: by_case.remove(&i).unwrap_or_default(),
                mean_score: None,
                stddev: None,
                pass_rate: 0.0,
                status: CaseStatus::Error,
            };
            r.finish();
            r
        })
        .collect();
    progress.finish_and_clear();
    Ok(Run {
        id,
        suite: suite.name.clone(),
        suite_sha256: suite.sha256.clone(),
        started_ms,
        finished_ms: now_ms(),
        target: Target {
            model: opts.model.clone().or_else(|| suite.model.clone()),
            prompt: opts.prompt.clone(),
        },
        repeat,
        gateway: client.base().to_string(),
        summary: Summary::of(&cases, true),
        cases,
    })
}

/// `SUITE-YYYYMMDDTHHMMSSZ-XXXX`: sortable by time, unique per run.
fn run_id(suite: &str, at_ms: u64) -> String {
    let secs = at_ms / 1000;
    let (y, m, d) = period::civil_from_days((secs / 86_400) as i64);
    let t = secs % 86_400;
    let slug: String = suite
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!(
        "{slug}-{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z-{:04x}",
        t / 3600,
        t / 60 % 60,
        t % 60,
        rand::random::<u16>()
    )
}

/// Each case's request body, and every check that can be made up front.
fn plan(suite: &Suite, opts: &Options, have_guardrails: bool) -> anyhow::Result<Vec<Value>> {
    let mut problems = Vec::new();
    let mut bodies = Vec::new();
    for c in &suite.cases {
        let mut body: Map<String, Value> = c.params.clone();
        match &c.input {
            Input::Messages(m) => match opts.model.as_ref().or(suite.model.as_ref()) {
                Some(model) => {
                    body.insert("model".into(), json!(model));
                    body.insert("messages".into(), json!(m));
                }
                None => problems.push(format!(
                    "case `{}` sends messages but no model is set (suite `model:` or --model)",
                    c.id
                )),
            },
            Input::Prompt {
                prompt,
                variables,
                messages,
            } => {
                let id = prompt
                    .as_ref()
                    .or(suite.prompt.as_ref())
                    .or(opts.prompt.as_ref().map(|p| &p.id));
                let Some(id) = id else {
                    problems.push(format!("case `{}` has variables but no prompt id (case or suite `prompt:`, or --prompt)", c.id));
                    continue;
                };
                let version = opts
                    .prompt
                    .as_ref()
                    .filter(|p| &p.id == id)
                    .map(|p| p.version);
                let mut ext = json!({"id": id, "variables": variables});
                if let Some(v) = version {
                    ext["version"] = json!(v);
                }
                body.insert("prompt".into(), ext);
                if let Some(m) = &opts.model {
                    body.insert("model".into(), json!(m));
                }
                if !messages.is_empty() {
                    body.insert("messages".into(), json!(messages));
                }
            }
        }
        for s in &c.scorers {
            match s {
                Scorer::Judge { model: None, .. }
                    if suite.judge.model.is_none() && opts.judge_model.is_none() =>
                {
                    problems.push(format!(
                        "case `{}` has a judge scorer but no judge model (scorer `model:`, suite `judge.model`, [evals] judge-model or --judge-model)",
                        c.id
                    ));
                }
                Scorer::Guardrail { .. } if !have_guardrails => problems.push(format!(
                    "case `{}` has a guardrail scorer but no plugin directory is loaded (--plugins or --config)",
                    c.id
                )),
                _ => {}
            }
        }
        bodies.push(Value::Object(body));
    }
    problems.dedup();
    if !problems.is_empty() {
        anyhow::bail!("the suite cannot run:\n  {}", problems.join("\n  "));
    }
    Ok(bodies)
}

struct Ctx<'a> {
    suite: &'a Suite,
    opts: &'a Options,
    client: &'a Client,
    guardrails: Option<&'a Guardrails>,
    run_id: &'a str,
}

impl Ctx<'_> {
    async fn attempt(&self, case: &Case, body: &Value) -> Attempt {
        let answer = self.client.chat(body, "eval", self.run_id).await;
        let expects_error = case.scorers.iter().any(|s| matches!(s, Scorer::Error(_)));
        let mut scores = Vec::new();
        for s in &case.scorers {
            let r = match (&answer, s) {
                (Ok(a), _) => self.score(case, s, &a.text).await,
                (Err(f), Scorer::Error(want)) => {
                    let ok = f.code.as_deref() == Some(want) || f.kind.as_deref() == Some(want);
                    Some(ScoreResult::pass_fail(
                        "error",
                        s.label(),
                        ok,
                        Some(f.message.clone()),
                    ))
                }
                // The case expects a refusal: other scorers have nothing to read.
                (Err(_), _) if expects_error => None,
                (Err(f), _) => Some(ScoreResult::error(
                    s.name(),
                    s.label(),
                    format!("no output: {}", f.message),
                )),
            };
            scores.extend(r);
        }
        let request_failed = answer.is_err() && !expects_error;
        let errored = request_failed || scores.iter().any(|s| s.error.is_some());
        let passed = !errored && scores.iter().all(|s| s.passed);
        let scored: Vec<f64> = scores.iter().filter_map(|s| s.score).collect();
        let score = (!errored).then(|| super::stats::mean(&scored)).flatten();
        match answer {
            Ok(a) => attempt_from(a, scores, score, passed, errored),
            Err(f) => attempt_failed(f, scores, score, passed, errored),
        }
    }

    async fn score(&self, case: &Case, s: &Scorer, output: &str) -> Option<ScoreResult> {
        if let Some(r) = s.check(output) {
            return Some(r);
        }
        Some(match s {
            Scorer::Error(want) => ScoreResult::pass_fail(
                "error",
                s.label(),
                false,
                Some(format!(
                    "expected the gateway to refuse with `{want}`, got an answer"
                )),
            ),
            Scorer::Guardrail { plugin, expect } => match self.guardrails {
                Some(g) => g.score(plugin, *expect, s.label(), &case.id, output).await,
                None => {
                    ScoreResult::error("guardrail", s.label(), "no plugin directory loaded".into())
                }
            },
            Scorer::Judge {
                criteria,
                model,
                pass_score,
            } => {
                let model = model
                    .as_ref()
                    .or(self.suite.judge.model.as_ref())
                    .or(self.opts.judge_model.as_ref())
                    .expect("checked in plan()");
                let pass = pass_score
                    .or(self.suite.judge.pass_score)
                    .unwrap_or(self.opts.pass_score);
                let expected = criteria
                    .as_ref()
                    .or(case.expected.as_ref())
                    .map_or("", String::as_str);
                self.judge(
                    model,
                    pass,
                    &case.input.to_text(),
                    expected,
                    output,
                    s.label(),
                )
                .await
            }
            _ => return None,
        })
    }

    async fn judge(
        &self,
        model: &str,
        pass: f64,
        input: &str,
        expected: &str,
        output: &str,
        label: String,
    ) -> ScoreResult {
        let body = judge::request(model, input, expected, output);
        let answer = match self.client.chat(&body, "eval-judge", self.run_id).await {
            Ok(a) => a,
            Err(f) => {
                return ScoreResult::error(
                    "judge",
                    label,
                    format!("the judge request failed: {}", f.message),
                );
            }
        };
        match judge::parse(&answer.text) {
            Ok(v) => ScoreResult {
                scorer: "judge".into(),
                label,
                score: Some(v.score / 10.0),
                passed: v.score >= pass,
                detail: Some(match v.reason {
                    Some(r) => format!("{}/10: {r}", v.score),
                    None => format!("{}/10", v.score),
                }),
                error: None,
                cost_usd: answer.cost_usd,
            },
            Err(e) => ScoreResult {
                cost_usd: answer.cost_usd,
                ..ScoreResult::error("judge", label, e.to_string())
            },
        }
    }
}

fn attempt_from(
    a: Answer,
    scores: Vec<ScoreResult>,
    score: Option<f64>,
    passed: bool,
    errored: bool,
) -> Attempt {
    Attempt {
        output: Some(a.text),
        error: None,
        error_code: None,
        scores,
        score,
        passed,
        errored,
        latency_ms: a.latency.as_secs_f64() * 1e3,
        retries: a.retries,
        prompt_tokens: a.prompt_tokens,
        completion_tokens: a.completion_tokens,
        cost_usd: a.cost_usd,
        provider: a.provider,
        upstream_model: a.upstream_model,
        prompt: a.prompt,
    }
}

fn attempt_failed(
    f: Failure,
    scores: Vec<ScoreResult>,
    score: Option<f64>,
    passed: bool,
    errored: bool,
) -> Attempt {
    Attempt {
        output: None,
        error: Some(f.message),
        error_code: f.code,
        scores,
        score,
        passed,
        errored,
        latency_ms: f.latency.as_secs_f64() * 1e3,
        retries: f.retries,
        ..Attempt::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_sort_by_time() {
        let a = run_id("caps v2", 1_790_000_000_000);
        assert!(a.starts_with("caps-v2-20260921T"), "{a}");
        assert!(run_id("s", 1_000) < run_id("s", 86_400_000));
    }

    #[test]
    fn a_run_that_cannot_work_fails_before_any_request() {
        let suite = Suite::parse(
            "s",
            "cases:\n  - id: a\n    messages: [{role: user, content: x}]\n    scorers: [{judge: ok}, {guardrail: pii}]\n  - id: b\n    variables: {x: 1}\n    scorers: [{contains: x}]\n",
        )
        .unwrap();
        let e = plan(&suite, &Options::default(), false)
            .unwrap_err()
            .to_string();
        for needle in [
            "case `a` sends messages but no model",
            "no judge model",
            "no plugin directory",
            "case `b` has variables but no prompt id",
        ] {
            assert!(e.contains(needle), "{needle} missing in {e}");
        }
        let opts = Options {
            model: Some("demo".into()),
            prompt: PromptRef::parse("caps@2"),
            judge_model: Some("judge".into()),
            ..Options::default()
        };
        let suite = Suite::parse("s", "cases:\n  - id: b\n    variables: {x: 1}\n    params: {seed: 3}\n    scorers: [{judge: ok}]\n").unwrap();
        let bodies = plan(&suite, &opts, false).unwrap();
        assert_eq!(
            bodies[0],
            json!({"seed": 3, "model": "demo", "prompt": {"id": "caps", "version": 2, "variables": {"x": 1}}})
        );
    }
}
