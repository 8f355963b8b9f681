//! The operator's view over the admin key: what is loaded and how it
//! behaves (`/admin/plugins`, `/admin/reloads`, `/admin/reload`), the
//! upstreams' breakers, the quality rates, and `/admin/overview`, the one
//! document the dashboard ([`super::admin_ui`]) polls. Shapes are in the
//! README ("Admin API").

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Json;
use axum::routing::{get, post};
use serde::Serialize;
use serde_json::{Value, json};

use super::error::ApiError;
use crate::pipeline::Gateway;
use crate::plugin::{PluginStatus, manifest::Limits};

/// Reload events the overview carries (the full ring is `/admin/reloads`).
const OVERVIEW_RELOADS: usize = 10;

/// The routes; the caller puts them behind the admin key.
pub fn routes() -> Router<Arc<Gateway>> {
    Router::new()
        .route("/admin/plugins", get(plugins))
        .route("/admin/reload", post(reload))
        .route("/admin/reloads", get(reloads))
        .route("/admin/breakers", get(breakers))
        .route("/admin/quality", get(quality))
        .route("/admin/overview", get(overview))
}

/// A plugin as the admin API shows it: its status (state, kind, SHA-256,
/// grants, call stats) plus the world it implements and its limits.
#[derive(Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct PluginView {
    #[serde(flatten)]
    pub status: PluginStatus,
    /// `sluice:plugin/KIND@VERSION` of the serving version.
    pub world: Option<String>,
    pub limits: Option<Limits>,
}

fn plugin_views(gw: &Gateway) -> Vec<PluginView> {
    let set = gw.plugins.current();
    gw.plugins
        .statuses()
        .into_iter()
        .map(|status| {
            let p = set.get(&status.name);
            PluginView {
                world: p.map(|p| {
                    format!(
                        "sluice:plugin/{}@{}",
                        p.kind().interface(),
                        p.contract_version()
                    )
                }),
                limits: p.map(|p| p.manifest().limits.clone()),
                status,
            }
        })
        .collect()
}

/// `GET /admin/plugins`.
async fn plugins(State(gw): State<Arc<Gateway>>) -> Json<Value> {
    Json(json!({ "plugins": plugin_views(&gw) }))
}

/// `GET /admin/reloads`: the latest reloads, newest first.
async fn reloads(State(gw): State<Arc<Gateway>>) -> Json<Value> {
    Json(json!({ "reloads": gw.plugins.reload_history() }))
}

/// `POST /admin/reload`: rescan now. `reload` is the raw report, `changes`
/// the history entry (added / changed / removed / failed).
///
/// Reloading compiles changed plugins: CPU work, kept off the async workers.
async fn reload(State(gw): State<Arc<Gateway>>) -> Result<Json<Value>, ApiError> {
    let plugins = gw.plugins.clone();
    let (report, event) =
        tokio::task::spawn_blocking(move || plugins.reload_by(crate::plugin::ReloadTrigger::Api))
            .await
            .map_err(|e| {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "server_error",
                    e.to_string(),
                    None,
                    None,
                )
            })?;
    Ok(Json(json!({ "reload": report, "changes": event })))
}

fn breaker_list(gw: &Gateway) -> Vec<Value> {
    let metrics = gw.providers.breaker_metrics();
    gw.providers
        .breaker_states()
        .into_iter()
        .map(|(provider, state)| {
            let m = metrics
                .iter()
                .find(|(n, _)| *n == provider)
                .map(|(_, m)| *m)
                .unwrap_or_default();
            json!({
                "provider": provider,
                "state": state.as_str(),
                "opened": m.opened,
                "half_opened": m.half_opened,
                "closed": m.closed,
                "rejected": m.rejected,
            })
        })
        .collect()
}

/// `GET /admin/breakers`: each provider's circuit breaker.
async fn breakers(State(gw): State<Arc<Gateway>>) -> Json<Value> {
    Json(json!({ "breakers": breaker_list(&gw) }))
}

fn quality_doc(gw: &Gateway) -> Value {
    json!({
        "config": {
            "enabled": gw.quality.config().enabled,
            "window_secs": gw.quality.config().window_secs,
            "min_requests": gw.quality.config().min_requests,
            "error_rate_pct": gw.quality.config().error_rate_pct,
            "reject_rate_pct": gw.quality.config().reject_rate_pct,
            "rearm_ratio": gw.quality.config().rearm_ratio,
        },
        "models": gw.quality.snapshot(),
        "rejections": gw.quality.recent(),
    })
}

/// `GET /admin/quality`: rolling rates per model, signals firing, and the
/// latest guardrail rejections.
async fn quality(State(gw): State<Arc<Gateway>>) -> Json<Value> {
    Json(quality_doc(&gw))
}

/// Each model's plugin chain, in the order the pipeline runs it.
fn chains(gw: &Gateway) -> Vec<Value> {
    let set = gw.plugins.current();
    let ordered = |names: &[String]| {
        let mut v: Vec<&String> = names.iter().collect();
        // The pipeline runs guardrails in manifest `order`, then by name.
        v.sort_by_key(|n| (set.get(n).map_or(i64::MAX, |p| p.manifest().order), *n));
        v.into_iter().cloned().collect::<Vec<_>>()
    };
    gw.config
        .models
        .iter()
        .map(|(name, m)| {
            json!({
                "model": name,
                "input": ordered(m.input_guardrails()),
                "output": ordered(m.output_guardrails()),
                "router": m.router,
                "cost_policy": m.cost_policy,
                "routes": m.routes.iter().map(|r| format!("{}/{}", r.provider, r.model)).collect::<Vec<_>>(),
            })
        })
        .collect()
}

/// `GET /admin/overview`: everything the dashboard shows, in one document.
async fn overview(State(gw): State<Arc<Gateway>>) -> Json<Value> {
    let mut reloads = gw.plugins.reload_history();
    reloads.truncate(OVERVIEW_RELOADS);
    Json(json!({
        "generated_at_ms": crate::state::now_ms(),
        "ready": gw.plugins.is_ready(),
        "plugins": plugin_views(&gw),
        "chains": chains(&gw),
        "traffic": gw.metrics.summary(),
        "breakers": breaker_list(&gw),
        "quality": quality_doc(&gw),
        "reloads": reloads,
    }))
}
