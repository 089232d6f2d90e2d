//! Video jobs: an upload already spooled to disk is probed (a video stream, its length within
//! `api.max_video_seconds`) before it is accepted; one video worker, beside the photo workers,
//! redacts queued clips through `video::redact_file` and records frames done as it goes. A daemon
//! stopped mid-clip leaves the job `processing`; the next start runs it again from the first
//! frame (nothing half-written is kept: the result exists only once renamed into place).

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{new_job_id, safe_name, JobEngine, JobOptions, Shared, SubmitError};
use crate::pipeline::tracker::TrackerConfig;
use crate::redaction::Redactor;
use crate::store::jobs::{Job, JobResult, NewJob};
use crate::store::StoreError;
use crate::video::probe::{self, Sniffed};
use crate::video::{self, AudioMode, Container, EncodeOptions};

/// How long probing an upload may take before it is refused.
const PROBE_TIMEOUT: Duration = Duration::from_secs(30);
/// How often a running video's frames done are written to the store.
const PROGRESS_EVERY: Duration = Duration::from_millis(500);
/// Quality of redacted videos (`veil redact --video-quality`'s scale).
const VIDEO_QUALITY: u8 = 80;

/// A video upload, spooled to a temporary file in the engine's originals directory.
pub struct VideoUpload<'a> {
    pub api: &'a str,
    pub key_id: Option<i64>,
    pub filename: Option<&'a str>,
    /// Deleted when dropped unless the job takes it.
    pub file: tempfile::TempPath,
    pub bytes: u64,
    pub options: &'a JobOptions,
    pub webhook_url: Option<&'a str>,
}

/// The container a video job's result is written in: the upload's own (by its name's extension,
/// else by its first bytes).
fn output_container(filename: Option<&str>, original: &Path) -> Container {
    if let Some(c) = filename.map(Path::new).filter(|p| video::is_video(p)).and_then(Container::for_path) {
        return c;
    }
    let mut head = [0u8; 16];
    let sniffed = std::fs::File::open(original)
        .and_then(|mut f| std::io::Read::read(&mut f, &mut head))
        .ok()
        .and_then(|n| probe::sniff(&head[..n]));
    let ext = if sniffed == Some(Sniffed::Matroska) { "x.mkv" } else { "x.mp4" };
    Container::for_path(Path::new(ext)).expect("known extension")
}

/// The MIME type of a result container.
pub fn mime(container: &Container) -> &'static str {
    match container.extension {
        "mov" => "video/quicktime",
        "mkv" => "video/x-matroska",
        "webm" => "video/webm",
        _ => "video/mp4",
    }
}

impl JobEngine {
    /// Where a video upload is spooled while it arrives (files there no job names are removed
    /// at the next start).
    pub fn spool_dir(&self) -> &Path {
        &self.shared.originals
    }

    /// Check a spooled video (options, a video stream, its length), take its file as the job's
    /// original and queue it for the video worker.
    pub fn submit_video(&self, upload: VideoUpload<'_>) -> Result<Job, SubmitError> {
        self.check_room(1)?;
        upload.options.resolve(&self.shared.defaults()).map_err(SubmitError::BadOptions)?;
        let info = probe::probe(&upload.file, PROBE_TIMEOUT).map_err(SubmitError::BadVideo)?;
        let max = self.shared.config.max_video_seconds;
        if info.duration.as_secs_f64() > max as f64 {
            return Err(SubmitError::VideoTooLong { seconds: info.duration.as_secs_f64(), max });
        }
        let id = new_job_id();
        let original = self.shared.originals.join(&id);
        upload.file.persist(&original).map_err(|e| SubmitError::Io(e.error))?;
        let synced = std::fs::File::open(&original).and_then(|f| f.sync_all());
        if let Ok(dir) = std::fs::File::open(&self.shared.originals) {
            let _ = dir.sync_all();
        }
        let options = serde_json::to_string(upload.options).map_err(|e| SubmitError::BadOptions(e.to_string()));
        let inserted = synced.map_err(SubmitError::Io).and_then(|_| options).and_then(|options| {
            self.shared
                .store
                .insert_job(&NewJob {
                    id: &id,
                    api: upload.api,
                    key_id: upload.key_id,
                    options: &options,
                    filename: upload.filename,
                    media_type: "video",
                    original_file: &id,
                    original_bytes: upload.bytes as i64,
                    webhook_url: upload.webhook_url,
                    duration_ms: Some(info.duration.as_millis() as i64),
                    frames: info.frames().map(|f| f as i64),
                })
                .map_err(SubmitError::Store)
        });
        if let Err(e) = inserted {
            let _ = std::fs::remove_file(&original);
            return Err(e);
        }
        self.shared.queue.push_video(id.clone());
        Ok(self.shared.store.get_job(&id)?.ok_or_else(|| StoreError::NotFound(id))?)
    }
}


/// Frames done, written to the store now and then; stops the clip when the daemon stops or the
/// job is deleted under it.
struct JobProgress<'a> {
    shared: &'a Shared,
    id: &'a str,
    last: Mutex<Option<Instant>>,
    gone: AtomicBool,
}

impl video::Progress for JobProgress<'_> {
    fn update(&self, done: u64, total: Option<u64>) {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_some_and(|t| t.elapsed() < PROGRESS_EVERY) {
            return;
        }
        *last = Some(Instant::now());
        let still = self.shared.store.set_progress(self.id, done as i64, total.map(|t| t.max(done) as i64));
        if matches!(still, Ok(false)) {
            self.gone.store(true, Ordering::SeqCst);
        }
    }

    fn cancelled(&self) -> bool {
        self.gone.load(Ordering::SeqCst) || self.shared.stopping.load(Ordering::SeqCst)
    }
}

impl Shared {
    pub(super) fn video_work(&self) {
        while let Some(id) = self.queue.pop_video() {
            if let Err(e) = self.run_video(&id) {
                eprintln!("veil: video job {id}: {e}");
                let _ = self.store.fail_job(&id, &format!("internal error: {e}"));
            }
        }
    }

    fn run_video(&self, id: &str) -> Result<(), StoreError> {
        let Some(job) = self.store.claim_job(id)? else { return Ok(()) };
        let Some(original) = job.original_file.as_deref().and_then(safe_name).map(|n| self.originals.join(n)) else {
            self.store.fail_job(id, "the uploaded original is gone")?;
            self.after_finish(id, None);
            return Ok(());
        };
        let container = output_container(job.filename.as_deref(), &original);
        let name = format!("{id}.{}", container.extension);
        let target = self.results.join(&name);
        let progress = JobProgress { shared: self, id, last: Mutex::new(None), gone: AtomicBool::new(false) };
        let outcome = serde_json::from_str::<JobOptions>(&job.options)
            .map_err(|e| format!("stored options unreadable: {e}"))
            .and_then(|o| o.resolve(&self.defaults()))
            .and_then(|resolved| {
                let redactor = Redactor { detector: self.detector.clone(), params: resolved.params, style: resolved.style };
                let opts = EncodeOptions {
                    container,
                    quality: VIDEO_QUALITY,
                    encoder: None,
                    audio: AudioMode::Copy,
                    keep_metadata: false,
                };
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    video::redact_file(
                        &original,
                        &target,
                        &redactor,
                        &TrackerConfig::default(),
                        &opts,
                        video::Deadlines::default(),
                        &progress,
                    )
                }))
                .unwrap_or_else(|_| Err("internal error while processing this video".into()))
            });
        if self.stopping.load(Ordering::SeqCst) && outcome.is_err() {
            // Shutting down mid-clip: left `processing`, run again from the start next time.
            return Ok(());
        }
        match outcome {
            Ok(report) => {
                let bytes = std::fs::metadata(&target).map(|m| m.len() as i64).unwrap_or(0);
                let _ = self.store.set_progress(id, report.frames as i64, Some(report.frames as i64));
                let done = self.store.complete_job(
                    id,
                    &JobResult {
                        result_file: &name,
                        result_mime: mime(&container),
                        result_bytes: bytes,
                        width: report.width as i64,
                        height: report.height as i64,
                        faces: report.detections as i64,
                        detections: "[]",
                    },
                )?;
                if !done {
                    // Deleted while it was processed.
                    let _ = std::fs::remove_file(&target);
                    return Ok(());
                }
            }
            Err(e) => {
                if progress.gone.load(Ordering::SeqCst) {
                    return Ok(());
                }
                self.store.fail_job(id, &format!("video redaction failed: {e}"))?;
            }
        }
        self.after_finish(id, None);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_keep_the_uploads_container() {
        let dir = tempfile::tempdir().unwrap();
        let webm = dir.path().join("a");
        std::fs::write(&webm, [0x1a, 0x45, 0xdf, 0xa3, 0, 0, 0, 0, 0, 0, 0, 0]).unwrap();
        assert_eq!(output_container(Some("clip.MOV"), &webm).extension, "mov");
        assert_eq!(output_container(Some("clip.webm"), &webm).extension, "webm");
        assert_eq!(output_container(Some("upload.bin"), &webm).extension, "mkv");
        assert_eq!(output_container(None, &dir.path().join("missing")).extension, "mp4");
        assert_eq!(mime(&output_container(Some("a.mkv"), &webm)), "video/x-matroska");
    }
}
