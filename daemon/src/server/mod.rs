//! The HTTP server of `veil serve` (axum on tokio, optionally TLS with rustls): the mirrored
//! cloud APIs, the live preview, per-frame events, pipeline status and health.
//! Routes are grouped by API in submodules; they share one [`AppState`].

mod admin;
pub mod api_error;
pub mod auth;
mod body_rate;
mod cloak;
mod device_panel;
mod events;
mod faceblurest;
mod field_page;
mod job_errors;
mod limits;
mod maskit;
mod openapi;
mod piiblur;
mod preview;
mod prometheus;
pub mod rate_limit;
mod status;
mod unread_body;
mod upload_form;
mod xylolabs;
mod xylolabs_admin;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::middleware::from_fn_with_state;
use axum::response::IntoResponse;
use axum::routing::MethodRouter;
use axum::Router;
use tokio::sync::watch;

use api_error::{ApiError, ApiStyle};
use auth::{require_key, Auth};
use limits::RequestLimits;
pub use xylolabs_admin::AdminSettings;

use crate::jobs::JobEngine;
use crate::pipeline::metrics::Metrics;
use crate::sinks::events::EventStream;
use crate::sinks::preview::PreviewFeed;

/// API settings the handlers read.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    pub max_upload_bytes: usize,
    /// Largest video upload (`api.max_video_megabytes`; PiiBlur's media route only).
    pub max_video_bytes: usize,
    pub photo_url_fetch: bool,
    /// Every backend as `name-precision`, e.g. `centerface-int8`.
    pub backends: Vec<String>,
    /// Where MaskIt-style `useWebhook` jobs report.
    pub default_webhook_url: Option<String>,
    pub request_timeout: Duration,
    pub max_concurrent_requests: usize,
    pub max_concurrent_per_key: usize,
    /// Uploads slower than this (after a grace period) are cut off with 408; 0 = no minimum.
    pub min_upload_bytes_per_s: u64,
    /// `GET /api/v1/media/{id}/original` answers (retention configured and opted in).
    pub serve_originals: bool,
    /// Where submitted webhook URLs may point (`webhooks.allow`).
    pub webhook_policy: Arc<crate::outbound::OutboundPolicy>,
}

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub preview: PreviewFeed,
    pub events: EventStream,
    /// `None` when no camera is configured.
    pub metrics: Option<Arc<Metrics>>,
    /// The job workers' detector (its backend can be switched while running).
    pub detector: Arc<crate::swappable_detector::SwappableDetector>,
    pub preview_interval: Duration,
    /// Whether the preview sink is wired to the pipeline (`preview.enabled` and a camera).
    pub preview_enabled: bool,
    /// Flips to `true` on shutdown, ending long-lived responses such as the preview stream.
    pub shutdown: watch::Receiver<bool>,
    pub engine: Arc<JobEngine>,
    pub auth: Arc<Auth>,
    pub api: Arc<ApiSettings>,
    /// What remote commands act on; `/metrics` reads the capture state and backend from it.
    pub device: Arc<crate::device::Device>,
    /// Admin console sessions: their length, the cookie's `Secure` flag, sign-in attempts.
    pub admin: Arc<xylolabs_admin::AdminSettings>,
    /// Board health for `/metrics` (one sampler: CPU use is measured between samples).
    pub sampler: Arc<std::sync::Mutex<crate::telemetry::Sampler>>,
}

impl AppState {
    /// One telemetry sample of the board and the daemon (blocking: call off the async threads).
    pub fn telemetry_sample(&self) -> crate::telemetry::Telemetry {
        let mut sampler = self.sampler.lock().unwrap_or_else(|p| p.into_inner());
        sampler.sample(&crate::telemetry::Sources {
            metrics: self.metrics.as_ref(),
            store: self.engine.store(),
            capture: self.device.capture_state(),
            backend: self.device.backend(),
        })
    }

    /// `name-precision` of the backend in use now.
    pub fn active_backend(&self) -> String {
        use veil_models::Detector;
        let info = self.detector.info();
        format!("{}-{}", info.name, info.precision)
    }
}

/// Room for a multipart body's boundaries and text fields beside its file.
const MULTIPART_MARGIN: usize = 1 << 20;

pub fn router(state: AppState) -> Router {
    let limits = Arc::new(RequestLimits {
        permits: Arc::new(tokio::sync::Semaphore::new(state.api.max_concurrent_requests)),
        timeout: state.api.request_timeout,
        per_key: state.api.max_concurrent_per_key,
        in_flight: Default::default(),
        auth: state.auth.clone(),
    });
    let body_rate =
        Arc::new(body_rate::BodyRate { min_bytes_per_s: state.api.min_upload_bytes_per_s, grace: body_rate::GRACE });
    // One method router per path, each method behind the key check of its API style.
    let mut paths: Vec<(&'static str, MethodRouter<AppState>)> = Vec::new();
    for r in openapi::routes() {
        let mut handler = (r.handler)();
        match r.auth {
            openapi::Access::Open => {}
            openapi::Access::Key => {
                handler = handler.route_layer(from_fn_with_state((state.auth.clone(), r.style), require_key));
            }
            openapi::Access::Admin => {
                handler = handler.route_layer(from_fn_with_state(state.clone(), xylolabs_admin::require_admin));
            }
        }
        if r.path == piiblur::MEDIA_UPLOAD_PATH && r.method == "post" {
            // Videos stream to disk there; the form reader holds photos to the photo limit.
            let limit = state.api.max_video_bytes.max(state.api.max_upload_bytes) + MULTIPART_MARGIN;
            handler = handler.layer(DefaultBodyLimit::max(limit));
        }
        match paths.iter_mut().find(|(p, _)| *p == r.path) {
            Some((_, existing)) => *existing = std::mem::take(existing).merge(handler),
            None => paths.push((r.path, handler)),
        }
    }
    let mut router = Router::new();
    for (path, handler) in paths {
        router = router.route(path, handler);
    }
    router
        .fallback(|| async { ApiError::not_found(ApiStyle::Veil, "No such route").into_response() })
        .method_not_allowed_fallback(|| async {
            ApiError::new(ApiStyle::Veil, StatusCode::METHOD_NOT_ALLOWED, "Method not allowed on this route")
                .into_response()
        })
        .layer(DefaultBodyLimit::max(state.api.max_upload_bytes))
        .layer(from_fn_with_state(body_rate, body_rate::enforce))
        .layer(from_fn_with_state(limits, limits::limit))
        .layer(from_fn_with_state(state.api.max_upload_bytes as u64, unread_body::drain_unread_body))
        .layer(axum::middleware::from_fn(limits::head_size))
        .with_state(state)
}

/// HTTPS certificate chain and key files (PEM).
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// What the port answers while the model loads: 503 everywhere, with a health body saying so.
pub fn loading_router() -> Router {
    let loading = || async {
        let body =
            serde_json::json!({"status": "loading", "model_loaded": false, "version": env!("CARGO_PKG_VERSION")});
        (StatusCode::SERVICE_UNAVAILABLE, [(axum::http::header::RETRY_AFTER, "1")], axum::Json(body)).into_response()
    };
    Router::new()
        .route("/health", axum::routing::get(loading))
        .route("/v1/health", axum::routing::get(loading))
        .fallback(|| async {
            ApiError::new(ApiStyle::Veil, StatusCode::SERVICE_UNAVAILABLE, "Starting: the model is loading")
                .with_header(axum::http::header::RETRY_AFTER, "1")
                .into_response()
        })
}

/// Serve `app` until `shutdown` flips, then finish in-flight requests (at most `grace`).
pub async fn serve(
    listener: std::net::TcpListener,
    tls: Option<TlsFiles>,
    app: Router,
    mut shutdown: watch::Receiver<bool>,
    grace: Duration,
) -> std::io::Result<()> {
    // The peer address is the admin sign-in limiter's client.
    let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    let handle = axum_server::Handle::new();
    let watcher = handle.clone();
    tokio::spawn(async move {
        let _ = shutdown.wait_for(|s| *s).await;
        watcher.graceful_shutdown(Some(grace));
    });
    listener.set_nonblocking(true)?;
    match tls {
        Some(files) => {
            let config = axum_server::tls_rustls::RustlsConfig::from_pem_file(&files.cert, &files.key)
                .await
                .map_err(|e| std::io::Error::other(format!("TLS certificate/key: {e}")))?;
            let mut server = axum_server::from_tcp_rustls(listener, config).handle(handle);
            tune(server.http_builder());
            server.serve(app).await
        }
        None => {
            let mut server = axum_server::from_tcp(listener).handle(handle);
            tune(server.http_builder());
            server.serve(app).await
        }
    }
}

/// Connection-level limits: a client must send its headers within 30 s. hyper reads up to four
/// times the request-head limit (and headers) before refusing on its own, so the router's
/// [`limits::head_size`] answers oversized heads in the API's error shape.
fn tune(builder: &mut hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor>) {
    builder
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30))
        .max_buf_size(4 * limits::MAX_HEAD_BYTES)
        .max_headers(4 * limits::MAX_HEADERS);
}

/// Install rustls's crypto provider once (the TLS server and the webhook client share it).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

pub(crate) fn openapi_doc() -> serde_json::Value {
    openapi::document()
}
