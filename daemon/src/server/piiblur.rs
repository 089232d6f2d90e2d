//! The PiiBlur-style media API (Bearer auth): queued redaction of uploads, media records with
//! download and original, paginated listing, deletion and usage. Errors are `{"error": ...}`.

use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{json, Value};

use super::api_error::{ApiError, ApiStyle, InStyle};
use super::auth::Caller;
use super::cloak::{owned_job, read_result, submit_upload, webhook_url};
use super::upload_form::{bad_value, UploadForm, VideoSpool};
use super::AppState;
use crate::jobs::{JobOptions, VideoUpload};
use crate::store::jobs::{Job, JobFilter, JobStatus};
use crate::store::rfc3339;

const STYLE: ApiStyle = ApiStyle::PiiBlur;
const PER_PAGE: i64 = 20;
/// The upload route, the one that takes videos (its body limit is the video limit).
pub const MEDIA_UPLOAD_PATH: &str = "/api/v1/media/redact";

/// Every category the PiiBlur API names (what this device finds depends on its backend).
const KNOWN_CATEGORIES: &[&str] = &[
    "heads", "faces", "license_plates", "screens", "writing", "street_signs", "id_cards", "passports",
    "credit_cards", "name_badges", "qr_codes", "barcodes", "documents", "tattoos",
    // veil's extra beside PiiBlur's thirteen: whole people (the `persons` backend).
    "people",
];

/// The PiiBlur category names this device's upload backend can hide now.
pub(super) fn supported_categories(state: &AppState) -> Vec<&'static str> {
    crate::categories::api_names(&state.engine.categories())
}

fn categories(form: &UploadForm, supported: &[&str]) -> Result<Vec<String>, ApiError> {
    let mut out: Vec<String> = Vec::new();
    for raw in form.texts(&["pii_categories[]", "pii_categories", "categories[]", "categories"]) {
        // A single field may also carry a comma-separated list or a JSON array.
        let items: Vec<String> = match serde_json::from_str::<Vec<String>>(raw) {
            Ok(list) => list,
            Err(_) => raw.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect(),
        };
        for item in items {
            let mut c = item.to_ascii_lowercase();
            // MaskIt's spelling of the same category.
            if c == "licenseplates" {
                c = "license_plates".into();
            }
            if !out.contains(&c) {
                out.push(c);
            }
        }
    }
    if out.is_empty() {
        return Err(ApiError::unprocessable(STYLE, "pii_categories is required: name at least one category")
            .with_extra(json!({"supported_categories": supported})));
    }
    for c in &out {
        if !KNOWN_CATEGORIES.contains(&c.as_str()) {
            return Err(ApiError::unprocessable(STYLE, format!("Unknown category '{c}'"))
                .with_extra(json!({"supported_categories": supported})));
        }
        if !supported.contains(&c.as_str()) {
            return Err(ApiError::unprocessable(
                STYLE,
                format!("This device cannot detect '{c}'; supported categories: {}", supported.join(", ")),
            )
            .with_extra(json!({"supported_categories": supported})));
        }
    }
    Ok(out)
}

pub async fn redact(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    mp: Result<Multipart, MultipartRejection>,
) -> Result<Response, ApiError> {
    let spool = VideoSpool {
        dir: state.engine.spool_dir(),
        max_video_bytes: state.api.max_video_bytes as u64,
        max_image_bytes: state.api.max_upload_bytes as u64,
    };
    let mut form = UploadForm::read_with(mp, STYLE, Some(&spool)).await?;
    form.single_file(&["file"], STYLE)?;
    let video = form.take_video(&["file"]);
    let file = form.single_file(&["file"], STYLE)?;
    let categories = categories(&form, &supported_categories(&state))?;
    let method = form.text("obfuscation_type").or_else(|| form.text("redaction_method")).unwrap_or("blur");
    let mut method = match method.to_ascii_lowercase().as_str() {
        "blur" => "gaussian".to_string(),
        "pixelation" | "pixelate" => "pixelate".to_string(),
        other => return Err(bad_value(STYLE, "obfuscation_type", other, "blur or pixelation")),
    };
    // veil's own finer controls (the field page sends them): method, shape, strength, padding.
    if let Some(m) = form.text("method") {
        method = m.to_ascii_lowercase();
    }
    let number = |name: &str| -> Result<Option<f32>, ApiError> {
        form.text(name)
            .map(|v| v.parse::<f32>().ok().filter(|x| x.is_finite()).ok_or_else(|| bad_value(STYLE, name, v, "a number")))
            .transpose()
    };
    let strength = number("strength")?.map(|s| if s > 1.0 { s / 100.0 } else { s });
    // README: strength is 0.3..1 (or 30..100); weaker is refused, not quietly raised.
    if let Some(s) = strength.filter(|s| !(crate::jobs::options::MIN_STRENGTH..=1.0).contains(s)) {
        return Err(bad_value(STYLE, "strength", &s.to_string(), "0.3..1 (or 30..100)"));
    }
    let padding = number("padding")?;
    let webhook = webhook_url(&state, &form, STYLE).await?;
    let options = JobOptions {
        method: Some(method),
        shape: form.text("shape").map(str::to_string),
        strength,
        padding,
        categories,
        detect_rotations: form.text("detect_rotations").map(str::to_string),
        ..Default::default()
    };
    // Refuse bad values now (422 naming the field), not as a failed job later.
    options.resolve(&state.engine.defaults()).map_err(|e| ApiError::unprocessable(STYLE, e))?;
    let job = match video {
        Some(video) => submit_video(&state, caller, file.filename.clone(), video, options, webhook).await?,
        None => submit_upload(&state, caller, ("piiblur", STYLE), file, options, webhook).await?,
    };
    Ok((StatusCode::CREATED, Json(json!({"media_id": job.id, "status": "queued", "media_type": job.media_type}))).into_response())
}

async fn submit_video(
    state: &AppState,
    caller: Caller,
    filename: Option<String>,
    video: super::upload_form::SpooledVideo,
    options: JobOptions,
    webhook: Option<String>,
) -> Result<Job, ApiError> {
    let engine = state.engine.clone();
    tokio::task::spawn_blocking(move || {
        engine.submit_video(VideoUpload {
            api: "piiblur",
            key_id: caller.key_id,
            filename: filename.as_deref(),
            file: video.path,
            bytes: video.bytes,
            options: &options,
            webhook_url: webhook.as_deref(),
        })
    })
    .await
    .map_err(|_| ApiError::internal(STYLE, "upload task failed"))?
    .map_err(|e| super::job_errors::submit_error(STYLE, e))
}

fn media_json(job: &Job, serve_originals: bool) -> Value {
    let options: JobOptions = serde_json::from_str(&job.options).unwrap_or_default();
    let completed = job.status == JobStatus::Completed;
    let result_kept = completed && job.result_deleted_at.is_none();
    let original_kept = serve_originals && job.status.is_finished() && job.original_deleted_at.is_none();
    let detections: Value = job.detections.as_deref().and_then(|d| serde_json::from_str(d).ok()).unwrap_or(json!([]));
    json!({
        "media_id": job.id,
        "id": job.id,
        "status": job.status.as_str(),
        "media_type": job.media_type,
        "file_name": job.filename,
        "original_filename": job.filename,
        "file_size": job.original_bytes,
        "pii_categories": options.categories,
        "obfuscation_type": if options.method.as_deref() == Some("pixelate") { "pixelation" } else { "blur" },
        "method": options.method,
        "width": job.width,
        "height": job.height,
        "detections_count": job.faces,
        "detections": detections,
        "error": job.error,
        "error_message": job.error,
        "created_at": rfc3339(job.created_at),
        "completed_at": job.completed_at.map(rfc3339),
        "processed_at": job.completed_at.map(rfc3339),
        "processing_ms": job.started_at.zip(job.completed_at).map(|(a, b)| (b - a).max(0)),
        "download_url": result_kept.then(|| format!("/api/v1/media/{}/download", job.id)),
        "original_url": original_kept.then(|| format!("/api/v1/media/{}/original", job.id)),
        "original_deleted_at": job.original_deleted_at.map(rfc3339),
        "result_deleted_at": job.result_deleted_at.map(rfc3339),
        "duration_s": job.duration_ms.map(|ms| ms as f64 / 1000.0),
        "frames": job.frames,
        "frames_done": job.frames_done,
        "progress": (job.progress() * 1000.0).round() / 1000.0,
    })
}

pub async fn show(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let job = owned_job(&state, caller, &id, STYLE).await?;
    Ok(Json(media_json(&job, state.api.serve_originals)).into_response())
}

pub async fn download(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let job = owned_job(&state, caller, &id, STYLE).await?;
    match job.status {
        JobStatus::Queued | JobStatus::Processing => Err(ApiError::new(
            STYLE,
            StatusCode::CONFLICT,
            format!("Media {id} is still {}", job.status.as_str()),
        )
        .with_header(header::RETRY_AFTER, "1")),
        JobStatus::Failed => Err(ApiError::unprocessable(
            STYLE,
            format!("Media {id} failed: {}", job.error.as_deref().unwrap_or("unknown reason")),
        )),
        JobStatus::Completed if job.is_video() => {
            let path = state
                .engine
                .result_path(&job)
                .ok_or_else(|| ApiError::not_found(STYLE, format!("The result of media {id} has expired")))?;
            stream_file(&path, job.result_mime.as_deref().unwrap_or("video/mp4"), &result_name(&job, "redacted"), STYLE).await
        }
        JobStatus::Completed => {
            let bytes = read_result(&state, &job, STYLE)
                .await?
                .ok_or_else(|| ApiError::not_found(STYLE, format!("The result of media {id} has expired")))?;
            Ok(file_response(bytes, job.result_mime.as_deref(), &result_name(&job, "redacted")))
        }
    }
}

pub async fn original(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let job = owned_job(&state, caller, &id, STYLE).await?;
    if !state.api.serve_originals {
        return Err(ApiError::not_found(
            STYLE,
            "Originals are not served by this device (needs jobs.keep_originals_hours > 0 and api.serve_originals = true)",
        ));
    }
    let name = job.filename.clone().unwrap_or_else(|| job.id.clone());
    if job.is_video() {
        let path = state.engine.original_path(&job).ok_or_else(|| {
            let why = if job.status.is_finished() { "has been deleted" } else { "is not available before the job ends" };
            ApiError::not_found(STYLE, format!("The original of media {id} {why}"))
        })?;
        return stream_file(&path, "application/octet-stream", &name, STYLE).await;
    }
    let engine = state.engine.clone();
    let held = job.clone();
    let bytes = tokio::task::spawn_blocking(move || engine.original(&held))
        .await
        .map_err(|_| ApiError::internal(STYLE, "read failed"))?
        .ok_or_else(|| {
            let why = if job.status.is_finished() { "has been deleted" } else { "is not available before the job ends" };
            ApiError::not_found(STYLE, format!("The original of media {id} {why}"))
        })?;
    Ok(file_response(bytes, None, &name))
}

/// A file sent as it is read (a video may be hundreds of megabytes), with its length.
pub(super) async fn stream_file(path: &std::path::Path, mime: &str, name: &str, style: ApiStyle) -> Result<Response, ApiError> {
    let file = tokio::fs::File::open(path).await.map_err(|e| ApiError::internal(style, format!("cannot read the file: {e}")))?;
    let len = file.metadata().await.map_err(|e| ApiError::internal(style, format!("cannot read the file: {e}")))?.len();
    let body = axum::body::Body::from_stream(tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024));
    Ok((
        [
            (header::CONTENT_TYPE, mime.to_string()),
            (header::CONTENT_LENGTH, len.to_string()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{}\"", safe_file_name(name))),
        ],
        body,
    )
        .into_response())
}

fn safe_file_name(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_graphic() && c != '"' && c != '\\' { c } else { '_' }).collect()
}

/// `PREFIX-<upload's stem>.<result's extension>`, the name a result downloads as.
pub(super) fn result_name(job: &Job, prefix: &str) -> String {
    let ext = match job.result_mime.as_deref() {
        Some("image/png") => "png",
        Some("image/webp") => "webp",
        Some("video/mp4") => "mp4",
        Some("video/quicktime") => "mov",
        Some("video/webm") => "webm",
        Some("video/x-matroska") => "mkv",
        _ => "jpg",
    };
    let stem = job
        .filename
        .as_deref()
        .and_then(|f| std::path::Path::new(f).file_stem())
        .and_then(|s| s.to_str())
        .unwrap_or("image")
        .to_string();
    format!("{prefix}-{stem}.{ext}")
}

pub(super) fn file_response(bytes: Vec<u8>, mime: Option<&str>, name: &str) -> Response {
    let mime = mime.map(str::to_string).unwrap_or_else(|| match image::guess_format(&bytes) {
        Ok(image::ImageFormat::Png) => "image/png".into(),
        Ok(image::ImageFormat::WebP) => "image/webp".into(),
        Ok(image::ImageFormat::Jpeg) => "image/jpeg".into(),
        _ => "application/octet-stream".into(),
    });
    let safe = safe_file_name(name);
    ([(header::CONTENT_TYPE, mime), (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{safe}\""))], bytes)
        .into_response()
}

pub async fn delete(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let job = owned_job(&state, caller, &id, STYLE).await?;
    let engine = state.engine.clone();
    tokio::task::spawn_blocking(move || engine.delete(&job))
        .await
        .map_err(|_| ApiError::internal(STYLE, "delete task failed"))?
        .in_style(STYLE)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    query: Result<Query<Vec<(String, String)>>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::unprocessable(STYLE, e.body_text()))?;
    let get = |name: &str| query.iter().find(|(k, _)| k == name).map(|(_, v)| v.trim()).filter(|v| !v.is_empty());
    let status = match get("status") {
        Some(s) => Some(
            JobStatus::parse(&s.to_ascii_lowercase())
                .ok_or_else(|| bad_value(STYLE, "status", s, "queued, processing, completed or failed"))?,
        ),
        None => None,
    };
    let media_type = match get("media_type") {
        Some(m) if m.eq_ignore_ascii_case("image") => Some("image".to_string()),
        Some(m) if m.eq_ignore_ascii_case("video") => Some("video".to_string()),
        Some(m) => return Err(bad_value(STYLE, "media_type", m, "image or video")),
        None => None,
    };
    let page: i64 = match get("page") {
        Some(p) => p.parse().ok().filter(|p| (1..=1_000_000).contains(p)).ok_or_else(|| bad_value(STYLE, "page", p, "a page number from 1"))?,
        None => 1,
    };
    let filter = JobFilter { key_id: Some(caller.key_id), api: Some("piiblur".into()), status, media_type, ..Default::default() };
    let store = state.engine.store().clone();
    let (jobs, total) = tokio::task::spawn_blocking(move || store.list_jobs(&filter, (page - 1) * PER_PAGE, PER_PAGE))
        .await
        .map_err(|_| ApiError::internal(STYLE, "list task failed"))?
        .in_style(STYLE)?;
    let last_page = ((total + PER_PAGE - 1) / PER_PAGE).max(1);
    Ok(Json(json!({
        "data": jobs.iter().map(|j| media_json(j, state.api.serve_originals)).collect::<Vec<_>>(),
        "current_page": page,
        "last_page": last_page,
        "per_page": PER_PAGE,
        "total": total,
    }))
    .into_response())
}

pub async fn usage(State(state): State<AppState>, Extension(caller): Extension<Caller>) -> Result<Response, ApiError> {
    let store = state.engine.store().clone();
    let now = crate::store::now_ms();
    let day = now.div_euclid(86_400_000);
    let (period_start, period_end) = crate::store::month_bounds_ms(now);
    let (totals, today, (images, video_ms)) = tokio::task::spawn_blocking(move || -> Result<_, crate::store::StoreError> {
        let totals = store.job_totals(caller.key_id)?;
        let today = match caller.key_id {
            Some(k) => store.requests_on(k, day)?,
            None => 0,
        };
        let period = store.usage_between(caller.key_id, period_start, period_end)?;
        Ok((totals, today, period))
    })
    .await
    .map_err(|_| ApiError::internal(STYLE, "usage task failed"))?
    .in_style(STYLE)?;
    let limiter = &state.auth.limiter;
    let minutes = |ms: i64| (ms as f64 / 60_000.0 * 100.0).round() / 100.0;
    Ok(Json(json!({
        // PiiBlur's documented shape: a plan and its period (the calendar month, UTC); a device
        // has no quota, so the limits are null.
        "plan": "device",
        "period_start": rfc3339(period_start),
        "period_end": rfc3339(period_end),
        "images": {"used": images, "limit": null},
        "video_minutes": {"used": minutes(video_ms), "limit": null},
        // veil's own figures beside them.
        "requests_today": today,
        "limits": {
            "requests_per_minute": limiter.per_minute(),
            "requests_per_day": limiter.per_day(),
            "max_upload_bytes": state.api.max_upload_bytes,
            "max_video_bytes": state.api.max_video_bytes,
            "max_video_seconds": state.engine.config().max_video_seconds,
        },
        "media": {
            "total": totals.total,
            "queued": totals.queued,
            "processing": totals.processing,
            "completed": totals.completed,
            "failed": totals.failed,
        },
        "detections_redacted": totals.faces,
        "uploaded_bytes": totals.uploaded_bytes,
        "stored_result_bytes": totals.stored_result_bytes,
        "video_minutes_total": minutes(totals.video_ms),
        "supported_categories": supported_categories(&state),
    }))
    .into_response())
}
