//! Flicker measurement: on an image sequence, counts the face-frames the detector misses between
//! detections of the same face shortly before and after, and how many of those stay unmasked
//! with and without the tracker.

use veil_models::BBox;

use super::tracker::MaskBox;

/// Result of [`measure`].
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct FlickerReport {
    pub frames: usize,
    /// Face-frames between two matching detections at most `max_gap` frames apart where the
    /// detector found nothing there.
    pub missed_face_frames: usize,
    /// Of those, frames left unmasked by raw per-frame detections (all of them, by definition).
    pub unmasked_without_tracker: usize,
    /// Of those, frames the tracker's masks did not cover.
    pub unmasked_with_tracker: usize,
}

fn interpolate(a: &BBox, b: &BBox, t: f32) -> BBox {
    let l = |p: f32, q: f32| p + (q - p) * t;
    BBox { x1: l(a.x1, b.x1), y1: l(a.y1, b.y1), x2: l(a.x2, b.x2), y2: l(a.y2, b.y2) }
}

/// Fraction of `face`'s area inside `mask`.
fn covered_fraction(face: &BBox, mask: &BBox) -> f32 {
    let iw = (face.x2.min(mask.x2) - face.x1.max(mask.x1)).max(0.0);
    let ih = (face.y2.min(mask.y2) - face.y1.max(mask.y1)).max(0.0);
    if face.area() <= 0.0 {
        return 1.0;
    }
    iw * ih / face.area()
}

/// Faces expected in frame `t` but not detected there: for each detection in an earlier frame
/// (at most `max_gap` back), a matching detection (IoU >= 0.3) in a later frame within `max_gap`
/// of it gives an interpolated box at `t`.
fn missed_faces(detections: &[Vec<BBox>], t: usize, max_gap: usize) -> Vec<BBox> {
    let mut found: Vec<BBox> = Vec::new();
    for a in t.saturating_sub(max_gap)..t {
        for before in &detections[a] {
            let last = (a + max_gap + 1).min(detections.len() - 1);
            'after: for b in t + 1..=last {
                for after in &detections[b] {
                    if before.iou(after) >= 0.3 {
                        let at = interpolate(before, after, (t - a) as f32 / (b - a) as f32);
                        let detected = detections[t].iter().any(|d| d.iou(&at) >= 0.3);
                        if !detected && !found.iter().any(|f| f.iou(&at) >= 0.3) {
                            found.push(at);
                        }
                        break 'after;
                    }
                }
            }
        }
    }
    found
}

/// `detections[t]` are the detector's boxes in frame `t`, `masks[t]` the tracker's output.
/// A face-frame counts as masked when one mask covers at least 90 % of it.
pub fn measure(detections: &[Vec<BBox>], masks: &[Vec<MaskBox>], max_gap: usize) -> FlickerReport {
    let mut report = FlickerReport { frames: detections.len(), ..FlickerReport::default() };
    for t in 1..detections.len().saturating_sub(1) {
        for face in missed_faces(detections, t, max_gap) {
            report.missed_face_frames += 1;
            if !detections[t].iter().any(|d| covered_fraction(&face, d) >= 0.9) {
                report.unmasked_without_tracker += 1;
            }
            if !masks[t].iter().any(|m| covered_fraction(&face, &m.bbox) >= 0.9) {
                report.unmasked_with_tracker += 1;
            }
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use veil_models::{Category, Detection};

    use super::*;
    use crate::pipeline::tracker::{Tracker, TrackerConfig};

    #[test]
    fn counts_gaps_and_the_tracker_fills_them() {
        let b = |x: f32| BBox { x1: x, y1: 10.0, x2: x + 30.0, y2: 40.0 };
        // One face moving right by 3 px a frame, missed in frames 3 and 4 and 7.
        let dets: Vec<Vec<BBox>> =
            (0..10).map(|t| if [3, 4, 7].contains(&t) { vec![] } else { vec![b(3.0 * t as f32)] }).collect();
        let mut tracker = Tracker::new(TrackerConfig::default());
        let masks: Vec<Vec<MaskBox>> = dets
            .iter()
            .map(|f| {
                let d: Vec<Detection> = f
                    .iter()
                    .map(|bbox| Detection { category: Category::Face, bbox: *bbox, score: 0.9, landmarks: None })
                    .collect();
                tracker.update(&d)
            })
            .collect();
        let r = measure(&dets, &masks, 4);
        assert_eq!((r.missed_face_frames, r.unmasked_without_tracker, r.unmasked_with_tracker), (3, 3, 0));
        let no_tracking: Vec<Vec<MaskBox>> = dets.iter().map(|_| vec![]).collect();
        assert_eq!(measure(&dets, &no_tracking, 4).unmasked_with_tracker, 3);
    }
}
