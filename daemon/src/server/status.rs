//! `GET /health` (no auth: liveness and the loaded model) and `GET /api/v1/pipeline` (the camera
//! pipeline's counters and latencies).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::AppState;

pub async fn health(State(state): State<AppState>) -> Response {
    let b = &state.backend;
    Json(json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "model": {
            "name": b.name,
            "version": b.version,
            "precision": b.precision.to_string(),
            "sha256": b.sha256,
            "categories": b.categories.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
        },
        "camera": state.metrics.as_ref().map(|m| m.snapshot().source),
    }))
    .into_response()
}

pub async fn pipeline(State(state): State<AppState>) -> Response {
    match &state.metrics {
        Some(m) => Json(m.snapshot()).into_response(),
        None => (StatusCode::NOT_FOUND, Json(json!({"error": "no camera configured"}))).into_response(),
    }
}
