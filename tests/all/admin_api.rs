//! The admin API: every route refuses without the admin key (401,
//! OpenAI-shaped); `/admin/plugins` describes what serves; `/admin/reload`
//! says what changed and `/admin/reloads` keeps the history; breakers and
//! quality are listed.

use reqwest::Method;
use serde_json::{Value, json};
use sluice_guests as guests;

use crate::dashboard::ADMIN_KEY;
use crate::hot_reload::{install, tagger_v2_bytes};
use crate::support::gateway::{self, TestGateway};
use crate::support::plugins::plugin_dir_named;

const TAGGER: &str =
    "kind = \"guardrail\"\n[limits]\ndeadline-ms = 700\nmemory-mb = 24\n[config]\ntag = \"v1:\"\n";

async fn start(dir: &std::path::Path) -> (TestGateway, gateway::Mock) {
    let mock = gateway::mock().await;
    let rest = format!(
        r#"
[server]
admin-key = "{ADMIN_KEY}"

[models.chat]
routes = [{{ provider = "mock", model = "mock-small" }}, {{ provider = "backup", model = "mock-large" }}]
output-guardrails = ["guard"]
"#
    );
    let gw = gateway::start(&gateway::config(&mock, dir, &rest)).await;
    (gw, mock)
}

async fn admin(gw: &TestGateway, method: Method, path: &str) -> Value {
    let res = reqwest::Client::new()
        .request(method, format!("{}{path}", gw.url))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{path}");
    res.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_admin_route_refuses_without_the_admin_key() {
    let dir = plugin_dir_named(&[("guard", guests::TEST_TAGGER, TAGGER)]);
    let (gw, _mock) = start(dir.path()).await;
    let client = reqwest::Client::new();
    let routes = [
        (Method::GET, "/admin/plugins"),
        (Method::POST, "/admin/reload"),
        (Method::GET, "/admin/reloads"),
        (Method::GET, "/admin/breakers"),
        (Method::GET, "/admin/quality"),
        (Method::GET, "/admin/overview"),
        (Method::GET, "/admin/usage"),
        (Method::GET, "/admin/keys"),
        (Method::POST, "/admin/keys"),
        (Method::DELETE, "/admin/keys/some-key"),
        (Method::GET, "/admin/prompts"),
        (Method::POST, "/admin/prompts/reload"),
        (Method::GET, "/admin/evals"),
        (Method::GET, "/admin/review"),
        (Method::POST, "/admin/review/x/approve"),
        (Method::GET, "/admin/cache"),
        (Method::DELETE, "/admin/cache"),
        (Method::POST, "/admin/cache/purge"),
        (Method::GET, "/metrics"),
    ];
    for (method, path) in &routes {
        for key in [None, Some("sk-wrong"), Some("")] {
            let mut req = client.request(method.clone(), format!("{}{path}", gw.url));
            if let Some(k) = key {
                req = req.bearer_auth(k);
            }
            let res = req.send().await.unwrap();
            assert_eq!(res.status(), 401, "{method} {path} with {key:?}");
            let body: Value = res.json().await.unwrap();
            assert_eq!(body["error"]["type"], "authentication_error", "{path}");
            assert_eq!(body["error"]["code"], "invalid_api_key", "{path}");
            assert!(body["error"]["message"].is_string(), "{path}");
        }
    }
    // With the key, the read routes answer.
    for (method, path) in routes.iter().filter(|(m, _)| *m == Method::GET) {
        let res = client
            .request(method.clone(), format!("{}{path}", gw.url))
            .bearer_auth(ADMIN_KEY)
            .send()
            .await
            .unwrap();
        assert_ne!(res.status(), 401, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugins_reloads_and_breakers_describe_what_serves() {
    let dir = plugin_dir_named(&[("guard", guests::TEST_TAGGER, TAGGER)]);
    let (gw, _mock) = start(dir.path()).await;
    let res = gw.chat(&gateway::reply_body("chat", "hi")).await;
    assert_eq!(res.status(), 200);

    let body = admin(&gw, Method::GET, "/admin/plugins").await;
    let p = &body["plugins"][0];
    assert_eq!(p["name"], "guard");
    assert_eq!(p["kind"], "guardrail");
    assert_eq!(p["state"], "loaded");
    assert!(
        p["world"]
            .as_str()
            .unwrap()
            .starts_with("sluice:plugin/guardrail@"),
        "{p}"
    );
    assert_eq!(p["sha256"].as_str().unwrap().len(), 64, "{p}");
    assert_eq!(p["limits"]["deadline-ms"], 700);
    assert_eq!(p["limits"]["memory-mb"], 24);
    assert_eq!(p["grants"], json!([]));
    assert_eq!(p["stats"]["calls"], 1);
    assert_eq!(p["stats"]["transform"], 1);

    // A changed plugin, a new one and a broken one, in one reload.
    install(dir.path(), "guard.wasm", &tagger_v2_bytes());
    std::fs::copy(guests::TEST_TAGGER.wasm, dir.path().join("extra.wasm")).unwrap();
    std::fs::write(dir.path().join("extra.toml"), TAGGER).unwrap();
    std::fs::write(dir.path().join("broken.wasm"), b"\0asm not a component").unwrap();
    std::fs::write(dir.path().join("broken.toml"), TAGGER).unwrap();
    let body = admin(&gw, Method::POST, "/admin/reload").await;
    let c = &body["changes"];
    assert_eq!(c["trigger"], "api");
    assert_eq!(c["changed"], json!(["guard"]), "{body}");
    assert_eq!(c["added"], json!(["extra"]), "{body}");
    assert_eq!(c["failed"][0]["plugin"], "broken", "{body}");
    assert!(body["reload"]["took-ms"].is_u64());

    // The broken one shows as failed, nothing serving in its place.
    let body = admin(&gw, Method::GET, "/admin/plugins").await;
    let broken = body["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "broken")
        .unwrap()
        .clone();
    assert_eq!(broken["state"], "failed");
    assert_eq!(broken["serving_previous"], false);
    assert!(
        broken["error"].as_str().unwrap().contains("broken"),
        "{broken}"
    );

    // Removing it: the next reload says so; the history has all three.
    std::fs::remove_file(dir.path().join("extra.wasm")).unwrap();
    let body = admin(&gw, Method::POST, "/admin/reload").await;
    assert_eq!(body["changes"]["removed"], json!(["extra"]), "{body}");
    let body = admin(&gw, Method::GET, "/admin/reloads").await;
    let triggers: Vec<&str> = body["reloads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["trigger"].as_str().unwrap())
        .collect();
    assert_eq!(triggers, ["api", "api", "initial"], "{body}");
    assert_eq!(body["reloads"][2]["added"], json!(["guard"]));

    let body = admin(&gw, Method::GET, "/admin/breakers").await;
    let providers: Vec<(&str, &str)> = body["breakers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["provider"].as_str().unwrap(),
                b["state"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(providers, [("mock", "closed"), ("backup", "closed")]);

    let body = admin(&gw, Method::GET, "/admin/overview").await;
    assert_eq!(body["chains"][0]["model"], "chat");
    assert_eq!(body["chains"][0]["output"], json!(["guard"]));
    assert_eq!(body["traffic"]["requests"], 1);
    assert!(body["traffic"]["overhead_p50_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(body["quality"]["models"][0]["requests"], 1);
}
