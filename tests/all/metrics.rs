//! `/metrics`: exact counts after a scripted sequence of requests through
//! real sockets (a transform, a trap failing closed, a retry then a
//! fallback, an unknown model, a stream, denials), the page parsed
//! strictly, and who may read it.

use reqwest::StatusCode;
use serde_json::{Value, json};
use sluice_guests as guests;

use crate::support::gateway::{self, TestGateway, reply_body};
use crate::support::plugins::plugin_dir;
use crate::support::prom::{self, Scrape};
use crate::support::state::ledger;

const ADMIN: &str = "adm-secret";
const KEY: &str = "sk-team";

fn models() -> String {
    format!(
        r#"
[server]
admin-key = "{ADMIN}"

[[keys]]
id = "team"
key = "{KEY}"

[models.chat]
output-guardrails = ["test-tagger", "hostile-trap"]
routes = [
  {{ provider = "mock", model = "mock-small", input-cost-per-mtok = 1000.0, output-cost-per-mtok = 2000.0 }},
  {{ provider = "backup", model = "mock-large", input-cost-per-mtok = 1000.0, output-cost-per-mtok = 2000.0 }},
]
"#
    )
}

async fn post(gw: &TestGateway, body: &Value, feature: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(gw.v1("chat/completions"))
        .bearer_auth(KEY)
        .header("x-sluice-feature", feature)
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn scrape(gw: &TestGateway, bearer: Option<&str>) -> reqwest::Response {
    let mut rb = reqwest::Client::new().get(format!("{}/metrics", gw.url));
    if let Some(b) = bearer {
        rb = rb.bearer_auth(b);
    }
    rb.send().await.unwrap()
}

async fn page(gw: &TestGateway) -> Scrape {
    let res = scrape(gw, Some(ADMIN)).await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    prom::parse(&res.text().await.unwrap())
}

fn guarded_dir() -> tempfile::TempDir {
    plugin_dir(&[
        (guests::TEST_TAGGER, "kind = \"guardrail\"\norder = 1\n"),
        (guests::HOSTILE_TRAP, "kind = \"guardrail\"\norder = 2\n"),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scripted_sequence_gives_exact_counts() {
    let dir = guarded_dir();
    let mock = gateway::mock().await;
    let gw = gateway::start(&gateway::config(&mock, dir.path(), &models())).await;

    // 1. Served by the first route; the tagger transforms, the trap guest
    //    passes text containing "safe".
    let res = post(&gw, &reply_body("chat", "a safe answer"), "search").await;
    assert_eq!(res.status(), 200);
    // 2. The trap guest panics on this output: `closed` rejects.
    let rejected = post(&gw, &reply_body("chat", "boom"), "search")
        .await
        .status();
    assert!(rejected.is_client_error() || rejected.is_server_error());
    // 3. Two 503s (the attempt and its retry on `mock`), then `backup`.
    let mut body = reply_body("chat", "safe again");
    body["mock_fault"] = json!("status=503;fail-first=2");
    let res = post(&gw, &body, "chat").await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-sluice-provider"], "backup");
    // 4. A model the config does not name.
    let res = post(&gw, &reply_body("no-such-model", "x"), "search").await;
    let unknown = res.status().as_u16().to_string();

    let p = page(&gw).await;
    let rejected = rejected.as_u16().to_string();
    let req = |provider, upstream, status: &str| {
        p.value(
            "sluice_requests_total",
            &[
                ("model", "chat"),
                ("provider", provider),
                ("upstream_model", upstream),
                ("status", status),
                ("prompt_id", "none"),
                ("prompt_version", "none"),
            ],
        )
    };
    assert_eq!(req("mock", "mock-small", "200"), 1.0);
    assert_eq!(req("mock", "mock-small", &rejected), 1.0);
    assert_eq!(req("backup", "mock-large", "200"), 1.0);
    assert_eq!(
        p.value(
            "sluice_requests_total",
            &[
                ("model", "unknown"),
                ("provider", "none"),
                ("upstream_model", "none"),
                ("status", &unknown),
                ("prompt_id", "none"),
                ("prompt_version", "none"),
            ]
        ),
        1.0
    );
    assert_eq!(p.sum("sluice_requests_total", &[]), 4.0);
    assert_eq!(p.sum("sluice_request_duration_seconds_count", &[]), 4.0);
    let count = |name: &str, labels: &[(&str, &str)]| p.value(name, labels);
    assert_eq!(
        count("sluice_overhead_seconds_count", &[("model", "chat")]),
        3.0
    );
    assert_eq!(
        count("sluice_overhead_seconds_count", &[("model", "unknown")]),
        1.0
    );
    let up = |provider, model| {
        count(
            "sluice_upstream_duration_seconds_count",
            &[("provider", provider), ("upstream_model", model)],
        )
    };
    assert_eq!(up("mock", "mock-small"), 2.0);
    // The walk's time is reported under the route that answered.
    assert_eq!(up("backup", "mock-large"), 1.0);
    // Overhead buckets reach below 0.1 ms.
    let fine = p
        .names("sluice_overhead_seconds_bucket")
        .into_iter()
        .filter_map(|(l, _)| l.iter().find(|(k, _)| k == "le").map(|(_, v)| v.clone()))
        .filter(|le| le.parse::<f64>().is_ok_and(|x| x < 1e-4))
        .count();
    assert!(fine >= 2 * 6, "{fine}");

    // Retries and fallbacks, per provider.
    assert_eq!(
        count("sluice_upstream_retries_total", &[("provider", "mock")]),
        1.0
    );
    assert_eq!(
        count("sluice_upstream_retries_total", &[("provider", "backup")]),
        0.0
    );
    assert_eq!(
        count("sluice_upstream_fallbacks_total", &[("provider", "mock")]),
        1.0
    );
    assert_eq!(
        count("sluice_upstream_fallbacks_total", &[("provider", "backup")]),
        0.0
    );
    assert_eq!(
        count(
            "sluice_breaker_state",
            &[("provider", "mock"), ("state", "closed")]
        ),
        1.0
    );

    // Plugins: the tagger transformed the three answers; the trap guest
    // passed two and trapped once, failing closed.
    let verdict = |plugin, v| {
        count(
            "sluice_plugin_verdicts_total",
            &[("plugin", plugin), ("verdict", v)],
        )
    };
    assert_eq!(verdict("test-tagger", "transform"), 3.0);
    assert_eq!(verdict("test-tagger", "pass"), 0.0);
    assert_eq!(verdict("hostile-trap", "pass"), 2.0);
    assert_eq!(verdict("hostile-trap", "fail-closed"), 1.0);
    assert_eq!(verdict("hostile-trap", "reject"), 0.0);
    assert_eq!(
        count(
            "sluice_plugin_failures_total",
            &[("plugin", "hostile-trap"), ("kind", "trap")]
        ),
        1.0
    );
    assert_eq!(
        count(
            "sluice_plugin_failures_total",
            &[("plugin", "test-tagger"), ("kind", "trap")]
        ),
        0.0
    );
    assert_eq!(
        count(
            "sluice_plugin_instantiations_total",
            &[("plugin", "hostile-trap")]
        ),
        3.0
    );
    assert_eq!(
        count(
            "sluice_plugin_call_duration_seconds_count",
            &[("plugin", "hostile-trap")]
        ),
        3.0
    );
    // Every call finished within its deadline and no guest is left running.
    assert_eq!(
        count(
            "sluice_plugin_guests_running",
            &[("plugin", "hostile-trap")]
        ),
        0.0
    );
    assert_eq!(
        count(
            "sluice_plugin_guest_overrun_max_seconds",
            &[("plugin", "test-tagger")]
        ),
        0.0
    );
    let sha = gw
        .gateway
        .plugins
        .current()
        .get("hostile-trap")
        .unwrap()
        .sha256()
        .to_string();
    assert_eq!(
        count(
            "sluice_plugin_info",
            &[
                ("plugin", "hostile-trap"),
                ("kind", "guardrail"),
                ("sha256", &sha)
            ]
        ),
        1.0
    );
    assert_eq!(
        count("sluice_plugin_reloads_total", &[("result", "ok")]),
        2.0
    );
    assert_eq!(
        count("sluice_plugin_reloads_total", &[("result", "failed")]),
        0.0
    );

    // Tokens and cost: the ledger's three records, to the token and the
    // nano-dollar, split by feature.
    let records = ledger(&gw.gateway.state).await;
    assert_eq!(records.len(), 3);
    for feature in ["search", "chat"] {
        let mine: Vec<_> = records
            .iter()
            .filter(|r| r.feature.as_deref() == Some(feature))
            .collect();
        let tokens = |dir| {
            count(
                "sluice_tokens_total",
                &[
                    ("model", "chat"),
                    ("key", "team"),
                    ("feature", feature),
                    ("direction", dir),
                ],
            )
        };
        let input: u32 = mine.iter().map(|r| r.usage.prompt_tokens).sum();
        let output: u32 = mine.iter().map(|r| r.usage.completion_tokens).sum();
        assert!(input > 0 && output > 0);
        assert_eq!(tokens("in"), f64::from(input));
        assert_eq!(tokens("out"), f64::from(output));
        let cost: f64 = mine.iter().map(|r| r.cost_usd).sum();
        let got = count(
            "sluice_cost_usd_total",
            &[("model", "chat"), ("key", "team"), ("feature", feature)],
        );
        assert!((got - cost).abs() < 1e-8, "{got} vs {cost}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_time_their_first_token() {
    let dir = plugin_dir(&[]);
    let mock = gateway::mock().await;
    let rest = format!(
        "[server]\nadmin-key = \"{ADMIN}\"\n[models.chat]\nroutes = [{{ provider = \"mock\", model = \"mock-small\" }}]\n"
    );
    let gw = gateway::start(&gateway::config(&mock, dir.path(), &rest)).await;
    let mut body = reply_body("chat", "one two three");
    body["stream"] = json!(true);
    let res = gw.chat(&body).await;
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    let p = page(&gw).await;
    assert_eq!(
        p.value(
            "sluice_time_to_first_token_seconds_count",
            &[("model", "chat")]
        ),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_and_budget_denials_are_counted() {
    let dir = plugin_dir(&[]);
    let mock = gateway::mock().await;
    let rest = format!(
        r#"
[server]
admin-key = "{ADMIN}"
[[keys]]
id = "team"
key = "{KEY}"
[[keys]]
id = "poor"
key = "sk-poor"
budget-usd = 0.000001
[state.rate-limits.key]
interactive = {{ rpm = 1 }}
[models.chat]
routes = [{{ provider = "mock", model = "mock-small", input-cost-per-mtok = 1000.0, output-cost-per-mtok = 1000.0 }}]
"#
    );
    let gw = gateway::start(&gateway::config(&mock, dir.path(), &rest)).await;
    assert_eq!(
        post(&gw, &reply_body("chat", "hi"), "f").await.status(),
        200
    );
    assert_eq!(
        post(&gw, &reply_body("chat", "hi"), "f").await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    let res = reqwest::Client::new()
        .post(gw.v1("chat/completions"))
        .bearer_auth("sk-poor")
        .json(&reply_body("chat", "hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let p = page(&gw).await;
    assert_eq!(
        p.value("sluice_denials_total", &[("reason", "rate_limit")]),
        1.0
    );
    assert_eq!(
        p.value("sluice_denials_total", &[("reason", "budget")]),
        1.0
    );
    assert_eq!(
        p.value(
            "sluice_requests_total",
            &[
                ("model", "chat"),
                ("provider", "none"),
                ("upstream_model", "none"),
                ("status", "429"),
                ("prompt_id", "none"),
                ("prompt_version", "none"),
            ]
        ),
        2.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feature_labels_are_bounded() {
    let dir = plugin_dir(&[]);
    let mock = gateway::mock().await;
    let rest = format!(
        "[server]\nadmin-key = \"{ADMIN}\"\nmetrics-label-limit = 2\n[[keys]]\nid = \"team\"\nkey = \"{KEY}\"\n[models.chat]\nroutes = [{{ provider = \"mock\", model = \"mock-small\" }}]\n"
    );
    let gw = gateway::start(&gateway::config(&mock, dir.path(), &rest)).await;
    let long = "x".repeat(65);
    for f in ["a", "b", "c", "d", "a", long.as_str()] {
        assert_eq!(post(&gw, &reply_body("chat", "hi"), f).await.status(), 200);
    }
    let p = page(&gw).await;
    let features: Vec<String> = p
        .names("sluice_tokens_total")
        .into_iter()
        .filter(|(l, _)| l.iter().any(|(k, v)| k == "direction" && v == "in"))
        .map(|(l, _)| l.iter().find(|(k, _)| k == "feature").unwrap().1.clone())
        .collect();
    assert_eq!(features, ["a", "b", "other"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hot_swap_shows_in_the_info_metric_and_reload_counts() {
    let dir = plugin_dir(&[(guests::TEST_TAGGER, "kind = \"guardrail\"\n")]);
    let mock = gateway::mock().await;
    let rest = format!("[server]\nadmin-key = \"{ADMIN}\"\n");
    let gw = gateway::start(&gateway::config(&mock, dir.path(), &rest)).await;
    let sha = |p: &Scrape| {
        p.names("sluice_plugin_info")
            .into_iter()
            .map(|(l, _)| l.iter().find(|(k, _)| k == "sha256").unwrap().1.clone())
            .collect::<Vec<_>>()
    };
    let before = sha(&page(&gw).await);
    assert_eq!(before.len(), 1);
    std::fs::copy(
        guests::HOSTILE_TRAP.wasm,
        dir.path().join("test-tagger.wasm"),
    )
    .unwrap();
    std::fs::write(dir.path().join("broken.wasm"), b"not wasm").unwrap();
    std::fs::write(dir.path().join("broken.toml"), "kind = \"guardrail\"\n").unwrap();
    let res = reqwest::Client::new()
        .post(format!("{}/admin/reload", gw.url))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let p = page(&gw).await;
    let after = sha(&p);
    assert_eq!(after.len(), 1);
    assert_ne!(before, after);
    assert_eq!(
        p.value("sluice_plugin_reloads_total", &[("result", "ok")]),
        2.0
    );
    assert_eq!(
        p.value("sluice_plugin_reloads_total", &[("result", "failed")]),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_follows_server_metrics() {
    let dir = plugin_dir(&[]);
    let mock = gateway::mock().await;
    let cases = [
        (format!("[server]\nadmin-key = \"{ADMIN}\"\n"), None, 401),
        (
            format!("[server]\nadmin-key = \"{ADMIN}\"\n"),
            Some("wrong"),
            401,
        ),
        (
            format!("[server]\nadmin-key = \"{ADMIN}\"\n"),
            Some(ADMIN),
            200,
        ),
        // No admin key: admin-only metrics do not exist, as /admin/*.
        (String::new(), Some(ADMIN), 404),
        ("[server]\nmetrics = \"public\"\n".to_string(), None, 200),
        (
            format!("[server]\nadmin-key = \"{ADMIN}\"\nmetrics = \"off\"\n"),
            Some(ADMIN),
            404,
        ),
    ];
    for (server, bearer, want) in cases {
        let gw = gateway::start(&gateway::config(&mock, dir.path(), &server)).await;
        let res = scrape(&gw, bearer).await;
        assert_eq!(res.status().as_u16(), want, "{server} {bearer:?}");
        if want == 200 {
            prom::parse(&res.text().await.unwrap());
        }
    }
}
