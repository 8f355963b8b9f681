//! What can go wrong talking to upstreams. Which HTTP status each failure
//! becomes at the gateway is the server's decision (`server::error`).

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use super::breaker::Outcome;

/// An upstream call failed (after retries and fallback, when returned by
/// [`super::Providers`]).
#[derive(Debug, Clone, thiserror::Error)]
pub enum UpstreamError {
    /// The upstream refused the request itself (4xx other than 429). Passed
    /// through with its status and message; never retried nor failed over,
    /// since another attempt would be refused the same way.
    #[error("{provider} refused the request ({status}): {message}")]
    Client {
        provider: String,
        status: StatusCode,
        message: String,
        /// The upstream's error `type` (e.g. `invalid_request_error`), if it said.
        kind: Option<String>,
        code: Option<String>,
    },
    /// 429 from the upstream, still so after retries.
    #[error("{provider} rate limited the request: {message}")]
    RateLimited {
        provider: String,
        message: String,
        retry_after: Option<Duration>,
    },
    /// 5xx from the upstream.
    #[error("{provider} failed ({status}): {message}")]
    Server {
        provider: String,
        status: StatusCode,
        message: String,
    },
    /// The per-request (or, for streams, time-to-first-chunk / idle)
    /// timeout elapsed.
    #[error("{provider} timed out ({phase}) after {} ms", after.as_millis())]
    Timeout {
        provider: String,
        after: Duration,
        phase: &'static str,
    },
    /// Connecting, sending, or reading the body failed (refused, reset…).
    #[error("{provider} connection failed: {message}")]
    Connect { provider: String, message: String },
    /// The upstream answered something we cannot read (malformed JSON,
    /// wrong shape, an error event inside a stream).
    #[error("{provider} sent an unreadable answer: {message}")]
    Protocol { provider: String, message: String },
    /// The stream ended before its terminator (`[DONE]`, `message_stop`).
    #[error("{provider} ended the stream before it was complete")]
    Truncated { provider: String },
    /// No route could be tried: every breaker open, providers unknown, or
    /// not supporting the operation.
    #[error("{message}")]
    Unavailable { message: String },
}

impl UpstreamError {
    /// For a 429: how long the upstream asked clients to wait.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            UpstreamError::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
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
                text[..text.floor_char_boundary(512)].to_string()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_become_variants_with_the_upstream_message() {
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
        assert!(
            matches!(&bad, UpstreamError::Client { status, kind: Some(k), .. }
                if *status == StatusCode::BAD_REQUEST && k == "invalid_request_error"),
            "{bad:?}"
        );
        assert!(bad.to_string().contains("bad temperature"));
        assert!(!bad.is_retryable());
        assert!(matches!(
            e(429, "slow down"),
            UpstreamError::RateLimited { .. }
        ));
        assert!(matches!(e(503, ""), UpstreamError::Server { .. }));
        assert!(e(503, "").is_retryable());
        let anthropic = e(
            529,
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        );
        assert!(anthropic.to_string().contains("Overloaded"));
        assert!(matches!(anthropic, UpstreamError::Server { .. }));
        let long = "é".repeat(600);
        match e(500, &long) {
            UpstreamError::Server { message, .. } => assert_eq!(message.len(), 512),
            other => panic!("{other:?}"),
        }
    }
}
