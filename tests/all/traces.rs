//! Traces over OTLP: the gateway's spans reach a receiver in the test
//! (support/otlp.rs) as children of the client's `traceparent`, one span
//! per guardrail call with its verdict, one per upstream attempt (a retry
//! and a fallback among them) whose id is the `traceparent` that upstream
//! received; without an exporter the client's context is forwarded as is.
//!
//! The gateway serves on this test's current-thread runtime, where the
//! traced subscriber is the default: every request's spans are made here.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use sluice::cli::{LogFormat, traced_subscriber};
use sluice::config::Config;
use sluice::telemetry::Telemetry;
use sluice_guests as guests;
use tracing_subscriber::EnvFilter;

use crate::support::fixed::{Fixed, Received};
use crate::support::gateway::{self, TestGateway};
use crate::support::otlp::{Receiver, Span};
use crate::support::plugins::plugin_dir;
use crate::support::prompts::{SUMMARIZE, prompt_body};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";
const STATE: &str = "vendor=abc,other=1";

/// Bounds a hang only: spans are waited for by event.
const PATIENCE: Duration = Duration::from_secs(30);

fn completion(text: &str) -> String {
    json!({
        "id": "c1", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    })
    .to_string()
}

/// Two sentences in two chunks, then usage: two sentence windows.
fn events() -> String {
    let chunk = |delta: serde_json::Value, finish: Option<&str>| {
        json!({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    };
    let usage = json!({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
        "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 6, "total_tokens": 9}});
    [
        chunk(
            json!({"role": "assistant", "content": "One safe line. "}),
            None,
        ),
        chunk(json!({"content": "Two safe lines."}), None),
        chunk(json!({}), Some("stop")),
        usage,
    ]
    .iter()
    .map(|e| format!("data: {e}\n\n"))
    .chain(["data: [DONE]\n\n".to_string()])
    .collect()
}

/// Providers `down` (always 503) and `backup` (answers "a safe answer",
/// or two sentences as a stream) on one recording server.
async fn upstream() -> Fixed {
    Fixed::start(|r: &Received| {
        if r.path.starts_with("/down/") {
            let err = json!({"error": {"message": "overloaded", "type": "server_error"}});
            (503, "application/json", err.to_string())
        } else if r.body.contains("\"stream\":true") {
            (200, "text/event-stream", events())
        } else {
            (200, "application/json", completion("a safe answer"))
        }
    })
    .await
}

fn config(up: &Fixed, plugins: &std::path::Path, telemetry: &str, rest: &str) -> String {
    format!(
        r#"
[plugins]
dir = '{dir}'
watch = false
pool-size = 1

[[providers]]
name = "down"
base-url = "{down}"

[[providers]]
name = "backup"
base-url = "{backup}"

[retry]
max-attempts = 2
initial-backoff-ms = 1
max-backoff-ms = 5

{telemetry}

[models.chat]
input-guardrails = ["test-tagger", "hostile-trap"]
output-guardrails = ["test-tagger", "hostile-trap"]
routes = [
  {{ provider = "down", model = "m-down" }},
  {{ provider = "backup", model = "m-backup" }},
]
{rest}
"#,
        dir = plugins.display(),
        down = up.url("down/v1"),
        backup = up.url("backup/v1"),
    )
}

fn guarded() -> tempfile::TempDir {
    plugin_dir(&[
        (guests::TEST_TAGGER, "kind = \"guardrail\"\norder = 1\n"),
        (guests::HOSTILE_TRAP, "kind = \"guardrail\"\norder = 2\n"),
    ])
}

fn telemetry_section(receiver: &Receiver) -> String {
    format!(
        r#"
[telemetry]
endpoint = "{}"
service-name = "sluice-test"
batch-delay-ms = 20
headers = {{ x-collector-key = "k1" }}
"#,
        receiver.endpoint
    )
}

/// The exporter `text` configures, its subscriber made this thread's
/// default for as long as the guard lives.
fn traced(text: &str) -> (Telemetry, tracing::subscriber::DefaultGuard) {
    let config = Config::parse("test.toml", text, &|_| None).unwrap();
    let telemetry = Telemetry::start(&config.telemetry).unwrap().unwrap();
    let subscriber = traced_subscriber(
        LogFormat::Pretty,
        EnvFilter::new("off"),
        false,
        std::io::sink,
        Some(&telemetry),
    );
    let guard = tracing::subscriber::set_default(subscriber);
    (telemetry, guard)
}

async fn chat_with_context(gw: &TestGateway, body: serde_json::Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(gw.v1("chat/completions"))
        .header("traceparent", format!("00-{TRACE}-{PARENT}-01"))
        .header("tracestate", STATE)
        .json(&body)
        .send()
        .await
        .unwrap()
}

fn named<'a>(spans: &'a [Span], name: &str) -> Vec<&'a Span> {
    spans.iter().filter(|s| s.name == name).collect()
}

fn has_request(spans: &[Span]) -> bool {
    spans.iter().any(|s| s.name == "request")
}

#[tokio::test]
async fn stage_spans_reach_the_collector_under_the_clients_trace() {
    let receiver = Receiver::start().await;
    let up = upstream().await;
    let dir = guarded();
    let text = config(&up, dir.path(), &telemetry_section(&receiver), "");
    let (telemetry, _traced) = traced(&text);
    let gw = gateway::start(&text).await;

    let res = chat_with_context(
        &gw,
        json!({"model": "chat", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["x-sluice-provider"], "backup");
    assert_eq!(res.headers()["x-sluice-attempts"], "3");

    let spans = receiver.wait_for(PATIENCE, has_request).await;
    let request = *named(&spans, "request").first().expect("no request span");
    // The server span is the child of the client's span, in its trace.
    assert_eq!(request.trace_id, TRACE);
    assert_eq!(request.parent_span_id, PARENT);
    assert_eq!(request.service, "sluice-test");
    assert_eq!(request.attr("http.response.status_code"), Some("200"));
    assert_eq!(request.attr("gen_ai.request.model"), Some("chat"));
    assert_eq!(request.attr("sluice.provider"), Some("backup"));
    assert_eq!(request.attr("sluice.attempts"), Some("3"));
    assert!(spans.iter().all(|s| s.trace_id == TRACE), "{spans:#?}");
    let child_of = |s: &Span, parent: &Span| s.parent_span_id == parent.span_id;

    for stage in ["auth", "limits", "upstream"] {
        let found = named(&spans, stage);
        assert!(!found.is_empty(), "no {stage} span: {spans:#?}");
        assert!(found.iter().all(|s| child_of(s, request)), "{stage}");
    }
    let limits: Vec<_> = named(&spans, "limits")
        .iter()
        .filter_map(|s| s.attr("sluice.limit"))
        .collect();
    assert!(
        limits.contains(&"rate_limit") && limits.contains(&"budget"),
        "{limits:?}"
    );

    // One span per guardrail call, with its verdict.
    let verdicts: Vec<_> = named(&spans, "guardrail")
        .iter()
        .map(|s| {
            (
                s.attr("sluice.phase").unwrap(),
                s.attr("sluice.plugin").unwrap(),
                s.attr("sluice.verdict").unwrap(),
            )
        })
        .collect();
    for expected in [
        ("input", "test-tagger", "transform"),
        ("input", "hostile-trap", "pass"),
        ("output", "test-tagger", "transform"),
        ("output", "hostile-trap", "pass"),
    ] {
        assert_eq!(
            verdicts.iter().filter(|v| **v == expected).count(),
            1,
            "{expected:?} in {verdicts:?}"
        );
    }
    let window = *named(&spans, "output_guardrails")
        .first()
        .expect("no window");
    assert!(child_of(window, request));
    assert_eq!(window.attr("sluice.part"), Some("content"));
    assert_eq!(window.attr("sluice.verdict"), Some("transform"));
    for g in named(&spans, "guardrail") {
        let parent = if g.attr("sluice.phase") == Some("output") {
            window
        } else {
            request
        };
        assert!(child_of(g, parent), "{g:?}");
    }

    // One span per attempt: the first, its retry, then the fallback.
    let mut attempts = named(&spans, "upstream");
    attempts.sort_by_key(|s| s.attr("sluice.attempt").map(str::to_string));
    let summary: Vec<_> = attempts
        .iter()
        .map(|s| {
            (
                s.attr("sluice.provider").unwrap(),
                s.attr("sluice.attempt").unwrap(),
                s.attr("sluice.retry").unwrap(),
                s.attr("sluice.fallback").unwrap(),
                s.attr("http.response.status_code").unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("down", "1", "false", "false", "503"),
            ("down", "2", "true", "false", "503"),
            ("backup", "3", "false", "true", "200"),
        ]
    );
    // Each attempt sent its own span id as the parent, in the client's trace.
    let sent = up.received();
    assert_eq!(sent.len(), 3);
    for (got, span) in sent.iter().zip(&attempts) {
        assert_eq!(
            got.header("traceparent"),
            Some(format!("00-{TRACE}-{}-01", span.span_id).as_str()),
            "{}",
            got.path
        );
        assert_eq!(got.header("tracestate"), Some(STATE));
    }
    // The configured export headers went to the collector.
    assert!(
        receiver
            .export_headers()
            .iter()
            .all(|h| h.get("x-collector-key").is_some_and(|v| v == "k1"))
    );
    drop(gw);
    tokio::task::spawn_blocking(move || telemetry.shutdown())
        .await
        .unwrap();
}

#[tokio::test]
async fn without_a_client_context_a_new_trace_starts_and_goes_upstream() {
    let receiver = Receiver::start().await;
    let up = upstream().await;
    let dir = guarded();
    let text = config(&up, dir.path(), &telemetry_section(&receiver), "");
    let (telemetry, _traced) = traced(&text);
    let gw = gateway::start(&text).await;

    let res = gw
        .chat(&json!({"model": "chat", "messages": [{"role": "user", "content": "hi"}]}))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let spans = receiver.wait_for(PATIENCE, has_request).await;
    let request = *named(&spans, "request").first().unwrap();
    assert_eq!(request.parent_span_id, "", "a root span");
    let last = up.received().pop().unwrap();
    let header = last.header("traceparent").expect("no traceparent upstream");
    assert!(
        header.starts_with(&format!("00-{}-", request.trace_id)),
        "{header}"
    );
    assert_eq!(last.header("tracestate"), None);
    drop(gw);
    tokio::task::spawn_blocking(move || telemetry.shutdown())
        .await
        .unwrap();
}

#[tokio::test]
async fn without_an_exporter_the_clients_context_is_forwarded_unchanged() {
    let up = upstream().await;
    let dir = guarded();
    let gw = gateway::start(&config(&up, dir.path(), "", "")).await;

    let res = chat_with_context(
        &gw,
        json!({"model": "chat", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let sent = up.received();
    assert_eq!(sent.len(), 3, "two attempts on `down`, one on `backup`");
    for got in &sent {
        assert_eq!(
            got.header("traceparent"),
            Some(format!("00-{TRACE}-{PARENT}-01").as_str())
        );
        assert_eq!(got.header("tracestate"), Some(STATE));
    }
    // No client context, none invented.
    let res = gw
        .chat(&json!({"model": "chat", "messages": [{"role": "user", "content": "hi"}]}))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let last = up.received().pop().unwrap();
    assert_eq!(last.header("traceparent"), None);
}

#[tokio::test]
async fn the_request_span_names_the_prompt_version() {
    let receiver = Receiver::start().await;
    let up = upstream().await;
    let dir = guarded();
    let prompts = tempfile::tempdir().unwrap();
    std::fs::write(prompts.path().join("summarize.toml"), SUMMARIZE).unwrap();
    // SUMMARIZE's version 2 names a `tagger` guardrail; version 1 is used.
    let rest = format!(
        "\n[prompts]\ndir = '{}'\nwatch = false\n",
        prompts.path().display()
    );
    let text = config(&up, dir.path(), &telemetry_section(&receiver), &rest);
    let (telemetry, _traced) = traced(&text);
    let gw = gateway::start_with_state(&text).await;

    let res = chat_with_context(&gw, prompt_body(Some(1), json!({"text": "x"}))).await;
    assert_eq!(res.status(), StatusCode::OK);
    let spans = receiver.wait_for(PATIENCE, has_request).await;
    let request = *named(&spans, "request").first().unwrap();
    assert_eq!(request.attr("sluice.prompt.id"), Some("summarize"));
    assert_eq!(request.attr("sluice.prompt.version"), Some("1"));
    drop(gw);
    tokio::task::spawn_blocking(move || telemetry.shutdown())
        .await
        .unwrap();
}

#[tokio::test]
async fn each_stream_window_is_a_span_with_its_guardrails() {
    let receiver = Receiver::start().await;
    let up = upstream().await;
    let dir = guarded();
    let rest = r#"
[models.streamed]
output-guardrails = ["test-tagger", "hostile-trap"]
routes = [{ provider = "backup", model = "m-backup" }]
"#;
    let text = config(&up, dir.path(), &telemetry_section(&receiver), rest);
    let (telemetry, _traced) = traced(&text);
    let gw = gateway::start(&text).await;

    let body = json!({"model": "streamed", "stream": true,
        "messages": [{"role": "user", "content": "hi"}]});
    let res = chat_with_context(&gw, body).await;
    assert_eq!(res.status(), StatusCode::OK);
    let streamed = res.text().await.unwrap();
    assert!(streamed.contains("[DONE]"), "{streamed}");

    let spans = receiver.wait_for(PATIENCE, has_request).await;
    let request = *named(&spans, "request").first().unwrap();
    assert_eq!(request.parent_span_id, PARENT);
    let mut windows = named(&spans, "output_guardrails");
    windows.sort_by_key(|w| w.attr("sluice.window").map(str::to_string));
    let numbers: Vec<_> = windows
        .iter()
        .map(|w| w.attr("sluice.window").unwrap())
        .collect();
    assert_eq!(numbers, ["1", "2"], "one span per sentence window");
    for w in &windows {
        assert_eq!(w.parent_span_id, request.span_id, "{w:?}");
        assert_eq!(w.trace_id, TRACE);
        let checks: Vec<_> = named(&spans, "guardrail")
            .into_iter()
            .filter(|g| g.parent_span_id == w.span_id)
            .map(|g| {
                (
                    g.attr("sluice.plugin").unwrap(),
                    g.attr("sluice.verdict").unwrap(),
                )
            })
            .collect();
        assert_eq!(
            checks,
            [("test-tagger", "transform"), ("hostile-trap", "pass")]
        );
    }
    drop(gw);
    tokio::task::spawn_blocking(move || telemetry.shutdown())
        .await
        .unwrap();
}
