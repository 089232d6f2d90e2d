//! `GET /api/v1/stream.mjpeg`: the redacted frames as a `multipart/x-mixed-replace` JPEG stream,
//! at most `preview.max_fps` a second per viewer; a slow viewer skips frames.

use std::time::Instant;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use super::AppState;

const BOUNDARY: &str = "veilframe";

fn part(frame_id: u64, jpeg: &[u8]) -> Bytes {
    let head = format!(
        "--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\nX-Frame-Id: {frame_id}\r\n\r\n",
        jpeg.len()
    );
    let mut out = Vec::with_capacity(head.len() + jpeg.len() + 2);
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(jpeg);
    out.extend_from_slice(b"\r\n");
    Bytes::from(out)
}

pub async fn stream_mjpeg(State(state): State<AppState>) -> Response {
    if !state.preview_enabled {
        let body = serde_json::json!({"error": "no preview: it needs a [camera] source and preview.enabled = true"});
        return (StatusCode::NOT_FOUND, axum::Json(body)).into_response();
    }
    let rx = state.preview.subscribe();
    let interval = state.preview_interval;
    let shutdown = state.shutdown.clone();
    let stream = futures_util::stream::unfold(
        (rx, shutdown, None::<u64>, None::<Instant>),
        move |(mut rx, mut shutdown, last_id, last_sent)| async move {
            loop {
                if *shutdown.borrow() {
                    return None;
                }
                let latest = rx.borrow_and_update().clone();
                if let Some(img) = latest.filter(|i| Some(i.frame_id) != last_id) {
                    if let Some(at) = last_sent {
                        let due = at + interval;
                        if due > Instant::now() {
                            tokio::select! {
                                _ = tokio::time::sleep_until(due.into()) => continue, // then take the newest frame
                                _ = shutdown.changed() => return None,
                            }
                        }
                    }
                    let bytes = part(img.frame_id, &img.jpeg);
                    return Some((Ok::<_, std::io::Error>(bytes), (rx, shutdown, Some(img.frame_id), Some(Instant::now()))));
                }
                tokio::select! {
                    changed = rx.changed() => if changed.is_err() { return None },
                    _ = shutdown.changed() => return None,
                }
            }
        },
    );
    Response::builder()
        .header(header::CONTENT_TYPE, format!("multipart/x-mixed-replace; boundary={BOUNDARY}"))
        .header(header::CACHE_CONTROL, "no-cache, no-store")
        .body(Body::from_stream(stream))
        .expect("static headers are valid")
}
