//! Request-level limits: at most `max_concurrent_requests` at once (503 beyond, at once, rather
//! than an unbounded queue) and a deadline per request (503 when it passes).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;

use super::api_error::{ApiError, ApiStyle};

pub struct RequestLimits {
    pub permits: Arc<Semaphore>,
    pub timeout: Duration,
}

pub async fn limit(State(limits): State<Arc<RequestLimits>>, req: Request, next: Next) -> Response {
    let style = ApiStyle::for_path(req.uri().path());
    let Ok(_permit) = limits.permits.clone().try_acquire_owned() else {
        return ApiError::new(style, StatusCode::SERVICE_UNAVAILABLE, "Too many requests in flight; retry shortly")
            .with_header(header::RETRY_AFTER, "1")
            .into_response();
    };
    match tokio::time::timeout(limits.timeout, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => ApiError::new(
            style,
            StatusCode::SERVICE_UNAVAILABLE,
            format!("The request did not finish within {:?}; nothing was returned", limits.timeout),
        )
        .with_header(header::RETRY_AFTER, "5")
        .into_response(),
    }
}
