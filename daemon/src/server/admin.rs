//! Key management over HTTP for admin keys (`veil keys create --admin`): list, create (the key
//! is in the answer, once), revoke. Errors are `{"error": ...}`; a non-admin key gets 403.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::json;

use super::api_error::{ApiError, ApiStyle, InStyle};
use super::auth::Caller;
use super::AppState;
use crate::store::StoreError;

const STYLE: ApiStyle = ApiStyle::Veil;

fn require_admin(caller: Caller) -> Result<(), ApiError> {
    if caller.key_id.is_none() {
        // With auth off anyone could mint keys that keep working once auth is back on.
        return Err(ApiError::new(STYLE, StatusCode::FORBIDDEN, "Key management needs api.auth = true"));
    }
    if caller.admin {
        Ok(())
    } else {
        Err(ApiError::new(STYLE, StatusCode::FORBIDDEN, "This key may not manage keys (make one with veil keys create --admin)"))
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, StoreError> + Send + 'static) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(|_| ApiError::internal(STYLE, "key task failed"))?.in_style(STYLE)
}

pub async fn list(State(state): State<AppState>, Extension(caller): Extension<Caller>) -> Result<Response, ApiError> {
    require_admin(caller)?;
    let store = state.engine.store().clone();
    let keys = blocking(move || store.list_keys()).await?;
    Ok(Json(json!({"keys": keys})).into_response())
}

/// A key to create: its name and whether it is an admin key (veil's routes and the Xylolabs
/// admin API's take the same body).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    pub(super) name: String,
    #[serde(default)]
    pub(super) admin: bool,
}

pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Result<Json<NewKey>, JsonRejection>,
) -> Result<Response, ApiError> {
    require_admin(caller)?;
    let Json(new) = body.map_err(|e| ApiError::unprocessable(STYLE, e.body_text()))?;
    let name = crate::store::keys::key_name(&new.name)
        .ok_or_else(|| ApiError::unprocessable(STYLE, "name must be 1..100 characters"))?
        .to_string();
    let store = state.engine.store().clone();
    let (record, key) = blocking(move || store.create_key(&name, new.admin)).await?;
    Ok((StatusCode::CREATED, Json(json!({"key": key, "record": record}))).into_response())
}

pub async fn revoke(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    require_admin(caller)?;
    if id.is_empty() || id.len() > 20 || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(ApiError::not_found(STYLE, "No such key"));
    }
    let store = state.engine.store().clone();
    match tokio::task::spawn_blocking(move || store.revoke_key(&id)).await {
        Ok(Ok(record)) => Ok(Json(json!({"record": record})).into_response()),
        Ok(Err(StoreError::NotFound(m))) => Err(ApiError::not_found(STYLE, m)),
        Ok(Err(e)) => Err(ApiError::internal(STYLE, e.to_string())),
        Err(_) => Err(ApiError::internal(STYLE, "key task failed")),
    }
}
