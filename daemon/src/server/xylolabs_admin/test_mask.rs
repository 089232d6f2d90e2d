//! `POST /api/v1/admin/test/mask`: the console's try-it route. One photo through detection and
//! masking at once (nothing stored): the detect answer's fields plus `masking` and `output`
//! with the masked image as base64.

use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use serde_json::json;

use crate::server::api_error::ApiError;
use crate::server::xylolabs::{detect_body, mask_options, read_request, run};
use crate::server::AppState;

pub async fn test_mask(
    State(state): State<AppState>,
    query: Result<Query<Vec<(String, String)>>, axum::extract::rejection::QueryRejection>,
    mp: Result<Multipart, MultipartRejection>,
) -> Result<Response, ApiError> {
    let (query, form) = read_request(query, mp).await?;
    let options = mask_options(&state, &query, &form)?;
    let report = options.report.clone();
    let style = options.style;
    let quality = options.quality;
    let (done, size) = run(&state, &form, options).await?;
    let request_id = crate::jobs::new_job_id();
    let mut body = detect_body(&state, &done, size, &report, &request_id);
    let (method, strength) = match style.method {
        veil_redact::Method::Gaussian { strength } => ("gaussian", Some(strength)),
        veil_redact::Method::Pixelate { .. } => ("pixelate", None),
        veil_redact::Method::Solid { .. } => ("solid", None),
    };
    body["masking"] = json!({
        "method": method,
        // The service's scale (to 199) beside veil's 0..1.
        "strength": strength.map(|s| (s * 199.0).round() as i64),
        "strength_fraction": strength,
        "shape": format!("{:?}", style.shape).to_ascii_lowercase(),
        "padding": style.padding,
        "regions_masked": done.masked.len(),
        "mask_ms": (done.timings.mask_ms * 1000.0).round() / 1000.0,
    });
    let format = match done.format.mime() {
        "image/png" => "png",
        "image/webp" => "webp",
        _ => "jpeg",
    };
    body["output"] = json!({
        "format": format,
        "quality": (format == "jpeg").then_some(quality),
        "size_bytes": done.encoded.len(),
        "image_base64": base64::engine::general_purpose::STANDARD.encode(&done.encoded),
        "encode_ms": (done.timings.encode_ms * 1000.0).round() / 1000.0,
    });
    Ok(Json(body).into_response())
}
