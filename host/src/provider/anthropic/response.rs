//! A Messages API answer as a `chat.completion`.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::openai::{ChatCompletion, ChatMessage, Choice, PromptTokensDetails, Usage};

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

/// Anthropic's usage object. In a stream, `message_start` carries the
/// first values and each `message_delta` the running totals of whichever
/// fields it repeats.
#[derive(Debug, Default, Clone, Copy, Deserialize)]
pub struct AnthropicUsage {
    #[serde(default)]
    pub input_tokens: Option<u32>,
    #[serde(default)]
    pub output_tokens: Option<u32>,
    /// Cached prompt tokens are still prompt tokens to the client.
    #[serde(default)]
    pub cache_creation_input_tokens: Option<u32>,
    #[serde(default)]
    pub cache_read_input_tokens: Option<u32>,
}

impl AnthropicUsage {
    /// Later totals replace earlier ones field by field.
    pub fn update(&mut self, newer: AnthropicUsage) {
        let keep = |old: &mut Option<u32>, new: Option<u32>| {
            if new.is_some() {
                *old = new;
            }
        };
        keep(&mut self.input_tokens, newer.input_tokens);
        keep(&mut self.output_tokens, newer.output_tokens);
        keep(
            &mut self.cache_creation_input_tokens,
            newer.cache_creation_input_tokens,
        );
        keep(
            &mut self.cache_read_input_tokens,
            newer.cache_read_input_tokens,
        );
    }

    /// In OpenAI's terms: prompt tokens include cache writes and reads;
    /// reads are also reported as `cached_tokens`.
    pub fn to_openai(self) -> Usage {
        let prompt = self.input_tokens.unwrap_or(0)
            + self.cache_creation_input_tokens.unwrap_or(0)
            + self.cache_read_input_tokens.unwrap_or(0);
        let completion = self.output_tokens.unwrap_or(0);
        Usage {
            prompt_tokens: prompt,
            completion_tokens: completion,
            total_tokens: prompt + completion,
            prompt_tokens_details: self
                .cache_read_input_tokens
                .map(|cached_tokens| PromptTokensDetails { cached_tokens }),
            // Anthropic reports thinking tokens inside `output_tokens` only.
            completion_tokens_details: None,
        }
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
        if message.content_text().is_empty() {
            // OpenAI's shape for an answer that is only tool calls.
            message.content = Value::Null;
        }
        message.extra.insert("tool_calls".into(), tool_calls.into());
    }
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
        usage: Some(msg.usage.to_openai()),
        extra: Map::new(),
    }
}

pub(super) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
