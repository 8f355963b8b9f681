//! Hostile clients: half-sent request heads (slowloris) against the header
//! read timeout, the connection cap and the open-file limit.

use std::time::Duration;

use serde_json::json;

use crate::support::gateway::{self, reply_body};
use crate::support::process::Sluice;
use crate::support::raw::{closed_by_peer, half_open};

const CHAT: &str = r#"
[models.chat]
routes = [{ provider = "mock", model = "mock-small" }]
"#;

/// What the test process needs to open: more descriptors than the
/// gateway under test is given.
fn test_process_can_open(n: u64) {
    let limit = sluice::server::limits::raise_nofile_limit();
    assert!(
        limit.is_none_or(|l| l > n + 100),
        "this test opens {n} sockets; the open-file limit is {limit:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_connections_beyond_the_file_limit_do_not_starve_real_requests() {
    test_process_can_open(1100);
    let mock = gateway::mock().await;
    let config = format!(
        "[[providers]]\nname = \"mock\"\nbase-url = \"{}\"\n{CHAT}",
        mock.base()
    );
    let sluice = Sluice::start(&config, Some(1024)).await;
    let addr = sluice.url.trim_start_matches("http://").to_string();
    // One after the other, so each handshake completes into the accept
    // queue rather than overflowing it: the gateway really gets them all.
    let mut held = Vec::new();
    for _ in 0..1100 {
        let conn = tokio::time::timeout(Duration::from_secs(10), half_open(&addr)).await;
        held.extend(conn.ok().flatten());
    }
    assert_eq!(held.len(), 1100, "every half-open connection got through");

    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    for i in 0..3 {
        let res = client
            .post(format!("{}/v1/chat/completions", sluice.url))
            .json(&reply_body("chat", &format!("still here {i}")))
            .send()
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "a real request starved behind {} half-open connections: {e}\n{}",
                    held.len(),
                    sluice.log_text()
                )
            });
        assert_eq!(res.status(), 200);
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(
            body["choices"][0]["message"]["content"],
            json!(format!("still here {i}"))
        );
    }
    drop(held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_sent_head_is_closed_after_the_header_read_timeout() {
    let mock = gateway::mock().await;
    let dir = tempfile::tempdir().unwrap();
    let rest = format!("[server]\nheader-read-timeout-ms = 300\n{CHAT}");
    let gw = gateway::start(&gateway::config(&mock, dir.path(), &rest)).await;
    let addr = gw.url.trim_start_matches("http://").to_string();
    let mut tcp = half_open(&addr).await.unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(15), closed_by_peer(&mut tcp)).await;
    assert_eq!(closed, Ok(true), "the gateway kept a half-sent head open");
    // An idle keep-alive connection is held no longer either.
    let mut idle = tokio::net::TcpStream::connect(&addr).await.unwrap();
    use tokio::io::AsyncWriteExt;
    idle.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(15), closed_by_peer(&mut idle)).await;
    assert_eq!(
        closed,
        Ok(true),
        "an idle keep-alive connection stayed open"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_cap_the_oldest_connection_without_a_request_makes_room() {
    let mock = gateway::mock().await;
    let dir = tempfile::tempdir().unwrap();
    let rest = format!("[server]\nmax-connections = 4\n{CHAT}");
    let gw = gateway::start(&gateway::config(&mock, dir.path(), &rest)).await;
    let addr = gw.url.trim_start_matches("http://").to_string();
    let mut first = half_open(&addr).await.unwrap();
    let mut others = Vec::new();
    for _ in 0..3 {
        others.push(half_open(&addr).await.unwrap());
    }
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let res = client
        .post(gw.v1("chat/completions"))
        .json(&reply_body("chat", "admitted"))
        .send()
        .await
        .expect("a real request is admitted at the cap");
    assert_eq!(res.status(), 200);
    let closed = tokio::time::timeout(Duration::from_secs(15), closed_by_peer(&mut first)).await;
    assert_eq!(
        closed,
        Ok(true),
        "the oldest half-open connection was closed"
    );
}
