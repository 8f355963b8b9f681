//! The route walk: for each route in order, skip it at once if its breaker
//! is open, otherwise try it up to `max-attempts` times (backoff with full
//! jitter or `Retry-After`, each retry paid from the upstream's budget),
//! then fall back to the next route. Client errors end the walk: the next
//! route would refuse the same request. Every attempt's error is scrubbed
//! of the provider's secrets here, mid-stream errors included.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt};
use tower::retry::budget::Budget as _;
use tracing::Instrument as _;

use crate::telemetry;

use super::breaker::{Outcome as Health, Permit};
use super::{
    ChunkStream, Failure, Outcome, ProviderKind, Providers, RouteTarget, Upstream, UpstreamError,
};

/// Reports a call's outcome to the breaker exactly once, and `Neutral` if
/// the call's future was dropped (client went away): a half-open probe
/// must never stay "in flight" forever.
struct PermitGuard<'a> {
    up: &'a Upstream,
    permit: Option<Permit>,
}

impl PermitGuard<'_> {
    fn finish(mut self, outcome: Health) {
        if let Some(p) = self.permit.take() {
            self.up.breaker.record(p, outcome, Instant::now());
        }
    }
}

impl Drop for PermitGuard<'_> {
    fn drop(&mut self) {
        if let Some(p) = self.permit.take() {
            self.up.breaker.record(p, Health::Neutral, Instant::now());
        }
    }
}

/// `f`, or `None` if `deadline` passes first.
async fn bounded<F: Future>(deadline: Option<tokio::time::Instant>, f: F) -> Option<F::Output> {
    match deadline {
        Some(d) => tokio::time::timeout_at(d, f).await.ok(),
        None => Some(f.await),
    }
}

impl Providers {
    /// Try `call` along `routes` (see the module docs); `embeddings` skips
    /// upstreams without that API; `limit` bounds the whole walk.
    pub(crate) async fn walk<'a, T, F, Fut>(
        &self,
        routes: &'a [RouteTarget],
        embeddings: bool,
        limit: Option<Duration>,
        mut call: F,
    ) -> Result<Outcome<T>, Failure>
    where
        F: FnMut(Arc<Upstream>, &'a RouteTarget) -> Fut,
        Fut: Future<Output = Result<T, UpstreamError>> + 'a,
    {
        let started = Instant::now();
        let deadline = limit.map(|l| tokio::time::Instant::now() + l);
        let mut attempts = 0u32;
        let mut last_err: Option<UpstreamError> = None;
        let mut tried: Option<&RouteTarget> = None;
        let mut skipped: Vec<String> = Vec::new();
        // The route just left, counted as a fallback once the next is tried.
        let mut left: Option<&Upstream> = None;
        let failure = |error, attempts, tried: Option<&RouteTarget>, deadline_exceeded| Failure {
            error,
            attempts,
            provider: tried.map(|r| r.provider.clone()),
            model: tried.map(|r| r.model.clone()),
            elapsed: started.elapsed(),
            deadline_exceeded,
        };
        let expired = |route: &RouteTarget| UpstreamError::Timeout {
            provider: route.provider.clone(),
            after: limit.unwrap_or_default(),
            phase: "gateway deadline",
        };
        for route in routes {
            let Some(up) = self.upstreams.get(&route.provider) else {
                tracing::warn!(provider = %route.provider, "route names an unknown provider");
                skipped.push(format!("{} (unknown provider)", route.provider));
                continue;
            };
            if embeddings && up.kind == ProviderKind::Anthropic {
                skipped.push(format!("{} (no embeddings API)", route.provider));
                continue;
            }
            if let Some(prev) = left.take() {
                prev.fallbacks.fetch_add(1, Ordering::Relaxed);
            }
            up.budget.deposit();
            let mut tries = 0u32;
            loop {
                let Some(permit) = up.breaker.try_acquire(Instant::now()) else {
                    tracing::debug!(provider = %up.name, "circuit open, skipping route");
                    skipped.push(format!("{} (circuit open)", up.name));
                    break;
                };
                let guard = PermitGuard {
                    up,
                    permit: Some(permit),
                };
                tries += 1;
                attempts += 1;
                tried = Some(route);
                // The attempt's span is current inside `call`: its id is
                // the `traceparent` the upstream gets (http::send).
                let span = telemetry::spans::upstream(
                    &route.provider,
                    &route.model,
                    attempts,
                    tries,
                    attempts > tries,
                );
                let attempt = call(up.clone(), route).instrument(span.clone());
                let Some(result) = bounded(deadline, attempt).await else {
                    span.record("error.type", "gateway_deadline");
                    span.record("otel.status_code", "ERROR");
                    return Err(failure(expired(route), attempts, tried, true));
                };
                record_attempt(&span, result.as_ref().err());
                let err = match result {
                    Ok(value) => {
                        guard.finish(Health::Success);
                        return Ok(Outcome {
                            value,
                            provider: route.provider.clone(),
                            model: route.model.clone(),
                            attempts,
                            elapsed: started.elapsed(),
                        });
                    }
                    Err(e) => up.secrets.scrub_error(e),
                };
                guard.finish(err.breaker_outcome());
                // An upstream's error text may echo the prompt back.
                tracing::debug!(provider = %up.name, attempt = tries, error = %crate::reqlog::redacted(&err), "upstream attempt failed");
                if !err.is_retryable() {
                    return Err(failure(err, attempts, tried, false));
                }
                let delay = retry_delay(up, tries, &err);
                last_err = Some(err);
                let Some(delay) = delay else { break };
                if !up.budget.withdraw() {
                    tracing::warn!(provider = %up.name, "retry budget exhausted, not retrying");
                    break;
                }
                if bounded(deadline, tokio::time::sleep(delay)).await.is_none() {
                    return Err(failure(expired(route), attempts, tried, true));
                }
                up.retries.fetch_add(1, Ordering::Relaxed);
            }
            left = Some(up.as_ref());
        }
        let error = last_err.unwrap_or_else(|| UpstreamError::Unavailable {
            message: if skipped.is_empty() {
                "no route to try".to_string()
            } else {
                format!("no upstream available: {}", skipped.join(", "))
            },
        });
        Err(failure(error, attempts, tried, false))
    }
}

/// The upstream span's outcome: the HTTP status when there was one, else
/// the kind of failure.
fn record_attempt(span: &tracing::Span, err: Option<&UpstreamError>) {
    if span.is_disabled() {
        return;
    }
    let Some(err) = err else {
        span.record("http.response.status_code", 200);
        return;
    };
    span.record("otel.status_code", "ERROR");
    let kind = match err {
        UpstreamError::Client { status, .. } | UpstreamError::Server { status, .. } => {
            span.record("http.response.status_code", status.as_u16());
            if status.is_server_error() {
                "server"
            } else {
                "client"
            }
        }
        UpstreamError::RateLimited { .. } => {
            span.record("http.response.status_code", 429);
            "rate_limited"
        }
        UpstreamError::Timeout { .. } => "timeout",
        UpstreamError::Connect { .. } => "connect",
        UpstreamError::Protocol { .. } => "protocol",
        UpstreamError::Truncated { .. } => "truncated",
        UpstreamError::Unavailable { .. } => "unavailable",
    };
    span.record("error.type", kind);
}

/// How long to wait before retrying the same route, or `None` to move on.
fn retry_delay(up: &Upstream, tries: u32, err: &UpstreamError) -> Option<Duration> {
    if tries >= up.retry.max_attempts {
        return None;
    }
    match err.retry_after() {
        Some(wait) if wait > Duration::from_millis(up.retry.max_retry_after_ms) => {
            tracing::debug!(provider = %up.name, wait_ms = wait.as_millis() as u64, "Retry-After beyond max, not waiting");
            None
        }
        Some(wait) => Some(wait),
        None => Some(up.retry.backoff(tries)),
    }
}

/// Opens a stream and waits for its first chunk, all within `ttfb`. On
/// success the chunk is put back in front of the rest: from here on the
/// route is committed, and later errors are scrubbed on their way out.
pub(crate) async fn until_first_chunk<Open>(
    up: &Upstream,
    open: Open,
    ttfb: Duration,
) -> Result<ChunkStream, UpstreamError>
where
    Open: Future<Output = Result<ChunkStream, UpstreamError>>,
{
    let provider = up.name.as_str();
    let secrets = up.secrets.clone();
    let first = async {
        let mut s = open.await?;
        match s.next().await {
            Some(Ok(chunk)) => Ok(stream::once(async { Ok(chunk) })
                .chain(s)
                .map(move |item| item.map_err(|e| secrets.scrub_error(e)))
                .boxed()),
            Some(Err(e)) => Err(e),
            None => Err(UpstreamError::Truncated {
                provider: provider.to_string(),
            }),
        }
    };
    match tokio::time::timeout(ttfb, first).await {
        Ok(r) => r,
        Err(_) => Err(UpstreamError::Timeout {
            provider: provider.to_string(),
            after: ttfb,
            phase: "first chunk",
        }),
    }
}
