//! Rate limits through the gateway: requests and tokens per minute, per key
//! and per user, per tier; OpenAI's `x-ratelimit-*` headers on answers and
//! refusals, `Retry-After` on a 429 that waiting can fix; one limit shared
//! by two gateway processes on one Redis.
//!
//! The limits are per minute with a burst of the whole minute (GCRA), so a
//! quick run of requests meets the limit exactly; the tests never wait for
//! a limit to refill.

use reqwest::StatusCode;
use serde_json::{Value, json};
use sluice::state::testing::RedisServer;

use crate::support::gateway::{self, Mock, reply_body};
use crate::support::http::error_of;
use crate::support::process::{Sluice, config_file};
use crate::support::state::{no_plugins, redis_section};

fn config(mock: &Mock, state: &str) -> String {
    format!(
        r#"{}
[[providers]]
name = "mock"
base-url = "{}"

[models.chat]
routes = [{{ provider = "mock", model = "mock-small" }}]

[models.embed]
routes = [{{ provider = "mock", model = "mock-embed" }}]

[[keys]]
id = "app"
key = "sk-app"

{state}
"#,
        no_plugins(),
        mock.base()
    )
}

fn header(res: &reqwest::Response, name: &str) -> String {
    res.headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name}: {:?}", res.headers()))
        .to_str()
        .unwrap()
        .to_string()
}

async fn post(
    client: &reqwest::Client,
    url: &str,
    body: &Value,
    tier: Option<&str>,
) -> reqwest::Response {
    let mut rb = client.post(url).bearer_auth("sk-app").json(body);
    if let Some(t) = tier {
        rb = rb.header("x-sluice-tier", t);
    }
    rb.send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_count_down_and_the_429_says_when_to_come_back() {
    let mock = gateway::mock().await;
    let limits = "[state.rate-limits.key]\ninteractive = { rpm = 3, tpm = 100000 }\n";
    let gw = gateway::start(&config(&mock, limits)).await;
    let client = reqwest::Client::new();
    let url = gw.v1("chat/completions");
    for (i, remaining) in ["2", "1", "0"].into_iter().enumerate() {
        let res = post(&client, &url, &reply_body("chat", "hi"), None).await;
        assert_eq!(res.status(), 200);
        assert_eq!(header(&res, "x-ratelimit-limit-requests"), "3");
        assert_eq!(header(&res, "x-ratelimit-remaining-requests"), remaining);
        assert!(header(&res, "x-ratelimit-reset-requests").ends_with('s'));
        assert_eq!(header(&res, "x-ratelimit-limit-tokens"), "100000");
        let left: u64 = header(&res, "x-ratelimit-remaining-tokens")
            .parse()
            .unwrap();
        if i == 0 {
            // From a full bucket: the prompt's tokens plus the default
            // completion cap (1024). (Later ones see the refill too.)
            assert!((100_000 - 1100..100_000 - 1024).contains(&left), "{left}");
        }
    }
    let res = post(&client, &url, &reply_body("chat", "hi"), None).await;
    assert_eq!(header(&res, "x-ratelimit-remaining-requests"), "0");
    let retry: u64 = header(&res, "retry-after").parse().unwrap();
    assert!(
        (1..=20).contains(&retry),
        "one request back within 60 s / 3: {retry}"
    );
    let err = error_of(res, StatusCode::TOO_MANY_REQUESTS).await;
    assert_eq!(
        (err["type"].as_str(), err["code"].as_str()),
        (Some("rate_limit_error"), Some("rate_limit_exceeded"))
    );
    assert!(
        err["message"].as_str().unwrap().contains("key:app"),
        "{err}"
    );
    // Embeddings share the key's request limit.
    let res = post(
        &client,
        &gw.v1("embeddings"),
        &json!({"model": "embed", "input": "x"}),
        None,
    )
    .await;
    assert_eq!(res.status(), 429);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_limits_charge_the_prompt_and_the_completion_cap() {
    let mock = gateway::mock().await;
    let limits = "[state.rate-limits.key]\ninteractive = { tpm = 1000 }\n";
    let gw = gateway::start(&config(&mock, limits)).await;
    let client = reqwest::Client::new();
    let url = gw.v1("chat/completions");
    let mut body = reply_body("chat", "hi");
    body["max_tokens"] = json!(2000);
    // More than a minute's tokens: it can never pass, so no Retry-After.
    let res = post(&client, &url, &body, None).await;
    assert!(res.headers().get("retry-after").is_none());
    let err = error_of(res, StatusCode::TOO_MANY_REQUESTS).await;
    assert!(
        err["message"].as_str().unwrap().contains("can never pass"),
        "{err}"
    );
    body["max_tokens"] = json!(400);
    let res = post(&client, &url, &body, None).await;
    assert_eq!(res.status(), 200);
    assert!(
        res.headers().get("x-ratelimit-limit-requests").is_none(),
        "no request limit set"
    );
    let left: u32 = header(&res, "x-ratelimit-remaining-tokens")
        .parse()
        .unwrap();
    assert!((500..600).contains(&left), "1000 - prompt - 400 = {left}");
    let res = post(&client, &url, &body, None).await;
    assert_eq!(res.status(), 200);
    let res = post(&client, &url, &body, None).await;
    assert_eq!(
        res.status(),
        429,
        "the third 400-token request does not fit"
    );
    assert!(header(&res, "retry-after").parse::<u64>().unwrap() >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_and_tiers_have_limits_of_their_own() {
    let mock = gateway::mock().await;
    let limits = "[state.rate-limits.user]\ninteractive = { rpm = 2 }\nbatch = { rpm = 3 }\n";
    let gw = gateway::start(&config(&mock, limits)).await;
    let client = reqwest::Client::new();
    let url = gw.v1("chat/completions");
    let as_user = |user: &str| {
        let mut b = reply_body("chat", "hi");
        b["user"] = json!(user);
        b
    };
    let statuses = async |user: &str, tier: Option<&str>, n: usize| {
        let mut out = Vec::new();
        for _ in 0..n {
            out.push(
                post(&client, &url, &as_user(user), tier)
                    .await
                    .status()
                    .as_u16(),
            );
        }
        out
    };
    assert_eq!(statuses("alice", None, 3).await, [200, 200, 429]);
    // One user's flood leaves the others alone ...
    assert_eq!(statuses("bob", None, 2).await, [200, 200]);
    // ... and the batch tier (which config keys may pick) counts apart.
    assert_eq!(
        statuses("alice", Some("batch"), 4).await,
        [200, 200, 200, 429]
    );
    let res = post(&client, &url, &as_user("alice"), Some("batch")).await;
    let err = error_of(res, StatusCode::TOO_MANY_REQUESTS).await;
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("user:alice (batch tier)"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateway_processes_on_one_redis_share_a_limit() {
    let redis = RedisServer::start();
    let mock = gateway::mock().await;
    let state = format!(
        "{}\n[state.rate-limits.key]\ninteractive = {{ rpm = 5 }}\n",
        redis_section(&redis.url(), "rl:")
    );
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n{}",
        config(&mock, &state)
    );
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = Sluice::serve(&config_file(da.path(), &text)).await;
    let b = Sluice::serve(&config_file(db.path(), &text)).await;
    let client = reqwest::Client::new();
    let mut statuses = Vec::new();
    for i in 0..10 {
        let gw = if i % 2 == 0 { &a } else { &b };
        statuses.push(
            post(
                &client,
                &gw.v1("chat/completions"),
                &reply_body("chat", "hi"),
                None,
            )
            .await
            .status()
            .as_u16(),
        );
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        5,
        "{statuses:?}"
    );
    assert_eq!(&statuses[..5], [200; 5]);
}
