//! `veil bench --flicker DIR`: on a real image sequence, how many face-frames the detector misses
//! between detections of the same face, and how many of those stay unmasked with and without
//! the tracker (see `pipeline::flicker`).

use std::path::{Path, PathBuf};

use serde::Serialize;
use veil_models::{BBox, DetectParams, Detector, RgbImage};

use crate::pipeline::flicker::{self, FlickerReport};
use crate::pipeline::tracker::{Tracker, TrackerConfig};

#[derive(Debug, Serialize)]
pub struct SequenceFlicker {
    pub sequence: String,
    pub frames_with_faces: usize,
    pub detections: usize,
    #[serde(flatten)]
    pub report: FlickerReport,
}

/// Largest gap (in frames) between two detections of one face that still counts as flicker.
pub const MAX_GAP: usize = 5;

fn frames_in(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().and_then(|e| e.to_str()).is_some_and(|e| ["png", "jpg", "jpeg"].contains(&e)))
        .collect();
    files.sort();
    if files.is_empty() {
        anyhow::bail!("{}: no PNG or JPEG frames", dir.display());
    }
    Ok(files)
}

/// Detect in every frame of `dir` (sorted by name), run the tracker, measure flicker.
pub fn measure_sequence(
    dir: &Path,
    detector: &dyn Detector,
    params: &DetectParams,
    tracker: &TrackerConfig,
) -> anyhow::Result<SequenceFlicker> {
    let mut detections: Vec<Vec<BBox>> = Vec::new();
    let mut masks = Vec::new();
    let mut tracker = Tracker::new(tracker.clone());
    for file in frames_in(dir)? {
        let img = image::open(&file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?.into_rgb8();
        let (w, h) = img.dimensions();
        let out = detector.detect(&RgbImage::new(img.as_raw(), w, h)?, params)?;
        masks.push(tracker.update(&out.detections));
        detections.push(out.detections.iter().map(|d| d.bbox).collect());
    }
    let report = flicker::measure(&detections, &masks, MAX_GAP);
    Ok(SequenceFlicker {
        sequence: dir.display().to_string(),
        frames_with_faces: detections.iter().filter(|d| !d.is_empty()).count(),
        detections: detections.iter().map(|d| d.len()).sum(),
        report,
    })
}
