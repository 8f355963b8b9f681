//! Answers through the real guardrail chain (first-party plugins built from
//! source), non-streamed and streamed: pass, transform, reject mid-stream,
//! usage, window modes.

use reqwest::StatusCode;
use serde_json::{Value, json};

use sluice_guests as guests;

use crate::support::gateway::{self, TestGateway, reply_body};
use crate::support::http::{sse_data, streamed_pieces, streamed_text};
use crate::support::plugins::plugin_dir_named;

/// pii-redact with its defaults; length-check capped at 60 characters. Both
/// keep the default `order`, so the chain runs them by name.
const PII: &str = "kind = \"guardrail\"\n";
const LENGTH_60: &str = "kind = \"guardrail\"\n[config]\nmax-chars = 60\nmin-chars = 1\n";

const MODELS: &str = r#"
[models.safe]
routes = [{ provider = "mock", model = "mock-small" }]
output-guardrails = ["pii-redact", "length-check"]

[models.chunky]
routes = [{ provider = "mock", model = "mock-small" }]
output-guardrails = ["pii-redact"]
stream = { mode = "chars", chars = 12, max-hold-chars = 40 }

[models.raw]
routes = [{ provider = "mock", model = "mock-small" }]
"#;

struct Setup {
    gw: TestGateway,
    _mock: gateway::Mock,
    _dir: tempfile::TempDir,
}

async fn setup() -> Setup {
    let dir = plugin_dir_named(&[
        ("pii-redact", guests::PII_REDACT, PII),
        ("length-check", guests::LENGTH_CHECK, LENGTH_60),
    ]);
    let mock = gateway::mock().await;
    let gw = gateway::start(&gateway::config(&mock, dir.path(), MODELS)).await;
    Setup {
        gw,
        _mock: mock,
        _dir: dir,
    }
}

async fn stream(gw: &TestGateway, mut body: Value) -> (reqwest::header::HeaderMap, Vec<String>) {
    body["stream"] = json!(true);
    let res = gw.chat(&body).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let headers = res.headers().clone();
    (headers, sse_data(&res.text().await.unwrap()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_streamed_answers_pass_transform_and_reject() {
    let s = setup().await;
    let res = s.gw.chat(&reply_body("safe", "All good here.")).await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["x-sluice-guardrails"],
        "length-check:pass,pii-redact:pass"
    );
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "All good here.");

    let res =
        s.gw.chat(&reply_body("safe", "Mail bob@example.com now."))
            .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["x-sluice-guardrails"],
        "length-check:pass,pii-redact:transform"
    );
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "Mail [EMAIL] now."
    );

    let long = "This sentence is fine. But this answer keeps going well past sixty characters.";
    let res = s.gw.chat(&reply_body("safe", long)).await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let err: Value = res.json().await.unwrap();
    assert_eq!(err["error"]["type"], "guardrail_rejected");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("length-check"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_passes_arrives_whole_in_sentence_windows() {
    let s = setup().await;
    let reply = "One short line. Two more words! Done";
    let (headers, events) = stream(&s.gw, reply_body("safe", reply)).await;
    assert_eq!(headers["x-sluice-provider"], "mock");
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    assert_eq!(streamed_text(&events), reply);
    let first: Value = serde_json::from_str(&events[0]).unwrap();
    assert_eq!(
        first["choices"][0]["delta"]["role"], "assistant",
        "role chunk first"
    );
    // Text arrives per sentence, never per token.
    assert_eq!(
        streamed_pieces(&events),
        ["One short line. ", "Two more words! ", "Done"]
    );
    let finish = events
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(e).ok())
        .find_map(|v| {
            v["choices"][0]["finish_reason"]
                .as_str()
                .map(str::to_string)
        });
    assert_eq!(finish.as_deref(), Some("stop"));
    assert!(
        events.iter().all(|e| !e.contains("\"usage\"")),
        "usage is not forwarded unless asked"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transform_rewrites_the_window_before_the_client_sees_it() {
    let s = setup().await;
    let (_, events) = stream(
        &s.gw,
        reply_body("safe", "Hi. Mail bob@example.com today. Bye"),
    )
    .await;
    let text = streamed_text(&events);
    assert_eq!(text, "Hi. Mail [EMAIL] today. Bye");
    assert!(
        events.iter().all(|e| !e.contains("bob@")),
        "the address never leaves the gateway"
    );
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reject_mid_stream_sends_an_error_event_and_no_done() {
    let s = setup().await;
    let reply =
        "This first sentence passes. The second one pushes the answer over sixty characters.";
    let (_, events) = stream(&s.gw, reply_body("safe", reply)).await;
    assert_eq!(streamed_text(&events), "This first sentence passes. ");
    let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert_eq!(last["error"]["type"], "guardrail_rejected", "{last}");
    assert!(
        last["error"]["message"]
            .as_str()
            .unwrap()
            .contains("length-check"),
        "{last}"
    );
    assert!(
        last["error"]["code"]
            .as_str()
            .is_some_and(|c| !c.is_empty()),
        "{last}"
    );
    assert!(!events.iter().any(|e| e == "[DONE]"));
    assert!(
        !events.iter().any(|e| e.contains("second")),
        "rejected text is never sent"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn include_usage_adds_a_final_usage_chunk() {
    let s = setup().await;
    let mut body = reply_body("safe", "Count me. Please");
    body["stream_options"] = json!({"include_usage": true});
    let (_, events) = stream(&s.gw, body).await;
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let usage: Value = serde_json::from_str(&events[events.len() - 2]).unwrap();
    assert_eq!(usage["choices"], json!([]), "{usage}");
    assert!(
        usage["usage"]["completion_tokens"].as_u64().unwrap() > 0,
        "{usage}"
    );
    assert_eq!(streamed_text(&events), "Count me. Please");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chars_windows_follow_the_model_config() {
    let s = setup().await;
    let reply = "abcdefghij klmnopqrst uvwxyz and a tail";
    let (_, events) = stream(&s.gw, reply_body("chunky", reply)).await;
    assert_eq!(streamed_text(&events), reply);
    let pieces = streamed_pieces(&events);
    let (last, windows) = pieces.split_last().unwrap();
    assert!(!windows.is_empty());
    for w in windows {
        assert!(w.chars().count() >= 12, "window {w:?} shorter than `chars`");
    }
    assert!(!last.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_failure_mid_stream_is_an_error_event() {
    let s = setup().await;
    let mut body = reply_body(
        "chunky",
        "Some words that will be cut off halfway through the stream.",
    );
    body["mock_fault"] = json!("midstream-error");
    let (_, events) = stream(&s.gw, body).await;
    let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert!(last["error"]["message"].is_string(), "{last}");
    assert!(!events.iter().any(|e| e == "[DONE]"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_output_guardrails_tokens_are_not_held_back() {
    let s = setup().await;
    let reply = "Four words, one sentence.";
    let (_, events) = stream(&s.gw, reply_body("raw", reply)).await;
    assert_eq!(streamed_text(&events), reply);
    assert_eq!(
        streamed_pieces(&events).len(),
        4,
        "one chunk per upstream token: {events:?}"
    );
}
