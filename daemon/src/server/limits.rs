//! Request-level limits: at most `max_concurrent_requests` at once and at most
//! `max_concurrent_per_key` of one key (503 beyond, at once, rather than an unbounded queue),
//! and a deadline per request (503 when it passes). Health, metrics, the OpenAPI document and the
//! field page's files are served outside the shared pool, so one busy key cannot take them down.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;

use super::api_error::{ApiError, ApiStyle};
use super::auth::{presented_key, rate_headers, Auth};

pub struct RequestLimits {
    pub permits: Arc<Semaphore>,
    pub timeout: Duration,
    /// Requests one presented key (or, without one, anonymous callers together) may have in
    /// flight.
    pub per_key: usize,
    pub in_flight: Mutex<HashMap<String, usize>>,
    /// For the `X-RateLimit-*` headers of a 503.
    pub auth: Arc<Auth>,
}

/// Paths served outside the shared pool: cheap, and what an operator needs while the API is
/// busy.
fn outside_pool(path: &str) -> bool {
    matches!(path, "/" | "/health" | "/v1/health" | "/metrics" | "/openapi.json") || path.starts_with("/field/")
}

/// One key's slot, given back on drop.
struct KeySlot<'a> {
    limits: &'a RequestLimits,
    key: String,
}

impl Drop for KeySlot<'_> {
    fn drop(&mut self) {
        let mut map = self.limits.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.key);
            }
        }
    }
}

impl RequestLimits {
    fn take_key_slot(&self, key: &str) -> Option<KeySlot<'_>> {
        let mut map = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        let n = map.entry(key.to_string()).or_insert(0);
        if *n >= self.per_key {
            return None;
        }
        *n += 1;
        Some(KeySlot { limits: self, key: key.to_string() })
    }

    /// A 503 that says when to come back and, for a valid key, where its rate window stands.
    async fn busy(&self, style: ApiStyle, key: Option<String>, message: String) -> Response {
        let mut resp =
            ApiError::new(style, StatusCode::SERVICE_UNAVAILABLE, message).with_header(header::RETRY_AFTER, "1").into_response();
        if let Some(key) = key.filter(|_| self.auth.enabled) {
            let auth = self.auth.clone();
            let info = tokio::task::spawn_blocking(move || {
                let record = auth.store.verify_key(&key).ok().flatten()?;
                auth.limiter.peek(record.id)
            })
            .await
            .ok()
            .flatten();
            if let Some(info) = info {
                rate_headers(resp.headers_mut(), &info);
            }
        }
        resp
    }
}

pub async fn limit(State(limits): State<Arc<RequestLimits>>, req: Request, next: Next) -> Response {
    if outside_pool(req.uri().path()) {
        return next.run(req).await;
    }
    let style = ApiStyle::for_path(req.uri().path());
    let key = presented_key(req.headers());
    // Without keys (`api.auth = false`) there is nobody to share among: the global pool only.
    // Callers without a key are refused by the key check before they read a byte of body.
    let _key_slot = if limits.auth.enabled {
        let bucket = key.as_deref().map(|k| format!("key:{k}")).unwrap_or_else(|| "anonymous".into());
        let Some(slot) = limits.take_key_slot(&bucket) else {
            let message = format!("Too many requests in flight for this key (at most {}); retry shortly", limits.per_key);
            return limits.busy(style, key, message).await;
        };
        Some(slot)
    } else {
        None
    };
    let Ok(_permit) = limits.permits.clone().try_acquire_owned() else {
        return limits.busy(style, key, "Too many requests in flight; retry shortly".into()).await;
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

/// Requests whose request line or headers are bigger than this get 431 in their API's error
/// shape (hyper reads up to four times as much before it answers an empty 431 itself).
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Headers a request may have (hyper refuses past four times as many).
pub const MAX_HEADERS: usize = 100;

/// 431 with a JSON body for an oversized request line or header block.
pub async fn head_size(req: Request, next: Next) -> Response {
    let head: usize = req.uri().to_string().len()
        + req.headers().iter().map(|(k, v)| k.as_str().len() + v.as_bytes().len() + 4).sum::<usize>();
    if head > MAX_HEAD_BYTES || req.headers().len() > MAX_HEADERS {
        let style = ApiStyle::for_path(req.uri().path());
        return ApiError::new(
            style,
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            format!(
                "The request line and headers are {head} bytes in {} headers; the limit is {MAX_HEAD_BYTES} bytes and {MAX_HEADERS} headers",
                req.headers().len()
            ),
        )
        .into_response();
    }
    next.run(req).await
}
