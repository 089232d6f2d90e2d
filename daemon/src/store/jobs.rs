//! The `jobs` table: one row per uploaded photo, from queued through processing to completed or
//! failed, with where its original and result live on disk and when each was deleted.

use rusqlite::{params, OptionalExtension, Row};
use serde::Serialize;

use super::{now_ms, Store, StoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    Queued,
    Processing,
    Completed,
    Failed,
}

impl JobStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Processing => "processing",
            JobStatus::Completed => "completed",
            JobStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => JobStatus::Queued,
            "processing" => JobStatus::Processing,
            "completed" => JobStatus::Completed,
            "failed" => JobStatus::Failed,
            _ => return None,
        })
    }

    pub fn is_finished(&self) -> bool {
        matches!(self, JobStatus::Completed | JobStatus::Failed)
    }
}

/// A job row as stored.
#[derive(Debug, Clone)]
pub struct Job {
    pub id: String,
    /// Which API style took the upload (`cloak`, `piiblur`, `maskit`).
    pub api: String,
    pub key_id: Option<i64>,
    pub status: JobStatus,
    /// The job's options as JSON (see `jobs::JobOptions`).
    pub options: String,
    pub filename: Option<String>,
    pub media_type: String,
    /// File name of the upload in the engine's originals directory.
    pub original_file: Option<String>,
    pub original_bytes: i64,
    /// File name of the redacted image in the engine's results directory.
    pub result_file: Option<String>,
    pub result_mime: Option<String>,
    pub result_bytes: Option<i64>,
    pub width: Option<i64>,
    pub height: Option<i64>,
    pub faces: Option<i64>,
    /// The detections as JSON: `[{category, score, box: [x1, y1, x2, y2]}]` in pixels.
    pub detections: Option<String>,
    pub error: Option<String>,
    pub attempts: i64,
    pub webhook_url: Option<String>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub completed_at: Option<i64>,
    pub original_deleted_at: Option<i64>,
    pub result_deleted_at: Option<i64>,
    /// When the observer (webhooks) was told the job ended.
    pub notified_at: Option<i64>,
    /// A video's length (its container's word), frames expected and frames redacted so far.
    pub duration_ms: Option<i64>,
    pub frames: Option<i64>,
    pub frames_done: Option<i64>,
}

impl Job {
    pub fn is_video(&self) -> bool {
        self.media_type == "video"
    }

    /// How far a job is, 0..1 (a video by its frames; anything else is 0 until it ends).
    pub fn progress(&self) -> f64 {
        match self.status {
            JobStatus::Completed => 1.0,
            JobStatus::Queued => 0.0,
            _ => match (self.frames_done, self.frames) {
                (Some(done), Some(total)) if total > 0 => (done as f64 / total as f64).clamp(0.0, 0.99),
                _ => 0.0,
            },
        }
    }
}

const COLUMNS: &str = "id, api, key_id, status, options, filename, media_type, original_file, original_bytes, \
    result_file, result_mime, result_bytes, width, height, faces, detections, error, attempts, webhook_url, \
    created_at, started_at, completed_at, original_deleted_at, result_deleted_at, notified_at, duration_ms, frames, \
    frames_done";

fn job_from_row(r: &Row<'_>) -> rusqlite::Result<Job> {
    let status: String = r.get(3)?;
    Ok(Job {
        id: r.get(0)?,
        api: r.get(1)?,
        key_id: r.get(2)?,
        status: JobStatus::parse(&status).unwrap_or(JobStatus::Failed),
        options: r.get(4)?,
        filename: r.get(5)?,
        media_type: r.get(6)?,
        original_file: r.get(7)?,
        original_bytes: r.get(8)?,
        result_file: r.get(9)?,
        result_mime: r.get(10)?,
        result_bytes: r.get(11)?,
        width: r.get(12)?,
        height: r.get(13)?,
        faces: r.get(14)?,
        detections: r.get(15)?,
        error: r.get(16)?,
        attempts: r.get(17)?,
        webhook_url: r.get(18)?,
        created_at: r.get(19)?,
        started_at: r.get(20)?,
        completed_at: r.get(21)?,
        original_deleted_at: r.get(22)?,
        result_deleted_at: r.get(23)?,
        notified_at: r.get(24)?,
        duration_ms: r.get(25)?,
        frames: r.get(26)?,
        frames_done: r.get(27)?,
    })
}

/// What a new job is made of; the original is already on disk at `original_file`.
pub struct NewJob<'a> {
    pub id: &'a str,
    pub api: &'a str,
    pub key_id: Option<i64>,
    pub options: &'a str,
    pub filename: Option<&'a str>,
    pub media_type: &'a str,
    pub original_file: &'a str,
    pub original_bytes: i64,
    pub webhook_url: Option<&'a str>,
    /// A video's length and expected frame count.
    pub duration_ms: Option<i64>,
    pub frames: Option<i64>,
}

/// A finished redaction, recorded by [`Store::complete_job`].
pub struct JobResult<'a> {
    pub result_file: &'a str,
    pub result_mime: &'a str,
    pub result_bytes: i64,
    pub width: i64,
    pub height: i64,
    pub faces: i64,
    pub detections: &'a str,
}

/// Filters of a job listing.
#[derive(Debug, Default, Clone)]
pub struct JobFilter {
    /// `Some(None)` matches jobs made without a key (auth off); `None` matches every job.
    pub key_id: Option<Option<i64>>,
    /// Jobs taken by this API style only.
    pub api: Option<String>,
    pub status: Option<JobStatus>,
    pub media_type: Option<String>,
    /// Jobs whose options name one of these masking methods (letter case ignored), and with
    /// `.1` also those that name none (the device's default method is one of them).
    pub methods: Option<(Vec<String>, bool)>,
}

impl Store {
    pub fn insert_job(&self, job: &NewJob<'_>) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO jobs (id, api, key_id, status, options, filename, media_type, original_file, original_bytes,
                webhook_url, created_at, duration_ms, frames) VALUES (?1, ?2, ?3, 'queued', ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            params![
                job.id,
                job.api,
                job.key_id,
                job.options,
                job.filename,
                job.media_type,
                job.original_file,
                job.original_bytes,
                job.webhook_url,
                now_ms(),
                job.duration_ms,
                job.frames
            ],
        )?;
        Ok(())
    }

    pub fn get_job(&self, id: &str) -> Result<Option<Job>, StoreError> {
        let conn = self.conn();
        Ok(conn
            .query_row(&format!("SELECT {COLUMNS} FROM jobs WHERE id = ?1"), params![id], job_from_row)
            .optional()?)
    }

    /// Move a queued job to processing (one more attempt) and return it; `None` if it is not
    /// queued any more (deleted, or taken by another worker).
    pub fn claim_job(&self, id: &str) -> Result<Option<Job>, StoreError> {
        let conn = self.conn();
        let changed = conn.execute(
            "UPDATE jobs SET status = 'processing', attempts = attempts + 1, started_at = ?2
             WHERE id = ?1 AND status = 'queued'",
            params![id, now_ms()],
        )?;
        if changed == 0 {
            return Ok(None);
        }
        Ok(conn
            .query_row(&format!("SELECT {COLUMNS} FROM jobs WHERE id = ?1"), params![id], job_from_row)
            .optional()?)
    }

    /// Record a result. Only a job still processing can complete (a deleted job stays deleted).
    pub fn complete_job(&self, id: &str, r: &JobResult<'_>) -> Result<bool, StoreError> {
        let changed = self.conn().execute(
            "UPDATE jobs SET status = 'completed', result_file = ?2, result_mime = ?3, result_bytes = ?4, width = ?5,
                height = ?6, faces = ?7, detections = ?8, completed_at = ?9, error = NULL
             WHERE id = ?1 AND status = 'processing'",
            params![
                id,
                r.result_file,
                r.result_mime,
                r.result_bytes,
                r.width,
                r.height,
                r.faces,
                r.detections,
                now_ms()
            ],
        )?;
        Ok(changed == 1)
    }

    pub fn fail_job(&self, id: &str, reason: &str) -> Result<bool, StoreError> {
        let changed = self.conn().execute(
            "UPDATE jobs SET status = 'failed', error = ?2, completed_at = ?3 WHERE id = ?1 AND status IN ('queued', 'processing')",
            params![id, reason, now_ms()],
        )?;
        Ok(changed == 1)
    }

    /// Record the original's deletion; false if it was already recorded (tell observers once).
    pub fn mark_original_deleted(&self, id: &str) -> Result<bool, StoreError> {
        let changed = self.conn().execute(
            "UPDATE jobs SET original_deleted_at = ?2 WHERE id = ?1 AND original_deleted_at IS NULL",
            params![id, now_ms()],
        )?;
        Ok(changed == 1)
    }

    /// Record that observers were told the job ended.
    pub fn mark_notified(&self, id: &str) -> Result<(), StoreError> {
        self.conn().execute("UPDATE jobs SET notified_at = ?2 WHERE id = ?1", params![id, now_ms()])?;
        Ok(())
    }

    /// Finished jobs whose end no observer heard of (a crash in between), oldest first.
    pub fn unnotified_finished_jobs(&self) -> Result<Vec<String>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT id FROM jobs WHERE status IN ('completed', 'failed') AND notified_at IS NULL ORDER BY completed_at, id",
        )?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Record the result's deletion; false if it was already recorded. A download-once fetch
    /// claims the result with this, so two concurrent fetches cannot both get it.
    pub fn mark_result_deleted(&self, id: &str) -> Result<bool, StoreError> {
        let changed = self.conn().execute(
            "UPDATE jobs SET result_deleted_at = ?2 WHERE id = ?1 AND result_deleted_at IS NULL",
            params![id, now_ms()],
        )?;
        Ok(changed == 1)
    }

    /// Delete a job and its pending webhook deliveries; returns the file names it still had
    /// (original, result) as they were at the moment of deletion, or `None` if there was no such job.
    #[allow(clippy::type_complexity)]
    pub fn delete_job(&self, id: &str) -> Result<Option<(Option<String>, Option<String>)>, StoreError> {
        let conn = self.conn();
        let tx = conn.unchecked_transaction()?;
        let files = tx
            .query_row(
                "DELETE FROM jobs WHERE id = ?1 RETURNING
                    CASE WHEN original_deleted_at IS NULL THEN original_file END,
                    CASE WHEN result_deleted_at IS NULL THEN result_file END",
                params![id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        tx.execute("DELETE FROM webhook_deliveries WHERE job_id = ?1", params![id])?;
        tx.commit()?;
        Ok(files)
    }

    /// A page of jobs, newest first, and the total that match.
    pub fn list_jobs(&self, filter: &JobFilter, offset: i64, limit: i64) -> Result<(Vec<Job>, i64), StoreError> {
        let mut clauses = Vec::new();
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        match filter.key_id {
            Some(Some(k)) => {
                clauses.push("key_id = ?");
                args.push(k.into());
            }
            Some(None) => clauses.push("key_id IS NULL"),
            None => {}
        }
        if let Some(api) = &filter.api {
            clauses.push("api = ?");
            args.push(api.clone().into());
        }
        if let Some(s) = filter.status {
            clauses.push("status = ?");
            args.push(s.as_str().to_string().into());
        }
        if let Some(m) = &filter.media_type {
            clauses.push("media_type = ?");
            args.push(m.clone().into());
        }
        let method_clause;
        if let Some((names, or_default)) = &filter.methods {
            let marks = vec!["?"; names.len()].join(", ");
            let named = format!("LOWER(json_extract(options, '$.method')) IN ({marks})");
            method_clause = match (names.is_empty(), or_default) {
                (true, true) => "json_extract(options, '$.method') IS NULL".to_string(),
                (true, false) => "0".to_string(),
                (false, true) => format!("({named} OR json_extract(options, '$.method') IS NULL)"),
                (false, false) => named,
            };
            clauses.push(&method_clause);
            args.extend(names.iter().map(|n| n.to_ascii_lowercase().into()));
        }
        let wh = if clauses.is_empty() { String::new() } else { format!("WHERE {}", clauses.join(" AND ")) };
        let conn = self.conn();
        let total: i64 =
            conn.query_row(&format!("SELECT COUNT(*) FROM jobs {wh}"), rusqlite::params_from_iter(args.iter()), |r| {
                r.get(0)
            })?;
        args.push(limit.into());
        args.push(offset.into());
        let mut stmt =
            conn.prepare(&format!("SELECT {COLUMNS} FROM jobs {wh} ORDER BY created_at DESC, id LIMIT ? OFFSET ?"))?;
        let rows = stmt.query_map(rusqlite::params_from_iter(args.iter()), job_from_row)?;
        Ok((rows.collect::<Result<_, _>>()?, total))
    }

    /// Jobs a stopped daemon left `processing`: back to `queued` while they have attempts left,
    /// else failed with the reason. Returns (re-queued count, ids of the failed jobs).
    pub fn recover_interrupted(&self, max_attempts: i64) -> Result<(usize, Vec<String>), StoreError> {
        let conn = self.conn();
        let tx = conn.unchecked_transaction()?;
        let failed: Vec<String> = {
            let mut stmt = tx.prepare("SELECT id FROM jobs WHERE status = 'processing' AND attempts >= ?1")?;
            let rows = stmt.query_map(params![max_attempts], |r| r.get(0))?;
            rows.collect::<Result<_, _>>()?
        };
        tx.execute(
            "UPDATE jobs SET status = 'failed', completed_at = ?2,
                error = 'the daemon stopped while processing this photo ' || attempts || ' times; giving up'
             WHERE status = 'processing' AND attempts >= ?1",
            params![max_attempts, now_ms()],
        )?;
        let requeued = tx.execute("UPDATE jobs SET status = 'queued' WHERE status = 'processing'", [])?;
        tx.commit()?;
        Ok((requeued, failed))
    }

    /// Jobs waiting or being processed.
    /// Record a video job's frames done (and the total, once the decoder knows it better).
    /// False when the job is no longer processing (deleted, or ended).
    pub fn set_progress(&self, id: &str, done: i64, total: Option<i64>) -> Result<bool, StoreError> {
        let changed = self.conn().execute(
            "UPDATE jobs SET frames_done = ?2, frames = COALESCE(?3, frames) WHERE id = ?1 AND status = 'processing'",
            params![id, done, total],
        )?;
        Ok(changed == 1)
    }

    pub fn pending_jobs(&self) -> Result<u64, StoreError> {
        let n: i64 =
            self.conn()
                .query_row("SELECT COUNT(*) FROM jobs WHERE status IN ('queued', 'processing')", [], |r| r.get(0))?;
        Ok(n as u64)
    }

    /// Queued jobs, oldest first: (id, whether it is a video).
    pub fn queued_jobs(&self) -> Result<Vec<(String, bool)>, StoreError> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare("SELECT id, media_type = 'video' FROM jobs WHERE status = 'queued' ORDER BY created_at, id")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Finished jobs whose original is still on disk and finished before `before_ms`.
    pub fn originals_finished_before(&self, before_ms: i64) -> Result<Vec<(String, String)>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT id, original_file FROM jobs WHERE status IN ('completed', 'failed') AND original_deleted_at IS NULL
                AND original_file IS NOT NULL AND completed_at < ?1",
        )?;
        let rows = stmt.query_map(params![before_ms], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Results still on disk, oldest first: (id, file name, bytes, completed_at).
    pub fn stored_results(&self) -> Result<Vec<(String, String, i64, i64)>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT id, result_file, COALESCE(result_bytes, 0), COALESCE(completed_at, 0) FROM jobs
             WHERE result_file IS NOT NULL AND result_deleted_at IS NULL ORDER BY completed_at, id",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every file name the jobs table still refers to (originals and results not yet deleted).
    pub fn referenced_files(&self) -> Result<std::collections::HashSet<String>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT original_file FROM jobs WHERE original_file IS NOT NULL AND original_deleted_at IS NULL
             UNION SELECT result_file FROM jobs WHERE result_file IS NOT NULL AND result_deleted_at IS NULL",
        )?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Image jobs made and video minutes redacted (completed video jobs) in `[from_ms, to_ms)`,
    /// for one key (or all with `None`).
    pub fn usage_between(&self, key_id: Option<i64>, from_ms: i64, to_ms: i64) -> Result<(i64, i64), StoreError> {
        self.conn()
            .query_row(
                "SELECT COALESCE(SUM(media_type = 'image'), 0),
                    COALESCE(SUM(CASE WHEN media_type = 'video' AND status = 'completed' THEN duration_ms ELSE 0 END), 0)
                 FROM jobs WHERE (?1 IS NULL OR key_id = ?1) AND created_at >= ?2 AND created_at < ?3",
                params![key_id, from_ms, to_ms],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(Into::into)
    }

    /// Job counts by status and bytes held, for one key (or all with `None`).
    pub fn job_totals(&self, key_id: Option<i64>) -> Result<JobTotals, StoreError> {
        let conn = self.conn();
        conn.query_row(
            "SELECT COUNT(*),
                COALESCE(SUM(status = 'queued'), 0), COALESCE(SUM(status = 'processing'), 0),
                COALESCE(SUM(status = 'completed'), 0), COALESCE(SUM(status = 'failed'), 0),
                COALESCE(SUM(faces), 0), COALESCE(SUM(original_bytes), 0),
                COALESCE(SUM(CASE WHEN result_deleted_at IS NULL THEN result_bytes ELSE 0 END), 0),
                COALESCE(SUM(CASE WHEN media_type = 'video' AND status = 'completed' THEN duration_ms ELSE 0 END), 0)
             FROM jobs WHERE ?1 IS NULL OR key_id = ?1",
            params![key_id],
            |r| {
                Ok(JobTotals {
                    total: r.get(0)?,
                    queued: r.get(1)?,
                    processing: r.get(2)?,
                    completed: r.get(3)?,
                    failed: r.get(4)?,
                    faces: r.get(5)?,
                    uploaded_bytes: r.get(6)?,
                    stored_result_bytes: r.get(7)?,
                    video_ms: r.get(8)?,
                })
            },
        )
        .map_err(Into::into)
    }
}

#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct JobTotals {
    pub total: i64,
    pub queued: i64,
    pub processing: i64,
    pub completed: i64,
    pub failed: i64,
    pub faces: i64,
    pub uploaded_bytes: i64,
    pub stored_result_bytes: i64,
    /// Length of the completed video jobs, in milliseconds.
    pub video_ms: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_job<'a>(id: &'a str) -> NewJob<'a> {
        NewJob {
            id,
            api: "cloak",
            key_id: Some(1),
            options: "{}",
            filename: Some("a.jpg"),
            media_type: "image",
            original_file: "x",
            original_bytes: 10,
            webhook_url: None,
            duration_ms: None,
            frames: None,
        }
    }

    #[test]
    fn lifecycle_and_recovery() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        for id in ["a", "b", "c"] {
            store.insert_job(&new_job(id)).unwrap();
        }
        assert_eq!(store.queued_jobs().unwrap().len(), 3);
        assert!(store.claim_job("a").unwrap().is_some());
        assert!(store.claim_job("a").unwrap().is_none(), "a job is claimed once");
        let r = JobResult {
            result_file: "r",
            result_mime: "image/png",
            result_bytes: 5,
            width: 2,
            height: 2,
            faces: 1,
            detections: "[]",
        };
        assert!(store.complete_job("a", &r).unwrap());
        assert!(!store.fail_job("a", "late").unwrap(), "a completed job stays completed");
        // b is interrupted once (re-queued), c three times (failed).
        store.claim_job("b").unwrap();
        for _ in 0..3 {
            store.claim_job("c").unwrap();
            store.recover_interrupted(3).unwrap();
        }
        let c = store.get_job("c").unwrap().unwrap();
        assert_eq!(c.status, JobStatus::Failed);
        assert!(c.error.unwrap().contains("3 times"));
        assert_eq!(store.get_job("b").unwrap().unwrap().status, JobStatus::Queued);
        let (page, total) =
            store.list_jobs(&JobFilter { status: Some(JobStatus::Queued), ..Default::default() }, 0, 20).unwrap();
        assert_eq!((page.len(), total), (1, 1));
        let t = store.job_totals(Some(1)).unwrap();
        assert_eq!((t.total, t.completed, t.failed, t.queued, t.faces), (3, 1, 1, 1, 1));
        assert!(store.delete_job("b").unwrap().is_some());
        assert!(store.delete_job("b").unwrap().is_none());
        assert!(store.get_job("b").unwrap().is_none());
    }
}
