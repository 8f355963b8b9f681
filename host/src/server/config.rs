//! `[server]` and `[[keys]]`: what the HTTP layer listens on and accepts.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

/// `[server]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct ServerConfig {
    /// Address to listen on. Default `127.0.0.1:8080` (loopback: exposing a
    /// gateway holding provider keys must be a deliberate choice).
    pub listen: SocketAddr,
    /// Largest accepted request body in KiB; bigger bodies get 413.
    /// Default 1024 (1 MiB): ample for chat, stops accidental uploads.
    pub body_limit_kb: usize,
    /// Wall-clock cap in ms on one request's whole upstream phase (all
    /// retries and fallbacks; for streams, until the first chunk). Exceeding
    /// it answers 504. Default 120000. Per-attempt timeouts are the route's
    /// `timeout-ms` or the provider's own.
    pub request_timeout_ms: u64,
    /// Secret for the admin endpoints (`/admin/*`, `Authorization: Bearer`).
    /// Default unset = admin endpoints are disabled (404).
    pub admin_key: Option<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            body_limit_kb: 1024,
            request_timeout_ms: 120_000,
            admin_key: None,
        }
    }
}

impl ServerConfig {
    pub fn body_limit_bytes(&self) -> usize {
        self.body_limit_kb.saturating_mul(1024)
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }
}

/// `[[keys]]`: one virtual API key clients send as `Authorization: Bearer KEY`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct KeyConfig {
    /// Stable id shown to plugins (`api-key-id`) and in logs; never the secret.
    pub id: String,
    /// The secret; use `${ENV}` rather than writing it into the file.
    pub key: String,
    /// Owner; the request's `user` when the client sends none.
    pub user: Option<String>,
    /// Spend budget in USD per calendar month for this key, handed to the
    /// model's cost policy. Default unset: no budget.
    pub budget_usd: Option<f64>,
}
