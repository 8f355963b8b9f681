//! Upstream LLM providers: OpenAI-compatible and Anthropic clients over one
//! pooled HTTP client, with per-route timeouts, retries (backoff, jitter,
//! `Retry-After`, budget), fallback along the route list and a circuit
//! breaker per upstream.
//!
//! The gateway hands [`Providers`] an ordered list of [`RouteTarget`]s and a
//! request in OpenAI's wire format; it gets back an OpenAI-shaped answer and
//! which route produced it, or one [`UpstreamError`] that knows its HTTP
//! status.

pub mod anthropic;
pub mod breaker;
mod error;
mod fallback;
pub mod openai;
pub mod retry;
pub mod sse;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::BoxStream;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;

use crate::openai::{
    ChatChunk, ChatCompletion, ChatRequest, EmbeddingsRequest, EmbeddingsResponse,
};

pub use breaker::{BreakerConfig, BreakerMetrics, BreakerState};
pub use error::UpstreamError;
pub use retry::RetryConfig;

use breaker::Breaker;
use retry::RetryBudget;

/// Which wire protocol an upstream speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ProviderKind {
    /// OpenAI's API and compatibles (vLLM, Ollama, LM Studio, Azure OpenAI…).
    #[default]
    Openai,
    /// Anthropic's Messages API; requests and answers are translated.
    Anthropic,
}

/// One `[[providers]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ProviderConfig {
    /// Name routes refer to. Required, unique.
    pub name: String,
    /// `openai` (default) or `anthropic`.
    #[serde(default)]
    pub kind: ProviderKind,
    /// API root including its path prefix, e.g. `https://api.openai.com/v1`,
    /// `http://localhost:11434/v1`, `https://api.anthropic.com/v1`, or an
    /// Azure deployment URL. Endpoints (`/chat/completions`, `/embeddings`,
    /// `/messages`) are appended. Required.
    pub base_url: String,
    /// Secret, usually `"${OPENAI_API_KEY}"` (interpolated by the config
    /// loader). Sent as `Authorization: Bearer` (OpenAI) or `x-api-key`
    /// (Anthropic) unless `api-key-header` says otherwise. Default: none.
    #[serde(default)]
    pub api_key: Option<String>,
    /// Header that carries the key verbatim instead of the default, e.g.
    /// `api-key` for Azure OpenAI. Default: none.
    #[serde(default)]
    pub api_key_header: Option<String>,
    /// Query parameters added to every call, e.g. `{ api-version = "2024-10-21" }`
    /// for Azure. Default: none.
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    /// Whole-request timeout for non-streaming calls; for streams, the
    /// longest silence between two chunks once the stream has started.
    /// Routes may override it. Default `60000` ms.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Streams only: longest wait from sending the request to the first
    /// chunk. Retries and fallback happen only before the first chunk, so
    /// this bounds how long a dead upstream can stall a stream. Routes may
    /// override it. Default `10000` ms.
    #[serde(default = "default_ttfb_timeout_ms")]
    pub ttfb_timeout_ms: u64,
    /// Extra headers on every call (e.g. `OpenAI-Organization`). Default: none.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Anthropic only: the `anthropic-version` header. Default `"2023-06-01"`.
    #[serde(default = "default_anthropic_version")]
    pub anthropic_version: String,
    /// Anthropic only: `max_tokens` when the client sent none (Anthropic
    /// requires it). Default `4096`.
    #[serde(default = "default_max_tokens")]
    pub default_max_tokens: u32,
    /// Overrides the global `[retry]` table for this provider. Default: none.
    #[serde(default)]
    pub retry: Option<RetryConfig>,
    /// Overrides the global `[breaker]` table for this provider. Default: none.
    #[serde(default)]
    pub breaker: Option<BreakerConfig>,
}

fn default_timeout_ms() -> u64 {
    60_000
}
fn default_ttfb_timeout_ms() -> u64 {
    10_000
}
fn default_anthropic_version() -> String {
    "2023-06-01".into()
}
fn default_max_tokens() -> u32 {
    4096
}

impl ProviderConfig {
    /// A provider with every optional setting at its default.
    pub fn new(name: &str, kind: ProviderKind, base_url: &str) -> Self {
        Self {
            name: name.into(),
            kind,
            base_url: base_url.into(),
            api_key: None,
            api_key_header: None,
            query: BTreeMap::new(),
            timeout_ms: default_timeout_ms(),
            ttfb_timeout_ms: default_ttfb_timeout_ms(),
            headers: BTreeMap::new(),
            anthropic_version: default_anthropic_version(),
            default_max_tokens: default_max_tokens(),
            retry: None,
            breaker: None,
        }
    }
}

/// One step of a route list: which provider, which upstream model name, and
/// optional timeout overrides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteTarget {
    pub provider: String,
    /// The model name the upstream knows (not the gateway's alias).
    pub model: String,
    pub timeout: Option<Duration>,
    pub ttfb_timeout: Option<Duration>,
}

impl RouteTarget {
    pub fn new(provider: &str, model: &str) -> Self {
        Self {
            provider: provider.into(),
            model: model.into(),
            timeout: None,
            ttfb_timeout: None,
        }
    }
}

/// A completed non-streaming chat call.
#[derive(Debug, Clone)]
pub struct ChatOutcome {
    /// The route that answered.
    pub provider: String,
    pub model: String,
    /// HTTP attempts across all routes, the successful one included.
    pub attempts: u32,
    /// Wall time inside the providers layer (attempts, backoff sleeps and
    /// fallback included): the gateway's overhead is total minus this.
    pub upstream_time: Duration,
    pub completion: ChatCompletion,
}

/// A started stream: the first chunk has arrived, so the route is final.
pub struct StreamOutcome {
    pub provider: String,
    pub model: String,
    pub attempts: u32,
    /// Time from the first attempt to the first chunk.
    pub ttfb: Duration,
    /// Chunks in OpenAI's shape. Ends after the upstream's terminator, or
    /// with one `Err` (truncation, idle timeout, upstream error event).
    pub stream: BoxStream<'static, Result<ChatChunk, UpstreamError>>,
}

impl std::fmt::Debug for StreamOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamOutcome")
            .field("provider", &self.provider)
            .field("model", &self.model)
            .field("attempts", &self.attempts)
            .field("ttfb", &self.ttfb)
            .finish_non_exhaustive()
    }
}

/// A completed embeddings call.
#[derive(Debug, Clone)]
pub struct EmbeddingsOutcome {
    pub provider: String,
    pub model: String,
    pub attempts: u32,
    pub upstream_time: Duration,
    pub response: EmbeddingsResponse,
}

/// Invalid provider settings (bad header names, duplicate names…).
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
    pub(crate) client: reqwest::Client,
    /// Every [`Endpoint`]'s URL (base, path and `query`), parsed once:
    /// parsing it per request was ~3 % of a proxied request's instructions.
    urls: [reqwest::Url; Endpoint::ALL.len()],
    headers: HeaderMap,
    pub(crate) timeout: Duration,
    pub(crate) ttfb_timeout: Duration,
    pub(crate) default_max_tokens: u32,
    pub(crate) retry: RetryConfig,
    pub(crate) budget: RetryBudget,
    pub(crate) breaker: Breaker,
}

/// The upstream API paths Sluice calls, appended to `base-url`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    ChatCompletions,
    Embeddings,
    Messages,
}

impl Endpoint {
    const ALL: [Endpoint; 3] = [
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

    /// `base` (no trailing `/`) + this path + `query`.
    fn url(self, base: &str, query: &[(String, String)]) -> Result<reqwest::Url, String> {
        let mut url = reqwest::Url::parse(&format!("{base}{}", self.path()))
            .map_err(|e| format!("base-url `{base}`: {e}"))?;
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        Ok(url)
    }
}

impl Upstream {
    /// A POST to `endpoint` with auth and extra headers.
    pub(crate) fn post(&self, endpoint: Endpoint) -> reqwest::RequestBuilder {
        self.client
            .post(self.urls[endpoint as usize].clone())
            .headers(self.headers.clone())
    }
}

/// All configured upstreams. Cheap to share behind an `Arc`.
pub struct Providers {
    upstreams: HashMap<String, Arc<Upstream>>,
    /// Config order, for stable listings.
    order: Vec<String>,
}

impl Providers {
    pub fn new(
        configs: &[ProviderConfig],
        retry: &RetryConfig,
        breaker: &BreakerConfig,
    ) -> Result<Self, ProviderConfigError> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(256)
            .tcp_nodelay(true)
            .build()
            .map_err(|e| ProviderConfigError {
                provider: String::new(),
                message: format!("cannot build the HTTP client: {e}"),
            })?;
        let now = Instant::now();
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
            let base = reqwest::Url::parse(&cfg.base_url)
                .map_err(|e| err(format!("base-url `{}`: {e}", cfg.base_url)))?;
            if !matches!(base.scheme(), "http" | "https") {
                return Err(err(format!("base-url `{}` must be http(s)", cfg.base_url)));
            }
            let headers = build_headers(cfg).map_err(err)?;
            let base_url = cfg.base_url.trim_end_matches('/');
            let query: Vec<_> = cfg.query.clone().into_iter().collect();
            let url = |e: Endpoint| e.url(base_url, &query).map_err(err);
            let urls = [
                url(Endpoint::ChatCompletions)?,
                url(Endpoint::Embeddings)?,
                url(Endpoint::Messages)?,
            ];
            let retry = cfg.retry.clone().unwrap_or_else(|| retry.clone());
            let breaker_cfg = cfg.breaker.clone().unwrap_or_else(|| breaker.clone());
            let problems = retry.problems();
            if !problems.is_empty() {
                return Err(err(format!("retry: {}", problems.join("; "))));
            }
            let problems = breaker_cfg.problems();
            if !problems.is_empty() {
                return Err(err(format!("breaker: {}", problems.join("; "))));
            }
            let up = Upstream {
                name: cfg.name.clone(),
                kind: cfg.kind,
                client: client.clone(),
                urls,
                headers,
                timeout: Duration::from_millis(cfg.timeout_ms),
                ttfb_timeout: Duration::from_millis(cfg.ttfb_timeout_ms),
                default_max_tokens: cfg.default_max_tokens,
                budget: RetryBudget::new(&retry, now),
                retry,
                breaker: Breaker::new(cfg.name.clone(), breaker_cfg, now),
            };
            order.push(cfg.name.clone());
            upstreams.insert(cfg.name.clone(), Arc::new(up));
        }
        Ok(Self { upstreams, order })
    }

    /// Non-streaming chat along `routes`, first success wins.
    pub async fn chat(
        &self,
        routes: &[RouteTarget],
        req: &ChatRequest,
    ) -> Result<ChatOutcome, UpstreamError> {
        let started = Instant::now();
        let (completion, done) = self
            .walk(routes, false, |up, route| async move {
                let timeout = route.timeout.unwrap_or(up.timeout);
                match up.kind {
                    ProviderKind::Openai => openai::chat(&up, &route.model, req, timeout).await,
                    ProviderKind::Anthropic => {
                        anthropic::chat(&up, &route.model, req, timeout).await
                    }
                }
            })
            .await?;
        Ok(ChatOutcome {
            provider: done.provider,
            model: done.model,
            attempts: done.attempts,
            upstream_time: started.elapsed(),
            completion,
        })
    }

    /// Streaming chat along `routes`. Retries and fallback happen only until
    /// a route delivers its first chunk; after that, errors end the stream.
    pub async fn chat_stream(
        &self,
        routes: &[RouteTarget],
        req: &ChatRequest,
    ) -> Result<StreamOutcome, UpstreamError> {
        let started = Instant::now();
        let (stream, done) = self
            .walk(routes, false, |up, route| async move {
                let idle = route.timeout.unwrap_or(up.timeout);
                let ttfb = route.ttfb_timeout.unwrap_or(up.ttfb_timeout);
                let open = async {
                    match up.kind {
                        ProviderKind::Openai => {
                            openai::open_stream(&up, &route.model, req, idle).await
                        }
                        ProviderKind::Anthropic => {
                            anthropic::open_stream(&up, &route.model, req, idle).await
                        }
                    }
                };
                fallback::until_first_chunk(&up.name, open, ttfb).await
            })
            .await?;
        Ok(StreamOutcome {
            provider: done.provider,
            model: done.model,
            attempts: done.attempts,
            ttfb: started.elapsed(),
            stream,
        })
    }

    /// Embeddings along `routes` (Anthropic routes are skipped: no such API).
    pub async fn embeddings(
        &self,
        routes: &[RouteTarget],
        req: &EmbeddingsRequest,
    ) -> Result<EmbeddingsOutcome, UpstreamError> {
        let started = Instant::now();
        let (response, done) = self
            .walk(routes, true, |up, route| async move {
                let timeout = route.timeout.unwrap_or(up.timeout);
                openai::embeddings(&up, &route.model, req, timeout).await
            })
            .await?;
        Ok(EmbeddingsOutcome {
            provider: done.provider,
            model: done.model,
            attempts: done.attempts,
            upstream_time: started.elapsed(),
            response,
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
        let now = Instant::now();
        self.order
            .iter()
            .map(|n| (n.clone(), self.upstreams[n].breaker.state(now)))
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

fn build_headers(cfg: &ProviderConfig) -> Result<HeaderMap, String> {
    let mut h = HeaderMap::new();
    let mut put = |name: &str, value: &str, sensitive: bool| -> Result<(), String> {
        let n = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("invalid header name `{name}`"))?;
        let mut v = HeaderValue::from_str(value)
            .map_err(|_| format!("invalid value for header `{name}`"))?;
        v.set_sensitive(sensitive);
        h.insert(n, v);
        Ok(())
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
    Ok(h)
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
        let h = build_headers(&cfg).unwrap();
        assert_eq!(h["api-key"], "k");
        assert!(h.get("authorization").is_none());
        let bad = toml::from_str::<ProviderConfig>("name='a'\nbase-url='http://x'\ntimeout=1");
        assert!(bad.is_err(), "unknown keys are refused");
    }

    #[test]
    fn invalid_providers_are_refused_with_their_name() {
        let mut a = ProviderConfig::new("a", ProviderKind::Openai, "ftp://x");
        let err = Providers::new(
            &[a.clone()],
            &RetryConfig::default(),
            &BreakerConfig::default(),
        )
        .err()
        .unwrap();
        assert!(err.to_string().contains("`a`"), "{err}");
        a.base_url = "http://x/v1".into();
        let dup = Providers::new(
            &[a.clone(), a],
            &RetryConfig::default(),
            &BreakerConfig::default(),
        );
        assert!(dup.err().unwrap().to_string().contains("twice"));
    }
}
