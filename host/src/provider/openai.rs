//! OpenAI-compatible upstreams (OpenAI, Azure OpenAI, vLLM, Ollama, …):
//! the request goes out as the client sent it, only `model` replaced by the
//! route's upstream name, so unknown fields (tools, `response_format`,
//! `seed`…) pass through.

use std::time::Duration;

use futures_util::stream::{BoxStream, StreamExt};

use super::http::{
    Endpoint, StreamLimits, expect_event_stream, read_json, send, sse_events, with_timeout,
};
use super::{Upstream, UpstreamError};
use crate::openai::{
    ChatChunk, ChatCompletion, ChatRequest, EmbeddingsRequest, EmbeddingsResponse,
};

/// `POST {base}/chat/completions`, not streaming.
pub(crate) async fn chat(
    up: &Upstream,
    model: &str,
    req: &ChatRequest,
    timeout: Duration,
) -> Result<ChatCompletion, UpstreamError> {
    let mut body = req.clone();
    body.model = model.to_string();
    body.stream = false;
    body.stream_options = None;
    let call = async {
        let resp = send(up, Endpoint::ChatCompletions, &body).await?;
        read_json(up, resp).await
    };
    with_timeout(up, timeout, call).await
}

/// `POST {base}/embeddings`.
pub(crate) async fn embeddings(
    up: &Upstream,
    model: &str,
    req: &EmbeddingsRequest,
    timeout: Duration,
) -> Result<EmbeddingsResponse, UpstreamError> {
    let mut body = req.clone();
    body.model = model.to_string();
    let call = async {
        let resp = send(up, Endpoint::Embeddings, &body).await?;
        read_json(up, resp).await
    };
    with_timeout(up, timeout, call).await
}

/// `POST {base}/chat/completions` with `stream: true`; the returned stream
/// yields chunks until `[DONE]`, or an error if the upstream stops early,
/// breaks one of `limits`, or sends an error object.
pub(crate) async fn open_stream(
    up: &Upstream,
    model: &str,
    req: &ChatRequest,
    limits: StreamLimits,
) -> Result<BoxStream<'static, Result<ChatChunk, UpstreamError>>, UpstreamError> {
    let mut body = req.clone();
    body.model = model.to_string();
    body.stream = true;
    let resp = send(up, Endpoint::ChatCompletions, &body).await?;
    expect_event_stream(up, &resp)?;
    let provider = up.name.clone();
    let mut events = sse_events(provider.clone(), resp, limits);
    let chunks = async_stream::stream! {
        while let Some(ev) = events.next().await {
            let ev = match ev {
                Ok(ev) => ev,
                Err(e) => { yield Err(e); return; }
            };
            if ev.data.trim() == "[DONE]" {
                return;
            }
            match parse_chunk(&provider, &ev.data) {
                Ok(chunk) => yield Ok(chunk),
                Err(e) => { yield Err(e); return; }
            }
        }
        // The SSE layer ended cleanly but no `[DONE]` came.
        yield Err(UpstreamError::Truncated { provider: provider.clone() });
    };
    Ok(chunks.boxed())
}

/// One `data:` payload: a chunk, or an error object some servers (vLLM,
/// OpenAI mid-stream) send instead. Parsed once, typed: an error object
/// either fails the typed parse (no `id`) or lands in `extra`; only then is
/// the payload looked at as a `Value` (a second parse per chunk was a third
/// of the relay's cost, bench/README.md).
pub fn parse_chunk(provider: &str, data: &str) -> Result<ChatChunk, UpstreamError> {
    let error_event = |err: &serde_json::Value| {
        let message = err
            .get("message")
            .and_then(|m| m.as_str())
            .map(str::to_string)
            .unwrap_or_else(|| err.to_string());
        UpstreamError::Protocol {
            provider: provider.to_string(),
            message: format!("error event in stream: {message}"),
        }
    };
    match serde_json::from_str::<ChatChunk>(data) {
        Ok(chunk) => match chunk.extra.get("error") {
            Some(err) => Err(error_event(err)),
            None => Ok(chunk),
        },
        Err(e) => {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(data)
                && let Some(err) = v.get("error")
            {
                return Err(error_event(err));
            }
            Err(UpstreamError::Protocol {
                provider: provider.to_string(),
                message: format!("malformed stream chunk: {e}"),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_parse_and_error_events_become_protocol_errors() {
        let ok = parse_chunk(
            "p",
            r#"{"id":"c","model":"m","choices":[{"index":0,"delta":{"content":"hi"}}]}"#,
        )
        .unwrap();
        assert_eq!(ok.id, "c");
        for data in [
            r#"{"error":{"message":"overloaded","type":"server_error"}}"#,
            r#"{"id":"c","model":"m","choices":[],"error":{"message":"overloaded"}}"#,
        ] {
            match parse_chunk("p", data) {
                Err(UpstreamError::Protocol { message, .. }) => {
                    assert_eq!(message, "error event in stream: overloaded", "{data}")
                }
                other => panic!("{data}: {other:?}"),
            }
        }
        match parse_chunk("p", r#"{"id":"#) {
            Err(UpstreamError::Protocol { message, .. }) => {
                assert!(message.starts_with("malformed stream chunk"), "{message}")
            }
            other => panic!("{other:?}"),
        }
    }
}
