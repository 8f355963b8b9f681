//! SIGTERM / SIGINT against the real binary: in-flight streams finish, a
//! half-sent head or a never-ending stream cannot hold the exit past
//! `shutdown-grace-ms`, a second signal exits at once.

use std::time::Duration;

use futures_util::future::join_all;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use crate::support::http::{self, Body, assert_streams_finished, rest, sse_data};
use crate::support::process::{Sluice, message};
use crate::support::raw::{self, SSE_HEAD, chunk_event, half_open};

/// An upstream whose stream sends a complete event every 100 ms, forever.
async fn endless_stream() -> raw::RawUpstream {
    raw::upstream(|mut tcp, _req| async move {
        if tcp.write_all(SSE_HEAD).await.is_err() {
            return;
        }
        for i in 0.. {
            if tcp.write_all(&chunk_event(&format!("{i} "))).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
}

fn config(base: &str, grace_ms: u64) -> String {
    format!(
        r#"[server]
shutdown-grace-ms = {grace_ms}

[[providers]]
name = "up"
base-url = "{base}"

[models.chat]
routes = [{{ provider = "up", model = "m" }}]
"#
    )
}

/// Start a stream request and wait for its first event.
async fn open_stream(url: &str, text: &str) -> Body {
    let body = json!({"model": "chat", "stream": true,
        "messages": [{"role": "user", "content": text}]});
    let url = format!("{url}/v1/chat/completions");
    http::open_stream(&reqwest::Client::new(), &url, &body)
        .await
        .1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_sent_head_does_not_hold_the_exit() {
    let up = endless_stream().await;
    let mut sluice = Sluice::start(&config(&up.base, 500), None).await;
    let addr = sluice.url.trim_start_matches("http://").to_string();
    let _held = half_open(&addr).await.unwrap();
    sluice.signal("TERM");
    let status = sluice.exit_within(Duration::from_secs(20)).await;
    let status = status.unwrap_or_else(|| panic!("still running:\n{}", sluice.log_text()));
    assert!(status.success(), "{status:?}\n{}", sluice.log_text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_open_at_the_deadline_ends_with_an_error_event_and_the_exit_is_clean() {
    let up = endless_stream().await;
    let mut sluice = Sluice::start(&config(&up.base, 500), None).await;
    let body = open_stream(&sluice.url, "go on forever").await;
    sluice.signal("TERM");
    let text = tokio::time::timeout(Duration::from_secs(20), rest(body))
        .await
        .unwrap_or_else(|_| panic!("the stream outlived the deadline:\n{}", sluice.log_text()));
    let events = sse_data(&text);
    let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "shutting_down", "{text}");
    assert!(!events.contains(&"[DONE]".to_string()));
    let status = sluice.exit_within(Duration::from_secs(20)).await.unwrap();
    assert!(status.success(), "{status:?}\n{}", sluice.log_text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_exits_at_once() {
    let up = endless_stream().await;
    let mut sluice = Sluice::start(&config(&up.base, 600_000), None).await;
    let _body = open_stream(&sluice.url, "go on forever").await;
    sluice.signal("INT");
    sluice
        .wait_log(Duration::from_secs(20), |v| {
            message(v).starts_with("shutdown signal received")
        })
        .await
        .expect("the first signal starts the drain");
    sluice.signal("TERM");
    let status = sluice
        .exit_within(Duration::from_secs(20))
        .await
        .unwrap_or_else(|| panic!("a second signal did not end it:\n{}", sluice.log_text()));
    assert_eq!(status.code(), Some(128 + 15), "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_in_flight_finish_before_the_exit() {
    // A mock pacing its tokens, so the streams are mid-answer at SIGTERM.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/v1", listener.local_addr().unwrap());
    let mock = tokio::spawn(sluice::mock::serve(
        listener,
        sluice::mock::MockConfig {
            token_delay_ms: 20,
            ..Default::default()
        },
    ));
    let mut sluice = Sluice::start(&config(&base, 30_000), None).await;
    let bodies =
        join_all(
            (0..50).map(|i| {
                let url = sluice.url.clone();
                async move {
                    open_stream(&url, &format!("REPLY: stream {i} has a few words in it")).await
                }
            }),
        )
        .await;
    sluice.signal("TERM");
    let texts = join_all(bodies.into_iter().map(rest)).await;
    assert_streams_finished(&texts, "in it");
    let status = sluice.exit_within(Duration::from_secs(30)).await.unwrap();
    assert!(status.success(), "{status:?}");
    mock.abort();
}
