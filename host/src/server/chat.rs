//! `POST /v1/chat/completions` and `POST /v1/embeddings`: parse, hand to the
//! pipeline, render (JSON, or SSE for `stream: true`) with `x-sluice-*`
//! headers, on success and on failure alike.

use std::convert::Infallible;
use std::sync::Arc;

use axum::Extension;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use serde::Serialize;

use super::error::ApiError;
use super::extract::OpenAiJson;
use super::layers::{
    ATTEMPTS, Arrived, GUARDRAILS, MODEL, OVERHEAD_MS, PROMPT, PROVIDER, RequestId,
};
use super::shutdown::Drain;
use crate::metrics::{Denial, RequestSample};
use crate::openai::{ChatRequest, EmbeddingsRequest, ErrorEnvelope};
use crate::pipeline::{Gateway, Principal, Progress, RequestCtx, Served, StreamEvent, Tried};
use crate::plugin::log::escaped;
use crate::reqlog::{Pending, Start};

fn ctx(id: RequestId, arrived: Arrived, principal: Principal, headers: &HeaderMap) -> RequestCtx {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    RequestCtx {
        id: id.0,
        arrived: arrived.0,
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
        progress: Progress::default(),
        cache: crate::cache::Directive::from_headers(
            text("cache-control"),
            text(crate::cache::HEADER),
        ),
    }
}

/// Logs one line if the client goes away before its answer is complete:
/// dropped while still armed (the handler's future, or a stream's body).
struct Disconnect {
    id: String,
    what: &'static str,
    armed: bool,
}

impl Disconnect {
    fn new(id: &str, what: &'static str) -> Self {
        Self {
            id: id.to_string(),
            what,
            armed: true,
        }
    }

    fn done(mut self) {
        self.armed = false;
    }
}

impl Drop for Disconnect {
    fn drop(&mut self) {
        if self.armed {
            tracing::info!(request_id = %self.id, "client disconnected {}", self.what);
        }
    }
}

pub async fn chat(
    State(gw): State<Arc<Gateway>>,
    Extension(id): Extension<RequestId>,
    Extension(arrived): Extension<Arrived>,
    Extension(principal): Extension<Principal>,
    drain: Option<Extension<Drain>>,
    headers: HeaderMap,
    OpenAiJson(req): OpenAiJson<ChatRequest>,
) -> Response {
    let ctx = ctx(id, arrived, principal, &headers);
    let waiting = Disconnect::new(&ctx.id, "before the answer");
    let model = req.model.clone();
    let log = log_start(&gw, &ctx, "chat", &model, req.stream, || {
        let m = req.messages.iter();
        m.map(|m| (m.role.as_str(), m.content_text())).collect()
    });
    let result = if req.stream {
        gw.chat_stream(&ctx, req).await.map(|s| {
            let id = ctx.id.clone();
            let first = FirstToken {
                gw: gw.clone(),
                request_id: ctx.id.clone(),
                metrics: gw.metrics.clone(),
                model: model_label(&gw, &model).to_string(),
                arrived: arrived.0,
                seen: false,
            };
            let tail = crate::reqlog::record::OnDrop(log.clone());
            let frames = s
                .events
                .scan((first, tail), move |(first, tail), e| {
                    first.saw(&e);
                    tail.0.event(&e);
                    std::future::ready(Some(sse_bytes(e, &id)))
                })
                .boxed();
            let drain = drain.map(|d| d.0).unwrap_or_default();
            let body = relay(frames, drain, ctx.id.clone()).map(Ok::<_, Infallible>);
            let mut res = Response::new(Body::from_stream(body));
            let h = res.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream"),
            );
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            (res, s.served)
        })
    } else {
        gw.chat(&ctx, req).await.map(|c| {
            log.answer(&c.completion);
            let mut res = axum::Json(c.completion).into_response();
            if let Some(r) = c.review
                && let Ok(v) = HeaderValue::from_str(&r.header_value())
            {
                res.headers_mut().insert(super::review::HEADER, v);
            }
            (res, c.served)
        })
    };
    waiting.done();
    finish(&gw, result, &ctx, &model, arrived, &log)
}

/// The request log's record of this request (a no-op when the log is off);
/// `texts` (role, text) are only taken in `full` mode.
fn log_start<'m>(
    gw: &Gateway,
    ctx: &RequestCtx,
    endpoint: &'static str,
    model: &str,
    stream: bool,
    texts: impl FnOnce() -> Vec<(&'m str, String)>,
) -> Pending {
    let start = Start {
        id: &ctx.id,
        endpoint,
        arrived: ctx.arrived,
        key_id: ctx.principal.key_id.as_deref(),
        feature: ctx.feature.as_deref(),
        model,
        stream,
    };
    Pending::start(&gw.reqlog, start, texts)
}

/// Times a stream's first content chunk (`sluice_time_to_first_token_seconds`).
struct FirstToken {
    /// For [`super::outcomes::stream_ended`].
    gw: Arc<Gateway>,
    request_id: String,
    metrics: Arc<crate::metrics::Metrics>,
    model: String,
    arrived: std::time::Instant,
    seen: bool,
}

impl FirstToken {
    fn saw(&mut self, e: &StreamEvent) {
        if let StreamEvent::Error(err) = e {
            super::outcomes::stream_ended(&self.gw, &self.model, &self.request_id, err);
        }
        let text = |c: &crate::openai::ChatChunk| {
            c.choices
                .iter()
                .any(|ch| ch.delta.content.as_deref().is_some_and(|t| !t.is_empty()))
        };
        if !self.seen && matches!(e, StreamEvent::Chunk(c) if text(c)) {
            self.seen = true;
            self.metrics
                .first_token(&self.model, self.arrived.elapsed());
        }
    }
}

/// The `model` label: a configured gateway model, else `unknown`.
fn model_label<'a>(gw: &Gateway, model: &'a str) -> &'a str {
    crate::metrics::Metrics::model_label(model, gw.config.models.contains_key(model))
}

pub async fn embeddings(
    State(gw): State<Arc<Gateway>>,
    Extension(id): Extension<RequestId>,
    Extension(arrived): Extension<Arrived>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    OpenAiJson(req): OpenAiJson<EmbeddingsRequest>,
) -> Response {
    let ctx = ctx(id, arrived, principal, &headers);
    let waiting = Disconnect::new(&ctx.id, "before the answer");
    let model = req.model.clone();
    let log = log_start(&gw, &ctx, "embeddings", &model, false, || {
        let texts = match &req.input {
            serde_json::Value::String(s) => vec![s.clone()],
            serde_json::Value::Array(a) => a
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        };
        texts.into_iter().map(|t| ("input", t)).collect()
    });
    let result = gw.embeddings(&ctx, req).await.map(|e| {
        log.embedded(e.response.usage.as_ref());
        (axum::Json(e.response).into_response(), e.served)
    });
    waiting.done();
    finish(&gw, result, &ctx, &model, arrived, &log)
}

/// Log the outcome and add the `x-sluice-*` headers, to an answer or to
/// the error (then from what the request went through so far), and count
/// it in the metrics and the request log.
fn finish(
    gw: &Gateway,
    result: Result<(Response, Served), crate::pipeline::Error>,
    ctx: &RequestCtx,
    model: &str,
    arrived: Arrived,
    log: &Pending,
) -> Response {
    let total = arrived.0.elapsed();
    let id = ctx.id.as_str();
    let metrics = &gw.metrics;
    super::outcomes::answered(gw, model_label(gw, model), id, result.as_ref().err());
    let (mut res, tried, extra) = match result {
        Ok((res, served)) => {
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
            let tried = Tried {
                provider: Some(served.provider),
                model: Some(served.model),
                attempts: served.attempts,
                upstream: served.upstream,
                guardrails: served.guardrails,
                prompt: served.prompt,
            };
            let mut extra = served.rate.headers();
            if let Some(cost) = served.cost_usd {
                extra.push(("x-sluice-cost-usd", format!("{cost:.9}")));
            }
            if let Some((status, similarity)) = served.cache {
                extra.push((crate::cache::HEADER, status.as_str().to_string()));
                if let Some(s) = similarity {
                    extra.push((crate::cache::SIMILARITY_HEADER, format!("{s:.4}")));
                }
            }
            if log.is_on() {
                log.outcome(crate::reqlog::Outcome {
                    status: res.status().as_u16(),
                    cost_usd: served.cost_usd,
                    ..crate::reqlog::Outcome::of(&tried)
                });
            }
            (res, tried, extra)
        }
        Err(e) => {
            let api = ApiError::from(&e);
            let tried = ctx.progress.get();
            let prompt = tried.prompt.as_ref().map(ToString::to_string);
            tracing::info!(
                request_id = id,
                model,
                prompt = prompt.as_deref(),
                status = api.status.as_u16(),
                provider = tried.provider.as_deref(),
                attempts = tried.attempts,
                error = %escaped(crate::reqlog::redacted(&e)),
                "refused"
            );
            if log.is_on() {
                log.outcome(crate::reqlog::Outcome {
                    status: api.status.as_u16(),
                    error: Some(api.body.kind.clone()),
                    error_code: api.body.code.clone(),
                    error_message: Some(api.body.message.clone()),
                    ..crate::reqlog::Outcome::of(&tried)
                });
            }
            // A rate-limit refusal says which limit and when, as answers do.
            let extra = match &e {
                crate::pipeline::Error::RateLimited(d) => {
                    metrics.denied(Denial::RateLimit);
                    d.headers()
                }
                crate::pipeline::Error::BudgetExceeded(_) => {
                    metrics.denied(Denial::Budget);
                    Vec::new()
                }
                _ => Vec::new(),
            };
            (api.into_response(), tried, extra)
        }
    };
    let overhead = total.saturating_sub(tried.upstream);
    let prompt = tried.prompt.as_ref().map(|p| (p.id.as_str(), p.version));
    metrics.request(RequestSample {
        model: model_label(gw, model),
        provider: tried.provider.as_deref(),
        upstream_model: tried.model.as_deref(),
        status: res.status().as_u16(),
        total,
        upstream: tried.upstream,
        prompt,
    });
    crate::telemetry::spans::record_request(
        model,
        tried.provider.as_deref(),
        tried.model.as_deref(),
        tried.attempts,
        &tried.guardrails,
        prompt,
    );
    let h = res.headers_mut();
    let mut set = |name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(name, v);
        }
    };
    // Before any route was tried, provider and model are `layers::stamp`'s
    // `none`.
    if let Some(p) = &tried.provider {
        set(PROVIDER, p);
    }
    if let Some(m) = &tried.model {
        set(MODEL, m);
    }
    set(ATTEMPTS, &tried.attempts.to_string());
    set(OVERHEAD_MS, &format!("{:.3}", overhead.as_secs_f64() * 1e3));
    set(GUARDRAILS, &tried.guardrails.header_value());
    if let Some(p) = &tried.prompt {
        set(PROMPT, &p.to_string());
    }
    for (name, value) in extra {
        set(name, &value);
    }
    res
}

/// One SSE frame. A mid-stream error is an `error` object, as OpenAI sends.
fn sse_bytes(event: StreamEvent, request_id: &str) -> Bytes {
    match event {
        StreamEvent::Chunk(c) => frame(&c),
        StreamEvent::Error(e) => {
            tracing::info!(request_id, error = %escaped(crate::reqlog::redacted(&e)), "stream ended by an error event");
            frame(&ErrorEnvelope {
                error: ApiError::from(&e).body,
            })
        }
        StreamEvent::Done => Bytes::from_static(b"data: [DONE]\n\n"),
    }
}

fn frame(v: &impl Serialize) -> Bytes {
    let json =
        serde_json::to_string(v).unwrap_or_else(|e| format!(r#"{{"error":{{"message":"{e}"}}}}"#));
    Bytes::from(format!("data: {json}\n\n"))
}

/// A stream's frames for the client: ends with an error event at the drain
/// deadline, and logs a client that went away before the end.
fn relay(
    mut frames: BoxStream<'static, Bytes>,
    drain: Drain,
    request_id: String,
) -> BoxStream<'static, Bytes> {
    async_stream::stream! {
        let watch = Disconnect::new(&request_id, "during the stream");
        let forced = drain.forced();
        tokio::pin!(forced);
        loop {
            tokio::select! {
                biased;
                f = frames.next() => match f {
                    Some(f) => yield f,
                    None => break,
                },
                () = &mut forced => {
                    tracing::info!(request_id = %request_id, "stream ended by an error event: shutdown deadline");
                    yield frame(&ErrorEnvelope { error: ApiError::shutting_down().body });
                    break;
                }
            }
        }
        watch.done();
    }
    .boxed()
}
