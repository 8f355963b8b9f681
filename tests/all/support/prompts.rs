//! Prompt-registry helpers for the tests that use it: a prompt file
//! with two versions, chat bodies with a `prompt` extension, and reading
//! which version served.

#![allow(dead_code, reason = "each test module uses a different subset")]

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::gateway::TestGateway;

/// Version 2 (the highest, so the active one) adds the `tagger` guardrail,
/// which rejects an answer containing "REJECT".
pub const SUMMARIZE: &str = r#"
description = "Summarise a text"

[[versions]]
version = 1
model = "chat"
temperature = 0.3
max-tokens = 50
variables = ["text"]
system = "Be brief."
template = "REPLY: v1 {{text}}"

[[versions]]
version = 2
model = "chat"
temperature = 0.7
variables = ["text"]
defaults = { tone = "calm" }
output-guardrails = ["tagger"]
template = "REPLY: v2 {{tone}} {{text}}"
"#;

pub fn prompt_body(version: Option<u32>, variables: Value) -> Value {
    let mut p = json!({"id": "summarize", "variables": variables});
    if let Some(v) = version {
        p["version"] = json!(v);
    }
    json!({ "prompt": p })
}

/// The answer text and the `x-sluice-prompt` header of a 200.
pub async fn answer(gw: &TestGateway, body: &Value) -> (String, String) {
    let res = gw.chat(body).await;
    assert_eq!(res.status(), StatusCode::OK, "{body}");
    let prompt = res.headers()["x-sluice-prompt"]
        .to_str()
        .unwrap()
        .to_string();
    let v: Value = res.json().await.unwrap();
    let text = v["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_string();
    (text, prompt)
}

/// The version a request without one gets.
pub async fn served(gw: &TestGateway) -> String {
    answer(gw, &prompt_body(None, json!({"text": "x"}))).await.1
}

/// Polls `cond` until it holds (the watcher reloads on its own thread and
/// tells no one); the bound only stops a hang.
pub async fn eventually<F, Fut>(mut cond: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..3000 {
        if cond().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}
