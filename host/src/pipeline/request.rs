//! The request as plugins see it ([`RequestInfo`]), built once per request
//! from the OpenAI body and shared by every plugin call.

use serde_json::Value;

use crate::openai::{ChatMessage, ChatRequest};
use crate::plugin::{Message, RequestInfo, ToolCall};

use super::RequestCtx;

/// The plugins' view of `req` from the caller `ctx`.
pub(super) fn request_info(ctx: &RequestCtx, req: &ChatRequest) -> RequestInfo {
    RequestInfo {
        id: ctx.id.clone(),
        user: req.user.clone().or_else(|| ctx.principal.user.clone()),
        api_key_id: ctx.principal.key_id.clone(),
        feature: ctx.feature.clone(),
        tags: ctx.tags.clone(),
        model: req.model.clone(),
        messages: req.messages.iter().map(message).collect(),
        max_tokens: req.max_output_tokens(),
        temperature: req.temperature.map(|t| t as f32),
        stream: req.stream,
        // `prepare` sets it when the prompt registry rendered the request.
        prompt: None,
    }
}

/// One message with everything a guardrail must see: its text, its
/// participant name, an assistant's tool calls and a tool result's call id.
pub(super) fn message(m: &ChatMessage) -> Message {
    let text = |key: &str| m.extra.get(key).and_then(Value::as_str).map(str::to_owned);
    let mut tool_calls: Vec<ToolCall> = m
        .extra
        .get("tool_calls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|c| ToolCall {
            id: str_at(c, &["id"]),
            name: str_at(c, &["function", "name"]),
            arguments: str_at(c, &["function", "arguments"]),
        })
        .collect();
    // The deprecated single `function_call` is a tool call without an id.
    if let Some(f) = m.extra.get("function_call").filter(|f| f.is_object()) {
        tool_calls.push(ToolCall {
            id: String::new(),
            name: str_at(f, &["name"]),
            arguments: str_at(f, &["arguments"]),
        });
    }
    Message {
        role: m.role.clone(),
        content: content_text(&m.content),
        name: text("name"),
        tool_calls,
        tool_call_id: text("tool_call_id"),
    }
}

/// The string at `path` in `v`, empty when absent. Arguments that are not
/// a string (some clients send an object) are given as their JSON text.
fn str_at(v: &Value, path: &[&str]) -> String {
    match path.iter().try_fold(v, |v, k| v.get(k)) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// A message's `content` as text: a string as is; an array's parts joined
/// with newlines, text (and refusal) parts by their text and every other
/// part by a placeholder (`[image]`, `[audio]`, `[file]`, `[<type>]`), so a
/// guardrail sees that something was there.
pub(super) fn content_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .map(|p| {
                let ty = p.get("type").and_then(Value::as_str).unwrap_or("");
                match (ty, p.get(ty).or_else(|| p.get("text"))) {
                    ("text" | "refusal", Some(Value::String(t))) => t.clone(),
                    ("image_url" | "image", _) => "[image]".into(),
                    ("input_audio" | "audio", _) => "[audio]".into(),
                    ("file", _) => "[file]".into(),
                    (_, Some(Value::String(t))) => t.clone(),
                    ("", _) => "[part]".into(),
                    (other, _) => format!("[{other}]"),
                }
            })
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn msg(v: Value) -> Message {
        message(&serde_json::from_value(v).unwrap())
    }

    #[test]
    fn tool_calls_names_and_call_ids_are_kept() {
        let m = msg(json!({
            "role": "assistant",
            "content": null,
            "name": "agent",
            "tool_calls": [
                {"id": "call_1", "type": "function",
                 "function": {"name": "send_mail", "arguments": "{\"to\":\"a@b.co\"}"}},
                {"id": "call_2", "type": "function",
                 "function": {"name": "lookup", "arguments": {"q": 1}}}
            ]
        }));
        assert_eq!(m.content, "");
        assert_eq!(m.name.as_deref(), Some("agent"));
        assert_eq!(m.tool_calls.len(), 2);
        assert_eq!(m.tool_calls[0].name, "send_mail");
        assert_eq!(m.tool_calls[0].arguments, "{\"to\":\"a@b.co\"}");
        assert_eq!(m.tool_calls[1].arguments, "{\"q\":1}");
        let t = msg(json!({"role": "tool", "content": "sent", "tool_call_id": "call_1"}));
        assert_eq!(t.tool_call_id.as_deref(), Some("call_1"));
        assert!(t.tool_calls.is_empty());
        let legacy = msg(json!({"role": "assistant", "content": null,
            "function_call": {"name": "f", "arguments": "{}"}}));
        assert_eq!(legacy.tool_calls[0].name, "f");
        assert_eq!(legacy.tool_calls[0].id, "");
    }

    #[test]
    fn content_parts_flatten_with_placeholders() {
        let content = json!([
            {"type": "text", "text": "look at"},
            {"type": "image_url", "image_url": {"url": "data:..."}},
            {"type": "input_audio", "input_audio": {"data": "..", "format": "wav"}},
            {"type": "file", "file": {"file_id": "f1"}},
            {"type": "refusal", "refusal": "no"},
            {"type": "video", "video": {}}
        ]);
        assert_eq!(
            content_text(&content),
            "look at\n[image]\n[audio]\n[file]\nno\n[video]"
        );
        assert_eq!(content_text(&json!("plain")), "plain");
        assert_eq!(content_text(&Value::Null), "");
    }
}
