//! Every text of an answer that a client receives, as the output chain
//! sees it: the message `content` (a string, or each text part of an array),
//! a `refusal`, and each tool call's name and arguments (`tool_calls`, and
//! the deprecated single `function_call`), for every choice.
//!
//! A non-streamed answer has each of these checked whole
//! ([`check_completion`]). A stream windows `content` and `refusal` like
//! any text ([`super::stream`]) and holds tool calls back whole until their
//! choice finishes ([`HeldCalls`]): a guardrail judges a call's arguments as
//! the complete JSON text, and a transform of them must stay valid JSON.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Map, Value, json};

use crate::openai::{ChatCompletion, ChatMessage, ChatRequest};
use crate::plugin::{OutputContext, OutputPart, Plugin, RequestInfo};

use crate::state::review::FlagEntry;

use super::guard::{self, GuardReport};
use super::{Error, review};

/// The context of a whole (non-windowed) part of choice `choice`.
pub fn whole(choice: u32, part: OutputPart) -> OutputContext {
    OutputContext {
        emitted: String::new(),
        window_index: 0,
        is_final: true,
        choice,
        part,
    }
}

/// Run the output chain on every text of every choice of `completion`,
/// rewriting what a transform changed. Stops at the first reject. Each
/// chain's result is recorded in `report`; its flags are added to `flags`
/// (for the review queue).
pub async fn check_completion(
    plugins: &[Arc<Plugin>],
    info: &Arc<RequestInfo>,
    completion: &mut ChatCompletion,
    report: &mut GuardReport,
    flags: &mut Vec<FlagEntry>,
) -> Result<(), Error> {
    if plugins.is_empty() {
        return Ok(());
    }
    let request = tracing::Span::current();
    let mut window = 0;
    for choice in &mut completion.choices {
        choice.extra.remove("logprobs");
        drop_unchecked(&mut choice.message.extra);
        let index = choice.index;
        for (part, value) in texts_mut(&mut choice.message) {
            let text = match &*value {
                Value::String(s) => s.clone(),
                Value::Null => continue,
                other => other.to_string(),
            };
            window += 1;
            let ctx = whole(index, part);
            let chain =
                guard::check_output_traced(&request, window, plugins, info, &text, &ctx).await;
            report.record(&chain);
            if let Some(err) = chain.rejection() {
                return Err(err);
            }
            flags.extend(review::entries(
                &chain.flagged,
                index,
                &review::part_name(&ctx.part),
            ));
            if !chain.transformed.is_empty() {
                *value = rewritten(value, chain.text);
            }
        }
    }
    Ok(())
}

/// `logprobs` carry the answer's tokens as text, which no guardrail
/// checks (a redacted card number would still be there, token by token):
/// with output guardrails the gateway does not ask for them, and drops any
/// an upstream sends anyway.
pub fn drop_logprobs_request(req: &mut ChatRequest) {
    req.extra.remove("logprobs");
    req.extra.remove("top_logprobs");
}

/// Message and delta fields that carry answer text the contract has no
/// part for: a reasoning model's thoughts (`reasoning_content` from
/// DeepSeek-style upstreams, `reasoning` / `reasoning_details` from
/// OpenRouter-style ones) and `audio` (its `transcript` is the answer
/// spoken, its `data` the same as sound). No guardrail checks them, and
/// they can spell out what a guardrail redacted from `content`, so with
/// output guardrails they are dropped, not forwarded unchecked.
pub const UNCHECKED_TEXT: [&str; 4] = [
    "reasoning_content",
    "reasoning",
    "reasoning_details",
    "audio",
];

/// Remove the [`UNCHECKED_TEXT`] fields from a message or a delta.
pub fn drop_unchecked(fields: &mut Map<String, Value>) {
    for key in UNCHECKED_TEXT {
        fields.remove(key);
    }
}

/// A transform's text in place of `old`: a string stays a string; a value
/// that was not one (tool arguments some upstreams send as an object) is
/// parsed back when the new text is JSON.
fn rewritten(old: &Value, text: String) -> Value {
    match old {
        Value::String(_) => Value::String(text),
        _ => serde_json::from_str(&text).unwrap_or(Value::String(text)),
    }
}

/// Every text of `msg` a client receives, with the part it is.
fn texts_mut(msg: &mut ChatMessage) -> Vec<(OutputPart, &mut Value)> {
    let mut out = Vec::new();
    match &mut msg.content {
        Value::Array(parts) => {
            for p in parts {
                let ty = p.get("type").and_then(Value::as_str).unwrap_or("text");
                let (key, part) = match ty {
                    "refusal" => ("refusal", OutputPart::Refusal),
                    _ => ("text", OutputPart::Content),
                };
                if let Some(v) = p.get_mut(key).filter(|v| v.is_string()) {
                    out.push((part, v));
                }
            }
        }
        content => out.push((OutputPart::Content, content)),
    }
    let mut calls = 0;
    let mut legacy = None;
    for (key, v) in &mut msg.extra {
        match key.as_str() {
            "refusal" => out.push((OutputPart::Refusal, v)),
            "tool_calls" => {
                for (i, call) in v.as_array_mut().into_iter().flatten().enumerate() {
                    calls = i + 1;
                    if let Some(f) = call.get_mut("function").and_then(Value::as_object_mut) {
                        function_texts(f, i as u32, &mut out);
                    }
                }
            }
            "function_call" => legacy = v.as_object_mut(),
            _ => {}
        }
    }
    // The deprecated single call comes after any `tool_calls`.
    if let Some(f) = legacy {
        function_texts(f, calls as u32, &mut out);
    }
    out
}

fn function_texts<'a>(
    f: &'a mut Map<String, Value>,
    i: u32,
    out: &mut Vec<(OutputPart, &'a mut Value)>,
) {
    for (key, v) in f {
        match key.as_str() {
            "name" => out.push((OutputPart::ToolName(i), v)),
            "arguments" => out.push((OutputPart::ToolArguments(i), v)),
            _ => {}
        }
    }
}

/// The tool calls of one streamed choice, assembled from their deltas and
/// held back until the choice finishes. Each delta's `index` names the
/// call it continues; `id`, `type` and the name arrive once, the
/// arguments in pieces.
#[derive(Debug, Default)]
pub struct HeldCalls {
    calls: BTreeMap<u64, HeldCall>,
    /// The deprecated `function_call` delta, assembled the same way.
    legacy: Option<HeldCall>,
}

#[derive(Debug, Default)]
struct HeldCall {
    id: Option<String>,
    kind: Option<String>,
    name: String,
    arguments: String,
}

impl HeldCall {
    fn absorb(&mut self, delta: &Value) {
        let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
        if let Some(id) = text(delta, "id") {
            self.id = Some(id);
        }
        if let Some(kind) = text(delta, "type") {
            self.kind = Some(kind);
        }
        let f = delta.get("function").unwrap_or(delta);
        if let Some(name) = text(f, "name") {
            self.name.push_str(&name);
        }
        match f.get("arguments") {
            Some(Value::String(a)) => self.arguments.push_str(a),
            Some(Value::Null) | None => {}
            Some(other) => self.arguments.push_str(&other.to_string()),
        }
    }
}

impl HeldCalls {
    /// Take the tool-call fields out of a delta (`tool_calls`,
    /// `function_call`) and hold them.
    pub fn absorb(&mut self, extra: &mut Map<String, Value>) {
        if let Some(Value::Array(deltas)) = extra.remove("tool_calls") {
            let next = self.calls.len() as u64;
            for d in deltas {
                let index = d.get("index").and_then(Value::as_u64).unwrap_or(next);
                self.calls.entry(index).or_default().absorb(&d);
            }
        }
        if let Some(f) = extra.remove("function_call").filter(Value::is_object) {
            self.legacy.get_or_insert_with(Default::default).absorb(&f);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.calls.is_empty() && self.legacy.is_none()
    }

    /// Each held call's name, then its arguments (parts `tool-name(n)` and
    /// `tool-arguments(n)`, `n` counting from 0 in index order; the
    /// deprecated call last), for the chain.
    pub fn parts(&self) -> Vec<(OutputPart, String)> {
        let mut out = Vec::new();
        for (n, call) in self.calls.values().chain(&self.legacy).enumerate() {
            out.push((OutputPart::ToolName(n as u32), call.name.clone()));
            out.push((OutputPart::ToolArguments(n as u32), call.arguments.clone()));
        }
        out
    }

    /// Release the held calls with `checked`, the chain's texts for
    /// [`HeldCalls::parts`] in that order: the delta fields that carry the
    /// complete calls to the client in one delta.
    pub fn release(&mut self, checked: Vec<String>) -> Map<String, Value> {
        let mut texts = checked.into_iter();
        let mut next = || texts.next().unwrap_or_default();
        let mut delta = Map::new();
        let mut calls = Vec::new();
        for (index, call) in std::mem::take(&mut self.calls) {
            let (name, arguments) = (next(), next());
            let mut v = json!({
                "index": index,
                "type": call.kind.unwrap_or_else(|| "function".into()),
                "function": {"name": name, "arguments": arguments},
            });
            if let Some(id) = call.id {
                v["id"] = json!(id);
            }
            calls.push(v);
        }
        if !calls.is_empty() {
            delta.insert("tool_calls".into(), Value::Array(calls));
        }
        if self.legacy.take().is_some() {
            let (name, arguments) = (next(), next());
            delta.insert(
                "function_call".into(),
                json!({"name": name, "arguments": arguments}),
            );
        }
        delta
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(v: Value) -> ChatMessage {
        serde_json::from_value(v).unwrap()
    }

    fn parts(msg: &mut ChatMessage) -> Vec<(OutputPart, String)> {
        texts_mut(msg)
            .into_iter()
            .map(|(p, v)| (p, v.as_str().map_or_else(|| v.to_string(), str::to_owned)))
            .collect()
    }

    #[test]
    fn every_text_of_a_message_is_a_part() {
        let mut m = message(json!({
            "role": "assistant",
            "content": [
                {"type": "text", "text": "one"},
                {"type": "image_url", "image_url": {"url": "x"}},
                {"type": "refusal", "refusal": "no"},
                {"type": "text", "text": "two"}
            ],
            "refusal": "not that",
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "a", "arguments": "{}"}},
                {"id": "c2", "type": "function", "function": {"name": "b", "arguments": {"x": 1}}}
            ],
            "function_call": {"name": "old", "arguments": "[]"}
        }));
        let mut got = parts(&mut m);
        got.sort_by_key(|(p, _)| format!("{p:?}"));
        let mut want = vec![
            (OutputPart::Content, "one".to_string()),
            (OutputPart::Content, "two".into()),
            (OutputPart::Refusal, "no".into()),
            (OutputPart::Refusal, "not that".into()),
            (OutputPart::ToolName(0), "a".into()),
            (OutputPart::ToolArguments(0), "{}".into()),
            (OutputPart::ToolName(1), "b".into()),
            (OutputPart::ToolArguments(1), "{\"x\":1}".into()),
            (OutputPart::ToolName(2), "old".into()),
            (OutputPart::ToolArguments(2), "[]".into()),
        ];
        want.sort_by_key(|(p, _)| format!("{p:?}"));
        assert_eq!(got, want);
        let mut plain = message(json!({"role": "assistant", "content": null}));
        assert_eq!(parts(&mut plain), [(OutputPart::Content, "null".into())]);
    }

    #[test]
    fn rewritten_arguments_keep_their_shape() {
        assert_eq!(rewritten(&json!("a"), "b".into()), json!("b"));
        assert_eq!(
            rewritten(&json!({"x": 1}), "{\"x\":2}".into()),
            json!({"x": 2})
        );
        assert_eq!(rewritten(&json!({"x": 1}), "nope".into()), json!("nope"));
    }

    #[test]
    fn streamed_calls_are_assembled_and_released_checked() {
        let mut held = HeldCalls::default();
        let delta = |v: Value| v.as_object().unwrap().clone();
        held.absorb(&mut delta(json!({"tool_calls": [
            {"index": 0, "id": "c1", "type": "function", "function": {"name": "send", "arguments": ""}}
        ]})));
        held.absorb(&mut delta(json!({"tool_calls": [
            {"index": 0, "function": {"arguments": "{\"card\":\"4111"}}
        ]})));
        let mut rest = delta(json!({"tool_calls": [
            {"index": 1, "id": "c2", "function": {"name": "log", "arguments": "{}"}},
            {"index": 0, "function": {"arguments": " 1111\"}"}}
        ], "other": 1}));
        held.absorb(&mut rest);
        assert_eq!(
            rest,
            delta(json!({"other": 1})),
            "only tool fields are taken"
        );
        let parts = held.parts();
        assert_eq!(
            parts,
            [
                (OutputPart::ToolName(0), "send".into()),
                (
                    OutputPart::ToolArguments(0),
                    "{\"card\":\"4111 1111\"}".into()
                ),
                (OutputPart::ToolName(1), "log".into()),
                (OutputPart::ToolArguments(1), "{}".into()),
            ]
        );
        let checked = parts
            .into_iter()
            .map(|(_, t)| t.replace("4111 1111", "[CARD]"))
            .collect();
        let out = held.release(checked);
        assert_eq!(
            Value::Object(out),
            json!({"tool_calls": [
                {"index": 0, "id": "c1", "type": "function",
                 "function": {"name": "send", "arguments": "{\"card\":\"[CARD]\"}"}},
                {"index": 1, "id": "c2", "type": "function",
                 "function": {"name": "log", "arguments": "{}"}}
            ]})
        );
        assert!(held.is_empty());
    }
}
