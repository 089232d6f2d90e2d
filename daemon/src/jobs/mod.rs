//! The job engine under every upload API: originals are written to disk and recorded in SQLite
//! before the client hears "accepted"; a pool of worker threads redacts them; results are kept
//! for a while and a disk quota, originals deleted as soon as a job ends (unless retention is
//! configured). Synchronous routes go through the same workers without storing anything.

pub mod memory_budget;
pub mod options;
pub mod process;
mod queue;
mod retention;
mod video_jobs;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use bytes::Bytes;
use veil_models::Detector;

pub use options::{JobDefaults, JobOptions, ResolvedOptions};
pub use process::{ProcessError, ProcessTimings, Processed};
pub use video_jobs::{mime as video_mime, VideoUpload};
use queue::{InlineTask, Task, WorkQueue};

use crate::pipeline::controls::LiveTuning;
use crate::photo::{inspect, DecodeLimits, PhotoError};
use crate::store::jobs::{Job, JobResult, JobStatus, NewJob};
use crate::store::{Store, StoreError};

/// JPEG quality of results whose format the request leaves open.
const RESULT_QUALITY: u8 = 90;

/// Told about job events (the webhook sender and the MQTT link listen).
pub trait JobObserver: Send + Sync {
    /// A job ended, completed (with its redacted image) or failed.
    fn finished(&self, job: &Job, result: Option<&[u8]>);
    /// A job's uploaded original was deleted from disk.
    fn original_deleted(&self, job: &Job);
}

/// Tells every observer in turn.
pub struct Observers(pub Vec<Arc<dyn JobObserver>>);

impl JobObserver for Observers {
    fn finished(&self, job: &Job, result: Option<&[u8]>) {
        self.0.iter().for_each(|o| o.finished(job, result));
    }
    fn original_deleted(&self, job: &Job) {
        self.0.iter().for_each(|o| o.original_deleted(job));
    }
}

/// An observer that ignores everything.
pub struct NoObserver;

impl JobObserver for NoObserver {
    fn finished(&self, _: &Job, _: Option<&[u8]>) {}
    fn original_deleted(&self, _: &Job) {}
}

/// Sizes and lifetimes of the engine.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub workers: usize,
    /// Keep uploaded originals this long after their job ends; zero deletes them at once.
    pub keep_originals: Duration,
    /// Delete results this long after their job completed.
    pub result_ttl: Duration,
    /// Delete the oldest results while all of them take more than this.
    pub max_result_bytes: u64,
    /// A job interrupted by a daemon stop this many times is failed instead of re-run.
    pub max_attempts: i64,
    /// Refuse new uploads while this many jobs wait.
    pub max_queued: usize,
    /// Refuse synchronous requests while this many wait for a worker.
    pub max_inline_waiting: usize,
    /// A photo still in a worker after this long fails (never passes anything through); the
    /// worker's thread is abandoned and replaced.
    pub inline_timeout: Duration,
    pub decode_limits: DecodeLimits,
    pub sweep_interval: Duration,
    /// Categories masked in every upload whatever its request names (`api.always_mask`), where
    /// the backend finds them.
    pub always_mask: veil_models::CategorySet,
    /// Memory for photos in flight (`api.max_decode_megabytes`).
    pub memory: std::sync::Arc<memory_budget::MemoryBudget>,
    /// Longest video upload accepted (`api.max_video_seconds`).
    pub max_video_seconds: u64,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            workers: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            keep_originals: Duration::ZERO,
            result_ttl: Duration::from_secs(24 * 3600),
            max_result_bytes: 2 << 30,
            max_attempts: 3,
            max_queued: 1000,
            max_inline_waiting: 64,
            inline_timeout: Duration::from_secs(60),
            decode_limits: DecodeLimits::default(),
            sweep_interval: Duration::from_secs(30),
            always_mask: [veil_models::Category::Face].into_iter().collect(),
            memory: memory_budget::MemoryBudget::new(memory_budget::default_limit()),
            max_video_seconds: 600,
        }
    }
}

/// Why an upload was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("{0}")]
    BadImage(#[from] PhotoError),
    #[error("{0}")]
    BadOptions(String),
    /// Not a video GStreamer can demux, or no video stream in it.
    #[error("{0}")]
    BadVideo(String),
    #[error("the video is {seconds:.1} s long; this device takes at most {max} s (api.max_video_seconds)")]
    VideoTooLong { seconds: f64, max: u64 },
    #[error("{0} jobs are waiting; try again later")]
    QueueFull(usize),
    #[error("cannot store the upload: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a synchronous request got no image.
#[derive(Debug, thiserror::Error)]
pub enum InlineError {
    #[error(transparent)]
    Failed(#[from] ProcessError),
    #[error("{0} requests are already waiting for a worker; try again later")]
    Busy(usize),
    #[error("no result within {0:?}; nothing was returned")]
    Timeout(Duration),
    #[error("the daemon is shutting down")]
    Stopped,
}

/// A new upload.
pub struct Upload<'a> {
    pub api: &'a str,
    pub key_id: Option<i64>,
    pub filename: Option<&'a str>,
    pub bytes: &'a [u8],
    pub options: &'a JobOptions,
    pub webhook_url: Option<&'a str>,
}

struct Shared {
    store: Arc<Store>,
    queue: WorkQueue,
    detector: Arc<dyn Detector>,
    /// The configured detection and masking settings (they may change while running).
    tuning: Arc<LiveTuning>,
    config: EngineConfig,
    originals: PathBuf,
    results: PathBuf,
    observer: Arc<dyn JobObserver>,
    stopping: AtomicBool,
    /// Wakes the retention sweeper early (on shutdown).
    sweep_wake: (Mutex<()>, Condvar),
}

pub struct JobEngine {
    shared: Arc<Shared>,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

/// A fresh job id: a random UUID (version 4) in its usual text form.
pub fn new_job_id() -> String {
    let mut b = [0u8; 16];
    if getrandom::fill(&mut b).is_err() {
        // No OS randomness: fall back to time and a counter (ids need to be unique, not secret).
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let t = crate::store::now_ms() as u64;
        b[..8].copy_from_slice(&t.to_le_bytes());
        b[8..].copy_from_slice(&N.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

/// A stored file name, refused if it could leave its directory.
fn safe_name(name: &str) -> Option<&str> {
    (!name.is_empty() && !name.contains(['/', '\\']) && name != "." && name != "..").then_some(name)
}

/// Whether `id` has the shape of a job id (so junk never reaches SQL or a path).
pub fn is_job_id(id: &str) -> bool {
    id.len() == 36
        && id.bytes().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == b'-',
            _ => c.is_ascii_hexdigit() && !c.is_ascii_uppercase(),
        })
}

impl JobEngine {
    /// Recover what a previous run left, then start the workers and the retention sweeper.
    pub fn start(
        store: Arc<Store>,
        jobs_dir: &Path,
        detector: Arc<dyn Detector>,
        tuning: Arc<LiveTuning>,
        config: EngineConfig,
        observer: Arc<dyn JobObserver>,
    ) -> anyhow::Result<Arc<Self>> {
        let originals = jobs_dir.join("originals");
        let results = jobs_dir.join("results");
        std::fs::create_dir_all(&originals)?;
        std::fs::create_dir_all(&results)?;
        let shared = Arc::new(Shared {
            store,
            queue: WorkQueue::default(),
            detector,
            tuning,
            config,
            originals,
            results,
            observer,
            stopping: AtomicBool::new(false),
            sweep_wake: (Mutex::new(()), Condvar::new()),
        });
        let (requeued, failed) = shared.store.recover_interrupted(shared.config.max_attempts)?;
        if requeued + failed.len() > 0 {
            eprintln!(
                "veil: {requeued} job(s) interrupted by the last stop re-queued, {} failed after too many attempts",
                failed.len()
            );
        }
        for id in failed {
            shared.after_finish(&id, None);
        }
        // Jobs that ended just before a crash, before anyone was told.
        for id in shared.store.unnotified_finished_jobs()? {
            let result = shared.store.get_job(&id)?.and_then(|j| {
                let name = j.result_file.as_deref().and_then(safe_name)?.to_string();
                std::fs::read(shared.results.join(name)).ok()
            });
            shared.after_finish(&id, result.as_deref());
        }
        for (id, video) in shared.store.queued_jobs()? {
            if video {
                shared.queue.push_video(id);
            } else {
                shared.queue.push_stored(id);
            }
        }
        retention::remove_orphans(&shared)?;
        let mut threads = Vec::new();
        for i in 0..shared.config.workers.max(1) {
            let s = shared.clone();
            threads.push(std::thread::Builder::new().name(format!("veil-job-{i}")).spawn(move || s.work())?);
        }
        // One worker for videos beside the photo workers: a long clip never holds up a photo.
        let s = shared.clone();
        threads.push(std::thread::Builder::new().name("veil-job-video".into()).spawn(move || s.video_work())?);
        let s = shared.clone();
        threads.push(std::thread::Builder::new().name("veil-retention".into()).spawn(move || retention::run(&s))?);
        Ok(Arc::new(Self { shared, threads: Mutex::new(threads) }))
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.shared.store
    }

    /// What a job's options are resolved against: the configured settings as they are now.
    pub fn defaults(&self) -> JobDefaults {
        self.shared.defaults()
    }

    pub fn config(&self) -> &EngineConfig {
        &self.shared.config
    }

    /// What the jobs' detector can find (it may be swapped at run time).
    pub fn categories(&self) -> Vec<veil_models::Category> {
        self.shared.detector.info().categories.clone()
    }

    /// Check an upload, store its original (fsynced) and its row, and queue it.
    pub fn submit(&self, upload: &Upload<'_>) -> Result<Job, SubmitError> {
        self.check_room(1)?;
        self.submit_checked(upload)
    }

    /// Submit several uploads, all or none: every one is checked first, and if storing one
    /// fails the ones already stored are deleted again.
    pub fn submit_all(&self, uploads: &[Upload<'_>]) -> Result<Vec<Job>, SubmitError> {
        self.check_room(uploads.len())?;
        for u in uploads {
            u.options.resolve(&self.shared.defaults()).map_err(SubmitError::BadOptions)?;
            inspect(u.bytes, &self.shared.config.decode_limits)?;
        }
        let mut done: Vec<Job> = Vec::new();
        for u in uploads {
            match self.submit_checked(u) {
                Ok(job) => done.push(job),
                Err(e) => {
                    for job in &done {
                        let _ = self.delete(job);
                    }
                    return Err(e);
                }
            }
        }
        Ok(done)
    }

    fn check_room(&self, n: usize) -> Result<(), SubmitError> {
        let waiting = self.shared.queue.stored_waiting();
        if waiting + n > self.shared.config.max_queued {
            return Err(SubmitError::QueueFull(waiting));
        }
        Ok(())
    }

    fn submit_checked(&self, upload: &Upload<'_>) -> Result<Job, SubmitError> {
        upload.options.resolve(&self.shared.defaults()).map_err(SubmitError::BadOptions)?;
        inspect(upload.bytes, &self.shared.config.decode_limits)?;
        let id = new_job_id();
        let original = self.shared.originals.join(&id);
        crate::commands::write_atomic(&original, upload.bytes)?;
        let options = serde_json::to_string(upload.options).map_err(|e| SubmitError::BadOptions(e.to_string()))?;
        let inserted = self.shared.store.insert_job(&NewJob {
            id: &id,
            api: upload.api,
            key_id: upload.key_id,
            options: &options,
            filename: upload.filename,
            media_type: "image",
            original_file: &id,
            original_bytes: upload.bytes.len() as i64,
            webhook_url: upload.webhook_url,
            duration_ms: None,
            frames: None,
        });
        if let Err(e) = inserted {
            let _ = std::fs::remove_file(&original);
            return Err(e.into());
        }
        self.shared.queue.push_stored(id.clone());
        Ok(self.shared.store.get_job(&id)?.ok_or_else(|| StoreError::NotFound(id))?)
    }

    /// Redact `bytes` now on a worker and hand the result back; nothing is stored.
    pub async fn run_inline(&self, bytes: Bytes, options: ResolvedOptions) -> Result<Processed, InlineError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let max = self.shared.config.max_inline_waiting;
        self.shared.queue.push_inline(InlineTask { bytes, options, reply }, max).map_err(|_| InlineError::Busy(max))?;
        let timeout = self.shared.config.inline_timeout;
        match tokio::time::timeout(timeout, answer).await {
            Ok(Ok(result)) => Ok(result?),
            Ok(Err(_)) => Err(InlineError::Stopped),
            Err(_) => Err(InlineError::Timeout(timeout)),
        }
    }

    pub fn get(&self, id: &str) -> Result<Option<Job>, StoreError> {
        if !is_job_id(id) {
            return Ok(None);
        }
        self.shared.store.get_job(id)
    }

    /// The path of a completed job's result while it is kept (a video's is streamed, not read whole).
    pub fn result_path(&self, job: &Job) -> Option<PathBuf> {
        if job.status != JobStatus::Completed || job.result_deleted_at.is_some() {
            return None;
        }
        let path = self.shared.results.join(safe_name(job.result_file.as_deref()?)?);
        path.is_file().then_some(path)
    }

    /// The path of a finished job's original while retention keeps it.
    pub fn original_path(&self, job: &Job) -> Option<PathBuf> {
        if job.original_deleted_at.is_some() || !job.status.is_finished() {
            return None;
        }
        let path = self.shared.originals.join(safe_name(job.original_file.as_deref()?)?);
        path.is_file().then_some(path)
    }

    /// The redacted image of a completed job, if it is still kept.
    pub fn result(&self, job: &Job) -> Option<Vec<u8>> {
        std::fs::read(self.result_path(job)?).ok()
    }

    /// The uploaded original of a finished job, while retention keeps it.
    pub fn original(&self, job: &Job) -> Option<Vec<u8>> {
        std::fs::read(self.original_path(job)?).ok()
    }

    /// The result of a download-once job: read it, claim it (only one caller can), delete it.
    /// `None` if it is gone or another caller claimed it first.
    pub fn take_result(&self, job: &Job) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(bytes) = self.result(job) else { return Ok(None) };
        if !self.shared.store.mark_result_deleted(&job.id)? {
            return Ok(None);
        }
        if let Some(name) = job.result_file.as_deref().and_then(safe_name) {
            let _ = std::fs::remove_file(self.shared.results.join(name));
        }
        Ok(Some(bytes))
    }

    /// Delete a job with its files and pending notifications. A worker that is processing it
    /// discards its result.
    pub fn delete(&self, job: &Job) -> Result<bool, StoreError> {
        let Some((original, result)) = self.shared.store.delete_job(&job.id)? else { return Ok(false) };
        if let Some(name) = result.as_deref().and_then(safe_name) {
            let _ = std::fs::remove_file(self.shared.results.join(name));
        }
        if let Some(name) = original.as_deref().and_then(safe_name) {
            let _ = std::fs::remove_file(self.shared.originals.join(name));
            let mut gone = job.clone();
            gone.original_deleted_at = Some(crate::store::now_ms());
            self.shared.observer.original_deleted(&gone);
        }
        Ok(true)
    }

    /// Stop the workers (the photo in hand finishes) and the sweeper. Queued jobs stay in the
    /// store for the next start.
    pub fn shutdown(&self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        self.shared.queue.close();
        self.shared.sweep_wake.1.notify_all();
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|p| p.into_inner()));
        for t in threads {
            let _ = t.join();
        }
    }
}

impl Shared {
    fn work(&self) {
        while let Some(task) = self.queue.pop() {
            match task {
                Task::Inline(t) => {
                    if t.reply.is_closed() {
                        continue;
                    }
                    let (detector, limits) = (self.detector.clone(), self.config.decode_limits);
                    let (bytes, options) = (t.bytes.clone(), t.options);
                    // A client waits: memory is waited for at most half its time, then 503.
                    let result = self.reserve_memory(&bytes, self.config.inline_timeout / 2).and_then(|held| {
                        self.with_deadline(move || {
                            let _held = held;
                            process::process_photo(&bytes, &options, &detector, &limits)
                        })
                    });
                    let _ = t.reply.send(result);
                }
                Task::Stored(id) => {
                    if let Err(e) = self.run_stored(&id) {
                        // The database failed under this job: fail it if it still can; else the
                        // next start finds it `processing` and runs it again.
                        eprintln!("veil: job {id}: {e}");
                        let _ = self.store.fail_job(&id, &format!("internal error: {e}"));
                    }
                }
            }
        }
    }

    /// Run `f` on its own thread with the configured deadline. A panic or a missed deadline is
    /// an error (the photo is dropped); a thread past its deadline is abandoned, its result
    /// discarded whenever it comes.
    fn with_deadline<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> Result<T, ProcessError> + Send + 'static,
    ) -> Result<T, ProcessError> {
        let (tx, rx) = std::sync::mpsc::channel();
        let spawned = std::thread::Builder::new().name("veil-job-photo".into()).spawn(move || {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
                .unwrap_or_else(|_| Err(ProcessError::Internal("internal error while processing this photo".into())));
            let _ = tx.send(r);
        });
        if let Err(e) = spawned {
            return Err(ProcessError::Internal(format!("cannot start a thread: {e}")));
        }
        let deadline = self.config.inline_timeout;
        match rx.recv_timeout(deadline) {
            Ok(r) => r,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                Err(ProcessError::Detection(format!("no result within {deadline:?}; the photo was dropped")))
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                Err(ProcessError::Internal("internal error while processing this photo".into()))
            }
        }
    }

    /// Hold the memory `bytes` needs to be processed (from its header's dimensions), waiting at
    /// most `wait`. A file whose header cannot be read holds nothing: decoding refuses it.
    fn reserve_memory(&self, bytes: &[u8], wait: Duration) -> Result<Option<memory_budget::Reservation>, ProcessError> {
        let Ok(header) = inspect(bytes, &self.config.decode_limits) else { return Ok(None) };
        let need = memory_budget::working_set(header.width, header.height);
        self.config.memory.reserve(need, wait).map(Some).map_err(ProcessError::Budget)
    }

    fn defaults(&self) -> JobDefaults {
        let t = self.tuning.get();
        let available = self.detector.info().categories.clone();
        let always_mask = self.config.always_mask.iter().filter(|c| available.contains(c)).collect();
        JobDefaults { params: t.params, style: t.style, quality: RESULT_QUALITY, always_mask }
    }

    fn run_stored(&self, id: &str) -> Result<(), StoreError> {
        let Some(job) = self.store.claim_job(id)? else { return Ok(()) };
        let original = job.original_file.as_deref().and_then(safe_name).map(|n| self.originals.join(n));
        let (detector, limits, defaults) = (self.detector.clone(), self.config.decode_limits, self.defaults());
        let options = job.options.clone();
        let bytes = original
            .ok_or_else(|| ProcessError::Internal("no original".into()))
            .and_then(|path| {
                std::fs::read(path).map_err(|e| ProcessError::Internal(format!("the uploaded original is gone: {e}")))
            });
        // A queued job waits for memory as long as it takes (it is queued work already).
        let held = match &bytes {
            Ok(b) => loop {
                match self.reserve_memory(b, Duration::from_secs(1)) {
                    Err(ProcessError::Budget(memory_budget::BudgetError::Busy { .. }))
                        if !self.stopping.load(Ordering::SeqCst) => {}
                    other => break other,
                }
            },
            Err(_) => Ok(None),
        };
        let outcome = held.and_then(|held| {
            self.with_deadline(move || {
                let _held = held;
                let options: JobOptions = serde_json::from_str(&options)
                    .map_err(|e| ProcessError::Internal(format!("stored options unreadable: {e}")))?;
                let resolved = options.resolve(&defaults).map_err(ProcessError::Internal)?;
                process::process_photo(&bytes?, &resolved, &detector, &limits)
            })
        });
        if self.stopping.load(Ordering::SeqCst) && outcome.is_err() {
            // Shutting down mid-job: leave it `processing`; the next start re-runs it.
            return Ok(());
        }
        let mut result = None;
        match outcome {
            Ok(p) => {
                let name = format!("{id}.{}", p.format.extension());
                let path = self.results.join(&name);
                if let Err(e) = crate::commands::write_atomic(&path, &p.encoded) {
                    self.store.fail_job(id, &format!("cannot store the result: {e}"))?;
                } else {
                    let done = self.store.complete_job(
                        id,
                        &JobResult {
                            result_file: &name,
                            result_mime: p.format.mime(),
                            result_bytes: p.encoded.len() as i64,
                            width: p.width as i64,
                            height: p.height as i64,
                            faces: p.masked.len() as i64,
                            detections: &process::detections_json(&p.masked),
                        },
                    )?;
                    if !done {
                        // Deleted while it was processed.
                        let _ = std::fs::remove_file(&path);
                        return Ok(());
                    }
                    result = Some(p.encoded);
                }
            }
            Err(e) => {
                self.store.fail_job(id, &e.to_string())?;
            }
        }
        self.after_finish(id, result.as_deref());
        Ok(())
    }

    /// Tell the observer a job ended (once: recorded in the store), and delete its original
    /// unless retention keeps it.
    fn after_finish(&self, id: &str, result: Option<&[u8]>) {
        let Ok(Some(job)) = self.store.get_job(id) else { return };
        if job.notified_at.is_none() {
            self.observer.finished(&job, result);
            if let Err(e) = self.store.mark_notified(id) {
                eprintln!("veil: job {id}: {e}");
            }
        }
        if self.config.keep_originals.is_zero() {
            self.delete_original(&job);
        }
    }

    fn delete_original(&self, job: &Job) {
        if job.original_deleted_at.is_some() {
            return;
        }
        if let Some(name) = job.original_file.as_deref().and_then(safe_name) {
            match std::fs::remove_file(self.originals.join(name)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    eprintln!("veil: job {}: cannot delete the original: {e}", job.id);
                    return;
                }
            }
        }
        // Only the caller that records the deletion tells the observer (worker and sweeper may race).
        if let Ok(true) = self.store.mark_original_deleted(&job.id) {
            if let Ok(Some(job)) = self.store.get_job(&job.id) {
                self.observer.original_deleted(&job);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    use veil_models::{BackendInfo, BBox, Category, DetectError, DetectOutput, DetectParams, Detection, Precision, RgbImage};

    /// Finds one face at a fixed place; fails, panics or returns NaN when the image's first
    /// red value says so (1, 2, 3).
    struct ScriptedDetector(BackendInfo);

    impl Detector for ScriptedDetector {
        fn info(&self) -> &BackendInfo {
            &self.0
        }

        fn detect(&self, image: &RgbImage<'_>, _: &DetectParams) -> Result<DetectOutput, DetectError> {
            let mut bbox = BBox { x1: 8.0, y1: 8.0, x2: 40.0, y2: 40.0 };
            match image.data[0] {
                1 => return Err(DetectError::Inference("injected".into())),
                2 => panic!("injected panic"),
                3 => bbox.x2 = f32::NAN,
                _ => {}
            }
            let d = Detection { category: Category::Face, bbox, score: 0.9, landmarks: None };
            Ok(DetectOutput { detections: vec![d], ..DetectOutput::default() })
        }
    }

    fn detector() -> Arc<dyn Detector> {
        Arc::new(ScriptedDetector(BackendInfo {
            name: "scripted".into(),
            version: "test".into(),
            categories: vec![Category::Face],
            precision: Precision::Fp32,
            sha256: String::new(),
            input_multiple: 1,
            input_layout: "rgb".into(),
            available: true,
            auto_probe: None,
        }))
    }

    /// A 64x64 PNG of noise whose first red value is `tag`.
    fn photo(tag: u8) -> Vec<u8> {
        let img = image::RgbImage::from_fn(64, 64, |x, y| {
            if x == 0 && y == 0 {
                image::Rgb([tag, 0, 0])
            } else {
                image::Rgb([(x * 37 + y * 11) as u8, (x * y) as u8, (x ^ y) as u8 * 4])
            }
        });
        crate::photo::encode(&img, crate::photo::OutputFormat::Png, None, None).unwrap()
    }

    fn engine(dir: &Path, config: EngineConfig) -> Arc<JobEngine> {
        let store = Arc::new(Store::open(dir).unwrap());
        let tuning = Arc::new(LiveTuning::default());
        JobEngine::start(store, &dir.join("jobs"), detector(), tuning, config, Arc::new(NoObserver)).unwrap()
    }

    fn submit(e: &JobEngine, bytes: &[u8]) -> String {
        let options = JobOptions::default();
        let upload = Upload { api: "cloak", key_id: None, filename: None, bytes, options: &options, webhook_url: None };
        e.submit(&upload).unwrap().id
    }

    fn wait(e: &JobEngine, id: &str) -> Job {
        let t = Instant::now();
        loop {
            let j = e.get(id).unwrap().unwrap();
            if j.status.is_finished() && (j.original_deleted_at.is_some() || !e.config().keep_originals.is_zero()) {
                return j;
            }
            assert!(t.elapsed() < Duration::from_secs(20), "job {id} stuck: {j:?}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn failures_fail_closed_and_every_original_is_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let e = engine(dir.path(), EngineConfig { workers: 2, ..EngineConfig::default() });
        let ids: Vec<String> = (0..4).map(|tag| submit(&e, &photo(tag))).collect();
        let jobs: Vec<Job> = ids.iter().map(|id| wait(&e, id)).collect();
        assert_eq!(jobs[0].status, JobStatus::Completed);
        assert!(e.result(&jobs[0]).is_some());
        for (j, why) in jobs[1..].iter().zip(["injected", "internal error", "non-finite"]) {
            assert_eq!(j.status, JobStatus::Failed, "{j:?}");
            assert!(j.error.as_deref().unwrap().contains(why), "{j:?}");
            assert!(j.result_file.is_none() && e.result(j).is_none(), "a failed job has no result");
        }
        // The originals are gone; only the one result is on disk.
        assert_eq!(std::fs::read_dir(dir.path().join("jobs/originals")).unwrap().count(), 0);
        assert_eq!(std::fs::read_dir(dir.path().join("jobs/results")).unwrap().count(), 1);
        // The workers survived the panic.
        assert_eq!(wait(&e, &submit(&e, &photo(0))).status, JobStatus::Completed);
        e.shutdown();
    }

    #[test]
    fn results_expire_and_the_quota_deletes_the_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        let config = EngineConfig {
            workers: 1,
            result_ttl: Duration::from_millis(1500),
            sweep_interval: Duration::from_millis(50),
            ..EngineConfig::default()
        };
        let e = engine(dir.path(), config);
        let first = wait(&e, &submit(&e, &photo(0)));
        let size = first.result_bytes.unwrap() as u64;
        e.shutdown();
        // Restart with a quota of about two results: the third pushes the oldest out.
        let e = engine(
            dir.path(),
            EngineConfig {
                workers: 1,
                max_result_bytes: size * 2 + size / 2,
                sweep_interval: Duration::from_millis(50),
                ..EngineConfig::default()
            },
        );
        let second = wait(&e, &submit(&e, &photo(0)));
        let third = wait(&e, &submit(&e, &photo(0)));
        let t = Instant::now();
        while e.get(&first.id).unwrap().unwrap().result_deleted_at.is_none() {
            assert!(t.elapsed() < Duration::from_secs(10), "quota never enforced");
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(e.result(&e.get(&second.id).unwrap().unwrap()).is_some());
        assert!(e.result(&e.get(&third.id).unwrap().unwrap()).is_some());
        e.shutdown();
        // And with a short time-to-live everything expires.
        let e = engine(
            dir.path(),
            EngineConfig {
                workers: 1,
                result_ttl: Duration::from_millis(300),
                sweep_interval: Duration::from_millis(50),
                ..EngineConfig::default()
            },
        );
        let t = Instant::now();
        while e.store().stored_results().unwrap().len() > 0 {
            assert!(t.elapsed() < Duration::from_secs(10), "results never expired");
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(std::fs::read_dir(dir.path().join("jobs/results")).unwrap().count(), 0);
        e.shutdown();
    }

    #[test]
    fn retention_keeps_originals_until_it_passes() {
        let dir = tempfile::tempdir().unwrap();
        let e = engine(
            dir.path(),
            EngineConfig {
                workers: 1,
                keep_originals: Duration::from_millis(500),
                sweep_interval: Duration::from_millis(50),
                ..EngineConfig::default()
            },
        );
        let bytes = photo(0);
        let job = wait(&e, &submit(&e, &bytes));
        assert_eq!(e.original(&job).unwrap(), bytes, "kept while retention runs");
        let t = Instant::now();
        while e.get(&job.id).unwrap().unwrap().original_deleted_at.is_none() {
            assert!(t.elapsed() < Duration::from_secs(10), "original kept past its retention");
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(!dir.path().join("jobs/originals").join(job.original_file.as_deref().unwrap()).exists());
        e.shutdown();
    }

    #[test]
    fn job_ids_are_uuids_and_junk_is_not_one() {
        let id = new_job_id();
        assert!(is_job_id(&id), "{id}");
        assert_eq!(&id[14..15], "4");
        for junk in ["", "../etc/passwd", &id.to_uppercase(), &id[..35], &format!("{}x", &id[..35])] {
            assert!(!is_job_id(junk), "{junk}");
        }
    }
}
