//! The route table: every route's path, handler, auth and documentation. The router is built
//! from it, and so is the OpenAPI 3.1 document served at `/openapi.json`, so a route cannot go
//! undocumented.

use axum::routing::{delete, get, post, MethodRouter};
use serde_json::{json, Map, Value};

use super::api_error::ApiStyle;
use super::{admin, cloak, device_panel, events, faceblurest, field_page, maskit, piiblur, preview, prometheus, status, xylolabs, AppState};

/// How a route takes its input.
#[derive(Clone, Copy)]
pub enum Input {
    None,
    /// multipart/form-data with these (name, is_file, required) fields.
    Multipart(&'static [(&'static str, bool, bool)]),
    /// JSON body with these (name, required) string fields.
    Json(&'static [(&'static str, bool)]),
    /// JSON body with these (name, JSON type, required) fields.
    JsonObject(&'static [(&'static str, &'static str, bool)]),
}

/// Who may call a route.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Access {
    /// Anyone (health, the OpenAPI document, the field page's files, admin sign-in).
    Open,
    /// Any live API key.
    Key,
    /// An admin: a console session (cookie; state changes echo its CSRF token), an admin user's
    /// password over HTTP Basic, or an admin API key.
    Admin,
}

/// What a route answers on success.
#[derive(Clone, Copy)]
pub enum Output {
    /// JSON with this status and this schema (a name under `components/schemas`).
    Json(u16, &'static str),
    Image,
    /// An image or a video (the PiiBlur media routes).
    Media,
    NoContent,
    Stream(&'static str),
    /// A text document of this media type.
    Text(&'static str),
    /// 302 to where the file is served.
    Redirect,
    /// 204 with a `Set-Cookie` (admin sign-in and sign-out).
    Cookie,
}

pub struct RouteDoc {
    pub method: &'static str,
    pub path: &'static str,
    /// Which API the route mirrors (its error shape and its tag here).
    pub style: ApiStyle,
    pub handler: fn() -> MethodRouter<AppState>,
    pub summary: &'static str,
    pub auth: Access,
    /// Query parameters: (name, type, required).
    pub query: &'static [(&'static str, &'static str, bool)],
    pub input: Input,
    pub output: Output,
    /// Error statuses the route documents.
    pub errors: &'static [u16],
}

const UPLOAD_ERRORS: &[u16] = &[400, 401, 413, 415, 422, 429, 503];
const READ_ERRORS: &[u16] = &[401, 404, 429];

pub const ROUTES: &[RouteDoc] = &[
    RouteDoc { method: "get", path: "/", style: ApiStyle::Veil, handler: || get(field_page::index), summary: "The field page: sign in, upload and review photos, watch the device", auth: Access::Open, query: &[], input: Input::None, output: Output::Text("text/html"), errors: &[] },
    RouteDoc { method: "get", path: "/field/app.js", style: ApiStyle::Veil, handler: || get(field_page::script), summary: "The field page's script", auth: Access::Open, query: &[], input: Input::None, output: Output::Text("text/javascript"), errors: &[] },
    RouteDoc { method: "get", path: "/field/admin.js", style: ApiStyle::Veil, handler: || get(field_page::admin_script), summary: "The field page's admin console script", auth: Access::Open, query: &[], input: Input::None, output: Output::Text("text/javascript"), errors: &[] },
    RouteDoc { method: "get", path: "/field/http.js", style: ApiStyle::Veil, handler: || get(field_page::http_script), summary: "The field page's error reading, shared by its scripts", auth: Access::Open, query: &[], input: Input::None, output: Output::Text("text/javascript"), errors: &[] },
    RouteDoc { method: "get", path: "/field/zip.js", style: ApiStyle::Veil, handler: || get(field_page::zip_script), summary: "The field page's zip writer (download all)", auth: Access::Open, query: &[], input: Input::None, output: Output::Text("text/javascript"), errors: &[] },
    RouteDoc { method: "get", path: "/field/style.css", style: ApiStyle::Veil, handler: || get(field_page::style), summary: "The field page's style sheet", auth: Access::Open, query: &[], input: Input::None, output: Output::Text("text/css"), errors: &[] },
    RouteDoc { method: "get", path: "/health", style: ApiStyle::Xylolabs, handler: || get(xylolabs::health), summary: "Liveness and the loaded model (503 while not ready)", auth: Access::Open, query: &[], input: Input::None, output: Output::Json(200, "Health"), errors: &[503] },
    RouteDoc { method: "get", path: "/v1/health", style: ApiStyle::Cloak, handler: || get(cloak::health), summary: "Liveness and version", auth: Access::Open, query: &[], input: Input::None, output: Output::Json(200, "CloakHealth"), errors: &[] },
    RouteDoc { method: "get", path: "/openapi.json", style: ApiStyle::Veil, handler: || get(status::openapi), summary: "This document", auth: Access::Open, query: &[], input: Input::None, output: Output::Json(200, "OpenApi"), errors: &[] },
    RouteDoc { method: "post", path: "/v1/protect", style: ApiStyle::Cloak, handler: || post(cloak::protect), summary: "Queue one photo for face protection (PNG result)", auth: Access::Key, query: &[], input: Input::Multipart(&[("file", true, true), ("webhook_url", false, false)]), output: Output::Json(200, "CloakJob"), errors: UPLOAD_ERRORS },
    RouteDoc { method: "post", path: "/v1/batch-protect", style: ApiStyle::Cloak, handler: || post(cloak::batch_protect), summary: "Queue up to 20 photos", auth: Access::Key, query: &[], input: Input::Multipart(&[("files", true, true), ("webhook_url", false, false)]), output: Output::Json(200, "CloakBatch"), errors: UPLOAD_ERRORS },
    RouteDoc { method: "get", path: "/v1/status/{job_id}", style: ApiStyle::Cloak, handler: || get(cloak::status), summary: "A job's status", auth: Access::Key, query: &[], input: Input::None, output: Output::Json(200, "CloakStatus"), errors: READ_ERRORS },
    RouteDoc { method: "get", path: "/v1/download/{job_id}", style: ApiStyle::Cloak, handler: || get(cloak::download), summary: "The protected PNG (409 while processing, 422 no face)", auth: Access::Key, query: &[], input: Input::None, output: Output::Image, errors: &[401, 404, 409, 422, 429, 500] },
    RouteDoc { method: "get", path: "/v1/backends", style: ApiStyle::Cloak, handler: || get(cloak::backends), summary: "The active and available detection backends", auth: Access::Key, query: &[], input: Input::None, output: Output::Json(200, "Backends"), errors: &[401, 429] },
    RouteDoc { method: "post", path: "/api/v1/detect", style: ApiStyle::Xylolabs, handler: || post(xylolabs::detect), summary: "Detect faces (and licence plates, QR codes, barcodes, text with categories=faces,license_plates,qr_codes,barcodes,text); JSON boxes, landmarks and timings", auth: Access::Key, query: &[("confidence", "number", false), ("nms_threshold", "number", false), ("max_faces", "integer", false), ("categories", "string", false), ("detect_rotations", "string", false)], input: Input::Multipart(&[("image", true, true)]), output: Output::Json(200, "DetectResponse"), errors: UPLOAD_ERRORS },
    RouteDoc { method: "post", path: "/api/v1/mask", style: ApiStyle::Xylolabs, handler: || post(xylolabs::mask), summary: "Detect and mask faces (and licence plates with categories); the image back with X-* timing headers", auth: Access::Key, query: &[("confidence", "number", false), ("nms_threshold", "number", false), ("max_faces", "integer", false), ("categories", "string", false), ("detect_rotations", "string", false), ("method", "string", false), ("strength", "number", false), ("padding", "number", false), ("format", "string", false), ("quality", "integer", false)], input: Input::Multipart(&[("image", true, true)]), output: Output::Image, errors: UPLOAD_ERRORS },
    RouteDoc { method: "post", path: "/api/v1/media/redact", style: ApiStyle::PiiBlur, handler: || post(piiblur::redact), summary: "Queue a photo or a video (mp4, mov, webm) for redaction (veil adds method, shape, strength, padding)", auth: Access::Key, query: &[], input: Input::Multipart(&[("file", true, true), ("pii_categories[]", false, true), ("obfuscation_type", false, false), ("webhook_url", false, false), ("method", false, false), ("shape", false, false), ("strength", false, false), ("padding", false, false), ("detect_rotations", false, false)]), output: Output::Json(201, "MediaQueued"), errors: UPLOAD_ERRORS },
    RouteDoc { method: "get", path: "/api/v1/media", style: ApiStyle::PiiBlur, handler: || get(piiblur::list), summary: "List media, 20 a page", auth: Access::Key, query: &[("status", "string", false), ("media_type", "string", false), ("page", "integer", false)], input: Input::None, output: Output::Json(200, "MediaList"), errors: &[401, 422, 429] },
    RouteDoc { method: "get", path: "/api/v1/media/{id}", style: ApiStyle::PiiBlur, handler: || get(piiblur::show), summary: "One media record", auth: Access::Key, query: &[], input: Input::None, output: Output::Json(200, "Media"), errors: READ_ERRORS },
    RouteDoc { method: "delete", path: "/api/v1/media/{id}", style: ApiStyle::PiiBlur, handler: || delete(piiblur::delete), summary: "Delete a media record and its files", auth: Access::Key, query: &[], input: Input::None, output: Output::NoContent, errors: READ_ERRORS },
    RouteDoc { method: "get", path: "/api/v1/media/{id}/download", style: ApiStyle::PiiBlur, handler: || get(piiblur::download), summary: "The redacted image or video (videos are streamed)", auth: Access::Key, query: &[], input: Input::None, output: Output::Media, errors: &[401, 404, 409, 422, 429] },
    RouteDoc { method: "get", path: "/api/v1/media/{id}/original", style: ApiStyle::PiiBlur, handler: || get(piiblur::original), summary: "The uploaded original while it is kept (404 once deleted)", auth: Access::Key, query: &[], input: Input::None, output: Output::Media, errors: READ_ERRORS },
    RouteDoc { method: "get", path: "/api/v1/usage", style: ApiStyle::PiiBlur, handler: || get(piiblur::usage), summary: "Requests today, limits and media counts", auth: Access::Key, query: &[], input: Input::None, output: Output::Json(200, "Usage"), errors: &[401, 429] },
    RouteDoc { method: "post", path: "/api/v1/masking/process-image", style: ApiStyle::MaskIt, handler: || post(maskit::process_image), summary: "Queue a photo for masking (field names in any letter case)", auth: Access::Key, query: &[], input: Input::Multipart(&[("image", true, true), ("faces", false, false), ("humans", false, false), ("licensePlates", false, false), ("shape", false, false), ("method", false, false), ("blurStrength", false, false), ("edgeBlurSize", false, false), ("metadata", false, false), ("useWebhook", false, false)]), output: Output::Json(200, "MaskItJob"), errors: UPLOAD_ERRORS },
    RouteDoc { method: "get", path: "/api/v1/masking/image-status", style: ApiStyle::MaskIt, handler: || get(maskit::image_status), summary: "A masking job's status", auth: Access::Key, query: &[("jobId", "string", true)], input: Input::None, output: Output::Json(200, "MaskItStatus"), errors: &[400, 401, 404, 429] },
    RouteDoc { method: "get", path: "/api/v1/masking/image-download", style: ApiStyle::MaskIt, handler: || get(maskit::image_download), summary: "The masked image, once", auth: Access::Key, query: &[("jobId", "string", true)], input: Input::None, output: Output::Image, errors: &[400, 401, 404, 429] },
    RouteDoc { method: "post", path: "/faceblurest", style: ApiStyle::FaceBlurest, handler: || post(faceblurest::blur), summary: "Blur faces in a base64 photo", auth: Access::Key, query: &[], input: Input::Json(&[("base64_Photo_String", true), ("photo_url", false)]), output: Output::Json(200, "FaceBlurestAnswer"), errors: &[400, 401, 413, 429, 503] },
    RouteDoc { method: "post", path: "/FaceBlurest.aspx", style: ApiStyle::FaceBlurest, handler: || post(faceblurest::blur), summary: "The same, under the original service's path", auth: Access::Key, query: &[], input: Input::Json(&[("base64_Photo_String", true), ("photo_url", false)]), output: Output::Json(200, "FaceBlurestAnswer"), errors: &[400, 401, 413, 429, 503] },
    RouteDoc { method: "get", path: "/api/v1/admin/keys", style: ApiStyle::Veil, handler: || get(admin::list), summary: "List API keys (admin keys only)", auth: Access::Key, query: &[], input: Input::None, output: Output::Json(200, "KeyList"), errors: &[401, 403, 429] },
    RouteDoc { method: "post", path: "/api/v1/admin/keys", style: ApiStyle::Veil, handler: || post(admin::create), summary: "Create an API key; the key is in the answer, once (admin keys only)", auth: Access::Key, query: &[], input: Input::JsonObject(&[("name", "string", true), ("admin", "boolean", false)]), output: Output::Json(201, "NewKey"), errors: &[401, 403, 422, 429] },
    RouteDoc { method: "delete", path: "/api/v1/admin/keys/{id}", style: ApiStyle::Veil, handler: || delete(admin::revoke), summary: "Revoke an API key by id or prefix (admin keys only)", auth: Access::Key, query: &[], input: Input::None, output: Output::Json(200, "RevokedKey"), errors: &[401, 403, 404, 429] },
    RouteDoc { method: "get", path: "/api/v1/stream.mjpeg", style: ApiStyle::Veil, handler: || get(preview::stream_mjpeg), summary: "Live redacted preview (multipart/x-mixed-replace)", auth: Access::Key, query: &[], input: Input::None, output: Output::Stream("multipart/x-mixed-replace"), errors: &[401, 404, 429] },
    RouteDoc { method: "get", path: "/api/v1/events", style: ApiStyle::Veil, handler: || get(events::frame_events), summary: "Per-frame results as Server-Sent Events", auth: Access::Key, query: &[], input: Input::None, output: Output::Stream("text/event-stream"), errors: &[401, 404, 429] },
    RouteDoc { method: "get", path: "/api/v1/device", style: ApiStyle::Veil, handler: || get(device_panel::device), summary: "Board telemetry, pipeline counters and the redaction defaults (the field page's device panel)", auth: Access::Key, query: &[], input: Input::None, output: Output::Json(200, "Device"), errors: &[401, 429] },
    RouteDoc { method: "get", path: "/metrics", style: ApiStyle::Veil, handler: || get(prometheus::metrics), summary: "Counters and board health in Prometheus text format (scrape with a bearer key)", auth: Access::Key, query: &[], input: Input::None, output: Output::Text("text/plain"), errors: &[401, 429] },
    RouteDoc { method: "get", path: "/api/v1/pipeline", style: ApiStyle::Veil, handler: || get(status::pipeline), summary: "Camera pipeline counters and latencies", auth: Access::Key, query: &[], input: Input::None, output: Output::Json(200, "Pipeline"), errors: &[401, 404, 429] },
];

/// Every route: the table above and the Xylolabs admin API's.
pub fn routes() -> impl Iterator<Item = &'static RouteDoc> {
    ROUTES.iter().chain(super::xylolabs_admin::ROUTES.iter())
}

fn error_schema(style: ApiStyle) -> Value {
    match style {
        ApiStyle::Cloak | ApiStyle::Xylolabs => json!({"$ref": "#/components/schemas/DetailError"}),
        ApiStyle::FaceBlurest => json!({"$ref": "#/components/schemas/CodedErrors"}),
        _ => json!({"$ref": "#/components/schemas/Error"}),
    }
}

fn tag(r: &RouteDoc) -> &'static str {
    match r.style {
        ApiStyle::Cloak => "CloakBioGuard",
        ApiStyle::Xylolabs => "Xylolabs face-api",
        ApiStyle::PiiBlur => "PiiBlur",
        ApiStyle::MaskIt => "MaskIt",
        ApiStyle::FaceBlurest => "FaceBlurest",
        ApiStyle::Veil if r.path.starts_with("/api/v1/") => "camera",
        ApiStyle::Veil => "veil",
    }
}

fn reason(status: u16) -> &'static str {
    axum::http::StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()).unwrap_or("Error")
}

fn operation(r: &RouteDoc) -> Value {
    let mut params: Vec<Value> = r
        .query
        .iter()
        .map(|(name, ty, required)| json!({"name": name, "in": "query", "required": required, "schema": {"type": ty}}))
        .collect();
    for segment in r.path.split('/').filter(|s| s.starts_with('{')) {
        let name = segment.trim_matches(['{', '}']);
        params.push(json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}));
    }
    let mut responses = Map::new();
    let ok = match r.output {
        Output::Json(status, schema) => (status, json!({"description": "OK", "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}})),
        Output::Image => (200, json!({"description": "The image", "content": {
            "image/png": {"schema": {"type": "string", "format": "binary"}},
            "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
            "image/webp": {"schema": {"type": "string", "format": "binary"}}}})),
        Output::Media => (200, json!({"description": "The image or video", "content": {
            "image/png": {"schema": {"type": "string", "format": "binary"}},
            "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
            "image/webp": {"schema": {"type": "string", "format": "binary"}},
            "video/mp4": {"schema": {"type": "string", "format": "binary"}},
            "video/quicktime": {"schema": {"type": "string", "format": "binary"}},
            "video/webm": {"schema": {"type": "string", "format": "binary"}},
            "video/x-matroska": {"schema": {"type": "string", "format": "binary"}}}})),
        Output::NoContent => (204, json!({"description": "Deleted"})),
        Output::Stream(mime) => (200, json!({"description": "A stream", "content": {mime: {"schema": {"type": "string"}}}})),
        Output::Text(mime) => (200, json!({"description": "A text document", "content": {mime: {"schema": {"type": "string"}}}})),
        Output::Redirect => (302, json!({"description": "Found: the file is at Location", "headers": {"Location": {"schema": {"type": "string"}}}})),
        Output::Cookie => (204, json!({"description": "Done: the session cookie is in Set-Cookie", "headers": {"Set-Cookie": {"schema": {"type": "string"}}}})),
    };
    responses.insert(ok.0.to_string(), ok.1);
    let mut errors: Vec<u16> = r.errors.to_vec();
    errors.extend([500, 503]);
    match r.auth {
        Access::Open => {}
        Access::Key => errors.extend([401, 429]),
        Access::Admin => errors.extend([401, 403, 429]),
    }
    if !matches!(r.input, Input::None) {
        errors.extend([400, 413]);
    }
    errors.sort_unstable();
    errors.dedup();
    for status in errors {
        responses.insert(
            status.to_string(),
            json!({"description": reason(status), "content": {"application/json": {"schema": error_schema(r.style)}}}),
        );
    }
    let mut op = json!({
        "tags": [tag(r)],
        "summary": r.summary,
        "operationId": format!("{}{}", r.method, r.path.replace(['/', '{', '}', '.', '-'], "_")),
        "parameters": params,
        "responses": responses,
    });
    match r.auth {
        Access::Open => op["security"] = json!([]),
        Access::Key => {}
        Access::Admin => op["security"] = json!([{"adminSession": []}, {"basic": []}, {"apiKey": []}, {"bearer": []}]),
    }
    match r.input {
        Input::None => {}
        Input::Multipart(fields) => {
            let mut props = Map::new();
            let mut required = Vec::new();
            for (name, is_file, req) in fields {
                let schema = if *is_file {
                    json!({"type": "string", "format": "binary"})
                } else {
                    json!({"type": "string"})
                };
                props.insert(name.to_string(), schema);
                if *req {
                    required.push(*name);
                }
            }
            op["requestBody"] = json!({"required": true, "content": {"multipart/form-data": {"schema": {
                "type": "object", "properties": props, "required": required}}}});
        }
        Input::Json(fields) => {
            let props: Map<String, Value> = fields.iter().map(|(n, _)| (n.to_string(), json!({"type": "string"}))).collect();
            let required: Vec<&str> = fields.iter().filter(|(_, r)| *r).map(|(n, _)| *n).collect();
            op["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": {
                "type": "object", "properties": props, "required": required}}}});
        }
        Input::JsonObject(fields) => {
            let props: Map<String, Value> = fields.iter().map(|(n, ty, _)| (n.to_string(), json!({"type": ty}))).collect();
            let required: Vec<&str> = fields.iter().filter(|(_, _, r)| *r).map(|(n, _, _)| *n).collect();
            op["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": {
                "type": "object", "properties": props, "required": required, "additionalProperties": false}}}});
        }
    }
    op
}

/// The whole document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for r in routes() {
        let entry = paths.entry(r.path.to_string()).or_insert_with(|| json!({}));
        entry[r.method] = operation(r);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "veil",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "On-device face redaction with REST APIs shaped like CloakBioGuard, Xylolabs face-api, PiiBlur, MaskIt and FaceBlurest. One API key works as X-API-Key, Bearer token or Basic password.",
        },
        "paths": paths,
        "security": [{"apiKey": []}, {"bearer": []}, {"basic": []}],
        "components": {
            "securitySchemes": {
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                "bearer": {"type": "http", "scheme": "bearer"},
                "basic": {"type": "http", "scheme": "basic"},
                "adminSession": {"type": "apiKey", "in": "cookie", "name": super::xylolabs_admin::SESSION_COOKIE},
            },
            "schemas": all_schemas(),
        },
    })
}

/// The schemas below and the admin API's.
fn all_schemas() -> Value {
    let mut all = schemas();
    if let (Some(map), Value::Object(admin)) = (all.as_object_mut(), super::xylolabs_admin::schemas()) {
        map.extend(admin);
    }
    all
}

pub(super) fn obj(props: Value, required: &[&str]) -> Value {
    json!({"type": "object", "properties": props, "required": required})
}

pub(super) const NUM: &str = "number";

pub(super) fn t(ty: &str) -> Value {
    json!({"type": ty})
}

pub(super) fn nullable(ty: &str) -> Value {
    json!({"type": [ty, "null"]})
}

fn point() -> Value {
    obj(json!({"x": t(NUM), "y": t(NUM)}), &["x", "y"])
}

/// Response bodies, by name.
fn schemas() -> Value {
    let detection = obj(
        json!({
            "index": t("integer"), "category": t("string"),
            "bbox": obj(json!({"x1": t(NUM), "y1": t(NUM), "x2": t(NUM), "y2": t(NUM)}), &["x1", "y1", "x2", "y2"]),
            "confidence": t(NUM),
            "landmarks": {"oneOf": [{"type": "null"}, obj(json!({"left_eye": point(), "right_eye": point(), "nose": point(), "left_mouth": point(), "right_mouth": point()}), &["left_eye", "right_eye", "nose", "left_mouth", "right_mouth"])]},
            "size": obj(json!({"width": t(NUM), "height": t(NUM)}), &["width", "height"]),
            "area": t(NUM), "center": point(),
            "relative": obj(json!({"x_center": t(NUM), "y_center": t(NUM), "width": t(NUM), "height": t(NUM)}), &["x_center", "y_center", "width", "height"]),
        }),
        &["index", "bbox", "confidence", "landmarks", "size", "area", "center", "relative"],
    );
    let media = obj(
        json!({
            "media_id": t("string"), "id": t("string"),
            "status": {"enum": ["queued", "processing", "completed", "failed"]},
            "media_type": t("string"), "file_name": nullable("string"), "original_filename": nullable("string"),
            "file_size": t("integer"), "error_message": nullable("string"), "processed_at": nullable("string"),
            "pii_categories": {"type": "array", "items": t("string")},
            "obfuscation_type": {"enum": ["blur", "pixelation"]},
            "width": nullable("integer"), "height": nullable("integer"), "detections_count": nullable("integer"),
            "detections": {"type": "array"}, "error": nullable("string"),
            "created_at": t("string"), "completed_at": nullable("string"), "processing_ms": nullable("integer"),
            "method": nullable("string"),
            "download_url": nullable("string"), "original_url": nullable("string"),
            "original_deleted_at": nullable("string"), "result_deleted_at": nullable("string"),
            "duration_s": nullable(NUM), "frames": nullable("integer"), "frames_done": nullable("integer"),
            "progress": {"type": "number", "minimum": 0, "maximum": 1},
        }),
        &["media_id", "status", "media_type", "created_at", "download_url", "original_url"],
    );
    json!({
        "Health": obj(json!({"status": {"enum": ["ok", "degraded"]}, "model": t("string"), "model_loaded": t("boolean"),
            "version": t("string"), "supports_landmarks": t("boolean"), "database_ready": t("boolean")}),
            &["status", "model", "model_loaded"]),
        "CloakHealth": obj(json!({"status": t("string"), "version": t("string")}), &["status", "version"]),
        "OpenApi": obj(json!({"openapi": t("string"), "paths": t("object")}), &["openapi", "paths"]),
        "CloakJob": obj(json!({"job_id": t("string"), "status": {"const": "processing"}, "backend": t("string"),
            "webhook_url": nullable("string")}), &["job_id", "status", "backend", "webhook_url"]),
        "CloakBatch": obj(json!({"jobs": {"type": "array", "maxItems": 20, "items": obj(json!({"job_id": t("string"),
            "status": t("string")}), &["job_id", "status"])}}), &["jobs"]),
        "CloakStatus": obj(json!({"job_id": t("string"), "status": {"enum": ["processing", "completed", "failed"]},
            "created_at": t(NUM), "completed_at": nullable(NUM), "download_url": nullable("string"),
            "faces_detected": nullable("integer"), "error": nullable("string")}),
            &["job_id", "status", "created_at", "completed_at", "download_url"]),
        "Backends": obj(json!({"active": t("string"), "available": {"type": "array", "items": t("string")}}), &["active", "available"]),
        "DetectResponse": obj(json!({"request_id": t("string"), "image_id": {"type": "null"}, "job_id": {"type": "null"},
            "image": obj(json!({"width": t("integer"), "height": t("integer"), "channels": t("integer"), "size_bytes": t("integer")}),
                &["width", "height", "channels", "size_bytes"]),
            "detections": {"type": "array", "items": detection}, "face_count": t("integer"), "plate_count": t("integer"), "model": t("string"),
            "timings": t("object"),
            "summary": obj(json!({"face_count": t("integer"), "avg_confidence": nullable(NUM), "min_confidence": nullable(NUM),
                "max_confidence": nullable(NUM), "total_face_area": t(NUM), "face_area_ratio": t(NUM)}),
                &["face_count", "avg_confidence", "min_confidence", "max_confidence", "total_face_area", "face_area_ratio"]),
            "processing": obj(json!({"model": t("string"), "input_size": t("object"), "confidence_threshold": t(NUM),
                "nms_threshold": t(NUM), "inference_ms": t(NUM), "total_ms": t(NUM)}),
                &["model", "input_size", "confidence_threshold", "nms_threshold", "inference_ms", "total_ms"]),
            "profiling": t("object")}), &["request_id", "image_id", "job_id", "image", "detections", "face_count", "summary", "processing", "profiling"]),
        "MediaQueued": obj(json!({"media_id": t("string"), "status": {"const": "queued"}, "media_type": {"enum": ["image", "video"]}}), &["media_id", "status"]),
        "Media": media,
        "MediaList": obj(json!({"data": {"type": "array", "items": {"$ref": "#/components/schemas/Media"}},
            "current_page": t("integer"), "last_page": t("integer"), "per_page": {"const": 20}, "total": t("integer")}),
            &["data", "current_page", "last_page", "per_page", "total"]),
        "Usage": obj(json!({"requests_today": t("integer"), "limits": t("object"), "media": obj(json!({
            "total": t("integer"), "queued": t("integer"), "processing": t("integer"), "completed": t("integer"),
            "failed": t("integer")}), &["total", "queued", "processing", "completed", "failed"]),
            "supported_categories": {"type": "array", "items": t("string")},
            "plan": t("string"), "period_start": t("string"), "period_end": t("string"),
            "images": obj(json!({"used": t("integer"), "limit": nullable("integer")}), &["used", "limit"]),
            "video_minutes": obj(json!({"used": t(NUM), "limit": nullable(NUM)}), &["used", "limit"]),
            "video_minutes_total": t(NUM)}),
            &["plan", "period_start", "period_end", "images", "video_minutes", "requests_today", "limits", "media"]),
        "MaskItJob": obj(json!({"jobId": t("string")}), &["jobId"]),
        "MaskItStatus": obj(json!({"jobId": t("string"), "status": {"enum": ["Pending", "InProgress", "ReadyToDownload", "Succeeded", "Failed"]},
            "error": t("string"), "facesMasked": t("integer")}), &["jobId", "status"]),
        "FaceBlurestAnswer": obj(json!({"created": t("string"), "predictions": {"type": "array", "items": obj(json!({
            "probability": t(NUM), "tagId": t("string"), "tagName": t("string"),
            "boundingBox": obj(json!({"left": t(NUM), "top": t(NUM), "width": t(NUM), "height": t(NUM)}), &["left", "top", "width", "height"])}),
            &["probability", "tagId", "tagName", "boundingBox"])}, "final_photo": t("string")}), &["created", "predictions", "final_photo"]),
        "Pipeline": t("object"),
        "Device": obj(json!({"version": t("string"), "backend": t("string"), "telemetry": t("object"),
            "pipeline": nullable("object"), "preview": t("boolean"), "defaults": obj(json!({"method": t("string"),
            "strength": nullable(NUM), "min_strength": t(NUM), "shape": t("string"), "padding": t(NUM), "confidence": t(NUM),
            "categories": {"type": "array", "items": t("string")}}), &["method", "shape", "padding", "categories"]),
            "methods": {"type": "array", "items": t("string")}, "shapes": {"type": "array", "items": t("string")},
            "supported_categories": {"type": "array", "items": t("string")}, "max_upload_bytes": t("integer"), "admin_key": t("boolean")}),
            &["version", "backend", "telemetry", "pipeline", "defaults", "methods", "shapes", "supported_categories"]),
        "KeyList": obj(json!({"keys": {"type": "array", "items": {"$ref": "#/components/schemas/KeyRecord"}}}), &["keys"]),
        "NewKey": obj(json!({"key": t("string"), "record": {"$ref": "#/components/schemas/KeyRecord"}}), &["key", "record"]),
        "RevokedKey": obj(json!({"record": {"$ref": "#/components/schemas/KeyRecord"}}), &["record"]),
        "KeyRecord": obj(json!({"id": t("integer"), "name": t("string"), "prefix": t("string"), "created_at": t("integer"),
            "revoked_at": nullable("integer"), "admin": t("boolean")}), &["id", "name", "prefix", "created_at", "revoked_at", "admin"]),
                "Error": {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]},
                "DetailError": {"type": "object", "properties": {"detail": {"type": "string"}}, "required": ["detail"]},
                "CodedErrors": {"type": "array", "items": {"type": "object",
                    "properties": {"cd": {"type": "integer"}, "description": {"type": "string"}},
                    "required": ["cd", "description"]}},
    })
}
