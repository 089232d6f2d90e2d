//! `/api/v1/admin/api-keys`: the Xylolabs admin API's key management over veil's keys. A new
//! key is in the creation answer once; records show its prefix, last four characters and use.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{blocking, page_params, paginated, PageQuery, STYLE};
use crate::server::admin::NewKey;
use crate::server::api_error::ApiError;
use crate::server::AppState;
use crate::store::keys::ApiKey;
use crate::store::rfc3339;

/// A key's record in the service's names (veil's `admin` and `revoked_at` beside them).
pub(super) fn key_json(k: &ApiKey) -> Value {
    let prefix = format!("veil_{}", k.prefix);
    let suffix = k.key_suffix.clone().unwrap_or_default();
    json!({
        "id": k.id,
        "name": k.name,
        "key_prefix": prefix,
        "key_suffix": suffix,
        "key_preview": format!("{prefix}...{suffix}"),
        "is_active": k.is_active(),
        "request_count": k.request_count,
        "last_used_at": k.last_used_at.map(|s| rfc3339(s * 1000)),
        "created_at": rfc3339(k.created_at * 1000),
        "admin": k.admin,
        "revoked_at": k.revoked_at.map(|s| rfc3339(s * 1000)),
    })
}

fn key_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse::<i64>().map_err(|_| ApiError::unprocessable(STYLE, format!("key id must be an integer, not '{raw}'")))
}

fn not_found() -> ApiError {
    ApiError::not_found(STYLE, "API key not found")
}

fn valid_name(name: &str) -> Result<String, ApiError> {
    crate::store::keys::key_name(name)
        .map(str::to_string)
        .ok_or_else(|| ApiError::unprocessable(STYLE, "name must be 1..100 characters"))
}

/// `POST /api/v1/admin/api-keys` `{name}` (veil's `admin` beside it): 201 with the record and,
/// this once, the `key`.
pub async fn create(
    State(state): State<AppState>,
    body: Result<Json<NewKey>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(new) = body.map_err(|e| ApiError::unprocessable(STYLE, e.body_text()))?;
    let name = valid_name(&new.name)?;
    let store = state.engine.store().clone();
    let (record, key) = blocking(move || store.create_key(&name, new.admin)).await?;
    let mut body = key_json(&record);
    body["key"] = json!(key);
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// `GET /api/v1/admin/api-keys?page=&page_size=`: every key, oldest first.
pub async fn list(
    State(state): State<AppState>,
    query: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let (page, page_size) = page_params(query)?;
    let store = state.engine.store().clone();
    let keys = blocking(move || store.list_keys()).await?;
    let total = keys.len() as i64;
    let items: Vec<Value> =
        keys.iter().skip(((page - 1) * page_size) as usize).take(page_size as usize).map(key_json).collect();
    Ok(Json(paginated(items, total, page, page_size)).into_response())
}

pub async fn show(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let id = key_id(&id)?;
    let store = state.engine.store().clone();
    let key = blocking(move || store.get_key(id)).await?.ok_or_else(not_found)?;
    Ok(Json(key_json(&key)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyChange {
    name: Option<String>,
    is_active: Option<bool>,
}

/// `PATCH /api/v1/admin/api-keys/{id}` `{name?, is_active?}`: rename, disable or enable. A key
/// revoked with `veil keys revoke` stays revoked.
pub async fn update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Result<Json<KeyChange>, JsonRejection>,
) -> Result<Response, ApiError> {
    let id = key_id(&id)?;
    let Json(change) = body.map_err(|e| ApiError::unprocessable(STYLE, e.body_text()))?;
    let name = change.name.as_deref().map(valid_name).transpose()?;
    let store = state.engine.store().clone();
    let key = blocking(move || store.update_key(id, name.as_deref(), change.is_active)).await?.ok_or_else(not_found)?;
    Ok(Json(key_json(&key)).into_response())
}

/// `DELETE /api/v1/admin/api-keys/{id}`: the key stops working at once (204).
pub async fn delete(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let id = key_id(&id)?;
    let store = state.engine.store().clone();
    if blocking(move || store.delete_key(id)).await? {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(not_found())
    }
}
