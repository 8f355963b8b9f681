//! HTTP and SSE plumbing every upstream client shares: endpoint URLs,
//! static headers, sending with errors mapped to [`UpstreamError`], JSON
//! bodies, whole-call timeouts, and a response body as SSE events.

use std::time::Duration;

use tokio::time::Instant;

use bytes::Bytes;
use futures_util::stream::{BoxStream, StreamExt};
use http::Response;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde::Serialize;
use serde::de::DeserializeOwned;
use url::Url;

use super::config::{ProviderConfig, ProviderKind};
use super::redact::{base64, percent_decoded, url_for_log};
use super::retry::retry_after_from_headers;
use super::sse::{SseError, SseEvent, SseParser};
use super::{ProviderConfigError, Upstream, UpstreamError};

/// The upstream API paths Sluice calls, appended to `base-url`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    ChatCompletions,
    Embeddings,
    Messages,
}

impl Endpoint {
    pub(crate) const ALL: [Endpoint; 3] = [
        Endpoint::ChatCompletions,
        Endpoint::Embeddings,
        Endpoint::Messages,
    ];

    fn path(self) -> &'static str {
        match self {
            Endpoint::ChatCompletions => "/chat/completions",
            Endpoint::Embeddings => "/embeddings",
            Endpoint::Messages => "/messages",
        }
    }

    /// `base` (no trailing `/`) + this path + `query`, without userinfo
    /// (sent as `Authorization: Basic` instead, [`build_headers`]).
    pub(crate) fn url(
        self,
        base: &str,
        query: &[(String, String)],
    ) -> Result<Url, url::ParseError> {
        let mut url = Url::parse(&format!("{base}{}", self.path()))?;
        // Cannot fail on an http(s) URL, which has a host.
        let _ = url.set_username("");
        let _ = url.set_password(None);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        Ok(url)
    }
}

/// The request target for an [`Endpoint::url`], fragment left out.
pub(crate) fn request_uri(url: &Url) -> Result<http::Uri, http::uri::InvalidUri> {
    let mut url = url.clone();
    url.set_fragment(None);
    url.as_str().parse()
}

/// Auth and extra headers sent on every call to `cfg`'s upstream.
pub(crate) fn build_headers(cfg: &ProviderConfig) -> Result<HeaderMap, ProviderConfigError> {
    let mut h = HeaderMap::new();
    let err = |message: String| ProviderConfigError {
        provider: cfg.name.clone(),
        message,
    };
    let mut put = |name: &str, value: &str, sensitive: bool| {
        let n = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| err(format!("invalid header name `{name}`")))?;
        let mut v = HeaderValue::from_str(value)
            .map_err(|_| err(format!("invalid value for header `{name}`")))?;
        v.set_sensitive(sensitive);
        h.insert(n, v);
        Ok::<_, ProviderConfigError>(())
    };
    if cfg.kind == ProviderKind::Anthropic {
        put("anthropic-version", &cfg.anthropic_version, false)?;
    }
    if let Some(key) = cfg.api_key.as_deref().filter(|k| !k.is_empty()) {
        match (&cfg.api_key_header, cfg.kind) {
            (Some(header), _) => put(header, key, true)?,
            (None, ProviderKind::Openai) => put("authorization", &format!("Bearer {key}"), true)?,
            (None, ProviderKind::Anthropic) => put("x-api-key", key, true)?,
        }
    }
    for (k, v) in &cfg.headers {
        put(k, v, false)?;
    }
    // What reqwest added on its own, kept so upstreams see the same request:
    // the base URL's userinfo as Basic credentials (unless an
    // `authorization` is configured), `accept: */*`, and the JSON body's
    // content type.
    if let Ok(url) = Url::parse(&cfg.base_url)
        && (!url.username().is_empty() || url.password().is_some())
        && !h.contains_key(header::AUTHORIZATION)
    {
        let pair = format!(
            "{}:{}",
            percent_decoded(url.username()),
            percent_decoded(url.password().unwrap_or(""))
        );
        let mut v = HeaderValue::try_from(format!("Basic {}", base64(pair.as_bytes())))
            .map_err(|_| err("base-url: userinfo is not a valid header value".into()))?;
        v.set_sensitive(true);
        h.insert(header::AUTHORIZATION, v);
    }
    h.entry(header::ACCEPT)
        .or_insert(HeaderValue::from_static("*/*"));
    h.entry(header::CONTENT_TYPE)
        .or_insert(HeaderValue::from_static("application/json"));
    Ok(h)
}

/// POSTs `body` as JSON to `endpoint`; a non-2xx answer becomes the
/// matching error (its body read for the message, `Retry-After` kept for
/// 429s). A transport failure is logged with the URL, redacted
/// ([`url_for_log`]); the error itself never quotes the URL.
///
/// A redirect (3xx) is not followed: an LLM API has no reason to redirect
/// a POST, and following one would send the prompt and the provider's
/// credentials to wherever `Location` points. It is an upstream failure
/// (502 to the client, retried and failed over like a 5xx) whose message
/// says what happened; the log line names the target, redacted.
pub(crate) async fn send(
    up: &Upstream,
    endpoint: Endpoint,
    body: &impl Serialize,
) -> Result<Response<Incoming>, UpstreamError> {
    let started = std::time::Instant::now();
    let body = serde_json::to_vec(body).map_err(|e| UpstreamError::Protocol {
        provider: up.name.clone(),
        message: format!("cannot serialize the request: {e}"),
    })?;
    let mut req = up.request(endpoint, body);
    // W3C trace context on every attempt (see `telemetry::upstream_headers`).
    if let Some((parent, state)) = crate::telemetry::upstream_headers() {
        let h = req.headers_mut();
        let mut put = |name: &'static str, v: String| {
            // A value that is not a valid header (a client's odd
            // `tracestate`) is dropped, not worth failing the call for.
            if let Ok(v) = HeaderValue::try_from(v) {
                h.insert(HeaderName::from_static(name), v);
            }
        };
        put("traceparent", parent);
        if let Some(s) = state {
            put("tracestate", s);
        }
    }
    let resp = match up.send(req).await {
        Ok(resp) => resp,
        Err(e) => {
            let url = url_for_log(up.url(endpoint));
            let err = up.secrets.scrub_error(UpstreamError::from_transport(
                &up.name,
                "error sending request",
                &e,
                started.elapsed(),
            ));
            tracing::warn!(provider = %up.name, %url, error = %err, "upstream request failed");
            return Err(err);
        }
    };
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    if status.is_redirection() {
        let location = resp
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|l| up.url(endpoint).join(l).ok())
            .map(|u| url_for_log(&u))
            .unwrap_or_default();
        tracing::warn!(provider = %up.name, url = %url_for_log(up.url(endpoint)), %location, %status,
            "upstream redirected; not followed (point base-url at the final address)");
        return Err(UpstreamError::Server {
            provider: up.name.clone(),
            status,
            message: "redirected the request elsewhere; Sluice does not follow upstream \
                      redirects (set the provider's base-url to the final address)"
                .into(),
        });
    }
    tracing::debug!(provider = %up.name, url = %url_for_log(up.url(endpoint)), %status, "upstream refused");
    let retry_after = retry_after_from_headers(resp.headers());
    let body = body_prefix(resp.into_body(), ERROR_BODY_LIMIT).await;
    Err(UpstreamError::from_response(
        &up.name,
        status,
        &body,
        retry_after,
    ))
}

/// A stream request must be answered with an event stream: anything else
/// (an HTML error page behind a proxy, a JSON answer from a server that
/// ignores `stream`) is named here instead of surfacing later as a stream
/// that "ended before it was complete". A missing content type is let
/// through: some compatible servers omit it and send valid events.
pub(crate) fn expect_event_stream(
    up: &Upstream,
    resp: &Response<Incoming>,
) -> Result<(), UpstreamError> {
    let Some(value) = resp.headers().get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let text = String::from_utf8_lossy(value.as_bytes());
    let media = text.split(';').next().unwrap_or("").trim();
    if media.eq_ignore_ascii_case("text/event-stream") {
        return Ok(());
    }
    Err(UpstreamError::Protocol {
        provider: up.name.clone(),
        message: format!(
            "answered a stream request with content type `{text}`, not text/event-stream"
        ),
    })
}

/// How much of an error answer's body is read: its message is all that
/// is used (quoted up to 512 characters), so a huge or endless error body
/// costs no more than this.
const ERROR_BODY_LIMIT: usize = 64 * 1024;

/// The first `limit` bytes of `body` (less if it ends or fails first: a
/// body that cannot be read still leaves the status to report). The rest
/// is never read; the connection is then dropped, not reused.
async fn body_prefix(mut body: Incoming, limit: usize) -> Bytes {
    let mut buf = Vec::new();
    while buf.len() < limit {
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    let take = data.len().min(limit - buf.len());
                    buf.extend_from_slice(&data[..take]);
                }
            }
            Some(Err(_)) | None => break,
        }
    }
    Bytes::from(buf)
}

/// Reads and parses a JSON body of at most the provider's
/// `max-response-mb`; a larger body or unreadable JSON is a protocol
/// error (502).
pub(crate) async fn read_json<T: DeserializeOwned>(
    up: &Upstream,
    resp: Response<Incoming>,
) -> Result<T, UpstreamError> {
    let started = std::time::Instant::now();
    let limited = http_body_util::Limited::new(resp.into_body(), up.max_response);
    let body = limited.collect().await.map_err(|e| {
        if e.is::<http_body_util::LengthLimitError>() {
            return UpstreamError::Protocol {
                provider: up.name.clone(),
                message: format!(
                    "answer larger than {} MiB (the provider's max-response-mb)",
                    up.max_response / (1024 * 1024)
                ),
            };
        }
        UpstreamError::from_transport(
            &up.name,
            "error reading the response body",
            &*e,
            started.elapsed(),
        )
    })?;
    serde_json::from_slice(&body.to_bytes()).map_err(|e| UpstreamError::Protocol {
        provider: up.name.clone(),
        message: format!("malformed JSON body: {e}"),
    })
}

/// Bounds a whole non-streaming call.
pub(crate) async fn with_timeout<T>(
    up: &Upstream,
    timeout: Duration,
    call: impl Future<Output = Result<T, UpstreamError>>,
) -> Result<T, UpstreamError> {
    tokio::time::timeout(timeout, call)
        .await
        .unwrap_or_else(|_| {
            Err(UpstreamError::Timeout {
                provider: up.name.clone(),
                after: timeout,
                phase: "request",
            })
        })
}

/// How long a stream may be silent or last, and how big one event may be.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StreamLimits {
    /// Longest wait between two complete events.
    pub idle: Duration,
    /// Longest the whole stream may last, from when it was opened.
    pub max_duration: Duration,
    /// Largest single event in bytes.
    pub max_event: usize,
}

/// The response body as SSE events. Ends cleanly only on an event
/// boundary; a cut-off body, a read error, an oversized event, `idle`
/// without a complete event or a stream older than `max_duration` yields
/// one error and ends.
///
/// The idle timer counts complete events, not bytes: an upstream trickling
/// one byte a second never finishes an event and is cut off like a silent
/// one. It restarts after the consumer took the event, so time spent
/// downstream (guardrails, a slow client) does not count as upstream silence.
pub(crate) fn sse_events(
    provider: String,
    resp: Response<Incoming>,
    limits: StreamLimits,
) -> BoxStream<'static, Result<SseEvent, UpstreamError>> {
    let mut body = resp.into_body();
    async_stream::stream! {
        let end = Instant::now() + limits.max_duration;
        let mut idle_until = Instant::now() + limits.idle;
        let mut parser = SseParser::with_limit(limits.max_event);
        let mut out = Vec::new();
        loop {
            let deadline = idle_until.min(end);
            let next = match tokio::time::timeout_at(deadline, body.frame()).await {
                    Ok(n) => n,
                    Err(_) => {
                        let (after, phase) = if deadline == end {
                            (limits.max_duration, "stream duration")
                        } else {
                            (limits.idle, "stream idle")
                        };
                        yield Err(UpstreamError::Timeout { provider: provider.clone(), after, phase });
                        return;
                    }
                };
            match next {
                Some(Ok(frame)) => {
                    // Trailers carry nothing for the parser.
                    let Ok(bytes) = frame.into_data() else { continue };
                    if let Err(e) = parser.push(&bytes, &mut out) {
                        let message = match e {
                            SseError::TooLarge { limit } => format!(
                                "stream event larger than {} KiB (the provider's max-event-kb)",
                                limit / 1024
                            ),
                            SseError::Truncated => e.to_string(),
                        };
                        yield Err(UpstreamError::Protocol { provider: provider.clone(), message });
                        return;
                    }
                    if !out.is_empty() {
                        for ev in out.drain(..) {
                            yield Ok(ev);
                        }
                        idle_until = Instant::now() + limits.idle;
                    }
                }
                Some(Err(e)) => {
                    // The connection died mid-body: to the client this is a
                    // truncated answer, whatever the transport said.
                    tracing::debug!(%provider, error = %e, "stream body read failed");
                    yield Err(UpstreamError::Truncated { provider: provider.clone() });
                    return;
                }
                None => {
                    if parser.finish().is_err() {
                        yield Err(UpstreamError::Truncated { provider: provider.clone() });
                    }
                    return;
                }
            }
        }
    }
    .boxed()
}
