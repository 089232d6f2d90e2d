//! Per-key request counts by UTC day, so the daily rate limit survives a restart.

use rusqlite::params;

use super::{Store, StoreError};

impl Store {
    /// Count one request of `key_id` on `day` (days since the epoch) unless the day already
    /// has `limit` (0 = no limit); returns the day's new total, or `None` when over the limit.
    /// One statement, so concurrent requests cannot overshoot the limit. The key's
    /// `last_used_at` is set in the same transaction (one sync to disk for both).
    pub fn count_request(&self, key_id: i64, day: i64, limit: i64) -> Result<Option<i64>, StoreError> {
        use rusqlite::OptionalExtension;
        let conn = self.conn();
        let tx = conn.unchecked_transaction()?;
        let total = tx
            .query_row(
                "INSERT INTO key_usage (key_id, day, requests) VALUES (?1, ?2, 1)
                 ON CONFLICT (key_id, day) DO UPDATE SET requests = requests + 1
                    WHERE ?3 = 0 OR requests < ?3
                 RETURNING requests",
                params![key_id, day, limit],
                |r| r.get(0),
            )
            .optional()?;
        tx.execute("UPDATE api_keys SET last_used_at = ?1 WHERE id = ?2", params![super::now_s(), key_id])?;
        tx.commit()?;
        Ok(total)
    }

    /// Requests of `key_id` on `day` so far.
    pub fn requests_on(&self, key_id: i64, day: i64) -> Result<i64, StoreError> {
        let conn = self.conn();
        Ok(conn
            .query_row("SELECT requests FROM key_usage WHERE key_id = ?1 AND day = ?2", params![key_id, day], |r| {
                r.get(0)
            })
            .unwrap_or(0))
    }
}
