//! The MaskIt-style masking API: `process-image` queues a job and answers `{jobId}`;
//! `image-status` and `image-download` take `?jobId=`. Field names match in any letter case
//! (`licensePlates`, `blurStrength`, ...). The result downloads once, then it is deleted.

use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::json;

use super::api_error::{ApiError, ApiStyle, InStyle};
use super::auth::Caller;
use super::cloak::{owned_job, submit_upload};
use super::piiblur::{file_response, result_name};
use super::upload_form::{bad_value, UploadForm};
use super::AppState;
use crate::jobs::JobOptions;
use crate::store::jobs::{Job, JobStatus};

const STYLE: ApiStyle = ApiStyle::MaskIt;

pub async fn process_image(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    mp: Result<Multipart, MultipartRejection>,
) -> Result<Response, ApiError> {
    let form = UploadForm::read(mp, STYLE).await?;
    let file = form.single_file(&["image"], STYLE)?;
    let faces = form.flag("faces", STYLE)?.unwrap_or(true);
    // MaskIt's documentation defaults faces, humans and licence plates to on: plates and humans
    // are on when left out if this device's backend finds them (asked for without it: 422).
    let available = state.engine.categories();
    let can_plates = available.contains(&veil_models::Category::LicensePlate);
    let can_humans = available.contains(&veil_models::Category::Person);
    let plates = form.flag("licensePlates", STYLE)?.unwrap_or(can_plates);
    let humans = form.flag("humans", STYLE)?.unwrap_or(can_humans);
    let supported: Vec<&str> =
        [(true, "faces"), (can_plates, "licensePlates"), (can_humans, "humans")].iter().filter(|(on, _)| *on).map(|(_, n)| *n).collect();
    if humans && !can_humans {
        return Err(ApiError::unprocessable(
            STYLE,
            "This device's backend finds no people (configure detector.backend = \"yunet+plates+persons\", or send humans=false)",
        )
        .with_extra(json!({"supported": supported})));
    }
    if plates && !can_plates {
        return Err(ApiError::unprocessable(
            STYLE,
            "This device's backend finds no licence plates (configure detector.backend = \"yunet+plates\")",
        )
        .with_extra(json!({"supported": supported})));
    }
    if !faces && !plates && !humans {
        return Err(ApiError::unprocessable(STYLE, "Nothing to mask: faces, licensePlates and humans are false"));
    }
    let categories: Vec<String> = [(faces, "faces"), (plates, "license_plates"), (humans, "people")]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, n)| n.to_string())
        .collect();
    let shape = match form.text("shape").map(str::to_ascii_lowercase).as_deref() {
        None | Some("mask") => "ellipse",
        Some("rectangle") => "rect",
        Some(other) => return Err(bad_value(STYLE, "shape", other, "Mask or Rectangle")),
    };
    let method = match form.text("method").map(str::to_ascii_lowercase).as_deref() {
        None | Some("blur") => "gaussian",
        Some("blackfill") => "solid",
        Some(other) => return Err(bad_value(STYLE, "method", other, "Blur or BlackFill")),
    };
    // blurStrength is an integer (MaskIt's default 30); 50 and above is veil's strongest blur.
    let strength = match form.number::<f32>("blurStrength", STYLE)? {
        Some(s) if !(0.0..=100.0).contains(&s) => return Err(bad_value(STYLE, "blurStrength", &s.to_string(), "0..100")),
        Some(s) => Some((s / 50.0).clamp(0.05, 1.0)),
        None => None,
    };
    let feather = match form.number::<f32>("edgeBlurSize", STYLE)? {
        Some(f) if !(0.0..=1.0).contains(&f) => return Err(bad_value(STYLE, "edgeBlurSize", &f.to_string(), "0.0..1.0")),
        f => f,
    };
    let webhook = if form.flag("useWebhook", STYLE)?.unwrap_or(false) {
        Some(state.api.default_webhook_url.clone().ok_or_else(|| {
            ApiError::unprocessable(STYLE, "useWebhook needs a webhook URL configured on the device (webhooks.default_url)")
        })?)
    } else {
        None
    };
    let options = JobOptions {
        method: Some(method.into()),
        strength: if method == "gaussian" { strength } else { None },
        shape: Some(shape.into()),
        feather,
        metadata: form.text("metadata").map(str::to_string),
        categories,
        download_once: true,
        ..Default::default()
    };
    let job = submit_upload(&state, caller, ("maskit", STYLE), file, options, webhook).await?;
    Ok(Json(json!({"jobId": job.id})).into_response())
}

async fn job_from_query(
    state: &AppState,
    caller: Caller,
    query: Result<Query<Vec<(String, String)>>, axum::extract::rejection::QueryRejection>,
) -> Result<Job, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(STYLE, e.body_text()))?;
    let id = query
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("jobId"))
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ApiError::bad_request(STYLE, "Missing query parameter jobId"))?;
    if !crate::jobs::is_job_id(id) {
        return Err(ApiError::bad_request(STYLE, format!("'{}' is not a job id", id.chars().take(40).collect::<String>())));
    }
    owned_job(state, caller, id, STYLE).await
}

fn status_name(job: &Job) -> &'static str {
    match job.status {
        JobStatus::Queued => "Pending",
        JobStatus::Processing => "InProgress",
        JobStatus::Completed if job.result_deleted_at.is_none() => "ReadyToDownload",
        JobStatus::Completed => "Succeeded",
        JobStatus::Failed => "Failed",
    }
}

pub async fn image_status(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    query: Result<Query<Vec<(String, String)>>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let job = job_from_query(&state, caller, query).await?;
    let mut body = json!({"jobId": job.id, "status": status_name(&job)});
    if let Some(e) = &job.error {
        body["error"] = json!(e);
    }
    if job.faces.is_some() {
        // The stored count covers every category; MaskIt's field counts faces.
        let stored: Vec<serde_json::Value> =
            job.detections.as_deref().and_then(|d| serde_json::from_str(d).ok()).unwrap_or_default();
        body["facesMasked"] = json!(stored.iter().filter(|d| d["category"] == "face").count());
    }
    Ok(Json(body).into_response())
}

pub async fn image_download(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    query: Result<Query<Vec<(String, String)>>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let job = job_from_query(&state, caller, query).await?;
    if status_name(&job) != "ReadyToDownload" {
        let status = if job.status == JobStatus::Completed { StatusCode::NOT_FOUND } else { StatusCode::BAD_REQUEST };
        let why = match status_name(&job) {
            "Succeeded" => "The masked image was already downloaded (or expired) and has been deleted".to_string(),
            s => format!("The job is not ready to download (status {s})"),
        };
        return Err(ApiError::new(STYLE, status, why));
    }
    // Download once: claim and delete the result in one step, so two fetches cannot both get it.
    let engine = state.engine.clone();
    let claimed = job.clone();
    let bytes = tokio::task::spawn_blocking(move || engine.take_result(&claimed))
        .await
        .map_err(|_| ApiError::internal(STYLE, "download task failed"))?
        .in_style(STYLE)?
        .ok_or_else(|| ApiError::not_found(STYLE, "The masked image was already downloaded (or expired) and has been deleted"))?;
    Ok(file_response(bytes, job.result_mime.as_deref(), &result_name(&job, "masked")))
}
