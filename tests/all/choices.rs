//! `n`: bounded by `server.max-n`, and every choice passes the output
//! guardrails on its own, streamed or not.

use reqwest::StatusCode;
use serde_json::{Value, json};

use sluice_guests as guests;

use crate::support::gateway::{self, TestGateway};
use crate::support::http::sse_data;
use crate::support::plugins::plugin_dir_named;

struct Setup {
    gw: TestGateway,
    _mock: gateway::Mock,
    _dir: tempfile::TempDir,
}

async fn setup() -> Setup {
    let dir = plugin_dir_named(&[
        (
            "pii-redact",
            guests::PII_REDACT,
            "kind = \"guardrail\"\norder = 1\n",
        ),
        // Passes text unchanged (an empty tag), rejects text with "REJECT".
        (
            "tagger",
            guests::TEST_TAGGER,
            "kind = \"guardrail\"\norder = 2\n[config]\ntag = \"\"\n",
        ),
    ]);
    let mock = gateway::mock().await;
    let rest = r#"
[server]
max-n = 3

[models.chat]
routes = [{ provider = "mock", model = "mock-small" }]
output-guardrails = ["pii-redact", "tagger"]
"#;
    let gw = gateway::start(&gateway::config(&mock, dir.path(), rest)).await;
    Setup {
        gw,
        _mock: mock,
        _dir: dir,
    }
}

fn body(n: u64, reply: &str, stream: bool) -> Value {
    json!({"model": "chat", "n": n, "stream": stream,
        "messages": [{"role": "user", "content": format!("REPLY: {reply}")}]})
}

/// Each choice's streamed text, by index.
fn streamed_choices(text: &str) -> Vec<String> {
    let mut out = vec![String::new(); 3];
    for e in sse_data(text) {
        let Ok(v) = serde_json::from_str::<Value>(&e) else {
            continue;
        };
        for c in v["choices"].as_array().into_iter().flatten() {
            if let Some(t) = c["delta"]["content"].as_str() {
                out[c["index"].as_u64().unwrap() as usize].push_str(t);
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn n_is_bounded() {
    let s = setup().await;
    let res = s.gw.chat(&body(1000, "x", false)).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let err: Value = res.json().await.unwrap();
    assert_eq!(err["error"]["param"], "n");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("server.max-n")
    );
    let res = s.gw.chat(&body(0, "x", false)).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let res = s.gw.chat(&body(3, "fine.", false)).await;
    assert_eq!(res.status(), 200);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["choices"].as_array().unwrap().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_choice_is_checked_streamed_or_not() {
    let s = setup().await;
    let reply = "All good here.[[choice]]Mail jane@example.com today.";
    let res = s.gw.chat(&body(2, reply, false)).await;
    assert_eq!(res.status(), 200);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "All good here.");
    let second = v["choices"][1]["message"]["content"].as_str().unwrap();
    assert!(
        !second.contains("jane@example.com"),
        "choice 1 unchecked: {second}"
    );

    let res = s.gw.chat(&body(2, reply, true)).await;
    let text = res.text().await.unwrap();
    let choices = streamed_choices(&text);
    assert_eq!(choices[0], "All good here.");
    assert!(
        choices[1].starts_with("Mail ") && !choices[1].contains("jane@"),
        "{text}"
    );

    // A reject in the second choice only refuses the answer.
    let reply = "All good here.[[choice]]Please REJECT this.";
    let res = s.gw.chat(&body(2, reply, false)).await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let res = s.gw.chat(&body(2, reply, true)).await;
    let text = res.text().await.unwrap();
    let last: Value = serde_json::from_str(sse_data(&text).last().unwrap()).unwrap();
    assert_eq!(last["error"]["type"], "guardrail_rejected", "{text}");
    assert!(
        !text.contains("REJECT"),
        "the rejected window never left: {text}"
    );
}
