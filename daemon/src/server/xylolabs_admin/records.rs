//! The admin API's view of what the device holds: `/stats`, `/images` and `/jobs`. Every
//! upload any API took is one job row in the engine's store; here it is an image (the upload)
//! and its one masking job. Downloads answer 302 to the file routes below them; an original
//! is only there while retention keeps it and `api.serve_originals` is on (404 otherwise).

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{blocking, page_params, paginated, PageQuery, STYLE};
use crate::jobs::JobOptions;
use crate::server::api_error::ApiError;
use crate::server::AppState;
use crate::store::jobs::{Job, JobFilter, JobStatus};
use crate::store::rfc3339;

/// The masking methods by canonical name, with the other names clients use for them.
const METHODS: &[(&str, &[&str])] = &[
    ("gaussian", &["gaussian", "blur", "gaussian_blur"]),
    ("pixelate", &["pixelate", "pixelation", "mosaic"]),
    ("solid", &["solid", "blackfill", "fill"]),
];

fn canonical_method(name: &str) -> Option<&'static str> {
    METHODS.iter().find(|(_, aliases)| aliases.iter().any(|a| a.eq_ignore_ascii_case(name))).map(|(c, _)| *c)
}

fn default_method(state: &AppState) -> &'static str {
    match state.engine.defaults().style.method {
        veil_redact::Method::Gaussian { .. } => "gaussian",
        veil_redact::Method::Pixelate { .. } => "pixelate",
        veil_redact::Method::Solid { .. } => "solid",
    }
}

fn job_method(state: &AppState, job: &Job) -> &'static str {
    let options: JobOptions = serde_json::from_str(&job.options).unwrap_or_default();
    options.method.as_deref().and_then(canonical_method).unwrap_or_else(|| default_method(state))
}

fn original_kept(state: &AppState, job: &Job) -> bool {
    state.api.serve_originals && job.status.is_finished() && job.original_deleted_at.is_none()
}

fn result_kept(job: &Job) -> bool {
    job.status == JobStatus::Completed && job.result_deleted_at.is_none()
}

fn image_json(state: &AppState, job: &Job) -> Value {
    json!({
        "id": job.id,
        "original_filename": job.filename,
        "media_type": job.media_type,
        "width": job.width,
        "height": job.height,
        "size_bytes": job.original_bytes,
        "original_url": original_kept(state, job).then(|| format!("/api/v1/admin/images/{}/download", job.id)),
        "processed_url": result_kept(job).then(|| format!("/api/v1/admin/jobs/{}/download", job.id)),
        "job_count": 1,
        "created_at": rfc3339(job.created_at),
        "api": job.api,
        "original_deleted_at": job.original_deleted_at.map(rfc3339),
    })
}

fn job_json(state: &AppState, job: &Job, with_detections: bool) -> Value {
    let mut body = json!({
        "id": job.id,
        "image_id": job.id,
        "job_type": "mask",
        "method": job_method(state, job),
        "status": job.status.as_str(),
        "face_count": job.faces,
        "processing_ms": job.started_at.zip(job.completed_at).map(|(a, b)| (b - a).max(0)),
        "error_message": job.error,
        "created_at": rfc3339(job.created_at),
        "started_at": job.started_at.map(rfc3339),
        "completed_at": job.completed_at.map(rfc3339),
        "processed_url": result_kept(job).then(|| format!("/api/v1/admin/jobs/{}/download", job.id)),
        "api": job.api,
        "media_type": job.media_type,
        "original_filename": job.filename,
        "progress": (job.progress() * 1000.0).round() / 1000.0,
    });
    if with_detections {
        let detections: Value =
            job.detections.as_deref().and_then(|d| serde_json::from_str(d).ok()).unwrap_or(json!([]));
        body["detections"] = detections;
        body["width"] = json!(job.width);
        body["height"] = json!(job.height);
    }
    body
}

async fn find_job(state: &AppState, id: String, what: &'static str) -> Result<Job, ApiError> {
    let store = state.engine.store().clone();
    blocking(move || store.get_job(&id)).await?.ok_or_else(|| ApiError::not_found(STYLE, format!("{what} not found")))
}

/// `GET /api/v1/admin/stats`: jobs by status and type, faces masked, storage and keys.
pub async fn stats(State(state): State<AppState>) -> Result<Response, ApiError> {
    let store = state.engine.store().clone();
    let (totals, keys, users, kept) = blocking(move || {
        let totals = store.job_totals(None)?;
        let keys = store.list_keys()?;
        let users = store.list_admin_users()?.len();
        let kept = store.originals_finished_before(i64::MAX)?.len();
        Ok((totals, keys, users, kept))
    })
    .await?;
    Ok(Json(json!({
        "total_images": totals.total,
        "total_jobs": totals.total,
        "total_faces_detected": totals.faces,
        "jobs_by_status": {
            "queued": totals.queued, "processing": totals.processing,
            "completed": totals.completed, "failed": totals.failed,
        },
        "jobs_by_type": {"detect": 0, "mask": totals.total},
        "storage": {
            "uploaded_bytes": totals.uploaded_bytes,
            "stored_result_bytes": totals.stored_result_bytes,
            "originals_kept": kept,
        },
        "api_keys": {"total": keys.len(), "active": keys.iter().filter(|k| k.is_active()).count()},
        "admin_users": users,
        "video_minutes": (totals.video_ms as f64 / 600.0).round() / 100.0,
        "model": state.active_backend(),
    }))
    .into_response())
}

/// `GET /api/v1/admin/images?page=&page_size=`: uploads, newest first.
pub async fn images(
    State(state): State<AppState>,
    query: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let (page, page_size) = page_params(query)?;
    let store = state.engine.store().clone();
    let (jobs, total) =
        blocking(move || store.list_jobs(&JobFilter::default(), (page - 1) * page_size, page_size)).await?;
    let items = jobs.iter().map(|j| image_json(&state, j)).collect();
    Ok(Json(paginated(items, total, page, page_size)).into_response())
}

pub async fn image(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let job = find_job(&state, id, "Image").await?;
    Ok(Json(image_json(&state, &job)).into_response())
}

/// `DELETE /api/v1/admin/images/{id}`: the upload, its job and their files (204).
pub async fn delete_image(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let job = find_job(&state, id, "Image").await?;
    let engine = state.engine.clone();
    if blocking(move || engine.delete(&job)).await? {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::not_found(STYLE, "Image not found"))
    }
}

fn found(location: String) -> Response {
    (StatusCode::FOUND, [(header::LOCATION, location)]).into_response()
}

/// `GET /api/v1/admin/images/{id}/download`: 302 to the original while it is kept; 404 once
/// deleted (the default: originals go as soon as their job ends).
pub async fn download_image(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let job = find_job(&state, id, "Image").await?;
    if !original_kept(&state, &job) || state.engine.original_path(&job).is_none() {
        return Err(ApiError::not_found(
            STYLE,
            "The original is not stored: originals are deleted once processed (jobs.keep_originals_hours and api.serve_originals keep them)",
        ));
    }
    Ok(found(format!("/api/v1/admin/images/{}/original", job.id)))
}

/// `GET /api/v1/admin/images/{id}/original`: the kept original's bytes.
pub async fn original_file(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let job = find_job(&state, id, "Image").await?;
    let path = original_kept(&state, &job).then(|| state.engine.original_path(&job)).flatten();
    let Some(path) = path else { return Err(ApiError::not_found(STYLE, "The original is not stored")) };
    let name = job.filename.clone().unwrap_or_else(|| format!("original-{}", job.id));
    crate::server::piiblur::stream_file(&path, "application/octet-stream", &name, STYLE).await
}

#[derive(Deserialize)]
pub struct JobQuery {
    page: Option<String>,
    page_size: Option<String>,
    job_type: Option<String>,
    method: Option<String>,
    status: Option<String>,
}

/// `GET /api/v1/admin/jobs?job_type=&method=&status=&page=&page_size=`.
pub async fn jobs(
    State(state): State<AppState>,
    query: Result<Query<JobQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::unprocessable(STYLE, e.body_text()))?;
    let (page, page_size) = page_params(Ok(Query(PageQuery { page: q.page.clone(), page_size: q.page_size.clone() })))?;
    let mut filter = JobFilter::default();
    let mut none = false;
    match q.job_type.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        None => {}
        Some(t) if t.eq_ignore_ascii_case("mask") => {}
        // Detection requests (`POST /api/v1/detect`) are answered at once and never stored.
        Some(t) if t.eq_ignore_ascii_case("detect") => none = true,
        Some(t) => return Err(ApiError::unprocessable(STYLE, format!("job_type must be detect or mask, not '{t}'"))),
    }
    if let Some(m) = q.method.as_deref().map(str::trim).filter(|m| !m.is_empty()) {
        let canonical = canonical_method(m).ok_or_else(|| {
            ApiError::unprocessable(STYLE, format!("method must be gaussian, pixelate or solid, not '{m}'"))
        })?;
        let aliases = METHODS
            .iter()
            .find(|(c, _)| *c == canonical)
            .map(|(_, a)| a.iter().map(|s| s.to_string()).collect())
            .unwrap_or_default();
        filter.methods = Some((aliases, canonical == default_method(&state)));
    }
    if let Some(s) = q.status.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        filter.status = Some(JobStatus::parse(&s.to_ascii_lowercase()).ok_or_else(|| {
            ApiError::unprocessable(STYLE, format!("status must be queued, processing, completed or failed, not '{s}'"))
        })?);
    }
    let (jobs, total) = if none {
        (Vec::new(), 0)
    } else {
        let store = state.engine.store().clone();
        blocking(move || store.list_jobs(&filter, (page - 1) * page_size, page_size)).await?
    };
    let items = jobs.iter().map(|j| job_json(&state, j, false)).collect();
    Ok(Json(paginated(items, total, page, page_size)).into_response())
}

/// `GET /api/v1/admin/jobs/{id}`: the job with its detections.
pub async fn job(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let job = find_job(&state, id, "Job").await?;
    Ok(Json(job_json(&state, &job, true)).into_response())
}

/// `GET /api/v1/admin/jobs/{id}/download`: 302 to the redacted result; 409 while the job runs,
/// 404 once the result is gone (or the job failed).
pub async fn download_job(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let job = find_job(&state, id, "Job").await?;
    if !job.status.is_finished() {
        return Err(ApiError::new(STYLE, StatusCode::CONFLICT, format!("Job is {}", job.status.as_str())));
    }
    if state.engine.result_path(&job).is_none() {
        return Err(ApiError::not_found(STYLE, "No redacted result: the job failed or its result was deleted"));
    }
    Ok(found(format!("/api/v1/admin/jobs/{}/result", job.id)))
}

/// `GET /api/v1/admin/jobs/{id}/result`: the redacted image or video.
pub async fn result_file(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let job = find_job(&state, id, "Job").await?;
    let Some(path) = state.engine.result_path(&job) else {
        return Err(ApiError::not_found(STYLE, "No redacted result"));
    };
    let mime = job.result_mime.clone().unwrap_or_else(|| "application/octet-stream".into());
    crate::server::piiblur::stream_file(&path, &mime, &crate::server::piiblur::result_name(&job, "redacted"), STYLE)
        .await
}
