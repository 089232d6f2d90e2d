//! Detection with a deadline, on its own thread: a detector that errors, panics or hangs fails
//! that frame only. A late worker is abandoned (its answer is ignored) and a fresh one takes the
//! next frame; while too many abandoned workers are still stuck, the stage reports itself broken.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use veil_models::{DetectOutput, DetectParams, Detector, RgbImage};

/// Why a frame got no detections.
#[derive(Debug, Clone, PartialEq)]
pub enum StageFailure {
    Error(String),
    Panic(String),
    Timeout,
    /// Too many hung workers: the detector is not usable.
    Broken,
}

impl std::fmt::Display for StageFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StageFailure::Error(e) => write!(f, "detector error: {e}"),
            StageFailure::Panic(e) => write!(f, "detector panicked: {e}"),
            StageFailure::Timeout => write!(f, "detection missed the frame deadline"),
            StageFailure::Broken => write!(f, "too many detector threads are stuck; frames are dropped until they return"),
        }
    }
}

struct Job {
    id: u64,
    rgb: Arc<Vec<u8>>,
    width: u32,
    height: u32,
    params: DetectParams,
}

type Answer = (u64, Result<DetectOutput, StageFailure>);

struct Worker {
    jobs: Sender<Job>,
    answers: Receiver<Answer>,
    /// Set when the stage gives up on this worker; the thread then leaves `stuck` on finishing.
    abandoned: Arc<AtomicBool>,
}

pub struct DetectStage {
    detector: Arc<dyn Detector>,
    worker: Option<Worker>,
    next_id: u64,
    /// Abandoned workers whose detect call has not returned yet.
    stuck: Arc<AtomicUsize>,
    max_stuck: usize,
}

/// Text of a panic payload.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

fn spawn_worker(detector: Arc<dyn Detector>, stuck: Arc<AtomicUsize>) -> std::io::Result<Worker> {
    let (jobs, job_rx) = mpsc::channel::<Job>();
    let (answer_tx, answers) = mpsc::channel::<Answer>();
    let abandoned = Arc::new(AtomicBool::new(false));
    let flag = abandoned.clone();
    std::thread::Builder::new().name("veil-detect".into()).spawn(move || {
        for job in job_rx {
            let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
                let image = RgbImage::new(&job.rgb, job.width, job.height).map_err(|e| e.to_string())?;
                detector.detect(&image, &job.params).map_err(|e| e.to_string())
            }));
            let result = match result {
                Ok(Ok(out)) => Ok(out),
                Ok(Err(e)) => Err(StageFailure::Error(e)),
                Err(p) => Err(StageFailure::Panic(panic_message(p.as_ref()))),
            };
            if flag.load(Ordering::SeqCst) || answer_tx.send((job.id, result)).is_err() {
                break; // abandoned: nobody is waiting any more
            }
        }
        // Abandoned (possibly just after answering): no longer stuck.
        if flag.load(Ordering::SeqCst) {
            stuck.fetch_sub(1, Ordering::SeqCst);
        }
    })?;
    Ok(Worker { jobs, answers, abandoned })
}

impl DetectStage {
    /// `max_stuck`: abandoned workers still stuck in the detector that are tolerated before the
    /// stage reports [`StageFailure::Broken`] (it recovers when they return).
    pub fn new(detector: Arc<dyn Detector>, max_stuck: usize) -> Self {
        Self { detector, worker: None, next_id: 0, stuck: Arc::new(AtomicUsize::new(0)), max_stuck }
    }

    pub fn stuck_workers(&self) -> usize {
        self.stuck.load(Ordering::SeqCst)
    }

    /// Detect in one frame, waiting at most `timeout`.
    pub fn detect(
        &mut self,
        rgb: Arc<Vec<u8>>,
        width: u32,
        height: u32,
        params: DetectParams,
        timeout: Duration,
    ) -> Result<DetectOutput, StageFailure> {
        if self.stuck_workers() > self.max_stuck {
            return Err(StageFailure::Broken);
        }
        if self.worker.is_none() {
            let w = spawn_worker(self.detector.clone(), self.stuck.clone())
                .map_err(|e| StageFailure::Error(format!("cannot start a detection thread: {e}")))?;
            self.worker = Some(w);
        }
        let id = self.next_id;
        self.next_id += 1;
        let worker = self.worker.as_ref().expect("spawned above");
        if worker.jobs.send(Job { id, rgb, width, height, params }).is_err() {
            self.worker = None;
            return Err(StageFailure::Error("detection thread exited".into()));
        }
        loop {
            match worker.answers.recv_timeout(timeout) {
                Ok((answer_id, result)) if answer_id == id => return result,
                Ok(_) => continue, // a stale answer for an earlier job: ignore
                Err(RecvTimeoutError::Timeout) => {
                    // Abandon the late thread; it leaves `stuck` and exits when detect returns.
                    self.stuck.fetch_add(1, Ordering::SeqCst);
                    worker.abandoned.store(true, Ordering::SeqCst);
                    self.worker = None;
                    return Err(StageFailure::Timeout);
                }
                Err(RecvTimeoutError::Disconnected) => {
                    self.worker = None;
                    return Err(StageFailure::Error("detection thread exited".into()));
                }
            }
        }
    }
}
