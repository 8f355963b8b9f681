//! The HTTP API (axum): OpenAI-compatible endpoints plus health probes.
//!
//! | route                       | auth | what                                   |
//! |-----------------------------|------|----------------------------------------|
//! | `POST /v1/chat/completions` | key  | chat, JSON or SSE (`stream: true`)     |
//! | `POST /v1/embeddings`       | key  | embeddings                             |
//! | `GET /v1/models`            | key  | the configured gateway model names     |
//! | `GET /healthz`              | none | the process is up                      |
//! | `GET /readyz`               | none | plugins loaded (503 while compiling)   |
//! | `GET /metrics`              | admin (or none, `server.metrics`) | Prometheus text ([`crate::metrics`]) |
//! | `GET /admin/plugins`        | admin| every plugin's state, world, grants, limits, counters |
//! | `POST /admin/reload`        | admin| rescan the plugin directory now; what changed |
//! | `GET /admin/reloads`        | admin| the latest reloads (trigger, changes)  |
//! | `GET /admin/breakers`       | admin| each provider's circuit breaker        |
//! | `GET /admin/quality`        | admin| rolling error / reject rates, latest rejections |
//! | `GET /admin/overview`       | admin| everything the dashboard shows ([`admin_ops`]) |
//! | `GET /admin/ui`             | none (page; its data needs the key) | the dashboard ([`admin_ui`]) |
//! | `/admin/prompts...`         | admin| the prompt registry ([`crate::prompt::admin`]) |
//! | `/admin/evals`              | admin| eval results ([`crate::eval::admin`])  |
//! | `GET /admin/usage`          | admin| ledger report (`by`, `since`, `until`) |
//! | `GET /admin/keys`           | admin| every virtual key (no secrets)         |
//! | `POST /admin/keys`          | admin| create a key; its secret is shown once |
//! | `DELETE /admin/keys/{id}`   | admin| revoke a key (at once, every gateway)  |
//! | `/admin/review…`            | admin| the human review queue ([`review`])    |
//! | `/admin/cache`              | admin| response cache stats, `DELETE` purges ([`crate::cache`]) |
//!
//! Layers, outermost first: [`layers::stamp`] (request id, head size,
//! `x-sluice-*` on every answer, OpenAI-shaped errors), the drain deadline
//! ([`shutdown`]), body limit, auth ([`auth`]: virtual keys from the state
//! store on `/v1/*`; the admin key on `/admin/*`, which exists only when
//! `server.admin-key` is set). Connections (timeouts, cap, drain) are
//! [`conn`]'s. Rate limits, budgets and the ledger are pipeline stages
//! ([`crate::pipeline`]); answers carry their `x-ratelimit-*` and
//! `x-sluice-cost-usd` headers.

mod admin;
mod admin_ops;
mod admin_ui;
pub mod auth;
mod cache_admin;
mod chat;
pub mod config;
mod conn;
pub mod error;
pub mod extract;
pub mod layers;
pub mod limits;
mod outcomes;
pub mod review;
pub mod shutdown;
pub mod threads;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, Uri};
use axum::middleware;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{delete, get, post};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::openai::ModelObject;
use crate::pipeline::Gateway;
use config::MetricsAccess;
use error::ApiError;
use shutdown::{Drain, Phase};

/// The full router for `gw`; `drain` tells requests about a shutdown
/// deadline ([`Drain::default`] never fires).
pub fn router(gw: Arc<Gateway>, drain: Drain) -> Router {
    // Whether keys exist is asked of the store on the first request.
    let auth = Arc::new(auth::Auth::new(
        gw.state.clone(),
        gw.config.server.admin_key.as_deref(),
        false,
    ));
    let api = Router::new()
        .route("/v1/chat/completions", post(chat::chat))
        .route("/v1/embeddings", post(chat::embeddings))
        .route("/v1/models", get(models))
        .route_layer(middleware::from_fn_with_state(auth.clone(), auth::keys));
    let mut app = Router::new().merge(api);
    match gw.config.server.metrics {
        MetricsAccess::Public => app = app.route("/metrics", get(metrics)),
        MetricsAccess::Admin if gw.config.server.admin_key.is_some() => {
            app = app.merge(
                Router::new()
                    .route("/metrics", get(metrics))
                    .route_layer(middleware::from_fn_with_state(auth.clone(), auth::admin)),
            );
        }
        MetricsAccess::Admin | MetricsAccess::Off => {}
    }
    if gw.config.server.admin_key.is_some() {
        let admin = Router::new()
            .merge(admin_ops::routes())
            .merge(crate::prompt::admin::routes())
            .merge(crate::eval::admin::routes())
            .route("/admin/usage", get(admin::usage))
            .route("/admin/keys", get(admin::list_keys).post(admin::create_key))
            .route("/admin/keys/{id}", delete(admin::revoke_key))
            .merge(review::routes())
            .merge(cache_admin::routes())
            .layer(axum::Extension(auth.clone()))
            .route_layer(middleware::from_fn_with_state(auth, auth::admin));
        app = app.merge(admin).merge(admin_ui::routes());
    }
    let head = layers::HeadLimit(gw.config.server.max_header_bytes());
    app.route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/readyz", get(readyz))
        .fallback(not_found)
        .method_not_allowed_fallback(layers::method_not_allowed)
        .layer(DefaultBodyLimit::max(gw.config.server.body_limit_bytes()))
        .layer(axum::Extension(drain.clone()))
        .layer(middleware::from_fn_with_state(
            drain,
            shutdown::answer_by_deadline,
        ))
        .layer(middleware::from_fn_with_state(head, layers::stamp))
        .with_state(gw)
}

/// Serve until `shutdown` resolves, then drain: no new connections,
/// in-flight requests (streams included) finish within
/// `server.shutdown-grace-ms`, what is left then ends (see [`conn`]).
/// Raises the open-file limit and caps connections below it ([`limits`]).
///
/// This serves on the calling runtime whatever `server.runtime` says;
/// [`threads::bind`] and [`threads::serve_on`] follow it.
pub async fn serve(
    listener: TcpListener,
    gw: Arc<Gateway>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_runtime(listener, gw, (0, 1), shutdown).await
}

/// [`serve`] as serving runtime `index` of `runtimes` (its connection and
/// request counters in `/metrics`; its share of the connection cap).
async fn serve_runtime(
    listener: TcpListener,
    gw: Arc<Gateway>,
    (index, runtimes): (usize, usize),
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let cfg = &gw.config.server;
    let nofile = limits::raise_nofile_limit();
    let settings = conn::Settings {
        header_read_timeout: cfg.header_read_timeout(),
        // hyper's floor is 8 KiB.
        max_buf: cfg.max_header_bytes().saturating_mul(4).max(8192),
        cap: (limits::connection_cap(cfg.max_connections, nofile) / runtimes.max(1)).max(1),
        grace: cfg.shutdown_grace(),
    };
    tracing::info!(
        runtime = index,
        max_connections = settings.cap,
        open_file_limit = nofile,
        header_read_timeout_ms = settings.header_read_timeout.as_millis() as u64,
        "accepting connections"
    );
    let (phase, rx) = watch::channel(Phase::Serving);
    let counters = gw.metrics.serving_runtime(index);
    let app = router(gw, Drain::new(rx));
    conn::run(listener, app, settings, phase, counters, shutdown).await
}

/// The gateway models the caller's key may use.
async fn models(
    State(gw): State<Arc<Gateway>>,
    axum::Extension(principal): axum::Extension<crate::pipeline::Principal>,
) -> Json<serde_json::Value> {
    let data: Vec<ModelObject> = gw
        .config
        .models
        .keys()
        .filter(|id| principal.allows_model(id))
        .map(|id| ModelObject {
            id: id.clone(),
            object: "model".into(),
            created: 0,
            owned_by: "sluice".into(),
        })
        .collect();
    Json(json!({"object": "list", "data": data}))
}

/// Ready when the initial plugin load has finished and every plugin the
/// config references is loaded: a request to a model whose guardrail is
/// missing would fail closed (503) anyway. While the plugins compile
/// (`sluice serve` listens before that), the answer is 503 with
/// `"loading": true`.
async fn readyz(State(gw): State<Arc<Gateway>>) -> Response {
    let loading = !gw.plugins.is_ready();
    let missing = gw.missing_plugins();
    if !loading && missing.is_empty() {
        Json(json!({"status": "ready"})).into_response()
    } else {
        let body = json!({"status": "not ready", "loading": loading, "missing_plugins": missing});
        (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
    }
}

async fn metrics(State(gw): State<Arc<Gateway>>) -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            crate::metrics::scrape::CONTENT_TYPE,
        )],
        crate::metrics::scrape::render(&gw),
    )
        .into_response()
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::not_found(uri.path())
}
