//! `[server] runtime = "thread-per-core"` against the real binary: chat
//! and streams are served, connections land on every serving runtime
//! (`sluice_server_*_total{runtime}`), and SIGTERM drains streams in flight
//! on all of them before a clean exit.

use std::time::Duration;

use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::support::http::{assert_streams_finished, open_stream, rest, sse_data, streamed_text};
use crate::support::process::Sluice;
use crate::support::prom;

/// Fresh connections per test: the kernel spreads connections over the
/// listeners by a hash of their addresses, so with this many the chance
/// that all of them land on one of two runtimes is 2^-39.
const CONNECTIONS: usize = 40;

fn config(base: &str, threads: usize) -> String {
    format!(
        r#"[server]
runtime = "thread-per-core"
threads = {threads}
metrics = "public"
shutdown-grace-ms = 30000

[[providers]]
name = "up"
base-url = "{base}"

[models.chat]
routes = [{{ provider = "up", model = "m" }}]
"#
    )
}

/// A client that opens a new connection for every request.
fn fresh_connections() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

/// The mock upstream in this process, tokens `token_delay_ms` apart.
async fn mock(token_delay_ms: u64) -> (String, tokio::task::JoinHandle<anyhow::Result<()>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/v1", listener.local_addr().unwrap());
    let task = tokio::spawn(sluice::mock::serve(
        listener,
        sluice::mock::MockConfig {
            token_delay_ms,
            ..Default::default()
        },
    ));
    (base, task)
}

fn chat(text: &str, stream: bool) -> Value {
    json!({"model": "chat", "stream": stream,
        "messages": [{"role": "user", "content": text}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_and_streams_are_served_on_every_runtime() {
    let (base, mock) = mock(0).await;
    let mut sluice = Sluice::start(&config(&base, 2), None).await;
    let client = fresh_connections();
    let url = sluice.v1("chat/completions");
    let answers = join_all((0..CONNECTIONS).map(|i| {
        let (client, url) = (client.clone(), url.clone());
        async move {
            let res = client
                .post(&url)
                .json(&chat(&format!("REPLY: answer {i}"), false))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200);
            res.json::<Value>().await.unwrap()
        }
    }))
    .await;
    for (i, a) in answers.iter().enumerate() {
        assert_eq!(
            a["choices"][0]["message"]["content"],
            format!("answer {i}"),
            "{a}"
        );
    }
    let res = client
        .post(&url)
        .json(&chat("REPLY: a streamed answer in words", true))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let events = sse_data(&res.text().await.unwrap());
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    assert_eq!(streamed_text(&events), "a streamed answer in words");

    let page = client
        .get(format!("{}/metrics", sluice.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let scrape = prom::parse(&page);
    let requests = scrape.names("sluice_server_requests_total");
    let connections = scrape.names("sluice_server_connections_total");
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert_eq!(connections.len(), 2, "{connections:?}");
    for (labels, n) in &requests {
        assert!(*n >= 1.0, "runtime {labels:?} served nothing: {requests:?}");
    }
    // Every chat request, the stream and this scrape, each on its own connection.
    let total: f64 = requests.iter().map(|(_, n)| n).sum();
    assert_eq!(total, (CONNECTIONS + 2) as f64, "{requests:?}");
    let accepted: f64 = connections.iter().map(|(_, n)| n).sum();
    assert!(accepted >= (CONNECTIONS + 2) as f64, "{connections:?}");
    let started = sluice.log_lines();
    let accepting: Vec<_> = started
        .iter()
        .filter(|v| crate::support::process::message(v) == "accepting connections")
        .filter_map(|v| v["fields"]["runtime"].as_u64())
        .collect();
    assert_eq!(
        {
            let mut a = accepting.clone();
            a.sort();
            a
        },
        [0, 1],
        "{}",
        sluice.log_text()
    );
    assert!(sluice.stop().await, "{}", sluice.log_text());
    mock.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_streams_on_every_runtime() {
    // Tokens spaced out, so the streams are mid-answer at SIGTERM.
    let (base, mock) = mock(20).await;
    let mut sluice = Sluice::start(&config(&base, 2), None).await;
    let client = fresh_connections();
    let url = sluice.v1("chat/completions");
    let bodies = join_all((0..CONNECTIONS).map(|i| {
        let (client, url) = (&client, &url);
        async move {
            let text = format!("REPLY: stream {i} has a few words in it");
            open_stream(client, url, &chat(&text, true)).await
        }
    }))
    .await;
    sluice.signal("TERM");
    let texts = join_all(bodies.into_iter().map(|(first, body)| async move {
        String::from_utf8_lossy(&first).into_owned() + &rest(body).await
    }))
    .await;
    assert_streams_finished(&texts, "in it");
    let status = sluice
        .exit_within(Duration::from_secs(30))
        .await
        .unwrap_or_else(|| panic!("still running:\n{}", sluice.log_text()));
    assert!(status.success(), "{status:?}\n{}", sluice.log_text());
    // Each runtime stopped accepting and drained its own connections.
    let draining = sluice
        .log_lines()
        .iter()
        .filter(|v| crate::support::process::message(v) == "draining connections")
        .count();
    assert_eq!(draining, 2, "{}", sluice.log_text());
    mock.abort();
}
