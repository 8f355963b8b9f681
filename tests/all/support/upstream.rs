//! The mock upstream, and `Providers` pointed at it: each provider's
//! requests carry its name as `x-mock-key` (so the mock counts them per
//! provider) and, optionally, a fault.

#![allow(dead_code, reason = "each test module uses a different subset")]

use serde_json::{Value, json};
use sluice::mock::{self, MockConfig};
use sluice::openai::ChatRequest;
use sluice::provider::{BreakerConfig, ProviderConfig, ProviderKind, RetryConfig, RouteTarget};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The mock upstream on `127.0.0.1:0`; stops when dropped.
pub struct Mock {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    task: JoinHandle<()>,
}

impl Drop for Mock {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Mock {
    pub async fn start(cfg: MockConfig) -> Mock {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let task = tokio::spawn(async move { mock::serve(listener, cfg).await.unwrap() });
        Mock { addr, task }
    }

    /// `http://127.0.0.1:PORT/v1`, a provider `base-url`.
    pub fn base(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// `GET /mock/stats`.
    pub async fn stats(&self) -> Value {
        reqwest::get(format!("http://{}/mock/stats", self.addr))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Requests the mock saw carrying `x-mock-key: key`.
    pub async fn key_count(&self, key: &str) -> u64 {
        self.stats().await["keys"][key].as_u64().unwrap_or(0)
    }
}

/// A provider on `mock` whose every request carries `x-mock-key: name`
/// and, if given, `x-mock-fault: fault`.
pub fn provider(
    name: &str,
    mock: &Mock,
    kind: ProviderKind,
    fault: Option<&str>,
) -> ProviderConfig {
    let mut p = ProviderConfig::new(name, kind, &mock.base());
    p.headers.insert("x-mock-key".into(), name.into());
    if let Some(f) = fault {
        p.headers.insert("x-mock-fault".into(), f.into());
    }
    p
}

/// Retries fast enough for tests, with a budget that never interferes.
pub fn quick_retry(max_attempts: u32) -> RetryConfig {
    RetryConfig {
        max_attempts,
        initial_backoff_ms: 5,
        max_backoff_ms: 20,
        budget_min_per_sec: 1000,
        ..RetryConfig::default()
    }
}

pub fn no_breaker() -> BreakerConfig {
    BreakerConfig {
        enabled: false,
        ..BreakerConfig::default()
    }
}

/// A chat request for model `alias` with one user message.
pub fn chat_request(text: &str) -> ChatRequest {
    serde_json::from_value(
        json!({"model": "alias", "messages": [{"role": "user", "content": text}]}),
    )
    .unwrap()
}

/// One route per provider name, each to model `mock-small`.
pub fn routes(names: &[&str]) -> Vec<RouteTarget> {
    names
        .iter()
        .map(|n| RouteTarget::new(n, "mock-small"))
        .collect()
}
