//! `/admin/cache`: the response cache's counters and purges (behind the
//! admin key). `sluice cache stats|purge` answers the same from the
//! command line.
//!
//! - `GET /admin/cache`: [`crate::cache::Stats`] as JSON.
//! - `DELETE /admin/cache?model=M&key=K` (or `POST /admin/cache/purge`
//!   with the same query): delete entries of gateway model `M` and/or
//!   virtual key `K` (both optional: everything), on every gateway sharing
//!   the store; answers `{"purged": N}`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::response::Json;
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::error::ApiError;
use crate::pipeline::Gateway;

pub fn routes() -> Router<Arc<Gateway>> {
    Router::new()
        .route("/admin/cache", get(stats).delete(purge))
        .route("/admin/cache/purge", post(purge))
}

async fn stats(State(gw): State<Arc<Gateway>>) -> Result<Json<crate::cache::Stats>, ApiError> {
    gw.cache.stats().await.map(Json).map_err(store_error)
}

async fn purge(
    State(gw): State<Arc<Gateway>>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let arg = |k: &str| q.get(k).map(String::as_str).filter(|s| !s.is_empty());
    let n = gw
        .cache
        .purge(arg("model"), arg("key"))
        .await
        .map_err(store_error)?;
    Ok(Json(json!({ "purged": n })))
}

fn store_error(e: crate::state::StoreError) -> ApiError {
    ApiError::state(&crate::state::StateError::Store(e))
}
