//! `GET /api/v1/device`: one look at the device for the field page and the laptop's tools: board
//! telemetry, the camera pipeline's counters, and the redaction defaults an upload gets.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::json;
use veil_redact::{Method, Shape};

use super::api_error::{ApiError, ApiStyle};
use super::auth::Caller;
use super::piiblur::supported_categories;
use super::AppState;
use crate::jobs::options::MIN_STRENGTH;

pub async fn device(State(state): State<AppState>, Extension(caller): Extension<Caller>) -> Result<Response, ApiError> {
    let task = tokio::task::spawn_blocking(move || {
        let telemetry = state.telemetry_sample();
        let supported = supported_categories(&state);
        let d = state.engine.defaults();
        // f32 settings as people write them (0.6, not 0.6000000238).
        let r2 = |v: f32| (f64::from(v) * 100.0).round() / 100.0;
        let (method, strength) = match d.style.method {
            Method::Gaussian { strength } => ("gaussian", Some(r2(strength))),
            Method::Pixelate { .. } => ("pixelate", None),
            Method::Solid { .. } => ("solid", None),
        };
        json!({
            "version": env!("CARGO_PKG_VERSION"),
            "backend": state.active_backend(),
            "telemetry": telemetry,
            "pipeline": state.metrics.as_ref().map(|m| m.snapshot()),
            "preview": state.preview_enabled,
            "defaults": {
                "method": method,
                "strength": strength,
                "min_strength": r2(MIN_STRENGTH),
                "shape": match d.style.shape { Shape::Rect => "rect", Shape::Ellipse => "ellipse" },
                "padding": r2(d.style.padding),
                "confidence": r2(d.params.confidence),
                // What an upload from the field page asks for unless the crew ticks more: the
                // faces and plates the device finds, as its camera masks by default ("heads" and
                // "faces" are one detector); codes and text are offered, not preselected.
                "categories": supported.iter().filter(|c| matches!(**c, "faces" | "license_plates")).collect::<Vec<_>>(),
            },
            "methods": ["gaussian", "pixelate", "solid"],
            "shapes": ["ellipse", "rect"],
            "supported_categories": supported,
            "max_upload_bytes": state.api.max_upload_bytes,
            // The caller's key may use the admin API (the field page then opens its console).
            "admin_key": caller.admin && caller.key_id.is_some(),
        })
    });
    match task.await {
        Ok(body) => Ok(Json(body).into_response()),
        Err(_) => Err(ApiError::internal(ApiStyle::Veil, "device task failed")),
    }
}
