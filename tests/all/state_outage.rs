//! The state store going away: a gateway on Redis answers 503
//! `state_unavailable` (OpenAI-shaped) while Redis is down, before any
//! upstream call, so limits and budgets are never bypassed; once Redis is
//! back it serves again without a restart.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;
use sluice::state::testing::RedisServer;

use crate::support::gateway;
use crate::support::http::error_of;
use crate::support::state::{ledger, no_plugins, redis_section};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_is_a_503_and_the_gateway_recovers_without_a_restart() {
    let mut redis = RedisServer::start();
    let mock = gateway::mock().await;
    // No key (auth off), a user rate limit: every request asks Redis before
    // the upstream call.
    let config = format!(
        r#"
{}
{}
[state.rate-limits.user]
interactive = {{ rpm = 1000 }}

[[providers]]
name = "mock"
base-url = "{}"

[models.chat]
routes = [{{ provider = "mock", model = "mock-small" }}]
"#,
        no_plugins(),
        redis_section(&redis.url(), "outage:"),
        mock.base()
    );
    let gw = gateway::start(&config).await;
    let client = reqwest::Client::new();
    let url = gw.v1("chat/completions");
    let body = json!({"model": "chat", "user": "alice",
                      "messages": [{"role": "user", "content": "REPLY: served"}]});
    let post = || client.post(&url).json(&body).send();
    assert_eq!(post().await.unwrap().status(), 200);

    redis.kill();
    let res = post().await.unwrap();
    assert!(
        res.headers().get("x-sluice-request-id").is_some(),
        "{:?}",
        res.headers()
    );
    assert_eq!(res.headers()["x-sluice-attempts"], "0", "no upstream call");
    let err = error_of(res, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(
        (err["type"].as_str(), err["code"].as_str()),
        (Some("server_error"), Some("state_unavailable")),
        "{err}"
    );

    // A fresh, empty Redis on the same port: the client reconnects on its
    // own, with backoff, so poll until a request is served.
    redis.restart();
    let guard = Instant::now();
    loop {
        let res = post().await.unwrap();
        match res.status().as_u16() {
            200 => break,
            503 => {}
            s => panic!("unexpected {s}: {}", res.text().await.unwrap()),
        }
        assert!(guard.elapsed() < Duration::from_secs(60), "never recovered");
        // A poll interval while the client reconnects in the background.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The new server holds the ledger record of the request it served.
    assert_eq!(ledger(&gw.gateway.state).await.len(), 1);
}
