//! Router and cost-policy plugins in the pipeline, end to end: the router
//! orders routes per request (tags reach it), the cost policy sees spend
//! recorded from real usage and caps, downgrades or denies.

use reqwest::StatusCode;
use serde_json::{Value, json};

use sluice_guests as guests;

use crate::support::gateway::{self, reply_body};
use crate::support::http::error_of;
use crate::support::plugins::{first_party_dir, plugin_dir_named};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_router_plugin_orders_the_routes_per_request() {
    let dir = first_party_dir(&[guests::TIERED_ROUTER]);
    let mock = gateway::mock().await;
    let rest = r#"
[models.auto]
router = "tiered-router"
routes = [
  { provider = "mock", model = "mock-small", tier = "cheap", input-cost-per-mtok = 0.1 },
  { provider = "backup", model = "mock-large", tier = "expensive", input-cost-per-mtok = 10.0 },
]
"#;
    let gw = gateway::start(&gateway::config(&mock, dir.path(), rest)).await;
    let res = gw.chat(&reply_body("auto", "hi")).await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["x-sluice-provider"],
        "mock",
        "a trivial prompt goes cheap"
    );

    let res = reqwest::Client::new()
        .post(gw.v1("chat/completions"))
        .header("x-sluice-tags", "team-a, tier:expensive")
        .json(&reply_body("auto", "hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["x-sluice-provider"],
        "backup",
        "the tier tag reaches the router"
    );
    assert_eq!(res.headers()["x-sluice-model"], "mock-large");
}

const BUDGET: &str = r#"
kind = "cost-policy"
[config]
downgrade-at = 0.5
downgrade-to = "economy"
min-tokens = 1
"#;

/// The cost-policy seam end to end: spend recorded from real usage feeds the
/// next decision (cap, then downgrade), and an exhausted budget is a 402.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cost_policy_caps_downgrades_and_denies_from_recorded_spend() {
    let dir = plugin_dir_named(&[("budget-policy", guests::BUDGET_POLICY, BUDGET)]);
    let mock = gateway::mock().await;
    let rest = r#"
[models.premium]
cost-policy = "budget-policy"
routes = [{ provider = "mock", model = "mock-small", input-cost-per-mtok = 1000.0, output-cost-per-mtok = 1000.0 }]

[models.economy]
routes = [{ provider = "backup", model = "mock-large" }]

[[keys]]
id = "rich"
key = "sk-rich"
budget-usd = 0.05

[[keys]]
id = "echo"
key = "sk-echo"
budget-usd = 0.05

[[keys]]
id = "broke"
key = "sk-broke"
budget-usd = 0.0
"#;
    let gw = gateway::start(&gateway::config(&mock, dir.path(), rest)).await;
    let client = reqwest::Client::new();
    let send = |key: &'static str, body: Value| {
        client
            .post(gw.v1("chat/completions"))
            .bearer_auth(key)
            .json(&body)
            .send()
    };

    // The worst case (1024 completion tokens at $0.001) exceeds the budget: capped.
    let mut body = reply_body("premium", "x");
    body["mock_echo"] = json!(true);
    let res = send("sk-echo", body).await.unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    let echoed: Value =
        serde_json::from_str(body["choices"][0]["message"]["content"].as_str().unwrap()).unwrap();
    let cap = echoed["max_tokens"]
        .as_u64()
        .expect("a cap was sent upstream");
    assert!((1..50).contains(&cap), "cap {cap}");

    // The first answer's usage is recorded against `key:rich` ...
    let words = "alpha beta gamma delta epsilon zeta eta theta iota kappa ".repeat(3);
    let res = send("sk-rich", reply_body("premium", &words))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-sluice-provider"], "mock");
    // ... so past half the budget the next request is served by `economy`.
    let res = send("sk-rich", reply_body("premium", "again"))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-sluice-provider"], "backup", "downgraded");
    assert_eq!(res.headers()["x-sluice-model"], "mock-large");

    let err = error_of(
        send("sk-broke", reply_body("premium", "hi")).await.unwrap(),
        StatusCode::PAYMENT_REQUIRED,
    )
    .await;
    assert_eq!(err["code"], "cost_policy_denied");
    assert!(
        err["message"].as_str().unwrap().contains("budget-policy"),
        "{err}"
    );
}

/// A failing router or cost policy (the hostile guests trap for the model
/// `trap`): `open` serves the request as if the plugin had answered the
/// configured order / allow, `closed` fails it with a 503 naming the plugin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn router_and_cost_policy_failures_follow_their_failure_mode() {
    let dir = plugin_dir_named(&[
        (
            "router-closed",
            guests::HOSTILE_ROUTER,
            "kind = \"router\"\n",
        ),
        (
            "router-open",
            guests::HOSTILE_ROUTER,
            "kind = \"router\"\nfailure-mode = \"open\"\n",
        ),
        (
            "cost-closed",
            guests::HOSTILE_COST,
            "kind = \"cost-policy\"\n",
        ),
        (
            "cost-open",
            guests::HOSTILE_COST,
            "kind = \"cost-policy\"\nfailure-mode = \"open\"\n",
        ),
    ]);
    let mock = gateway::mock().await;
    let model = |plugins: &str| {
        format!(
            "[models.trap]\n{plugins}\nroutes = [{{ provider = \"mock\", model = \"mock-small\" }}, {{ provider = \"backup\", model = \"mock-large\" }}]\n"
        )
    };

    let open = model("router = \"router-open\"\ncost-policy = \"cost-open\"");
    let gw = gateway::start(&gateway::config(&mock, dir.path(), &open)).await;
    let res = gw.chat(&reply_body("trap", "hi")).await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["x-sluice-provider"],
        "mock",
        "the configured order, not the router's reversed one"
    );

    for (plugins, name) in [
        ("router = \"router-closed\"", "router-closed"),
        ("cost-policy = \"cost-closed\"", "cost-closed"),
    ] {
        let gw = gateway::start(&gateway::config(&mock, dir.path(), &model(plugins))).await;
        let err = error_of(
            gw.chat(&reply_body("trap", "hi")).await,
            StatusCode::SERVICE_UNAVAILABLE,
        )
        .await;
        assert_eq!(err["code"], "plugin_failure", "{err}");
        let message = err["message"].as_str().unwrap();
        assert!(
            message.contains(name) && message.contains("trapped"),
            "{err}"
        );
    }
}
