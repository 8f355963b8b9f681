//! Anthropic Messages API behind the OpenAI wire format.
//!
//! Requests: system (and developer) messages become `system`; `max_tokens`
//! is required there, so the provider's default fills it; `stop` becomes
//! `stop_sequences`; tools, tool calls and tool results map to `tools`,
//! `tool_use` and `tool_result` blocks. Fields Anthropic does not know are
//! dropped (it rejects unknown fields). Answers: text blocks join into the
//! message, `tool_use` blocks become `tool_calls`, `stop_reason` maps to
//! `finish_reason`, input/output tokens to prompt/completion tokens.
//! Streams: Anthropic's typed events become `chat.completion.chunk`s.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::stream::{BoxStream, StreamExt};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::http::{Endpoint, read_json, send, sse_events, with_timeout};
use super::{Upstream, UpstreamError};
use crate::openai::{
    ChatChunk, ChatCompletion, ChatMessage, ChatRequest, Choice, ChunkChoice, Delta, Usage,
};

pub(crate) async fn chat(
    up: &Upstream,
    model: &str,
    req: &ChatRequest,
    timeout: Duration,
) -> Result<ChatCompletion, UpstreamError> {
    let body = to_messages_request(req, model, up.default_max_tokens, false);
    let call = async {
        let resp = send(up, up.post(Endpoint::Messages).json(&body)).await?;
        let msg: MessagesResponse = read_json(up, resp).await?;
        Ok(from_messages_response(msg))
    };
    with_timeout(up, timeout, call).await
}

pub(crate) async fn open_stream(
    up: &Upstream,
    model: &str,
    req: &ChatRequest,
    idle: Duration,
) -> Result<BoxStream<'static, Result<ChatChunk, UpstreamError>>, UpstreamError> {
    let body = to_messages_request(req, model, up.default_max_tokens, true);
    let resp = send(up, up.post(Endpoint::Messages).json(&body)).await?;
    let provider = up.name.clone();
    let include_usage = req.stream_options.as_ref().is_some_and(|o| o.include_usage);
    let mut events = sse_events(provider.clone(), resp, idle);
    let mut tr = StreamTranslator::new(model, include_usage);
    let chunks = async_stream::stream! {
        while let Some(ev) = events.next().await {
            let ev = match ev {
                Ok(ev) => ev,
                Err(e) => { yield Err(e); return; }
            };
            match tr.on_event(&ev.data) {
                Ok(chunks) => {
                    for c in chunks {
                        yield Ok(c);
                    }
                    if tr.done {
                        return;
                    }
                }
                Err(message) => {
                    yield Err(UpstreamError::Protocol { provider: provider.clone(), message });
                    return;
                }
            }
        }
        yield Err(UpstreamError::Truncated { provider: provider.clone() });
    };
    Ok(chunks.boxed())
}

/// The Messages API body for an OpenAI chat request.
pub fn to_messages_request(
    req: &ChatRequest,
    model: &str,
    default_max_tokens: u32,
    stream: bool,
) -> Value {
    let mut system = Vec::new();
    let mut messages: Vec<(String, Vec<Value>)> = Vec::new();
    for m in &req.messages {
        let (role, blocks) = match m.role.as_str() {
            "system" | "developer" => {
                system.push(m.content_text());
                continue;
            }
            "assistant" => ("assistant", assistant_blocks(m)),
            "tool" => {
                let id = m.extra.get("tool_call_id").cloned().unwrap_or(Value::Null);
                let block =
                    json!({"type": "tool_result", "tool_use_id": id, "content": m.content_text()});
                ("user", vec![block])
            }
            _ => ("user", content_blocks(&m.content)),
        };
        // Anthropic wants alternating turns: merge consecutive same-role ones.
        match messages.last_mut() {
            Some((r, b)) if r == role => b.extend(blocks),
            _ => messages.push((role.to_string(), blocks)),
        }
    }
    let messages: Vec<Value> = messages
        .into_iter()
        .map(|(role, content)| json!({"role": role, "content": content}))
        .collect();
    let mut body = Map::new();
    body.insert("model".into(), model.into());
    body.insert("messages".into(), messages.into());
    body.insert(
        "max_tokens".into(),
        req.max_output_tokens().unwrap_or(default_max_tokens).into(),
    );
    if !system.is_empty() {
        body.insert("system".into(), system.join("\n\n").into());
    }
    if let Some(t) = req.temperature {
        // OpenAI accepts 0–2, Anthropic 0–1: clamp rather than fail a
        // request that is valid for the client's API.
        body.insert("temperature".into(), json!(t.clamp(0.0, 1.0)));
    }
    if stream {
        body.insert("stream".into(), true.into());
    }
    for key in ["top_p", "top_k"] {
        if let Some(v) = req.extra.get(key) {
            body.insert(key.into(), v.clone());
        }
    }
    match req.extra.get("stop") {
        Some(Value::String(s)) => {
            body.insert("stop_sequences".into(), json!([s]));
        }
        Some(v @ Value::Array(_)) => {
            body.insert("stop_sequences".into(), v.clone());
        }
        _ => {}
    }
    if let Some(user) = &req.user {
        body.insert("metadata".into(), json!({"user_id": user}));
    }
    if let Some(Value::Array(tools)) = req.extra.get("tools") {
        let tools: Vec<Value> = tools
            .iter()
            .filter_map(|t| t.get("function"))
            .map(|f| {
                let mut t = Map::new();
                t.insert("name".into(), f.get("name").cloned().unwrap_or(Value::Null));
                if let Some(d) = f.get("description") {
                    t.insert("description".into(), d.clone());
                }
                let schema = f
                    .get("parameters")
                    .cloned()
                    .unwrap_or_else(|| json!({"type": "object", "properties": {}}));
                t.insert("input_schema".into(), schema);
                Value::Object(t)
            })
            .collect();
        body.insert("tools".into(), tools.into());
    }
    if let Some(choice) = req.extra.get("tool_choice") {
        let mapped = match choice {
            Value::String(s) if s == "required" => Some(json!({"type": "any"})),
            Value::String(s) if s == "auto" || s == "none" => Some(json!({"type": s})),
            Value::Object(o) => o
                .get("function")
                .and_then(|f| f.get("name"))
                .map(|n| json!({"type": "tool", "name": n})),
            _ => None,
        };
        if let Some(m) = mapped {
            body.insert("tool_choice".into(), m);
        }
    }
    Value::Object(body)
}

/// OpenAI content (string or parts) as Anthropic content blocks.
fn content_blocks(content: &Value) -> Vec<Value> {
    match content {
        Value::String(s) => vec![json!({"type": "text", "text": s})],
        Value::Array(parts) => parts.iter().filter_map(part_block).collect(),
        _ => Vec::new(),
    }
}

fn part_block(part: &Value) -> Option<Value> {
    match part.get("type").and_then(Value::as_str)? {
        "text" => Some(json!({"type": "text", "text": part.get("text")?})),
        "image_url" => {
            let url = part.get("image_url")?.get("url")?.as_str()?;
            // data:<media>;base64,<data>
            if let Some(rest) = url.strip_prefix("data:")
                && let Some((media, data)) = rest.split_once(";base64,")
            {
                return Some(
                    json!({"type": "image", "source": {"type": "base64", "media_type": media, "data": data}}),
                );
            }
            Some(json!({"type": "image", "source": {"type": "url", "url": url}}))
        }
        _ => None,
    }
}

fn assistant_blocks(m: &ChatMessage) -> Vec<Value> {
    let mut blocks = Vec::new();
    let text = m.content_text();
    if !text.is_empty() {
        blocks.push(json!({"type": "text", "text": text}));
    }
    if let Some(Value::Array(calls)) = m.extra.get("tool_calls") {
        for c in calls {
            let f = c.get("function");
            let args = f
                .and_then(|f| f.get("arguments"))
                .and_then(Value::as_str)
                .and_then(|a| serde_json::from_str::<Value>(a).ok())
                .unwrap_or_else(|| json!({}));
            blocks.push(json!({
                "type": "tool_use",
                "id": c.get("id").cloned().unwrap_or(Value::Null),
                "name": f.and_then(|f| f.get("name")).cloned().unwrap_or(Value::Null),
                "input": args,
            }));
        }
    }
    blocks
}

/// The parts of a Messages API answer we translate.
#[derive(Debug, Deserialize)]
pub struct MessagesResponse {
    pub id: String,
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub content: Vec<Value>,
    #[serde(default)]
    pub stop_reason: Option<String>,
    #[serde(default)]
    pub usage: AnthropicUsage,
}

#[derive(Debug, Default, Deserialize)]
pub struct AnthropicUsage {
    #[serde(default)]
    pub input_tokens: u32,
    #[serde(default)]
    pub output_tokens: u32,
    /// Cached prompt tokens are still prompt tokens to the client.
    #[serde(default)]
    pub cache_creation_input_tokens: Option<u32>,
    #[serde(default)]
    pub cache_read_input_tokens: Option<u32>,
}

impl AnthropicUsage {
    fn prompt_tokens(&self) -> u32 {
        self.input_tokens
            + self.cache_creation_input_tokens.unwrap_or(0)
            + self.cache_read_input_tokens.unwrap_or(0)
    }
}

/// `stop_reason` → `finish_reason`.
pub fn finish_reason(stop_reason: &str) -> &'static str {
    match stop_reason {
        "max_tokens" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        _ => "stop",
    }
}

pub fn from_messages_response(msg: MessagesResponse) -> ChatCompletion {
    let mut text = String::new();
    let mut tool_calls = Vec::new();
    for block in &msg.content {
        match block.get("type").and_then(Value::as_str) {
            Some("text") => text.push_str(block.get("text").and_then(Value::as_str).unwrap_or("")),
            Some("tool_use") => tool_calls.push(json!({
                "id": block.get("id").cloned().unwrap_or(Value::Null),
                "type": "function",
                "function": {
                    "name": block.get("name").cloned().unwrap_or(Value::Null),
                    "arguments": block.get("input").map(Value::to_string).unwrap_or_else(|| "{}".into()),
                },
            })),
            _ => {}
        }
    }
    let mut message = ChatMessage::text("assistant", text);
    if !tool_calls.is_empty() {
        message.extra.insert("tool_calls".into(), tool_calls.into());
    }
    let prompt = msg.usage.prompt_tokens();
    ChatCompletion {
        id: msg.id,
        object: "chat.completion".into(),
        created: unix_now(),
        model: msg.model,
        choices: vec![Choice {
            index: 0,
            message,
            finish_reason: msg
                .stop_reason
                .as_deref()
                .map(|r| finish_reason(r).to_string()),
            extra: Map::new(),
        }],
        usage: Some(Usage {
            prompt_tokens: prompt,
            completion_tokens: msg.usage.output_tokens,
            total_tokens: prompt + msg.usage.output_tokens,
        }),
        extra: Map::new(),
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Turns Anthropic stream events into OpenAI chunks, one event at a time.
pub struct StreamTranslator {
    id: String,
    model: String,
    created: u64,
    include_usage: bool,
    usage: Usage,
    /// Anthropic content-block index → OpenAI tool-call index.
    tools: HashMap<u64, u32>,
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
            usage: Usage::default(),
            tools: HashMap::new(),
            done: false,
        }
    }

    /// One event's `data`; returns the chunks it becomes, or an error
    /// message (an `error` event, or data we cannot read).
    pub fn on_event(&mut self, data: &str) -> Result<Vec<ChatChunk>, String> {
        let v: Value = serde_json::from_str(data).map_err(|e| format!("malformed event: {e}"))?;
        let kind = v.get("type").and_then(Value::as_str).unwrap_or("");
        let u32_at = |v: &Value, p: &str| v.pointer(p).and_then(Value::as_u64).map(|n| n as u32);
        match kind {
            "message_start" => {
                let m = &v["message"];
                self.id = m["id"].as_str().unwrap_or("").to_string();
                if let Some(model) = m["model"].as_str() {
                    self.model = model.to_string();
                }
                let usage: AnthropicUsage =
                    serde_json::from_value(m["usage"].clone()).unwrap_or_default();
                self.usage.prompt_tokens = usage.prompt_tokens();
                self.usage.completion_tokens = usage.output_tokens;
                let delta = Delta {
                    role: Some("assistant".into()),
                    content: Some(String::new()),
                    extra: Map::new(),
                };
                Ok(vec![self.chunk(delta, None)])
            }
            "content_block_start" => {
                let block = &v["content_block"];
                match block["type"].as_str() {
                    Some("tool_use") => {
                        let index = self.tools.len() as u32;
                        self.tools.insert(v["index"].as_u64().unwrap_or(0), index);
                        let call = json!([{"index": index, "id": block["id"], "type": "function",
                            "function": {"name": block["name"], "arguments": ""}}]);
                        Ok(vec![self.chunk(tool_delta(call), None)])
                    }
                    Some("text") => match block["text"].as_str() {
                        Some(t) if !t.is_empty() => Ok(vec![self.chunk(text_delta(t), None)]),
                        _ => Ok(Vec::new()),
                    },
                    _ => Ok(Vec::new()),
                }
            }
            "content_block_delta" => {
                let d = &v["delta"];
                match d["type"].as_str() {
                    Some("text_delta") => Ok(vec![
                        self.chunk(text_delta(d["text"].as_str().unwrap_or("")), None),
                    ]),
                    Some("input_json_delta") => {
                        let index = v["index"]
                            .as_u64()
                            .and_then(|i| self.tools.get(&i))
                            .copied();
                        let call = json!([{"index": index.unwrap_or(0),
                            "function": {"arguments": d["partial_json"].as_str().unwrap_or("")}}]);
                        Ok(vec![self.chunk(tool_delta(call), None)])
                    }
                    // thinking / signature deltas have no OpenAI counterpart.
                    _ => Ok(Vec::new()),
                }
            }
            "message_delta" => {
                if let Some(n) = u32_at(&v, "/usage/output_tokens") {
                    self.usage.completion_tokens = n;
                }
                if let Some(n) = u32_at(&v, "/usage/input_tokens") {
                    self.usage.prompt_tokens = n;
                }
                match v.pointer("/delta/stop_reason").and_then(Value::as_str) {
                    Some(r) => Ok(vec![self.chunk(Delta::default(), Some(finish_reason(r)))]),
                    None => Ok(Vec::new()),
                }
            }
            "message_stop" => {
                self.done = true;
                if !self.include_usage {
                    return Ok(Vec::new());
                }
                self.usage.total_tokens = self.usage.prompt_tokens + self.usage.completion_tokens;
                let mut c = self.chunk(Delta::default(), None);
                c.choices.clear();
                c.usage = Some(self.usage);
                Ok(vec![c])
            }
            "error" => {
                let e = &v["error"];
                Err(format!(
                    "error event in stream: {} ({})",
                    e["message"].as_str().unwrap_or("unknown error"),
                    e["type"].as_str().unwrap_or("error")
                ))
            }
            // ping, content_block_stop, and event types added later.
            _ => Ok(Vec::new()),
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

#[cfg(test)]
mod tests;
