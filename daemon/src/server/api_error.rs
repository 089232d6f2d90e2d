//! Errors as each mirrored API spells them: `{"detail": ...}` (CloakBioGuard, Xylolabs),
//! `{"error": ...}` (PiiBlur, MaskIt, veil's own routes), `[{"cd", "description"}]` (FaceBlurest).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// Which API a route mirrors; decides the error body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiStyle {
    Cloak,
    Xylolabs,
    PiiBlur,
    MaskIt,
    FaceBlurest,
    Veil,
}

impl ApiStyle {
    /// The style of the API a path belongs to (for errors raised before routing, such as
    /// overload and timeouts).
    pub fn for_path(path: &str) -> ApiStyle {
        if path.starts_with("/v1/") {
            ApiStyle::Cloak
        } else if path.eq_ignore_ascii_case("/faceblurest") || path.eq_ignore_ascii_case("/faceblurest.aspx") {
            ApiStyle::FaceBlurest
        } else if path.starts_with("/api/v1/media") || path == "/api/v1/usage" {
            ApiStyle::PiiBlur
        } else if path.starts_with("/api/v1/masking/") {
            ApiStyle::MaskIt
        } else if path == "/health" || path == "/api/v1/detect" || path == "/api/v1/mask" {
            ApiStyle::Xylolabs
        } else {
            ApiStyle::Veil
        }
    }
}

/// An error response in a route's own style.
#[derive(Debug)]
pub struct ApiError {
    pub style: ApiStyle,
    pub status: StatusCode,
    pub message: String,
    /// FaceBlurest's numeric error code.
    pub code: Option<u32>,
    /// Extra JSON fields for `{"error": ...}` bodies (e.g. the supported categories).
    pub extra: Option<serde_json::Value>,
    pub headers: Vec<(header::HeaderName, HeaderValue)>,
}

impl ApiError {
    pub fn new(style: ApiStyle, status: StatusCode, message: impl Into<String>) -> Self {
        Self { style, status, message: message.into(), code: None, extra: None, headers: Vec::new() }
    }

    pub fn bad_request(style: ApiStyle, message: impl Into<String>) -> Self {
        Self::new(style, StatusCode::BAD_REQUEST, message)
    }

    pub fn unprocessable(style: ApiStyle, message: impl Into<String>) -> Self {
        Self::new(style, StatusCode::UNPROCESSABLE_ENTITY, message)
    }

    pub fn not_found(style: ApiStyle, message: impl Into<String>) -> Self {
        Self::new(style, StatusCode::NOT_FOUND, message)
    }

    pub fn internal(style: ApiStyle, message: impl Into<String>) -> Self {
        Self::new(style, StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    pub fn with_code(mut self, code: u32) -> Self {
        self.code = Some(code);
        self
    }

    pub fn with_extra(mut self, extra: serde_json::Value) -> Self {
        self.extra = Some(extra);
        self
    }

    pub fn with_header(mut self, name: header::HeaderName, value: &str) -> Self {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.push((name, v));
        }
        self
    }
}

/// FaceBlurest's code for an HTTP status when none was given.
fn faceblurest_code(status: StatusCode) -> u32 {
    match status.as_u16() {
        401 | 403 => 1001,
        413 => 1013,
        429 => 1029,
        400 | 404 | 415 | 422 => 1014,
        _ => 1099,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = match self.style {
            ApiStyle::Cloak | ApiStyle::Xylolabs => json!({ "detail": self.message }),
            ApiStyle::FaceBlurest => json!([{
                "cd": self.code.unwrap_or_else(|| faceblurest_code(self.status)),
                "description": self.message,
            }]),
            ApiStyle::PiiBlur | ApiStyle::MaskIt | ApiStyle::Veil => {
                let mut v = json!({ "error": self.message });
                if let (Some(serde_json::Value::Object(extra)), Some(obj)) = (self.extra, v.as_object_mut()) {
                    obj.extend(extra);
                }
                v
            }
        };
        let mut resp = (self.status, Json(body)).into_response();
        for (k, v) in self.headers {
            resp.headers_mut().insert(k, v);
        }
        resp
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        ApiError::internal(ApiStyle::Veil, e.to_string())
    }
}

/// Re-style an error made for another API (e.g. a store error bubbling up with `?`).
pub trait InStyle<T> {
    fn in_style(self, style: ApiStyle) -> Result<T, ApiError>;
}

impl<T, E: Into<ApiError>> InStyle<T> for Result<T, E> {
    fn in_style(self, style: ApiStyle) -> Result<T, ApiError> {
        self.map_err(|e| {
            let mut e = e.into();
            e.style = style;
            e
        })
    }
}
