//! Middleware, one concern each: request id (outermost, so every answer,
//! errors included, carries `x-sluice-request-id` and the other `x-sluice-*`
//! headers) and virtual-key auth.
//! The body limit is axum's `DefaultBodyLimit`, enforced by the extractor.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use crate::pipeline::{Gateway, Principal};

pub const REQUEST_ID: &str = "x-sluice-request-id";

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
    if !h.contains_key("x-sluice-attempts") {
        let overhead = format!("{:.3}", arrived.elapsed().as_secs_f64() * 1e3);
        for (name, value) in [
            ("x-sluice-provider", "none"),
            ("x-sluice-model", "none"),
            ("x-sluice-attempts", "0"),
            ("x-sluice-overhead-ms", overhead.as_str()),
            ("x-sluice-guardrails", ""),
        ] {
            if let Ok(v) = HeaderValue::from_str(value) {
                h.insert(name, v);
            }
        }
    }
    res
}

/// `Authorization: Bearer KEY` against `[[keys]]`. With no keys configured
/// auth is off and every caller is the anonymous principal.
fn bearer(req: &Request) -> Option<&str> {
    req.headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
}

pub async fn auth(State(gw): State<Arc<Gateway>>, mut req: Request, next: Next) -> Response {
    let principal = if gw.auth_enabled() {
        let Some(secret) = bearer(&req) else {
            return ApiError::unauthorized("Missing API key: send `Authorization: Bearer <key>`")
                .into_response();
        };
        match gw.authenticate(secret) {
            Some(p) => p,
            None => return ApiError::unauthorized("Incorrect API key provided").into_response(),
        }
    } else {
        Principal::default()
    };
    req.extensions_mut().insert(principal);
    next.run(req).await
}

/// `Authorization: Bearer <server.admin-key>` on `/admin/*`.
pub async fn admin_auth(State(gw): State<Arc<Gateway>>, req: Request, next: Next) -> Response {
    let expected = gw.config.server.admin_key.as_deref().unwrap_or_default();
    match bearer(&req) {
        Some(secret)
            if !expected.is_empty()
                && crate::pipeline::constant_time_eq(secret.as_bytes(), expected.as_bytes()) =>
        {
            next.run(req).await
        }
        _ => ApiError::unauthorized("Admin endpoints need `Authorization: Bearer <admin key>`")
            .into_response(),
    }
}
