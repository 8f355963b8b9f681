//! What careless or hostile clients send, through the gateway over real
//! sockets: absurdly nested JSON, invalid UTF-8, huge message lists,
//! pipelined requests, and streams abandoned mid-answer (the upstream
//! request is cancelled every time).

use std::time::Duration;

use futures_util::StreamExt;
use futures_util::future::join_all;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::gateway::{self, TestGateway, reply_body};

const CHAT: &str = r#"
[models.chat]
routes = [{ provider = "mock", model = "mock-small" }]
"#;

async fn post_raw(gw: &TestGateway, body: Vec<u8>) -> reqwest::Response {
    reqwest::Client::new()
        .post(gw.v1("chat/completions"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_bodies_are_400_and_big_valid_ones_are_served() {
    let mock = gateway::mock().await;
    let dir = tempfile::tempdir().unwrap();
    let rest = format!("[server]\nbody-limit-kb = 4096\n{CHAT}");
    let gw = gateway::start(&gateway::config(&mock, dir.path(), &rest)).await;

    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let mut body =
        br#"{"model":"chat","messages":[{"role":"user","content":"x"}],"deep":"#.to_vec();
    body.extend_from_slice(deep.as_bytes());
    body.push(b'}');
    let res = post_raw(&gw, body).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let err: Value = res.json().await.unwrap();
    assert!(
        err["error"]["message"].as_str().unwrap().contains("JSON"),
        "{err}"
    );

    let mut body = br#"{"model":"chat","messages":[{"role":"user","content":""#.to_vec();
    body.extend_from_slice(&[0xff, 0xfe, b'x']);
    body.extend_from_slice(br#""}]}"#);
    let res = post_raw(&gw, body).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);

    let mut many: Vec<Value> = (0..10_000)
        .map(|i| json!({"role": if i % 2 == 0 { "user" } else { "assistant" }, "content": format!("m{i}")}))
        .collect();
    many.push(json!({"role": "user", "content": "REPLY: ten thousand and one"}));
    let res = gw.chat(&json!({"model": "chat", "messages": many})).await;
    assert_eq!(res.status(), 200);
    let v: Value = res.json().await.unwrap();
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "ten thousand and one"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_are_answered_in_order() {
    let mock = gateway::mock().await;
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway::start(&gateway::config(&mock, dir.path(), CHAT)).await;
    let request = |text: &str| {
        let body = reply_body("chat", text).to_string();
        format!(
            "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    let mut tcp = tokio::net::TcpStream::connect(gw.url.trim_start_matches("http://"))
        .await
        .unwrap();
    let both = format!("{}{}", request("first answer"), request("second answer"));
    tcp.write_all(both.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    let read_both = async {
        while !String::from_utf8_lossy(&got).contains("second answer") {
            let n = tcp.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&buf[..n]);
        }
    };
    tokio::time::timeout(Duration::from_secs(20), read_both)
        .await
        .expect("both answers");
    let text = String::from_utf8_lossy(&got);
    assert_eq!(text.matches("HTTP/1.1 200 OK").count(), 2, "{text}");
    assert!(text.find("first answer") < text.find("second answer"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_streams_cancel_their_upstream_requests() {
    // Tokens paced so that every stream is mid-answer when its client leaves.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mock = tokio::spawn(sluice::mock::serve(
        listener,
        sluice::mock::MockConfig {
            token_delay_ms: 50,
            ..Default::default()
        },
    ));
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "[plugins]\ndir = '{}'\nwatch = false\n\n[[providers]]\nname = \"mock\"\nbase-url = \"http://{addr}/v1\"\n{CHAT}",
        dir.path().display()
    );
    let gw = gateway::start(&config).await;
    const STREAMS: u64 = 200;
    let client = reqwest::Client::new();
    join_all((0..STREAMS).map(|i| {
        let client = client.clone();
        let url = gw.v1("chat/completions");
        async move {
            let res = client
                .post(url)
                // About 600 words at 50 ms each: far from done when dropped.
                .json(
                    &json!({"model": "chat", "stream": true, "mock_answer_bytes": 4000,
                    "messages": [{"role": "user", "content": format!("stream {i}")}]}),
                )
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200);
            let mut body = res.bytes_stream();
            body.next().await.unwrap().unwrap();
            // Dropped here: the client vanishes mid-answer.
        }
    }))
    .await;
    // The mock counts a stream when it notices its reader gone: poll it.
    let addr = addr.to_string();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let cancelled = loop {
        let n = mock_stats(&addr).await["streams_cancelled"]
            .as_u64()
            .unwrap_or(0);
        if n >= STREAMS || std::time::Instant::now() > deadline {
            break n;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(cancelled, STREAMS, "every upstream request is cancelled");
    mock.abort();
}

/// `GET /mock/stats` of a mock served by hand (this test needs its own
/// token pacing).
async fn mock_stats(addr: &str) -> serde_json::Value {
    reqwest::get(format!("http://{addr}/mock/stats"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}
