//! Why a request failed inside the pipeline, and how that looks on the wire.
//!
//! The status and the OpenAI error body are decided here, in one place, so a
//! non-streamed error response and a mid-stream error event say the same thing.

use std::time::Duration;

use axum::http::StatusCode;

use crate::openai::ErrorBody;
use crate::plugin::PluginFailure;
use crate::provider::UpstreamError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// 400: a parameter the gateway itself checks is invalid.
    #[error("{message}")]
    InvalidRequest { param: String, message: String },
    /// 404: `model` is not a configured gateway model.
    #[error("The model `{0}` does not exist")]
    ModelNotFound(String),
    /// 422: a guardrail refused the input or (part of) the output.
    #[error("Request blocked by guardrail `{plugin}`: {reason}")]
    GuardrailRejected {
        plugin: String,
        reason: String,
        code: String,
    },
    /// 503: a plugin the model needs is not loaded (failed or missing), so
    /// the request fails closed rather than skipping the check.
    #[error("plugin `{0}` required by this model is not loaded")]
    PluginUnavailable(String),
    /// 503: a router or cost-policy plugin failed and its failure mode is `closed`.
    #[error("plugin `{plugin}` failed: {failure}")]
    PluginFailed {
        plugin: String,
        failure: PluginFailure,
    },
    /// 402: the cost policy denied the request.
    #[error("Request denied by cost policy `{plugin}`: {reason}")]
    CostDenied { plugin: String, reason: String },
    /// 504: the whole upstream phase exceeded `server.request-timeout-ms`.
    #[error("upstream did not answer within {0:?}")]
    Timeout(Duration),
    /// 429/4xx/502/503/504: the providers gave up (after retries/fallbacks).
    #[error("{0}")]
    Upstream(#[from] UpstreamError),
}

impl Error {
    pub fn status(&self) -> StatusCode {
        match self {
            Error::InvalidRequest { .. } => StatusCode::BAD_REQUEST,
            Error::ModelNotFound(_) => StatusCode::NOT_FOUND,
            Error::GuardrailRejected { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Error::PluginUnavailable(_) | Error::PluginFailed { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Error::CostDenied { .. } => StatusCode::PAYMENT_REQUIRED,
            Error::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            Error::Upstream(e) => e.status(),
        }
    }

    /// `Retry-After` to send with the error, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Upstream(e) => e.retry_after(),
            _ => None,
        }
    }

    /// The OpenAI `error` object for this failure.
    pub fn body(&self) -> ErrorBody {
        let (kind, param, code): (&str, Option<&str>, Option<&str>) = match self {
            Error::InvalidRequest { param, .. } => ("invalid_request_error", Some(param), None),
            Error::ModelNotFound(_) => (
                "invalid_request_error",
                Some("model"),
                Some("model_not_found"),
            ),
            Error::GuardrailRejected { code, .. } => ("guardrail_rejected", None, Some(code)),
            Error::PluginUnavailable(_) => ("server_error", None, Some("guardrail_unavailable")),
            Error::PluginFailed { .. } => ("server_error", None, Some("plugin_failure")),
            Error::CostDenied { .. } => ("insufficient_quota", None, Some("cost_policy_denied")),
            Error::Timeout(_) => ("upstream_error", None, Some("upstream_timeout")),
            Error::Upstream(e) => {
                let code = e.code().or(match e.status().as_u16() {
                    429 => Some("rate_limited"),
                    400..=499 => None,
                    504 => Some("upstream_timeout"),
                    _ => Some("upstream_unavailable"),
                });
                (e.error_type(), None, code)
            }
        };
        ErrorBody {
            message: self.to_string(),
            kind: kind.to_string(),
            param: param.map(str::to_string),
            code: code.map(str::to_string),
        }
    }
}
