//! Anthropic Messages API behind the OpenAI wire format.
//!
//! - `request`: an OpenAI chat request as a Messages API body. System (and
//!   developer) messages become `system`; `max_tokens` is required there,
//!   so the provider's default fills it; `stop` becomes `stop_sequences`;
//!   tools, tool calls and tool results map to `tools`, `tool_use` and
//!   `tool_result` blocks; `parallel_tool_calls: false` becomes
//!   `disable_parallel_tool_use`; images and PDF files become `image` and
//!   `document` blocks. Fields Anthropic does not know are dropped (it
//!   rejects unknown fields); a content part it cannot take (audio, a
//!   non-PDF file, an OpenAI file id) is refused with a 400 naming the part
//!   rather than silently dropped, and empty text (which it refuses) is
//!   left out.
//! - `response`: an answer as a `chat.completion`: text blocks join into
//!   the message (`content: null` when there are only tool calls, as
//!   OpenAI sends), `tool_use` blocks become `tool_calls`, `stop_reason`
//!   maps to `finish_reason`, cache reads and writes count as prompt
//!   tokens, reads also as `prompt_tokens_details.cached_tokens`.
//! - `stream`: Anthropic's typed events as `chat.completion.chunk`s.

mod request;
mod response;
mod stream;

use std::time::Duration;

use futures_util::stream::{BoxStream, StreamExt};
use http::StatusCode;

use super::http::{
    Endpoint, StreamLimits, expect_event_stream, read_json, send, sse_events, with_timeout,
};
use super::{Upstream, UpstreamError};
use crate::openai::{ChatChunk, ChatCompletion, ChatRequest};

pub use request::{Untranslatable, to_messages_request};
pub use response::{AnthropicUsage, MessagesResponse, finish_reason, from_messages_response};
pub use stream::{EventError, StreamTranslator};

pub(crate) async fn chat(
    up: &Upstream,
    model: &str,
    req: &ChatRequest,
    timeout: Duration,
) -> Result<ChatCompletion, UpstreamError> {
    let body = translate(up, req, model, false)?;
    let call = async {
        let resp = send(up, Endpoint::Messages, &body).await?;
        let msg: MessagesResponse = read_json(up, resp).await?;
        Ok(from_messages_response(msg))
    };
    with_timeout(up, timeout, call).await
}

pub(crate) async fn open_stream(
    up: &Upstream,
    model: &str,
    req: &ChatRequest,
    limits: StreamLimits,
) -> Result<BoxStream<'static, Result<ChatChunk, UpstreamError>>, UpstreamError> {
    let body = translate(up, req, model, true)?;
    let resp = send(up, Endpoint::Messages, &body).await?;
    expect_event_stream(up, &resp)?;
    let provider = up.name.clone();
    let include_usage = req.stream_options.as_ref().is_some_and(|o| o.include_usage);
    let mut events = sse_events(provider.clone(), resp, limits);
    let mut tr = StreamTranslator::new(model, include_usage);
    let chunks = async_stream::stream! {
        while let Some(ev) = events.next().await {
            let ev = match ev {
                Ok(ev) => ev,
                Err(e) => { yield Err(e); return; }
            };
            match tr.on_event(&ev.data) {
                Ok(chunks) => {
                    for c in chunks {
                        yield Ok(c);
                    }
                    if tr.done {
                        return;
                    }
                }
                Err(e) => {
                    yield Err(e.into_upstream(&provider));
                    return;
                }
            }
        }
        yield Err(UpstreamError::Truncated { provider: provider.clone() });
    };
    Ok(chunks.boxed())
}

/// The request body, or the 400 for a request Anthropic cannot take. Not
/// retried nor failed over (a client error), as the upstream's own 400
/// would not be.
fn translate(
    up: &Upstream,
    req: &ChatRequest,
    model: &str,
    stream: bool,
) -> Result<serde_json::Value, UpstreamError> {
    to_messages_request(req, model, up.default_max_tokens, stream).map_err(|u| {
        UpstreamError::Client {
            provider: up.name.clone(),
            status: StatusCode::BAD_REQUEST,
            message: u.message,
            kind: Some("invalid_request_error".into()),
            code: None,
            param: Some(u.param.into()),
        }
    })
}

#[cfg(test)]
mod tests;
