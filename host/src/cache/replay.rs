//! A cached answer replayed as a stream: the chunks an upstream would have
//! sent for it (role, the text in word-sized pieces, tool calls, the
//! finish reason, then usage), fed to the same stream path as a live
//! answer, so the current output guardrails check it window by window.

use futures_util::stream;
use serde_json::{Map, Value};

use crate::openai::{ChatChunk, ChatCompletion, ChunkChoice, Delta};
use crate::provider::ChunkStream;

/// Characters per replayed content chunk (the client sees a stream, not a
/// single burst, without one event per character).
const PIECE: usize = 64;

/// The chunks of `c`.
pub fn chunks(c: &ChatCompletion) -> Vec<ChatChunk> {
    let chunk = |choices: Vec<ChunkChoice>| ChatChunk {
        id: c.id.clone(),
        object: "chat.completion.chunk".into(),
        created: c.created,
        model: c.model.clone(),
        choices,
        usage: None,
        extra: Map::new(),
    };
    let mut out = Vec::new();
    for ch in &c.choices {
        let one = |delta: Delta, finish: Option<String>| ChunkChoice {
            index: ch.index,
            delta,
            finish_reason: finish,
            extra: Map::new(),
        };
        out.push(chunk(vec![one(
            Delta {
                role: Some(ch.message.role.clone()),
                ..Delta::default()
            },
            None,
        )]));
        let text = ch.message.content_text();
        for piece in pieces(&text) {
            out.push(chunk(vec![one(
                Delta {
                    content: Some(piece.to_string()),
                    ..Delta::default()
                },
                None,
            )]));
        }
        // Tool calls and anything else the message carries, whole.
        let mut extra = ch.message.extra.clone();
        if let Some(Value::Array(calls)) = extra.get_mut("tool_calls") {
            for (i, call) in calls.iter_mut().enumerate() {
                if let Value::Object(o) = call {
                    o.entry("index").or_insert(i.into());
                }
            }
        }
        if !extra.is_empty() {
            out.push(chunk(vec![one(
                Delta {
                    extra,
                    ..Delta::default()
                },
                None,
            )]));
        }
        out.push(chunk(vec![one(
            Delta::default(),
            ch.finish_reason.clone().or_else(|| Some("stop".into())),
        )]));
    }
    let mut last = chunk(Vec::new());
    last.usage = c.usage;
    out.push(last);
    out
}

/// The chunks of `c` as an upstream stream.
pub fn stream(c: &ChatCompletion) -> ChunkStream {
    Box::pin(stream::iter(chunks(c).into_iter().map(Ok)))
}

/// `text` in pieces of about [`PIECE`] bytes, cut at char boundaries.
fn pieces(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let mut end = PIECE.min(rest.len());
        while !rest.is_char_boundary(end) {
            end += 1;
        }
        out.push(&rest[..end]);
        rest = &rest[end..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replayed_chunks_spell_the_answer_and_end_with_usage() {
        let c: ChatCompletion = serde_json::from_value(serde_json::json!({
            "id": "x", "model": "m", "created": 1,
            "choices": [{"index": 0, "finish_reason": "stop",
                "message": {"role": "assistant", "content": "é".repeat(100)}}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
        }))
        .unwrap();
        let cs = chunks(&c);
        let text: String = cs
            .iter()
            .flat_map(|c| c.choices.iter().filter_map(|ch| ch.delta.content.clone()))
            .collect();
        assert_eq!(text, "é".repeat(100));
        assert_eq!(cs[0].choices[0].delta.role.as_deref(), Some("assistant"));
        assert_eq!(cs.last().unwrap().usage.unwrap().total_tokens, 7);
        let finish = &cs[cs.len() - 2].choices[0];
        assert_eq!(finish.finish_reason.as_deref(), Some("stop"));
    }
}
