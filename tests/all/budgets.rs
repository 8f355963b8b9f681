//! Budgets through the gateway: the worst case is reserved before the call
//! and settled after it, so 1000 concurrent requests against a budget with
//! room for ten overspend by at most one request (sled, Redis, and two
//! gateway processes on one Redis); denials are `budget_exceeded` with a
//! `Retry-After` only when waiting can help; alerts fire once per
//! threshold; a restart keeps the spend.
//!
//! The route charges output tokens only and every answer uses its whole
//! `max_tokens`, so a request's cost equals its reserved worst case: $0.01.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use sluice::state::testing::RedisServer;
use sluice::state::{State, StateConfig, Subject};

use crate::support::fixed::Fixed;
use crate::support::gateway::{self, Mock};
use crate::support::http::{admin_json, error_of};
use crate::support::process::{Sluice, config_file};
use crate::support::state::{ledger, no_plugins, redis_section, send};

/// One request's cost (10 completion tokens at $1000 per million).
const COST: f64 = 0.01;
/// Room for ten requests.
const BUDGET: f64 = 0.1;

fn models(mock: &Mock) -> String {
    format!(
        r#"
{}
[[providers]]
name = "mock"
base-url = "{}"

[models.chat]
routes = [{{ provider = "mock", model = "mock-small", input-cost-per-mtok = 0.0, output-cost-per-mtok = 1000.0 }}]
"#,
        no_plugins(),
        mock.base()
    )
}

/// `state` is the `[state]` section (backend) or empty; budgets follow it.
fn budget_config(mock: &Mock, state: &str, extra: &str) -> String {
    let state = if state.is_empty() { "[state]\n" } else { state };
    format!(
        "{}\n{state}{extra}\n[state.budgets]\nusers = {{ alice = {{ day-usd = {BUDGET} }} }}\n",
        models(mock)
    )
}

/// A request for alice whose answer is exactly 10 tokens.
fn body() -> Value {
    json!({
        "model": "chat",
        "user": "alice",
        "max_tokens": 10,
        "messages": [{"role": "user", "content": "REPLY: one two three four five six seven eight nine ten eleven twelve"}],
    })
}

/// Fire `n` requests at once, spread over `urls`; returns the statuses and
/// asserts every refusal is a `budget_exceeded`.
async fn race(urls: &[String], n: usize) -> usize {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1000)
        .build()
        .unwrap();
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let client = client.clone();
            let url = urls[i % urls.len()].clone();
            tokio::spawn(async move { client.post(url).json(&body()).send().await.unwrap() })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        let res = t.await.unwrap();
        match res.status().as_u16() {
            200 => ok += 1,
            429 => {
                let err = error_of(res, reqwest::StatusCode::TOO_MANY_REQUESTS).await;
                assert_eq!(err["code"], "budget_exceeded", "{err}");
            }
            s => panic!("unexpected status {s}: {}", res.text().await.unwrap()),
        }
    }
    ok
}

/// alice's settled spend today, from `state`.
async fn spent_today(state: &State) -> (f64, f64) {
    let who = Subject {
        user: Some("alice"),
        ..Subject::default()
    };
    let day = state
        .spend(&who)
        .await
        .unwrap()
        .into_iter()
        .find(|s| s.period.starts_with("day:"))
        .unwrap();
    (day.spent_usd, day.reserved_usd)
}

fn check_race(label: &str, accepted: usize, spent: f64) {
    println!("budget race ({label}): {accepted} of 1000 accepted, ${spent:.4} spent of ${BUDGET}");
    assert!(accepted >= 10, "{label}: room for ten, {accepted} accepted");
    assert!(
        spent <= BUDGET + COST + 1e-9,
        "{label}: overspent by more than one request: ${spent}"
    );
    assert!(accepted <= 11, "{label}: {accepted} accepted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_requests_overspend_by_at_most_one_on_sled() {
    let mock = gateway::mock().await;
    let gw = gateway::start(&budget_config(&mock, "", "")).await;
    let accepted = race(&[gw.v1("chat/completions")], 1000).await;
    let (spent, reserved) = spent_today(&gw.gateway.state).await;
    check_race("sled", accepted, spent);
    assert_eq!(reserved, 0.0, "every reservation was settled or released");
    let records = ledger(&gw.gateway.state).await;
    assert_eq!(records.len(), accepted);
    let sum: f64 = records.iter().map(|r| r.cost_usd).sum();
    assert!(
        (sum - spent).abs() < 1e-9,
        "ledger {sum} vs counters {spent}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_requests_overspend_by_at_most_one_on_redis() {
    let redis = RedisServer::start();
    let mock = gateway::mock().await;
    let section = redis_section(&redis.url(), "race:");
    let gw = gateway::start(&budget_config(&mock, &section, "")).await;
    let accepted = race(&[gw.v1("chat/completions")], 1000).await;
    let (spent, reserved) = spent_today(&gw.gateway.state).await;
    check_race("redis", accepted, spent);
    assert_eq!(reserved, 0.0);
    assert_eq!(ledger(&gw.gateway.state).await.len(), accepted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateway_processes_on_one_redis_share_the_budget() {
    let redis = RedisServer::start();
    let mock = gateway::mock().await;
    let section = redis_section(&redis.url(), "shared:");
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let config = budget_config(&mock, &section, "");
    let ga = Sluice::serve(&config_file(a.path(), &config)).await;
    let gb = Sluice::serve(&config_file(b.path(), &config)).await;
    let accepted = race(
        &[ga.v1("chat/completions"), gb.v1("chat/completions")],
        1000,
    )
    .await;
    let state = State::open(&StateConfig {
        backend: sluice::state::BackendKind::Redis,
        redis_url: Some(redis.url()),
        key_prefix: "shared:".into(),
        warm_tokenizer: false,
        ..StateConfig::default()
    })
    .await
    .unwrap();
    let (spent, reserved) = spent_today(&state).await;
    check_race("two processes, one redis", accepted, spent);
    assert_eq!(reserved, 0.0);
    let records = ledger(&state).await;
    assert_eq!(records.len(), accepted, "both gateways write one ledger");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_only_when_requests_in_flight_hold_the_budget() {
    let mock = gateway::mock().await;
    // Room for one and a half requests.
    let config = format!(
        "{}\n[state.budgets]\nusers = {{ alice = {{ day-usd = {} }} }}\n",
        models(&mock),
        COST * 1.5
    );
    let gw = gateway::start(&config).await;
    let client = reqwest::Client::new();
    let url = gw.v1("chat/completions");
    // A slow request holds its reservation ...
    let mut slow = body();
    slow["mock_fault"] = json!("latency=3000");
    let held = tokio::spawn({
        let (client, url) = (client.clone(), url.clone());
        async move { send(&client, &url, None, &slow).await }
    });
    let state = gw.gateway.state.clone();
    let reserved = async {
        while spent_today(&state).await.1 == 0.0 {
            // A poll interval: the reservation is made by another task.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), reserved)
        .await
        .unwrap();
    // ... so the next one is refused, and may come back when it settles.
    let res = client.post(&url).json(&body()).send().await.unwrap();
    assert_eq!(res.headers()["retry-after"], "1");
    let err = error_of(res, reqwest::StatusCode::TOO_MANY_REQUESTS).await;
    assert_eq!(
        (err["type"].as_str(), err["code"].as_str()),
        (Some("insufficient_quota"), Some("budget_exceeded"))
    );
    assert!(
        err["message"].as_str().unwrap().contains("user:alice"),
        "{err}"
    );
    assert_eq!(held.await.unwrap().status, 200);
    // Now $0.01 of $0.015 is spent: the next request cannot fit this
    // period whatever settles, so no Retry-After.
    let res = client.post(&url).json(&body()).send().await.unwrap();
    assert!(
        res.headers().get("retry-after").is_none(),
        "{:?}",
        res.headers()
    );
    let err = error_of(res, reqwest::StatusCode::TOO_MANY_REQUESTS).await;
    assert_eq!(err["code"], "budget_exceeded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_fire_once_per_threshold() {
    let hook = Fixed::start(|_| (204, "text/plain", String::new())).await;
    let mock = gateway::mock().await;
    let extra = format!("alert-webhook = \"{}\"\n", hook.url("/alerts"));
    let gw = gateway::start(&budget_config(&mock, "", &extra)).await;
    let client = reqwest::Client::new();
    let url = gw.v1("chat/completions");
    // Ten requests spend the budget; two more are refused.
    let mut statuses = Vec::new();
    for _ in 0..12 {
        statuses.push(send(&client, &url, None, &body()).await.status);
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        10,
        "{statuses:?}"
    );
    gw.gateway.state.drain_alerts().await;
    let got = hook.received();
    let alerts: Vec<Value> = got
        .iter()
        .map(|r| serde_json::from_str(&r.body).unwrap())
        .collect();
    let thresholds: Vec<f64> = alerts
        .iter()
        .map(|a| a["threshold_pct"].as_f64().unwrap())
        .collect();
    assert_eq!(thresholds, [50.0, 80.0, 100.0], "{alerts:?}");
    for a in &alerts {
        assert_eq!(a["scope"], "user:alice");
        assert!(a["period"].as_str().unwrap().starts_with("day:"));
        assert!((a["budget_usd"].as_f64().unwrap() - BUDGET).abs() < 1e-9);
        assert!(
            a["spent_usd"].as_f64().unwrap() * 100.0
                >= a["threshold_pct"].as_f64().unwrap() * BUDGET - 1e-9
        );
    }
    assert!(
        got.iter()
            .all(|r| r.method == "POST" && r.path == "/alerts")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_the_spend() {
    let mock = gateway::mock().await;
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(
        dir.path(),
        &format!(
            "{}\n[server]\nlisten = \"127.0.0.1:0\"\nadmin-key = \"adm\"\n",
            budget_config(&mock, "", "")
        ),
    );
    let client = reqwest::Client::new();
    let mut first = Sluice::serve(&config).await;
    for _ in 0..6 {
        let a = send(&client, &first.v1("chat/completions"), None, &body()).await;
        assert_eq!(a.status, 200);
    }
    assert!(first.stop().await, "graceful exit:\n{}", first.log_text());
    let second = Sluice::serve(&config).await;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(
            send(&client, &second.v1("chat/completions"), None, &body())
                .await
                .status,
        );
    }
    assert_eq!(
        statuses,
        [200, 200, 200, 200, 429],
        "six of ten were spent before the restart"
    );
    let usage: Value = admin_json(Method::GET, &second.admin("usage?by=user"), "adm").await;
    assert_eq!(usage["total"]["requests"], 10, "{usage}");
    assert_eq!(usage["rows"][0]["group"], "alice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_global_budget_stops_every_caller() {
    let mock = gateway::mock().await;
    // Room for three requests, whoever sends them.
    let config = format!(
        "{}\n[state.budgets]\nglobal = {{ month-usd = {} }}\n",
        models(&mock),
        COST * 3.0
    );
    let gw = gateway::start(&config).await;
    let client = reqwest::Client::new();
    let url = gw.v1("chat/completions");
    let as_user = |user: &str| {
        let mut b = body();
        b["user"] = json!(user);
        b
    };
    let mut statuses = Vec::new();
    for user in ["alice", "alice", "bob", "bob", "carol"] {
        statuses.push(send(&client, &url, None, &as_user(user)).await.status);
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
    let res = client
        .post(&url)
        .json(&as_user("dave"))
        .send()
        .await
        .unwrap();
    assert!(res.headers().get("retry-after").is_none());
    let err = error_of(res, reqwest::StatusCode::TOO_MANY_REQUESTS).await;
    assert_eq!(err["code"], "budget_exceeded");
    assert!(err["message"].as_str().unwrap().contains("global"), "{err}");
}
