//! The CloakBioGuard-style API under `/v1`: asynchronous protect jobs with status, PNG download,
//! batches of up to 20, and the backends list. Errors are `{"detail": ...}`.

use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::json;

use super::api_error::{ApiError, ApiStyle, InStyle};
use super::auth::Caller;
use super::job_errors::submit_error;
use super::upload_form::{FormFile, UploadForm};
use super::AppState;
use crate::jobs::{JobOptions, Upload};
use crate::store::jobs::{Job, JobStatus};

const STYLE: ApiStyle = ApiStyle::Cloak;
/// Files per batch.
pub const MAX_BATCH: usize = 20;

pub async fn health() -> Response {
    Json(json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")})).into_response()
}

pub async fn backends(State(state): State<AppState>) -> Response {
    Json(json!({"active": state.active_backend(), "available": state.api.backends})).into_response()
}

fn options() -> JobOptions {
    JobOptions { format: Some("png".into()), require_face: true, ..Default::default() }
}

/// The optional `webhook_url` form field, checked: a URL whose host resolves only to addresses
/// `webhooks.allow` lets deliveries reach (422 in `style` otherwise).
pub(super) async fn webhook_url(state: &AppState, form: &UploadForm, style: ApiStyle) -> Result<Option<String>, ApiError> {
    match form.text("webhook_url").filter(|u| !u.is_empty()) {
        Some(u) => {
            crate::webhooks::check_url(u).map_err(|e| ApiError::unprocessable(style, e))?;
            state.api.webhook_policy.check_at_submit(u).await.map_err(|e| ApiError::unprocessable(style, format!("webhook_url: {e}")))?;
            Ok(Some(u.to_string()))
        }
        None => Ok(None),
    }
}

/// Queue one uploaded file as a job of `api`, off the async threads.
pub(super) async fn submit_upload(
    state: &AppState,
    caller: Caller,
    (api, style): (&'static str, ApiStyle),
    file: &FormFile,
    options: JobOptions,
    webhook: Option<String>,
) -> Result<Job, ApiError> {
    let engine = state.engine.clone();
    let (bytes, filename) = (file.bytes.clone(), file.filename.clone());
    tokio::task::spawn_blocking(move || {
        engine.submit(&Upload {
            api,
            key_id: caller.key_id,
            filename: filename.as_deref(),
            bytes: &bytes,
            options: &options,
            webhook_url: webhook.as_deref(),
        })
    })
    .await
    .map_err(|_| ApiError::internal(style, "upload task failed"))?
    .map_err(|e| submit_error(style, e))
}

pub async fn protect(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    mp: Result<Multipart, MultipartRejection>,
) -> Result<Response, ApiError> {
    let form = UploadForm::read(mp, STYLE).await?;
    let file = form.single_file(&["file"], STYLE)?;
    let webhook = webhook_url(&state, &form, STYLE).await?;
    let job = submit_upload(&state, caller, ("cloak", STYLE), file, options(), webhook.clone()).await?;
    Ok(Json(json!({
        "job_id": job.id,
        "status": "processing",
        "backend": state.active_backend(),
        "webhook_url": webhook,
    }))
    .into_response())
}

pub async fn batch_protect(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    mp: Result<Multipart, MultipartRejection>,
) -> Result<Response, ApiError> {
    let form = UploadForm::read(mp, STYLE).await?;
    let files = form.files_named(&["files", "files[]", "file"]);
    if files.is_empty() {
        return Err(ApiError::unprocessable(STYLE, "Missing file field 'files'"));
    }
    if files.len() > MAX_BATCH {
        return Err(ApiError::bad_request(STYLE, format!("Too many files: {} (at most {MAX_BATCH} per batch)", files.len())));
    }
    let webhook = webhook_url(&state, &form, STYLE).await?;
    // All or nothing: a bad file, a full queue or a failed write leaves none of the batch queued.
    let engine = state.engine.clone();
    let files: Vec<(Option<String>, bytes::Bytes)> = files.iter().map(|f| (f.filename.clone(), f.bytes.clone())).collect();
    let hook = webhook.clone();
    let submitted = tokio::task::spawn_blocking(move || {
        let options = options();
        let uploads: Vec<Upload<'_>> = files
            .iter()
            .map(|(name, bytes)| Upload {
                api: "cloak",
                key_id: caller.key_id,
                filename: name.as_deref(),
                bytes,
                options: &options,
                webhook_url: hook.as_deref(),
            })
            .collect();
        engine.submit_all(&uploads).map_err(|e| {
            let mut err = submit_error(STYLE, e);
            if let Some(i) = uploads.iter().position(|u| crate::photo::inspect(u.bytes, &engine.config().decode_limits).is_err()) {
                err.message = format!("{}: {}", uploads[i].filename.unwrap_or("file"), err.message);
            }
            err
        })
    })
    .await
    .map_err(|_| ApiError::internal(STYLE, "upload task failed"))??;
    let jobs: Vec<_> =
        submitted.iter().map(|job| json!({"job_id": job.id, "status": "processing", "filename": job.filename})).collect();
    Ok(Json(json!({"jobs": jobs, "backend": state.active_backend(), "webhook_url": webhook})).into_response())
}

/// The job, if it exists, was taken by this API style and belongs to the caller.
pub(super) async fn owned_job(state: &AppState, caller: Caller, id: &str, style: ApiStyle) -> Result<Job, ApiError> {
    let api = match style {
        ApiStyle::Cloak => "cloak",
        ApiStyle::PiiBlur => "piiblur",
        ApiStyle::MaskIt => "maskit",
        _ => "",
    };
    let (engine, id_owned) = (state.engine.clone(), id.to_string());
    let job = tokio::task::spawn_blocking(move || engine.get(&id_owned))
        .await
        .map_err(|_| ApiError::internal(style, "job lookup failed"))?
        .in_style(style)?;
    match job {
        Some(job) if job.api == api && (caller.key_id.is_none() || job.key_id == caller.key_id) => Ok(job),
        _ => Err(ApiError::not_found(style, format!("Job {} not found", id.chars().take(64).collect::<String>()))),
    }
}

/// The kept result of a completed job, read off the async threads.
pub(super) async fn read_result(state: &AppState, job: &Job, style: ApiStyle) -> Result<Option<Vec<u8>>, ApiError> {
    let (engine, job) = (state.engine.clone(), job.clone());
    tokio::task::spawn_blocking(move || engine.result(&job)).await.map_err(|_| ApiError::internal(style, "read failed"))
}

fn seconds(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

pub async fn status(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(job_id): Path<String>,
) -> Result<Response, ApiError> {
    let job = owned_job(&state, caller, &job_id, STYLE).await?;
    let completed = job.status == JobStatus::Completed;
    let status = match job.status {
        JobStatus::Queued | JobStatus::Processing => "processing",
        JobStatus::Completed => "completed",
        JobStatus::Failed => "failed",
    };
    Ok(Json(json!({
        "job_id": job.id,
        "status": status,
        "created_at": seconds(job.created_at),
        "completed_at": job.completed_at.map(seconds),
        "download_url": completed.then(|| format!("/v1/download/{}", job.id)),
        "faces_detected": job.faces,
        "error": job.error,
        "backend": state.active_backend(),
    }))
    .into_response())
}

pub async fn download(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(job_id): Path<String>,
) -> Result<Response, ApiError> {
    let job = owned_job(&state, caller, &job_id, STYLE).await?;
    match job.status {
        JobStatus::Queued | JobStatus::Processing => {
            Err(ApiError::new(STYLE, StatusCode::CONFLICT, "Job is still processing").with_header(header::RETRY_AFTER, "1"))
        }
        JobStatus::Failed => {
            let reason = job.error.unwrap_or_else(|| "processing failed".into());
            if reason == "No face detected" {
                Err(ApiError::unprocessable(STYLE, reason))
            } else {
                Err(ApiError::internal(STYLE, reason))
            }
        }
        JobStatus::Completed => {
            let bytes = read_result(&state, &job, STYLE)
                .await?
                .ok_or_else(|| ApiError::not_found(STYLE, "The result has expired and was deleted"))?;
            let mime = job.result_mime.unwrap_or_else(|| "image/png".into());
            let name = format!("protected-{}.png", job.id);
            Ok((
                [
                    (header::CONTENT_TYPE, mime),
                    (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\"")),
                ],
                bytes,
            )
                .into_response())
        }
    }
}
