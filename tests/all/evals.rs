//! The eval runner end to end: a suite run through the gateway (subjects on
//! the mock upstream, the judge on an upstream whose answers the test
//! scripts), results stored in the gateway's state, the CI gate of
//! `sluice eval compare` failing a worse prompt version and passing an
//! equal one, repeats measuring variance, and the HTML report rendered in
//! headless Chromium.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use reqwest::StatusCode;
use serde_json::{Value, json};
use sluice::cli::eval::{RunArgs, RunDone, execute_run};
use sluice::eval::judge::RUBRIC;
use sluice::prompt::PromptRef;
use tempfile::TempDir;

use crate::support::gateway::{self, Mock, TestGateway};
use crate::support::judge::Judge;
use crate::support::plugins::plugin_dir_named;
use crate::support::raw::{self, RawUpstream};

const ADMIN: &str = "admin-secret";
const CITIES: &[&str] = &["Paris", "Tokyo", "Lima"];

/// Version 2 is the deliberately worse one; version 3 says the same as
/// version 1 in other words.
const CAPITAL: &str = r#"
[[versions]]
version = 1
model = "chat"
variables = ["country", "capital"]
template = "REPLY: The capital of {{country}} is {{capital}}."

[[versions]]
version = 2
model = "chat"
variables = ["country", "capital"]
template = "REPLY: I am not sure which city is the capital of {{country}}."

[[versions]]
version = 3
model = "chat"
variables = ["country", "capital"]
template = "REPLY: {{capital}} is the capital of {{country}}."
"#;

const SUITE: &str = r#"
name: capitals
model: chat
prompt: capital
judge: { model: judge, pass-score: 7 }
scorers:
  - length: { max: 200 }
cases:
  - id: france
    category: europe
    variables: { country: France, capital: Paris }
    expected: Names Paris as the capital of France.
    scorers: [{ contains: Paris }, { judge: {} }]
  - id: japan
    category: asia
    variables: { country: Japan, capital: Tokyo }
    expected: Names Tokyo as the capital of Japan.
    scorers: [{ contains: Tokyo }, { judge: {} }]
  - id: peru
    category: americas
    variables: { country: Peru, capital: Lima }
    expected: Names Lima as the capital of Peru.
    scorers: [{ contains: Lima }, { judge: {} }]
  - id: oslo-json
    category: structured
    messages:
      - { role: user, content: 'REPLY: {"city": "Oslo", "population": 709000}' }
    scorers:
      - json-schema:
          type: object
          required: [city, population]
          properties: { city: { type: string }, population: { type: integer } }
      - numeric: { expected: 700000, tolerance: 0.05, relative: true }
      - regex: '"city":\s*"Oslo"'
      - guardrail: tagger
  - id: refused
    category: structured
    messages: [{ role: user, content: "REPLY: this must REJECT" }]
    scorers: [{ error: guardrail_rejected }]
"#;

struct Setup {
    gw: TestGateway,
    judge: Judge,
    /// Quality alerts POSTed to `[state] alert-webhook`.
    hooks: tokio::sync::mpsc::UnboundedReceiver<Value>,
    _hook: RawUpstream,
    dir: TempDir,
    plugins: TempDir,
    _mock: Mock,
}

impl Setup {
    fn suite(&self) -> PathBuf {
        self.dir.path().join("capitals.yaml")
    }

    fn out(&self) -> PathBuf {
        self.dir.path().join("results")
    }

    fn args(&self, suite: &Path, prompt: Option<&str>) -> RunArgs {
        RunArgs {
            suite: suite.to_path_buf(),
            prompt: prompt.map(|p| PromptRef::parse(p).unwrap()),
            gateway: Some(self.gw.url.clone()),
            admin_key: Some(ADMIN.into()),
            plugins: Some(self.plugins.path().to_path_buf()),
            out: Some(self.out()),
            concurrency: Some(3),
            repeat: 1,
            config: Some(self.dir.path().join("sluice.toml")),
            ..RunArgs::default()
        }
    }

    async fn run(&self, prompt: &str) -> RunDone {
        execute_run(&self.args(&self.suite(), Some(prompt)), false)
            .await
            .unwrap()
    }
}

/// The judge scores an answer naming a capital 9 (as JSON), anything else
/// 2 (in prose, as models do).
fn capital_rule(output: &str, _: usize) -> String {
    if CITIES.iter().any(|c| output.contains(c)) {
        r#"{"score": 9, "reason": "names the capital"}"#.into()
    } else {
        "The output does not name the city.\nScore: 2/10".into()
    }
}

async fn setup(rule: impl Fn(&str, usize) -> String + Send + Sync + 'static) -> Setup {
    // The tagger rejects output containing "REJECT": a gateway guardrail
    // for the `refused` case and a guardrail scorer for `oslo-json`.
    let plugins = plugin_dir_named(&[(
        "tagger",
        sluice_guests::TEST_TAGGER,
        "kind = \"guardrail\"\norder = 1\n[config]\ntag = \"\"\n",
    )]);
    let dir = tempfile::tempdir().unwrap();
    let prompts = dir.path().join("prompts");
    std::fs::create_dir(&prompts).unwrap();
    std::fs::write(prompts.join("capital.toml"), CAPITAL).unwrap();
    std::fs::write(dir.path().join("capitals.yaml"), SUITE).unwrap();
    let judge = Judge::start(rule).await;
    let (tx, hooks) = tokio::sync::mpsc::unbounded_channel();
    let hook = raw::upstream(move |mut tcp, req| {
        let tx = tx.clone();
        async move {
            let body = req.split_once("\r\n\r\n").map_or("", |(_, b)| b);
            let _ = tx.send(serde_json::from_str::<Value>(body).unwrap_or(Value::Null));
            raw::answer_json(&mut tcp, 200, "{}").await;
        }
    })
    .await;
    let mock = gateway::mock().await;
    let rest = format!(
        r#"
[server]
admin-key = "{ADMIN}"

[[providers]]
name = "judge"
base-url = "{judge}"

[models.chat]
routes = [{{ provider = "mock", model = "mock-small", input-cost-per-mtok = 1.0, output-cost-per-mtok = 2.0 }}]
output-guardrails = ["tagger"]

[models.judge]
routes = [{{ provider = "judge", model = "judge-1", input-cost-per-mtok = 10.0, output-cost-per-mtok = 30.0 }}]

[state]
dir = '{state}'
alert-webhook = "http://{hook}/hook"

[prompts]
dir = '{prompts}'
watch = false
"#,
        judge = judge.upstream.base,
        state = dir.path().join("state").display(),
        hook = hook.addr,
        prompts = prompts.display(),
    );
    let config = gateway::config(&mock, plugins.path(), &rest);
    // The runner reads the gateway's config for prices.
    std::fs::write(dir.path().join("sluice.toml"), &config).unwrap();
    let gw = gateway::start_with_state(&config).await;
    Setup {
        gw,
        judge,
        hooks,
        _hook: hook,
        dir,
        plugins,
        _mock: mock,
    }
}

fn case<'a>(run: &'a sluice::eval::Run, id: &str) -> &'a sluice::eval::run::CaseResult {
    run.cases.iter().find(|c| c.id == id).unwrap()
}

async fn admin_evals(gw: &TestGateway, query: &str) -> Value {
    let res = reqwest::Client::new()
        .get(format!("{}/admin/evals{query}", gw.url))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    res.json().await.unwrap()
}

/// `sluice eval compare A B` as CI runs it: the exit code and stdout.
fn compare(a: &Path, b: &Path) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice-e2e"))
        .args(["eval", "compare"])
        .arg(a)
        .arg(b)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gate_fails_a_worse_prompt_version_and_passes_an_equal_one() {
    let mut s = setup(capital_rule).await;
    let base = s.run("capital@1").await;
    let worse = s.run("capital@2").await;
    // The model's latest run got worse: a quality alert, in the answer,
    // the admin API and on the webhook.
    let subjects: Vec<&str> = worse.alerts.iter().map(|a| a.subject.as_str()).collect();
    assert_eq!(subjects, ["model:chat"], "{}", worse.text);
    assert!(
        worse.text.contains("QUALITY ALERT for model:chat"),
        "{}",
        worse.text
    );
    let hooked = tokio::time::timeout(std::time::Duration::from_secs(60), s.hooks.recv())
        .await
        .expect("the webhook was never called")
        .unwrap();
    assert_eq!(
        (
            hooked["kind"].clone(),
            hooked["run"].clone(),
            hooked["previous_run"].clone()
        ),
        (json!("quality"), json!(worse.run.id), json!(base.run.id))
    );
    assert_eq!(
        admin_evals(&s.gw, "").await["alerts"][0]["subject"],
        "model:chat"
    );
    let equal = s.run("capital@3").await;
    assert!(equal.alerts.is_empty());
    assert_eq!(
        admin_evals(&s.gw, "").await["alerts"],
        json!([]),
        "a good run ends the alert"
    );

    // The baseline: everything passes, every scorer ran.
    let sum = &base.run.summary;
    for c in &base.run.cases {
        assert!(c.attempts[0].passed, "{}: {:?}", c.id, c.attempts[0]);
    }
    assert_eq!(
        (sum.cases, sum.passed, sum.errors),
        (5, 5, 0),
        "{}",
        base.text
    );
    let france = &case(&base.run, "france").attempts[0];
    assert_eq!(
        france.output.as_deref(),
        Some("The capital of France is Paris.")
    );
    assert_eq!(france.prompt.as_deref(), Some("capital@1"));
    assert!(france.prompt_tokens.is_some() && france.latency_ms > 0.0);
    let judged = france.scores.iter().find(|r| r.scorer == "judge").unwrap();
    assert_eq!(judged.score, Some(0.9));
    let oslo = &case(&base.run, "oslo-json").attempts[0];
    let scorers: Vec<&str> = oslo.scores.iter().map(|r| r.scorer.as_str()).collect();
    assert_eq!(
        scorers,
        ["length", "json-schema", "numeric", "regex", "guardrail"]
    );
    assert!(oslo.passed, "{:?}", oslo.scores);
    assert!(case(&base.run, "refused").attempts[0].passed);
    // Cost from the gateway's prices: the answers, and the judge apart
    // (3 judgements of 50 + 10 tokens at $10 / $30 per million).
    assert!(france.cost_usd.unwrap() > 0.0, "{france:?}");
    let judged_cost = base.run.summary.judge_cost_usd.unwrap();
    assert!(
        (judged_cost - 3.0 * (50.0 * 10.0 + 10.0 * 30.0) / 1e6).abs() < 1e-12,
        "{judged_cost}"
    );

    // The judge was asked at temperature 0 with the fixed rubric.
    let asked = s.judge.requests();
    assert_eq!(asked.len(), 9, "three prompt cases, three runs");
    for r in &asked {
        assert_eq!(r["temperature"].as_f64(), Some(0.0), "{r}");
        assert_eq!(r["messages"][0]["content"], RUBRIC);
    }

    // The worse version: the three prompt cases fail, judged 2/10 from prose.
    assert_eq!(worse.run.summary.passed, 2, "{}", worse.text);
    let f = &case(&worse.run, "france").attempts[0];
    assert_eq!(
        f.scores.iter().find(|r| r.scorer == "judge").unwrap().score,
        Some(0.2)
    );
    assert_eq!(equal.run.summary.passed, 5, "{}", equal.text);

    // CI: the worse version fails the gate, the equal one passes it.
    let (code, out) = compare(&base.written.json, &worse.written.json);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("pass rate"), "{out}");
    for cat in ["europe", "asia", "americas"] {
        assert!(out.contains(cat), "per-category deltas: {out}");
    }
    let (code, out) = compare(&base.written.json, &equal.written.json);
    assert_eq!(code, 0, "{out}");

    // The gateway kept each run under its prompt version.
    for (run, subject) in [(&base, "prompt:capital@1"), (&worse, "prompt:capital@2")] {
        assert_eq!(
            run.stored.as_deref(),
            Some(&["model:chat".to_string(), subject.to_string()][..])
        );
        let v = admin_evals(&s.gw, &format!("?subject={subject}")).await;
        assert_eq!(v["latest"]["id"], json!(run.run.id), "{v}");
    }

    // The reports are on disk: JSON (what compare reads), Markdown, HTML.
    let md = std::fs::read_to_string(&worse.written.markdown).unwrap();
    assert!(md.contains("france") && md.contains("Names Paris"), "{md}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeats_give_each_case_its_mean_and_spread() {
    // The k-th judgement of an output scores 6, 8, 10, 6, ...: each case
    // judged three times gets each score once, whatever the order.
    let seen = Mutex::new(HashMap::<String, usize>::new());
    let s = setup(move |output, _| {
        let mut seen = seen.lock().unwrap();
        let k = seen.entry(output.to_string()).or_default();
        let score = [6, 8, 10][*k % 3];
        *k += 1;
        format!("{{\"score\": {score}}}")
    })
    .await;
    let suite = s.dir.path().join("one.yaml");
    std::fs::write(
        &suite,
        "model: chat\ncases:\n  - id: a\n    messages: [{role: user, content: 'REPLY: A'}]\n    expected: says A\n    scorers: [{judge: {model: judge}}]\n  - id: b\n    messages: [{role: user, content: 'REPLY: B'}]\n    expected: says B\n    scorers: [{judge: {model: judge}}]\n",
    )
    .unwrap();
    let mut args = s.args(&suite, None);
    args.repeat = 3;
    args.no_store = true;
    let done = execute_run(&args, false).await.unwrap();
    for id in ["a", "b"] {
        let c = case(&done.run, id);
        assert_eq!(c.attempts.len(), 3);
        let mean = c.mean_score.unwrap();
        assert!((mean - 0.8).abs() < 1e-9, "{id}: {mean}");
        let sd = c.stddev.unwrap();
        assert!(sd > 0.15 && sd < 0.25, "{id}: {sd}");
        // 6/10 is below the pass score of 7.
        assert!(
            (c.pass_rate - 2.0 / 3.0).abs() < 1e-9,
            "{id}: {}",
            c.pass_rate
        );
    }
    assert_eq!(done.stored, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_html_report_renders_its_chart_in_headless_chromium() {
    let s = setup(capital_rule).await;
    let worse = s.run("capital@2").await;
    let html = &worse.written.html;
    let chromium = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| Command::new(b).arg("--version").output().is_ok())
        .expect("headless Chromium is needed (apt-get install chromium)");
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", html.display()))
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The script ran to its end and drew the score distribution.
    assert!(dom.contains(r#"data-rendered="true""#), "{dom}");
    let chart = dom
        .split(r#"id="score-chart""#)
        .nth(1)
        .and_then(|rest| rest.split("</svg>").next())
        .unwrap();
    let bars = chart.matches("data-count=").count();
    assert_eq!(bars, 10, "one bar per score range: {chart}");
    // The failing cases, side by side with their expectations.
    let failing = dom.matches(r#"class="failing-case""#).count();
    assert_eq!(failing, 3, "{dom}");
    assert!(dom.contains("Names Tokyo as the capital of Japan."));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runner_retries_what_the_gateway_could_not_answer_yet() {
    // A gateway stand-in on a real socket: each case's first request gets a
    // 503 (Retry-After 0), the second an answer; `down` never answers.
    let seen = std::sync::Arc::new(Mutex::new(HashMap::<String, u32>::new()));
    let counts = seen.clone();
    let gw = raw::upstream(move |mut tcp, req| {
        let seen = seen.clone();
        async move {
            let body = req.split_once("\r\n\r\n").map_or("", |(_, b)| b);
            let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
            let text = v["messages"][0]["content"].as_str().unwrap_or("").to_string();
            let n = {
                let mut s = seen.lock().unwrap();
                let n = s.entry(text.clone()).or_default();
                *n += 1;
                *n
            };
            if n == 1 || text == "down" {
                let err = r#"{"error":{"message":"busy","type":"x","code":"busy"}}"#;
                let reply = format!(
                    "HTTP/1.1 503 X\r\ncontent-type: application/json\r\nretry-after: 0\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{err}",
                    err.len()
                );
                let _ = tokio::io::AsyncWriteExt::write_all(&mut tcp, reply.as_bytes()).await;
                return;
            }
            let answer = json!({
                "id": "c", "object": "chat.completion", "created": 0, "model": "m",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                             "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}
            });
            raw::answer_json(&mut tcp, 200, &answer.to_string()).await;
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let suite = dir.path().join("flaky.yaml");
    std::fs::write(
        &suite,
        "model: m\ncases:\n  - id: up\n    messages: [{role: user, content: up}]\n    scorers: [{exact: up}]\n  - id: down\n    messages: [{role: user, content: down}]\n    scorers: [{exact: down}]\n",
    )
    .unwrap();
    let args = RunArgs {
        suite,
        gateway: Some(format!("http://{}", gw.addr)),
        out: Some(dir.path().join("out")),
        retries: Some(2),
        ..RunArgs::default()
    };
    let done = execute_run(&args, false).await.unwrap();
    let up = &case(&done.run, "up").attempts[0];
    assert!(up.passed && up.retries == 1, "{up:?}");
    let down = &case(&done.run, "down").attempts[0];
    assert!(down.errored && down.retries == 2, "{down:?}");
    assert_eq!(down.error_code.as_deref(), Some("busy"));
    assert_eq!(counts.lock().unwrap()["down"], 3, "one try and two retries");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sluice_eval_run_as_a_command_gates_on_a_minimum_pass_rate() {
    let s = setup(capital_rule).await;
    // Async: the gateway answering it runs on this test's runtime.
    let run = |prompt: &str| {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_sluice-e2e"))
            .args(["eval", "run"])
            .arg(s.suite())
            .args(["--prompt", prompt, "--gateway", &s.gw.url, "--plugins"])
            .arg(s.plugins.path())
            .arg("--out")
            .arg(s.out())
            .args(["--min-pass-rate", "90", "--no-store"])
            .output()
    };
    let good = run("capital@1").await.unwrap();
    let stdout = String::from_utf8_lossy(&good.stdout);
    assert!(
        good.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&good.stderr)
    );
    assert!(
        stdout.contains("pass rate 100.0% (5/5 attempts)"),
        "{stdout}"
    );
    let bad = run("capital@2").await.unwrap();
    let stdout = String::from_utf8_lossy(&bad.stdout);
    assert_eq!(bad.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("pass rate 40.0% (2/5 attempts)"),
        "{stdout}"
    );
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("below --min-pass-rate 90"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}
