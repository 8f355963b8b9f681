//! What bounds a stream: the idle timer counts complete events (an
//! upstream trickling bytes is silent), a stream's maximum duration, the
//! largest single event; and an answer that is no event stream at all.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use crate::support::gateway::{self, TestGateway};
use crate::support::http::{sse_data, streamed_text};
use crate::support::raw::{self, SSE_HEAD, chunk_event};

async fn gateway_for(base: &str, route_extra: &str) -> (TestGateway, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        r#"
[plugins]
dir = '{dir}'
watch = false

[[providers]]
name = "up"
base-url = "{base}"
retry = {{ max-attempts = 1 }}

[models.chat]
routes = [{{ provider = "up", model = "m"{route_extra} }}]
"#,
        dir = dir.path().display()
    );
    (gateway::start(&config).await, dir)
}

/// The whole streamed body, bounded by `limit` (a stream that never ends
/// fails the test instead of hanging it).
async fn stream_body(gw: &TestGateway, body: Value, limit: Duration) -> (u16, String) {
    let res = gw.chat(&body).await;
    let status = res.status().as_u16();
    let text = tokio::time::timeout(limit, res.text())
        .await
        .expect("the stream did not end")
        .unwrap();
    (status, text)
}

fn stream_request(text: &str) -> Value {
    json!({"model": "chat", "stream": true, "messages": [{"role": "user", "content": text}]})
}

/// The error object of the stream's last event.
fn last_error(text: &str) -> Value {
    let events = sse_data(text);
    let last: Value = serde_json::from_str(events.last().expect("no events")).unwrap();
    assert!(last.get("error").is_some(), "not an error event: {text}");
    last["error"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_trickling_bytes_is_cut_off_by_the_idle_timer() {
    let up = raw::upstream(|mut tcp, _| async move {
        let _ = tcp.write_all(SSE_HEAD).await;
        let _ = tcp.write_all(&chunk_event("first ")).await;
        // Then an event that never completes, one byte at a time.
        for b in b"data: {\"id\":\"c\",\"choices\":[".iter().cycle() {
            if tcp.write_all(&[*b]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let (gw, _dir) = gateway_for(&up.base, ", timeout-ms = 1000").await;
    let (status, text) = stream_body(&gw, stream_request("hi"), Duration::from_secs(30)).await;
    assert_eq!(status, 200);
    assert_eq!(streamed_text(&sse_data(&text)), "first ");
    let err = last_error(&text);
    assert_eq!(err["code"], "upstream_timeout", "{text}");
    assert!(
        err["message"].as_str().unwrap().contains("stream idle"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_is_cut_at_its_maximum_duration() {
    let up = raw::upstream(|mut tcp, _| async move {
        let _ = tcp.write_all(SSE_HEAD).await;
        for i in 0.. {
            if tcp.write_all(&chunk_event(&format!("{i} "))).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    let (gw, _dir) = gateway_for(&up.base, ", max-stream-duration-ms = 1500").await;
    let (_, text) = stream_body(&gw, stream_request("hi"), Duration::from_secs(30)).await;
    let err = last_error(&text);
    assert_eq!(err["code"], "upstream_timeout", "{text}");
    assert!(
        err["message"].as_str().unwrap().contains("stream duration"),
        "{text}"
    );
    assert!(streamed_text(&sse_data(&text)).starts_with("0 1 "));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_over_the_size_cap_ends_the_stream_with_an_error_event() {
    let mock = gateway::mock().await;
    let (gw, _dir) = gateway_for(&mock.base(), "").await;
    let mut body = stream_request("hi");
    body["mock_answer_bytes"] = json!(1_500_000);
    body["mock_fault"] = json!("single-event");
    let (status, text) = stream_body(&gw, body.clone(), Duration::from_secs(30)).await;
    assert_eq!(status, 200);
    let err = last_error(&text);
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("larger than 1024 KiB"),
        "{err}"
    );
    assert!(text.len() < 10_000, "the big event was not relayed");
    // Under the cap, the same answer arrives whole.
    body["mock_answer_bytes"] = json!(900_000);
    let (_, text) = stream_body(&gw, body, Duration::from_secs(30)).await;
    assert_eq!(streamed_text(&sse_data(&text)).len(), 900_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_html_page_answering_a_stream_request_is_named_by_its_content_type() {
    let mock = gateway::mock().await;
    let (gw, _dir) = gateway_for(&mock.base(), "").await;
    let mut body = stream_request("hi");
    body["mock_fault"] = json!("html");
    let res = gw.chat(&body).await;
    assert_eq!(res.status(), 502);
    let err: Value = res.json().await.unwrap();
    let message = err["error"]["message"].as_str().unwrap();
    assert!(message.contains("text/html"), "{message}");
    assert!(!message.contains("before it was complete"), "{message}");
}
