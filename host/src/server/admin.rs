//! The admin API over the state: usage reports and virtual keys (behind
//! the admin key, see [`super::auth::admin`]). `sluice usage` and `sluice
//! keys` answer the same from the command line.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use serde_json::json;

use super::auth::Auth;
use super::error::ApiError;
use super::extract;
use crate::pipeline::Gateway;
use crate::state::{NewKey, StateError, UsageQuery};

/// `GET /admin/usage?by=key|user|feature|model|day&since=..&until=..`:
/// the report `sluice usage --json` prints.
pub async fn usage(
    State(gw): State<Arc<Gateway>>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let arg = |k: &str| q.get(k).map(String::as_str);
    let query = UsageQuery::parse(
        arg("by"),
        arg("since"),
        arg("until"),
        crate::state::now_ms(),
    )
    .map_err(|e| ApiError::invalid(e, None))?;
    let report = gw
        .state
        .usage(&query)
        .await
        .map_err(|e| ApiError::state(&e))?;
    Ok(Json(report).into_response())
}

/// `GET /admin/keys`: every key, revoked ones marked; never a secret.
pub async fn list_keys(State(gw): State<Arc<Gateway>>) -> Result<Response, ApiError> {
    let keys = gw
        .state
        .list_keys()
        .await
        .map_err(|e| ApiError::state(&e))?;
    Ok(Json(json!({ "keys": keys })).into_response())
}

/// `POST /admin/keys` with a [`NewKey`] body: 201 with the key and its
/// secret, which is not stored and never shown again.
pub async fn create_key(
    State(gw): State<Arc<Gateway>>,
    Extension(auth): Extension<Arc<Auth>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let spec: NewKey = if body.iter().all(u8::is_ascii_whitespace) {
        NewKey::default()
    } else {
        extract::parse(&body)?
    };
    match gw.state.create_key(spec).await {
        Ok(created) => {
            auth.key_created();
            tracing::info!(id = created.key.id, "virtual key created");
            Ok((StatusCode::CREATED, Json(created)).into_response())
        }
        Err(StateError::InvalidKey(why)) => Err(ApiError::invalid(why, None)),
        Err(StateError::DuplicateKey(id)) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "invalid_request_error",
            format!("a key with id `{id}` already exists"),
            Some("id".into()),
            Some("duplicate_key"),
        )),
        Err(e) => Err(ApiError::state(&e)),
    }
}

/// `DELETE /admin/keys/{id}`: revoke; the next request with it is refused
/// on every gateway sharing the store.
pub async fn revoke_key(
    State(gw): State<Arc<Gateway>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    match gw.state.revoke_key(&id).await {
        Ok(true) => {
            tracing::info!(id, "virtual key revoked");
            Ok(Json(json!({ "id": id, "revoked": true })).into_response())
        }
        Ok(false) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            format!("no key with id `{id}`"),
            Some("id".into()),
            Some("key_not_found"),
        )),
        Err(e) => Err(ApiError::state(&e)),
    }
}
