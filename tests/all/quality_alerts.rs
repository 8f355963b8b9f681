//! Quality alerts: a known sequence of answers (mock faults for errors, a
//! rejecting guardrail for rejections) fires the webhook once per episode;
//! the signal re-arms only when the rate falls below threshold × ratio.

use serde_json::{Value, json};
use sluice_guests as guests;

use crate::dashboard::ADMIN_KEY;
use crate::support::fixed::Fixed;
use crate::support::gateway::{self, TestGateway};
use crate::support::plugins::plugin_dir_named;

const RULES: &str = "kind = \"guardrail\"\n[config]\nrules = '''\n[{\"code\": \"fruit\", \"reason\": \"no fruit\", \"phrases\": [\"forbidden fruit\"]}]\n'''\n";

async fn start(hook: &Fixed, dir: &std::path::Path, mock: &gateway::Mock) -> TestGateway {
    let rest = format!(
        r#"
[server]
admin-key = "{ADMIN_KEY}"

[breaker]
enabled = false

[state]
alert-webhook = "{hook}"

[state.quality-alerts]
window-secs = 3600
min-requests = 4
error-rate-pct = 50
reject-rate-pct = 50
rearm-ratio = 0.5

[models.chat]
routes = [{{ provider = "mock", model = "mock-small" }}]

[models.guarded]
routes = [{{ provider = "mock", model = "mock-small" }}]
output-guardrails = ["rules"]
"#,
        hook = hook.url("/hook"),
    );
    gateway::start(&gateway::config(mock, dir, &rest)).await
}

async fn ok(gw: &TestGateway, model: &str) {
    let res = gw.chat(&gateway::reply_body(model, "fine")).await;
    assert_eq!(res.status(), 200);
}

async fn fail(gw: &TestGateway) {
    let mut body = gateway::reply_body("chat", "x");
    body["mock_fault"] = json!("status=500");
    let res = gw.chat(&body).await;
    assert!(res.status().is_server_error(), "{}", res.status());
}

async fn alerts(gw: &TestGateway, hook: &Fixed) -> Vec<Value> {
    gw.gateway.state.drain_alerts().await;
    hook.received()
        .iter()
        .map(|r| serde_json::from_str(&r.body).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_error_rate_fires_once_per_episode_with_hysteresis() {
    let hook = Fixed::start(|_| (204, "text/plain", String::new())).await;
    let dir = plugin_dir_named(&[]);
    let mock = gateway::mock().await;
    let gw = start(&hook, dir.path(), &mock).await;

    // 2 ok, 2 errors: 50 % at the 4th request (min-requests) fires.
    ok(&gw, "chat").await;
    ok(&gw, "chat").await;
    fail(&gw).await;
    assert!(
        alerts(&gw, &hook).await.is_empty(),
        "3 requests < min-requests"
    );
    fail(&gw).await;
    let got = alerts(&gw, &hook).await;
    assert_eq!(got.len(), 1, "{got:?}");
    let a = &got[0];
    assert_eq!(a["kind"], "quality");
    assert_eq!(a["subject"], "model:chat");
    assert_eq!(a["signal"], "error-rate");
    assert_eq!(a["requests"], 4);
    assert_eq!(a["rate_pct"], 50.0);
    assert_eq!(a["threshold_pct"], 50.0);
    assert_eq!(a["window_secs"], 3600);

    // Still failing: the same episode, no second POST.
    fail(&gw).await;
    fail(&gw).await;
    assert_eq!(alerts(&gw, &hook).await.len(), 1);
    let q = quality(&gw).await;
    assert_eq!(q["models"][0]["firing"], json!(["error-rate"]), "{q}");

    // 4 errors of 16 = 25 %: not below 50 % × 0.5 yet; one more ok re-arms.
    for _ in 0..10 {
        ok(&gw, "chat").await;
    }
    assert_eq!(
        quality(&gw).await["models"][0]["firing"],
        json!(["error-rate"])
    );
    ok(&gw, "chat").await;
    assert_eq!(quality(&gw).await["models"][0]["firing"], json!([]));
    assert_eq!(
        alerts(&gw, &hook).await.len(),
        1,
        "re-arming is not an alert"
    );

    // A second episode: (4 + 9) of (17 + 9) = 50 % fires again, once.
    for _ in 0..12 {
        fail(&gw).await;
    }
    let got = alerts(&gw, &hook).await;
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[1]["requests"], 26);
    assert!(got.iter().all(|a| a["signal"] == "error-rate"));
}

async fn quality(gw: &TestGateway) -> Value {
    reqwest::Client::new()
        .get(format!("{}/admin/quality", gw.url))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guardrail_rejections_fire_the_reject_rate_alert_per_model() {
    let hook = Fixed::start(|_| (204, "text/plain", String::new())).await;
    let dir = plugin_dir_named(&[("rules", guests::BUSINESS_RULES, RULES)]);
    let mock = gateway::mock().await;
    let gw = start(&hook, dir.path(), &mock).await;

    // Rejections on `guarded`, healthy traffic on `chat`: only `guarded` fires.
    for _ in 0..5 {
        ok(&gw, "chat").await;
    }
    ok(&gw, "guarded").await;
    for i in 0..4 {
        let res = gw
            .chat(&gateway::reply_body("guarded", "have some forbidden fruit"))
            .await;
        assert_eq!(res.status(), 422, "request {i}");
    }
    let got = alerts(&gw, &hook).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["subject"], "model:guarded");
    assert_eq!(got[0]["signal"], "reject-rate");
    // 3 of 4 is the first crossing of 50 % with min-requests met.
    assert_eq!(got[0]["requests"], 4);

    // A stream refused after its first window: answered 200, then counted
    // as a rejection (and listed as a stream's).
    let mut body = gateway::reply_body(
        "guarded",
        "This part passes. Then have some forbidden fruit.",
    );
    body["stream"] = json!(true);
    let res = gw.chat(&body).await;
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    assert!(
        text.contains("This part passes.") && text.contains("guardrail_rejected"),
        "{text}"
    );

    // An upstream that breaks off mid-stream: answered 200, then an error.
    let mut body = gateway::reply_body("chat", "One. Two. Three. Four.");
    body["stream"] = json!(true);
    body["mock_fault"] = json!("midstream-error");
    let res = gw.chat(&body).await;
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    assert!(text.contains("\"error\""), "{text}");

    let q = quality(&gw).await;
    let model = |name: &str| {
        let m = q["models"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["model"] == name)
            .unwrap();
        (
            m["requests"].as_u64().unwrap(),
            m["errors"].as_u64().unwrap(),
            m["rejects"].as_u64().unwrap(),
        )
    };
    assert_eq!(model("guarded"), (6, 0, 5), "{q}");
    assert_eq!(model("chat"), (6, 1, 0), "{q}");
    // The rejections are listed, newest first: plugin, code, reason; never
    // the prompt.
    let rejections = q["rejections"].as_array().unwrap();
    assert_eq!(rejections.len(), 5);
    assert_eq!(rejections[0]["stream"], true);
    assert!(rejections[1..].iter().all(|r| r["stream"] == false));
    for r in rejections {
        assert_eq!(
            (&r["model"], &r["plugin"], &r["code"], &r["reason"]),
            (
                &json!("guarded"),
                &json!("rules"),
                &json!("fruit"),
                &json!("no fruit")
            )
        );
    }
    assert!(!q.to_string().contains("have some"), "{q}");
    assert_eq!(alerts(&gw, &hook).await.len(), 1, "the same episode");
}

#[test]
fn bad_quality_alert_settings_are_refused_naming_the_key() {
    let config = "[state.quality-alerts]\nwindow-secs = 0\nrearm-ratio = 1.5\n";
    let err = sluice::config::Config::parse("q.toml", config, &|_| None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("q.toml:2:") && err.contains("window-secs"),
        "{err}"
    );
    assert!(
        err.contains("q.toml:3:") && err.contains("rearm-ratio"),
        "{err}"
    );
}
