//! Reading what a handler left of a request body before answering. A route that refuses a
//! request early (bad key, too large, wrong type) would otherwise close the connection while
//! the client is still sending, and most clients then report a broken pipe instead of the
//! JSON error. The leftover is read and discarded (never stored), up to a cap.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http_body_util::BodyExt;
use tokio::sync::Mutex;

/// Discard at most the upload limit plus this much of an unread body, for at most this long;
/// then close the connection.
const DRAIN_MARGIN_BYTES: u64 = 1 << 20;
const DRAIN_MAX_TIME: Duration = Duration::from_secs(5);

/// `max_body`: the upload limit.
pub async fn drain_unread_body(State(max_body): State<u64>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let shared = Arc::new(Mutex::new(Some(body)));
    let reader = shared.clone();
    let stream = futures_util::stream::unfold(reader, |reader| async move {
        let next = {
            let mut guard = reader.lock().await;
            let body = guard.as_mut()?;
            loop {
                match body.frame().await {
                    None => break None,
                    Some(Err(e)) => break Some(Err(e)),
                    Some(Ok(frame)) => {
                        if let Ok(data) = frame.into_data() {
                            break Some(Ok(data));
                        }
                    }
                }
            }
        };
        next.map(|item| (item, reader))
    });
    let mut response = next.run(Request::from_parts(parts, Body::from_stream(stream))).await;
    let leftover = shared.lock().await.take();
    if let Some(mut body) = leftover {
        let drained = tokio::time::timeout(DRAIN_MAX_TIME, async {
            let mut seen = 0u64;
            while let Some(frame) = body.frame().await {
                let Ok(frame) = frame else { return false };
                if let Ok(data) = frame.into_data() {
                    seen += data.len() as u64;
                    if seen > max_body.saturating_add(DRAIN_MARGIN_BYTES) {
                        return false;
                    }
                }
            }
            true
        })
        .await;
        if !matches!(drained, Ok(true)) {
            response.headers_mut().insert(axum::http::header::CONNECTION, axum::http::HeaderValue::from_static("close"));
        }
    }
    response
}
