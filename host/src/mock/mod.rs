//! `sluice mock-upstream`: a deterministic OpenAI- and Anthropic-compatible
//! upstream with fault injection, for the demo, the tests and benchmarks.
//!
//! Endpoints: `POST /v1/chat/completions` (stream or not), `POST /v1/messages`
//! (Anthropic, stream or not), `POST /v1/embeddings`, `GET /v1/models`,
//! `GET /mock/stats` (request counts per path, faults, per-key counts) and
//! `POST /mock/reset`.
//!
//! Per-request controls (headers, or body fields that survive a gateway
//! forwarding unknown fields):
//! - `x-mock-fault` / `mock_fault`: a fault spec, see [`fault`].
//! - `x-mock-key` / `mock_key`: counts requests per key; scopes `fail-first`.
//! - `x-mock-echo: 1` / `mock_echo: true`: the answer is the request body.
//! - `x-mock-reply: TEXT`, or a last user message `REPLY: TEXT`: the answer is TEXT.
//! - `x-mock-answer-bytes: N` / `mock_answer_bytes: N`: the answer is N bytes
//!   of deterministic sentences (long answers without a long request).
//! - OpenAI `n`: that many choices; a reply `A[[choice]]B` gives choice 0
//!   the text A and choice 1 (and later ones) B.
//! - Anthropic, a last user message `CALL: NAME [JSON]`: the answer is a
//!   `tool_use` of NAME with that input (`{}` when none), streamed as the
//!   real API does.
//!
//! `GET /mock/stats` also counts `streams_cancelled`: paced streams
//! (`--token-delay-ms`, `slow-first-token`) whose client went away before
//! the end.
//!
//! Built to be cheap per request (a benchmark drives it at thousands of
//! requests per second): no per-request logging, answers written straight
//! into one buffer, the models list precomputed.

mod anthropic;
pub mod fault;
mod openai;
mod stream;
pub mod text;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use parking_lot::Mutex;
use serde_json::json;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

pub use fault::Fault;

/// Mock settings (`sluice mock-upstream --help`).
#[derive(Debug, Clone, clap::Args)]
pub struct MockConfig {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9100")]
    pub listen: SocketAddr,
    /// Fixed delay before every answer, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Delay between streamed tokens, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub token_delay_ms: u64,
    /// Fraction (0..=1) of chat, messages and embeddings requests answered
    /// 503, spread evenly and deterministically over the run.
    #[arg(long, default_value_t = 0.0)]
    pub fail_rate: f64,
    /// A fault spec applied to every request without its own (see `x-mock-fault`).
    #[arg(long)]
    pub fault: Option<String>,
    /// Embedding vector size.
    #[arg(long, default_value_t = 256)]
    pub embedding_dim: usize,
    /// If set, requests must carry this key (`Authorization: Bearer` or `x-api-key`).
    #[arg(long)]
    pub api_key: Option<String>,
    /// Model ids listed by `GET /v1/models`.
    #[arg(long, value_delimiter = ',', default_value = "mock-small,mock-large")]
    pub models: Vec<String>,
}

impl Default for MockConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 9100)),
            latency_ms: 0,
            token_delay_ms: 0,
            fail_rate: 0.0,
            fault: None,
            embedding_dim: 256,
            api_key: None,
            models: vec!["mock-small".into(), "mock-large".into()],
        }
    }
}

/// Binds `cfg.listen` and serves until the process ends.
pub async fn run(cfg: MockConfig) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let listener = TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("cannot listen on {}", cfg.listen))?;
    tracing::info!(addr = %listener.local_addr()?, "mock upstream listening");
    serve(listener, cfg).await
}

/// Serves on an already bound listener (tests bind port 0).
pub async fn serve(listener: TcpListener, cfg: MockConfig) -> anyhow::Result<()> {
    if let Some(spec) = &cfg.fault {
        Fault::parse(spec).map_err(|e| anyhow::anyhow!("--fault: {e}"))?;
    }
    anyhow::ensure!(
        (0.0..=1.0).contains(&cfg.fail_rate),
        "--fail-rate must be between 0 and 1"
    );
    let app = router(Arc::new(Mock::new(cfg)));
    loop {
        let (tcp, _) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of file descriptors and the like: back off, keep serving.
                tracing::warn!(error = %e, "mock accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let app = app.clone();
        tokio::spawn(async move {
            let kill = ConnKill(Arc::new(AtomicBool::new(false)));
            let io = hyper_util::rt::TokioIo::new(KillableIo {
                inner: tcp,
                kill: kill.0.clone(),
            });
            let svc = hyper::service::service_fn(
                move |mut req: hyper::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(kill.clone());
                    let mut app = app.clone();
                    tower_service::Service::call(&mut app, req)
                },
            );
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, svc)
                .await;
        });
    }
}

fn router(mock: Arc<Mock>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(openai::chat))
        .route("/v1/embeddings", post(openai::embeddings))
        .route("/v1/models", get(openai::models))
        .route("/v1/messages", post(anthropic::messages))
        .route("/mock/stats", get(stats))
        .route("/mock/reset", post(reset))
        .with_state(mock)
}

/// Lets a handler kill its own connection (the `reset` fault).
#[derive(Clone)]
pub(crate) struct ConnKill(Arc<AtomicBool>);

impl ConnKill {
    pub(crate) fn kill(&self) {
        self.0.store(true, Ordering::Release);
    }
}

/// A TCP stream that fails every operation once killed, after setting a
/// zero linger so the close is a real RST, as when an upstream crashes.
struct KillableIo {
    inner: TcpStream,
    kill: Arc<AtomicBool>,
}

impl KillableIo {
    fn killed(&self) -> Option<std::io::Error> {
        if !self.kill.load(Ordering::Acquire) {
            return None;
        }
        // Zero linger never blocks: the kernel discards and sends RST.
        #[allow(deprecated)]
        let _ = self.inner.set_linger(Some(Duration::ZERO));
        Some(std::io::ErrorKind::ConnectionReset.into())
    }
}

impl AsyncRead for KillableIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if let Some(e) = self.killed() {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for KillableIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if let Some(e) = self.killed() {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        if let Some(e) = self.killed() {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        if let Some(e) = self.killed() {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Shared mock state.
pub(crate) struct Mock {
    pub(crate) cfg: MockConfig,
    models_body: Bytes,
    pub(crate) created: u64,
    seq: AtomicU64,
    stats: Stats,
    fail_first: Mutex<HashMap<String, u32>>,
}

#[derive(Default)]
struct Stats {
    chat: AtomicU64,
    messages: AtomicU64,
    embeddings: AtomicU64,
    models: AtomicU64,
    faults: AtomicU64,
    keys: Mutex<HashMap<String, u64>>,
    /// Shared with the paced stream bodies that count themselves.
    streams_cancelled: Arc<AtomicU64>,
}

/// Which request counter a handler bumps.
#[derive(Clone, Copy)]
pub(crate) enum Path {
    Chat,
    Messages,
    Embeddings,
}

/// Error bodies follow the dialect of the endpoint.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    OpenAi,
    Anthropic,
}

/// What one request asked of the mock, beyond a normal answer.
pub(crate) struct Directives {
    pub fault: Fault,
    pub echo: bool,
    pub reply: Option<String>,
    pub answer_bytes: Option<usize>,
}

/// Control fields a request body may carry.
#[derive(Default, serde::Deserialize)]
pub(crate) struct BodyControls {
    #[serde(default)]
    pub mock_fault: Option<String>,
    #[serde(default)]
    pub mock_key: Option<String>,
    #[serde(default)]
    pub mock_echo: Option<bool>,
    #[serde(default)]
    pub mock_answer_bytes: Option<usize>,
}

/// A request body that carries [`BodyControls`].
pub(crate) trait HasControls {
    fn controls(&self) -> BodyControls;
}

impl Mock {
    /// The prologue every endpoint shares: parse the JSON body (400 in the
    /// endpoint's dialect when it is not valid), then resolve the request's
    /// directives from its headers and the body's own controls.
    pub(crate) fn begin<T: serde::de::DeserializeOwned + HasControls>(
        &self,
        path: Path,
        dialect: Dialect,
        headers: &HeaderMap,
        raw: &[u8],
    ) -> Result<(T, Directives), Box<Response>> {
        let body: T = serde_json::from_slice(raw).map_err(|e| {
            Box::new(error_response(
                dialect,
                400,
                None,
                &format!("invalid JSON body: {e}"),
            ))
        })?;
        let directives = self.directives(path, dialect, headers, &body.controls())?;
        Ok((body, directives))
    }

    fn new(cfg: MockConfig) -> Self {
        let created = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let data: Vec<_> = cfg
            .models
            .iter()
            .map(|id| json!({"id": id, "object": "model", "created": created, "owned_by": "sluice-mock"}))
            .collect();
        let models_body = Bytes::from(json!({"object": "list", "data": data}).to_string());
        Self {
            cfg,
            models_body,
            created,
            seq: AtomicU64::new(0),
            stats: Stats::default(),
            fail_first: Mutex::new(HashMap::new()),
        }
    }

    /// A process-unique number for response ids.
    pub(crate) fn next_id(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::Relaxed)
    }

    /// Counts the request and works out its fault, echo and reply controls.
    /// `Err` is a ready answer (bad auth or a bad fault spec), boxed because
    /// it is the rare path.
    pub(crate) fn directives(
        &self,
        path: Path,
        dialect: Dialect,
        headers: &HeaderMap,
        body: &BodyControls,
    ) -> Result<Directives, Box<Response>> {
        let n = match path {
            Path::Chat => &self.stats.chat,
            Path::Messages => &self.stats.messages,
            Path::Embeddings => &self.stats.embeddings,
        }
        .fetch_add(1, Ordering::Relaxed);
        if let Some(key) = &self.cfg.api_key {
            let bearer = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "));
            let x_api_key = headers.get("x-api-key").and_then(|v| v.to_str().ok());
            if bearer != Some(key.as_str()) && x_api_key != Some(key.as_str()) {
                return Err(Box::new(error_response(
                    dialect,
                    401,
                    None,
                    "invalid api key",
                )));
            }
        }
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let spec = header("x-mock-fault")
            .or(body.mock_fault.as_deref())
            .or(self.cfg.fault.as_deref());
        let mut fault = match spec {
            Some(s) => {
                Fault::parse(s).map_err(|e| Box::new(error_response(dialect, 400, None, &e)))?
            }
            None => Fault::default(),
        };
        let key = header("x-mock-key").or(body.mock_key.as_deref());
        if let Some(k) = key {
            *self.stats.keys.lock().entry(k.to_string()).or_default() += 1;
        }
        if let Some(limit) = fault.fail_first {
            let k = key.or(spec).unwrap_or_default().to_string();
            let mut seen = self.fail_first.lock();
            let count = seen.entry(k).or_default();
            *count += 1;
            if *count > limit {
                fault = Fault::default();
            }
        }
        let r = self.cfg.fail_rate;
        if !fault.is_active() && r > 0.0 && ((n + 1) as f64 * r).floor() > (n as f64 * r).floor() {
            fault.status = Some(503);
        }
        if fault.is_active() {
            self.stats.faults.fetch_add(1, Ordering::Relaxed);
        }
        let echo = header("x-mock-echo").is_some_and(|v| v == "1" || v == "true")
            || body.mock_echo == Some(true);
        let reply = header("x-mock-reply").map(str::to_string);
        let answer_bytes = header("x-mock-answer-bytes")
            .and_then(|v| v.parse().ok())
            .or(body.mock_answer_bytes);
        Ok(Directives {
            fault,
            echo,
            reply,
            answer_bytes,
        })
    }

    /// The counter paced streams bump when their client goes away early.
    pub(crate) fn cancelled_counter(&self) -> Arc<AtomicU64> {
        self.stats.streams_cancelled.clone()
    }

    /// Waits out configured latency and applies the faults that decide the
    /// whole answer. `Some` is that answer.
    pub(crate) async fn pre_answer(
        &self,
        fault: &Fault,
        dialect: Dialect,
        kill: Option<&ConnKill>,
    ) -> Option<Response> {
        let latency = self.cfg.latency_ms + fault.latency_ms.unwrap_or(0);
        if latency > 0 {
            tokio::time::sleep(Duration::from_millis(latency)).await;
        }
        if fault.timeout {
            std::future::pending::<()>().await;
        }
        if fault.reset {
            return Some(match kill {
                Some(k) => {
                    k.kill();
                    StatusCode::INTERNAL_SERVER_ERROR.into_response()
                }
                // Not on our own accept loop: abort the body instead.
                None => Response::new(Body::from_stream(futures_util::stream::once(async {
                    Err::<Bytes, _>(std::io::Error::from(std::io::ErrorKind::ConnectionReset))
                }))),
            });
        }
        let status = fault.status?;
        let mut resp = error_response(
            dialect,
            status,
            fault.retry_after.as_deref(),
            "injected fault",
        );
        if let Some(ms) = fault.retry_after_ms {
            resp.headers_mut()
                .insert("retry-after-ms", HeaderValue::from(ms));
        }
        Some(resp)
    }
}

/// A provider-shaped error answer.
pub(crate) fn error_response(
    dialect: Dialect,
    status: u16,
    retry_after: Option<&str>,
    message: &str,
) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let kind = match status.as_u16() {
        400 => "invalid_request_error",
        401 => "authentication_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        _ if dialect == Dialect::Anthropic => "api_error",
        _ => "server_error",
    };
    let body = match dialect {
        Dialect::OpenAi => {
            json!({"error": {"message": message, "type": kind, "param": null, "code": null}})
        }
        Dialect::Anthropic => json!({"type": "error", "error": {"type": kind, "message": message}}),
    };
    let mut resp = (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response();
    if let Some(v) = retry_after.and_then(|v| HeaderValue::from_str(v).ok()) {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

pub(crate) fn json_response(body: impl Into<Body>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body.into()).into_response()
}

/// A non-streaming 200 answer, bent by `truncate` (the connection dies
/// halfway through the body) or `malformed` (the JSON is cut short).
pub(crate) fn body_response(fault: &Fault, body: Vec<u8>) -> Response {
    if fault.malformed {
        let half = body.len() / 2;
        return json_response(body[..half].to_vec());
    }
    if fault.truncate {
        let half = Bytes::from(body[..body.len() / 2].to_vec());
        let parts: [Result<Bytes, std::io::Error>; 2] =
            [Ok(half), Err(std::io::ErrorKind::ConnectionReset.into())];
        return json_response(Body::from_stream(futures_util::stream::iter(parts)));
    }
    json_response(body)
}

impl Mock {
    pub(crate) fn models(&self) -> Response {
        self.stats.models.fetch_add(1, Ordering::Relaxed);
        json_response(self.models_body.clone())
    }
}

async fn stats(State(mock): State<Arc<Mock>>) -> Response {
    let s = &mock.stats;
    let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let chat = load(&s.chat);
    let messages = load(&s.messages);
    let embeddings = load(&s.embeddings);
    let models = load(&s.models);
    let keys = s.keys.lock().clone();
    axum::Json(json!({
        "total": chat + messages + embeddings + models,
        "paths": {
            "/v1/chat/completions": chat,
            "/v1/messages": messages,
            "/v1/embeddings": embeddings,
            "/v1/models": models,
        },
        "faults": load(&s.faults),
        "streams_cancelled": load(&s.streams_cancelled),
        "keys": keys,
    }))
    .into_response()
}

async fn reset(State(mock): State<Arc<Mock>>) -> StatusCode {
    let s = &mock.stats;
    for c in [
        &s.chat,
        &s.messages,
        &s.embeddings,
        &s.models,
        &s.faults,
        &s.streams_cancelled,
    ] {
        c.store(0, Ordering::Relaxed);
    }
    s.keys.lock().clear();
    mock.fail_first.lock().clear();
    StatusCode::NO_CONTENT
}
