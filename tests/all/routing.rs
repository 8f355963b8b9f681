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
        .unwrap_or_else(|| panic!("a cap was sent upstream: {echoed}"));
    assert!((1..50).contains(&cap), "cap {cap}");

    // The first answer's usage is recorded against `key:rich` (its prompt,
    // about 35 tokens by the tokenizer's estimate, leaves room for a
    // capped completion) ...
    let words = "alpha beta gamma delta epsilon zeta eta theta iota kappa ".repeat(2);
    let res = send("sk-rich", reply_body("premium", &words))
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
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

/// What the upstream received for `text` sent to `model` (the mock echoes
/// the request), or the error when the gateway refused it.
async fn upstream_saw(
    gw: &gateway::TestGateway,
    model: &str,
    text: &str,
    max_tokens: Option<u32>,
) -> Result<(Value, String), (StatusCode, Value)> {
    let mut body = json!({
        "model": model,
        "messages": [{"role": "user", "content": text}],
        "mock_echo": true,
    });
    if let Some(n) = max_tokens {
        body["max_tokens"] = json!(n);
    }
    let res = gw.chat(&body).await;
    let status = res.status();
    let provider = res
        .headers()
        .get("x-sluice-provider")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body: Value = res.json().await.unwrap();
    if status != StatusCode::OK {
        return Err((status, body["error"].clone()));
    }
    let content = body["choices"][0]["message"]["content"].as_str().unwrap();
    Ok((serde_json::from_str(content).unwrap(), provider))
}

/// A cost policy's edge values (hostile-cost-edges answers `cap=N` and
/// `downgrade=NAME` from the message): a cap of 0 is a deny, a cap never
/// raises the limit the request would have had (the client's `max_tokens`,
/// else the route's context window) nor sends u32::MAX upstream, and a
/// downgrade to a model that does not exist follows the failure mode.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cost_policy_edge_values_have_defined_answers() {
    let dir = plugin_dir_named(&[
        (
            "edges",
            guests::HOSTILE_COST_EDGES,
            "kind = \"cost-policy\"\n",
        ),
        (
            "edges-open",
            guests::HOSTILE_COST_EDGES,
            "kind = \"cost-policy\"\nfailure-mode = \"open\"\n",
        ),
    ]);
    let mock = gateway::mock().await;
    let rest = r#"
[models.capped]
cost-policy = "edges"
routes = [{ provider = "mock", model = "mock-small", context-window = 8000 }]

[models.lenient]
cost-policy = "edges-open"
routes = [{ provider = "mock", model = "mock-small", context-window = 8000 }]

[models.cheap]
routes = [{ provider = "backup", model = "mock-large" }]
"#;
    let gw = gateway::start(&gateway::config(&mock, dir.path(), rest)).await;
    let max_tokens = |r: &Result<(Value, String), (StatusCode, Value)>| match r {
        Ok((sent, _)) => sent["max_tokens"].as_u64(),
        Err(e) => panic!("refused: {e:?}"),
    };

    let (status, err) = upstream_saw(&gw, "capped", "cap=0", None)
        .await
        .unwrap_err();
    assert_eq!(status, StatusCode::PAYMENT_REQUIRED);
    assert_eq!(err["code"], "cost_policy_denied", "{err}");
    let (status, _) = upstream_saw(&gw, "capped", "cap=0", Some(100))
        .await
        .unwrap_err();
    assert_eq!(status, StatusCode::PAYMENT_REQUIRED);

    let huge = upstream_saw(&gw, "capped", "cap=4294967295", None).await;
    assert_eq!(max_tokens(&huge), None, "nothing to lower: left unset");
    let huge = upstream_saw(&gw, "capped", "cap=4294967295", Some(100)).await;
    assert_eq!(max_tokens(&huge), Some(100), "never raised");
    let over_window = upstream_saw(&gw, "capped", "cap=9000", None).await;
    assert_eq!(max_tokens(&over_window), None, "above the context window");
    let cap = upstream_saw(&gw, "capped", "cap=50", None).await;
    assert_eq!(max_tokens(&cap), Some(50));
    let cap = upstream_saw(&gw, "capped", "cap=50", Some(100)).await;
    assert_eq!(max_tokens(&cap), Some(50));

    let (_, provider) = upstream_saw(&gw, "capped", "downgrade=cheap", None)
        .await
        .unwrap();
    assert_eq!(provider, "backup", "a configured downgrade is served");
    let (status, err) = upstream_saw(&gw, "capped", "downgrade=nosuch", None)
        .await
        .unwrap_err();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(err["code"], "plugin_failure", "{err}");
    let message = err["message"].as_str().unwrap();
    assert!(
        message.contains("edges") && message.contains("`nosuch`"),
        "{message}"
    );
    let (_, provider) = upstream_saw(&gw, "lenient", "downgrade=nosuch", None)
        .await
        .unwrap();
    assert_eq!(provider, "mock", "open: served as if allowed");
    let set = gw.gateway.plugins.current();
    for name in ["edges", "edges-open"] {
        let stats = set.get(name).unwrap().stats();
        assert_eq!(stats.invalid_answer, 1, "{name}: {stats:?}");
    }
}

/// A router's answer is bounded in entries, not only in bytes: 100 000
/// empty routes (zero bytes of names) fail the call under the failure mode
/// instead of being served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_list_with_too_many_entries_fails_the_router() {
    let router = "kind = \"router\"\n[limits]\nmemory-mb = 64\ndeadline-ms = 5000\n";
    let dir = plugin_dir_named(&[("many", guests::HOSTILE_MANY_ROUTES, router)]);
    let mock = gateway::mock().await;
    let rest = r#"
[models.routed]
router = "many"
routes = [{ provider = "mock", model = "mock-small" }]
"#;
    let gw = gateway::start(&gateway::config(&mock, dir.path(), rest)).await;
    let res = gw.chat(&reply_body("routed", "many=3")).await;
    assert_eq!(
        res.status(),
        200,
        "a few empty routes: the configured order"
    );
    let err = error_of(
        gw.chat(&reply_body("routed", "many=100000")).await,
        StatusCode::SERVICE_UNAVAILABLE,
    )
    .await;
    assert_eq!(err["code"], "plugin_failure", "{err}");
    let message = err["message"].as_str().unwrap();
    assert!(
        message.contains("100000 list entries") && message.contains("64"),
        "{message}"
    );
    let stats = gw.gateway.plugins.current().get("many").unwrap().stats();
    assert_eq!((stats.calls, stats.output_too_large), (2, 1));
}
