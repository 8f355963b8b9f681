//! Human review of flagged answers, end to end: a guardrail's `flag`
//! verdict (test-probe, built from source) queues the answer in the state
//! store (sled and a real `redis-server`), served or held per model, streamed
//! or not; reviewers decide through `/admin/review` and `sluice review`.

use std::process::Command;
use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::sync::oneshot;

use sluice::config::Config;
use sluice::pipeline::Gateway;
use sluice::state::testing::RedisServer;
use sluice::state::{BackendKind, ReviewQueue};
use sluice_guests as guests;

use crate::support::gateway::{self, Mock, reply_body};
use crate::support::http::{sse_data, streamed_text};
use crate::support::plugins::plugin_dir_named;

/// The probe flags output containing `FLAG` (code `probe_output`, score
/// 0.75); here it checks output only, so a request is not flagged for its
/// own `REPLY: ... FLAG` text.
const PROBE: &str = "kind = \"guardrail\"\n[config]\nphases = \"output\"\n";

const MODELS: &str = r#"
[server]
admin-key = "adm"

[models.served]
routes = [{ provider = "mock", model = "mock-small" }]
output-guardrails = ["test-probe"]

[models.held]
routes = [{ provider = "mock", model = "mock-small" }]
output-guardrails = ["test-probe"]
review = { on-flag = "hold", held-message = "Held for review." }
"#;

/// A gateway with a review queue on `backend`, and what it runs on.
struct Setup {
    url: String,
    config: String,
    queue: ReviewQueue,
    _stop: oneshot::Sender<()>,
    _mock: Mock,
    _dir: tempfile::TempDir,
    _data: tempfile::TempDir,
    _redis: Option<RedisServer>,
}

async fn setup(backend: BackendKind) -> Setup {
    let dir = plugin_dir_named(&[("test-probe", guests::TEST_PROBE, PROBE)]);
    let data = tempfile::tempdir().unwrap();
    let redis = (backend == BackendKind::Redis).then(RedisServer::start);
    let state = match &redis {
        Some(r) => format!(
            "[state]\nbackend = \"redis\"\nredis-url = \"{}\"\n",
            r.url()
        ),
        None => format!("[state]\ndir = '{}'\n", data.path().join("state").display()),
    };
    let mock = gateway::mock().await;
    let config = gateway::config(&mock, dir.path(), &format!("{MODELS}\n{state}"));
    let parsed = Config::parse("test.toml", &config, &|k| std::env::var(k).ok()).unwrap();
    let gw = tokio::task::spawn_blocking(move || Gateway::start(parsed))
        .await
        .unwrap()
        .unwrap();
    // The gateway's queue, in its own state store.
    let queue = gw.review_queue().unwrap().clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(sluice::server::serve(listener, Arc::new(gw), async {
        let _ = stopped.await;
    }));
    Setup {
        url,
        config,
        queue,
        _stop: stop,
        _mock: mock,
        _dir: dir,
        _data: data,
        _redis: redis,
    }
}

impl Setup {
    async fn chat(&self, body: &Value) -> reqwest::Response {
        reqwest::Client::new()
            .post(format!("{}/v1/chat/completions", self.url))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    async fn stream(&self, model: &str, reply: &str) -> Vec<String> {
        let mut body = reply_body(model, reply);
        body["stream"] = json!(true);
        let res = self.chat(&body).await;
        assert_eq!(res.status(), 200);
        sse_data(&res.text().await.unwrap())
    }

    async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = reqwest::Client::new()
            .request(method, format!("{}/admin/review{path}", self.url))
            .bearer_auth("adm");
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap();
        let status = res.status();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    /// The items of request `request_id` in the listing.
    async fn item_of(&self, request_id: &str) -> Value {
        let (status, list) = self.admin(reqwest::Method::GET, "?status=all", None).await;
        assert_eq!(status, 200, "{list}");
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["request_id"] == request_id)
            .cloned()
            .unwrap_or_else(|| panic!("no item for {request_id}: {list}"))
    }
}

fn request_id(events_or_headers: &reqwest::header::HeaderMap) -> String {
    events_or_headers["x-sluice-request-id"]
        .to_str()
        .unwrap()
        .to_string()
}

macro_rules! on_both {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sled() {
                super::$name(sluice::state::BackendKind::Sled).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redis() {
                super::$name(sluice::state::BackendKind::Redis).await;
            }
        }
    )*};
}

on_both!(
    a_flagged_answer_is_served_and_queued,
    a_held_answer_is_replaced_by_the_message,
    reviewers_decide_once_through_the_admin_api,
);

async fn a_flagged_answer_is_served_and_queued(b: BackendKind) {
    let s = setup(b).await;
    // Not flagged: nothing queued, no header.
    let res = s.chat(&reply_body("served", "All fine.")).await;
    assert_eq!(res.status(), 200);
    assert!(res.headers().get("x-sluice-review").is_none());

    let res = s.chat(&reply_body("served", "Maybe FLAG this.")).await;
    assert_eq!(res.status(), 200);
    let id = request_id(res.headers());
    let review = res.headers()["x-sluice-review"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(res.headers()["x-sluice-guardrails"], "test-probe:flag");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "Maybe FLAG this.");
    let item = s.item_of(&id).await;
    assert_eq!(
        review,
        format!("queued; id={}", item["id"].as_str().unwrap())
    );
    assert_eq!(item["status"], "pending");
    assert_eq!(item["action"], "serve");
    assert_eq!(item["model"], "served");
    assert_eq!(item["flags"][0]["plugin"], "test-probe");
    assert_eq!(item["flags"][0]["code"], "probe_output");
    assert_eq!(item["flags"][0]["part"], "content");
    assert!((item["flags"][0]["score"].as_f64().unwrap() - 0.75).abs() < 1e-6);
    assert_eq!(
        item["answer"]["choices"][0]["message"]["content"],
        "Maybe FLAG this."
    );
    assert_eq!(item["messages"][0]["content"], "REPLY: Maybe FLAG this.");

    // Streamed: the client gets it all; the item is there by [DONE].
    let events = s.stream("served", "One line. Then FLAG it. Done").await;
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    assert_eq!(streamed_text(&events), "One line. Then FLAG it. Done");
    let (_, list) = s.admin(reqwest::Method::GET, "?status=pending", None).await;
    let streamed: Vec<&Value> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["stream"] == true)
        .collect();
    assert_eq!(streamed.len(), 1, "{list}");
    assert_eq!(
        streamed[0]["answer"]["choices"][0]["sent"],
        "One line. Then FLAG it. Done"
    );
    // Both items, newest first.
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
    assert_eq!(list["items"][0]["stream"], true);
}

async fn a_held_answer_is_replaced_by_the_message(b: BackendKind) {
    let s = setup(b).await;
    let res = s.chat(&reply_body("held", "Secret plan: FLAG now.")).await;
    assert_eq!(res.status(), 200);
    let id = request_id(res.headers());
    assert!(
        res.headers()["x-sluice-review"]
            .to_str()
            .unwrap()
            .starts_with("held; id=")
    );
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "Held for review.");
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    let item = s.item_of(&id).await;
    assert_eq!(item["action"], "hold");
    assert_eq!(
        item["answer"]["choices"][0]["message"]["content"],
        "Secret plan: FLAG now."
    );

    // Streamed: what passed before the flag stays sent; the flagged window
    // and the rest are withheld and replaced by the message.
    let events = s
        .stream(
            "held",
            "First part is fine. Then FLAG here. And more after.",
        )
        .await;
    assert_eq!(
        events.last().map(String::as_str),
        Some("[DONE]"),
        "{events:?}"
    );
    assert_eq!(
        streamed_text(&events),
        "First part is fine. Held for review."
    );
    let raw = events.join("\n");
    assert!(
        !raw.contains("FLAG") && !raw.contains("more after"),
        "{raw}"
    );
    let finish: Vec<Value> = events
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(e).ok())
        .filter(|v| v["choices"][0]["finish_reason"].is_string())
        .collect();
    assert_eq!(finish.len(), 1, "{events:?}");
    assert_eq!(finish[0]["choices"][0]["finish_reason"], "stop");
    let (_, list) = s.admin(reqwest::Method::GET, "", None).await;
    let item = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["stream"] == true)
        .cloned()
        .unwrap();
    let choice = &item["answer"]["choices"][0];
    assert_eq!(choice["sent"], "First part is fine. Held for review.");
    let withheld = choice["withheld"].as_str().unwrap();
    assert!(
        withheld.contains("Then FLAG here. ") && withheld.ends_with("And more after."),
        "{withheld:?}"
    );
}

async fn reviewers_decide_once_through_the_admin_api(b: BackendKind) {
    use reqwest::Method;
    let s = setup(b).await;
    let res = s.chat(&reply_body("served", "Is FLAG ok?")).await;
    let item = s.item_of(&request_id(res.headers())).await;
    let id = item["id"].as_str().unwrap().to_string();

    // The admin key is required.
    let res = reqwest::get(format!("{}/admin/review", s.url))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let (status, err) = s
        .admin(
            Method::POST,
            &format!("/{id}/approve"),
            Some(json!({"reviewer": " "})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
    assert_eq!(err["error"]["param"], "reviewer");
    let (status, _) = s.admin(Method::GET, "/nope", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = s.admin(Method::GET, "?status=maybe", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let (status, decided) = s
        .admin(
            Method::POST,
            &format!("/{id}/approve"),
            Some(json!({"reviewer": "alice", "note": "benign"})),
        )
        .await;
    assert_eq!(status, 200, "{decided}");
    assert_eq!(decided["status"], "approved");
    assert_eq!(decided["decision"]["reviewer"], "alice");
    assert_eq!(decided["decision"]["note"], "benign");
    assert!(decided["decision"]["at_ms"].as_u64().unwrap() > 1_600_000_000_000);

    let (status, err) = s
        .admin(
            Method::POST,
            &format!("/{id}/reject"),
            Some(json!({"reviewer": "bob"})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{err}");
    assert!(
        err["error"]["message"].as_str().unwrap().contains("alice"),
        "{err}"
    );

    let (_, shown) = s.admin(Method::GET, &format!("/{id}"), None).await;
    assert_eq!(shown["decision"]["reviewer"], "alice");
    let (_, pending) = s.admin(Method::GET, "?status=pending", None).await;
    assert!(pending["items"].as_array().unwrap().is_empty(), "{pending}");
    let (_, approved) = s.admin(Method::GET, "?status=approved&limit=5", None).await;
    assert_eq!(approved["items"][0]["id"], id.as_str());
    // The same record through the store API.
    let entry = s.queue.get(&id).await.unwrap();
    assert_eq!(entry.decision.unwrap().reviewer, "alice");
}

fn sluice(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice-e2e"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `sluice review` against the Redis a gateway is serving from.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_lists_shows_and_decides_beside_a_running_gateway() {
    let s = setup(BackendKind::Redis).await;
    let res = s.chat(&reply_body("served", "CLI FLAG case.")).await;
    let item = s.item_of(&request_id(res.headers())).await;
    let id = item["id"].as_str().unwrap().to_string();
    let file = s._data.path().join("sluice.toml");
    std::fs::write(&file, &s.config).unwrap();
    let config = file.to_str().unwrap();

    let cli = |args: Vec<&str>| {
        let mut all = vec!["review"];
        all.extend(args);
        let (ok, out, err) = sluice(&all);
        assert!(ok, "sluice {all:?}: {err}");
        out
    };
    let listed = tokio::task::block_in_place(|| cli(vec!["list", "--config", config]));
    assert!(
        listed.contains(&id) && listed.contains("test-probe:probe_output@0.75"),
        "{listed}"
    );
    let decided = tokio::task::block_in_place(|| {
        cli(vec![
            "reject",
            &id,
            "--config",
            config,
            "--reviewer",
            "carol",
            "--note",
            "leaks",
        ])
    });
    assert!(
        decided.starts_with(&format!("{id} rejected by carol at ")),
        "{decided}"
    );
    let shown: Value = serde_json::from_str(&tokio::task::block_in_place(|| {
        cli(vec!["show", &id, "--config", config])
    }))
    .unwrap();
    assert_eq!(shown["decision"]["reviewer"], "carol");
    assert_eq!(shown["decision"]["note"], "leaks");
    // The gateway's admin API sees the CLI's decision.
    let (_, via_api) = s.admin(reqwest::Method::GET, &format!("/{id}"), None).await;
    assert_eq!(via_api["status"], "rejected");
    let pending = tokio::task::block_in_place(|| cli(vec!["list", "--config", config]));
    assert!(!pending.contains(&id), "{pending}");

    // Deciding twice, or without a name, fails and says why.
    let (ok, _, err) = tokio::task::block_in_place(|| {
        sluice(&[
            "review",
            "approve",
            &id,
            "--config",
            config,
            "--reviewer",
            "dave",
        ])
    });
    assert!(!ok && err.contains("already rejected by carol"), "{err}");
}

/// A sled directory belongs to the running gateway: the CLI says to use
/// the admin API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_on_a_sled_store_in_use_points_at_the_admin_api() {
    let s = setup(BackendKind::Sled).await;
    let file = s._data.path().join("sluice.toml");
    std::fs::write(&file, &s.config).unwrap();
    let (ok, _, err) = tokio::task::block_in_place(|| {
        sluice(&["review", "list", "--config", file.to_str().unwrap()])
    });
    assert!(!ok && err.contains("/admin/review"), "{err}");
}
