//! An upstream that answers each request with what the test scripted for
//! it: a whole completion, or a stream of chunks exactly as given (so a
//! test decides every delta boundary), over a real socket.

#![allow(dead_code, reason = "each test module uses a different subset")]

use std::path::Path;
use std::sync::Arc;

use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use super::raw::{self, RawUpstream, SSE_HEAD};

/// A scripted answer.
pub enum Canned {
    /// `200` with this `chat.completion` body.
    Json(Value),
    /// An event stream of these chunks, then `data: [DONE]`.
    Events(Vec<Value>),
}

/// An upstream whose answer to each request body is `script(body)`.
pub async fn upstream(script: impl Fn(&Value) -> Canned + Send + Sync + 'static) -> RawUpstream {
    let script = Arc::new(script);
    raw::upstream(move |mut tcp, request| {
        let script = script.clone();
        async move {
            let body = request.split_once("\r\n\r\n").map_or("", |(_, b)| b);
            let body: Value = serde_json::from_str(body).unwrap_or(Value::Null);
            match script(&body) {
                Canned::Json(v) => raw::answer_json(&mut tcp, 200, &v.to_string()).await,
                Canned::Events(events) => {
                    let mut out = SSE_HEAD.to_vec();
                    for e in events {
                        out.extend_from_slice(format!("data: {e}\n\n").as_bytes());
                    }
                    out.extend_from_slice(b"data: [DONE]\n\n");
                    let _ = tcp.write_all(&out).await;
                    let _ = tcp.shutdown().await;
                }
            }
        }
    })
    .await
}

/// A `chat.completion` with these `choices` (each `{index, message, …}`).
pub fn completion(choices: Value) -> Value {
    json!({
        "id": "chatcmpl-canned", "object": "chat.completion", "created": 1,
        "model": "canned", "choices": choices,
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
    })
}

/// One `chat.completion.chunk` of choice `index` with `delta`.
pub fn chunk(index: u32, delta: Value, finish: Option<&str>) -> Value {
    json!({
        "id": "chatcmpl-canned", "object": "chat.completion.chunk", "created": 1,
        "model": "canned",
        "choices": [{"index": index, "delta": delta, "finish_reason": finish}]
    })
}

/// `text` as content chunks of `size` bytes (ASCII text), with a role
/// chunk first and a `stop` chunk last.
pub fn text_chunks(text: &str, size: usize) -> Vec<Value> {
    let mut out = vec![chunk(0, json!({"role": "assistant", "content": ""}), None)];
    let mut rest = text;
    while !rest.is_empty() {
        let (piece, tail) = rest.split_at(size.min(rest.len()));
        out.push(chunk(0, json!({"content": piece}), None));
        rest = tail;
    }
    out.push(chunk(0, json!({}), Some("stop")));
    out
}

/// A gateway config with provider `canned` at `base`, `[plugins] dir =
/// plugins`, no retries, and `rest` appended.
pub fn config(base: &str, plugins: &Path, rest: &str) -> String {
    format!(
        r#"
[plugins]
dir = '{dir}'
watch = false
pool-size = 1

[[providers]]
name = "canned"
base-url = "{base}"

[retry]
max-attempts = 1

{rest}
"#,
        dir = plugins.display(),
    )
}
