//! OpenAI-shaped error responses: `{"error":{"message","type","param","code"}}`
//! with the matching status, so clients built for OpenAI handle our errors.

use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::openai::{ErrorBody, ErrorEnvelope};
use crate::pipeline;

/// An error about to be sent to the client.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: ErrorBody,
    pub retry_after: Option<Duration>,
}

impl ApiError {
    pub fn new(
        status: StatusCode,
        kind: &str,
        message: impl Into<String>,
        param: Option<String>,
        code: Option<&str>,
    ) -> Self {
        Self {
            status,
            body: ErrorBody {
                message: message.into(),
                kind: kind.into(),
                param,
                code: code.map(str::to_string),
            },
            retry_after: None,
        }
    }

    pub fn invalid(message: impl Into<String>, param: Option<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            message,
            param,
            None,
        )
    }

    pub fn unauthorized(message: &str) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            message,
            None,
            Some("invalid_api_key"),
        )
    }

    pub fn too_large() -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            "Request body exceeds the gateway's limit (server.body-limit-kb)",
            None,
            Some("request_too_large"),
        )
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            format!("Unknown endpoint {what}"),
            None,
            Some("unknown_url"),
        )
    }
}

impl From<pipeline::Error> for ApiError {
    fn from(e: pipeline::Error) -> Self {
        Self {
            status: e.status(),
            body: e.body(),
            retry_after: e.retry_after(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut res = (self.status, Json(ErrorEnvelope { error: self.body })).into_response();
        // A 429 always says when to come back (1 s when the upstream did not).
        let retry_after = self
            .retry_after
            .or((self.status == StatusCode::TOO_MANY_REQUESTS).then_some(Duration::from_secs(1)));
        if let Some(after) = retry_after {
            // Whole seconds, rounded up: `Retry-After: 0` would invite a hot loop.
            let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        res
    }
}
