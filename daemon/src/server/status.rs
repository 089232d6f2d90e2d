//! `GET /api/v1/pipeline` (the camera pipeline's counters and latencies) and `GET /openapi.json`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::AppState;

pub async fn pipeline(State(state): State<AppState>) -> Response {
    match &state.metrics {
        Some(m) => Json(m.snapshot()).into_response(),
        None => (StatusCode::NOT_FOUND, Json(json!({"error": "no camera configured"}))).into_response(),
    }
}

/// `GET /openapi.json`: the OpenAPI document of every route.
pub async fn openapi() -> Response {
    Json(super::openapi_doc()).into_response()
}
