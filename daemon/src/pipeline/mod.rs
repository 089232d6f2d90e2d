//! The camera pipeline: a capture thread fills a bounded queue; a worker detects (on a
//! deadline), tracks and masks faces and privacy zones; an output thread encodes the masked frame
//! and hands it to the sinks.
//! Fail closed: a frame whose detection errors, panics or times out, or whose masking panics,
//! produces no output at all; it is counted and logged.

pub mod controls;
pub mod detect_stage;
pub mod flicker;
pub mod frame_queue;
pub mod metrics;
pub mod output;
pub mod tracker;

#[cfg(test)]
mod tests;

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use image::codecs::jpeg::JpegEncoder;
use veil_camera::FrameSource;
use veil_models::Detector;
use veil_redact::{MaskStyle, RgbFrame};

use crate::sinks::Dispatcher;
use controls::{CaptureSwitch, LiveTuning};
use detect_stage::{panic_message, DetectStage, StageFailure};
use frame_queue::{FrameQueue, Queued};
use metrics::{DropCause, Metrics};
use output::{EventObject, EventTimings, FrameEvent, RedactedFrame};
use tracker::{MaskBox, Tracker, TrackerConfig};

/// What a full queue does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backpressure {
    /// Live camera: drop the oldest waiting frame (counted).
    DropOldest,
    /// File replay: wait, so every frame is processed.
    Block,
}

/// Called with each frame id inside the masking stage; lets tests inject a panic there.
pub type FaultHook = Arc<dyn Fn(u64) + Send + Sync>;

#[derive(Clone)]
pub struct PipelineConfig {
    pub queue_depth: usize,
    /// Capture to output (start of processing, for a replay); a frame later than this is
    /// dropped.
    pub deadline: Duration,
    pub backpressure: Backpressure,
    /// Read the source at this interval (replaying files at camera speed); `None`: as fast as
    /// the source delivers.
    pub pace: Option<Duration>,
    /// Detection and masking settings, read afresh for every frame.
    pub tuning: Arc<LiveTuning>,
    /// Capture pauses (the device is let go) while this is held off.
    pub capture: Arc<CaptureSwitch>,
    pub tracker: TrackerConfig,
    /// Privacy zones, polygons in fractions of the frame.
    pub zones: Vec<Vec<(f32, f32)>>,
    pub jpeg_quality: u8,
    /// Detector threads still stuck past their deadline that are tolerated before every frame
    /// is dropped as broken (until they return).
    pub max_hung_detectors: usize,
    pub fault_hook: Option<FaultHook>,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            queue_depth: 1,
            deadline: Duration::from_secs(2),
            backpressure: Backpressure::DropOldest,
            pace: None,
            tuning: Arc::new(LiveTuning::default()),
            capture: Arc::new(CaptureSwitch::default()),
            tracker: TrackerConfig::default(),
            zones: Vec::new(),
            jpeg_quality: 85,
            max_hung_detectors: 4,
            fault_hook: None,
        }
    }
}

/// Wakes sleeping pipeline threads on shutdown.
#[derive(Default)]
pub struct StopSignal {
    stopped: AtomicBool,
    lock: Mutex<()>,
    cond: Condvar,
}

impl StopSignal {
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        self.cond.notify_all();
    }

    pub fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }

    /// Sleep for `d` unless stopped first.
    pub fn sleep(&self, d: Duration) {
        let guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        if !self.is_stopped() {
            let _ = self.cond.wait_timeout(guard, d);
        }
    }
}

pub struct Pipeline {
    stop: Arc<StopSignal>,
    queue: Arc<FrameQueue>,
    metrics: Arc<Metrics>,
    capture: Option<JoinHandle<()>>,
    worker: Option<JoinHandle<()>>,
    output: Option<JoinHandle<()>>,
    deadline: Duration,
}

impl Pipeline {
    /// Start capturing from `source` and processing into `sinks`. `stop` lets the caller's
    /// source (e.g. a reconnecting camera) share the shutdown signal.
    pub fn start(
        source: Box<dyn FrameSource>,
        detector: Arc<dyn Detector>,
        config: PipelineConfig,
        sinks: Dispatcher,
        stop: Arc<StopSignal>,
    ) -> std::io::Result<Self> {
        let queue = Arc::new(FrameQueue::new(config.queue_depth));
        let deadline = config.deadline;
        let metrics = Arc::new(Metrics::default());
        metrics.set_source(source.describe(), true, false);
        let capture = {
            let (queue, metrics, stop, config) = (queue.clone(), metrics.clone(), stop.clone(), config.clone());
            std::thread::Builder::new()
                .name("veil-capture".into())
                .spawn(move || capture_loop(source, &queue, &metrics, &stop, &config))?
        };
        let (output_tx, output_rx) = std::sync::mpsc::sync_channel::<Masked>(1);
        let output = {
            let metrics = metrics.clone();
            let (deadline, quality) = (config.deadline, config.jpeg_quality);
            std::thread::Builder::new()
                .name("veil-output".into())
                .spawn(move || output_loop(output_rx, sinks, &metrics, deadline, quality))?
        };
        let worker = {
            let (queue, metrics, stop) = (queue.clone(), metrics.clone(), stop.clone());
            let worker = Worker {
                stage: DetectStage::new(detector, config.max_hung_detectors),
                tracker: Tracker::new(config.tracker.clone()),
                config,
                output: output_tx,
                metrics,
                last_size: None,
            };
            std::thread::Builder::new().name("veil-pipeline".into()).spawn(move || worker.run(&queue, &stop))?
        };
        Ok(Self { stop, queue, metrics, capture: Some(capture), worker: Some(worker), output: Some(output), deadline })
    }

    /// The per-frame deadline: the longest a healthy worker spends on one frame.
    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// Whether a finite source has been fully processed.
    pub fn is_finished(&self) -> bool {
        self.output.as_ref().is_none_or(|w| w.is_finished())
    }

    /// Wait until a finite source is exhausted and every frame processed.
    pub fn wait(mut self) {
        self.join();
    }

    /// Stop capturing, discard waiting frames, finish the frame in hand, flush the sinks.
    pub fn shutdown(mut self) {
        self.stop.stop();
        let discarded = self.queue.close_and_clear();
        self.metrics.dropped(DropCause::Shutdown, discarded as u64);
        self.join();
    }

    fn join(&mut self) {
        for handle in [self.capture.take(), self.worker.take(), self.output.take()].into_iter().flatten() {
            if let Err(p) = handle.join() {
                tracing::error!("pipeline thread panicked: {}", panic_message(p.as_ref()));
            }
        }
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        if self.capture.is_some() || self.worker.is_some() || self.output.is_some() {
            self.stop.stop();
            self.queue.close_and_clear();
            self.join();
        }
    }
}

fn capture_loop(
    mut source: Box<dyn FrameSource>,
    queue: &FrameQueue,
    metrics: &Metrics,
    stop: &StopSignal,
    config: &PipelineConfig,
) {
    let mut next_tick = Instant::now();
    let mut consecutive_errors = 0u32;
    let mut skipped_seen = 0u64;
    while !stop.is_stopped() {
        if !config.capture.is_on() {
            pause_capture(source.as_mut(), metrics, stop, &config.capture);
            next_tick = Instant::now();
            continue;
        }
        if let Some(pace) = config.pace {
            let now = Instant::now();
            if next_tick > now {
                stop.sleep(next_tick - now);
            }
            next_tick = next_tick.max(now) + pace;
        }
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| source.next_frame()));
        match result {
            Ok(Ok(Some(frame))) => {
                consecutive_errors = 0;
                metrics.frame_captured();
                let item = Queued { frame, captured: Instant::now() };
                let pushed = match config.backpressure {
                    Backpressure::DropOldest => queue.push_dropping_oldest(item).map(|dropped| {
                        if dropped.is_some() {
                            metrics.dropped(DropCause::QueueFull, 1);
                        }
                    }),
                    Backpressure::Block => queue.push_blocking(item),
                };
                if pushed.is_err() {
                    metrics.dropped(DropCause::Shutdown, 1); // closed: shutting down
                    break;
                }
                let skipped = source.skipped_frames();
                if skipped > skipped_seen {
                    metrics.dropped(DropCause::CameraSkipped, skipped - skipped_seen);
                    skipped_seen = skipped;
                }
                metrics.set_queue_depth(queue.depth());
            }
            Ok(Ok(None)) => {
                tracing::info!("source finished: {}", source.describe());
                metrics.set_source(source.describe(), false, true);
                queue.close();
                return;
            }
            Ok(Err(e)) => {
                consecutive_errors += 1;
                if consecutive_errors <= 3 || consecutive_errors.is_power_of_two() {
                    tracing::warn!("source: {e} ({consecutive_errors} in a row)");
                }
                metrics.source_error(e.to_string());
                metrics.set_source(source.describe(), true, false);
                // Reconnecting sources back off themselves; this only stops a busy loop.
                stop.sleep(Duration::from_millis(20));
            }
            Err(p) => {
                let msg = panic_message(p.as_ref());
                tracing::error!("source panicked: {msg}; capture stops");
                metrics.source_error(format!("source panicked: {msg}"));
                metrics.set_source(source.describe(), false, true);
                queue.close();
                return;
            }
        }
    }
    metrics.set_source(source.describe(), false, false);
}

/// Let go of the device and wait until capture is switched back on (or the pipeline stops).
fn pause_capture(source: &mut dyn FrameSource, metrics: &Metrics, stop: &StopSignal, switch: &CaptureSwitch) {
    source.release();
    tracing::info!("capture paused by {}", switch.holders().join(", "));
    metrics.set_source(format!("{} (paused)", source.describe()), false, false);
    while !stop.is_stopped() && !switch.wait_on(Duration::from_millis(200)) {}
    if !stop.is_stopped() {
        tracing::info!("capture resumed");
        metrics.set_source(source.describe(), true, false);
    }
}

struct Worker {
    stage: DetectStage,
    tracker: Tracker,
    config: PipelineConfig,
    output: SyncSender<Masked>,
    metrics: Arc<Metrics>,
    last_size: Option<(u32, u32)>,
}

/// A frame that must not be output, and why.
struct Dropped(DropCause, String);

/// A masked frame on its way to encoding and the sinks.
struct Masked {
    frame_id: u64,
    timestamp: SystemTime,
    width: u32,
    height: u32,
    pixels: Vec<u8>,
    objects: Vec<EventObject>,
    zones: usize,
    queue_ms: f64,
    inference_ms: f64,
    mask_ms: f64,
    /// When the frame's deadline started.
    clock: Instant,
}

fn log_drop(metrics: &Metrics, id: u64, Dropped(cause, why): Dropped) {
    metrics.dropped(cause, 1);
    tracing::warn!(frame = id, cause = cause.as_str(), "frame dropped, nothing output: {why}");
}

impl Worker {
    fn run(mut self, queue: &FrameQueue, stop: &StopSignal) {
        loop {
            self.metrics.worker_alive();
            match queue.pop(Duration::from_millis(200)) {
                Ok(Some(item)) => {
                    self.metrics.set_queue_depth(queue.depth());
                    let id = item.frame.sequence;
                    match self.process(item) {
                        Ok(masked) => {
                            // Blocks while the output stage is busy: the queue then sheds input frames.
                            if self.output.send(masked).is_err() {
                                break;
                            }
                        }
                        Err(dropped) => log_drop(&self.metrics, id, dropped),
                    }
                }
                Ok(None) => break,
                Err(()) if stop.is_stopped() => break,
                Err(()) => {}
            }
        }
        // Dropping `output` ends the output stage once it has published what it holds.
    }

    fn process(&mut self, item: Queued) -> Result<Masked, Dropped> {
        let Queued { frame, captured } = item;
        let deadline = self.config.deadline;
        let queue_ms = captured.elapsed().as_secs_f64() * 1000.0;
        // Live frames age from capture; a replay (which waits for room instead of dropping)
        // starts the clock when processing starts, so queueing alone never drops a frame.
        let clock = match self.config.backpressure {
            Backpressure::DropOldest => captured,
            Backpressure::Block => Instant::now(),
        };
        let remaining = deadline
            .checked_sub(clock.elapsed())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| Dropped(DropCause::Deadline, "waited past the deadline in the queue".into()))?;
        let (width, height) = (frame.width, frame.height);
        if self.last_size.is_some_and(|s| s != (width, height)) {
            // A different picture (a replayed folder of unrelated photos): tracks do not carry over.
            self.tracker.reset();
        }
        self.last_size = Some((width, height));
        let rgb = Arc::new(frame.rgb);
        let tuning = self.config.tuning.get();
        let detected = self.stage.detect(rgb.clone(), width, height, tuning.params, remaining).map_err(|f| {
            let cause = match f {
                StageFailure::Timeout => DropCause::Deadline,
                StageFailure::Panic(_) => DropCause::DetectorPanic,
                StageFailure::Error(_) | StageFailure::Broken => DropCause::DetectorError,
            };
            Dropped(cause, f.to_string())
        })?;
        if let Some(bad) = detected.detections.iter().find(|d| {
            let b = d.bbox;
            ![b.x1, b.y1, b.x2, b.y2, d.score].iter().all(|v| v.is_finite())
        }) {
            return Err(Dropped(DropCause::DetectorError, format!("detector returned a non-finite box {:?}", bad.bbox)));
        }
        let t = detected.timings;
        let inference_ms = t.preprocess_ms + t.inference_ms + t.postprocess_ms;
        let mut pixels = Arc::try_unwrap(rgb).unwrap_or_else(|shared| (*shared).clone());

        let hook = self.config.fault_hook.clone();
        let masked = std::panic::catch_unwind(AssertUnwindSafe(|| {
            if let Some(hook) = &hook {
                hook(frame.sequence);
            }
            let masks = self.tracker.update(&detected.detections);
            let t = Instant::now();
            let zones = mask_frame(&mut pixels, width, height, &masks, &self.config.zones, &tuning.style)?;
            Ok::<_, String>((masks, zones, t.elapsed().as_secs_f64() * 1000.0))
        }));
        let (masks, zones, mask_ms) = match masked {
            Ok(Ok(done)) => done,
            Ok(Err(e)) => return Err(Dropped(DropCause::StagePanic, e)),
            Err(p) => {
                // The tracker may be half-updated: start it afresh.
                self.tracker = Tracker::new(self.config.tracker.clone());
                return Err(Dropped(DropCause::StagePanic, format!("masking stage panicked: {}", panic_message(p.as_ref()))));
            }
        };
        self.metrics.set_live_tracks(self.tracker.live_tracks());
        Ok(Masked {
            frame_id: frame.sequence,
            timestamp: frame.timestamp,
            width,
            height,
            pixels,
            objects: masks.iter().map(|m| event_object(m, width, height)).collect(),
            zones,
            queue_ms,
            inference_ms,
            mask_ms,
            clock,
        })
    }
}

/// Encode each masked frame and publish it to the sinks, on its own thread so the next frame's
/// detection overlaps this one's encoding.
fn output_loop(rx: Receiver<Masked>, mut sinks: Dispatcher, metrics: &Metrics, deadline: Duration, quality: u8) {
    for m in rx {
        let id = m.frame_id;
        let encoded = std::panic::catch_unwind(AssertUnwindSafe(|| {
            let t = Instant::now();
            let mut jpeg = Vec::with_capacity(m.pixels.len() / 8);
            JpegEncoder::new_with_quality(&mut jpeg, quality)
                .encode(&m.pixels, m.width, m.height, image::ExtendedColorType::Rgb8)
                .map(|()| (jpeg, t.elapsed().as_secs_f64() * 1000.0))
                .map_err(|e| format!("JPEG encoding: {e}"))
        }));
        let (jpeg, encode_ms) = match encoded {
            Ok(Ok(done)) => done,
            Ok(Err(e)) => {
                log_drop(metrics, id, Dropped(DropCause::StagePanic, e));
                continue;
            }
            Err(p) => {
                let why = format!("encoding panicked: {}", panic_message(p.as_ref()));
                log_drop(metrics, id, Dropped(DropCause::StagePanic, why));
                continue;
            }
        };
        let total = m.clock.elapsed();
        if total > deadline {
            log_drop(metrics, id, Dropped(DropCause::Deadline, format!("redacted after {total:?}, past the deadline")));
            continue;
        }
        let total_ms = total.as_secs_f64() * 1000.0;
        let event = FrameEvent {
            frame_id: id,
            timestamp_ms: m.timestamp.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0),
            width: m.width,
            height: m.height,
            objects: m.objects,
            zones: m.zones,
            timings: EventTimings {
                queue_ms: m.queue_ms,
                inference_ms: m.inference_ms,
                mask_ms: m.mask_ms,
                encode_ms,
                total_ms,
            },
        };
        let failed = sinks.publish(&RedactedFrame::new(event, jpeg));
        for _ in 0..failed {
            metrics.sink_error();
        }
        metrics.frame_output(m.inference_ms, total_ms);
    }
    // Dropping the dispatcher flushes the sinks (the spool writes what it holds).
}

/// Mask tracked boxes and privacy zones in place; returns the number of zones drawn.
fn mask_frame(
    pixels: &mut [u8],
    width: u32,
    height: u32,
    masks: &[MaskBox],
    zones: &[Vec<(f32, f32)>],
    style: &MaskStyle,
) -> Result<usize, String> {
    let mut frame = RgbFrame::new(pixels, width, height).map_err(|e| format!("frame buffer: {e}"))?;
    crate::redaction::mask_boxes(&mut frame, masks.iter().map(|m| (m.category, m.bbox)), style);
    let mut drawn = 0;
    for zone in zones {
        let points: Vec<(f32, f32)> = zone.iter().map(|&(x, y)| (x * width as f32, y * height as f32)).collect();
        if veil_redact::redact_polygon(&mut frame, &points, style) {
            drawn += 1;
        }
    }
    Ok(drawn)
}

fn event_object(m: &MaskBox, width: u32, height: u32) -> EventObject {
    let nx = |v: f32| (v / width as f32).clamp(0.0, 1.0);
    let ny = |v: f32| (v / height as f32).clamp(0.0, 1.0);
    EventObject {
        category: m.category.as_str(),
        track_id: m.track_id,
        bbox: [nx(m.bbox.x1), ny(m.bbox.y1), nx(m.bbox.x2), ny(m.bbox.y2)],
        score: m.score,
        detected: m.missed == 0,
    }
}
