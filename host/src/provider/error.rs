//! What can go wrong talking to upstreams, and the HTTP status each failure
//! becomes at the gateway.

use std::fmt;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use super::breaker::Outcome;

/// An upstream call failed (after retries and fallback, when returned by
/// [`super::Providers`]).
#[derive(Debug, Clone)]
pub enum UpstreamError {
    /// The upstream refused the request itself (4xx other than 429). Passed
    /// through with its status and message; never retried nor failed over,
    /// since another attempt would be refused the same way.
    Client {
        provider: String,
        status: StatusCode,
        message: String,
        /// The upstream's error `type` (e.g. `invalid_request_error`), if it said.
        kind: Option<String>,
        code: Option<String>,
    },
    /// 429 from the upstream, still so after retries.
    RateLimited {
        provider: String,
        message: String,
        retry_after: Option<Duration>,
    },
    /// 5xx from the upstream.
    Server {
        provider: String,
        status: StatusCode,
        message: String,
    },
    /// The per-request (or, for streams, time-to-first-chunk / idle)
    /// timeout elapsed.
    Timeout {
        provider: String,
        after: Duration,
        phase: &'static str,
    },
    /// Connecting, sending, or reading the body failed (refused, reset…).
    Connect { provider: String, message: String },
    /// The upstream answered something we cannot read (malformed JSON,
    /// wrong shape, an error event inside a stream).
    Protocol { provider: String, message: String },
    /// The stream ended before its terminator (`[DONE]`, `message_stop`).
    Truncated { provider: String },
    /// No route could be tried: every breaker open, providers unknown, or
    /// not supporting the operation.
    Unavailable { message: String },
}

impl UpstreamError {
    /// The status the gateway answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            UpstreamError::Client { status, .. } => *status,
            UpstreamError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            UpstreamError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            UpstreamError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            UpstreamError::Server { .. }
            | UpstreamError::Connect { .. }
            | UpstreamError::Protocol { .. }
            | UpstreamError::Truncated { .. } => StatusCode::BAD_GATEWAY,
        }
    }

    /// For a 429: how long the upstream asked clients to wait.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            UpstreamError::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// OpenAI error `type` for the gateway's error envelope.
    pub fn error_type(&self) -> &str {
        match self {
            UpstreamError::Client { kind: Some(k), .. } => k,
            UpstreamError::Client { status, .. } => match status.as_u16() {
                401 => "authentication_error",
                403 => "permission_error",
                404 => "not_found_error",
                _ => "invalid_request_error",
            },
            UpstreamError::RateLimited { .. } => "rate_limit_error",
            UpstreamError::Timeout { .. } => "timeout_error",
            _ => "upstream_error",
        }
    }

    /// The upstream's error `code`, when it gave one (client errors only).
    pub fn code(&self) -> Option<&str> {
        match self {
            UpstreamError::Client { code, .. } => code.as_deref(),
            _ => None,
        }
    }

    /// The provider that produced this error (none for `Unavailable`).
    pub fn provider(&self) -> Option<&str> {
        match self {
            UpstreamError::Client { provider, .. }
            | UpstreamError::RateLimited { provider, .. }
            | UpstreamError::Server { provider, .. }
            | UpstreamError::Timeout { provider, .. }
            | UpstreamError::Connect { provider, .. }
            | UpstreamError::Protocol { provider, .. }
            | UpstreamError::Truncated { provider } => Some(provider),
            UpstreamError::Unavailable { .. } => None,
        }
    }

    /// Worth another attempt (same route after backoff, or the next route)?
    /// Client errors are not: the request itself is wrong.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, UpstreamError::Client { .. })
    }

    /// What this error says about the upstream's health.
    pub(crate) fn breaker_outcome(&self) -> Outcome {
        match self {
            UpstreamError::Client { .. } | UpstreamError::RateLimited { .. } => Outcome::Neutral,
            UpstreamError::Unavailable { .. } => Outcome::Neutral,
            _ => Outcome::Failure,
        }
    }

    /// Builds the error for a non-success upstream response.
    pub(crate) fn from_response(
        provider: &str,
        status: StatusCode,
        body: &[u8],
        retry_after: Option<Duration>,
    ) -> Self {
        let (message, kind, code) = error_fields(body);
        let message = message.unwrap_or_else(|| {
            let text = String::from_utf8_lossy(body);
            let text = text.trim();
            if text.is_empty() {
                format!("upstream answered {status}")
            } else {
                truncate(text, 512).to_string()
            }
        });
        let provider = provider.to_string();
        match status.as_u16() {
            429 => UpstreamError::RateLimited {
                provider,
                message,
                retry_after,
            },
            400..=499 => UpstreamError::Client {
                provider,
                status,
                message,
                kind,
                code,
            },
            _ => UpstreamError::Server {
                provider,
                status,
                message,
            },
        }
    }

    pub(crate) fn from_reqwest(provider: &str, err: &reqwest::Error, after: Duration) -> Self {
        if err.is_timeout() {
            return UpstreamError::Timeout {
                provider: provider.to_string(),
                after,
                phase: "request",
            };
        }
        // Keep the cause chain: "error sending request" alone hides whether
        // it was a refused connection or a reset.
        let mut message = err.to_string();
        let mut source = std::error::Error::source(err);
        while let Some(s) = source {
            message.push_str(": ");
            message.push_str(&s.to_string());
            source = s.source();
        }
        UpstreamError::Connect {
            provider: provider.to_string(),
            message,
        }
    }
}

/// `error.message`, `error.type`, `error.code` from an OpenAI
/// (`{"error":{..}}`) or Anthropic (`{"type":"error","error":{..}}`) body.
pub(crate) fn error_fields(body: &[u8]) -> (Option<String>, Option<String>, Option<String>) {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return (None, None, None);
    };
    let err = v.get("error").unwrap_or(&v);
    if let Some(s) = err.as_str() {
        return (Some(s.to_string()), None, None);
    }
    let field = |k: &str| match err.get(k) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    (field("message"), field("type"), field("code"))
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

impl fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UpstreamError::Client {
                provider,
                status,
                message,
                ..
            } => write!(f, "{provider} refused the request ({status}): {message}"),
            UpstreamError::RateLimited {
                provider, message, ..
            } => write!(f, "{provider} rate limited the request: {message}"),
            UpstreamError::Server {
                provider,
                status,
                message,
            } => write!(f, "{provider} failed ({status}): {message}"),
            UpstreamError::Timeout {
                provider,
                after,
                phase,
            } => write!(
                f,
                "{provider} timed out ({phase}) after {} ms",
                after.as_millis()
            ),
            UpstreamError::Connect { provider, message } => {
                write!(f, "{provider} connection failed: {message}")
            }
            UpstreamError::Protocol { provider, message } => {
                write!(f, "{provider} sent an unreadable answer: {message}")
            }
            UpstreamError::Truncated { provider } => {
                write!(f, "{provider} ended the stream before it was complete")
            }
            UpstreamError::Unavailable { message } => f.write_str(message),
        }
    }
}

impl std::error::Error for UpstreamError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_gateway_codes() {
        let e = |s: u16, body: &str| {
            UpstreamError::from_response(
                "p",
                StatusCode::from_u16(s).unwrap(),
                body.as_bytes(),
                None,
            )
        };
        let bad = e(
            400,
            r#"{"error":{"message":"bad temperature","type":"invalid_request_error","param":"temperature","code":null}}"#,
        );
        assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
        assert!(bad.to_string().contains("bad temperature"));
        assert!(!bad.is_retryable());
        assert_eq!(e(401, "").error_type(), "authentication_error");
        assert_eq!(e(429, "slow down").status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(e(503, "").status(), StatusCode::BAD_GATEWAY);
        assert!(e(503, "").is_retryable());
        let anthropic = e(
            529,
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        );
        assert!(anthropic.to_string().contains("Overloaded"));
        assert_eq!(anthropic.status(), StatusCode::BAD_GATEWAY);
    }
}
