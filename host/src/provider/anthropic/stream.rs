//! Anthropic stream events as `chat.completion.chunk`s, one event at a time.
//!
//! The role chunk `message_start` would become is held back until the
//! first content (or the end): an `error` event right after
//! `message_start` (Anthropic's "overloaded" mid-stream) then fails the
//! attempt before anything reached the client, so it is retried or falls
//! back like a 529 answer would.

use std::collections::HashMap;

use http::StatusCode;
use serde_json::{Map, Value, json};

use super::response::{AnthropicUsage, finish_reason, unix_now};
use crate::openai::{ChatChunk, ChunkChoice, Delta};
use crate::provider::UpstreamError;

/// Why a stream event ends the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventError {
    /// An `error` event: Anthropic's error `type` and message.
    Upstream { kind: String, message: String },
    /// Data that is not a readable event.
    Malformed(String),
}

impl EventError {
    /// The matching upstream failure: overload and server errors are worth
    /// a retry (while nothing has reached the client), rate limits are
    /// rate limits, anything else is an unreadable answer.
    pub fn into_upstream(self, provider: &str) -> UpstreamError {
        let provider = provider.to_string();
        match self {
            EventError::Upstream { kind, message } => match kind.as_str() {
                "overloaded_error" => UpstreamError::Server {
                    provider,
                    status: StatusCode::from_u16(529).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
                    message: format!("overloaded: {message}"),
                },
                "api_error" => UpstreamError::Server {
                    provider,
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    message,
                },
                "rate_limit_error" => UpstreamError::RateLimited {
                    provider,
                    message,
                    retry_after: None,
                },
                _ => UpstreamError::Protocol {
                    provider,
                    message: format!("error event in stream: {message} ({kind})"),
                },
            },
            EventError::Malformed(message) => UpstreamError::Protocol { provider, message },
        }
    }
}

/// A `tool_use` block of the answer.
struct Tool {
    /// Its index among the answer's tool calls (OpenAI's `index`).
    index: u32,
    /// Whether any argument text was sent for it.
    has_args: bool,
}

/// Turns Anthropic stream events into OpenAI chunks.
pub struct StreamTranslator {
    id: String,
    model: String,
    created: u64,
    include_usage: bool,
    usage: AnthropicUsage,
    /// The role chunk, until the first content goes out with it.
    role: Option<ChatChunk>,
    /// Anthropic content-block index → tool call.
    tools: HashMap<u64, Tool>,
    /// Set after `message_stop`: the stream is complete.
    pub done: bool,
}

impl StreamTranslator {
    pub fn new(model: &str, include_usage: bool) -> Self {
        Self {
            id: String::new(),
            model: model.to_string(),
            created: unix_now(),
            include_usage,
            usage: AnthropicUsage::default(),
            role: None,
            tools: HashMap::new(),
            done: false,
        }
    }

    /// One event's `data`; returns the chunks it becomes.
    pub fn on_event(&mut self, data: &str) -> Result<Vec<ChatChunk>, EventError> {
        let v: Value = serde_json::from_str(data)
            .map_err(|e| EventError::Malformed(format!("malformed event: {e}")))?;
        let kind = v.get("type").and_then(Value::as_str).unwrap_or("");
        let chunks = match kind {
            "message_start" => {
                let m = &v["message"];
                self.id = m["id"].as_str().unwrap_or("").to_string();
                if let Some(model) = m["model"].as_str() {
                    self.model = model.to_string();
                }
                self.usage.update(usage_of(&m["usage"]));
                let delta = Delta {
                    role: Some("assistant".into()),
                    content: Some(String::new()),
                    extra: Map::new(),
                };
                self.role = Some(self.chunk(delta, None));
                return Ok(Vec::new());
            }
            "content_block_start" => self.block_start(&v),
            "content_block_delta" => self.block_delta(&v),
            "content_block_stop" => {
                // A tool called without parameters streams `input: {}` and
                // an empty `partial_json`: its arguments are `{}`, not "".
                let index = v["index"].as_u64().unwrap_or(0);
                match self.tools.get(&index) {
                    Some(t) if !t.has_args => {
                        let call = json!([{"index": t.index, "function": {"arguments": "{}"}}]);
                        vec![self.chunk(tool_delta(call), None)]
                    }
                    _ => Vec::new(),
                }
            }
            "message_delta" => {
                self.usage.update(usage_of(&v["usage"]));
                match v.pointer("/delta/stop_reason").and_then(Value::as_str) {
                    Some(r) => vec![self.chunk(Delta::default(), Some(finish_reason(r)))],
                    None => Vec::new(),
                }
            }
            "message_stop" => {
                self.done = true;
                let mut out: Vec<ChatChunk> = self.role.take().into_iter().collect();
                if self.include_usage {
                    let mut c = self.chunk(Delta::default(), None);
                    c.choices.clear();
                    c.usage = Some(self.usage.to_openai());
                    out.push(c);
                }
                return Ok(out);
            }
            "error" => {
                let e = &v["error"];
                return Err(EventError::Upstream {
                    kind: e["type"].as_str().unwrap_or("error").to_string(),
                    message: e["message"].as_str().unwrap_or("unknown error").to_string(),
                });
            }
            // ping, and event types added later.
            _ => Vec::new(),
        };
        Ok(self.with_role(chunks))
    }

    fn block_start(&mut self, v: &Value) -> Vec<ChatChunk> {
        let block = &v["content_block"];
        match block["type"].as_str() {
            Some("tool_use") => {
                let index = self.tools.len() as u32;
                // The real API starts with `input: {}` and streams the
                // arguments; an input given up front is sent as it is.
                let given = block["input"]
                    .as_object()
                    .filter(|o| !o.is_empty())
                    .map(|o| Value::Object(o.clone()).to_string());
                self.tools.insert(
                    v["index"].as_u64().unwrap_or(0),
                    Tool {
                        index,
                        has_args: given.is_some(),
                    },
                );
                let call = json!([{"index": index, "id": block["id"], "type": "function",
                    "function": {"name": block["name"], "arguments": given.unwrap_or_default()}}]);
                vec![self.chunk(tool_delta(call), None)]
            }
            Some("text") => match block["text"].as_str() {
                Some(t) if !t.is_empty() => vec![self.chunk(text_delta(t), None)],
                _ => Vec::new(),
            },
            _ => Vec::new(),
        }
    }

    fn block_delta(&mut self, v: &Value) -> Vec<ChatChunk> {
        let d = &v["delta"];
        match d["type"].as_str() {
            Some("text_delta") => {
                vec![self.chunk(text_delta(d["text"].as_str().unwrap_or("")), None)]
            }
            Some("input_json_delta") => {
                let part = d["partial_json"].as_str().unwrap_or("");
                let Some(tool) = v["index"].as_u64().and_then(|i| self.tools.get_mut(&i)) else {
                    return Vec::new();
                };
                if part.is_empty() {
                    return Vec::new();
                }
                tool.has_args = true;
                let call = json!([{"index": tool.index, "function": {"arguments": part}}]);
                vec![self.chunk(tool_delta(call), None)]
            }
            // thinking / signature deltas have no OpenAI counterpart.
            _ => Vec::new(),
        }
    }

    /// `chunks`, behind the held-back role chunk when they are the first.
    fn with_role(&mut self, chunks: Vec<ChatChunk>) -> Vec<ChatChunk> {
        if chunks.is_empty() {
            return chunks;
        }
        match self.role.take() {
            Some(role) => std::iter::once(role).chain(chunks).collect(),
            None => chunks,
        }
    }

    fn chunk(&self, delta: Delta, finish: Option<&str>) -> ChatChunk {
        ChatChunk {
            id: self.id.clone(),
            object: "chat.completion.chunk".into(),
            created: self.created,
            model: self.model.clone(),
            choices: vec![ChunkChoice {
                index: 0,
                delta,
                finish_reason: finish.map(str::to_string),
                extra: Map::new(),
            }],
            usage: None,
            extra: Map::new(),
        }
    }
}

fn usage_of(v: &Value) -> AnthropicUsage {
    serde_json::from_value(v.clone()).unwrap_or_default()
}

fn text_delta(t: &str) -> Delta {
    Delta {
        role: None,
        content: Some(t.to_string()),
        extra: Map::new(),
    }
}

fn tool_delta(calls: Value) -> Delta {
    let mut extra = Map::new();
    extra.insert("tool_calls".into(), calls);
    Delta {
        role: None,
        content: None,
        extra,
    }
}
