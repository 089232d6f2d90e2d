//! Redacting video files: every decoded frame is detected (under a deadline), tracked and
//! masked before the encoder sees it; the output is written under a temporary name and renamed
//! only when every frame went through, so a failure leaves no file and never a raw frame.

pub mod container;
pub mod graph;
pub mod probe;

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use veil_models::{Detection, RgbImage as ModelImage};
use veil_redact::RgbFrame;

use crate::pipeline::tracker::{Tracker, TrackerConfig};
use crate::redaction::{mask_boxes, Redactor};
pub use container::{is_video, Container};
pub use graph::{AudioMode, EncodeOptions};

/// What a redacted video came to.
#[derive(Debug, Clone, Default)]
pub struct VideoReport {
    pub frames: u64,
    pub width: u32,
    pub height: u32,
    /// Detections over all frames (a face seen in 100 frames counts 100 times).
    pub detections: u64,
    /// Frames with at least one mask (detected or held by the tracker).
    pub masked_frames: u64,
    pub seconds: f64,
}

/// Progress as frames are written: frames done, the expected total when the stream says.
pub trait Progress {
    fn update(&self, done: u64, total: Option<u64>);
    /// Asked before every frame: true stops the file (it fails, nothing is written).
    fn cancelled(&self) -> bool {
        false
    }
}

impl<F: Fn(u64, Option<u64>)> Progress for F {
    fn update(&self, done: u64, total: Option<u64>) {
        self(done, total)
    }
}

/// Limits on one file's work.
#[derive(Debug, Clone, Copy)]
pub struct Deadlines {
    /// One frame's detection.
    pub frame: Duration,
    /// Waiting for the next decoded frame, and for the muxer to finish.
    pub stall: Duration,
    /// Fault injection for tests (`VEIL_FAULT_STALL_AT_FRAME`): detection wedges from this frame on.
    pub wedge_detection_at: Option<u64>,
}

impl Default for Deadlines {
    fn default() -> Self {
        Self { frame: Duration::from_secs(30), stall: Duration::from_secs(60), wedge_detection_at: None }
    }
}

/// The temporary name `target` is written under until it is complete.
fn partial_path(target: &Path) -> PathBuf {
    let name = target.file_name().and_then(|n| n.to_str()).unwrap_or("video");
    target.with_file_name(format!(".{name}.{}.partial", std::process::id()))
}

/// Remove what an earlier run killed while writing `target` left behind (`.NAME.PID.partial`
/// of a process that is gone), so an interrupted file does not linger beside the output.
fn remove_stale_partials(target: &Path) {
    let (Some(dir), Some(name)) = (target.parent(), target.file_name().and_then(|n| n.to_str())) else { return };
    let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let prefix = format!(".{name}.");
    for entry in entries.flatten() {
        let file = entry.file_name();
        let Some(pid) = file.to_str().and_then(|f| f.strip_prefix(&prefix)).and_then(|r| r.strip_suffix(".partial")) else {
            continue;
        };
        let alive = pid.parse::<u32>().is_ok_and(|p| p == std::process::id() || Path::new(&format!("/proc/{p}")).exists());
        if !alive && pid.bytes().all(|b| b.is_ascii_digit()) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Detections for frames handed to a detection thread, each awaited under a deadline. The
/// thread is left behind (and ends with its channel) if a frame overruns; the file fails.
/// A frame's pixels handed back with what was found in them.
type Detected = (Vec<u8>, Result<Vec<Detection>, String>);

struct DetectWorker {
    frames: mpsc::SyncSender<(Vec<u8>, u32, u32)>,
    results: mpsc::Receiver<Detected>,
}

impl DetectWorker {
    fn start(redactor: &Redactor, wedge_at: Option<u64>) -> DetectWorker {
        let (frames, inbox) = mpsc::sync_channel::<(Vec<u8>, u32, u32)>(1);
        let (outbox, results) = mpsc::channel();
        let (detector, params) = (redactor.detector.clone(), redactor.params);
        std::thread::Builder::new()
            .name("video-detect".into())
            .spawn(move || {
                let mut index = 0u64;
                while let Ok((rgb, w, h)) = inbox.recv() {
                    if wedge_at.is_some_and(|at| index >= at) {
                        loop {
                            std::thread::park();
                        }
                    }
                    index += 1;
                    let found = ModelImage::new(&rgb, w, h)
                        .and_then(|view| veil_models::rotations::detect(&*detector, &view, &params))
                        .map_err(|e| e.to_string())
                        .and_then(|out| {
                            match out.detections.iter().find(|d| {
                                let b = d.bbox;
                                ![b.x1, b.y1, b.x2, b.y2, d.score].iter().all(|v| v.is_finite())
                            }) {
                                Some(bad) => Err(format!("detector returned a non-finite box {:?}", bad.bbox)),
                                None => Ok(out.detections),
                            }
                        });
                    if outbox.send((rgb, found)).is_err() {
                        break;
                    }
                }
            })
            .expect("spawn the detection thread");
        DetectWorker { frames, results }
    }

    fn detect(&self, rgb: Vec<u8>, w: u32, h: u32, deadline: Duration) -> Result<(Vec<u8>, Vec<Detection>), String> {
        self.frames.send((rgb, w, h)).map_err(|_| "the detection thread stopped".to_string())?;
        match self.results.recv_timeout(deadline) {
            Ok((rgb, Ok(found))) => Ok((rgb, found)),
            Ok((_, Err(e))) => Err(e),
            Err(mpsc::RecvTimeoutError::Timeout) => Err(format!("detection took longer than {} s", deadline.as_secs())),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err("the detection thread stopped".into()),
        }
    }
}

/// Redact `input` into `target` (its extension picks the container unless `opts` says).
/// On error nothing is left at `target` (nor under its temporary name).
pub fn redact_file(
    input: &Path,
    target: &Path,
    redactor: &Redactor,
    tracker: &TrackerConfig,
    opts: &EncodeOptions,
    deadlines: Deadlines,
    progress: &dyn Progress,
) -> Result<VideoReport, String> {
    let dir = target.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    remove_stale_partials(target);
    let partial = partial_path(target);
    let result = encode(input, &partial, redactor, tracker, opts, deadlines, progress).and_then(|report| {
        let file = std::fs::File::open(&partial).map_err(|e| format!("cannot reopen the output: {e}"))?;
        file.sync_all().map_err(|e| format!("cannot flush the output: {e}"))?;
        std::fs::rename(&partial, target).map_err(|e| format!("cannot write {}: {e}", target.display()))?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(report)
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result
}

fn encode(
    input: &Path,
    output: &Path,
    redactor: &Redactor,
    tracker: &TrackerConfig,
    opts: &EncodeOptions,
    deadlines: Deadlines,
    progress: &dyn Progress,
) -> Result<VideoReport, String> {
    let started = Instant::now();
    let mut graph = graph::Graph::start(input, output, opts)?;
    let worker = DetectWorker::start(redactor, deadlines.wedge_detection_at);
    let mut tracker = Tracker::new(tracker.clone());
    let mut report = VideoReport::default();
    while let Some(mut frame) = graph.next_frame(deadlines.stall)? {
        if progress.cancelled() {
            return Err("stopped before the end".into());
        }
        let (w, h) = (frame.width, frame.height);
        let (rgb, found) = worker.detect(std::mem::take(&mut frame.rgb), w, h, deadlines.frame)?;
        frame.rgb = rgb;
        let masks = tracker.update(&found);
        {
            let mut pixels = RgbFrame::new(&mut frame.rgb, w, h).map_err(|e| format!("frame buffer: {e}"))?;
            mask_boxes(&mut pixels, masks.iter().map(|m| (m.category, m.bbox)), &redactor.style);
        }
        graph.push_frame(&frame)?;
        report.frames += 1;
        (report.width, report.height) = (w, h);
        report.detections += found.len() as u64;
        report.masked_frames += u64::from(!masks.is_empty());
        let total = match (graph.duration, graph.fps) {
            (Some(d), Some(fps)) => Some((d.nseconds() as f64 / 1e9 * fps).round() as u64),
            _ => None,
        };
        progress.update(report.frames, total);
    }
    if report.frames == 0 {
        return Err("the video has no frames".into());
    }
    graph.finish(deadlines.stall)?;
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}
