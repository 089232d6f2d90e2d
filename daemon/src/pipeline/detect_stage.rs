//! Detection with a deadline, on its own thread: a detector that errors, panics or hangs fails
//! that frame only. A hung worker is abandoned (its late answer is ignored) and a fresh one
//! takes the next frame; after too many hangs the stage reports itself broken.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
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
            StageFailure::Broken => write!(f, "detector hung too often; stage stopped"),
        }
    }
}

struct Job {
    id: u64,
    rgb: Arc<Vec<u8>>,
    width: u32,
    height: u32,
}

type Answer = (u64, Result<DetectOutput, StageFailure>);

struct Worker {
    jobs: Sender<Job>,
    answers: Receiver<Answer>,
}

pub struct DetectStage {
    detector: Arc<dyn Detector>,
    params: DetectParams,
    worker: Option<Worker>,
    next_id: u64,
    abandoned: usize,
    max_abandoned: usize,
}

/// Text of a panic payload.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

fn spawn_worker(detector: Arc<dyn Detector>, params: DetectParams) -> std::io::Result<Worker> {
    let (jobs, job_rx) = mpsc::channel::<Job>();
    let (answer_tx, answers) = mpsc::channel::<Answer>();
    std::thread::Builder::new().name("veil-detect".into()).spawn(move || {
        for job in job_rx {
            let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
                let image = RgbImage::new(&job.rgb, job.width, job.height).map_err(|e| e.to_string())?;
                detector.detect(&image, &params).map_err(|e| e.to_string())
            }));
            let result = match result {
                Ok(Ok(out)) => Ok(out),
                Ok(Err(e)) => Err(StageFailure::Error(e)),
                Err(p) => Err(StageFailure::Panic(panic_message(p.as_ref()))),
            };
            if answer_tx.send((job.id, result)).is_err() {
                break; // abandoned: nobody is waiting any more
            }
        }
    })?;
    Ok(Worker { jobs, answers })
}

impl DetectStage {
    /// `max_abandoned`: hung workers tolerated before the stage reports [`StageFailure::Broken`].
    pub fn new(detector: Arc<dyn Detector>, params: DetectParams, max_abandoned: usize) -> Self {
        Self { detector, params, worker: None, next_id: 0, abandoned: 0, max_abandoned }
    }

    pub fn abandoned_workers(&self) -> usize {
        self.abandoned
    }

    /// Detect in one frame, waiting at most `timeout`.
    pub fn detect(
        &mut self,
        rgb: Arc<Vec<u8>>,
        width: u32,
        height: u32,
        timeout: Duration,
    ) -> Result<DetectOutput, StageFailure> {
        if self.abandoned > self.max_abandoned {
            return Err(StageFailure::Broken);
        }
        if self.worker.is_none() {
            let w = spawn_worker(self.detector.clone(), self.params.clone())
                .map_err(|e| StageFailure::Error(format!("cannot start a detection thread: {e}")))?;
            self.worker = Some(w);
        }
        let id = self.next_id;
        self.next_id += 1;
        let worker = self.worker.as_ref().expect("spawned above");
        if worker.jobs.send(Job { id, rgb, width, height }).is_err() {
            self.worker = None;
            return Err(StageFailure::Error("detection thread exited".into()));
        }
        loop {
            match worker.answers.recv_timeout(timeout) {
                Ok((answer_id, result)) if answer_id == id => return result,
                Ok(_) => continue, // a stale answer for an earlier job: ignore
                Err(RecvTimeoutError::Timeout) => {
                    // Abandon the stuck thread; it exits when it next tries to answer.
                    self.worker = None;
                    self.abandoned += 1;
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
