//! What can go wrong talking to upstreams. Which HTTP status each failure
//! becomes at the gateway is the server's decision (`server::error`).

use std::time::Duration;

use http::StatusCode;
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
        /// (Boxed strings keep the error small: it travels in every `Result`.)
        kind: Option<Box<str>>,
        code: Option<Box<str>>,
        /// The parameter the upstream named as the culprit, if it did.
        param: Option<Box<str>>,
    },
    /// 429 from the upstream, still so after retries.
    #[error("{provider} rate limited the request: {message}")]
    RateLimited {
        provider: String,
        message: String,
        retry_after: Option<Duration>,
    },
    /// 5xx from the upstream (529 is Anthropic's "overloaded"), or an
    /// error event saying the same inside a stream.
    #[error("{provider} failed ({}): {message}", status_text(*status))]
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

    /// The parameter a client error is about, when the upstream named it.
    pub fn param(&self) -> Option<&str> {
        match self {
            UpstreamError::Client { param, .. } => param.as_deref(),
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
        let ErrorFields {
            message,
            kind,
            code,
            param,
        } = error_fields(body);
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
                kind: kind.map(Into::into),
                code: code.map(Into::into),
                param: param.map(Into::into),
            },
            _ => UpstreamError::Server {
                provider,
                status,
                message,
            },
        }
    }

    /// A transport failure (connecting, sending, reading the body):
    /// `context` and the cause chain, since "client error (Connect)" alone
    /// hides whether the connection was refused, reset or failed TLS. A
    /// timeout anywhere in the chain (the 10 s connect timeout) is a
    /// [`UpstreamError::Timeout`]. hyper's errors never quote the URL.
    pub(crate) fn from_transport(
        provider: &str,
        context: &str,
        err: &(dyn std::error::Error + 'static),
        after: Duration,
    ) -> Self {
        let mut message = context.to_string();
        let mut source = Some(err);
        while let Some(s) = source {
            if is_timeout(s) {
                return UpstreamError::Timeout {
                    provider: provider.to_string(),
                    after,
                    phase: "request",
                };
            }
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

/// A timer fired inside the transport (what reqwest's `is_timeout` looked for).
fn is_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    if let Some(io) = e.downcast_ref::<std::io::Error>() {
        return io.kind() == std::io::ErrorKind::TimedOut;
    }
    e.downcast_ref::<hyper::Error>()
        .is_some_and(hyper::Error::is_timeout)
}

/// `503 Service Unavailable`, or the bare code for statuses without a
/// registered reason (`529`, not `529 <unknown status code>`).
fn status_text(status: StatusCode) -> String {
    match status.canonical_reason() {
        Some(reason) => format!("{} {reason}", status.as_u16()),
        None => status.as_u16().to_string(),
    }
}

/// The fields of an upstream error body the gateway passes on.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct ErrorFields {
    pub message: Option<String>,
    pub kind: Option<String>,
    pub code: Option<String>,
    pub param: Option<String>,
}

/// `error.message`, `error.type`, `error.code`, `error.param` from an
/// OpenAI (`{"error":{..}}`) or Anthropic (`{"type":"error","error":{..}}`) body.
pub(crate) fn error_fields(body: &[u8]) -> ErrorFields {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return ErrorFields::default();
    };
    let err = v.get("error").unwrap_or(&v);
    if let Some(s) = err.as_str() {
        return ErrorFields {
            message: Some(s.to_string()),
            ..ErrorFields::default()
        };
    }
    let field = |k: &str| match err.get(k) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    ErrorFields {
        message: field("message"),
        kind: field("type"),
        code: field("code"),
        param: field("param"),
    }
}

/// A route walk that ended without an answer: the error to report and what
/// was tried on the way (for the `x-sluice-*` headers of the error response).
/// Derefs to the [`UpstreamError`].
#[derive(Debug, Clone)]
pub struct Failure {
    pub error: UpstreamError,
    /// HTTP attempts across all routes.
    pub attempts: u32,
    /// The last route attempted; none when no route could be tried.
    pub provider: Option<String>,
    pub model: Option<String>,
    /// Wall time inside the providers layer.
    pub elapsed: Duration,
    /// The walk was cut short by the caller's deadline (see
    /// `Call::within`), not ended by an upstream's answer.
    pub deadline_exceeded: bool,
}

impl std::ops::Deref for Failure {
    type Target = UpstreamError;
    fn deref(&self) -> &UpstreamError {
        &self.error
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl std::error::Error for Failure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
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
                if *status == StatusCode::BAD_REQUEST && &**k == "invalid_request_error"),
            "{bad:?}"
        );
        assert_eq!(bad.param(), Some("temperature"), "the culprit is kept");
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
