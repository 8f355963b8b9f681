//! Admin endpoints for eval results (mounted under the admin key by
//! [`crate::server`]):
//!
//! | route                          | what                                               |
//! |--------------------------------|----------------------------------------------------|
//! | `POST /admin/evals`            | keep a run's [`RunRecord`] (what `sluice eval run` sends) |
//! | `GET /admin/evals`             | the latest run of every subject, the 50 most recent runs, open quality alerts |
//! | `GET /admin/evals?subject=S`   | the latest run of one subject (`model:NAME`, `prompt:ID@V`) |

use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Json;
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};

use super::store::{EvalStore, RunRecord, valid_subject};
use crate::pipeline::Gateway;
use crate::server::error::ApiError;
use crate::server::extract::OpenAiJson;

const RECENT: usize = 50;

pub fn routes() -> Router<Arc<Gateway>> {
    Router::new().route("/admin/evals", get(list).post(record))
}

fn store(gw: &Gateway) -> Result<&EvalStore, ApiError> {
    gw.evals.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "this gateway keeps no eval results (no state layer attached)",
            None,
            Some("evals_disabled"),
        )
    })
}

async fn record(
    State(gw): State<Arc<Gateway>>,
    OpenAiJson(rec): OpenAiJson<RunRecord>,
) -> Result<Json<Value>, ApiError> {
    let store = store(&gw)?;
    if let Some(bad) = rec.subjects.iter().find(|s| !valid_subject(s)) {
        return Err(ApiError::invalid(
            format!("invalid subject `{bad}` (expected model:NAME or prompt:ID@VERSION)"),
            Some("subjects".into()),
        ));
    }
    let alerts = store.record(&rec).await.map_err(internal)?;
    tracing::info!(
        run = %rec.id,
        suite = %rec.suite,
        subjects = ?rec.subjects,
        pass_rate = rec.summary.pass_rate,
        mean_score = rec.summary.mean_score,
        "eval run recorded"
    );
    Ok(Json(
        json!({"recorded": rec.id, "subjects": rec.subjects, "alerts": alerts}),
    ))
}

#[derive(Deserialize)]
struct ListQuery {
    subject: Option<String>,
}

async fn list(
    State(gw): State<Arc<Gateway>>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let store = store(&gw)?;
    if let Some(s) = q.subject {
        let latest = store.latest(&s).await.map_err(internal)?;
        return Ok(Json(json!({"subject": s, "latest": latest})));
    }
    let latest = store.latest_all().await.map_err(internal)?;
    let runs = store.recent(RECENT).await.map_err(internal)?;
    let alerts = store.alerts().await.map_err(internal)?;
    Ok(Json(
        json!({"latest": latest, "runs": runs, "alerts": alerts}),
    ))
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "server_error",
        e.to_string(),
        None,
        None,
    )
}
