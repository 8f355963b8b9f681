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
    /// Longest a connection may take to deliver a request's head, in ms;
    /// the timer also runs while a keep-alive connection waits idle for
    /// its next request, so it is the idle keep-alive timeout too. Past it
    /// the connection is closed. Default 10000: a slow client on a bad
    /// network sends a head in well under a second, while a connection
    /// that trickles one (slowloris) holds a file descriptor only this long.
    pub header_read_timeout_ms: u64,
    /// Largest request head (request line and headers) in KiB; a bigger
    /// one gets 431. Default 64 (browsers and SDKs send a few KiB). Up to
    /// four times this is buffered per connection while a head arrives.
    pub max_header_kb: usize,
    /// Open client connections at most. Default 0 = derived from the
    /// process's open-file limit (raised to its hard limit at start): half
    /// of what is left after 256 descriptors for upstream connections,
    /// plugins and logs, since each proxied request also holds an upstream
    /// connection. A larger value is lowered to that. At the cap, the
    /// oldest connection that has not sent a request yet (then the oldest
    /// idle one) is closed to admit a new one; when every connection is
    /// busy, new ones wait in the listen queue.
    pub max_connections: usize,
    /// On SIGTERM / SIGINT: how long in-flight requests may finish, in ms.
    /// New connections are refused at once; at the deadline open streams
    /// end with an error event, the rest are cut and the process exits 0.
    /// A second signal exits at once. Default 30000.
    pub shutdown_grace_ms: u64,
    /// Largest `n` (choices per request) accepted; each choice is paid
    /// upstream and passes the output guardrails on its own. Default 8.
    pub max_n: u32,
    /// Who may read `GET /metrics` (Prometheus text format). Default
    /// `admin`: the admin key, like `/admin/*` (none set = 404), because
    /// its labels name virtual keys, features, models and providers and
    /// its counters show spend and traffic. `public`: anyone who reaches
    /// the listener (put it behind a network boundary). `off`: no route
    /// and nothing recorded. Cost when on: a few atomic adds and one map
    /// lookup per request (host/benches/serve.rs, README "Metrics").
    pub metrics: MetricsAccess,
    /// Distinct values kept for each of the `key` and `feature` labels;
    /// later ones are reported as `other`. Default 100. Each value adds a
    /// series per model to the token and cost counters, held in memory
    /// and sent on every scrape; features come from a client header.
    pub metrics_label_limit: usize,
    /// How requests are served: `multi-thread` (default; one tokio runtime
    /// whose workers steal each other's tasks, one listener, one upstream
    /// connection pool) or `thread-per-core` (`threads` single-threaded
    /// runtimes, each accepting on its own `SO_REUSEPORT` listener with its
    /// own upstream connection pool, so a request never changes thread;
    /// the kernel spreads connections over them by address hash, so a few
    /// busy keep-alive connections can load one thread more than another;
    /// `max-connections` is split evenly between them). Cost of `thread-per-core`: one upstream pool per thread (up to
    /// `threads` times the idle upstream connections). Numbers in
    /// bench/README.md, "Thread-per-core serving".
    pub runtime: RuntimeMode,
    /// Serving threads for `runtime = "thread-per-core"`. Default 0 = one
    /// per CPU the process may use. Ignored by `multi-thread` (its workers
    /// are one per CPU, or `TOKIO_WORKER_THREADS`).
    pub threads: usize,
}

/// `[server] runtime`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RuntimeMode {
    #[default]
    MultiThread,
    ThreadPerCore,
}

/// `[server] metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MetricsAccess {
    #[default]
    Admin,
    Public,
    Off,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            body_limit_kb: 1024,
            request_timeout_ms: 120_000,
            admin_key: None,
            header_read_timeout_ms: 10_000,
            max_header_kb: 64,
            max_connections: 0,
            shutdown_grace_ms: 30_000,
            max_n: 8,
            metrics: MetricsAccess::Admin,
            metrics_label_limit: 100,
            runtime: RuntimeMode::MultiThread,
            threads: 0,
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

    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_millis(self.header_read_timeout_ms)
    }

    pub fn max_header_bytes(&self) -> usize {
        self.max_header_kb.saturating_mul(1024)
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(self.shutdown_grace_ms)
    }

    /// Serving threads `runtime = "thread-per-core"` starts: `threads`, or
    /// one per available CPU when 0.
    pub fn serving_threads(&self) -> usize {
        match self.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }

    /// Problems with the values, each with its key (empty when fine).
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        for (key, v) in [
            ("body-limit-kb", self.body_limit_kb as u64),
            ("request-timeout-ms", self.request_timeout_ms),
            ("header-read-timeout-ms", self.header_read_timeout_ms),
            ("max-header-kb", self.max_header_kb as u64),
            ("max-n", u64::from(self.max_n)),
        ] {
            if v == 0 {
                out.push((key, "must be at least 1".to_string()));
            }
        }
        // hyper's read buffer (4 × this) cannot go below 8 KiB, nor past
        // what a 32-bit size can hold.
        if self.threads > 1024 {
            out.push(("threads", "must be at most 1024".to_string()));
        }
        if self.max_header_kb > 256 * 1024 {
            out.push(("max-header-kb", "must be at most 262144".to_string()));
        }
        out
    }
}

/// `[[keys]]`: one virtual API key clients send as `Authorization: Bearer
/// KEY`, seeded into the state store at every start (only its SHA-256 is
/// stored). Config keys may pick the `batch` tier with `x-sluice-tier`;
/// keys with models, limits, tiers and expiry are made with `sluice keys
/// create` or `POST /admin/keys`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct KeyConfig {
    /// Stable id shown to plugins (`api-key-id`) and in logs; never the secret.
    pub id: String,
    /// The secret; use `${ENV}` rather than writing it into the file.
    pub key: String,
    /// Owner; the request's `user` when the client sends none.
    pub user: Option<String>,
    /// Budget in USD per UTC calendar month for this key: each request's
    /// worst case is reserved against it before the upstream call (one
    /// that does not fit gets 429 `budget_exceeded`), and the model's cost
    /// policy sees it. Default unset: `[state.budgets] default-key`.
    pub budget_usd: Option<f64>,
}
