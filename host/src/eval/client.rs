//! The eval runner's view of a gateway: its HTTP API, with retries. The
//! runner is an ordinary client (`POST /v1/chat/completions` with a virtual
//! key), so an eval exercises exactly what production requests go
//! through: prompt rendering, guardrails, routing, fallback.
//!
//! Retried: 429, 500, 502, 503, 504, 529, timeouts and broken connections,
//! with exponential backoff (`Retry-After` obeyed up to 30 s). Not retried:
//! every other answer, a guardrail's 422 included (that is a result).

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::Value;

use crate::config::Config;
use crate::openai::ChatCompletion;
use crate::state::{PriceTable, TokenUsage};

/// Longest `Retry-After` waited for.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

/// A gateway the runner talks to.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    key: Option<String>,
    admin_key: Option<String>,
    retries: u32,
    backoff: Duration,
    /// The gateway's config, to price answers when the gateway sends no
    /// `x-sluice-cost-usd`.
    pricing: Option<Arc<Config>>,
}

/// A successful answer.
#[derive(Debug, Clone, Default)]
pub struct Answer {
    pub text: String,
    pub prompt_tokens: Option<u32>,
    pub completion_tokens: Option<u32>,
    pub cost_usd: Option<f64>,
    pub latency: Duration,
    pub retries: u32,
    pub provider: Option<String>,
    pub upstream_model: Option<String>,
    pub prompt: Option<String>,
}

/// A request that ended without an answer (after its retries).
#[derive(Debug, Clone)]
pub struct Failure {
    pub message: String,
    /// The OpenAI error `code`, else its `type`.
    pub code: Option<String>,
    pub status: Option<u16>,
    /// The gateway's OpenAI error `type`.
    pub kind: Option<String>,
    pub latency: Duration,
    pub retries: u32,
}

impl Client {
    /// `base` is the gateway's root URL (`http://127.0.0.1:8080`).
    pub fn new(
        base: &str,
        key: Option<String>,
        admin_key: Option<String>,
        retries: u32,
        timeout: Duration,
    ) -> anyhow::Result<Client> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| anyhow::anyhow!("building the HTTP client: {e}"))?;
        Ok(Client {
            http,
            base: base.trim_end_matches('/').to_string(),
            key,
            admin_key,
            retries,
            backoff: Duration::from_millis(500),
            pricing: None,
        })
    }

    /// Price answers from `config`'s routes when the gateway does not.
    pub fn with_pricing(mut self, config: Arc<Config>) -> Client {
        self.pricing = Some(config);
        self
    }

    /// The first retry's delay (doubling after). Default 500 ms.
    pub fn with_backoff(mut self, first: Duration) -> Client {
        self.backoff = first;
        self
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn has_admin_key(&self) -> bool {
        self.admin_key.is_some()
    }

    /// One chat completion (`stream: false`), retried as the module says.
    /// `feature` goes in `x-sluice-feature` (the ledger tells eval traffic
    /// from production), `run` in `x-sluice-tags`.
    pub async fn chat(&self, body: &Value, feature: &str, run: &str) -> Result<Answer, Failure> {
        let mut retries = 0;
        loop {
            let start = Instant::now();
            let mut req = self
                .http
                .post(format!("{}/v1/chat/completions", self.base))
                .header("x-sluice-feature", feature)
                .header("x-sluice-tags", format!("eval,run:{run}"))
                .json(body);
            if let Some(k) = &self.key {
                req = req.bearer_auth(k);
            }
            let outcome = match req.send().await {
                Ok(res) => self.read(res, start, body).await,
                Err(e) => Err((transport(&e), None)),
            };
            let (failure, wait) = match outcome {
                Ok(mut a) => {
                    a.retries = retries;
                    return Ok(a);
                }
                Err((f, wait)) => (f, wait),
            };
            let retryable = failure
                .status
                .is_none_or(|s| matches!(s, 429 | 500 | 502 | 503 | 504 | 529));
            if !retryable || retries >= self.retries {
                return Err(Failure {
                    latency: start.elapsed(),
                    retries,
                    ..failure
                });
            }
            let backoff = self.backoff.saturating_mul(1 << retries.min(10));
            tokio::time::sleep(wait.map_or(backoff, |w| w.min(MAX_RETRY_AFTER))).await;
            retries += 1;
        }
    }

    /// Read one answer: the completion, or the failure and how long the
    /// gateway asked us to wait.
    async fn read(
        &self,
        res: reqwest::Response,
        start: Instant,
        body: &Value,
    ) -> Result<Answer, (Failure, Option<Duration>)> {
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = match res.bytes().await {
            Ok(b) => b,
            Err(e) => return Err((transport(&e), None)),
        };
        let latency = start.elapsed();
        if !status.is_success() {
            return Err((http_failure(status, &bytes), retry_after(&headers)));
        }
        let completion: ChatCompletion = serde_json::from_slice(&bytes).map_err(|e| {
            let f = Failure {
                message: format!("the gateway's answer is not a chat completion: {e}"),
                code: None,
                status: Some(status.as_u16()),
                kind: None,
                latency,
                retries: 0,
            };
            (f, None)
        })?;
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let text = completion
            .choices
            .first()
            .map(|c| c.message.content_text())
            .unwrap_or_default();
        let provider = header("x-sluice-provider");
        let upstream_model = header("x-sluice-model");
        let cost_usd = header("x-sluice-cost-usd")
            .and_then(|c| c.parse().ok())
            .or_else(|| {
                let usage = completion.usage.as_ref()?;
                let config = self.pricing.as_ref()?;
                // A prompt request may name no model (the prompt version's
                // serves): then any model's route to that upstream prices it.
                let named = body
                    .get("model")
                    .and_then(Value::as_str)
                    .filter(|m| !m.is_empty());
                let mut routes: Vec<&crate::config::RouteConfig> = match named {
                    Some(m) => config.models.get(m)?.routes.iter().collect(),
                    None => config.models.values().flat_map(|m| &m.routes).collect(),
                };
                routes.retain(|r| {
                    Some(&r.provider) == provider.as_ref()
                        && Some(&r.model) == upstream_model.as_ref()
                });
                let route = routes.first()?;
                Some(
                    PriceTable::builtin()
                        .route_price(route)
                        .cost(&TokenUsage::from(usage)),
                )
            });
        Ok(Answer {
            text,
            prompt_tokens: completion.usage.map(|u| u.prompt_tokens),
            completion_tokens: completion.usage.map(|u| u.completion_tokens),
            cost_usd,
            latency,
            retries: 0,
            provider,
            upstream_model,
            prompt: header("x-sluice-prompt"),
        })
    }

    /// `GET` an admin endpoint (needs the admin key).
    pub async fn admin_get(&self, path: &str) -> anyhow::Result<Value> {
        self.admin(self.http.get(format!("{}{path}", self.base)))
            .await
    }

    /// `POST` JSON to an admin endpoint (needs the admin key).
    pub async fn admin_post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.admin(self.http.post(format!("{}{path}", self.base)).json(body))
            .await
    }

    async fn admin(&self, req: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let key = self
            .admin_key
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("this needs the gateway's admin key (--admin-key)"))?;
        let res = req
            .bearer_auth(key)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("{}: {e}", self.base))?;
        let status = res.status();
        let bytes = res.bytes().await?;
        if !status.is_success() {
            anyhow::bail!("{}", http_failure(status, &bytes).message);
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| anyhow::anyhow!("the gateway's answer is not JSON: {e}"))
    }
}

fn transport(e: &reqwest::Error) -> Failure {
    Failure {
        message: format!("request failed: {e}"),
        code: Some(
            if e.is_timeout() {
                "timeout"
            } else {
                "connection"
            }
            .into(),
        ),
        status: None,
        kind: None,
        latency: Duration::ZERO,
        retries: 0,
    }
}

/// An error answer: the OpenAI error body's message and code when it has one.
fn http_failure(status: StatusCode, body: &[u8]) -> Failure {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let err = parsed.as_ref().and_then(|v| v.get("error"));
    let field = |k: &str| {
        err.and_then(|e| e.get(k))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let message = field("message")
        .unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(300).collect());
    let kind = field("type");
    Failure {
        message: format!("{status}: {message}"),
        code: field("code").or_else(|| kind.clone()),
        status: Some(status.as_u16()),
        kind,
        latency: Duration::ZERO,
        retries: 0,
    }
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    v.trim().parse::<u64>().ok().map(Duration::from_secs)
}
