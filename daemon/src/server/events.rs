//! `GET /api/v1/events`: the per-frame results as Server-Sent Events (one `frame` event per
//! redacted frame, JSON). A viewer that falls behind is told how many events it missed.

use std::convert::Infallible;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use tokio::sync::broadcast::error::RecvError;

use super::AppState;

pub async fn frame_events(State(state): State<AppState>) -> Response {
    if state.metrics.is_none() {
        let body = serde_json::json!({"error": "no camera configured: events need a [camera] source"});
        return (axum::http::StatusCode::NOT_FOUND, axum::Json(body)).into_response();
    }
    let rx = state.events.subscribe();
    let shutdown = state.shutdown.clone();
    let stream = futures_util::stream::unfold((rx, shutdown), |(mut rx, mut shutdown)| async move {
        if *shutdown.borrow() {
            return None;
        }
        let event = tokio::select! {
            received = rx.recv() => match received {
                Ok(ev) => Event::default().event("frame").json_data(&*ev).unwrap_or_else(|_| Event::default().comment("unserialisable")),
                Err(RecvError::Lagged(n)) => Event::default().event("lagged").data(n.to_string()),
                Err(RecvError::Closed) => return None,
            },
            _ = shutdown.changed() => return None,
        };
        Some((Ok::<_, Infallible>(event), (rx, shutdown)))
    });
    Sse::new(stream).keep_alive(KeepAlive::default()).into_response()
}
