//! The Xylolabs admin API under `/api/v1/admin`: sign-in sessions, stats, stored images and
//! jobs, the test mask and API keys, in the service's names and its `PaginatedResponse`
//! (`items`, `total`, `page`, `page_size`, `total_pages`). Errors are `{"detail": ...}`.

mod keys;
mod records;
mod session;
mod test_mask;

use axum::extract::Query;
use axum::routing::{delete, get, patch, post};
use serde::Deserialize;
use serde_json::{json, Value};

pub use session::{require_admin, AdminSettings, SESSION_COOKIE};

use super::api_error::{ApiError, ApiStyle, InStyle};
use super::openapi::{nullable, obj, t, Access, Input, Output, RouteDoc, NUM};

const STYLE: ApiStyle = ApiStyle::Xylolabs;
/// Page size when the request names none, and the most it may name.
const PAGE_SIZE: i64 = 20;
const MAX_PAGE_SIZE: i64 = 100;

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, crate::store::StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(|_| ApiError::internal(STYLE, "admin task failed"))?.in_style(STYLE)
}

/// `page` (from 1) and `page_size` (1..100) as the client sent them.
#[derive(Deserialize, Default)]
pub struct PageQuery {
    page: Option<String>,
    page_size: Option<String>,
}

fn page_params(
    query: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<(i64, i64), ApiError> {
    let Query(q) = query.map_err(|e| ApiError::unprocessable(STYLE, e.body_text()))?;
    let number = |raw: Option<&str>, name: &str, default: i64, max: i64| -> Result<i64, ApiError> {
        match raw.map(str::trim).filter(|v| !v.is_empty()) {
            None => Ok(default),
            Some(v) => v.parse::<i64>().ok().filter(|n| (1..=max).contains(n)).ok_or_else(|| {
                ApiError::unprocessable(STYLE, format!("{name} must be an integer in 1..{max}, not '{v}'"))
            }),
        }
    };
    Ok((
        number(q.page.as_deref(), "page", 1, 1_000_000)?,
        number(q.page_size.as_deref(), "page_size", PAGE_SIZE, MAX_PAGE_SIZE)?,
    ))
}

/// The service's `PaginatedResponse`.
fn paginated(items: Vec<Value>, total: i64, page: i64, page_size: i64) -> Value {
    json!({
        "items": items,
        "total": total,
        "page": page,
        "page_size": page_size,
        "total_pages": ((total + page_size - 1) / page_size).max(1),
    })
}

const READ: &[u16] = &[404, 422];
const PAGE_QUERY: &[(&str, &str, bool)] = &[("page", "integer", false), ("page_size", "integer", false)];
const MASK_QUERY: &[(&str, &str, bool)] = &[
    ("confidence", "number", false),
    ("nms_threshold", "number", false),
    ("max_faces", "integer", false),
    ("categories", "string", false),
    ("method", "string", false),
    ("strength", "number", false),
    ("padding", "number", false),
    ("format", "string", false),
    ("quality", "integer", false),
];

macro_rules! admin_route {
    ($method:literal, $path:literal, $handler:expr, $summary:literal, $auth:expr, $query:expr, $input:expr, $output:expr, $errors:expr) => {
        RouteDoc {
            method: $method,
            path: $path,
            style: ApiStyle::Xylolabs,
            handler: $handler,
            summary: $summary,
            auth: $auth,
            query: $query,
            input: $input,
            output: $output,
            errors: $errors,
        }
    };
}

/// The admin API's routes (the router and the OpenAPI document read them with the others).
pub const ROUTES: &[RouteDoc] = &[
    admin_route!("post", "/api/v1/admin/auth/login", || post(session::login), "Sign in an admin user: 204 and an HttpOnly, SameSite=Strict session cookie (10 attempts a minute per client)", Access::Open, &[], Input::Json(&[("username", true), ("password", true)]), Output::Cookie, &[401, 422, 429]),
    admin_route!("get", "/api/v1/admin/auth/session", || get(session::session), "Who is signed in, until when, and the CSRF token cookie sessions send as X-CSRF-Token", Access::Admin, &[], Input::None, Output::Json(200, "AdminSession"), &[]),
    admin_route!("post", "/api/v1/admin/auth/logout", || post(session::logout), "End the session and clear its cookie", Access::Admin, &[], Input::None, Output::Cookie, &[]),
    admin_route!("get", "/api/v1/admin/stats", || get(records::stats), "Jobs by status and type, faces masked, storage, keys", Access::Admin, &[], Input::None, Output::Json(200, "AdminStats"), &[]),
    admin_route!("get", "/api/v1/admin/images", || get(records::images), "Uploads the device holds records of, newest first", Access::Admin, PAGE_QUERY, Input::None, Output::Json(200, "AdminImagePage"), &[422]),
    admin_route!("get", "/api/v1/admin/images/{id}", || get(records::image), "One upload's record", Access::Admin, &[], Input::None, Output::Json(200, "AdminImage"), READ),
    admin_route!("delete", "/api/v1/admin/images/{id}", || delete(records::delete_image), "Delete an upload, its job and their files", Access::Admin, &[], Input::None, Output::NoContent, READ),
    admin_route!("get", "/api/v1/admin/images/{id}/download", || get(records::download_image), "302 to the original while it is kept (404 once deleted, the default)", Access::Admin, &[], Input::None, Output::Redirect, READ),
    admin_route!("get", "/api/v1/admin/images/{id}/original", || get(records::original_file), "A kept original (only with api.serve_originals and retention)", Access::Admin, &[], Input::None, Output::Media, READ),
    admin_route!("get", "/api/v1/admin/jobs", || get(records::jobs), "Jobs, newest first (filters job_type, method, status)", Access::Admin, &[("job_type", "string", false), ("method", "string", false), ("status", "string", false), ("page", "integer", false), ("page_size", "integer", false)], Input::None, Output::Json(200, "AdminJobPage"), &[422]),
    admin_route!("get", "/api/v1/admin/jobs/{id}", || get(records::job), "One job with its detections", Access::Admin, &[], Input::None, Output::Json(200, "AdminJob"), READ),
    admin_route!("get", "/api/v1/admin/jobs/{id}/download", || get(records::download_job), "302 to the redacted result (409 while the job runs)", Access::Admin, &[], Input::None, Output::Redirect, &[404, 409, 422]),
    admin_route!("get", "/api/v1/admin/jobs/{id}/result", || get(records::result_file), "The redacted image or video", Access::Admin, &[], Input::None, Output::Media, READ),
    admin_route!("post", "/api/v1/admin/test/mask", || post(test_mask::test_mask), "Detect and mask one photo now (nothing stored): the detect fields, masking and output with the image as base64", Access::Admin, MASK_QUERY, Input::Multipart(&[("image", true, true)]), Output::Json(200, "AdminTestMask"), &[400, 413, 415, 422]),
    admin_route!("post", "/api/v1/admin/api-keys", || post(keys::create), "Create an API key; the full key is in this answer only", Access::Admin, &[], Input::JsonObject(&[("name", "string", true), ("admin", "boolean", false)]), Output::Json(201, "AdminKeyCreated"), &[422]),
    admin_route!("get", "/api/v1/admin/api-keys", || get(keys::list), "API keys (never the keys themselves)", Access::Admin, PAGE_QUERY, Input::None, Output::Json(200, "AdminKeyPage"), &[422]),
    admin_route!("get", "/api/v1/admin/api-keys/{id}", || get(keys::show), "One API key's record", Access::Admin, &[], Input::None, Output::Json(200, "AdminKey"), READ),
    admin_route!("patch", "/api/v1/admin/api-keys/{id}", || patch(keys::update), "Rename an API key or switch it off and on (is_active)", Access::Admin, &[], Input::JsonObject(&[("name", "string", false), ("is_active", "boolean", false)]), Output::Json(200, "AdminKey"), READ),
    admin_route!("delete", "/api/v1/admin/api-keys/{id}", || delete(keys::delete), "Delete an API key; it is refused at once", Access::Admin, &[], Input::None, Output::NoContent, READ),
];

fn page_of(item: &str) -> Value {
    obj(
        json!({"items": {"type": "array", "items": {"$ref": format!("#/components/schemas/{item}")}},
            "total": t("integer"), "page": t("integer"), "page_size": t("integer"), "total_pages": t("integer")}),
        &["items", "total", "page", "page_size", "total_pages"],
    )
}

/// The admin API's response bodies, by name.
pub fn schemas() -> Value {
    let key = json!({"id": t("integer"), "name": t("string"), "key_prefix": t("string"), "key_suffix": t("string"),
        "key_preview": t("string"), "is_active": t("boolean"), "request_count": t("integer"),
        "last_used_at": nullable("string"), "created_at": t("string"), "admin": t("boolean"), "revoked_at": nullable("string")});
    let key_required = [
        "id",
        "name",
        "key_prefix",
        "key_suffix",
        "key_preview",
        "is_active",
        "request_count",
        "last_used_at",
        "created_at",
    ];
    let mut created = key.clone();
    created["key"] = t("string");
    let mut created_required = key_required.to_vec();
    created_required.push("key");
    json!({
        "AdminSession": obj(json!({"authenticated": t("boolean"), "username": nullable("string"), "auth_method": {"enum": ["session", "basic", "api_key"]},
            "expires_at": nullable("string"), "csrf_token": nullable("string")}), &["authenticated", "username", "auth_method", "expires_at", "csrf_token"]),
        "AdminStats": obj(json!({"total_images": t("integer"), "total_jobs": t("integer"), "total_faces_detected": t("integer"),
            "jobs_by_status": t("object"), "jobs_by_type": t("object"), "storage": t("object"), "api_keys": t("object")}),
            &["total_images", "total_jobs", "total_faces_detected", "jobs_by_status", "jobs_by_type", "api_keys"]),
        "AdminImage": obj(json!({"id": t("string"), "original_filename": nullable("string"), "media_type": t("string"),
            "width": nullable("integer"), "height": nullable("integer"), "size_bytes": t("integer"), "original_url": nullable("string"),
            "processed_url": nullable("string"), "job_count": t("integer"), "created_at": t("string")}),
            &["id", "original_filename", "width", "height", "size_bytes", "original_url", "processed_url", "job_count", "created_at"]),
        "AdminImagePage": page_of("AdminImage"),
        "AdminJob": obj(json!({"id": t("string"), "image_id": t("string"), "job_type": {"enum": ["detect", "mask"]}, "method": t("string"),
            "status": t("string"), "face_count": nullable("integer"), "processing_ms": nullable("integer"), "error_message": nullable("string"),
            "created_at": t("string"), "completed_at": nullable("string"), "processed_url": nullable("string"), "detections": t("array")}),
            &["id", "image_id", "job_type", "method", "status", "face_count", "created_at", "completed_at", "processed_url"]),
        "AdminJobPage": page_of("AdminJob"),
        "AdminKey": obj(key, &key_required),
        "AdminKeyCreated": obj(created, &created_required),
        "AdminKeyPage": page_of("AdminKey"),
        "AdminTestMask": obj(json!({"summary": t("object"), "processing": t("object"), "profiling": t("object"), "detections": t("array"),
            "masking": obj(json!({"method": t("string"), "strength": nullable("integer"), "padding": t(NUM), "regions_masked": t("integer")}),
                &["method", "strength", "padding", "regions_masked"]),
            "output": obj(json!({"format": t("string"), "quality": nullable("integer"), "size_bytes": t("integer"), "image_base64": t("string")}),
                &["format", "quality", "size_bytes", "image_base64"])}),
            &["summary", "processing", "profiling", "detections", "masking", "output"]),
    })
}
