//! Middleware that is not auth (see [`super::auth`]): the request id,
//! outermost so every answer, errors included, carries
//! `x-sluice-request-id` and the other `x-sluice-*` headers. The body limit
//! is axum's `DefaultBodyLimit`, enforced by the extractor.

use std::time::{Duration, Instant};

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

use crate::pipeline::Served;

pub const REQUEST_ID: &str = "x-sluice-request-id";
const ATTEMPTS: &str = "x-sluice-attempts";

/// The gateway's id for this request (also the plugins' `request-info.id`).
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// When the request arrived, for `x-sluice-overhead-ms`.
#[derive(Debug, Clone, Copy)]
pub struct Arrived(pub Instant);

pub async fn request_id(mut req: Request, next: Next) -> Response {
    let id = format!("req_{:024x}", rand::random::<u128>() >> 32);
    req.extensions_mut().insert(RequestId(id.clone()));
    let arrived = Instant::now();
    req.extensions_mut().insert(Arrived(arrived));
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&id) {
        h.insert(REQUEST_ID, v);
    }
    // Answers that never reached the pipeline (bad key, unreadable body,
    // unknown path) still carry every header: nothing served, no guardrail ran.
    if !h.contains_key(ATTEMPTS) {
        served_headers(h, &Served::none(), arrived.elapsed());
    }
    res
}

/// The `x-sluice-*` headers of `served` (all but the request id), on a
/// success and a refusal alike.
pub fn served_headers(h: &mut HeaderMap, served: &Served, overhead: Duration) {
    let mut set = |name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(name, v);
        }
    };
    set("x-sluice-provider", &served.provider);
    set("x-sluice-model", &served.model);
    set(ATTEMPTS, &served.attempts.to_string());
    set(
        "x-sluice-overhead-ms",
        &format!("{:.3}", overhead.as_secs_f64() * 1e3),
    );
    set("x-sluice-guardrails", &served.guardrails.header_value());
}
