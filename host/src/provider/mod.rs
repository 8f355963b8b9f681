//! Upstream LLM providers: OpenAI-compatible and Anthropic clients over one
//! pooled HTTP client, with per-route timeouts, retries (backoff, jitter,
//! `Retry-After`, budget), fallback along the route list and a circuit
//! breaker per upstream.
//!
//! The gateway hands [`Providers`] an ordered list of [`RouteTarget`]s and a
//! request in OpenAI's wire format; it gets back an [`Outcome`] (the answer
//! and which route produced it), or one [`UpstreamError`].
//!
//! - [`config`]: `[[providers]]`, `[retry]`, `[breaker]` and their checks.
//! - `fallback`: the one route walk (breaker, retries, fallback).
//! - `client`: the HTTP client (TLS, pool, proxies from the environment).
//! - `http`: HTTP/SSE plumbing shared by the clients.
//! - `redact`: keeping provider secrets out of errors and logs.
//! - [`openai`], [`anthropic`]: the wire protocols.

pub mod anthropic;
pub mod breaker;
mod client;
pub mod config;
mod error;
mod fallback;
mod http;
pub mod openai;
mod redact;
pub mod retry;
pub mod sse;

use std::collections::HashMap;
use std::future::IntoFuture;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ::http::header::{HeaderMap, PROXY_AUTHORIZATION};
use ::http::{Method, Request, Response, Uri};
use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use http_body_util::Full;
use hyper::body::Incoming;
use tower::retry::budget::TpsBudget;

use crate::openai::{
    ChatChunk, ChatCompletion, ChatRequest, EmbeddingsRequest, EmbeddingsResponse,
};

pub use breaker::{BreakerMetrics, BreakerState};
pub use client::Proxies;
pub use config::{BreakerConfig, ProviderConfig, ProviderKind, RetryConfig};
pub use error::{Failure, UpstreamError};
pub use redact::REDACTED;

use breaker::Breaker;
use client::HttpClient;
use http::{Endpoint, StreamLimits};
use redact::Secrets;

/// One step of a route list: which provider, which upstream model name, and
/// optional timeout overrides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteTarget {
    pub provider: String,
    /// The model name the upstream knows (not the gateway's alias).
    pub model: String,
    pub timeout: Option<Duration>,
    pub ttfb_timeout: Option<Duration>,
    /// Streams only: overrides the provider's `max-stream-duration-ms`.
    pub max_stream_duration: Option<Duration>,
}

impl RouteTarget {
    pub fn new(provider: &str, model: &str) -> Self {
        Self {
            provider: provider.into(),
            model: model.into(),
            timeout: None,
            ttfb_timeout: None,
            max_stream_duration: None,
        }
    }
}

/// A successful call along a route list.
pub struct Outcome<T> {
    pub value: T,
    /// The route that answered.
    pub provider: String,
    pub model: String,
    /// HTTP attempts across all routes, the successful one included.
    pub attempts: u32,
    /// Wall time inside the providers layer (attempts, backoff sleeps and
    /// fallback included): the gateway's overhead is total minus this. For
    /// a stream, until its first chunk.
    pub elapsed: Duration,
}

impl<T> std::fmt::Debug for Outcome<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outcome")
            .field("provider", &self.provider)
            .field("model", &self.model)
            .field("attempts", &self.attempts)
            .field("elapsed", &self.elapsed)
            .finish_non_exhaustive()
    }
}

/// Chunks in OpenAI's shape. Ends after the upstream's terminator, or with
/// one `Err` (truncation, idle timeout, upstream error event).
pub type ChunkStream = BoxStream<'static, Result<ChatChunk, UpstreamError>>;

type Run<'a, T> =
    Box<dyn FnOnce(Option<Duration>) -> BoxFuture<'a, Result<Outcome<T>, Failure>> + Send + 'a>;

/// One call along a route list, run by `.await`. [`Call::within`] bounds
/// the whole walk (attempts, backoff, fallback; for a stream, until its
/// first chunk); the [`Failure`] then still says how many attempts were made.
#[must_use = "a call does nothing until awaited"]
pub struct Call<'a, T> {
    run: Run<'a, T>,
    limit: Option<Duration>,
}

impl<'a, T> Call<'a, T> {
    fn new(
        run: impl FnOnce(Option<Duration>) -> BoxFuture<'a, Result<Outcome<T>, Failure>> + Send + 'a,
    ) -> Self {
        Call {
            run: Box::new(run),
            limit: None,
        }
    }

    /// Give up after `limit` (`Failure::deadline_exceeded`).
    pub fn within(mut self, limit: Duration) -> Self {
        self.limit = Some(limit);
        self
    }
}

impl<'a, T: 'a> IntoFuture for Call<'a, T> {
    type Output = Result<Outcome<T>, Failure>;
    type IntoFuture = BoxFuture<'a, Self::Output>;

    fn into_future(self) -> Self::IntoFuture {
        (self.run)(self.limit)
    }
}

/// Providers that cannot be built (only what config validation cannot
/// rule out: the HTTP client, a duplicate name in a hand-built list).
#[derive(Debug, thiserror::Error)]
#[error("provider `{provider}`: {message}")]
pub struct ProviderConfigError {
    pub provider: String,
    pub message: String,
}

/// One configured upstream with its resilience state.
pub(crate) struct Upstream {
    pub(crate) name: String,
    pub(crate) kind: ProviderKind,
    client: HttpClient,
    /// Whether a serving thread's own client ([`use_thread_client`], built
    /// with the environment's proxies) may stand in for `client`: not when
    /// these providers were given other proxies.
    thread_client: bool,
    /// Every [`Endpoint`]'s URL (base, path and `query`), parsed once, for
    /// log lines and redirects.
    urls: [url::Url; Endpoint::ALL.len()],
    /// The same as request targets, parsed once: parsing per request was
    /// ~3 % of a proxied request's instructions.
    uris: [Uri; Endpoint::ALL.len()],
    /// Sent on every request (auth, extra headers, content type and, for an
    /// `http` upstream behind an authenticating proxy, the proxy's
    /// credentials).
    headers: HeaderMap,
    /// Every secret value of this provider's config, scrubbed from errors.
    pub(crate) secrets: Arc<Secrets>,
    pub(crate) timeout: Duration,
    pub(crate) ttfb_timeout: Duration,
    pub(crate) max_stream_duration: Duration,
    /// Largest accepted stream event, in bytes.
    pub(crate) max_event: usize,
    /// Largest accepted non-streamed answer, in bytes.
    pub(crate) max_response: usize,
    pub(crate) default_max_tokens: u32,
    pub(crate) retry: RetryConfig,
    /// Retries allowed as a share of recent requests (tower's `TpsBudget`).
    pub(crate) budget: TpsBudget,
    pub(crate) breaker: Breaker,
    /// Attempts on this route after its first, per walk.
    pub(crate) retries: AtomicU64,
    /// Walks that left this route for the next one (failed or open).
    pub(crate) fallbacks: AtomicU64,
}

impl Upstream {
    /// A POST of `body` to `endpoint` with this upstream's headers.
    pub(crate) fn request(&self, endpoint: Endpoint, body: Vec<u8>) -> Request<Full<Bytes>> {
        let mut req = Request::new(Full::new(Bytes::from(body)));
        *req.method_mut() = Method::POST;
        *req.uri_mut() = self.uris[endpoint as usize].clone();
        *req.headers_mut() = self.headers.clone();
        req
    }

    /// Sends `req` on the serving thread's client if it has one, else on
    /// the shared one.
    pub(crate) async fn send(
        &self,
        req: Request<Full<Bytes>>,
    ) -> Result<Response<Incoming>, hyper_util::client::legacy::Error> {
        // The request future owns what it needs: no client clone.
        let pending = THREAD_CLIENT.with(|c| match c.get() {
            Some(own) if self.thread_client => own.request(req),
            _ => self.client.request(req),
        });
        pending.await
    }

    /// `endpoint`'s URL (for logs; it may carry secrets in its query).
    pub(crate) fn url(&self, endpoint: Endpoint) -> &url::Url {
        &self.urls[endpoint as usize]
    }
}

thread_local! {
    /// The upstream client of a serving thread ([`use_thread_client`]).
    static THREAD_CLIENT: std::cell::OnceCell<HttpClient> = const { std::cell::OnceCell::new() };
}

/// Give the calling thread an upstream client (and so a connection pool)
/// of its own, used for every upstream request made on it from now on.
/// For the threads of thread-per-core serving (`server::threads`): a
/// connection's task runs on the runtime that opened it, so with a shared
/// pool a request could find a connection owned by another thread and
/// every read and write would cross threads. All upstreams share one
/// client's settings, so one client per thread serves every provider.
pub fn use_thread_client() -> Result<(), ProviderConfigError> {
    let client = client::build(Proxies::from_env())?;
    THREAD_CLIENT.with(|c| {
        let _ = c.set(client);
    });
    Ok(())
}

/// All configured upstreams. Cheap to share behind an `Arc`.
pub struct Providers {
    upstreams: HashMap<String, Arc<Upstream>>,
    /// Config order, for stable listings.
    order: Vec<String>,
}

impl Providers {
    /// Build the clients. `configs`, `retry` and `breaker` are expected to
    /// have passed config validation ([`ProviderConfig::problems`]); a value
    /// that did not is still refused here, never half-used.
    pub fn new(
        configs: &[ProviderConfig],
        retry: &RetryConfig,
        breaker: &BreakerConfig,
    ) -> Result<Self, ProviderConfigError> {
        Self::with_proxies(configs, retry, breaker, Proxies::from_env())
    }

    /// [`Providers::new`] with explicit egress proxies instead of the
    /// environment's.
    pub fn with_proxies(
        configs: &[ProviderConfig],
        retry: &RetryConfig,
        breaker: &BreakerConfig,
        proxies: Proxies,
    ) -> Result<Self, ProviderConfigError> {
        let client = client::build(proxies.clone())?;
        let now = std::time::Instant::now();
        let mut upstreams = HashMap::new();
        let mut order = Vec::new();
        for cfg in configs {
            let err = |message: String| ProviderConfigError {
                provider: cfg.name.clone(),
                message,
            };
            if upstreams.contains_key(&cfg.name) {
                return Err(err("defined twice".into()));
            }
            let headers = http::build_headers(cfg)?;
            let base_url = cfg.base_url.trim_end_matches('/');
            let query: Vec<_> = cfg.query.clone().into_iter().collect();
            let url = |e: Endpoint| {
                e.url(base_url, &query)
                    .map_err(|e| err(format!("base-url `{}`: {e}", cfg.base_url)))
            };
            let urls = [
                url(Endpoint::ChatCompletions)?,
                url(Endpoint::Embeddings)?,
                url(Endpoint::Messages)?,
            ];
            let uris = [0, 1, 2].map(|i| http::request_uri(&urls[i]));
            let [Ok(a), Ok(b), Ok(c)] = uris else {
                return Err(err(format!(
                    "base-url `{}` is not a valid request target",
                    cfg.base_url
                )));
            };
            let uris = [a, b, c];
            let mut headers = headers;
            // Scheme and host decide the proxy, the same for every endpoint.
            if let Some(auth) = proxies.http_auth(&uris[0]) {
                headers.entry(PROXY_AUTHORIZATION).or_insert(auth);
            }
            let retry = cfg.retry.clone().unwrap_or_else(|| retry.clone());
            let breaker_cfg = cfg.breaker.clone().unwrap_or_else(|| breaker.clone());
            let up = Upstream {
                name: cfg.name.clone(),
                kind: cfg.kind,
                client: client.clone(),
                thread_client: proxies.is_from_env(),
                urls,
                uris,
                headers,
                secrets: Arc::new(Secrets::of(cfg)),
                timeout: Duration::from_millis(cfg.timeout_ms),
                ttfb_timeout: Duration::from_millis(cfg.ttfb_timeout_ms),
                max_stream_duration: Duration::from_millis(cfg.max_stream_duration_ms),
                max_event: cfg.max_event_kb.saturating_mul(1024),
                max_response: cfg.max_response_mb.saturating_mul(1024 * 1024),
                default_max_tokens: cfg.default_max_tokens,
                budget: retry.budget(),
                retry,
                breaker: Breaker::new(cfg.name.clone(), breaker_cfg, now),
                retries: AtomicU64::new(0),
                fallbacks: AtomicU64::new(0),
            };
            order.push(cfg.name.clone());
            upstreams.insert(cfg.name.clone(), Arc::new(up));
        }
        Ok(Self { upstreams, order })
    }

    /// Non-streaming chat along `routes`, first success wins.
    pub fn chat<'a>(
        &'a self,
        routes: &'a [RouteTarget],
        req: &'a ChatRequest,
    ) -> Call<'a, ChatCompletion> {
        Call::new(move |limit| {
            Box::pin(
                self.walk(routes, false, limit, move |up, route| async move {
                    let timeout = route.timeout.unwrap_or(up.timeout);
                    match up.kind {
                        ProviderKind::Openai => openai::chat(&up, &route.model, req, timeout).await,
                        ProviderKind::Anthropic => {
                            anthropic::chat(&up, &route.model, req, timeout).await
                        }
                    }
                }),
            )
        })
    }

    /// Streaming chat along `routes`. Retries and fallback happen only until
    /// a route delivers its first chunk; after that, errors end the stream.
    pub fn chat_stream<'a>(
        &'a self,
        routes: &'a [RouteTarget],
        req: &'a ChatRequest,
    ) -> Call<'a, ChunkStream> {
        Call::new(move |limit| {
            Box::pin(
                self.walk(routes, false, limit, move |up, route| async move {
                    let limits = StreamLimits {
                        idle: route.timeout.unwrap_or(up.timeout),
                        max_duration: route.max_stream_duration.unwrap_or(up.max_stream_duration),
                        max_event: up.max_event,
                    };
                    let ttfb = route.ttfb_timeout.unwrap_or(up.ttfb_timeout);
                    let open = async {
                        match up.kind {
                            ProviderKind::Openai => {
                                openai::open_stream(&up, &route.model, req, limits).await
                            }
                            ProviderKind::Anthropic => {
                                anthropic::open_stream(&up, &route.model, req, limits).await
                            }
                        }
                    };
                    fallback::until_first_chunk(&up, open, ttfb).await
                }),
            )
        })
    }

    /// Embeddings along `routes` (Anthropic routes are skipped: no such API).
    pub fn embeddings<'a>(
        &'a self,
        routes: &'a [RouteTarget],
        req: &'a EmbeddingsRequest,
    ) -> Call<'a, EmbeddingsResponse> {
        Call::new(move |limit| {
            Box::pin(self.walk(routes, true, limit, move |up, route| async move {
                let timeout = route.timeout.unwrap_or(up.timeout);
                openai::embeddings(&up, &route.model, req, timeout).await
            }))
        })
    }

    pub fn has(&self, provider: &str) -> bool {
        self.upstreams.contains_key(provider)
    }

    /// The kind of a configured provider.
    pub fn kind(&self, provider: &str) -> Option<ProviderKind> {
        self.upstreams.get(provider).map(|u| u.kind)
    }

    /// Each provider's breaker state, in config order.
    pub fn breaker_states(&self) -> Vec<(String, BreakerState)> {
        let now = std::time::Instant::now();
        self.order
            .iter()
            .map(|n| (n.clone(), self.upstreams[n].breaker.state(now)))
            .collect()
    }

    /// Each provider's `(retries, fallbacks away from it)`, in config order
    /// (for metrics export).
    pub fn walk_counts(&self) -> Vec<(String, u64, u64)> {
        self.order
            .iter()
            .map(|n| {
                let up = &self.upstreams[n];
                let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
                (n.clone(), get(&up.retries), get(&up.fallbacks))
            })
            .collect()
    }

    /// Each provider's breaker transition counters, in config order (for
    /// metrics export).
    pub fn breaker_metrics(&self) -> Vec<(String, BreakerMetrics)> {
        self.order
            .iter()
            .map(|n| (n.clone(), self.upstreams[n].breaker.metrics()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_urls_are_parsed_once_with_the_query() {
        let q = vec![("api-version".to_string(), "2024-10-21".to_string())];
        let base = "https://x.openai.azure.com/openai/deployments/gpt";
        assert_eq!(
            Endpoint::ChatCompletions.url(base, &q).unwrap().as_str(),
            "https://x.openai.azure.com/openai/deployments/gpt/chat/completions?api-version=2024-10-21"
        );
        assert_eq!(
            Endpoint::Messages
                .url("http://h:1/v1", &[])
                .unwrap()
                .as_str(),
            "http://h:1/v1/messages"
        );
    }

    #[test]
    fn provider_config_uses_kebab_case_and_defaults() {
        let cfg: ProviderConfig = toml::from_str(
            r#"
            name = "azure"
            base-url = "https://x.openai.azure.com/openai/deployments/gpt"
            api-key = "k"
            api-key-header = "api-key"
            query = { api-version = "2024-10-21" }
            retry = { max-attempts = 1 }
            "#,
        )
        .unwrap();
        assert_eq!(cfg.kind, ProviderKind::Openai);
        assert_eq!(cfg.timeout_ms, 60_000);
        assert_eq!(cfg.retry.as_ref().unwrap().max_attempts, 1);
        assert_eq!(cfg.retry.as_ref().unwrap().initial_backoff_ms, 100);
        let h = http::build_headers(&cfg).unwrap();
        assert_eq!(h["api-key"], "k");
        assert!(h.get("authorization").is_none());
        let bad = toml::from_str::<ProviderConfig>("name='a'\nbase-url='http://x'\ntimeout=1");
        assert!(bad.is_err(), "unknown keys are refused");
    }

    #[test]
    fn invalid_providers_are_named_by_their_checks() {
        let mut a = ProviderConfig::new("a", ProviderKind::Openai, "ftp://x");
        a.headers.insert("bad header".into(), "v".into());
        a.retry = Some(RetryConfig {
            max_attempts: 0,
            ..RetryConfig::default()
        });
        let keys: Vec<&str> = a.problems().iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, ["base-url", "headers", "retry"]);
        a = ProviderConfig::new("a", ProviderKind::Openai, "http://x/v1");
        assert!(a.problems().is_empty());
        let dup = Providers::new(
            &[a.clone(), a],
            &RetryConfig::default(),
            &BreakerConfig::default(),
        );
        assert!(dup.err().unwrap().to_string().contains("twice"));
    }
}
