//! Anthropic translation end to end: `Providers` with `kind = anthropic`
//! against the mock's `/v1/messages`, which insists on the real API's rules
//! (`anthropic-version`, `max_tokens`, user/assistant roles only).

use futures_util::StreamExt;
use serde_json::{Value, json};
use sluice::mock::MockConfig;
use sluice::openai::ChatRequest;
use sluice::provider::{ProviderKind, Providers, RouteTarget, UpstreamError};
use sluice::server::error::upstream_status as gateway_status;

use crate::support::http::chunk_text;
use crate::support::upstream::{Mock, no_breaker, provider, quick_retry};

fn request(v: Value) -> ChatRequest {
    serde_json::from_value(v).unwrap()
}

fn route() -> Vec<RouteTarget> {
    vec![RouteTarget::new("claude", "claude-mock")]
}

/// `Providers` with one Anthropic provider on a fresh mock (keep the mock:
/// dropping it stops it).
async fn providers(fault: Option<&str>, echo: bool) -> (Providers, Mock) {
    let mock = Mock::start(MockConfig::default()).await;
    let mut c = provider("claude", &mock, ProviderKind::Anthropic, fault);
    c.api_key = Some("sk-ant".into());
    if echo {
        c.headers.insert("x-mock-echo".into(), "1".into());
    }
    (
        Providers::new(&[c], &quick_retry(2), &no_breaker()).unwrap(),
        mock,
    )
}

#[tokio::test]
async fn non_stream_answer_and_usage_are_translated() {
    let (p, _mock) = providers(None, false).await;
    let req = request(json!({"model": "alias", "messages": [
        {"role": "system", "content": "be nice"},
        {"role": "user", "content": "REPLY: hello from claude"}
    ]}));
    let out = p.chat(&route(), &req).await.unwrap();
    assert_eq!(out.provider, "claude");
    let c = &out.value;
    assert!(c.id.starts_with("msg_mock_"));
    assert_eq!(c.model, "claude-mock");
    assert_eq!(c.choices[0].message.role, "assistant");
    assert_eq!(c.choices[0].message.content_text(), "hello from claude");
    assert_eq!(c.choices[0].finish_reason.as_deref(), Some("stop"));
    let u = c.usage.unwrap();
    // Mock counts words + 1 per message: "REPLY: hello from claude" (5) + "be nice" (3).
    assert_eq!(
        (u.prompt_tokens, u.completion_tokens, u.total_tokens),
        (8, 3, 11)
    );

    let capped = request(
        json!({"model": "a", "max_tokens": 2, "messages": [{"role": "user", "content": "REPLY: a b c d"}]}),
    );
    let out = p.chat(&route(), &capped).await.unwrap();
    assert_eq!(out.value.choices[0].message.content_text(), "a b");
    assert_eq!(
        out.value.choices[0].finish_reason.as_deref(),
        Some("length")
    );
}

#[tokio::test]
async fn request_on_the_wire_is_anthropic_shaped() {
    let (p, _mock) = providers(None, true).await;
    let req = request(
        json!({"model": "alias", "seed": 1, "stop": ["X"], "messages": [
            {"role": "system", "content": "sys"},
            {"role": "user", "content": "hi"}
        ]}),
    );
    let out = p.chat(&route(), &req).await.unwrap();
    let sent: Value = serde_json::from_str(&out.value.choices[0].message.content_text()).unwrap();
    assert_eq!(sent["model"], "claude-mock");
    assert_eq!(sent["system"], "sys");
    assert_eq!(
        sent["max_tokens"], 4096,
        "the provider default fills the required field"
    );
    assert_eq!(sent["stop_sequences"], json!(["X"]));
    assert_eq!(
        sent["messages"],
        json!([{"role": "user", "content": [{"type": "text", "text": "hi"}]}])
    );
    assert!(sent.get("seed").is_none());
}

#[tokio::test]
async fn stream_events_are_translated_to_chunks() {
    let (p, _mock) = providers(None, false).await;
    let req = request(
        json!({"model": "alias", "stream": true, "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "REPLY: streamed words arrive"}]}),
    );
    let out = p.chat_stream(&route(), &req).await.unwrap();
    let chunks: Vec<_> = out.value.map(Result::unwrap).collect().await;
    assert_eq!(
        chunks[0].choices[0].delta.role.as_deref(),
        Some("assistant")
    );
    assert_eq!(chunk_text(&chunks), "streamed words arrive");
    let finish: Vec<_> = chunks
        .iter()
        .flat_map(|c| c.choices.iter().filter_map(|ch| ch.finish_reason.clone()))
        .collect();
    assert_eq!(finish, ["stop"]);
    let usage = chunks.last().unwrap().usage.expect("usage chunk last");
    assert_eq!((usage.prompt_tokens, usage.completion_tokens), (5, 3));
    assert!(
        chunks
            .iter()
            .all(|c| c.object == "chat.completion.chunk" && c.id.starts_with("msg_mock_"))
    );
}

#[tokio::test]
async fn stream_error_event_and_truncation_are_errors() {
    let req = request(json!({"model": "a", "stream": true,
        "messages": [{"role": "user", "content": "a fairly long prompt to answer"}]}));
    let err = last_stream_error(&req, "midstream-error").await;
    assert!(err.to_string().contains("Overloaded"), "{err}");
    assert_eq!(gateway_status(&err).0.as_u16(), 502);

    let err = last_stream_error(&req, "truncate").await;
    assert!(err.to_string().contains("ended the stream"), "{err}");
}

/// Stream `req` from a mock with `fault`; the error its stream ends with.
async fn last_stream_error(req: &ChatRequest, fault: &str) -> UpstreamError {
    let (p, _mock) = providers(Some(fault), false).await;
    let items: Vec<_> = p
        .chat_stream(&route(), req)
        .await
        .unwrap()
        .value
        .collect()
        .await;
    items.into_iter().last().unwrap().unwrap_err()
}

#[tokio::test]
async fn anthropic_errors_map_to_gateway_statuses() {
    let req = request(json!({"model": "a", "messages": [{"role": "user", "content": "hi"}]}));
    let (p, mock) = providers(Some("status=529"), false).await;
    let err = p.chat(&route(), &req).await.unwrap_err();
    assert_eq!(
        gateway_status(&err).0.as_u16(),
        502,
        "overloaded is retried, then a bad gateway"
    );
    assert_eq!(mock.key_count("claude").await, 2);

    let (p, mock) = providers(Some("status=400"), false).await;
    let err = p.chat(&route(), &req).await.unwrap_err();
    assert_eq!(gateway_status(&err).0.as_u16(), 400);
    assert_eq!(gateway_status(&err).1, "invalid_request_error");
    assert_eq!(mock.key_count("claude").await, 1);

    let (p, _mock) = providers(Some("status=429;retry-after=0"), false).await;
    let err = p.chat(&route(), &req).await.unwrap_err();
    assert_eq!(gateway_status(&err).0.as_u16(), 429);
    assert_eq!(err.retry_after(), Some(std::time::Duration::ZERO));
}

/// Tool calls assembled from a stream: each call's arguments, by index.
fn streamed_arguments(chunks: &[sluice::openai::ChatChunk]) -> Vec<String> {
    let mut args: Vec<String> = Vec::new();
    for c in chunks {
        for ch in &c.choices {
            if let Some(Value::Array(calls)) = ch.delta.extra.get("tool_calls") {
                for call in calls {
                    let i = call["index"].as_u64().unwrap() as usize;
                    if args.len() <= i {
                        args.resize(i + 1, String::new());
                    }
                    args[i].push_str(call["function"]["arguments"].as_str().unwrap_or(""));
                }
            }
        }
    }
    args
}

const NOW_TOOL: &str = r#"[{"type": "function", "function": {"name": "now"}}]"#;

#[tokio::test]
async fn a_tool_called_without_parameters_has_json_arguments_streamed_or_not() {
    let (p, _mock) = providers(None, false).await;
    let tools: Value = serde_json::from_str(NOW_TOOL).unwrap();
    let mut body = json!({"model": "a", "tools": tools,
        "messages": [{"role": "user", "content": "CALL: now"}]});
    let out = p.chat(&route(), &request(body.clone())).await.unwrap();
    let msg = &out.value.choices[0].message;
    assert_eq!(
        msg.content,
        Value::Null,
        "tool-only answers have null content"
    );
    assert_eq!(msg.extra["tool_calls"][0]["function"]["arguments"], "{}");
    assert_eq!(
        out.value.choices[0].finish_reason.as_deref(),
        Some("tool_calls")
    );

    body["stream"] = json!(true);
    let chunks: Vec<_> = p
        .chat_stream(&route(), &request(body.clone()))
        .await
        .unwrap()
        .value
        .map(Result::unwrap)
        .collect()
        .await;
    assert_eq!(streamed_arguments(&chunks), ["{}"]);

    body["messages"][0]["content"] = json!(r#"CALL: now {"tz":"UTC"}"#);
    let chunks: Vec<_> = p
        .chat_stream(&route(), &request(body))
        .await
        .unwrap()
        .value
        .map(Result::unwrap)
        .collect()
        .await;
    assert_eq!(streamed_arguments(&chunks), [r#"{"tz":"UTC"}"#]);
}

#[tokio::test]
async fn cached_prompt_tokens_are_counted_streamed_or_not() {
    let (p, _mock) = providers(Some("cache-read=2000;cache-write=100"), false).await;
    let body = json!({"model": "a", "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "REPLY: one two three"}]});
    let plain = p.chat(&route(), &request(body.clone())).await.unwrap();
    let u = plain.value.usage.unwrap();
    // "REPLY: one two three" is 4 words + 1: 5 uncached prompt tokens.
    assert_eq!((u.prompt_tokens, u.completion_tokens), (2105, 3));
    assert_eq!(u.prompt_tokens_details.unwrap().cached_tokens, 2000);

    let mut body = body;
    body["stream"] = json!(true);
    let chunks: Vec<_> = p
        .chat_stream(&route(), &request(body))
        .await
        .unwrap()
        .value
        .map(Result::unwrap)
        .collect()
        .await;
    let u = chunks.last().unwrap().usage.expect("usage chunk");
    assert_eq!(
        (u.prompt_tokens, u.completion_tokens, u.total_tokens),
        (2105, 3, 2108)
    );
    assert_eq!(u.prompt_tokens_details.unwrap().cached_tokens, 2000);
}

#[tokio::test]
async fn parts_anthropic_cannot_take_are_refused_and_pdfs_become_documents() {
    let (p, mock) = providers(None, true).await;
    let audio = request(
        json!({"model": "a", "messages": [{"role": "user", "content": [
            {"type": "text", "text": "what is this?"},
            {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}
        ]}]}),
    );
    let err = p.chat(&route(), &audio).await.unwrap_err();
    assert_eq!(gateway_status(&err).0.as_u16(), 400);
    assert_eq!(err.param(), Some("messages[0].content[1]"));
    assert!(err.to_string().contains("audio"), "{err}");
    assert_eq!(mock.key_count("claude").await, 0, "nothing was sent");

    let pdf = request(
        json!({"model": "a", "messages": [{"role": "user", "content": [
            {"type": "file", "file": {"filename": "q3.pdf", "file_data": "data:application/pdf;base64,JVBERi0x"}},
            {"type": "text", "text": "summarise"}
        ]}]}),
    );
    let out = p.chat(&route(), &pdf).await.unwrap();
    let sent: Value = serde_json::from_str(&out.value.choices[0].message.content_text()).unwrap();
    assert_eq!(sent["messages"][0]["content"][0]["type"], "document");
    assert_eq!(
        sent["messages"][0]["content"][0]["source"]["media_type"],
        "application/pdf"
    );
}

#[tokio::test]
async fn empty_messages_are_left_out_and_parallel_tool_calls_map() {
    let (p, _mock) = providers(None, true).await;
    let tools: Value = serde_json::from_str(NOW_TOOL).unwrap();
    let req = request(
        json!({"model": "a", "tools": tools, "parallel_tool_calls": false,
            "messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "hello"},
                {"role": "user", "content": ""},
                {"role": "user", "content": "again"}
        ]}),
    );
    let out = p
        .chat(&route(), &req)
        .await
        .expect("the real API's rules are met");
    let sent: Value = serde_json::from_str(&out.value.choices[0].message.content_text()).unwrap();
    assert_eq!(
        sent["messages"][2],
        json!({"role": "user", "content": [{"type": "text", "text": "again"}]})
    );
    assert_eq!(sent["tool_choice"]["disable_parallel_tool_use"], true);

    let empty = request(json!({"model": "a", "messages": [{"role": "user", "content": ""}]}));
    let err = p.chat(&route(), &empty).await.unwrap_err();
    assert_eq!(gateway_status(&err).0.as_u16(), 400);
    assert_eq!(err.param(), Some("messages"));
}

#[tokio::test]
async fn an_overload_right_after_message_start_is_retried_before_any_chunk() {
    let req = request(json!({"model": "a", "stream": true,
        "messages": [{"role": "user", "content": "REPLY: after the retry"}]}));
    let (p, mock) = providers(Some("error-after-start;fail-first=1"), false).await;
    let out = p.chat_stream(&route(), &req).await.unwrap();
    assert_eq!(out.attempts, 2, "retried: nothing had reached the client");
    let text: String = out
        .value
        .map(Result::unwrap)
        .filter_map(|c| async move { c.choices.first().and_then(|ch| ch.delta.content.clone()) })
        .collect()
        .await;
    assert_eq!(text, "after the retry");
    assert_eq!(mock.key_count("claude").await, 2);

    let (p, _mock) = providers(Some("error-after-start"), false).await;
    let err = p.chat_stream(&route(), &req).await.unwrap_err();
    assert_eq!(gateway_status(&err).0.as_u16(), 502);
    assert!(err.to_string().contains("overloaded"), "{err}");
}
