//! The Anthropic dialect: `POST /v1/messages`, plain and streamed in
//! Anthropic's event format, strict where the real API is strict
//! (`anthropic-version` header and `max_tokens` required, user/assistant
//! roles only, content blocks of known types, no empty text) so the
//! translation layer is tested against those rules. Usage follows the
//! real API: `message_delta` repeats the running totals, cache fields
//! included.

use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};

use super::openai::{Message, answer_text, prompt_tokens};
use super::stream::{Events, sse_response};
use super::text::pieces;
use super::{
    BodyControls, ConnKill, Dialect, HasControls, Mock, Path, body_response, error_response,
};
use crate::openai::content_text;

#[derive(Deserialize)]
struct MessagesBody {
    #[serde(default)]
    model: String,
    #[serde(default)]
    messages: Vec<Message>,
    #[serde(default)]
    system: Value,
    #[serde(default)]
    max_tokens: Option<u32>,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    mock_fault: Option<String>,
    #[serde(default)]
    mock_key: Option<String>,
    #[serde(default)]
    mock_echo: Option<bool>,
    #[serde(default)]
    mock_answer_bytes: Option<usize>,
}

const ERROR_EVENT: &[u8] = b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n";

pub(crate) async fn messages(
    State(mock): State<Arc<Mock>>,
    kill: Option<Extension<ConnKill>>,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    let d = Dialect::Anthropic;
    let (body, dir) = match mock.begin::<MessagesBody>(Path::Messages, d, &headers, &raw) {
        Ok(x) => x,
        Err(resp) => return *resp,
    };
    if !headers.contains_key("anthropic-version") {
        return error_response(d, 400, None, "anthropic-version: header is required");
    }
    let Some(max_tokens) = body.max_tokens else {
        return error_response(d, 400, None, "max_tokens: Field required");
    };
    if body.messages.is_empty() {
        return error_response(d, 400, None, "messages: at least one message is required");
    }
    if body
        .messages
        .iter()
        .any(|m| m.role != "user" && m.role != "assistant")
    {
        return error_response(d, 400, None, "messages: roles must be user or assistant");
    }
    for (i, m) in body.messages.iter().enumerate() {
        if let Err(e) = check_content(&m.content) {
            return error_response(d, 400, None, &format!("messages.{i}.content: {e}"));
        }
    }
    if let Some(resp) = mock.pre_answer(&dir.fault, d, kill.as_deref()).await {
        return resp;
    }
    let call = tool_call(&body.messages);
    let text = match &call {
        Some(_) => String::new(),
        None => answer_text(&dir, &raw, &body.messages),
    };
    let mut parts = if dir.fault.single_event {
        vec![text.as_str()]
    } else {
        pieces(&text)
    };
    let mut stop = if call.is_some() {
        "tool_use"
    } else {
        "end_turn"
    };
    if parts.len() > max_tokens as usize {
        parts.truncate(max_tokens as usize);
        stop = "max_tokens";
    }
    let system = content_text(&body.system);
    let input = prompt_tokens(
        body.messages
            .iter()
            .map(|m| content_text(&m.content))
            .chain((!system.is_empty()).then_some(system)),
    );
    let output = parts.len().max(1) as u32;
    let id = format!("msg_mock_{}", mock.next_id());
    let usage = |output: u32| {
        let mut u = json!({"input_tokens": input, "output_tokens": output});
        if let Some(n) = dir.fault.cache_write {
            u["cache_creation_input_tokens"] = n.into();
        }
        if let Some(n) = dir.fault.cache_read {
            u["cache_read_input_tokens"] = n.into();
        }
        u
    };
    if !body.stream {
        let content = match &call {
            Some((name, input)) => {
                json!([{"type": "tool_use", "id": format!("toolu_{id}"), "name": name, "input": input}])
            }
            None => json!([{"type": "text", "text": parts.concat()}]),
        };
        let out = json!({
            "id": id, "type": "message", "role": "assistant", "model": body.model,
            "content": content, "stop_reason": stop, "stop_sequence": null,
            "usage": usage(output),
        });
        return body_response(&dir.fault, out.to_string().into_bytes());
    }
    let event = |name: &str, data: Value| format!("event: {name}\ndata: {data}\n\n").into_bytes();
    let mut events = Vec::with_capacity(parts.len() + 6);
    events.push(event(
        "message_start",
        json!({"type": "message_start", "message": {
            "id": id, "type": "message", "role": "assistant", "model": body.model, "content": [],
            "stop_reason": null, "stop_sequence": null, "usage": usage(1)}}),
    ));
    if dir.fault.error_after_start {
        events.push(ERROR_EVENT.to_vec());
        let ev = Events {
            events,
            done: None,
            error_event: ERROR_EVENT,
        };
        return sse_response(ev, &dir.fault, 0, mock.cancelled_counter());
    }
    match &call {
        Some((name, input)) => {
            events.push(event(
                "content_block_start",
                json!({"type": "content_block_start", "index": 0, "content_block":
                    {"type": "tool_use", "id": format!("toolu_{id}"), "name": name, "input": {}}}),
            ));
            // The real API streams a call without parameters as one empty
            // `partial_json`; arguments in two pieces otherwise.
            let args = match input.as_object() {
                Some(o) if o.is_empty() => String::new(),
                _ => input.to_string(),
            };
            let half = args.floor_char_boundary(args.len() / 2);
            let pieces: Vec<&str> = if args.is_empty() {
                vec![""]
            } else {
                vec![&args[..half], &args[half..]]
            };
            for p in pieces {
                events.push(event(
                    "content_block_delta",
                    json!({"type": "content_block_delta", "index": 0,
                           "delta": {"type": "input_json_delta", "partial_json": p}}),
                ));
            }
        }
        None => {
            events.push(event(
                "content_block_start",
                json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            ));
            events.push(event("ping", json!({"type": "ping"})));
            for p in &parts {
                events.push(event(
                    "content_block_delta",
                    json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}}),
                ));
            }
        }
    }
    events.push(event(
        "content_block_stop",
        json!({"type": "content_block_stop", "index": 0}),
    ));
    events.push(event(
        "message_delta",
        json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null},
               "usage": usage(output)}),
    ));
    events.push(event("message_stop", json!({"type": "message_stop"})));
    let ev = Events {
        events,
        done: None,
        error_event: ERROR_EVENT,
    };
    sse_response(
        ev,
        &dir.fault,
        mock.cfg.token_delay_ms,
        mock.cancelled_counter(),
    )
}

/// `CALL: NAME [JSON]` as the last user message: the tool to call and its input.
fn tool_call(messages: &[Message]) -> Option<(String, Value)> {
    let last = messages.iter().rev().find(|m| m.role == "user")?;
    let text = content_text(&last.content);
    let rest = text.trim().strip_prefix("CALL:")?.trim();
    let (name, args) = rest.split_once(' ').unwrap_or((rest, ""));
    let input = serde_json::from_str(args.trim()).unwrap_or_else(|_| json!({}));
    Some((name.to_string(), input))
}

/// The real API's content rules: a non-empty string, or blocks of known
/// types with non-empty text.
fn check_content(content: &Value) -> Result<(), String> {
    let text_ok = |t: &str| !t.trim().is_empty();
    match content {
        Value::String(s) if text_ok(s) => Ok(()),
        Value::String(_) => Err("text content blocks must be non-empty".into()),
        Value::Array(blocks) if blocks.is_empty() => Err("content must not be empty".into()),
        Value::Array(blocks) => {
            for (j, b) in blocks.iter().enumerate() {
                match b["type"].as_str().unwrap_or("") {
                    "text" if text_ok(b["text"].as_str().unwrap_or("")) => {}
                    "text" => {
                        return Err(format!("{j}.text: text content blocks must be non-empty"));
                    }
                    "image" | "tool_use" | "tool_result" => {}
                    "document" if b["source"]["media_type"] == "application/pdf" => {}
                    "document" => return Err(format!("{j}.source: unsupported document source")),
                    other => {
                        return Err(format!(
                            "{j}.type: Input tag '{other}' found using 'type' does not match any of the expected tags"
                        ));
                    }
                }
            }
            Ok(())
        }
        _ => Err("content must be a string or a list of blocks".into()),
    }
}

impl HasControls for MessagesBody {
    fn controls(&self) -> BodyControls {
        BodyControls {
            mock_fault: self.mock_fault.clone(),
            mock_key: self.mock_key.clone(),
            mock_echo: self.mock_echo,
            mock_answer_bytes: self.mock_answer_bytes,
        }
    }
}
