//! API-key authentication and rate limiting for the API routes. One key works as `X-API-Key`,
//! `Authorization: Bearer KEY` and as the password of `Authorization: Basic` (any user name).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;

use super::api_error::{ApiError, ApiStyle};
use super::rate_limit::{RateDecision, RateInfo, RateLimiter};
use crate::store::Store;

/// Who made a request: the key's id (`None` when auth is off) and whether it is an admin key
/// (always, when auth is off).
#[derive(Debug, Clone, Copy)]
pub struct Caller {
    pub key_id: Option<i64>,
    pub admin: bool,
}

/// Authentication settings shared by every route.
pub struct Auth {
    pub enabled: bool,
    pub store: Arc<Store>,
    pub limiter: RateLimiter,
}

/// The key a request presents, from whichever header carries it.
pub fn presented_key(headers: &HeaderMap) -> Option<String> {
    if let Some(k) = headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Some(k.trim().to_string());
    }
    let auth = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, rest) = auth.split_once(' ')?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(rest.to_string());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD.decode(rest).ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (user, password) = text.split_once(':').unwrap_or((&text, ""));
        // The key is the password; a client that only has a "user" field may put it there.
        return Some(if password.is_empty() { user } else { password }.to_string());
    }
    None
}

pub(super) fn rate_headers(headers: &mut HeaderMap, info: &RateInfo) {
    for (name, value) in [
        ("x-ratelimit-limit", info.limit as i64),
        ("x-ratelimit-remaining", info.remaining as i64),
        ("x-ratelimit-reset", info.reset),
    ] {
        headers.insert(name, HeaderValue::from(value));
    }
}

/// Middleware: 401 without a valid key, 429 over the key's limits; otherwise the handler runs
/// with a [`Caller`] and the response carries `X-RateLimit-*`.
pub async fn require_key(
    State((auth, style)): State<(Arc<Auth>, ApiStyle)>,
    mut req: Request,
    next: Next,
) -> Response {
    if !auth.enabled {
        req.extensions_mut().insert(Caller { key_id: None, admin: true });
        return next.run(req).await;
    }
    let unauthorized = |message: &str| {
        ApiError::new(style, StatusCode::UNAUTHORIZED, message)
            .with_header(header::WWW_AUTHENTICATE, "Bearer, Basic realm=\"veil\"")
            .into_response()
    };
    let Some(key) = presented_key(req.headers()) else {
        return unauthorized("Missing API key: send X-API-Key, Authorization: Bearer or Basic");
    };
    let checked = {
        let auth = auth.clone();
        tokio::task::spawn_blocking(move || -> Result<_, crate::store::StoreError> {
            let Some(record) = auth.store.verify_key(&key)? else { return Ok(None) };
            Ok(Some(((record.id, record.admin), auth.limiter.check(record.id)?)))
        })
        .await
    };
    let ((key_id, admin), decision) = match checked {
        Ok(Ok(Some(found))) => found,
        Ok(Ok(None)) => return unauthorized("Invalid or revoked API key"),
        Ok(Err(e)) => return ApiError::internal(style, e.to_string()).into_response(),
        Err(_) => return ApiError::internal(style, "key check failed").into_response(),
    };
    let info = match decision {
        RateDecision::Allowed(info) => info,
        RateDecision::Limited(info) => {
            let wait = (info.reset - crate::store::now_s()).max(1);
            let mut resp = ApiError::new(
                style,
                StatusCode::TOO_MANY_REQUESTS,
                format!("Rate limit exceeded: {} requests per window; retry in {wait} s", info.limit),
            )
            .with_header(header::RETRY_AFTER, &wait.to_string())
            .into_response();
            rate_headers(resp.headers_mut(), &info);
            return resp;
        }
    };
    req.extensions_mut().insert(Caller { key_id: Some(key_id), admin });
    let mut resp = next.run(req).await;
    if let Some(info) = info {
        rate_headers(resp.headers_mut(), &info);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_found_in_all_three_headers() {
        let mut h = HeaderMap::new();
        h.insert("X-API-Key", HeaderValue::from_static("k1"));
        assert_eq!(presented_key(&h).as_deref(), Some("k1"));
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer k2"));
        assert_eq!(presented_key(&h).as_deref(), Some("k2"));
        let mut h = HeaderMap::new();
        let basic = base64::engine::general_purpose::STANDARD.encode("user:k3");
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(&format!("Basic {basic}")).unwrap());
        assert_eq!(presented_key(&h).as_deref(), Some("k3"));
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Digest x"));
        assert_eq!(presented_key(&h), None);
    }
}
