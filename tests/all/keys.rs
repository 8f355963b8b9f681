//! Virtual keys in the state store: created through the admin API or the
//! CLI (the secret shown once), allowed models, tiers, expiry, revocation
//! taking effect at the next request (also on another gateway process
//! sharing Redis), and auth off only while no key exists anywhere.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use sluice::state::testing::RedisServer;

use crate::support::gateway::{self, Mock, reply_body};
use crate::support::http::{admin_text, error_of};
use crate::support::process::{Sluice, config_file, run};
use crate::support::state::{no_plugins, record_of, redis_section, send};

fn models(mock: &Mock) -> String {
    format!(
        r#"
[[providers]]
name = "mock"
base-url = "{}"

[models.small]
routes = [{{ provider = "mock", model = "mock-small" }}]

[models.large]
routes = [{{ provider = "mock", model = "mock-large" }}]
"#,
        mock.base()
    )
}

async fn create(client: &reqwest::Client, url: &str, spec: Value) -> reqwest::Response {
    client
        .post(format!("{url}/admin/keys"))
        .bearer_auth("adm")
        .json(&spec)
        .send()
        .await
        .unwrap()
}

async fn chat(
    client: &reqwest::Client,
    base: &str,
    key: Option<&str>,
    model: &str,
) -> reqwest::Response {
    let mut rb = client
        .post(format!("{base}/v1/chat/completions"))
        .json(&reply_body(model, "hi"));
    if let Some(k) = key {
        rb = rb.bearer_auth(k);
    }
    rb.send().await.unwrap()
}

async fn code_of(res: reqwest::Response, status: StatusCode) -> String {
    error_of(res, status).await["code"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_lifecycle_through_the_admin_api() {
    let mock = gateway::mock().await;
    let config = format!(
        "{}\n[server]\nadmin-key = \"adm\"\n{}",
        no_plugins(),
        models(&mock)
    );
    let gw = gateway::start(&config).await;
    let client = reqwest::Client::new();

    // No key anywhere: auth is off.
    assert_eq!(chat(&client, &gw.url, None, "large").await.status(), 200);

    let res = create(
        &client,
        &gw.url,
        json!({"id": "k1", "user": "bob", "models": ["small"]}),
    )
    .await;
    assert_eq!(res.status(), 201);
    let created: Value = res.json().await.unwrap();
    let secret = created["secret"].as_str().unwrap().to_string();
    assert!(
        secret.starts_with("sk-sluice-") && secret.len() > 40,
        "{secret}"
    );
    assert_eq!(created["key"]["id"], "k1");

    // A key exists now: auth is on at once.
    let res = chat(&client, &gw.url, None, "small").await;
    assert_eq!(
        code_of(res, StatusCode::UNAUTHORIZED).await,
        "invalid_api_key"
    );

    // Listings never show a secret.
    let listed = admin_text(&format!("{}/admin/keys", gw.url), "adm").await;
    assert!(
        listed.contains("\"k1\"") && !listed.contains(&secret) && !listed.contains("secret"),
        "{listed}"
    );

    // Allowed models: others answer as if they did not exist.
    assert_eq!(
        chat(&client, &gw.url, Some(&secret), "small")
            .await
            .status(),
        200
    );
    let err = error_of(
        chat(&client, &gw.url, Some(&secret), "large").await,
        StatusCode::NOT_FOUND,
    )
    .await;
    let unknown = error_of(
        chat(&client, &gw.url, Some(&secret), "nope").await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_eq!(err["code"], "model_not_found");
    assert_eq!(
        err["message"].as_str().unwrap().replace("large", "X"),
        unknown["message"].as_str().unwrap().replace("nope", "X"),
        "a forbidden model reads like an unknown one"
    );
    let listed: Value = client
        .get(gw.v1("models"))
        .bearer_auth(&secret)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["small"]);

    // Tiers: the key's own is interactive; batch is not allowed to it.
    let tiered = |tier: &'static str| {
        client
            .post(gw.v1("chat/completions"))
            .bearer_auth(&secret)
            .header("x-sluice-tier", tier)
            .json(&reply_body("small", "hi"))
            .send()
    };
    assert_eq!(tiered("interactive").await.unwrap().status(), 200);
    assert_eq!(
        code_of(tiered("batch").await.unwrap(), StatusCode::FORBIDDEN).await,
        "tier_not_allowed"
    );
    assert_eq!(
        error_of(tiered("gold").await.unwrap(), StatusCode::BAD_REQUEST).await["param"],
        "x-sluice-tier"
    );

    // The ledger names the key and its owner.
    let a = send(
        &client,
        &gw.v1("chat/completions"),
        Some(&secret),
        &reply_body("small", "x"),
    )
    .await;
    let r = record_of(&gw.gateway.state, &a.id, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(
        (r.key_id.as_deref(), r.user.as_deref()),
        (Some("k1"), Some("bob"))
    );

    // Expired and duplicate keys.
    let res = create(&client, &gw.url, json!({"id": "old", "expires-at": 1})).await;
    let old: Value = res.json().await.unwrap();
    let res = chat(&client, &gw.url, old["secret"].as_str(), "small").await;
    assert_eq!(
        code_of(res, StatusCode::UNAUTHORIZED).await,
        "expired_api_key"
    );
    let res = create(&client, &gw.url, json!({"id": "k1"})).await;
    assert_eq!(code_of(res, StatusCode::CONFLICT).await, "duplicate_key");
    let res = create(&client, &gw.url, json!({"id": "bad id!"})).await;
    assert_eq!(res.status(), 400);

    // Revocation: refused from the next request on.
    let res = client
        .delete(format!("{}/admin/keys/k1", gw.url))
        .bearer_auth("adm")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = chat(&client, &gw.url, Some(&secret), "small").await;
    let err = error_of(res, StatusCode::UNAUTHORIZED).await;
    assert_eq!(err["code"], "revoked_api_key");
    assert!(err["message"].as_str().unwrap().contains("revoked"));
    let res = client
        .delete(format!("{}/admin/keys/nope", gw.url))
        .bearer_auth("adm")
        .send()
        .await
        .unwrap();
    assert_eq!(code_of(res, StatusCode::NOT_FOUND).await, "key_not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_takes_effect_at_once_on_another_gateway() {
    let redis = RedisServer::start();
    let mock = gateway::mock().await;
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin-key = \"adm\"\n{}\n[[keys]]\nid = \"ops\"\nkey = \"sk-ops\"\n\n{}",
        models(&mock),
        redis_section(&redis.url(), "revoke:")
    );
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = Sluice::serve(&config_file(da.path(), &config)).await;
    let b = Sluice::serve(&config_file(db.path(), &config)).await;
    let client = reqwest::Client::new();

    let res = create(&client, &a.url, json!({"id": "shared"})).await;
    assert_eq!(res.status(), 201);
    let secret = res.json::<Value>().await.unwrap()["secret"]
        .as_str()
        .unwrap()
        .to_string();
    // Created on A, usable on B at once.
    assert_eq!(
        chat(&client, &b.url, Some(&secret), "small").await.status(),
        200
    );
    let res = client
        .delete(format!("{}/admin/keys/shared", a.url))
        .bearer_auth("adm")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // Revoked on A, refused by B's very next request.
    let res = chat(&client, &b.url, Some(&secret), "small").await;
    assert_eq!(
        code_of(res, StatusCode::UNAUTHORIZED).await,
        "revoked_api_key"
    );
    assert_eq!(
        chat(&client, &b.url, Some("sk-ops"), "small")
            .await
            .status(),
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_manages_keys_and_reports_usage() {
    let mock = gateway::mock().await;
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(dir.path(), &models(&mock));
    let cfg = config.to_str().unwrap();

    let (ok, out, err) = run(&[
        "keys", "create", "--id", "cli", "--user", "carol", "--model", "small", "--json",
        "--config", cfg,
    ])
    .await;
    assert!(ok, "{err}");
    let created: Value = serde_json::from_str(&out).unwrap();
    let secret = created["secret"].as_str().unwrap().to_string();
    let (ok, out, _) = run(&["keys", "list", "--config", cfg]).await;
    assert!(
        ok && out.contains("cli") && out.contains("carol") && out.contains("active"),
        "{out}"
    );
    assert!(
        !out.contains(&secret),
        "the secret is shown once, at creation"
    );

    let mut gw = Sluice::serve(&config).await;
    let client = reqwest::Client::new();
    assert_eq!(
        chat(&client, &gw.url, Some(&secret), "small")
            .await
            .status(),
        200
    );
    assert_eq!(
        chat(&client, &gw.url, Some(&secret), "small")
            .await
            .status(),
        200
    );
    // sled belongs to the running gateway: the CLI says so.
    let (ok, _, err) = run(&["usage", "--config", cfg]).await;
    assert!(!ok && err.contains("admin API"), "{err}");
    assert!(gw.stop().await);

    let (ok, out, err) = run(&["usage", "--by", "user", "--json", "--config", cfg]).await;
    assert!(ok, "{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["total"]["requests"], 2, "{report}");
    assert_eq!(report["rows"][0]["group"], "carol");
    let (ok, out, _) = run(&[
        "usage", "--by", "model", "--since", "1d", "--until", "now", "--config", cfg,
    ])
    .await;
    assert!(
        ok && out.lines().any(|l| l.starts_with("small")) && out.contains("total"),
        "{out}"
    );
    let (ok, _, err) = run(&["usage", "--by", "colour", "--config", cfg]).await;
    assert!(
        !ok && err.contains("key, user, feature, model or day"),
        "{err}"
    );

    let (ok, out, _) = run(&["keys", "revoke", "cli", "--config", cfg]).await;
    assert!(ok && out.contains("revoked"), "{out}");
    let (_, out, _) = run(&["keys", "list", "--config", cfg]).await;
    assert!(out.contains("revoked"), "{out}");
    let gw = Sluice::serve(&config).await;
    let res = chat(&client, &gw.url, Some(&secret), "small").await;
    assert_eq!(
        code_of(res, StatusCode::UNAUTHORIZED).await,
        "revoked_api_key"
    );
}
