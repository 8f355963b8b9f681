//! Middleware that is not auth (see [`super::auth`]): the request id,
//! outermost so every answer, errors included, carries
//! `x-sluice-request-id`. The body limit is axum's `DefaultBodyLimit`,
//! enforced by the extractor.

use std::time::Instant;

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;

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
    req.extensions_mut().insert(Arrived(Instant::now()));
    let mut res = next.run(req).await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(REQUEST_ID, v);
    }
    res
}
