//! `veil bench --pipeline`: the whole camera pipeline (queue, detection, tracker, masking, JPEG,
//! spool, preview, events) on a real photo at camera frame sizes. Two runs per size: a live
//! camera at 30 fps (input frames dropped when detection falls behind) and flat out (every
//! frame processed); the bare detector's median on the same frame is the same-run reference.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use image::imageops::FilterType;
use serde::Serialize;
use veil_camera::{Frame, FrameSource, SourceError};
use veil_models::{DetectParams, Detector, RgbImage};

use crate::pipeline::metrics::Percentiles;
use crate::pipeline::controls::{LiveTuning, Tuning};
use crate::pipeline::{Backpressure, Pipeline, PipelineConfig, StopSignal};
use veil_redact::MaskStyle;
use crate::sinks::events::EventStream;
use crate::sinks::preview::PreviewFeed;
use crate::sinks::spool::{SpoolLimits, SpoolSink};
use crate::sinks::Dispatcher;

/// The same photo over and over, like a camera pointed at a still scene.
struct RepeatedPhoto {
    rgb: Vec<u8>,
    width: u32,
    height: u32,
    sequence: u64,
    limit: u64,
}

impl FrameSource for RepeatedPhoto {
    fn describe(&self) -> String {
        format!("bench photo {}x{}", self.width, self.height)
    }
    fn next_frame(&mut self) -> Result<Option<Frame>, SourceError> {
        if self.sequence == self.limit {
            return Ok(None);
        }
        let frame = Frame {
            rgb: self.rgb.clone(),
            width: self.width,
            height: self.height,
            sequence: self.sequence,
            timestamp: SystemTime::now(),
        };
        self.sequence += 1;
        Ok(Some(frame))
    }
}

#[derive(Debug, Serialize)]
pub struct PipelineRun {
    pub size: String,
    /// `camera-30fps` or `flat-out`.
    pub mode: String,
    pub seconds: f64,
    pub frames_in: u64,
    pub frames_out: u64,
    pub dropped: u64,
    pub fps_out: f64,
    pub end_to_end_ms: Option<Percentiles>,
    pub detect_ms: Option<Percentiles>,
    /// The bare detector on the same frame, median (same run).
    pub reference_detect_ms: f64,
    /// fps_out x reference detect time: 1.0 means the pipeline adds nothing to detection.
    pub efficiency: f64,
}

fn run_once(
    detector: Arc<dyn Detector>,
    params: DetectParams,
    photo: &image::RgbImage,
    frames: u64,
    camera_fps: Option<u32>,
    spool_dir: &std::path::Path,
    workers: usize,
) -> anyhow::Result<(f64, crate::pipeline::metrics::MetricsSnapshot)> {
    let (width, height) = photo.dimensions();
    let source = RepeatedPhoto { rgb: photo.as_raw().clone(), width, height, sequence: 0, limit: frames };
    let mut sinks = Dispatcher::default();
    let limits = SpoolLimits { max_files: 50, max_bytes: 1 << 30, max_age: None, fsync: false };
    sinks.add(Box::new(SpoolSink::start(spool_dir, limits)?));
    let preview = PreviewFeed::default();
    sinks.add(preview.sink());
    let events = EventStream::new(64);
    sinks.add(events.sink());
    let config = PipelineConfig {
        backpressure: if camera_fps.is_some() { Backpressure::DropOldest } else { Backpressure::Block },
        pace: camera_fps.map(|f| Duration::from_secs_f64(1.0 / f as f64)),
        tuning: Arc::new(LiveTuning::new(Tuning { params, style: MaskStyle::default() })),
        deadline: Duration::from_secs(10),
        detect_workers: workers,
        ..PipelineConfig::default()
    };
    let t = Instant::now();
    let pipeline = Pipeline::start(Box::new(source), detector, config, sinks, Arc::new(StopSignal::default()))?;
    let metrics = pipeline.metrics();
    pipeline.wait();
    Ok((t.elapsed().as_secs_f64(), metrics.snapshot()))
}

pub fn run(
    detector: Arc<dyn Detector>,
    params: DetectParams,
    photo: &image::RgbImage,
    sizes: &[(u32, u32)],
    seconds: f64,
    workers: usize,
) -> anyhow::Result<Vec<PipelineRun>> {
    let spool = tempfile::tempdir()?;
    let mut runs = Vec::new();
    for &(w, h) in sizes {
        let frame = image::imageops::resize(photo, w, h, FilterType::Triangle);
        let mut reference = Vec::new();
        for i in 0..6 {
            let t = Instant::now();
            detector.detect(&RgbImage::new(frame.as_raw(), w, h)?, &params)?;
            if i > 0 {
                reference.push(t.elapsed().as_secs_f64() * 1000.0);
            }
        }
        reference.sort_by(f64::total_cmp);
        let reference_ms = reference[reference.len() / 2];
        for camera_fps in [Some(30u32), None] {
            let frames = match camera_fps {
                Some(f) => (seconds * f as f64) as u64,
                None => ((seconds * 1000.0 / reference_ms) as u64).max(5),
            };
            let (elapsed, snap) = run_once(detector.clone(), params, &frame, frames, camera_fps, spool.path(), workers)?;
            let fps_out = snap.frames_out as f64 / elapsed;
            runs.push(PipelineRun {
                size: format!("{w}x{h}"),
                mode: if camera_fps.is_some() { "camera-30fps".into() } else { "flat-out".into() },
                seconds: elapsed,
                frames_in: snap.frames_in,
                frames_out: snap.frames_out,
                dropped: snap.dropped_total,
                fps_out,
                end_to_end_ms: snap.end_to_end_ms,
                detect_ms: snap.inference_ms,
                reference_detect_ms: reference_ms,
                efficiency: fps_out * reference_ms / 1000.0,
            });
        }
    }
    Ok(runs)
}
