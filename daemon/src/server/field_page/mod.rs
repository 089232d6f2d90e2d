//! The field page at `/`: upload, review and live preview in a browser, for crews with a laptop or
//! a phone instead of curl, and the admin console over the Xylolabs admin API. Plain HTML, CSS and JS, embedded in the binary (the rig's network may
//! have no internet); a Content-Security-Policy keeps every request on the device.

use axum::http::header;
use axum::response::{IntoResponse, Response};

/// Scripts, styles, images and API calls from the device only; images also from the page's own
/// blob URLs (results, the preview, the user's local files).
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; \
    connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn asset(mime: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, mime),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

pub async fn index() -> Response {
    asset("text/html; charset=utf-8", include_str!("index.html"))
}

pub async fn script() -> Response {
    asset("text/javascript; charset=utf-8", include_str!("app.js"))
}

pub async fn admin_script() -> Response {
    asset("text/javascript; charset=utf-8", include_str!("admin.js"))
}

pub async fn http_script() -> Response {
    asset("text/javascript; charset=utf-8", include_str!("http.js"))
}

pub async fn zip_script() -> Response {
    asset("text/javascript; charset=utf-8", include_str!("zip.js"))
}

pub async fn style() -> Response {
    asset("text/css; charset=utf-8", include_str!("style.css"))
}
