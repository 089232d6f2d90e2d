//! The camera pipeline: a capture thread fills a bounded queue; detection lanes (one or more,
//! each on its own frame, on a deadline) detect; a sequencer puts their results back into
//! capture order, tracks and masks faces, plates and privacy zones; an output thread encodes the
//! masked frame and hands it to the sinks.
//! Fail closed: a frame whose detection errors, panics or times out, or whose masking panics,
//! produces no output at all; it is counted and logged.

pub mod controls;
pub mod detect_stage;
pub mod flicker;
pub mod frame_jpeg;
pub mod frame_queue;
pub mod metrics;
pub mod output;
pub mod tracker;

#[cfg(test)]
mod tests;

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, SyncSender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use veil_camera::FrameSource;
use veil_models::{Category, CategorySet, DetectParams, Detection, Detector};
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
    /// Detection workers, each on its own frame (frames re-enter capture order before the
    /// tracker).
    pub detect_workers: usize,
    /// Licence plates and text are looked for in every Nth frame (`on_plate_beat`); the tracker
    /// carries their masks between (1 = every frame).
    pub plates_every: u32,
    /// The plate detector's input long side (`None`: the detector's default).
    pub plate_long_side: Option<u32>,
    /// The plate detector's band rows (`None`: one pass, or what the tuning says).
    pub plate_band_rows: Option<u32>,
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
            detect_workers: 1,
            plates_every: 1,
            plate_long_side: None,
            plate_band_rows: None,
        }
    }
}

/// Categories the camera looks for only in every `plates_every`th frame, the tracker carrying
/// their masks between: the ones found by the text detector's network (plates and lines of
/// text), which costs several times the face detector and whose finds move predictably.
pub fn on_plate_beat(category: Category) -> bool {
    matches!(category, Category::LicensePlate | Category::Text)
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
    /// The detection lanes and the sequencer.
    workers: Vec<JoinHandle<()>>,
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
        // Detection lanes, each with its own deadline-guarded detection thread, feed the
        // sequencer, which restores capture order before the tracker.
        let lanes = config.detect_workers.max(1);
        let window = Arc::new(Window::new(2 * lanes as u64 + config.plates_every.max(1) as u64));
        let (results_tx, results_rx) = std::sync::mpsc::channel();
        let mut workers = Vec::with_capacity(lanes + 1);
        let categories: CategorySet = detector.info().categories.iter().copied().collect();
        for i in 0..lanes {
            let lane = Lane {
                stage: DetectStage::new(detector.clone(), config.max_hung_detectors),
                config: config.clone(),
                metrics: metrics.clone(),
                categories,
                results: results_tx.clone(),
            };
            let (queue, window, stop) = (queue.clone(), window.clone(), stop.clone());
            workers.push(
                std::thread::Builder::new()
                    .name(format!("veil-lane-{i}"))
                    .spawn(move || lane.run(&queue, &window, &stop))?,
            );
        }
        drop(results_tx);
        let sequencer = Sequencer {
            tracker: Tracker::new(config.tracker.clone()),
            config,
            output: output_tx,
            metrics: metrics.clone(),
            last_size: None,
        };
        workers.push(
            std::thread::Builder::new().name("veil-pipeline".into()).spawn(move || sequencer.run(results_rx, &window))?,
        );
        Ok(Self { stop, queue, metrics, capture: Some(capture), workers, output: Some(output), deadline })
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
        let workers = std::mem::take(&mut self.workers);
        for handle in self.capture.take().into_iter().chain(workers).chain(self.output.take()) {
            if let Err(p) = handle.join() {
                tracing::error!("pipeline thread panicked: {}", panic_message(p.as_ref()));
            }
        }
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        if self.capture.is_some() || !self.workers.is_empty() || self.output.is_some() {
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

/// Holds detection workers back while the sequencer is too far behind them: at most `size`
/// tickets may be out between the queue and the sequencer (bounding the reorder buffer).
struct Window {
    size: u64,
    /// (tickets sequenced, whether the sequencer has gone)
    state: Mutex<(u64, bool)>,
    cond: Condvar,
}

/// What a detection worker may do next.
#[derive(PartialEq)]
enum Room {
    Free,
    Full,
    Closed,
}

impl Window {
    fn new(size: u64) -> Self {
        Self { size: size.max(1), state: Mutex::new((0, false)), cond: Condvar::new() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (u64, bool)> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wait (at most `timeout`) until the frame after `taken` tickets fits in the window.
    fn wait_for_room(&self, taken: u64, timeout: Duration) -> Room {
        let guard = self.lock();
        let (guard, _) = self
            .cond
            .wait_timeout_while(guard, timeout, |(done, closed)| !*closed && taken >= *done + self.size)
            .unwrap_or_else(|p| p.into_inner());
        match *guard {
            (_, true) => Room::Closed,
            (done, false) if taken < done + self.size => Room::Free,
            _ => Room::Full,
        }
    }

    fn advance(&self, sequenced: u64) {
        self.lock().0 = sequenced;
        self.cond.notify_all();
    }

    /// The sequencer has gone: nothing more will be taken.
    fn close(&self) {
        self.lock().1 = true;
        self.cond.notify_all();
    }
}

/// One detection worker: takes frames off the queue, detects on its own deadline-guarded
/// thread, and hands the outcome to the sequencer under the frame's ticket.
struct Lane {
    stage: DetectStage,
    config: PipelineConfig,
    metrics: Arc<Metrics>,
    /// What the detector can find (the categories a frame looks for when the tuning says all).
    categories: CategorySet,
    results: Sender<(u64, Result<Detected, (u64, Dropped)>)>,
}

/// A frame that must not be output, and why.
struct Dropped(DropCause, String);

/// A detected frame on its way to the sequencer (tracker and masking, in capture order).
struct Detected {
    frame_id: u64,
    timestamp: SystemTime,
    width: u32,
    height: u32,
    rgb: Arc<Vec<u8>>,
    detections: Vec<Detection>,
    /// The categories this frame's detection looked for.
    looked_for: CategorySet,
    style: MaskStyle,
    queue_ms: f64,
    inference_ms: f64,
    clock: Instant,
}

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
    /// When its processing started (capture for a live frame): end-to-end latency counts
    /// from here.
    started: Instant,
}

fn log_drop(metrics: &Metrics, id: u64, Dropped(cause, why): Dropped) {
    metrics.dropped(cause, 1);
    tracing::warn!(frame = id, cause = cause.as_str(), "frame dropped, nothing output: {why}");
}

impl Lane {
    fn run(mut self, queue: &FrameQueue, window: &Window, stop: &StopSignal) {
        loop {
            match window.wait_for_room(queue.taken(), Duration::from_millis(200)) {
                Room::Free => {}
                Room::Closed => break,
                Room::Full if stop.is_stopped() => break,
                Room::Full => continue,
            }
            match queue.pop_ticketed(Duration::from_millis(200)) {
                Ok(Some((ticket, item))) => {
                    self.metrics.set_queue_depth(queue.depth());
                    let id = item.frame.sequence;
                    // Whatever happens, the sequencer hears about this ticket: it waits for it.
                    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| self.detect(ticket, item)))
                        .unwrap_or_else(|p| {
                            let why = format!("detection worker panicked: {}", panic_message(p.as_ref()));
                            Err(Dropped(DropCause::DetectorPanic, why))
                        });
                    if self.results.send((ticket, outcome.map_err(|d| (id, d)))).is_err() {
                        break;
                    }
                }
                Ok(None) => break,
                Err(()) if stop.is_stopped() => break,
                Err(()) => {}
            }
        }
    }

    /// The categories frame `ticket` looks for: everything asked, except that categories on a
    /// slower beat (plates and text, `plates_every`) are left out of the frames between their turns
    /// while the tracker carries their masks (never when it is off, or when nothing else is left).
    fn looked_for(&self, ticket: u64, params: &DetectParams) -> CategorySet {
        let asked = params.categories.unwrap_or(self.categories);
        let every = self.config.plates_every.max(1) as u64;
        if every == 1 || ticket % every == 0 || !self.config.tracker.enabled {
            return asked;
        }
        let rest: CategorySet = asked.iter().filter(|c| !on_plate_beat(*c)).collect();
        if rest.is_empty() {
            asked
        } else {
            rest
        }
    }

    fn detect(&mut self, ticket: u64, item: Queued) -> Result<Detected, Dropped> {
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
        let rgb = Arc::new(frame.rgb);
        let tuning = self.config.tuning.get();
        let looked_for = self.looked_for(ticket, &tuning.params);
        let params = DetectParams {
            categories: Some(looked_for),
            plate_long_side: self.config.plate_long_side.or(tuning.params.plate_long_side),
            plate_band_rows: self.config.plate_band_rows.or(tuning.params.plate_band_rows),
            ..tuning.params
        };
        let detected = self.stage.detect(rgb.clone(), width, height, params, remaining).map_err(|f| {
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
        Ok(Detected {
            frame_id: frame.sequence,
            timestamp: frame.timestamp,
            width,
            height,
            rgb,
            detections: detected.detections,
            looked_for,
            style: tuning.style,
            queue_ms,
            inference_ms: t.preprocess_ms + t.inference_ms + t.postprocess_ms,
            clock,
        })
    }
}

/// Puts the lanes' results back into capture order, then tracks and masks each frame.
struct Sequencer {
    tracker: Tracker,
    config: PipelineConfig,
    output: SyncSender<Masked>,
    metrics: Arc<Metrics>,
    last_size: Option<(u32, u32)>,
}

impl Sequencer {
    fn run(self, results: Receiver<(u64, Result<Detected, (u64, Dropped)>)>, window: &Window) {
        self.sequence(results, window);
        window.close();
    }

    fn sequence(mut self, results: Receiver<(u64, Result<Detected, (u64, Dropped)>)>, window: &Window) {
        let mut pending = std::collections::BTreeMap::new();
        let mut next = 0u64;
        loop {
            // The watchdog's heartbeat: this loop turns at least every 200 ms unless a frame's
            // masking is stuck.
            self.metrics.worker_alive();
            match results.recv_timeout(Duration::from_millis(200)) {
                Ok((ticket, outcome)) => {
                    pending.insert(ticket, outcome);
                }
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => break,
            }
            while let Some(outcome) = pending.remove(&next) {
                next += 1;
                if !self.finish(outcome) {
                    return;
                }
                window.advance(next);
            }
        }
        // Every lane has gone: what is left is in order (a missing ticket was never detected).
        for (_, outcome) in std::mem::take(&mut pending) {
            if !self.finish(outcome) {
                return;
            }
        }
        // Dropping `output` ends the output stage once it has published what it holds.
    }

    /// Track and mask one frame, or count its drop; `false` once the output stage is gone.
    fn finish(&mut self, outcome: Result<Detected, (u64, Dropped)>) -> bool {
        match outcome.and_then(|d| {
            let id = d.frame_id;
            self.mask(d).map_err(|dropped| (id, dropped))
        }) {
            // Blocks while the output stage is busy: the lanes and then the queue wait, and a
            // live queue sheds input frames.
            Ok(masked) => self.output.send(masked).is_ok(),
            Err((id, dropped)) => {
                log_drop(&self.metrics, id, dropped);
                true
            }
        }
    }

    fn mask(&mut self, d: Detected) -> Result<Masked, Dropped> {
        let (width, height) = (d.width, d.height);
        // A replay's frame held here behind a slower worker's earlier frame has already had its
        // detection deadline; from here the clock covers masking and encoding. A live frame's
        // clock keeps running from capture.
        let clock = match self.config.backpressure {
            Backpressure::DropOldest => d.clock,
            Backpressure::Block => Instant::now(),
        };
        if self.last_size.is_some_and(|s| s != (width, height)) {
            // A different picture (a replayed folder of unrelated photos): tracks do not carry over.
            self.tracker.reset();
        }
        self.last_size = Some((width, height));
        let mut pixels = Arc::try_unwrap(d.rgb).unwrap_or_else(|shared| (*shared).clone());
        let hook = self.config.fault_hook.clone();
        let max_carried = 2 * self.config.plates_every.max(1);
        let masked = std::panic::catch_unwind(AssertUnwindSafe(|| {
            if let Some(hook) = &hook {
                hook(d.frame_id);
            }
            let masks = self.tracker.update_looking_for(&d.detections, Some(d.looked_for), max_carried);
            let t = Instant::now();
            let zones = mask_frame(&mut pixels, width, height, &masks, &self.config.zones, &d.style)?;
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
            frame_id: d.frame_id,
            timestamp: d.timestamp,
            width,
            height,
            pixels,
            objects: masks.iter().map(|m| event_object(m, width, height)).collect(),
            zones,
            queue_ms: d.queue_ms,
            inference_ms: d.inference_ms,
            mask_ms,
            clock,
            started: d.clock,
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
            frame_jpeg::encode(&m.pixels, m.width, m.height, quality).map(|jpeg| (jpeg, t.elapsed().as_secs_f64() * 1000.0))
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
        let total_ms = m.started.elapsed().as_secs_f64() * 1000.0;
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
