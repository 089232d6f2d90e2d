//! A minimum upload rate (`api.min_upload_kbps`): after a grace period, a request body arriving
//! slower than that is cut off and the request answered 408 in its API's error shape, so slow
//! uploads cannot hold the server's request slots for the whole request timeout.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;

use super::api_error::{ApiError, ApiStyle};

/// How long any upload may take to reach the minimum rate.
pub const GRACE: Duration = Duration::from_secs(10);

pub struct BodyRate {
    pub min_bytes_per_s: u64,
    pub grace: Duration,
}

#[derive(Debug, thiserror::Error)]
#[error("the upload is arriving too slowly")]
struct TooSlow;

pub async fn enforce(State(rate): State<Arc<BodyRate>>, req: Request, next: Next) -> Response {
    if rate.min_bytes_per_s == 0 {
        return next.run(req).await;
    }
    let style = ApiStyle::for_path(req.uri().path());
    let (parts, body) = req.into_parts();
    let cut = Arc::new(AtomicBool::new(false));
    let flag = cut.clone();
    let (min, grace, start) = (rate.min_bytes_per_s, rate.grace, Instant::now());
    let stream = futures_util::stream::unfold(Some((body, 0u64)), move |state| {
        let flag = flag.clone();
        async move {
            let (mut body, got) = state?;
            loop {
                // When the body falls under the minimum rate unless more arrives before.
                let due = start + grace.max(Duration::from_secs_f64(got as f64 / min as f64));
                match tokio::time::timeout_at(due.into(), body.frame()).await {
                    Err(_) => {
                        flag.store(true, Ordering::SeqCst);
                        return Some((Err(axum::Error::new(TooSlow)), None));
                    }
                    Ok(None) => return None,
                    Ok(Some(Err(e))) => return Some((Err(e), None)),
                    Ok(Some(Ok(frame))) => {
                        if let Ok(data) = frame.into_data() {
                            let n = data.len() as u64;
                            return Some((Ok(data), Some((body, got + n))));
                        }
                    }
                }
            }
        }
    });
    let resp = next.run(Request::from_parts(parts, Body::from_stream(stream))).await;
    if cut.load(Ordering::SeqCst) {
        let kbps = min.div_ceil(1024);
        return ApiError::new(
            style,
            StatusCode::REQUEST_TIMEOUT,
            format!("The upload arrived slower than {kbps} KB/s after {} s; it was cut off (api.min_upload_kbps)", grace.as_secs()),
        )
        .into_response();
    }
    resp
}
