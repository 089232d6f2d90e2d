//! The HTTP server of `veil serve` (axum on tokio): the live preview, per-frame events, pipeline
//! status and health.
//! Routes are grouped by API in submodules; they share one [`AppState`].

mod events;
mod preview;
mod status;

use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use tokio::sync::watch;

use crate::pipeline::metrics::Metrics;
use crate::sinks::events::EventStream;
use crate::sinks::preview::PreviewFeed;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub preview: PreviewFeed,
    pub events: EventStream,
    /// `None` when no camera is configured.
    pub metrics: Option<Arc<Metrics>>,
    pub backend: Arc<veil_models::BackendInfo>,
    pub preview_interval: Duration,
    /// Whether the preview sink is wired to the pipeline (`preview.enabled` and a camera).
    pub preview_enabled: bool,
    /// Flips to `true` on shutdown, ending long-lived responses such as the preview stream.
    pub shutdown: watch::Receiver<bool>,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(status::health))
        .route("/api/v1/stream.mjpeg", get(preview::stream_mjpeg))
        .route("/api/v1/pipeline", get(status::pipeline))
        .route("/api/v1/events", get(events::frame_events))
        .with_state(state)
}

/// Serve until `shutdown` flips, then finish in-flight requests (at most `grace`).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    mut shutdown: watch::Receiver<bool>,
    grace: Duration,
) -> std::io::Result<()> {
    let app = router(state);
    let mut signal = shutdown.clone();
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        let _ = signal.wait_for(|s| *s).await;
    });
    let mut server = tokio::spawn(async move { server.await });
    tokio::select! {
        // The server stops by itself only on an accept error.
        joined = &mut server => return joined.map_err(std::io::Error::other)?,
        _ = shutdown.wait_for(|s| *s) => {}
    }
    match tokio::time::timeout(grace, &mut server).await {
        Ok(joined) => joined.map_err(std::io::Error::other)?,
        Err(_) => {
            tracing::warn!("in-flight requests still running after {grace:?}; closing them");
            server.abort();
            Ok(())
        }
    }
}
