//! The `webhook_deliveries` table: each notification to send, its attempts and when to try next,
//! so retries survive a restart.

use rusqlite::params;

use super::{now_ms, Store, StoreError};

/// One notification waiting to be (re)sent.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: i64,
    pub job_id: String,
    pub event: String,
    pub url: String,
    pub content_type: String,
    pub body: Vec<u8>,
    pub attempts: i64,
}

/// A delivery's state as the API shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DeliveryStatus {
    pub event: String,
    pub status: String,
    pub attempts: i64,
    pub last_error: Option<String>,
}

impl Store {
    pub fn enqueue_delivery(
        &self,
        job_id: &str,
        event: &str,
        url: &str,
        content_type: &str,
        body: &[u8],
    ) -> Result<i64, StoreError> {
        let conn = self.conn();
        let now = now_ms();
        conn.execute(
            "INSERT INTO webhook_deliveries (job_id, event, url, content_type, body, next_attempt_at, status, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending', ?6)",
            params![job_id, event, url, content_type, body, now],
        )?;
        Ok(conn.last_insert_rowid())
    }

    /// Pending deliveries due at `now_ms`, oldest first.
    pub fn due_deliveries(&self, now_ms: i64, limit: i64) -> Result<Vec<Delivery>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT id, job_id, event, url, content_type, body, attempts FROM webhook_deliveries
             WHERE status = 'pending' AND next_attempt_at <= ?1 ORDER BY next_attempt_at, id LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![now_ms, limit], |r| {
            Ok(Delivery {
                id: r.get(0)?,
                job_id: r.get(1)?,
                event: r.get(2)?,
                url: r.get(3)?,
                content_type: r.get(4)?,
                body: r.get(5)?,
                attempts: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// When the next pending delivery is due, if any.
    pub fn next_delivery_at(&self) -> Result<Option<i64>, StoreError> {
        let conn = self.conn();
        Ok(conn.query_row(
            "SELECT MIN(next_attempt_at) FROM webhook_deliveries WHERE status = 'pending'",
            [],
            |r| r.get(0),
        )?)
    }

    pub fn delivery_succeeded(&self, id: i64) -> Result<(), StoreError> {
        self.conn().execute(
            // The body (for MaskIt-style jobs, the masked image) is not kept once delivered.
            "UPDATE webhook_deliveries SET status = 'delivered', attempts = attempts + 1, last_error = NULL, body = X''
             WHERE id = ?1",
            params![id],
        )?;
        Ok(())
    }

    /// Record a failed attempt: retry at `retry_at_ms`, or give up when it is `None`.
    pub fn delivery_failed(&self, id: i64, error: &str, retry_at_ms: Option<i64>) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE webhook_deliveries SET attempts = attempts + 1, last_error = ?2,
                status = CASE WHEN ?3 IS NULL THEN 'gave_up' ELSE 'pending' END,
                body = CASE WHEN ?3 IS NULL THEN X'' ELSE body END,
                next_attempt_at = COALESCE(?3, next_attempt_at)
             WHERE id = ?1",
            params![id, error, retry_at_ms],
        )?;
        Ok(())
    }

    pub fn deliveries_of(&self, job_id: &str) -> Result<Vec<DeliveryStatus>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT event, status, attempts, last_error FROM webhook_deliveries WHERE job_id = ?1 ORDER BY id",
        )?;
        let rows = stmt.query_map(params![job_id], |r| {
            Ok(DeliveryStatus { event: r.get(0)?, status: r.get(1)?, attempts: r.get(2)?, last_error: r.get(3)? })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
