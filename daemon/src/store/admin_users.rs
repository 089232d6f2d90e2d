//! Admin users (`veil admin add-user`) and their sign-in sessions. Passwords are kept only as
//! argon2id hashes (PHC strings); a session is a random token the browser holds in a cookie,
//! stored here as its sha256 beside the CSRF token that state changes must echo.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use rusqlite::{params, OptionalExtension};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{now_s, Store, StoreError};

/// An admin user's public record.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AdminUser {
    pub id: i64,
    pub username: String,
    pub created_at: i64,
    pub last_login_at: Option<i64>,
}

/// A live session: whose it is, its CSRF token and when it ends.
#[derive(Debug, Clone, PartialEq)]
pub struct AdminSession {
    pub user: AdminUser,
    pub csrf_token: String,
    pub created_at: i64,
    pub expires_at: i64,
}

/// Shortest password `add_admin_user` accepts.
pub const MIN_PASSWORD_CHARS: usize = 10;

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

fn random_token() -> Result<String, StoreError> {
    let mut buf = [0u8; 32];
    getrandom::fill(&mut buf).map_err(|e| StoreError::NotFound(format!("no randomness for a session: {e}")))?;
    Ok(hex::encode(buf))
}

/// A user name: 1..64 characters of letters, digits, `.`, `_`, `-`, `@`.
pub fn valid_username(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-@".contains(&b))
}

/// A hash to verify against when the user does not exist, so a wrong name costs as long as a
/// wrong password (made once, lazily).
fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password("decoy password, never a real one").unwrap_or_default())
}

fn hash_password(password: &str) -> Result<String, StoreError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| StoreError::NotFound(format!("password hash: {e}")))
}

fn password_matches(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

fn user_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AdminUser> {
    Ok(AdminUser { id: r.get(0)?, username: r.get(1)?, created_at: r.get(2)?, last_login_at: r.get(3)? })
}

impl Store {
    /// Add an admin user, or set a new password for an existing one (`replace`).
    pub fn add_admin_user(&self, username: &str, password: &str, replace: bool) -> Result<AdminUser, StoreError> {
        if !valid_username(username) {
            return Err(StoreError::NotFound("a user name is 1..64 letters, digits, '.', '_', '-' or '@'".into()));
        }
        if password.chars().count() < MIN_PASSWORD_CHARS {
            return Err(StoreError::NotFound(format!("a password has at least {MIN_PASSWORD_CHARS} characters")));
        }
        // Hashing takes tens of milliseconds: not under the connection's lock.
        let phc = hash_password(password)?;
        let conn = self.conn();
        let exists: bool = conn
            .query_row("SELECT 1 FROM admin_users WHERE username = ?1", params![username], |_| Ok(()))
            .optional()?
            .is_some();
        if exists && !replace {
            return Err(StoreError::NotFound(format!("admin user {username:?} exists (--reset sets a new password)")));
        }
        if exists {
            conn.execute("UPDATE admin_users SET password_hash = ?1 WHERE username = ?2", params![phc, username])?;
            // A new password ends the sessions signed in with the old one.
            conn.execute(
                "DELETE FROM admin_sessions WHERE user_id = (SELECT id FROM admin_users WHERE username = ?1)",
                params![username],
            )?;
        } else {
            conn.execute(
                "INSERT INTO admin_users (username, password_hash, created_at) VALUES (?1, ?2, ?3)",
                params![username, phc, now_s()],
            )?;
        }
        Ok(conn.query_row(
            "SELECT id, username, created_at, last_login_at FROM admin_users WHERE username = ?1",
            params![username],
            user_from_row,
        )?)
    }

    pub fn list_admin_users(&self) -> Result<Vec<AdminUser>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT id, username, created_at, last_login_at FROM admin_users ORDER BY id")?;
        let rows = stmt.query_map([], user_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Remove a user and their sessions.
    pub fn remove_admin_user(&self, username: &str) -> Result<(), StoreError> {
        let conn = self.conn();
        conn.execute(
            "DELETE FROM admin_sessions WHERE user_id = (SELECT id FROM admin_users WHERE username = ?1)",
            params![username],
        )?;
        if conn.execute("DELETE FROM admin_users WHERE username = ?1", params![username])? == 0 {
            return Err(StoreError::NotFound(format!("no admin user {username:?}")));
        }
        Ok(())
    }

    /// The user these credentials name, if the password is theirs (slow by design).
    pub fn check_admin_password(&self, username: &str, password: &str) -> Result<Option<AdminUser>, StoreError> {
        let row = {
            let conn = self.conn();
            conn.query_row(
                "SELECT id, username, created_at, last_login_at, password_hash FROM admin_users WHERE username = ?1",
                params![username],
                |r| Ok((user_from_row(r)?, r.get::<_, String>(4)?)),
            )
            .optional()?
        };
        Ok(match row {
            Some((user, phc)) => password_matches(password, &phc).then_some(user),
            None => {
                password_matches(password, decoy_hash());
                None
            }
        })
    }

    /// Open a session for `user_id` lasting `ttl_s`; returns the cookie token (kept nowhere).
    pub fn open_admin_session(&self, user_id: i64, ttl_s: i64) -> Result<(String, AdminSession), StoreError> {
        let token = random_token()?;
        let csrf = random_token()?;
        let now = now_s();
        let conn = self.conn();
        // Ended sessions are swept whenever one starts.
        conn.execute("DELETE FROM admin_sessions WHERE expires_at <= ?1", params![now])?;
        conn.execute(
            "INSERT INTO admin_sessions (token_sha256, user_id, csrf_token, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![sha256_hex(&token), user_id, csrf, now, now + ttl_s],
        )?;
        conn.execute("UPDATE admin_users SET last_login_at = ?1 WHERE id = ?2", params![now, user_id])?;
        let user = conn.query_row(
            "SELECT id, username, created_at, last_login_at FROM admin_users WHERE id = ?1",
            params![user_id],
            user_from_row,
        )?;
        Ok((token, AdminSession { user, csrf_token: csrf, created_at: now, expires_at: now + ttl_s }))
    }

    /// The live session a cookie token opens, if any.
    pub fn admin_session(&self, token: &str) -> Result<Option<AdminSession>, StoreError> {
        if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(None);
        }
        let conn = self.conn();
        Ok(conn
            .query_row(
                "SELECT u.id, u.username, u.created_at, u.last_login_at, s.csrf_token, s.created_at, s.expires_at
                 FROM admin_sessions s JOIN admin_users u ON u.id = s.user_id
                 WHERE s.token_sha256 = ?1 AND s.expires_at > ?2",
                params![sha256_hex(token), now_s()],
                |r| {
                    Ok(AdminSession {
                        user: user_from_row(r)?,
                        csrf_token: r.get(4)?,
                        created_at: r.get(5)?,
                        expires_at: r.get(6)?,
                    })
                },
            )
            .optional()?)
    }

    pub fn close_admin_session(&self, token: &str) -> Result<(), StoreError> {
        self.conn().execute("DELETE FROM admin_sessions WHERE token_sha256 = ?1", params![sha256_hex(token)])?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_passwords_and_sessions() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert!(store.add_admin_user("ops", "short", false).is_err());
        assert!(store.add_admin_user("no spaces", "long enough password", false).is_err());
        let user = store.add_admin_user("ops", "correct horse battery", false).unwrap();
        assert!(store.add_admin_user("ops", "another password", false).is_err());
        // The database holds a salted argon2id hash, never the password.
        let phc: String = store.conn().query_row("SELECT password_hash FROM admin_users", [], |r| r.get(0)).unwrap();
        assert!(phc.starts_with("$argon2id$") && !phc.contains("correct horse"));
        assert_eq!(store.check_admin_password("ops", "correct horse battery").unwrap().unwrap().id, user.id);
        assert!(store.check_admin_password("ops", "wrong password!").unwrap().is_none());
        assert!(store.check_admin_password("nobody", "correct horse battery").unwrap().is_none());

        let (token, session) = store.open_admin_session(user.id, 60).unwrap();
        assert_eq!(session.user.username, "ops");
        assert_eq!(store.admin_session(&token).unwrap().unwrap().csrf_token, session.csrf_token);
        assert!(store.admin_session(&"0".repeat(64)).unwrap().is_none());
        store.close_admin_session(&token).unwrap();
        assert!(store.admin_session(&token).unwrap().is_none());
        // An expired session opens nothing; a new password ends the old sessions.
        let (expired, _) = store.open_admin_session(user.id, 0).unwrap();
        assert!(store.admin_session(&expired).unwrap().is_none());
        let (live, _) = store.open_admin_session(user.id, 60).unwrap();
        store.add_admin_user("ops", "a brand new password", true).unwrap();
        assert!(store.admin_session(&live).unwrap().is_none());
        assert!(store.check_admin_password("ops", "a brand new password").unwrap().is_some());
        store.remove_admin_user("ops").unwrap();
        assert!(store.list_admin_users().unwrap().is_empty());
    }
}
