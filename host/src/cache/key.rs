//! What makes two requests "the same" for the cache.
//!
//! The exact key is the SHA-256 of a canonical JSON rendering of everything
//! that changes the answer: the gateway model, every message (role, text,
//! tool calls, names), and every parameter (`tools`, `tool_choice`,
//! `response_format`, `temperature`, `top_p`, `seed`, `max_tokens`, `stop`,
//! `n`, and any other field the client sent). Fields that only change how
//! the answer is delivered or billed are left out: `user`, `stream`,
//! `stream_options`, `metadata`, `store`. Keys of JSON objects are sorted
//! (`serde_json`'s map is ordered), so field order never matters;
//! `max_completion_tokens` and `max_tokens` are one parameter; a content
//! array made only of text parts equals the string it spells.
//!
//! The semantic partition is the same digest without the last user turn:
//! model, system prompt, earlier turns, tools and parameters must match
//! exactly, and only the last user turn is compared by meaning.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::openai::{ChatMessage, ChatRequest};

/// Request fields that never change the answer's content.
const IGNORED: &[&str] = &["user", "stream", "stream_options", "metadata", "store"];

/// The exact-match key of `req` under `model` (hex, 32 chars).
pub fn exact(model: &str, req: &ChatRequest) -> String {
    digest(&canonical(model, req, req.messages.len()))
}

/// The semantic partition of `req` (everything but the last user turn,
/// which must be the last message) and that turn's text; None when the
/// request does not end with a user turn with text.
pub fn partition(model: &str, req: &ChatRequest) -> Option<(String, String)> {
    let last = req.messages.last().filter(|m| m.role == "user")?;
    let text = last.content_text();
    if text.trim().is_empty() {
        return None;
    }
    let mut v = canonical(model, req, req.messages.len() - 1);
    v["kind"] = Value::from("semantic");
    Some((digest(&v), text))
}

/// User turns in the conversation (for `semantic-max-turns`).
pub fn user_turns(req: &ChatRequest) -> usize {
    req.messages.iter().filter(|m| m.role == "user").count()
}

/// Whether `req` asks for tools (`tools` or legacy `functions`).
pub fn has_tools(req: &ChatRequest) -> bool {
    ["tools", "functions"]
        .iter()
        .any(|k| req.extra.get(*k).is_some_and(|v| !v.is_null()))
}

/// A deterministic request: temperature 0, or a `seed`.
pub fn deterministic(req: &ChatRequest) -> bool {
    req.temperature == Some(0.0) || req.extra.get("seed").is_some_and(|s| !s.is_null())
}

fn digest(v: &Value) -> String {
    // Serialising a `Value` cannot fail.
    let bytes = serde_json::to_vec(v).unwrap_or_default();
    hex::encode(&Sha256::digest(&bytes)[..16])
}

/// The canonical rendering of `req` with its first `messages` messages.
fn canonical(model: &str, req: &ChatRequest, messages: usize) -> Value {
    let mut params = Map::new();
    for (k, v) in &req.extra {
        if !IGNORED.contains(&k.as_str()) && !v.is_null() {
            params.insert(k.clone(), v.clone());
        }
    }
    if let Some(t) = req.temperature {
        params.insert("temperature".into(), t.into());
    }
    if let Some(m) = req.max_output_tokens() {
        params.insert("max_tokens".into(), m.into());
    }
    let messages: Vec<Value> = req.messages[..messages].iter().map(message).collect();
    serde_json::json!({ "model": model, "messages": messages, "params": params })
}

fn message(m: &ChatMessage) -> Value {
    let mut out = Map::new();
    for (k, v) in &m.extra {
        if !v.is_null() {
            out.insert(k.clone(), v.clone());
        }
    }
    out.insert("role".into(), m.role.clone().into());
    out.insert("content".into(), content(&m.content));
    Value::Object(out)
}

/// Text-only part arrays become the string they spell.
fn content(c: &Value) -> Value {
    if let Value::Array(parts) = c {
        let texts: Option<Vec<&str>> = parts
            .iter()
            .map(|p| {
                (p.get("type").and_then(Value::as_str) == Some("text"))
                    .then(|| p.get("text").and_then(Value::as_str))
                    .flatten()
            })
            .collect();
        if let Some(t) = texts {
            return Value::String(t.concat());
        }
    }
    c.clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn req(v: Value) -> ChatRequest {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn field_order_user_and_stream_do_not_change_the_key() {
        let a = req(json!({"model": "m", "temperature": 0, "seed": 1,
            "messages": [{"role": "user", "content": "hi"}]}));
        let b = req(
            json!({"seed": 1, "stream": true, "user": "bob", "metadata": {"x": 1},
            "messages": [{"content": "hi", "role": "user"}], "model": "m", "temperature": 0.0}),
        );
        assert_eq!(exact("m", &a), exact("m", &b));
        let parts = req(json!({"model": "m", "temperature": 0, "seed": 1,
            "messages": [{"role": "user", "content": [{"type": "text", "text": "h"}, {"type": "text", "text": "i"}]}]}));
        assert_eq!(exact("m", &a), exact("m", &parts));
    }

    #[test]
    fn every_output_parameter_changes_the_key() {
        let base = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
        let k0 = exact("m", &req(base.clone()));
        assert_ne!(k0, exact("other", &req(base.clone())), "gateway model");
        for (field, value) in [
            ("temperature", json!(0.5)),
            ("top_p", json!(0.9)),
            ("seed", json!(7)),
            ("max_tokens", json!(10)),
            ("stop", json!(["x"])),
            ("n", json!(2)),
            (
                "tools",
                json!([{"type": "function", "function": {"name": "f"}}]),
            ),
            ("tool_choice", json!("required")),
            ("response_format", json!({"type": "json_object"})),
        ] {
            let mut v = base.clone();
            v[field] = value;
            assert_ne!(k0, exact("m", &req(v)), "{field}");
        }
        let mut v = base.clone();
        v["max_completion_tokens"] = json!(10);
        let mut w = base;
        w["max_tokens"] = json!(10);
        assert_eq!(exact("m", &req(v)), exact("m", &req(w)), "one token limit");
    }

    #[test]
    fn the_partition_is_everything_but_the_last_user_turn() {
        let conv = |system: &str, last: &str| {
            req(json!({"model": "m", "messages": [
                {"role": "system", "content": system},
                {"role": "user", "content": last}]}))
        };
        let (p1, t1) = partition("m", &conv("be brief", "What is Rust?")).unwrap();
        let (p2, _) = partition("m", &conv("be brief", "Tell me about Rust")).unwrap();
        let (p3, _) = partition("m", &conv("be verbose", "What is Rust?")).unwrap();
        assert_eq!(t1, "What is Rust?");
        assert_eq!(p1, p2);
        assert_ne!(p1, p3);
        let (k, _) = partition("m", &conv("be brief", "What is Rust?")).unwrap();
        assert_ne!(k, exact("m", &conv("be brief", "What is Rust?")));
        let assistant_last = req(json!({"model": "m", "messages": [
            {"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}));
        assert!(partition("m", &assistant_last).is_none());
    }

    #[test]
    fn deterministic_means_temperature_zero_or_a_seed() {
        let msgs = json!([{"role": "user", "content": "hi"}]);
        assert!(deterministic(&req(
            json!({"model": "m", "temperature": 0, "messages": msgs})
        )));
        assert!(deterministic(&req(
            json!({"model": "m", "seed": 3, "messages": msgs})
        )));
        assert!(!deterministic(&req(
            json!({"model": "m", "messages": msgs})
        )));
        assert!(!deterministic(&req(
            json!({"model": "m", "temperature": 0.7, "messages": msgs})
        )));
    }
}
