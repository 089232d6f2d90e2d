//! The FaceBlurest-style route: `POST /faceblurest` (also `/FaceBlurest.aspx`), a JSON body with
//! the photo in base64, answered synchronously with the face boxes (fractions of the image) and
//! the blurred photo in base64. Errors are `[{"cd": code, "description": ...}]`.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use serde::{Deserialize, Serialize};

use super::api_error::{ApiError, ApiStyle};
use super::job_errors::inline_error;
use super::AppState;
use crate::jobs::JobOptions;

const STYLE: ApiStyle = ApiStyle::FaceBlurest;
/// The API's own photo size limit.
pub const MAX_PHOTO_BYTES: usize = 5 * 1024 * 1024;

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::bad_request(STYLE, message).with_code(1014)
}

fn too_large() -> ApiError {
    ApiError::new(STYLE, StatusCode::PAYLOAD_TOO_LARGE, "The photo is larger than 5 MB").with_code(1013)
}

#[derive(Deserialize)]
struct Request {
    #[serde(rename = "base64_Photo_String", alias = "base64_photo_string")]
    photo: Option<String>,
    photo_url: Option<String>,
}

#[derive(Serialize)]
struct BoundingBox {
    left: f64,
    top: f64,
    width: f64,
    height: f64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Prediction {
    probability: f64,
    tag_id: &'static str,
    tag_name: &'static str,
    bounding_box: BoundingBox,
}

/// Field order matters to clients that cut `final_photo` out of the text: it comes last.
#[derive(Serialize)]
struct Answer {
    created: String,
    predictions: Vec<Prediction>,
    final_photo: String,
}

fn r4(v: f64) -> f64 {
    (v * 10000.0).round() / 10000.0
}

fn is_no(v: &Option<String>) -> bool {
    v.as_deref().map(str::trim).is_none_or(|s| s.is_empty() || s.eq_ignore_ascii_case("NO"))
}

async fn fetch(url: &str) -> Result<Bytes, ApiError> {
    crate::webhooks::check_url(url).map_err(invalid)?;
    // Public addresses only, every address of the name checked and the one checked connected
    // to, no redirect, no proxy.
    let client = crate::outbound::OutboundPolicy::public_only()
        .client_for(url, std::time::Duration::from_secs(10))
        .await
        .map_err(|e| invalid(format!("photo_url must point to a public address: {e}")))?;
    let mut resp = client.get(url).send().await.map_err(|e| invalid(format!("cannot fetch photo_url: {e}")))?;
    if !resp.status().is_success() {
        return Err(invalid(format!("photo_url answered HTTP {}", resp.status().as_u16())));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| invalid(format!("cannot fetch photo_url: {e}")))? {
        if body.len() + chunk.len() > MAX_PHOTO_BYTES {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(body))
}

pub async fn blur(State(state): State<AppState>, body: Result<Bytes, BytesRejection>) -> Result<Response, ApiError> {
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            too_large()
        } else {
            invalid(format!("cannot read the request body: {}", e.body_text()))
        }
    })?;
    let req: Request = serde_json::from_slice(&body).map_err(|e| invalid(format!("invalid JSON: {e}")))?;
    let photo = if !is_no(&req.photo) {
        let text = req.photo.unwrap_or_default();
        // Accept a data URL prefix and line breaks, as browsers and some encoders produce.
        let text = text.trim();
        let text = text.split_once("base64,").map(|(_, b)| b).unwrap_or(text);
        let clean: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        if clean.len() / 4 * 3 > MAX_PHOTO_BYTES + 3 {
            return Err(too_large());
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(clean.as_bytes())
            .map_err(|e| invalid(format!("base64_Photo_String is not valid base64: {e}")))?;
        Bytes::from(bytes)
    } else if !is_no(&req.photo_url) {
        if !state.api.photo_url_fetch {
            return Err(invalid("photo_url is disabled on this device (api.photo_url_fetch); send base64_Photo_String"));
        }
        fetch(req.photo_url.as_deref().unwrap_or_default().trim()).await?
    } else {
        return Err(invalid("send the photo in base64_Photo_String"));
    };
    if photo.len() > MAX_PHOTO_BYTES {
        return Err(too_large());
    }
    let options = JobOptions { format: Some("jpeg".into()), ..Default::default() }
        .resolve(&state.engine.defaults())
        .map_err(|e| ApiError::internal(STYLE, e))?;
    let done = state.engine.run_inline(photo, options).await.map_err(|e| {
        // The API knows two input errors: over 5 MB (1013) and invalid data (1014, 400).
        let mut err = inline_error(STYLE, e);
        if err.status == StatusCode::PAYLOAD_TOO_LARGE {
            err.code = Some(1013);
        } else if err.status.is_client_error() {
            err.status = StatusCode::BAD_REQUEST;
            err.code = Some(1014);
        }
        err
    })?;
    let (w, h) = (done.width as f64, done.height as f64);
    let predictions = done
        .detections
        .iter()
        .map(|d| Prediction {
            probability: r4(d.score as f64),
            tag_id: "1",
            tag_name: "Human Face",
            bounding_box: BoundingBox {
                left: r4((d.bbox.x1 as f64 / w).clamp(0.0, 1.0)),
                top: r4((d.bbox.y1 as f64 / h).clamp(0.0, 1.0)),
                width: r4((d.bbox.width() as f64 / w).clamp(0.0, 1.0)),
                height: r4((d.bbox.height() as f64 / h).clamp(0.0, 1.0)),
            },
        })
        .collect();
    Ok(Json(Answer {
        created: crate::store::rfc3339(crate::store::now_ms()),
        predictions,
        final_photo: base64::engine::general_purpose::STANDARD.encode(&done.encoded),
    })
    .into_response())
}
