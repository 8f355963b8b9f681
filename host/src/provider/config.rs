//! The provider settings: `[[providers]]`, `[retry]` and `[breaker]`, every
//! key with its default and why, and the one check of their values (run by
//! the config loader, which reports each problem with its `file:line:col`;
//! `sluice config check` and `sluice serve` therefore agree).

use std::collections::BTreeMap;

use http::header::{HeaderName, HeaderValue};
use serde::Deserialize;

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
    /// Streams only: the longest a stream may last, from sending the
    /// request to its last event; past it the stream ends with an error
    /// event (`timeout-ms` alone lets an upstream that keeps sending hold a
    /// connection forever). Routes may override it. Default `600000` ms
    /// (10 minutes); each open stream holds a client and an upstream
    /// connection for as long as it lasts.
    #[serde(default = "default_max_stream_duration_ms")]
    pub max_stream_duration_ms: u64,
    /// Streams only: the largest single event (SSE `data`) accepted from
    /// this upstream, in KiB; a larger one ends the stream with an error
    /// event. Each open stream may hold one event of this size (more while
    /// it is parsed and re-encoded for the client). Default `1024` (1 MiB):
    /// far above any real chunk.
    #[serde(default = "default_max_event_kb")]
    pub max_event_kb: usize,
    /// Non-streamed answers (chat, embeddings): the largest body accepted
    /// from this upstream, in MiB; a larger one is a 502 and is not read
    /// further, so a broken or hostile upstream cannot make the gateway
    /// buffer without bound. Each call in flight may hold this much.
    /// Default `64`: an embeddings answer for 2048 inputs of 1536
    /// dimensions is about 40 MB of JSON; raise it for bigger batches.
    /// (Error answers are read up to 64 KiB whatever this says: only their
    /// message is used.)
    #[serde(default = "default_max_response_mb")]
    pub max_response_mb: usize,
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
fn default_max_stream_duration_ms() -> u64 {
    600_000
}
fn default_max_event_kb() -> usize {
    1024
}
fn default_max_response_mb() -> usize {
    64
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
            max_stream_duration_ms: default_max_stream_duration_ms(),
            max_event_kb: default_max_event_kb(),
            max_response_mb: default_max_response_mb(),
            headers: BTreeMap::new(),
            anthropic_version: default_anthropic_version(),
            default_max_tokens: default_max_tokens(),
            retry: None,
            breaker: None,
        }
    }
}

impl ProviderConfig {
    /// Problems with this provider's values, each with the key it is about
    /// (empty when fine). Everything `Providers::new` needs to succeed.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        match url::Url::parse(&self.base_url) {
            Err(e) => out.push(("base-url", format!("`{}` is not a URL: {e}", self.base_url))),
            Ok(u) if !matches!(u.scheme(), "http" | "https") => out.push((
                "base-url",
                format!("`{}` must be an http(s) URL", self.base_url),
            )),
            Ok(_) => {}
        }
        if let Some(h) = &self.api_key_header
            && HeaderName::from_bytes(h.as_bytes()).is_err()
        {
            out.push(("api-key-header", format!("invalid header name `{h}`")));
        }
        if let Some(k) = &self.api_key
            && HeaderValue::from_str(k).is_err()
        {
            out.push(("api-key", "not a valid header value".into()));
        }
        for (k, v) in &self.headers {
            if HeaderName::from_bytes(k.as_bytes()).is_err() {
                out.push(("headers", format!("invalid header name `{k}`")));
            } else if HeaderValue::from_str(v).is_err() {
                out.push(("headers", format!("invalid value for header `{k}`")));
            }
        }
        for (key, v) in [
            ("timeout-ms", self.timeout_ms),
            ("ttfb-timeout-ms", self.ttfb_timeout_ms),
            ("max-stream-duration-ms", self.max_stream_duration_ms),
            ("max-event-kb", self.max_event_kb as u64),
            ("max-response-mb", self.max_response_mb as u64),
        ] {
            if v == 0 {
                out.push((key, "must be at least 1".into()));
            }
        }
        out.extend(
            self.retry
                .iter()
                .flat_map(|r| r.problems())
                .map(|p| ("retry", p)),
        );
        out.extend(
            self.breaker
                .iter()
                .flat_map(|b| b.problems())
                .map(|p| ("breaker", p)),
        );
        out
    }
}

/// `[retry]` (global) or `[providers.retry]` (per-provider override; a
/// provider's table replaces the global one as a whole, unset keys taking
/// the defaults below).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct RetryConfig {
    /// Attempts per route, the first one included; `1` disables retries.
    /// Default `3`. After the last one the next route (fallback) is tried.
    pub max_attempts: u32,
    /// Backoff ceiling for the first retry, before jitter. Default `100` ms.
    pub initial_backoff_ms: u64,
    /// Growth factor of the ceiling per retry. Default `2.0`.
    pub multiplier: f64,
    /// Upper bound of the backoff ceiling. Default `5000` ms.
    pub max_backoff_ms: u64,
    /// `Retry-After` (or `retry-after-ms`) is obeyed up to this long; a
    /// longer demand is not waited for on this route (the next route is
    /// tried, or the 429 is returned with its `Retry-After`). Default `30000` ms.
    pub max_retry_after_ms: u64,
    /// Retries allowed as a fraction of requests in the budget window.
    /// Default `0.2` (at most one retry per five requests, plus the floor below).
    pub budget_ratio: f64,
    /// Retries always allowed per second regardless of traffic, so a quiet
    /// gateway can still retry. Default `10`.
    pub budget_min_per_sec: u32,
    /// Window over which requests and retries are counted, 1000-60000.
    /// Default `10000` ms.
    pub budget_window_ms: u64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            initial_backoff_ms: 100,
            multiplier: 2.0,
            max_backoff_ms: 5000,
            max_retry_after_ms: 30_000,
            budget_ratio: 0.2,
            budget_min_per_sec: 10,
            budget_window_ms: 10_000,
        }
    }
}

impl RetryConfig {
    /// Problems with the values, for config validation (empty when fine).
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.max_attempts == 0 {
            out.push("max-attempts must be at least 1".to_string());
        }
        if !(self.multiplier >= 1.0 && self.multiplier.is_finite()) {
            out.push("multiplier must be a finite number >= 1".to_string());
        }
        if !(0.0..=10.0).contains(&self.budget_ratio) {
            out.push("budget-ratio must be between 0 and 10".to_string());
        }
        if !(1000..=60_000).contains(&self.budget_window_ms) {
            out.push("budget-window-ms must be between 1000 and 60000".to_string());
        }
        out
    }
}

/// `[breaker]` (global) or `[providers.breaker]` (per-provider override,
/// replacing the global table as a whole; unset keys take these defaults).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct BreakerConfig {
    /// `false` turns the breaker off (it never opens). Default `true`.
    pub enabled: bool,
    /// Consecutive failures that open the breaker. Default `5`.
    pub failure_threshold: u32,
    /// Failure ratio over the rolling window that opens the breaker, once
    /// the window holds at least `min-requests` calls. Default `0.5`.
    pub error_rate: f64,
    /// Calls the window must hold before `error-rate` applies, so two
    /// failures out of three at night do not open it. Default `20`.
    pub min_requests: u32,
    /// Rolling window length. Default `10000` ms.
    pub window_ms: u64,
    /// How long the breaker stays open before a half-open probe. Default `5000` ms.
    pub cool_down_ms: u64,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            failure_threshold: 5,
            error_rate: 0.5,
            min_requests: 20,
            window_ms: 10_000,
            cool_down_ms: 5_000,
        }
    }
}

impl BreakerConfig {
    /// Problems with the values, for config validation (empty when fine).
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.failure_threshold == 0 {
            out.push("failure-threshold must be at least 1".to_string());
        }
        if !(self.error_rate > 0.0 && self.error_rate <= 1.0) {
            out.push("error-rate must be in (0, 1]".to_string());
        }
        if self.window_ms == 0 {
            out.push("window-ms must be positive".to_string());
        }
        out
    }
}
