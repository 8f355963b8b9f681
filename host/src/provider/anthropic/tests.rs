use serde_json::{Value, json};

use super::*;
use crate::openai::{ChatRequest, PromptTokensDetails, Usage};

fn request(v: Value) -> ChatRequest {
    serde_json::from_value(v).unwrap()
}

#[test]
fn request_moves_system_and_fills_max_tokens() {
    let req = request(json!({
        "model": "alias",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": "No emojis."},
            {"role": "user", "content": "Hi"},
            {"role": "user", "content": [{"type": "text", "text": "there"}]},
            {"role": "assistant", "content": "Hello"},
            {"role": "user", "content": "Bye"}
        ],
        "temperature": 0.5,
        "stop": "END",
        "seed": 3,
        "user": "u1"
    }));
    let body = to_messages_request(&req, "claude-x", 1024, false).unwrap();
    assert_eq!(body["model"], "claude-x");
    assert_eq!(body["system"], "Be brief.\n\nNo emojis.");
    assert_eq!(body["max_tokens"], 1024);
    assert_eq!(body["temperature"], 0.5);
    assert_eq!(body["stop_sequences"], json!(["END"]));
    assert_eq!(body["metadata"], json!({"user_id": "u1"}));
    assert!(
        body.get("seed").is_none(),
        "unknown fields are not sent to Anthropic"
    );
    assert!(body.get("stream").is_none());
    let msgs = body["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 3, "consecutive user turns merged: {msgs:?}");
    assert_eq!(
        msgs[0]["content"],
        json!([{"type": "text", "text": "Hi"}, {"type": "text", "text": "there"}])
    );
    assert_eq!(msgs[1]["role"], "assistant");

    let capped = request(
        json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "max_completion_tokens": 7}),
    );
    assert_eq!(
        to_messages_request(&capped, "m", 1024, true).unwrap()["max_tokens"],
        7
    );
    assert_eq!(
        to_messages_request(&capped, "m", 1024, true).unwrap()["stream"],
        true
    );
}

#[test]
fn request_translates_tools_calls_and_results() {
    let req = request(json!({
        "model": "m",
        "messages": [
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}}
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}
        ],
        "tools": [{"type": "function", "function": {"name": "get_weather", "description": "d",
                   "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
        "tool_choice": "required"
    }));
    let body = to_messages_request(&req, "m", 100, false).unwrap();
    assert_eq!(body["tools"][0]["name"], "get_weather");
    assert_eq!(
        body["tools"][0]["input_schema"]["properties"]["city"]["type"],
        "string"
    );
    assert_eq!(body["tool_choice"], json!({"type": "any"}));
    let msgs = body["messages"].as_array().unwrap();
    assert_eq!(
        msgs[1]["content"][0],
        json!({"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Oslo"}})
    );
    assert_eq!(
        msgs[2]["content"][0],
        json!({"type": "tool_result", "tool_use_id": "call_1", "content": "sunny"})
    );
}

#[test]
fn images_become_base64_or_url_sources() {
    let req = request(
        json!({"model": "m", "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
            {"type": "image_url", "image_url": {"url": "https://x/y.png"}}
        ]}]}),
    );
    let body = to_messages_request(&req, "m", 1, false).unwrap();
    let c = &body["messages"][0]["content"];
    assert_eq!(
        c[0]["source"],
        json!({"type": "base64", "media_type": "image/png", "data": "AAAA"})
    );
    assert_eq!(
        c[1]["source"],
        json!({"type": "url", "url": "https://x/y.png"})
    );
}

#[test]
fn response_becomes_a_chat_completion() {
    let msg: MessagesResponse = serde_json::from_value(json!({
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
        "content": [
            {"type": "text", "text": "Hello "},
            {"type": "text", "text": "world"},
            {"type": "tool_use", "id": "tu_1", "name": "f", "input": {"a": 1}}
        ],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 2}
    }))
    .unwrap();
    let c = from_messages_response(msg);
    assert_eq!(c.id, "msg_1");
    assert_eq!(c.choices[0].message.content_text(), "Hello world");
    assert_eq!(c.choices[0].finish_reason.as_deref(), Some("tool_calls"));
    let calls = &c.choices[0].message.extra["tool_calls"];
    assert_eq!(calls[0]["function"]["name"], "f");
    assert_eq!(calls[0]["function"]["arguments"], "{\"a\":1}");
    assert_eq!(
        c.usage,
        Some(Usage {
            prompt_tokens: 12,
            completion_tokens: 5,
            total_tokens: 17,
            prompt_tokens_details: Some(PromptTokensDetails { cached_tokens: 2 }),
            completion_tokens_details: None,
        })
    );
    assert_eq!(finish_reason("max_tokens"), "length");
    assert_eq!(finish_reason("end_turn"), "stop");
    assert_eq!(finish_reason("stop_sequence"), "stop");
}

#[test]
fn stream_events_become_chunks() {
    let mut tr = StreamTranslator::new("claude-x", true);
    let events = [
        json!({"type": "message_start", "message": {"id": "msg_9", "model": "claude-y", "usage": {"input_tokens": 12, "output_tokens": 1}}}),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        json!({"type": "ping"}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hel"}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "lo"}}),
        json!({"type": "content_block_stop", "index": 0}),
        json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "tu", "name": "f", "input": {}}}),
        json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"a\""}}),
        json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 4}}),
        json!({"type": "message_stop"}),
    ];
    let mut chunks = Vec::new();
    for e in events {
        assert!(!tr.done);
        chunks.extend(tr.on_event(&e.to_string()).unwrap());
    }
    assert!(tr.done);
    assert_eq!(
        chunks[0].choices[0].delta.role.as_deref(),
        Some("assistant")
    );
    assert!(
        chunks
            .iter()
            .all(|c| c.id == "msg_9" && c.model == "claude-y")
    );
    let text: String = chunks
        .iter()
        .flat_map(|c| c.choices.iter().filter_map(|ch| ch.delta.content.clone()))
        .collect();
    assert_eq!(text, "Hello");
    let tool = &chunks[3].choices[0].delta.extra["tool_calls"][0];
    assert_eq!(
        (tool["index"].as_u64(), tool["id"].as_str()),
        (Some(0), Some("tu"))
    );
    assert_eq!(
        chunks[4].choices[0].delta.extra["tool_calls"][0]["function"]["arguments"],
        "{\"a\""
    );
    assert_eq!(chunks[5].choices[0].finish_reason.as_deref(), Some("stop"));
    let last = chunks.last().unwrap();
    assert!(last.choices.is_empty());
    assert_eq!(
        last.usage,
        Some(Usage {
            prompt_tokens: 12,
            completion_tokens: 4,
            total_tokens: 16,
            ..Usage::default()
        })
    );
}

#[test]
fn stream_error_events_and_garbage_are_errors() {
    let mut tr = StreamTranslator::new("m", false);
    let err = tr
        .on_event(r#"{"type":"error","error":{"type":"invalid_request_error","message":"Bad"}}"#)
        .unwrap_err();
    let err = err.into_upstream("p");
    assert!(matches!(err, UpstreamError::Protocol { .. }), "{err:?}");
    assert!(
        err.to_string().contains("Bad (invalid_request_error)"),
        "{err}"
    );
    assert!(tr.on_event("{not json").is_err());
    // Without include_usage, message_stop ends the stream without a usage chunk.
    assert!(
        tr.on_event(r#"{"type":"message_stop"}"#)
            .unwrap()
            .is_empty()
    );
    assert!(tr.done);
}

#[test]
fn the_role_chunk_goes_out_with_the_first_content() {
    let mut tr = StreamTranslator::new("m", false);
    let start =
        json!({"type": "message_start", "message": {"id": "msg_1", "usage": {"input_tokens": 3}}});
    assert!(
        tr.on_event(&start.to_string()).unwrap().is_empty(),
        "the role chunk waits for content"
    );
    let delta = json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}});
    let out = tr.on_event(&delta.to_string()).unwrap();
    assert_eq!(out.len(), 2);
    assert_eq!(out[0].choices[0].delta.role.as_deref(), Some("assistant"));
    assert_eq!(out[1].choices[0].delta.content.as_deref(), Some("Hi"));
}

#[test]
fn an_error_right_after_message_start_is_an_overload_before_any_chunk() {
    let mut tr = StreamTranslator::new("m", false);
    let start =
        json!({"type": "message_start", "message": {"id": "msg_1", "usage": {"input_tokens": 3}}});
    assert!(tr.on_event(&start.to_string()).unwrap().is_empty());
    let err = tr
        .on_event(r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#)
        .unwrap_err()
        .into_upstream("claude");
    assert!(matches!(err, UpstreamError::Server { .. }), "{err:?}");
    assert!(err.is_retryable());
    assert_eq!(
        err.to_string(),
        "claude failed (529): overloaded: Overloaded"
    );
}

#[test]
fn a_tool_called_without_parameters_gets_empty_object_arguments() {
    let mut tr = StreamTranslator::new("m", false);
    let events = [
        json!({"type": "message_start", "message": {"id": "msg_1", "usage": {"input_tokens": 3}}}),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": "tu_1", "name": "now", "input": {}}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": ""}}),
        json!({"type": "content_block_stop", "index": 0}),
        json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "tu_2", "name": "f", "input": {}}}),
        json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"a\":"}}),
        json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "1}"}}),
        json!({"type": "content_block_stop", "index": 1}),
        json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 9}}),
        json!({"type": "message_stop"}),
    ];
    let mut args: Vec<String> = vec![String::new(); 2];
    for e in events {
        for c in tr.on_event(&e.to_string()).unwrap() {
            for ch in &c.choices {
                if let Some(Value::Array(calls)) = ch.delta.extra.get("tool_calls") {
                    for call in calls {
                        let i = call["index"].as_u64().unwrap() as usize;
                        args[i].push_str(call["function"]["arguments"].as_str().unwrap_or(""));
                    }
                }
            }
        }
    }
    assert_eq!(args, ["{}", "{\"a\":1}"]);
}

#[test]
fn streamed_usage_keeps_cached_prompt_tokens_from_the_running_totals() {
    let mut tr = StreamTranslator::new("m", true);
    let events = [
        json!({"type": "message_start", "message": {"id": "msg_1", "usage": {
            "input_tokens": 10, "cache_creation_input_tokens": 100, "cache_read_input_tokens": 2000, "output_tokens": 1}}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "x"}}),
        json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {
            "input_tokens": 10, "cache_creation_input_tokens": 100, "cache_read_input_tokens": 2000, "output_tokens": 7}}),
        json!({"type": "message_stop"}),
    ];
    let mut last = None;
    for e in events {
        last = tr.on_event(&e.to_string()).unwrap().pop().or(last);
    }
    assert_eq!(
        last.unwrap().usage,
        Some(Usage {
            prompt_tokens: 2110,
            completion_tokens: 7,
            total_tokens: 2117,
            prompt_tokens_details: Some(PromptTokensDetails {
                cached_tokens: 2000
            }),
            completion_tokens_details: None,
        })
    );
}

#[test]
fn tool_only_answers_have_null_content() {
    let msg: MessagesResponse = serde_json::from_value(json!({
        "id": "msg_1", "model": "m", "stop_reason": "tool_use",
        "content": [{"type": "tool_use", "id": "tu", "name": "now", "input": {}}],
        "usage": {"input_tokens": 1, "output_tokens": 1}
    }))
    .unwrap();
    let c = from_messages_response(msg);
    assert_eq!(c.choices[0].message.content, Value::Null);
    assert_eq!(
        c.choices[0].message.extra["tool_calls"][0]["function"]["arguments"],
        "{}"
    );
}

fn translate(v: Value) -> Result<Value, Untranslatable> {
    let req: ChatRequest = serde_json::from_value(v).unwrap();
    to_messages_request(&req, "m", 64, false)
}

#[test]
fn parts_anthropic_cannot_take_are_refused_by_name_and_pdfs_become_documents() {
    let audio = translate(json!({"model": "m", "messages": [
        {"role": "user", "content": "listen"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": [{"type": "text", "text": "this"},
            {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}]}
    ]}))
    .unwrap_err();
    assert_eq!(audio.param, "messages[2].content[1]");
    assert!(audio.message.contains("audio"), "{audio:?}");
    let doc = translate(json!({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "file", "file": {"filename": "r.pdf", "file_data": "data:application/pdf;base64,JVBE"}},
        {"type": "text", "text": "summarise"}
    ]}]}))
    .unwrap();
    assert_eq!(
        doc["messages"][0]["content"][0],
        json!({"type": "document", "title": "r.pdf",
               "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"}})
    );
    let csv = translate(
        json!({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "file", "file": {"file_data": "data:text/csv;base64,YSxi"}}]}]}),
    )
    .unwrap_err();
    assert!(csv.message.contains("text/csv"), "{csv:?}");
    let id = translate(
        json!({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "file", "file": {"file_id": "file-abc"}}]}]}),
    )
    .unwrap_err();
    assert!(id.message.contains("file id"), "{id:?}");
}

#[test]
fn empty_text_is_left_out_and_nothing_at_all_is_refused() {
    let body = translate(json!({"model": "m", "messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": ""},
        {"role": "user", "content": [{"type": "text", "text": " "}, {"type": "text", "text": "more"}]}
    ]}))
    .unwrap();
    assert_eq!(
        body["messages"][2],
        json!({"role": "user", "content": [{"type": "text", "text": "more"}]})
    );
    let err = translate(json!({"model": "m", "messages": [{"role": "user", "content": ""}]}))
        .unwrap_err();
    assert_eq!(err.param, "messages");
}

#[test]
fn parallel_tool_calls_false_disables_parallel_tool_use() {
    let tools = json!([{"type": "function", "function": {"name": "f"}}]);
    let body = translate(
        json!({"model": "m", "tools": tools, "parallel_tool_calls": false,
        "messages": [{"role": "user", "content": "x"}]}),
    )
    .unwrap();
    assert_eq!(
        body["tool_choice"],
        json!({"type": "auto", "disable_parallel_tool_use": true})
    );
    let body = translate(
        json!({"model": "m", "tools": tools, "parallel_tool_calls": false,
        "tool_choice": "required", "messages": [{"role": "user", "content": "x"}]}),
    )
    .unwrap();
    assert_eq!(
        body["tool_choice"],
        json!({"type": "any", "disable_parallel_tool_use": true})
    );
    let body = translate(json!({"model": "m", "tools": tools,
        "messages": [{"role": "user", "content": "x"}]}))
    .unwrap();
    assert!(body.get("tool_choice").is_none());
}
