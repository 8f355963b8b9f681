//! `/admin/review`: the human review queue over HTTP, behind the admin key
//! like every `/admin` route.
//!
//! | Route                                  | Answer                                   |
//! |----------------------------------------|------------------------------------------|
//! | `GET /admin/review?status=&limit=`     | `{"items": [...]}`, newest first         |
//! | `GET /admin/review/{id}`               | one item with its decision               |
//! | `POST /admin/review/{id}/approve`      | `{"reviewer", "note"?}`; the item after  |
//! | `POST /admin/review/{id}/reject`       | same                                     |
//!
//! `status` is `pending`, `approved` or `rejected` (default: all); `limit`
//! defaults to 50. A decision is recorded once, with the reviewer's name and
//! the time: a second one is `409` naming the first. Without a review queue
//! (no state opened) every route answers `503`.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::ApiError;
use super::extract::OpenAiJson;
use crate::pipeline::Gateway;
use crate::plugin::log::escaped;
use crate::state::review::{ReviewError, ReviewQueue, Status, Verdict};

/// The response header of a flagged non-streamed answer: `queued; id=ID`
/// or `held; id=ID` (`; not stored` when no queue took it).
pub const HEADER: &str = "x-sluice-review";

/// Default page size of a listing.
const DEFAULT_LIMIT: usize = 50;

/// The review routes (the caller adds the admin auth layer).
pub fn routes() -> Router<Arc<Gateway>> {
    Router::new()
        .route("/admin/review", get(list))
        .route("/admin/review/{id}", get(show))
        .route("/admin/review/{id}/approve", post(approve))
        .route("/admin/review/{id}/reject", post(reject))
}

#[derive(Deserialize)]
struct ListQuery {
    status: Option<String>,
    limit: Option<usize>,
}

#[derive(Deserialize)]
struct DecisionBody {
    reviewer: String,
    #[serde(default)]
    note: Option<String>,
}

fn queue(gw: &Gateway) -> Result<&ReviewQueue, ApiError> {
    gw.review_queue().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "review_unavailable",
            "no review queue: the gateway runs without a state store",
            None,
            None,
        )
    })
}

fn api_error(e: ReviewError) -> ApiError {
    let (status, kind) = match &e {
        ReviewError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found_error"),
        ReviewError::AlreadyDecided { .. } => (StatusCode::CONFLICT, "already_decided"),
        ReviewError::NoReviewer => (StatusCode::BAD_REQUEST, "invalid_request_error"),
        ReviewError::Store(_) | ReviewError::Corrupt(..) => {
            (StatusCode::INTERNAL_SERVER_ERROR, "server_error")
        }
    };
    let param = matches!(e, ReviewError::NoReviewer).then(|| "reviewer".to_string());
    ApiError::new(status, kind, e.to_string(), param, None)
}

async fn list(
    State(gw): State<Arc<Gateway>>,
    Query(q): Query<ListQuery>,
) -> Result<axum::Json<Value>, ApiError> {
    let status = match q.status.as_deref() {
        None | Some("" | "all") => None,
        Some(s) => Some(Status::parse(s).ok_or_else(|| {
            ApiError::invalid(
                format!("`status` must be pending, approved, rejected or all, got {s:?}"),
                Some("status".into()),
            )
        })?),
    };
    let items = queue(&gw)?
        .list(status, q.limit.unwrap_or(DEFAULT_LIMIT))
        .await
        .map_err(api_error)?;
    Ok(axum::Json(json!({"items": items})))
}

async fn show(
    State(gw): State<Arc<Gateway>>,
    Path(id): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    let entry = queue(&gw)?.get(&id).await.map_err(api_error)?;
    Ok(axum::Json(json!(entry)))
}

async fn decide(
    gw: &Gateway,
    id: &str,
    verdict: Verdict,
    body: DecisionBody,
) -> Result<axum::Json<Value>, ApiError> {
    let entry = queue(gw)?
        .decide(id, verdict, &body.reviewer, body.note)
        .await
        .map_err(api_error)?;
    tracing::info!(review_id = id, reviewer = %escaped(&body.reviewer), ?verdict, "review decided");
    Ok(axum::Json(json!(entry)))
}

async fn approve(
    State(gw): State<Arc<Gateway>>,
    Path(id): Path<String>,
    OpenAiJson(body): OpenAiJson<DecisionBody>,
) -> Result<axum::Json<Value>, ApiError> {
    decide(&gw, &id, Verdict::Approved, body).await
}

async fn reject(
    State(gw): State<Arc<Gateway>>,
    Path(id): Path<String>,
    OpenAiJson(body): OpenAiJson<DecisionBody>,
) -> Result<axum::Json<Value>, ApiError> {
    decide(&gw, &id, Verdict::Rejected, body).await
}
