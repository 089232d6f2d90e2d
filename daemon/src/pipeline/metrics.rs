//! Pipeline counters and latency windows for telemetry: fps in and out, frames dropped by cause,
//! inference and end-to-end latency p50/p95, queue depth.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

/// Why a frame produced no output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropCause {
    /// Detection slower than capture: the oldest waiting frame made room.
    QueueFull,
    DetectorError,
    DetectorPanic,
    /// Not redacted within the deadline (detector hung or too slow).
    Deadline,
    /// A panic after detection (tracking, masking, encoding).
    StagePanic,
    /// Frames the camera driver numbered but never delivered.
    CameraSkipped,
    /// Shut down while the frame waited.
    Shutdown,
}

const CAUSES: usize = 7;

impl DropCause {
    fn index(self) -> usize {
        self as usize
    }
    /// The cause as counters and logs name it.
    pub fn as_str(self) -> &'static str {
        Self::name(self.index())
    }
    fn name(i: usize) -> &'static str {
        ["queue_full", "detector_error", "detector_panic", "deadline", "stage_panic", "camera_skipped", "shutdown"][i]
    }
}

struct Window {
    samples: VecDeque<f64>,
}

impl Window {
    const SIZE: usize = 512;
    fn push(&mut self, v: f64) {
        if self.samples.len() == Self::SIZE {
            self.samples.pop_front();
        }
        self.samples.push_back(v);
    }
    fn percentiles(&self) -> Option<Percentiles> {
        if self.samples.is_empty() {
            return None;
        }
        let mut v: Vec<f64> = self.samples.iter().copied().collect();
        v.sort_by(|a, b| a.total_cmp(b));
        let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
        Some(Percentiles { p50: at(0.5), p95: at(0.95), samples: v.len() })
    }
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Percentiles {
    pub p50: f64,
    pub p95: f64,
    pub samples: usize,
}

struct Rate {
    times: VecDeque<Instant>,
}

impl Rate {
    fn tick(&mut self, now: Instant) {
        self.times.push_back(now);
        while self.times.front().is_some_and(|t| now.duration_since(*t) > Duration::from_secs(5)) {
            self.times.pop_front();
        }
    }
    fn per_second(&self, now: Instant) -> f64 {
        let recent: Vec<&Instant> =
            self.times.iter().filter(|t| now.duration_since(**t) <= Duration::from_secs(5)).collect();
        match (recent.first(), recent.last()) {
            (Some(a), Some(b)) if recent.len() > 1 && *b > *a => (recent.len() - 1) as f64 / b.duration_since(**a).as_secs_f64(),
            _ => 0.0,
        }
    }
}

pub struct Metrics {
    started: Instant,
    captured: AtomicU64,
    output: AtomicU64,
    source_errors: AtomicU64,
    sink_errors: AtomicU64,
    dropped: [AtomicU64; CAUSES],
    queue_depth: AtomicUsize,
    live_tracks: AtomicUsize,
    inference: Mutex<Window>,
    end_to_end: Mutex<Window>,
    rate_in: Mutex<Rate>,
    rate_out: Mutex<Rate>,
    state: Mutex<SourceState>,
    /// When the detection worker last went round its loop, in ms since `started`.
    worker_beat_ms: AtomicU64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct SourceState {
    pub description: String,
    pub running: bool,
    pub finished: bool,
    pub last_error: Option<String>,
}

/// A point-in-time copy for the API and telemetry.
#[derive(Debug, Clone, Serialize)]
pub struct MetricsSnapshot {
    pub uptime_s: f64,
    pub source: SourceState,
    pub frames_in: u64,
    pub frames_out: u64,
    pub fps_in: f64,
    pub fps_out: f64,
    pub dropped: std::collections::BTreeMap<&'static str, u64>,
    pub dropped_total: u64,
    pub source_errors: u64,
    pub sink_errors: u64,
    pub queue_depth: usize,
    pub live_tracks: usize,
    pub inference_ms: Option<Percentiles>,
    pub end_to_end_ms: Option<Percentiles>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            captured: AtomicU64::new(0),
            output: AtomicU64::new(0),
            source_errors: AtomicU64::new(0),
            sink_errors: AtomicU64::new(0),
            dropped: Default::default(),
            queue_depth: AtomicUsize::new(0),
            live_tracks: AtomicUsize::new(0),
            inference: Mutex::new(Window { samples: VecDeque::new() }),
            end_to_end: Mutex::new(Window { samples: VecDeque::new() }),
            rate_in: Mutex::new(Rate { times: VecDeque::new() }),
            rate_out: Mutex::new(Rate { times: VecDeque::new() }),
            state: Mutex::new(SourceState::default()),
            worker_beat_ms: AtomicU64::new(0),
        }
    }
}

impl Metrics {
    /// The detection worker is alive (called every time round its loop, at least every 200 ms
    /// while it is not inside a frame).
    pub fn worker_alive(&self) {
        self.worker_beat_ms.store(self.started.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// How long the detection worker has not been round its loop.
    pub fn worker_silence(&self) -> Duration {
        let beat = Duration::from_millis(self.worker_beat_ms.load(Ordering::Relaxed));
        self.started.elapsed().saturating_sub(beat)
    }

    pub fn frame_captured(&self) {
        self.captured.fetch_add(1, Ordering::Relaxed);
        lock(&self.rate_in).tick(Instant::now());
    }

    pub fn frame_output(&self, inference_ms: f64, end_to_end_ms: f64) {
        self.output.fetch_add(1, Ordering::Relaxed);
        lock(&self.rate_out).tick(Instant::now());
        lock(&self.inference).push(inference_ms);
        lock(&self.end_to_end).push(end_to_end_ms);
    }

    pub fn dropped(&self, cause: DropCause, frames: u64) {
        self.dropped[cause.index()].fetch_add(frames, Ordering::Relaxed);
    }

    pub fn dropped_count(&self, cause: DropCause) -> u64 {
        self.dropped[cause.index()].load(Ordering::Relaxed)
    }

    pub fn frames_out(&self) -> u64 {
        self.output.load(Ordering::Relaxed)
    }

    pub fn source_error(&self, message: String) {
        self.source_errors.fetch_add(1, Ordering::Relaxed);
        lock(&self.state).last_error = Some(message);
    }

    pub fn sink_error(&self) {
        self.sink_errors.fetch_add(1, Ordering::Relaxed);
    }

    pub fn set_queue_depth(&self, depth: usize) {
        self.queue_depth.store(depth, Ordering::Relaxed);
    }

    pub fn set_live_tracks(&self, n: usize) {
        self.live_tracks.store(n, Ordering::Relaxed);
    }

    pub fn set_source(&self, description: String, running: bool, finished: bool) {
        let mut s = lock(&self.state);
        s.description = description;
        s.running = running;
        s.finished = finished;
    }

    pub fn snapshot(&self) -> MetricsSnapshot {
        let now = Instant::now();
        let dropped: std::collections::BTreeMap<&'static str, u64> =
            (0..CAUSES).map(|i| (DropCause::name(i), self.dropped[i].load(Ordering::Relaxed))).collect();
        MetricsSnapshot {
            uptime_s: self.started.elapsed().as_secs_f64(),
            source: lock(&self.state).clone(),
            frames_in: self.captured.load(Ordering::Relaxed),
            frames_out: self.output.load(Ordering::Relaxed),
            fps_in: lock(&self.rate_in).per_second(now),
            fps_out: lock(&self.rate_out).per_second(now),
            dropped_total: dropped.values().sum(),
            dropped,
            source_errors: self.source_errors.load(Ordering::Relaxed),
            sink_errors: self.sink_errors.load(Ordering::Relaxed),
            queue_depth: self.queue_depth.load(Ordering::Relaxed),
            live_tracks: self.live_tracks.load(Ordering::Relaxed),
            inference_ms: lock(&self.inference).percentiles(),
            end_to_end_ms: lock(&self.end_to_end).percentiles(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_drop_counts() {
        let m = Metrics::default();
        for i in 1..=100 {
            m.frame_output(i as f64, 2.0 * i as f64);
        }
        m.dropped(DropCause::QueueFull, 3);
        m.dropped(DropCause::Deadline, 1);
        let s = m.snapshot();
        assert_eq!(s.frames_out, 100);
        let inf = s.inference_ms.unwrap();
        assert_eq!((inf.p50.round(), inf.p95.round()), (51.0, 95.0));
        assert_eq!(s.end_to_end_ms.unwrap().p95.round(), 190.0);
        assert_eq!((s.dropped["queue_full"], s.dropped["deadline"], s.dropped_total), (3, 1, 4));
    }
}
