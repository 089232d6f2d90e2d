//! The Xylolabs face-api-style routes: `GET /health`, `POST /api/v1/detect` (JSON) and
//! `POST /api/v1/mask` (the masked image, timings in `X-*` headers). Synchronous: the photo goes
//! through a job worker and back, nothing is stored. Errors are `{"detail": ...}`.

use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::extract::{Query, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use veil_models::Detection;

use super::api_error::{ApiError, ApiStyle};
use super::job_errors::inline_error;
use super::upload_form::{bad_value, UploadForm};
use super::AppState;
use crate::jobs::{JobOptions, Processed, ResolvedOptions};

const STYLE: ApiStyle = ApiStyle::Xylolabs;

pub async fn health(State(state): State<AppState>) -> Response {
    let b = veil_models::Detector::info(state.detector.as_ref());
    let store = state.engine.store().clone();
    let database_ready = tokio::task::spawn_blocking(move || store.is_readable()).await.unwrap_or(false);
    let ready = database_ready && !*state.shutdown.borrow();
    let body = json!({
        "status": if ready { "ok" } else { "degraded" },
        "version": env!("CARGO_PKG_VERSION"),
        "model": state.active_backend(),
        "model_loaded": true,
        "input_size": Value::Null,
        "supports_landmarks": true,
        "database_enabled": true,
        "database_ready": database_ready,
        "storage_enabled": true,
        "storage_ready": database_ready,
        "model_info": {
            "name": b.name,
            "version": b.version,
            "precision": b.precision.to_string(),
            "sha256": b.sha256,
            "categories": b.categories.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
            // `precision = "auto"`: the load-time timings behind the choice (absent otherwise).
            "auto_probe": b.auto_probe,
        },
        "camera": state.metrics.as_ref().map(|m| m.snapshot().source),
    });
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(body)).into_response()
}

/// A query (or form) value by name, any letter case.
fn param<'a>(query: &'a [(String, String)], form: &'a UploadForm, name: &str) -> Option<&'a str> {
    query.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim()).or_else(|| form.text(name))
}

fn number<T: std::str::FromStr>(
    query: &[(String, String)],
    form: &UploadForm,
    name: &str,
) -> Result<Option<T>, ApiError> {
    param(query, form, name).map(|v| v.parse::<T>().map_err(|_| bad_value(STYLE, name, v, "a number"))).transpose()
}

/// `categories`: a comma-separated list (default faces); each must be one this device finds.
fn categories(state: &AppState, query: &[(String, String)], form: &UploadForm) -> Result<Vec<String>, ApiError> {
    let Some(raw) = param(query, form, "categories") else {
        return Ok(Vec::new());
    };
    let available = state.engine.categories();
    let mut out = Vec::new();
    for name in raw.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        match crate::categories::category_of(name) {
            Some(c) if available.contains(&c) => out.push(name.to_ascii_lowercase()),
            _ => {
                let supported = crate::categories::api_names(&available).join(", ");
                return Err(ApiError::unprocessable(
                    STYLE,
                    format!("categories: this device cannot detect '{name}'; supported: {supported}"),
                ));
            }
        }
    }
    Ok(out)
}

fn detect_options(state: &AppState, query: &[(String, String)], form: &UploadForm) -> Result<JobOptions, ApiError> {
    let confidence: Option<f32> = number(query, form, "confidence")?;
    let nms: Option<f32> = number(query, form, "nms_threshold")?;
    for (name, v) in [("confidence", confidence), ("nms_threshold", nms)] {
        if v.is_some_and(|v| !(0.01..=1.0).contains(&v)) {
            return Err(ApiError::unprocessable(STYLE, format!("{name} must be within 0.01..1")));
        }
    }
    Ok(JobOptions {
        confidence,
        nms_threshold: nms,
        max_faces: number(query, form, "max_faces")?,
        categories: categories(state, query, form)?,
        detect_rotations: param(query, form, "detect_rotations").map(str::to_string),
        ..Default::default()
    })
}

pub(super) async fn read_request(
    query: Result<Query<Vec<(String, String)>>, axum::extract::rejection::QueryRejection>,
    mp: Result<Multipart, MultipartRejection>,
) -> Result<(Vec<(String, String)>, UploadForm), ApiError> {
    let Query(query) = query.map_err(|e| ApiError::unprocessable(STYLE, e.body_text()))?;
    let form = UploadForm::read(mp, STYLE).await?;
    Ok((query, form))
}

pub(super) async fn run(
    state: &AppState,
    form: &UploadForm,
    options: ResolvedOptions,
) -> Result<(Processed, usize), ApiError> {
    let file = form.single_file(&["image", "file"], STYLE)?;
    let size = file.bytes.len();
    let done = state.engine.run_inline(file.bytes.clone(), options).await.map_err(|e| inline_error(STYLE, e))?;
    Ok((done, size))
}

fn r2(v: f32) -> f64 {
    (v as f64 * 100.0).round() / 100.0
}

fn r4(v: f64) -> f64 {
    (v * 10000.0).round() / 10000.0
}

fn detection_json(i: usize, d: &Detection, w: u32, h: u32) -> Value {
    let b = d.bbox;
    let (fw, fh) = (w as f64, h as f64);
    let landmarks = d.landmarks.map(|l| {
        let p = |i: usize| json!({"x": r2(l[i].x), "y": r2(l[i].y)});
        json!({"left_eye": p(0), "right_eye": p(1), "nose": p(2), "left_mouth": p(3), "right_mouth": p(4)})
    });
    json!({
        "index": i,
        "category": d.category.as_str(),
        "bbox": {"x1": r2(b.x1), "y1": r2(b.y1), "x2": r2(b.x2), "y2": r2(b.y2)},
        "confidence": r4(d.score as f64),
        "landmarks": landmarks,
        "size": {"width": r2(b.width()), "height": r2(b.height())},
        "area": r2(b.area()),
        "center": {"x": r2((b.x1 + b.x2) / 2.0), "y": r2((b.y1 + b.y2) / 2.0)},
        "relative": {
            "x_center": r4((b.x1 + b.x2) as f64 / 2.0 / fw),
            "y_center": r4((b.y1 + b.y2) as f64 / 2.0 / fh),
            "width": r4(b.width() as f64 / fw),
            "height": r4(b.height() as f64 / fh),
        },
    })
}

fn r2f(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

fn ms(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

pub async fn detect(
    State(state): State<AppState>,
    query: Result<Query<Vec<(String, String)>>, axum::extract::rejection::QueryRejection>,
    mp: Result<Multipart, MultipartRejection>,
) -> Result<Response, ApiError> {
    let (query, form) = read_request(query, mp).await?;
    let requested = detect_options(&state, &query, &form)?;
    let mut options = requested.resolve(&state.engine.defaults()).map_err(|e| ApiError::unprocessable(STYLE, e))?;
    // Detection alone returns no pixels; the caller's thresholds narrow the report as asked.
    options.detect_only = true;
    let report = options.report.clone();
    let (done, size) = run(&state, &form, options).await?;
    let request_id = crate::jobs::new_job_id();
    let body = detect_body(&state, &done, size, &report, &request_id);
    let mut resp = Json(body).into_response();
    set_headers(&mut resp, &state, &request_id, &done);
    Ok(resp)
}

/// The detect answer for a processed photo: the service's `summary`, `processing` and
/// `profiling` blocks, then veil's own fields beside them.
pub(super) fn detect_body(
    state: &AppState,
    done: &Processed,
    size: usize,
    report: &crate::jobs::options::ReportFilter,
    request_id: &str,
) -> Value {
    let t = done.timings;
    let faces: Vec<&veil_models::Detection> =
        done.detections.iter().filter(|d| d.category == veil_models::Category::Face).collect();
    let scores: Vec<f64> = faces.iter().map(|d| d.score as f64).collect();
    let face_area: f64 = faces.iter().map(|d| d.bbox.area() as f64).sum();
    let pixels = done.width as f64 * done.height as f64;
    let (net_w, net_h) = done.network_input;
    json!({
        "summary": {
            "face_count": faces.len(),
            "avg_confidence": (!scores.is_empty()).then(|| r4(scores.iter().sum::<f64>() / scores.len() as f64)),
            "min_confidence": scores.iter().copied().reduce(f64::min).map(r4),
            "max_confidence": scores.iter().copied().reduce(f64::max).map(r4),
            "total_face_area": r2f(face_area),
            "face_area_ratio": r4(if pixels > 0.0 { face_area / pixels } else { 0.0 }),
        },
        "processing": {
            "model": state.active_backend(),
            "input_size": {"width": net_w, "height": net_h},
            "confidence_threshold": r4(report.confidence as f64),
            "nms_threshold": r4(report.nms_threshold as f64),
            "inference_ms": ms(t.inference_ms),
            "total_ms": ms(t.total_ms),
        },
        "profiling": {
            "decode_ms": ms(t.decode_ms),
            "preprocess_ms": ms(t.preprocess_ms),
            // veil's preprocessing makes the network input in one pass (no separate blob step).
            "blob_ms": 0.0,
            "inference_ms": ms(t.inference_ms),
            "postprocess_ms": ms(t.postprocess_ms),
            // Box decoding and suppression are one step in veil, timed as postprocess.
            "nms_ms": 0.0,
            "mask_ms": ms(t.mask_ms),
            "encode_ms": ms(t.encode_ms),
            "storage_ms": 0.0,
            "total_ms": ms(t.total_ms),
            "candidates_before_nms": Value::Null,
            "candidates_after_nms": done.masked.len(),
            "det_scale": r4(if done.width > 0 { net_w as f64 / done.width as f64 } else { 0.0 }),
            "input_resolution": format!("{}x{}", done.width, done.height),
            "det_resolution": format!("{net_w}x{net_h}"),
            "input_bytes": size,
            "output_bytes": done.encoded.len(),
            "input_pixels": done.width as u64 * done.height as u64,
            "model_name": state.active_backend(),
        },
        "request_id": request_id,
        "image_id": Value::Null,
        "job_id": Value::Null,
        "image": {"width": done.width, "height": done.height, "channels": 3, "size_bytes": size},
        "detections": done.detections.iter().enumerate().map(|(i, d)| detection_json(i, d, done.width, done.height)).collect::<Vec<_>>(),
        "face_count": count(done, veil_models::Category::Face),
        "plate_count": count(done, veil_models::Category::LicensePlate),
        "network_input": {"width": done.network_input.0, "height": done.network_input.1},
        "model": state.active_backend(),
        "timings": {
            "decode_ms": ms(t.decode_ms),
            "preprocess_ms": ms(t.preprocess_ms),
            "inference_ms": ms(t.inference_ms),
            "postprocess_ms": ms(t.postprocess_ms),
            "total_ms": ms(t.total_ms),
        },
    })
}

pub async fn mask(
    State(state): State<AppState>,
    query: Result<Query<Vec<(String, String)>>, axum::extract::rejection::QueryRejection>,
    mp: Result<Multipart, MultipartRejection>,
) -> Result<Response, ApiError> {
    let (query, form) = read_request(query, mp).await?;
    let resolved = mask_options(&state, &query, &form)?;
    let (done, _) = run(&state, &form, resolved).await?;
    let request_id = crate::jobs::new_job_id();
    let mime = done.format.mime();
    let mut resp = ([(axum::http::header::CONTENT_TYPE, mime)], done.encoded.clone()).into_response();
    set_headers(&mut resp, &state, &request_id, &done);
    Ok(resp)
}

/// The mask request's options: the detect fields plus `method`, `strength` (0..1, a percentage,
/// or the service's scale up to 199), `padding`, `format` and `quality` (default 95).
pub(super) fn mask_options(
    state: &AppState,
    query: &[(String, String)],
    form: &UploadForm,
) -> Result<ResolvedOptions, ApiError> {
    let mut options = detect_options(state, query, form)?;
    let method = param(query, form, "method").unwrap_or("gaussian").to_ascii_lowercase();
    // "elliptical" is a blur inside the ellipse around the face; the other methods fill the box.
    let (name, shape) = match method.as_str() {
        "gaussian" | "blur" => ("gaussian", "rect"),
        "elliptical" | "ellipse" => ("gaussian", "ellipse"),
        "pixelate" | "pixelation" => ("pixelate", "rect"),
        "solid" | "blackfill" => ("solid", "rect"),
        other => return Err(bad_value(STYLE, "method", other, "gaussian, pixelate, solid or elliptical")),
    };
    options.method = Some(name.into());
    options.shape = Some(param(query, form, "shape").unwrap_or(shape).to_string());
    // Never below veil's floor (raised in `resolve`).
    options.strength = number::<f32>(query, form, "strength")?.map(|s| match s {
        s if s > 100.0 => (s / 199.0).min(1.0),
        s if s > 1.0 => s / 100.0,
        s => s,
    });
    options.padding = number(query, form, "padding")?;
    options.format = param(query, form, "format").map(|f| f.to_ascii_lowercase());
    options.quality = number(query, form, "quality")?.or(Some(95));
    options.resolve(&state.engine.defaults()).map_err(|e| ApiError::unprocessable(STYLE, e))
}

fn count(done: &Processed, category: veil_models::Category) -> usize {
    done.detections.iter().filter(|d| d.category == category).count()
}

fn masked(done: &Processed, category: veil_models::Category) -> usize {
    done.masked.iter().filter(|d| d.category == category).count()
}

fn set_headers(resp: &mut Response, state: &AppState, request_id: &str, done: &Processed) {
    let t = done.timings;
    let values = [
        ("x-request-id", request_id.to_string()),
        ("x-face-count", count(done, veil_models::Category::Face).to_string()),
        ("x-plate-count", count(done, veil_models::Category::LicensePlate).to_string()),
        // What was masked, which the request's parameters never narrow (the masking floor).
        ("x-masked-face-count", masked(done, veil_models::Category::Face).to_string()),
        ("x-masked-plate-count", masked(done, veil_models::Category::LicensePlate).to_string()),
        ("x-inference-ms", format!("{:.1}", t.inference_ms)),
        ("x-mask-ms", format!("{:.1}", t.mask_ms)),
        ("x-encode-ms", format!("{:.1}", t.encode_ms)),
        ("x-total-ms", format!("{:.1}", t.total_ms)),
        ("x-model", state.active_backend()),
    ];
    for (k, v) in values {
        if let Ok(v) = HeaderValue::from_str(&v) {
            resp.headers_mut().insert(HeaderName::from_static(k), v);
        }
    }
}
