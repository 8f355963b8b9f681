//! An OpenAI chat request as a Messages API body.

use serde_json::{Map, Value, json};

use crate::openai::{ChatMessage, ChatRequest};

/// A request Anthropic cannot take as it is: which part, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Untranslatable {
    /// The JSON path of the offending field, e.g. `messages[1].content[0]`.
    pub param: String,
    pub message: String,
}

impl Untranslatable {
    fn new(param: String, message: impl Into<String>) -> Self {
        Self {
            param,
            message: message.into(),
        }
    }
}

/// The Messages API body for an OpenAI chat request.
pub fn to_messages_request(
    req: &ChatRequest,
    model: &str,
    default_max_tokens: u32,
    stream: bool,
) -> Result<Value, Untranslatable> {
    let mut system = Vec::new();
    let mut messages: Vec<(String, Vec<Value>)> = Vec::new();
    for (i, m) in req.messages.iter().enumerate() {
        let (role, blocks) = match m.role.as_str() {
            "system" | "developer" => {
                system.push(m.content_text());
                continue;
            }
            "assistant" => ("assistant", assistant_blocks(m)),
            "tool" => ("user", vec![tool_result(m)]),
            _ => ("user", content_blocks(&m.content, i)?),
        };
        // An empty turn is left out: Anthropic refuses empty text blocks.
        if blocks.is_empty() {
            continue;
        }
        // Anthropic wants alternating turns: merge consecutive same-role ones.
        match messages.last_mut() {
            Some((r, b)) if r == role => b.extend(blocks),
            _ => messages.push((role.to_string(), blocks)),
        }
    }
    if messages.is_empty() {
        return Err(Untranslatable::new(
            "messages".into(),
            "`messages` has no non-empty user or assistant message (Anthropic refuses empty text)",
        ));
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
    let system: Vec<String> = system.into_iter().filter(|s| !s.is_empty()).collect();
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
    let has_tools = match req.extra.get("tools") {
        Some(Value::Array(tools)) => {
            body.insert("tools".into(), tools.iter().filter_map(tool).collect());
            !tools.is_empty()
        }
        _ => false,
    };
    let mut choice = req.extra.get("tool_choice").and_then(tool_choice);
    if req.extra.get("parallel_tool_calls") == Some(&Value::Bool(false)) && has_tools {
        // Anthropic says it on the tool choice; `none` allows no call at all.
        let c = choice.get_or_insert_with(|| json!({"type": "auto"}));
        if c["type"] != "none" {
            c["disable_parallel_tool_use"] = true.into();
        }
    }
    if let Some(c) = choice {
        body.insert("tool_choice".into(), c);
    }
    Ok(Value::Object(body))
}

fn tool(t: &Value) -> Option<Value> {
    let f = t.get("function")?;
    let mut out = Map::new();
    out.insert("name".into(), f.get("name").cloned().unwrap_or(Value::Null));
    if let Some(d) = f.get("description") {
        out.insert("description".into(), d.clone());
    }
    let schema = f
        .get("parameters")
        .cloned()
        .unwrap_or_else(|| json!({"type": "object", "properties": {}}));
    out.insert("input_schema".into(), schema);
    Some(Value::Object(out))
}

fn tool_choice(choice: &Value) -> Option<Value> {
    match choice {
        Value::String(s) if s == "required" => Some(json!({"type": "any"})),
        Value::String(s) if s == "auto" || s == "none" => Some(json!({"type": s})),
        Value::Object(o) => o
            .get("function")
            .and_then(|f| f.get("name"))
            .map(|n| json!({"type": "tool", "name": n})),
        _ => None,
    }
}

fn tool_result(m: &ChatMessage) -> Value {
    let id = m.extra.get("tool_call_id").cloned().unwrap_or(Value::Null);
    let text = m.content_text();
    if text.is_empty() {
        json!({"type": "tool_result", "tool_use_id": id})
    } else {
        json!({"type": "tool_result", "tool_use_id": id, "content": text})
    }
}

/// Whether Anthropic takes `s` as a text block (it refuses whitespace-only).
fn has_text(s: &str) -> bool {
    !s.trim().is_empty()
}

/// A user message's OpenAI content (string or parts) as Anthropic blocks.
fn content_blocks(content: &Value, message: usize) -> Result<Vec<Value>, Untranslatable> {
    match content {
        Value::String(s) if has_text(s) => Ok(vec![json!({"type": "text", "text": s})]),
        Value::Array(parts) => {
            let mut out = Vec::new();
            for (j, part) in parts.iter().enumerate() {
                let param = format!("messages[{message}].content[{j}]");
                out.extend(part_block(part, param)?);
            }
            Ok(out)
        }
        _ => Ok(Vec::new()),
    }
}

/// One content part; `None` for an empty text part.
fn part_block(part: &Value, param: String) -> Result<Option<Value>, Untranslatable> {
    let kind = part.get("type").and_then(Value::as_str).unwrap_or("");
    match kind {
        "text" => {
            let text = part.get("text").and_then(Value::as_str).unwrap_or("");
            Ok(has_text(text).then(|| json!({"type": "text", "text": text})))
        }
        "image_url" => {
            let url = part
                .get("image_url")
                .and_then(|i| i.get("url"))
                .and_then(Value::as_str)
                .ok_or_else(|| Untranslatable::new(param, "an image part needs `image_url.url`"))?;
            Ok(Some(match data_url(url) {
                Some((media, data)) => {
                    json!({"type": "image", "source": {"type": "base64", "media_type": media, "data": data}})
                }
                None => json!({"type": "image", "source": {"type": "url", "url": url}}),
            }))
        }
        "file" => file_block(part.get("file").unwrap_or(&Value::Null), param).map(Some),
        "input_audio" => Err(Untranslatable::new(
            param,
            "Anthropic does not accept audio input (`input_audio`)",
        )),
        other => Err(Untranslatable::new(
            param,
            format!("content part type `{other}` cannot be sent to Anthropic"),
        )),
    }
}

/// A `file` part: a PDF given inline becomes a `document` block; anything
/// else Anthropic's Messages API cannot take.
fn file_block(file: &Value, param: String) -> Result<Value, Untranslatable> {
    if file.get("file_id").is_some() && file.get("file_data").is_none() {
        return Err(Untranslatable::new(
            param,
            "an OpenAI file id cannot be resolved by Anthropic: send the file as `file_data`",
        ));
    }
    let data = file.get("file_data").and_then(Value::as_str).unwrap_or("");
    match data_url(data) {
        Some(("application/pdf", b64)) => {
            let mut block = json!({"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": b64}});
            if let Some(name) = file.get("filename").and_then(Value::as_str) {
                block["title"] = name.into();
            }
            Ok(block)
        }
        Some((media, _)) => Err(Untranslatable::new(
            param,
            format!("Anthropic accepts PDF files only, not `{media}`"),
        )),
        None => Err(Untranslatable::new(
            param,
            "a file part needs `file_data` as a data URL (data:application/pdf;base64,...)",
        )),
    }
}

/// `data:<media>;base64,<data>` as (media, data).
fn data_url(url: &str) -> Option<(&str, &str)> {
    url.strip_prefix("data:")?.split_once(";base64,")
}

fn assistant_blocks(m: &ChatMessage) -> Vec<Value> {
    let mut blocks = Vec::new();
    let text = m.content_text();
    if has_text(&text) {
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
