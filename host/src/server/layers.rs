//! Middleware that is not auth (see [`super::auth`]): [`stamp`], outermost,
//! so every answer, errors included, carries every `x-sluice-*` header the
//! README lists, and every error is an OpenAI-shaped JSON body whoever
//! produced it. The body limit is axum's
//! `DefaultBodyLimit`, enforced by the extractor.

use std::time::Instant;

use axum::body::to_bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use tracing::Instrument as _;

use super::error::ApiError;
use crate::telemetry;

pub const REQUEST_ID: &str = "x-sluice-request-id";
pub const PROVIDER: &str = "x-sluice-provider";
pub const MODEL: &str = "x-sluice-model";
pub const ATTEMPTS: &str = "x-sluice-attempts";
pub const GUARDRAILS: &str = "x-sluice-guardrails";
pub const OVERHEAD_MS: &str = "x-sluice-overhead-ms";
/// `ID@VERSION` of the registry prompt a request was rendered from.
pub const PROMPT: &str = "x-sluice-prompt";

/// The gateway's id for this request (also the plugins' `request-info.id`).
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// When the request arrived, for `x-sluice-overhead-ms`.
#[derive(Debug, Clone, Copy)]
pub struct Arrived(pub Instant);

/// The largest request head accepted, in bytes (`server.max-header-kb`).
#[derive(Debug, Clone, Copy)]
pub struct HeadLimit(pub usize);

/// Size of a request head as sent: request line and header lines.
fn head_size(method: &Method, uri: &Uri, headers: &HeaderMap) -> usize {
    let target = uri.path_and_query().map_or(1, |p| p.as_str().len())
        + uri.authority().map_or(0, |a| a.as_str().len());
    // "METHOD TARGET HTTP/1.1\r\n"
    let line = method.as_str().len() + target + 12;
    headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum::<usize>()
        + line
}

/// Request id, head size limit, and the shape of every answer (see the
/// module docs). Errors made by a handler that already set `x-sluice-*`
/// (the chat pipeline) keep theirs.
pub async fn stamp(State(limit): State<HeadLimit>, mut req: Request, next: Next) -> Response {
    let arrived = Instant::now();
    let id = format!("req_{:024x}", rand::random::<u128>() >> 32);
    let mut res = if head_size(req.method(), req.uri(), req.headers()) > limit.0 {
        ApiError::headers_too_large(limit.0 / 1024).into_response()
    } else {
        req.extensions_mut().insert(RequestId(id.clone()));
        req.extensions_mut().insert(Arrived(arrived));
        // API requests get the server span (health checks and scrapes
        // would only be noise); the client's trace context goes upstream
        // either way (`telemetry::upstream_headers`).
        let client = telemetry::client_context(req.headers());
        let span = if req.uri().path().starts_with("/v1/") {
            let span = telemetry::spans::request(req.method().as_str(), req.uri().path(), &id);
            telemetry::set_parent(&span, client.as_ref());
            span
        } else {
            tracing::Span::none()
        };
        let res = telemetry::with_client(client, next.run(req))
            .instrument(span.clone())
            .await;
        let status = res.status().as_u16();
        span.record("http.response.status_code", status);
        if status >= 500 {
            span.record("otel.status_code", "ERROR");
        }
        res
    };
    if res.status().as_u16() >= 400 && !is_json(res.headers()) {
        res = openai_shaped(res).await;
    }
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&id) {
        h.insert(REQUEST_ID, v);
    }
    // What an answer that never reached an upstream says (a bad key, an
    // input guardrail's reject, an unknown path): no provider, no attempt,
    // no guardrail unless one ran. The chat handler sets what it knows.
    for (name, nothing) in [
        (PROVIDER, "none"),
        (MODEL, "none"),
        (ATTEMPTS, "0"),
        (GUARDRAILS, ""),
    ] {
        if !h.contains_key(name) {
            h.insert(name, HeaderValue::from_static(nothing));
        }
    }
    if !h.contains_key(OVERHEAD_MS) {
        let ms = format!("{:.3}", arrived.elapsed().as_secs_f64() * 1e3);
        if let Ok(v) = HeaderValue::from_str(&ms) {
            h.insert(OVERHEAD_MS, v);
        }
    }
    res
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

/// Rewrite an error response something else produced (axum's rejections
/// and 405s, a bare status) into an OpenAI error body, keeping its status
/// and other headers (`Allow`, `Retry-After`).
async fn openai_shaped(res: Response) -> Response {
    let (mut parts, body) = res.into_parts();
    // Such bodies are short plain text; anything longer is cut.
    let text = to_bytes(body, 4096).await.unwrap_or_default();
    let err = ApiError::from_status(parts.status, &String::from_utf8_lossy(&text));
    let shaped = err.into_response();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.remove(header::TRANSFER_ENCODING);
    let (new_parts, new_body) = shaped.into_parts();
    for (k, v) in &new_parts.headers {
        parts.headers.insert(k.clone(), v.clone());
    }
    Response::from_parts(parts, new_body)
}

/// `Router::method_not_allowed_fallback`: a 405 that says which method.
pub async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::method_not_allowed(method.as_str(), uri.path())
}
