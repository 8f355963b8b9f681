//! `POST /v1/chat/completions` and `POST /v1/embeddings`: parse, hand to the
//! pipeline, render (JSON, or SSE for `stream: true`) with `x-sluice-*` headers.

use std::convert::Infallible;
use std::sync::Arc;

use axum::Extension;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde::Serialize;

use super::error::ApiError;
use super::extract::OpenAiJson;
use super::layers::{Arrived, RequestId};
use crate::openai::{ChatRequest, EmbeddingsRequest, ErrorEnvelope};
use crate::pipeline::{Gateway, Principal, RequestCtx, Served, StreamEvent};
use crate::plugin::log::escaped;

fn ctx(id: RequestId, principal: Principal, headers: &HeaderMap) -> RequestCtx {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    RequestCtx {
        id: id.0,
        principal,
        feature: text("x-sluice-feature")
            .filter(|s| !s.is_empty())
            .map(str::to_string),
        tags: text("x-sluice-tags")
            .map(|t| {
                t.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default(),
    }
}

pub async fn chat(
    State(gw): State<Arc<Gateway>>,
    Extension(id): Extension<RequestId>,
    Extension(arrived): Extension<Arrived>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    OpenAiJson(req): OpenAiJson<ChatRequest>,
) -> Result<Response, ApiError> {
    let ctx = ctx(id, principal, &headers);
    let model = req.model.clone();
    let result = if req.stream {
        gw.chat_stream(&ctx, req).await.map(|s| {
            let body = Body::from_stream(s.events.map(|e| Ok::<_, Infallible>(sse_bytes(e))));
            let mut res = Response::new(body);
            let h = res.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream"),
            );
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            (res, s.served)
        })
    } else {
        gw.chat(&ctx, req)
            .await
            .map(|c| (axum::Json(c.completion).into_response(), c.served))
    };
    finish(result, &ctx.id, &model, arrived)
}

pub async fn embeddings(
    State(gw): State<Arc<Gateway>>,
    Extension(id): Extension<RequestId>,
    Extension(arrived): Extension<Arrived>,
    OpenAiJson(req): OpenAiJson<EmbeddingsRequest>,
) -> Result<Response, ApiError> {
    let model = req.model.clone();
    let result = gw
        .embeddings(req)
        .await
        .map(|e| (axum::Json(e.response).into_response(), e.served));
    finish(result, &id.0, &model, arrived)
}

/// Log the outcome and add the `x-sluice-*` headers to a success.
fn finish(
    result: Result<(Response, Served), crate::pipeline::Error>,
    id: &str,
    model: &str,
    arrived: Arrived,
) -> Result<Response, ApiError> {
    let total = arrived.0.elapsed();
    match result {
        Ok((mut res, served)) => {
            let overhead = total.saturating_sub(served.upstream);
            let prompt = served.prompt.as_ref().map(ToString::to_string);
            tracing::info!(
                request_id = id,
                model,
                prompt = prompt.as_deref(),
                provider = served.provider,
                upstream_model = served.model,
                attempts = served.attempts,
                total_ms = total.as_secs_f64() * 1e3,
                overhead_ms = overhead.as_secs_f64() * 1e3,
                "served"
            );
            let h = res.headers_mut();
            let mut set = |name: &'static str, value: String| {
                if let Ok(v) = HeaderValue::from_str(&value) {
                    h.insert(name, v);
                }
            };
            set("x-sluice-provider", served.provider);
            set("x-sluice-model", served.model);
            set("x-sluice-attempts", served.attempts.to_string());
            set(
                "x-sluice-overhead-ms",
                format!("{:.3}", overhead.as_secs_f64() * 1e3),
            );
            set("x-sluice-guardrails", served.guardrails.header_value());
            if let Some(p) = prompt {
                set("x-sluice-prompt", p);
            }
            Ok(res)
        }
        Err(e) => {
            let api = ApiError::from(&e);
            tracing::info!(request_id = id, model, status = api.status.as_u16(), error = %escaped(&e), "refused");
            Err(api)
        }
    }
}

/// One SSE frame. A mid-stream error is an `error` object, as OpenAI sends.
fn sse_bytes(event: StreamEvent) -> Bytes {
    fn frame(v: &impl Serialize) -> Bytes {
        let json = serde_json::to_string(v)
            .unwrap_or_else(|e| format!(r#"{{"error":{{"message":"{e}"}}}}"#));
        Bytes::from(format!("data: {json}\n\n"))
    }
    match event {
        StreamEvent::Chunk(c) => frame(&c),
        StreamEvent::Error(e) => {
            tracing::info!(error = %escaped(&e), "stream ended by an error event");
            frame(&ErrorEnvelope {
                error: ApiError::from(&e).body,
            })
        }
        StreamEvent::Done => Bytes::from_static(b"data: [DONE]\n\n"),
    }
}
