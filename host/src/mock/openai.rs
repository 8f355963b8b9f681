//! The OpenAI dialect: chat completions, embeddings, models.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};

use super::stream::{Events, sse_response};
use super::text::{count_tokens, embed, pieces, reply_for};
use super::{
    BodyControls, ConnKill, Dialect, Directives, HasControls, Mock, Path, body_response,
    error_response,
};
use crate::openai::content_text;

#[derive(Deserialize)]
struct ChatBody {
    #[serde(default)]
    model: String,
    #[serde(default)]
    messages: Vec<Message>,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    #[serde(default)]
    max_tokens: Option<u32>,
    #[serde(default)]
    max_completion_tokens: Option<u32>,
    #[serde(default)]
    n: Option<u32>,
    #[serde(default)]
    mock_fault: Option<String>,
    #[serde(default)]
    mock_key: Option<String>,
    #[serde(default)]
    mock_echo: Option<bool>,
    #[serde(default)]
    mock_answer_bytes: Option<usize>,
}

/// Separates the choices' texts in a reply when `n` > 1.
const CHOICE_SEPARATOR: &str = "[[choice]]";

#[derive(Deserialize)]
pub(crate) struct Message {
    #[serde(default)]
    pub role: String,
    #[serde(default)]
    pub content: Value,
}

#[derive(Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

/// The answer text: echo, forced reply, `REPLY:` prefix, or the
/// deterministic reply to the last user message.
pub(crate) fn answer_text(d: &Directives, raw: &[u8], messages: &[Message]) -> String {
    if d.echo {
        return String::from_utf8_lossy(raw).into_owned();
    }
    if let Some(n) = d.answer_bytes {
        return super::text::sized(n);
    }
    if let Some(r) = &d.reply {
        return r.clone();
    }
    let last_user = messages
        .iter()
        .rev()
        .find(|m| m.role == "user")
        .map(|m| content_text(&m.content))
        .unwrap_or_default();
    match last_user.strip_prefix("REPLY:") {
        Some(rest) => rest.strip_prefix(' ').unwrap_or(rest).to_string(),
        None => reply_for(&last_user),
    }
}

/// Prompt tokens: words of every message, plus one per message for its role.
pub(crate) fn prompt_tokens<'a>(texts: impl Iterator<Item = String> + 'a) -> u32 {
    texts.map(|t| count_tokens(&t) + 1).sum()
}

pub(crate) async fn chat(
    State(mock): State<Arc<Mock>>,
    kill: Option<Extension<ConnKill>>,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    let (body, d) = match mock.begin::<ChatBody>(Path::Chat, Dialect::OpenAi, &headers, &raw) {
        Ok(x) => x,
        Err(resp) => return *resp,
    };
    if body.messages.is_empty() {
        return error_response(Dialect::OpenAi, 400, None, "messages: must not be empty");
    }
    if let Some(resp) = mock
        .pre_answer(&d.fault, Dialect::OpenAi, kill.as_deref())
        .await
    {
        return resp;
    }
    let text = answer_text(&d, &raw, &body.messages);
    let n = body.n.unwrap_or(1).max(1) as usize;
    let texts: Vec<&str> = text.split(CHOICE_SEPARATOR).collect();
    let limit = body.max_completion_tokens.or(body.max_tokens);
    // Each choice: its pieces and finish reason.
    let choices: Vec<(Vec<&str>, &str)> = (0..n)
        .map(|i| {
            let t = texts[i.min(texts.len() - 1)];
            let mut parts = if d.fault.single_event {
                vec![t]
            } else {
                pieces(t)
            };
            let mut finish = "stop";
            if let Some(max) = limit
                && parts.len() > max as usize
            {
                parts.truncate(max as usize);
                finish = "length";
            }
            (parts, finish)
        })
        .collect();
    let prompt = prompt_tokens(body.messages.iter().map(|m| content_text(&m.content)));
    let completion: u32 = choices.iter().map(|(p, _)| p.len() as u32).sum();
    let id = mock.next_id();
    let model = serde_json::to_string(&body.model).unwrap_or_else(|_| "\"\"".into());
    let usage = format!(
        r#"{{"prompt_tokens":{prompt},"completion_tokens":{completion},"total_tokens":{}}}"#,
        prompt + completion
    );
    if !body.stream {
        let rendered: Vec<String> = choices
            .iter()
            .enumerate()
            .map(|(i, (parts, finish))| {
                let content = serde_json::to_string(&parts.concat()).unwrap_or_default();
                format!(
                    r#"{{"index":{i},"message":{{"role":"assistant","content":{content}}},"finish_reason":"{finish}"}}"#
                )
            })
            .collect();
        let out = format!(
            r#"{{"id":"chatcmpl-mock-{id}","object":"chat.completion","created":{},"model":{model},"choices":[{}],"usage":{usage}}}"#,
            mock.created,
            rendered.join(",")
        );
        return body_response(&d.fault, out.into_bytes());
    }
    let head = format!(
        r#"data: {{"id":"chatcmpl-mock-{id}","object":"chat.completion.chunk","created":{},"model":{model},"choices":["#,
        mock.created
    );
    let event = |choice: &str| -> Vec<u8> {
        let mut e = String::with_capacity(head.len() + choice.len() + 8);
        e.push_str(&head);
        e.push_str(choice);
        e.push_str("]}\n\n");
        e.into_bytes()
    };
    let longest = choices.iter().map(|(p, _)| p.len()).max().unwrap_or(0);
    let mut events = Vec::with_capacity(n * (longest + 2) + 1);
    for i in 0..n {
        events.push(event(&format!(
            r#"{{"index":{i},"delta":{{"role":"assistant","content":""}},"finish_reason":null}}"#
        )));
    }
    // Choices interleave piece by piece, as OpenAI streams them.
    for k in 0..longest {
        for (i, (parts, _)) in choices.iter().enumerate() {
            if let Some(p) = parts.get(k) {
                let piece = serde_json::to_string(p).unwrap_or_default();
                events.push(event(&format!(
                    r#"{{"index":{i},"delta":{{"content":{piece}}},"finish_reason":null}}"#
                )));
            }
        }
    }
    for (i, (_, finish)) in choices.iter().enumerate() {
        events.push(event(&format!(
            r#"{{"index":{i},"delta":{{}},"finish_reason":"{finish}"}}"#
        )));
    }
    if body.stream_options.is_some_and(|o| o.include_usage) {
        let mut e = event("");
        // Replace the closing `]}` with `],"usage":{..}}`.
        e.truncate(e.len() - 4);
        e.extend_from_slice(format!(r#"],"usage":{usage}}}"#).as_bytes());
        e.extend_from_slice(b"\n\n");
        events.push(e);
    }
    let ev = Events {
        events,
        done: Some(b"data: [DONE]\n\n"),
        error_event: b"data: {\"error\":{\"message\":\"mock mid-stream failure\",\"type\":\"server_error\",\"param\":null,\"code\":null}}\n\n",
    };
    sse_response(
        ev,
        &d.fault,
        mock.cfg.token_delay_ms,
        mock.cancelled_counter(),
    )
}

#[derive(Deserialize)]
struct EmbeddingsBody {
    #[serde(default)]
    model: String,
    #[serde(default)]
    input: Value,
    #[serde(default)]
    mock_fault: Option<String>,
    #[serde(default)]
    mock_key: Option<String>,
}

/// The texts of an embeddings `input`: a string, strings, or token arrays
/// (embedded by their numbers' text).
fn inputs(input: &Value) -> Option<Vec<String>> {
    let tokens = |v: &Vec<Value>| {
        v.iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join(" ")
    };
    match input {
        Value::String(s) => Some(vec![s.clone()]),
        Value::Array(items) if items.iter().all(Value::is_number) && !items.is_empty() => {
            Some(vec![tokens(items)])
        }
        Value::Array(items) => items
            .iter()
            .map(|i| match i {
                Value::String(s) => Some(s.clone()),
                Value::Array(t) => Some(tokens(t)),
                _ => None,
            })
            .collect(),
        _ => None,
    }
}

pub(crate) async fn embeddings(
    State(mock): State<Arc<Mock>>,
    kill: Option<Extension<ConnKill>>,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    let (body, d) =
        match mock.begin::<EmbeddingsBody>(Path::Embeddings, Dialect::OpenAi, &headers, &raw) {
            Ok(x) => x,
            Err(resp) => return *resp,
        };
    let Some(texts) = inputs(&body.input).filter(|t| !t.is_empty()) else {
        return error_response(
            Dialect::OpenAi,
            400,
            None,
            "input: expected a string, strings or token arrays",
        );
    };
    if let Some(resp) = mock
        .pre_answer(&d.fault, Dialect::OpenAi, kill.as_deref())
        .await
    {
        return resp;
    }
    let dim = mock.cfg.embedding_dim;
    let mut out = String::with_capacity(64 + texts.len() * dim * 12);
    out.push_str(r#"{"object":"list","data":["#);
    let mut tokens = 0;
    for (i, t) in texts.iter().enumerate() {
        tokens += count_tokens(t);
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, r#"{{"object":"embedding","index":{i},"embedding":["#);
        for (j, x) in embed(t, dim).iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            let _ = write!(out, "{x}");
        }
        out.push_str("]}");
    }
    let model = json!(body.model);
    let _ = write!(
        out,
        r#"],"model":{model},"usage":{{"prompt_tokens":{tokens},"total_tokens":{tokens}}}}}"#
    );
    body_response(&d.fault, out.into_bytes())
}

pub(crate) async fn models(State(mock): State<Arc<Mock>>) -> Response {
    mock.models()
}

impl HasControls for ChatBody {
    fn controls(&self) -> BodyControls {
        BodyControls {
            mock_fault: self.mock_fault.clone(),
            mock_key: self.mock_key.clone(),
            mock_echo: self.mock_echo,
            mock_answer_bytes: self.mock_answer_bytes,
        }
    }
}

impl HasControls for EmbeddingsBody {
    fn controls(&self) -> BodyControls {
        BodyControls {
            mock_fault: self.mock_fault.clone(),
            mock_key: self.mock_key.clone(),
            mock_echo: None,
            mock_answer_bytes: None,
        }
    }
}
