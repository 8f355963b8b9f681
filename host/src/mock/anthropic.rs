//! The Anthropic dialect: `POST /v1/messages`, plain and streamed in
//! Anthropic's event format, strict where the real API is strict
//! (`anthropic-version` header and `max_tokens` required) so the
//! translation layer is tested against those rules.

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
    if let Some(resp) = mock.pre_answer(&dir.fault, d, kill.as_deref()).await {
        return resp;
    }
    let text = answer_text(&dir, &raw, &body.messages);
    let mut parts = pieces(&text);
    let mut stop = "end_turn";
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
    let output = parts.len() as u32;
    let id = format!("msg_mock_{}", mock.next_id());
    if !body.stream {
        let out = json!({
            "id": id, "type": "message", "role": "assistant", "model": body.model,
            "content": [{"type": "text", "text": parts.concat()}],
            "stop_reason": stop, "stop_sequence": null,
            "usage": {"input_tokens": input, "output_tokens": output},
        });
        return body_response(&dir.fault, out.to_string().into_bytes());
    }
    let event = |name: &str, data: Value| format!("event: {name}\ndata: {data}\n\n").into_bytes();
    let mut events = Vec::with_capacity(parts.len() + 6);
    events.push(event(
        "message_start",
        json!({"type": "message_start", "message": {
            "id": id, "type": "message", "role": "assistant", "model": body.model, "content": [],
            "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": input, "output_tokens": 1}}}),
    ));
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
    events.push(event(
        "content_block_stop",
        json!({"type": "content_block_stop", "index": 0}),
    ));
    events.push(event(
        "message_delta",
        json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null},
               "usage": {"output_tokens": output}}),
    ));
    events.push(event("message_stop", json!({"type": "message_stop"})));
    let ev = Events {
        events,
        done: None,
        error_event: ERROR_EVENT,
    };
    sse_response(ev, &dir.fault, mock.cfg.token_delay_ms)
}

impl HasControls for MessagesBody {
    fn controls(&self) -> BodyControls {
        BodyControls {
            mock_fault: self.mock_fault.clone(),
            mock_key: self.mock_key.clone(),
            mock_echo: self.mock_echo,
        }
    }
}
