//! OpenAI-shaped error responses: `{"error":{"message","type","param","code"}}`
//! with the matching status, so clients built for OpenAI handle our errors.

use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::openai::{ErrorBody, ErrorEnvelope};
use crate::pipeline;
use crate::provider::UpstreamError;

/// An error about to be sent to the client.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: ErrorBody,
    /// `Retry-After`, in whole seconds rounded up.
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

    /// A key that exists but may no longer be used (revoked, expired).
    pub fn key_refused(message: String, code: &str) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            message,
            None,
            Some(code),
        )
    }

    /// The state store failed: nothing about keys, budgets or limits can
    /// be decided, so the request is refused (fail closed).
    pub fn state(e: &crate::state::StateError) -> Self {
        tracing::error!(error = %e, "state store failed");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            "The gateway's state store is unavailable",
            None,
            Some("state_unavailable"),
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

    pub fn method_not_allowed(method: &str, path: &str) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request_error",
            format!("Method {method} is not allowed on {path}"),
            None,
            Some("method_not_allowed"),
        )
    }

    pub fn headers_too_large(limit_kb: usize) -> Self {
        Self::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "invalid_request_error",
            format!(
                "Request headers exceed the gateway's limit of {limit_kb} KiB (server.max-header-kb)"
            ),
            None,
            Some("request_headers_too_large"),
        )
    }

    pub fn shutting_down() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            "The gateway is shutting down and could not finish this request",
            None,
            Some("shutting_down"),
        )
    }

    /// The OpenAI-shaped version of an error response something else made
    /// (an axum rejection, a status without a body): its status, its text
    /// (if any) as the message.
    pub fn from_status(status: StatusCode, text: &str) -> Self {
        let kind = if status.is_server_error() {
            "server_error"
        } else {
            "invalid_request_error"
        };
        let message = match text.trim() {
            "" => status.canonical_reason().unwrap_or("Error").to_string(),
            t => t.to_string(),
        };
        Self::new(status, kind, message, None, None)
    }
}

impl From<pipeline::Error> for ApiError {
    fn from(e: pipeline::Error) -> Self {
        Self::from(&e)
    }
}

/// The one mapping from a pipeline failure to its status and OpenAI error
/// object; a mid-stream error event uses the same body.
impl From<&pipeline::Error> for ApiError {
    fn from(e: &pipeline::Error) -> Self {
        use pipeline::Error as E;
        let (status, kind, param, code) = match e {
            E::InvalidRequest { param, .. } => (
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                Some(param.clone()),
                None,
            ),
            E::Prompt(p) => (
                if p.is_not_found() {
                    StatusCode::NOT_FOUND
                } else {
                    StatusCode::BAD_REQUEST
                },
                "invalid_request_error",
                Some(p.param().to_string()),
                Some(p.code()),
            ),
            E::RateLimited(_) => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_error",
                None,
                Some("rate_limit_exceeded"),
            ),
            E::BudgetExceeded(_) => (
                StatusCode::TOO_MANY_REQUESTS,
                "insufficient_quota",
                None,
                Some("budget_exceeded"),
            ),
            E::State(s) => return Self::state(s),
            E::ModelNotFound(_) => (
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                Some("model".to_string()),
                Some("model_not_found"),
            ),
            E::GuardrailRejected { code, .. } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "guardrail_rejected",
                None,
                Some(code.as_str()),
            ),
            E::PluginUnavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                None,
                Some("guardrail_unavailable"),
            ),
            E::PluginFailed { .. } => (
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                None,
                Some("plugin_failure"),
            ),
            E::CostDenied { .. } => (
                StatusCode::PAYMENT_REQUIRED,
                "insufficient_quota",
                None,
                Some("cost_policy_denied"),
            ),
            E::Timeout(_) => (
                StatusCode::GATEWAY_TIMEOUT,
                "upstream_error",
                None,
                Some("upstream_timeout"),
            ),
            E::Upstream(u) => {
                let (status, kind) = upstream_status(u);
                let code = u.code().or(match status.as_u16() {
                    429 => Some("rate_limited"),
                    400..=499 => None,
                    504 => Some("upstream_timeout"),
                    _ => Some("upstream_unavailable"),
                });
                (status, kind, u.param().map(str::to_string), code)
            }
        };
        let mut err = Self::new(status, kind, e.to_string(), param, code);
        match e {
            // A 429 from upstream says when to come back (1 s when the
            // upstream did not).
            E::Upstream(u) => {
                err.retry_after = u
                    .retry_after()
                    .or((status == StatusCode::TOO_MANY_REQUESTS).then_some(Duration::from_secs(1)))
            }
            // None when the request can never fit. (The `x-ratelimit-*`
            // headers are the server's, as on answers.)
            E::RateLimited(d) => err.retry_after = d.denied.as_ref().and_then(|x| x.retry_after),
            // Held by requests in flight: their unused worst case comes
            // back when they settle. Spent (or too little left for this
            // request): no point retrying this period, so no Retry-After.
            E::BudgetExceeded(b) if b.waiting_helps() => {
                err.retry_after = Some(Duration::from_secs(1))
            }
            _ => {}
        }
        err
    }
}

/// The gateway's status and OpenAI error `type` for an upstream failure: a
/// client error passes the upstream's own status and type through (another
/// route would refuse it the same way); everything else is the gateway's
/// 429 / 502 / 503 / 504.
pub fn upstream_status(e: &UpstreamError) -> (StatusCode, &str) {
    match e {
        UpstreamError::Client { status, kind, .. } => {
            let kind = kind.as_deref().unwrap_or(match status.as_u16() {
                401 => "authentication_error",
                403 => "permission_error",
                404 => "not_found_error",
                _ => "invalid_request_error",
            });
            (*status, kind)
        }
        UpstreamError::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limit_error"),
        UpstreamError::Timeout { .. } => (StatusCode::GATEWAY_TIMEOUT, "timeout_error"),
        UpstreamError::Unavailable { .. } => (StatusCode::SERVICE_UNAVAILABLE, "upstream_error"),
        UpstreamError::Server { .. }
        | UpstreamError::Connect { .. }
        | UpstreamError::Protocol { .. }
        | UpstreamError::Truncated { .. } => (StatusCode::BAD_GATEWAY, "upstream_error"),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut res = (self.status, Json(ErrorEnvelope { error: self.body })).into_response();
        if let Some(after) = self.retry_after {
            // Whole seconds, rounded up: `Retry-After: 0` would invite a hot loop.
            let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream(status: u16, body: &str) -> ApiError {
        let e = UpstreamError::from_response(
            "p",
            StatusCode::from_u16(status).unwrap(),
            body.as_bytes(),
            Some(Duration::from_secs(3)),
        );
        ApiError::from(pipeline::Error::Upstream(e))
    }

    #[test]
    fn upstream_failures_map_to_gateway_statuses() {
        let bad = upstream(
            400,
            r#"{"error":{"message":"bad temperature","type":"invalid_request_error","param":"temperature","code":null}}"#,
        );
        assert_eq!(bad.status, StatusCode::BAD_REQUEST);
        assert_eq!(bad.body.kind, "invalid_request_error");
        assert_eq!(bad.body.param.as_deref(), Some("temperature"));
        assert_eq!(bad.retry_after, None);
        assert_eq!(upstream(401, "").body.kind, "authentication_error");
        let limited = upstream(429, "slow down");
        assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(limited.body.code.as_deref(), Some("rate_limited"));
        assert_eq!(limited.retry_after, Some(Duration::from_secs(3)));
        for s in [500, 503, 529] {
            let e = upstream(s, "");
            assert_eq!(e.status, StatusCode::BAD_GATEWAY, "{s}");
            assert_eq!(e.body.code.as_deref(), Some("upstream_unavailable"));
        }
    }

    #[test]
    fn pipeline_failures_name_their_param_and_code() {
        let e = ApiError::from(pipeline::Error::ModelNotFound("x".into()));
        assert_eq!(e.status, StatusCode::NOT_FOUND);
        assert_eq!(e.body.param.as_deref(), Some("model"));
        assert_eq!(e.body.code.as_deref(), Some("model_not_found"));
        let e = ApiError::from(pipeline::Error::GuardrailRejected {
            plugin: "pii".into(),
            reason: "no".into(),
            code: "pii".into(),
        });
        assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(e.body.kind, "guardrail_rejected");
        assert_eq!(e.body.code.as_deref(), Some("pii"));
    }
}
