//! The body of each webhook, shaped like the API that took the job: JSON for the CloakBioGuard
//! and PiiBlur styles, multipart (metadata plus the masked image) for the MaskIt style.

use serde_json::json;

use crate::store::jobs::{Job, JobStatus};
use crate::store::rfc3339;

/// A webhook body and its content type.
pub struct Payload {
    pub content_type: String,
    pub body: Vec<u8>,
}

fn json_payload(v: serde_json::Value) -> Payload {
    Payload { content_type: "application/json".into(), body: v.to_string().into_bytes() }
}

/// `media.processed` or `media.failed` for a finished job.
pub fn finished(job: &Job, event: &str, result: Option<&[u8]>) -> Payload {
    let completed = job.status == JobStatus::Completed;
    match job.api.as_str() {
        "maskit" => {
            let mut fields = vec![
                ("event", event.to_string()),
                ("jobId", job.id.clone()),
                ("status", if completed { "ReadyToDownload".into() } else { "Failed".into() }),
            ];
            if let Some(m) = metadata_of(job) {
                fields.push(("metadata", m));
            }
            if let Some(e) = &job.error {
                fields.push(("error", e.clone()));
            }
            let file = match (completed, result) {
                (true, Some(bytes)) => Some((
                    "maskedImage",
                    format!("masked-{}", job.filename.as_deref().unwrap_or("image")),
                    job.result_mime.clone().unwrap_or_else(|| "application/octet-stream".into()),
                    bytes,
                )),
                _ => None,
            };
            multipart(&fields, file)
        }
        _ => json_payload(finished_json(job, event)),
    }
}

/// `media.processed` or `media.failed` as JSON in the job's API style (the MQTT `events` topic
/// uses it for every style; a MaskIt webhook sends the same fields as multipart with the image).
pub fn finished_json(job: &Job, event: &str) -> serde_json::Value {
    let completed = job.status == JobStatus::Completed;
    match job.api.as_str() {
        "maskit" => json!({
            "event": event,
            "jobId": job.id,
            "status": if completed { "ReadyToDownload" } else { "Failed" },
            "metadata": metadata_of(job),
            "error": job.error,
        }),
        "piiblur" => json!({
            "event": event,
            "media_id": job.id,
            "status": job.status.as_str(),
            "download_url": completed.then(|| format!("/api/v1/media/{}/download", job.id)),
            "detections_count": job.faces,
            "error": job.error,
            "error_message": job.error,
            "media_type": job.media_type,
            "created_at": rfc3339(job.created_at),
            "completed_at": job.completed_at.map(rfc3339),
            "processed_at": job.completed_at.map(rfc3339),
        }),
        _ => json!({
            "event": event,
            "job_id": job.id,
            "status": job.status.as_str(),
            "download_url": completed.then(|| format!("/v1/download/{}", job.id)),
            "faces_detected": job.faces,
            "error": job.error,
            "created_at": job.created_at as f64 / 1000.0,
            "completed_at": job.completed_at.map(|t| t as f64 / 1000.0),
        }),
    }
}

/// `media.source_deleted`: the uploaded original is gone from the device.
pub fn source_deleted(job: &Job) -> Payload {
    json_payload(source_deleted_json(job))
}

pub fn source_deleted_json(job: &Job) -> serde_json::Value {
    let id_field = match job.api.as_str() {
        "maskit" => "jobId",
        "piiblur" => "media_id",
        _ => "job_id",
    };
    let mut v = json!({
        "event": "media.source_deleted",
        "deleted_at": rfc3339(job.original_deleted_at.unwrap_or_else(crate::store::now_ms)),
    });
    v[id_field] = json!(job.id);
    v
}

fn metadata_of(job: &Job) -> Option<String> {
    serde_json::from_str::<crate::jobs::JobOptions>(&job.options).ok()?.metadata
}

/// A `multipart/form-data` body of text fields and at most one file.
fn multipart(fields: &[(&str, String)], file: Option<(&str, String, String, &[u8])>) -> Payload {
    let boundary = format!("veil-{}", crate::jobs::new_job_id().replace('-', ""));
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").as_bytes(),
        );
    }
    if let Some((name, filename, mime, bytes)) = file {
        let filename = filename.replace(['"', '\r', '\n'], "_");
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\nContent-Type: {mime}\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    Payload { content_type: format!("multipart/form-data; boundary={boundary}"), body }
}
