//! The daemon's persistent state: one SQLite database (WAL) in the state directory, with
//! versioned migrations. Jobs, API keys, admin users and webhook deliveries live here.

pub mod admin_users;
pub mod jobs;
pub mod keys;
pub mod outbox;
pub mod usage;
pub mod webhooks;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use rusqlite::Connection;

/// Schema migrations, applied in order; `PRAGMA user_version` records how many ran.
const MIGRATIONS: &[&str] = &[
    // 1: API keys, stored as the sha256 of the whole key; `prefix` finds the row.
    "CREATE TABLE api_keys (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        prefix TEXT NOT NULL UNIQUE,
        key_sha256 TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        revoked_at INTEGER
    );",
    // 2: jobs (one row per uploaded photo, whichever API took it), webhook deliveries,
    // per-key daily request counts, and admin keys (which may manage keys over HTTP).
    "ALTER TABLE api_keys ADD COLUMN admin INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE jobs (
        id TEXT PRIMARY KEY,
        api TEXT NOT NULL,
        key_id INTEGER,
        status TEXT NOT NULL,
        options TEXT NOT NULL,
        filename TEXT,
        media_type TEXT NOT NULL,
        original_file TEXT,
        original_bytes INTEGER NOT NULL,
        result_file TEXT,
        result_mime TEXT,
        result_bytes INTEGER,
        width INTEGER,
        height INTEGER,
        faces INTEGER,
        detections TEXT,
        error TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        webhook_url TEXT,
        created_at INTEGER NOT NULL,
        started_at INTEGER,
        completed_at INTEGER,
        original_deleted_at INTEGER,
        result_deleted_at INTEGER,
        notified_at INTEGER
    );
    CREATE INDEX jobs_status ON jobs (status, created_at);
    CREATE INDEX jobs_key ON jobs (key_id, created_at);
    CREATE TABLE webhook_deliveries (
        id INTEGER PRIMARY KEY,
        job_id TEXT NOT NULL,
        event TEXT NOT NULL,
        url TEXT NOT NULL,
        content_type TEXT NOT NULL,
        body BLOB NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at INTEGER NOT NULL,
        status TEXT NOT NULL,
        last_error TEXT,
        created_at INTEGER NOT NULL
    );
    CREATE INDEX webhook_due ON webhook_deliveries (status, next_attempt_at);
    CREATE TABLE key_usage (
        key_id INTEGER NOT NULL,
        day INTEGER NOT NULL,
        requests INTEGER NOT NULL,
        PRIMARY KEY (key_id, day)
    );",
    // 3: MQTT events waiting for the broker (delivered in `seq` order), and named counters.
    "CREATE TABLE mqtt_outbox (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        topic TEXT NOT NULL,
        payload BLOB NOT NULL,
        created_at INTEGER NOT NULL
    );
    CREATE TABLE counters (
        name TEXT PRIMARY KEY,
        value INTEGER NOT NULL
    );",
    // 4: video jobs: the clip's length and frame count (from its container), frames done so far.
    "ALTER TABLE jobs ADD COLUMN duration_ms INTEGER;
    ALTER TABLE jobs ADD COLUMN frames INTEGER;
    ALTER TABLE jobs ADD COLUMN frames_done INTEGER;",
    // 5: the Xylolabs admin API: admin users (argon2id hashes) and their sessions; a key's last
    // characters (shown as its preview), a switch to disable it and when it was last used.
    "CREATE TABLE admin_users (
        id INTEGER PRIMARY KEY,
        username TEXT NOT NULL UNIQUE,
        password_hash TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        last_login_at INTEGER
    );
    CREATE TABLE admin_sessions (
        token_sha256 TEXT PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES admin_users (id) ON DELETE CASCADE,
        csrf_token TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL
    );
    ALTER TABLE api_keys ADD COLUMN key_suffix TEXT;
    ALTER TABLE api_keys ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE api_keys ADD COLUMN last_used_at INTEGER;",
];

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database {path}: {source}")]
    Open { path: String, source: rusqlite::Error },
    #[error("database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("database {path} has schema version {found}, newer than this veil ({known}); refusing to touch it")]
    TooNew { path: String, found: i64, known: i64 },
    #[error("{0}")]
    NotFound(String),
}

pub struct Store {
    path: PathBuf,
    conn: Mutex<Connection>,
}

/// Seconds since the Unix epoch.
pub fn now_s() -> i64 {
    now_ms() / 1000
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// `ms` since the epoch as RFC 3339 UTC with milliseconds, e.g. `2026-11-23T08:50:11.123Z`.
/// (year, month, day) of a day counted from 1970-01-01 (Howard Hinnant's civil calendar).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// Days from 1970-01-01 to a civil date (the inverse of `civil_from_days`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The UTC calendar month holding `ms`: its first instant and the next month's, in ms.
pub fn month_bounds_ms(ms: i64) -> (i64, i64) {
    let (year, month, _) = civil_from_days(ms.div_euclid(86_400_000));
    let (ny, nm) = if month == 12 { (year + 1, 1) } else { (year, month + 1) };
    (days_from_civil(year, month, 1) * 86_400_000, days_from_civil(ny, nm, 1) * 86_400_000)
}

pub fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let rem = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms.rem_euclid(1000)
    )
}

impl Store {
    /// Open (create) `state_dir/veil.db` and bring its schema up to date.
    pub fn open(state_dir: &Path) -> Result<Self, StoreError> {
        let path = state_dir.join("veil.db");
        let shown = path.display().to_string();
        std::fs::create_dir_all(state_dir).map_err(|e| StoreError::Open {
            path: shown.clone(),
            source: rusqlite::Error::ToSqlConversionFailure(Box::new(e)),
        })?;
        let conn = Connection::open(&path).map_err(|source| StoreError::Open { path: shown.clone(), source })?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // FULL: a job the client was told is accepted survives a power cut.
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        let known = MIGRATIONS.len() as i64;
        if version > known {
            return Err(StoreError::TooNew { path: shown, found: version, known });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = conn.unchecked_transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", i as i64 + 1)?;
            tx.commit()?;
        }
        Ok(Self { path, conn: Mutex::new(conn) })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the database answers a query.
    pub fn is_readable(&self) -> bool {
        self.conn().query_row("SELECT 1", [], |r| r.get::<_, i64>(0)).is_ok()
    }

    pub(crate) fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(rfc3339(1_795_423_811_000), "2026-11-23T08:50:11.000Z");
    }

    #[test]
    fn calendar_months() {
        // 2026-12-06T03:00:00Z -> December 2026; 2024-02-29 -> February of a leap year.
        let (a, b) = month_bounds_ms(1_796_526_000_000);
        assert_eq!(
            (rfc3339(a).as_str(), rfc3339(b).as_str()),
            ("2026-12-01T00:00:00.000Z", "2027-01-01T00:00:00.000Z")
        );
        let (a, b) = month_bounds_ms(1_709_208_000_000);
        assert_eq!(
            (rfc3339(a).as_str(), rfc3339(b).as_str()),
            ("2024-02-01T00:00:00.000Z", "2024-03-01T00:00:00.000Z")
        );
        assert_eq!(days_from_civil(1970, 1, 1), 0);
    }

    #[test]
    fn migrates_once_and_refuses_a_newer_schema() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mode: String = store.conn().pragma_query_value(None, "journal_mode", |r| r.get(0)).unwrap();
        assert_eq!(mode, "wal");
        drop(store);
        // Reopening runs no migration twice.
        let store = Store::open(dir.path()).unwrap();
        store.conn().pragma_update(None, "user_version", 99).unwrap();
        drop(store);
        assert!(matches!(Store::open(dir.path()), Err(StoreError::TooNew { found: 99, .. })));
    }
}
