//! Admin endpoints of the prompt registry (mounted under the admin key by
//! [`crate::server`]):
//!
//! | route                                | what                                             |
//! |--------------------------------------|--------------------------------------------------|
//! | `GET /admin/prompts`                 | every prompt: versions, active one and why, load state |
//! | `GET /admin/prompts/{id}`            | one prompt: status, every version, activation history |
//! | `POST /admin/prompts/{id}/activate`  | `{"version": N \| null, "by"?, "reason"?}`: pin (null: unpin) |
//! | `POST /admin/prompts/reload`         | rescan the prompt directory now                  |
//!
//! Who activated: the body's `by`, else the `x-sluice-actor` header, else
//! `admin-api`. The admin key is one shared secret, so this names a person
//! the way a commit author does: as stated, not proven.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Json;
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::activation;
use super::registry::{ActivateError, Prompts};
use crate::pipeline::Gateway;
use crate::server::error::ApiError;
use crate::server::extract::OpenAiJson;

/// How many activation records `GET /admin/prompts/{id}` returns.
const HISTORY: usize = 100;
/// Longest `by` (who) and `reason` an activation record keeps.
const MAX_BY: usize = 200;
const MAX_REASON: usize = 2000;

pub fn routes() -> Router<Arc<Gateway>> {
    Router::new()
        .route("/admin/prompts", get(list))
        .route("/admin/prompts/reload", post(reload))
        .route("/admin/prompts/{id}", get(show))
        .route("/admin/prompts/{id}/activate", post(activate))
}

fn registry(gw: &Gateway) -> Result<&Arc<Prompts>, ApiError> {
    gw.prompts.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "this gateway has no prompt registry ([prompts] dir is not set)",
            None,
            Some("prompts_disabled"),
        )
    })
}

async fn list(State(gw): State<Arc<Gateway>>) -> Result<Json<Value>, ApiError> {
    let p = registry(&gw)?;
    Ok(Json(json!({
        "dir": p.dir().display().to_string(),
        "prompts": p.statuses(),
        "last_reload": p.last_reload(),
    })))
}

async fn reload(State(gw): State<Arc<Gateway>>) -> Result<Json<Value>, ApiError> {
    let p = registry(&gw)?.clone();
    let report = tokio::task::spawn_blocking(move || p.reload())
        .await
        .map_err(|e| internal(e.to_string()))?;
    Ok(Json(json!({"reload": report})))
}

async fn show(
    State(gw): State<Arc<Gateway>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let p = registry(&gw)?;
    let status = p
        .statuses()
        .into_iter()
        .find(|s| s.id == id)
        .ok_or_else(|| not_found(&id))?;
    let versions: Vec<Value> = p
        .current()
        .get(&id)
        .map(|prompt| prompt.versions().map(|v| json!(v)).collect())
        .unwrap_or_default();
    let history = match p.state() {
        Some(state) => activation::history(state, Some(&id), HISTORY)
            .await
            .map_err(|e| internal(e.to_string()))?,
        None => Vec::new(),
    };
    Ok(Json(
        json!({"status": status, "versions": versions, "history": history}),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ActivateBody {
    /// Required, but may be null (unpin): `Option<Option<_>>` tells the two apart.
    #[serde(default, with = "serde_with_null")]
    version: Option<Option<u32>>,
    #[serde(default)]
    by: Option<String>,
    #[serde(default)]
    reason: Option<String>,
}

/// `version: null` is `Some(None)`; an absent `version` is `None`.
mod serde_with_null {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<u32>>, D::Error> {
        Option::<u32>::deserialize(d).map(Some)
    }
}

async fn activate(
    State(gw): State<Arc<Gateway>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    OpenAiJson(body): OpenAiJson<ActivateBody>,
) -> Result<Json<Value>, ApiError> {
    let p = registry(&gw)?;
    let version = body.version.ok_or_else(|| {
        ApiError::invalid(
            "`version` is required (a version number, or null to unpin)",
            Some("version".into()),
        )
    })?;
    let by = body
        .by
        .filter(|b| !b.trim().is_empty())
        .or_else(|| {
            headers
                .get("x-sluice-actor")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        })
        .unwrap_or_else(|| "admin-api".into());
    // Kept forever in the history: bounded like a commit's author line.
    if by.chars().count() > MAX_BY
        || body
            .reason
            .as_ref()
            .is_some_and(|r| r.chars().count() > MAX_REASON)
    {
        return Err(ApiError::invalid(
            format!("`by` is limited to {MAX_BY} characters and `reason` to {MAX_REASON}"),
            None,
        ));
    }
    match p.activate(&id, version, &by, body.reason).await {
        Ok(a) => Ok(Json(json!({"activation": a}))),
        Err(ActivateError::Prompt(e)) => {
            let status = if e.is_not_found() {
                StatusCode::NOT_FOUND
            } else {
                StatusCode::BAD_REQUEST
            };
            Err(ApiError::new(
                status,
                "invalid_request_error",
                e.to_string(),
                Some(e.param().trim_start_matches("prompt.").to_string()),
                Some(e.code()),
            ))
        }
        Err(e) => Err(internal(e.to_string())),
    }
}

fn not_found(id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        format!("the prompt `{id}` does not exist"),
        None,
        Some("prompt_not_found"),
    )
}

fn internal(message: String) -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "server_error",
        message,
        None,
        None,
    )
}
