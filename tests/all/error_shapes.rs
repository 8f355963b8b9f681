//! Every error is OpenAI-shaped JSON with the `x-sluice-*` headers,
//! whoever produced it (router, body limit, hyper-level limits, upstream);
//! what the upstream said is kept; logs name the request.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use sluice_guests as guests;

use crate::support::gateway::{self, reply_body};
use crate::support::plugins::plugin_dir;
use crate::support::process::{Sluice, message};
use crate::support::raw::{self, SSE_HEAD, answer_json, chunk_event};

/// Assert an OpenAI-shaped error with the headers every answer carries.
async fn shaped(res: reqwest::Response, status: StatusCode) -> (reqwest::header::HeaderMap, Value) {
    assert_eq!(res.status(), status);
    let h = res.headers().clone();
    assert!(
        h["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json"),
        "{h:?}"
    );
    for name in [
        "x-sluice-request-id",
        "x-sluice-attempts",
        "x-sluice-overhead-ms",
    ] {
        assert!(h.contains_key(name), "{status}: missing {name}: {h:?}");
    }
    let body: Value = res.json().await.unwrap();
    for key in ["message", "type", "param", "code"] {
        assert!(
            body["error"].get(key).is_some(),
            "error lacks `{key}`: {body}"
        );
    }
    (h, body["error"].clone())
}

const CHAT: &str = r#"
[models.chat]
routes = [{ provider = "mock", model = "mock-small" }, { provider = "backup", model = "mock-large" }]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_made_by_the_http_layer_are_openai_json() {
    let mock = gateway::mock().await;
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway::start(&gateway::config(&mock, dir.path(), CHAT)).await;
    let client = reqwest::Client::new();

    let res = client.get(gw.v1("chat/completions")).send().await.unwrap();
    let (h, err) = shaped(res, StatusCode::METHOD_NOT_ALLOWED).await;
    assert_eq!(err["code"], "method_not_allowed");
    assert!(err["message"].as_str().unwrap().contains("GET"), "{err}");
    assert_eq!(h["allow"], "POST", "the Allow header survives");
    assert_eq!(h["x-sluice-attempts"], "0");

    let res = client
        .post(gw.v1("chat/completions"))
        .header("x-big", "a".repeat(70 * 1024))
        .json(&reply_body("chat", "x"))
        .send()
        .await
        .unwrap();
    let (_, err) = shaped(res, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE).await;
    assert_eq!(err["code"], "request_headers_too_large");

    let res = client.get(format!("{}/nope", gw.url)).send().await.unwrap();
    shaped(res, StatusCode::NOT_FOUND).await;

    // `Authorization: BEARER` is the same scheme (RFC 9110); a wrong key is a 401.
    let keyed = format!("{CHAT}\n[[keys]]\nid = \"k\"\nkey = \"sk-right\"\n");
    let gw = gateway::start(&gateway::config(&mock, dir.path(), &keyed)).await;
    let res = client
        .post(gw.v1("chat/completions"))
        .header("authorization", "BEARER sk-right")
        .json(&reply_body("chat", "capital scheme"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = client
        .post(gw.v1("chat/completions"))
        .header("authorization", "Bearer sk-wrong")
        .json(&reply_body("chat", "x"))
        .send()
        .await
        .unwrap();
    shaped(res, StatusCode::UNAUTHORIZED).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_errors_keep_their_param_and_carry_what_was_tried() {
    let up = raw::upstream(|mut tcp, _| async move {
        let body = r#"{"error":{"message":"temperature is wrong","type":"invalid_request_error","param":"temperature","code":"bad_temperature"}}"#;
        answer_json(&mut tcp, 400, body).await;
    })
    .await;
    let mock = gateway::mock().await;
    let dir = plugin_dir(&[(guests::TEST_TAGGER, "kind = \"guardrail\"\n")]);
    let rest = format!(
        r#"
[[providers]]
name = "picky"
base-url = "{}"

[models.picky]
routes = [{{ provider = "picky", model = "m" }}]

[models.guarded]
routes = [{{ provider = "mock", model = "mock-small" }}]
output-guardrails = ["test-tagger"]
{CHAT}"#,
        up.base
    );
    let gw = gateway::start(&gateway::config(&mock, dir.path(), &rest)).await;

    let (h, err) = shaped(
        gw.chat(&reply_body("picky", "x")).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(err["param"], "temperature", "{err}");
    assert_eq!(err["code"], "bad_temperature");
    assert_eq!(h["x-sluice-attempts"], "1");
    assert_eq!(h["x-sluice-provider"], "picky");

    // Retries and fallback: two attempts on each route, the last one named.
    let mut body = reply_body("chat", "x");
    body["mock_fault"] = json!("status=500");
    let (h, _) = shaped(gw.chat(&body).await, StatusCode::BAD_GATEWAY).await;
    assert_eq!(h["x-sluice-attempts"], "4");
    assert_eq!(h["x-sluice-provider"], "backup");
    assert_eq!(h["x-sluice-model"], "mock-large");

    // An output guardrail's reject says which guardrail, after one attempt.
    let (h, err) = shaped(
        gw.chat(&reply_body("guarded", "please REJECT this")).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(err["type"], "guardrail_rejected");
    assert_eq!(h["x-sluice-guardrails"], "test-tagger:reject");
    assert_eq!(h["x-sluice-attempts"], "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_lines_name_the_request_and_a_disconnect_leaves_one() {
    // A stream that fails mid-way, and one that never ends (for the disconnect).
    let up = raw::upstream(|mut tcp, req| async move {
        let _ = tcp.write_all(SSE_HEAD).await;
        let _ = tcp.write_all(&chunk_event("partial ")).await;
        if req.contains("fail me") {
            let _ = tcp
                .write_all(
                    b"data: {\"error\":{\"message\":\"boom\",\"type\":\"server_error\"}}\n\n",
                )
                .await;
            return;
        }
        for i in 0.. {
            if tcp.write_all(&chunk_event(&format!("{i} "))).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    let config = format!(
        "[[providers]]\nname = \"up\"\nbase-url = \"{}\"\n\n[models.chat]\nroutes = [{{ provider = \"up\", model = \"m\" }}]\n",
        up.base
    );
    let sluice = Sluice::start(&config, None).await;
    let client = reqwest::Client::new();
    let stream = |text: &str| {
        client
            .post(format!("{}/v1/chat/completions", sluice.url))
            .json(&json!({"model": "chat", "stream": true,
                "messages": [{"role": "user", "content": text}]}))
            .send()
    };
    let res = stream("fail me").await.unwrap();
    let failed_id = res.headers()["x-sluice-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    let text = res.text().await.unwrap();
    assert!(text.contains("boom"), "{text}");
    let line = sluice
        .wait_log(Duration::from_secs(10), |v| {
            message(v) == "stream ended by an error event"
        })
        .await
        .unwrap_or_else(|| panic!("no error-event line:\n{}", sluice.log_text()));
    assert_eq!(line["fields"]["request_id"], failed_id.as_str(), "{line}");

    let mut res = stream("keep going").await.unwrap();
    let gone_id = res.headers()["x-sluice-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    res.chunk().await.unwrap();
    drop(res);
    let gone = |v: &Value| {
        message(v).starts_with("client disconnected")
            && v["fields"]["request_id"] == gone_id.as_str()
    };
    sluice
        .wait_log(Duration::from_secs(10), gone)
        .await
        .unwrap_or_else(|| panic!("no line for the disconnect:\n{}", sluice.log_text()));
    let count = sluice.log_lines().iter().filter(|v| gone(v)).count();
    assert_eq!(count, 1, "{}", sluice.log_text());
}
