//! Requests whose accounting a test checks, and the ledger they leave: each
//! answer's `x-sluice-request-id` names its ledger record.

#![allow(dead_code, reason = "each test module uses a different subset")]

use std::time::Duration;

use serde_json::Value;
use sluice::state::{State, StateConfig, UsageRecord};

use super::http::sse_data;

/// A finished answer: its request id, status, headers and body (JSON, or
/// the SSE `data:` payloads of a stream).
#[derive(Debug)]
pub struct Answer {
    pub id: String,
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub json: Value,
    pub events: Vec<String>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// A stream that reached `[DONE]`, or a JSON answer with status 200:
    /// the client holds the whole answer.
    pub fn complete(&self) -> bool {
        self.status == 200
            && (self.events.is_empty() || self.events.last().is_some_and(|e| e == "[DONE]"))
    }

    /// The usage the client was shown (JSON `usage`, or a stream's usage
    /// chunk).
    pub fn usage(&self) -> Option<Value> {
        if self.events.is_empty() {
            return self.json.get("usage").cloned();
        }
        self.events
            .iter()
            .filter_map(|e| serde_json::from_str::<Value>(e).ok())
            .find_map(|v| v.get("usage").filter(|u| !u.is_null()).cloned())
    }
}

/// POST `body` to `url` (a chat or embeddings endpoint) with `key`, and read
/// the whole answer.
pub async fn send(client: &reqwest::Client, url: &str, key: Option<&str>, body: &Value) -> Answer {
    let mut rb = client.post(url).json(body);
    if let Some(k) = key {
        rb = rb.bearer_auth(k);
    }
    let res = rb.send().await.unwrap();
    read(res).await
}

pub async fn read(res: reqwest::Response) -> Answer {
    try_read(res).await.expect("reading the answer's body")
}

/// [`read`], or None when the body breaks off (the gateway died).
pub async fn try_read(res: reqwest::Response) -> Option<Answer> {
    let id = res
        .headers()
        .get("x-sluice-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let sse = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("text/event-stream"));
    let text = res.text().await.ok()?;
    let (json, events) = if sse {
        (Value::Null, sse_data(&text))
    } else {
        (
            serde_json::from_str(&text).unwrap_or(Value::Null),
            Vec::new(),
        )
    };
    Some(Answer {
        id,
        status,
        headers,
        json,
        events,
    })
}

/// Every ledger record.
pub async fn ledger(state: &State) -> Vec<UsageRecord> {
    state.records(0, u64::MAX).await.unwrap()
}

/// The record of request `id`, waiting up to `timeout` for it (a stream
/// whose client left settles in the background).
pub async fn record_of(state: &State, id: &str, timeout: Duration) -> Option<UsageRecord> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(r) = ledger(state).await.into_iter().find(|r| r.request_id == id) {
            return Some(r);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        // A poll interval: the record is written by a background task that
        // tells no one.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Open the sled state in `dir` (the gateway that wrote it must be gone).
pub async fn open_sled(dir: &std::path::Path) -> State {
    let config = StateConfig {
        dir: dir.to_path_buf(),
        warm_tokenizer: false,
        ..StateConfig::default()
    };
    State::open(&config).await.unwrap()
}

/// The `[state]` section of a gateway on Redis at `url`, under `prefix`.
///
/// The command timeout is raised from the 2 s default: these tests judge
/// what is shared and counted, and a 1000-request burst into debug builds
/// on a loaded machine can queue one command past 2 s (a 503
/// `state_unavailable`, which says nothing about the invariant under test).
pub fn redis_section(url: &str, prefix: &str) -> String {
    format!(
        "[state]\nbackend = \"redis\"\nredis-url = \"{url}\"\nkey-prefix = \"{prefix}\"\nredis-timeout-ms = 30000\n"
    )
}

/// A `[plugins]` section naming an empty plugin directory, for gateways
/// started with a config of their own (no `gateway::config`).
pub fn no_plugins() -> String {
    let dir = std::env::temp_dir().join("sluice-tests-no-plugins");
    std::fs::create_dir_all(&dir).unwrap();
    format!("[plugins]\ndir = '{}'\nwatch = false\n", dir.display())
}
