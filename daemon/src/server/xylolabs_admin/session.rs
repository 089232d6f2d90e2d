//! Who may use the admin API: console sessions (an HttpOnly, SameSite=Strict cookie; state
//! changes echo the session's CSRF token), an admin user's password over HTTP Basic, or an
//! admin API key. Sign-in and sign-out, and the per-client limit on password attempts.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use base64::Engine;
use serde::Deserialize;
use serde_json::json;
use subtle::ConstantTimeEq;

use super::{blocking, STYLE};
use crate::server::api_error::ApiError;
use crate::server::auth::presented_key;
use crate::server::rate_limit::RateDecision;
use crate::server::AppState;
use crate::store::admin_users::AdminUser;
use crate::store::rfc3339;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "veil_admin";
/// The header a cookie-signed request that changes state must carry.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Password attempts (sign-in, or HTTP Basic with a wrong password) a client may make a minute.
pub const LOGIN_ATTEMPTS_PER_MINUTE: u32 = 10;

/// The admin settings every admin route reads.
pub struct AdminSettings {
    pub session_ttl_s: i64,
    /// Mark the cookie `Secure` (the server speaks HTTPS).
    pub secure_cookie: bool,
    pub attempts: LoginAttempts,
}

impl AdminSettings {
    pub fn new(session_ttl_s: i64, secure_cookie: bool) -> Self {
        Self { session_ttl_s, secure_cookie, attempts: LoginAttempts::default() }
    }
}

/// Password attempts per client address in the current minute.
#[derive(Default)]
pub struct LoginAttempts(Mutex<HashMap<Option<IpAddr>, (i64, u32)>>);

impl LoginAttempts {
    /// Seconds `client` must wait when the minute's attempts are used up.
    fn blocked(&self, client: Option<IpAddr>) -> Option<i64> {
        let now = crate::store::now_s();
        let minute = now.div_euclid(60);
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&client).filter(|(m, n)| *m == minute && *n >= LOGIN_ATTEMPTS_PER_MINUTE).map(|_| (minute + 1) * 60 - now)
    }

    /// Take one attempt for `client`; `Err(seconds to wait)` once the minute's are used up.
    fn take(&self, client: Option<IpAddr>) -> Result<(), i64> {
        let now = crate::store::now_s();
        let minute = now.div_euclid(60);
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        // Forget the clients of earlier minutes (the map stays small).
        map.retain(|_, (m, _)| *m == minute);
        let entry = map.entry(client).or_insert((minute, 0));
        if entry.1 >= LOGIN_ATTEMPTS_PER_MINUTE {
            return Err((minute + 1) * 60 - now);
        }
        entry.1 += 1;
        Ok(())
    }
}

/// How the caller of an admin route proved who they are.
#[derive(Debug, Clone)]
pub enum AdminCaller {
    /// A console session (cookie): the user and the session's token and CSRF token.
    Session { user: AdminUser, token: String, csrf_token: String, expires_at: i64 },
    /// An admin user's name and password over HTTP Basic.
    Password { user: AdminUser },
    /// An admin API key.
    Key { key_id: i64 },
}

fn client_of(req: &Request) -> Option<IpAddr> {
    req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip())
}

fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.trim().to_string())
}

/// `Authorization: Basic` as (user, password), when the user part is present.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, rest) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(rest.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    (!user.is_empty() && !password.is_empty()).then(|| (user.to_string(), password.to_string()))
}

/// 401. Scripts and command-line clients are challenged for Basic credentials; a browser page's
/// own requests (`Sec-Fetch-Mode` other than `navigate`) get a challenge for the console's
/// session instead, so the browser does not stop the page with its password dialog.
fn unauthorized(headers: &HeaderMap, message: &str) -> Response {
    let from_page = headers.get("sec-fetch-mode").is_some_and(|m| m.as_bytes() != b"navigate");
    let challenge = if from_page { "Session realm=\"veil admin\"" } else { "Basic realm=\"veil admin\"" };
    ApiError::new(STYLE, StatusCode::UNAUTHORIZED, message).with_header(header::WWW_AUTHENTICATE, challenge).into_response()
}

fn too_many(wait: i64) -> Response {
    ApiError::new(STYLE, StatusCode::TOO_MANY_REQUESTS, format!("Too many password attempts; retry in {wait} s"))
        .with_header(header::RETRY_AFTER, &wait.max(1).to_string())
        .into_response()
}

/// Middleware of every admin route except sign-in: the caller is an admin (see the module
/// note) or gets 401 (403 for a key that is not an admin key, or a cookie request that changes
/// state without the session's CSRF token).
pub async fn require_admin(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let store = state.engine.store().clone();
    let headers = req.headers().clone();
    let safe = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);

    // 1. A console session.
    if let Some(token) = cookie_token(&headers) {
        let store = store.clone();
        let lookup = token.clone();
        let session = match blocking(move || store.admin_session(&lookup)).await {
            Ok(s) => s,
            Err(e) => return e.into_response(),
        };
        if let Some(session) = session {
            if !safe {
                let sent = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
                let ok: bool = sent.as_bytes().ct_eq(session.csrf_token.as_bytes()).into();
                if !ok {
                    return ApiError::new(
                        STYLE,
                        StatusCode::FORBIDDEN,
                        "CSRF token missing or wrong: send X-CSRF-Token from GET /api/v1/admin/auth/session",
                    )
                    .into_response();
                }
            }
            req.extensions_mut().insert(AdminCaller::Session {
                user: session.user,
                token,
                csrf_token: session.csrf_token,
                expires_at: session.expires_at,
            });
            return next.run(req).await;
        }
        // An ended session falls through to the other credentials, if any were sent.
    }

    // 2. An admin user's password over HTTP Basic (a password shaped like an API key is one: 3.).
    // Every name costs one password check, so timing does not tell which users exist; a client
    // past its wrong attempts of the minute is refused before any check is made.
    if let Some((user, password)) = basic_credentials(&headers) {
        if !crate::store::keys::is_key_shaped(&password) {
            let client = client_of(&req);
            if let Some(wait) = state.admin.attempts.blocked(client) {
                return too_many(wait);
            }
            let check_store = store.clone();
            let found = match blocking(move || check_store.check_admin_password(&user, &password)).await {
                Ok(found) => found,
                Err(e) => return e.into_response(),
            };
            return match found {
                Some(user) => {
                    req.extensions_mut().insert(AdminCaller::Password { user });
                    next.run(req).await
                }
                None => {
                    let _ = state.admin.attempts.take(client);
                    unauthorized(&headers, "Invalid username or password")
                }
            };
        }
    }

    // 3. An admin API key (counted like any request of that key).
    let Some(key) = presented_key(&headers) else {
        let message = if cookie_token(&headers).is_some() {
            "Session ended: sign in again"
        } else {
            "Not authenticated: sign in at /api/v1/admin/auth/login, or send an admin's Basic credentials or an admin API key"
        };
        return unauthorized(&headers, message);
    };
    let auth = state.auth.clone();
    let checked = blocking(move || {
        let Some(record) = auth.store.verify_key(&key)? else { return Ok(None) };
        if !record.admin {
            return Ok(Some((record.id, false, None)));
        }
        Ok(Some((record.id, true, Some(auth.limiter.check(record.id)?))))
    })
    .await;
    match checked {
        Err(e) => e.into_response(),
        Ok(None) => unauthorized(&headers, "Invalid or revoked API key"),
        Ok(Some((_, false, _))) => {
            ApiError::new(STYLE, StatusCode::FORBIDDEN, "This key is not an admin key (veil keys create --admin)")
                .into_response()
        }
        Ok(Some((_, true, Some(RateDecision::Limited(info))))) => {
            let wait = (info.reset - crate::store::now_s()).max(1);
            ApiError::new(STYLE, StatusCode::TOO_MANY_REQUESTS, format!("Rate limit exceeded; retry in {wait} s"))
                .with_header(header::RETRY_AFTER, &wait.to_string())
                .into_response()
        }
        Ok(Some((key_id, true, _))) => {
            req.extensions_mut().insert(AdminCaller::Key { key_id });
            next.run(req).await
        }
    }
}

#[derive(Deserialize)]
pub struct Login {
    username: String,
    password: String,
}

fn session_cookie(settings: &AdminSettings, token: &str, max_age: i64) -> String {
    let secure = if settings.secure_cookie { "; Secure" } else { "" };
    format!("{SESSION_COOKIE}={token}; Path=/api/v1/admin; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}")
}

/// `POST /api/v1/admin/auth/login` `{username, password}`: 204 and the session cookie, 401 for
/// a wrong name or password, 429 past ten attempts a minute from one client.
pub async fn login(State(state): State<AppState>, req: Request) -> Response {
    let client = client_of(&req);
    if let Err(wait) = state.admin.attempts.take(client) {
        return too_many(wait);
    }
    let body = <Json<Login> as axum::extract::FromRequest<AppState>>::from_request(req, &state).await;
    let Json(login) = match body {
        Ok(b) => b,
        Err(e) => return ApiError::unprocessable(STYLE, e.body_text()).into_response(),
    };
    let store = state.engine.store().clone();
    let ttl = state.admin.session_ttl_s;
    let opened = blocking(move || {
        let Some(user) = store.check_admin_password(login.username.trim(), &login.password)? else { return Ok(None) };
        Ok(Some(store.open_admin_session(user.id, ttl)?))
    })
    .await;
    match opened {
        Err(e) => e.into_response(),
        Ok(None) => ApiError::new(STYLE, StatusCode::UNAUTHORIZED, "Invalid username or password").into_response(),
        Ok(Some((token, session))) => {
            tracing::info!(user = %session.user.username, "admin signed in");
            (StatusCode::NO_CONTENT, [(header::SET_COOKIE, session_cookie(&state.admin, &token, ttl))]).into_response()
        }
    }
}

/// `GET /api/v1/admin/auth/session`: who is signed in, until when, and (for a cookie session)
/// the CSRF token its state changes must send as `X-CSRF-Token`.
pub async fn session(Extension(caller): Extension<AdminCaller>) -> Response {
    let body = match caller {
        AdminCaller::Session { user, csrf_token, expires_at, .. } => json!({
            "authenticated": true, "username": user.username, "auth_method": "session",
            "expires_at": rfc3339(expires_at * 1000), "csrf_token": csrf_token,
        }),
        AdminCaller::Password { user } => json!({
            "authenticated": true, "username": user.username, "auth_method": "basic",
            "expires_at": null, "csrf_token": null,
        }),
        AdminCaller::Key { key_id } => json!({
            "authenticated": true, "username": null, "auth_method": "api_key", "key_id": key_id,
            "expires_at": null, "csrf_token": null,
        }),
    };
    Json(body).into_response()
}

/// `POST /api/v1/admin/auth/logout`: ends the session and clears the cookie (204).
pub async fn logout(State(state): State<AppState>, Extension(caller): Extension<AdminCaller>) -> Response {
    if let AdminCaller::Session { token, .. } = caller {
        let store = state.engine.store().clone();
        if let Err(e) = blocking(move || store.close_admin_session(&token)).await {
            return e.into_response();
        }
    }
    (StatusCode::NO_CONTENT, [(header::SET_COOKIE, session_cookie(&state.admin, "", 0))]).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn ten_attempts_a_minute_per_client() {
        let attempts = LoginAttempts::default();
        let a: Option<IpAddr> = Some("10.0.0.1".parse().unwrap());
        let b: Option<IpAddr> = Some("10.0.0.2".parse().unwrap());
        for _ in 0..LOGIN_ATTEMPTS_PER_MINUTE {
            attempts.take(a).unwrap();
        }
        let wait = attempts.take(a).unwrap_err();
        assert!((1..=60).contains(&wait));
        assert!(attempts.blocked(a).is_some() && attempts.blocked(b).is_none());
        attempts.take(b).unwrap();
    }

    #[test]
    fn cookie_and_basic_parsing() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_static("theme=dark; veil_admin=abc123 ; other=1"));
        assert_eq!(cookie_token(&h).as_deref(), Some("abc123"));
        let basic = base64::engine::general_purpose::STANDARD.encode("ops:pass:word");
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(&format!("Basic {basic}")).unwrap());
        assert_eq!(basic_credentials(&h), Some(("ops".into(), "pass:word".into())));
        let only_key = base64::engine::general_purpose::STANDARD.encode(":veil_key");
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(&format!("Basic {only_key}")).unwrap());
        assert_eq!(basic_credentials(&h), None);
    }
}
