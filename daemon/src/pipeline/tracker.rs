//! Anti-flicker tracker: associates detections across frames and keeps masking a face for a few
//! frames after the detector loses it, with smoothed boxes grown on fast motion. It only ever adds
//! coverage: a matched face's mask is the union of the raw detection and the smoothed track.
//! Categories not looked for in a frame (plates, detected every Nth frame in the camera) are
//! carried: their tracks move on at their measured speed and are masked without counting a miss.

use veil_models::{BBox, Category, CategorySet, Detection};

/// Tuning of the tracker (`[tracker]` in the config).
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrackerConfig {
    pub enabled: bool,
    /// Frames a track is still masked after its last detection.
    pub hold_frames: u32,
    /// Minimum IoU between a track's predicted box and a detection to match them.
    pub min_iou: f32,
    /// Failing IoU, a detection whose centre is within this many track-box sizes still matches.
    pub max_center_jump: f32,
    /// Weight of a new detection in the smoothed box (1 = no smoothing).
    pub smoothing: f32,
    /// Each side grows by this many frames of motion (on top of padding).
    pub motion_margin: f32,
    /// Extra growth per missed frame, as a fraction of the box size (uncertainty while coasting).
    pub coast_growth: f32,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            hold_frames: 8,
            min_iou: 0.2,
            max_center_jump: 1.0,
            smoothing: 0.6,
            motion_margin: 1.5,
            coast_growth: 0.05,
        }
    }
}

impl TrackerConfig {
    pub fn validate(&self) -> Result<(), String> {
        let unit = |v: f32, name: &str| {
            if (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err(format!("tracker.{name} must be within 0..1, got {v}"))
            }
        };
        unit(self.min_iou, "min_iou")?;
        unit(self.smoothing, "smoothing")?;
        unit(self.coast_growth, "coast_growth")?;
        if !(0.0..=10.0).contains(&self.max_center_jump) || !(0.0..=10.0).contains(&self.motion_margin) {
            return Err("tracker.max_center_jump and tracker.motion_margin must be within 0..10".into());
        }
        if self.hold_frames > 1000 {
            return Err("tracker.hold_frames must be at most 1000".into());
        }
        Ok(())
    }
}

/// A box to mask in this frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MaskBox {
    pub track_id: u64,
    pub category: Category,
    pub bbox: BBox,
    /// The detection score, or the last one while coasting.
    pub score: f32,
    /// Frames since the track's last detection (0 = detected in this frame).
    pub missed: u32,
}

#[derive(Debug, Clone)]
struct Track {
    id: u64,
    category: Category,
    smooth: BBox,
    /// Centre motion per frame.
    velocity: (f32, f32),
    /// The last detection, and frames since it (misses and carried frames alike).
    last: BBox,
    since: u32,
    score: f32,
    missed: u32,
    /// Frames in a row whose detection did not look for this track's category.
    carried: u32,
}

fn centre(b: &BBox) -> (f32, f32) {
    ((b.x1 + b.x2) * 0.5, (b.y1 + b.y2) * 0.5)
}

fn shifted(b: &BBox, (dx, dy): (f32, f32)) -> BBox {
    BBox { x1: b.x1 + dx, y1: b.y1 + dy, x2: b.x2 + dx, y2: b.y2 + dy }
}

fn grown(b: &BBox, gx: f32, gy: f32) -> BBox {
    BBox { x1: b.x1 - gx, y1: b.y1 - gy, x2: b.x2 + gx, y2: b.y2 + gy }
}

fn lerp(a: &BBox, b: &BBox, t: f32) -> BBox {
    let l = |p: f32, q: f32| p + (q - p) * t;
    BBox { x1: l(a.x1, b.x1), y1: l(a.y1, b.y1), x2: l(a.x2, b.x2), y2: l(a.y2, b.y2) }
}

pub struct Tracker {
    config: TrackerConfig,
    tracks: Vec<Track>,
    next_id: u64,
}

impl Tracker {
    pub fn new(config: TrackerConfig) -> Self {
        Self { config, tracks: Vec::new(), next_id: 1 }
    }

    pub fn live_tracks(&self) -> usize {
        self.tracks.len()
    }

    /// Forget every track (after a gap in the stream, e.g. a camera reconnect).
    pub fn reset(&mut self) {
        self.tracks.clear();
    }

    /// Feed one frame's detections (every category looked for); returns every box to mask in
    /// that frame.
    pub fn update(&mut self, detections: &[Detection]) -> Vec<MaskBox> {
        self.update_looking_for(detections, None, 0)
    }

    /// Feed one frame's detections, found looking for `looked_for` (`None`: every category).
    /// Tracks of the other categories are carried: moved on at their speed, masked, grown by
    /// `coast_growth` a frame, and dropped after `max_carried` frames in a row without a look.
    pub fn update_looking_for(
        &mut self,
        detections: &[Detection],
        looked_for: Option<CategorySet>,
        max_carried: u32,
    ) -> Vec<MaskBox> {
        if !self.config.enabled {
            return detections
                .iter()
                .map(|d| MaskBox { track_id: 0, category: d.category, bbox: d.bbox, score: d.score, missed: 0 })
                .collect();
        }
        let cfg = self.config.clone();
        let predicted: Vec<BBox> = self.tracks.iter().map(|t| shifted(&t.smooth, t.velocity)).collect();

        // Candidate pairs with a cost; IoU matches rank before centre-distance matches.
        let mut pairs = Vec::new();
        for (ti, (track, pred)) in self.tracks.iter().zip(&predicted).enumerate() {
            for (di, det) in detections.iter().enumerate() {
                if det.category != track.category {
                    continue;
                }
                let iou = pred.iou(&det.bbox);
                if iou >= cfg.min_iou {
                    pairs.push((1.0 - iou, ti, di));
                    continue;
                }
                let (pc, dc) = (centre(pred), centre(&det.bbox));
                let size = pred.width().max(pred.height()).max(1.0);
                let dist = ((pc.0 - dc.0).powi(2) + (pc.1 - dc.1).powi(2)).sqrt() / size;
                if dist <= cfg.max_center_jump {
                    pairs.push((1.0 + dist, ti, di));
                }
            }
        }
        pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut track_match = vec![None; self.tracks.len()];
        let mut det_taken = vec![false; detections.len()];
        for (_, ti, di) in pairs {
            if track_match[ti].is_none() && !det_taken[di] {
                track_match[ti] = Some(di);
                det_taken[di] = true;
            }
        }

        let mut masks = Vec::with_capacity(self.tracks.len() + detections.len());
        for (ti, track) in self.tracks.iter_mut().enumerate() {
            let pred = predicted[ti];
            track.since += 1;
            match track_match[ti] {
                Some(di) => {
                    let det = &detections[di];
                    let smooth = lerp(&pred, &det.bbox, cfg.smoothing);
                    // Motion per frame between the last two detections (one frame apart, or
                    // several when the detector missed it or did not look for it).
                    let (c0, c1) = (centre(&track.last), centre(&det.bbox));
                    let n = track.since.max(1) as f32;
                    let step = ((c1.0 - c0.0) / n, (c1.1 - c0.1) / n);
                    track.velocity = (0.5 * track.velocity.0 + 0.5 * step.0, 0.5 * track.velocity.1 + 0.5 * step.1);
                    track.smooth = smooth;
                    track.last = det.bbox;
                    track.since = 0;
                    track.score = det.score;
                    track.missed = 0;
                    track.carried = 0;
                    let cover = det.bbox.union(&smooth);
                    let (gx, gy) = (track.velocity.0.abs() * cfg.motion_margin, track.velocity.1.abs() * cfg.motion_margin);
                    masks.push(MaskBox {
                        track_id: track.id,
                        category: track.category,
                        bbox: grown(&cover, gx, gy),
                        score: det.score,
                        missed: 0,
                    });
                }
                None => {
                    let looked = looked_for.is_none_or(|set| set.contains(track.category));
                    if looked {
                        track.missed += 1;
                    } else {
                        track.carried += 1;
                    }
                    track.smooth = pred;
                    if track.missed > cfg.hold_frames || track.carried > max_carried {
                        continue;
                    }
                    let growth = cfg.coast_growth * (track.missed + track.carried) as f32;
                    let gx = track.velocity.0.abs() * cfg.motion_margin + pred.width() * growth;
                    let gy = track.velocity.1.abs() * cfg.motion_margin + pred.height() * growth;
                    // The smoothed box lags a steady motion; the last detection moved on at the
                    // track's speed does not: cover both.
                    let n = track.since as f32;
                    let ahead = shifted(&track.last, (track.velocity.0 * n, track.velocity.1 * n));
                    masks.push(MaskBox {
                        track_id: track.id,
                        category: track.category,
                        bbox: grown(&pred.union(&ahead), gx, gy),
                        score: track.score,
                        missed: track.missed,
                    });
                }
            }
        }
        let hold = cfg.hold_frames;
        self.tracks.retain(|t| t.missed <= hold && t.carried <= max_carried);

        for (di, det) in detections.iter().enumerate() {
            if det_taken[di] {
                continue;
            }
            let id = self.next_id;
            self.next_id += 1;
            self.tracks.push(Track {
                id,
                category: det.category,
                smooth: det.bbox,
                velocity: (0.0, 0.0),
                last: det.bbox,
                since: 0,
                score: det.score,
                missed: 0,
                carried: 0,
            });
            masks.push(MaskBox { track_id: id, category: det.category, bbox: det.bbox, score: det.score, missed: 0 });
        }
        masks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn face(x: f32, y: f32, side: f32) -> Detection {
        Detection {
            category: Category::Face,
            bbox: BBox { x1: x, y1: y, x2: x + side, y2: y + side },
            score: 0.9,
            landmarks: None,
        }
    }

    fn covers(mask: &BBox, face: &BBox) -> bool {
        mask.x1 <= face.x1 && mask.y1 <= face.y1 && mask.x2 >= face.x2 && mask.y2 >= face.y2
    }

    #[test]
    fn holds_a_mask_through_a_missed_detection_then_expires() {
        let mut t = Tracker::new(TrackerConfig { hold_frames: 3, ..TrackerConfig::default() });
        assert_eq!(t.update(&[face(100.0, 100.0, 40.0)]).len(), 1);
        let held = t.update(&[]);
        assert_eq!(held.len(), 1);
        assert_eq!(held[0].missed, 1);
        assert!(covers(&held[0].bbox, &face(100.0, 100.0, 40.0).bbox));
        // Re-detected: same track id, not a new one.
        let again = t.update(&[face(101.0, 100.0, 40.0)]);
        assert_eq!((again.len(), again[0].track_id, again[0].missed), (1, held[0].track_id, 0));
        for missed in 1..=3 {
            assert_eq!(t.update(&[]).len(), 1, "still held after {missed} misses");
        }
        assert!(t.update(&[]).is_empty(), "expired after hold_frames");
        assert_eq!(t.live_tracks(), 0);
    }

    #[test]
    fn a_moving_face_stays_covered_while_coasting() {
        let mut t = Tracker::new(TrackerConfig::default());
        // 12 px per frame to the right.
        for i in 0..6 {
            t.update(&[face(50.0 + 12.0 * i as f32, 80.0, 40.0)]);
        }
        // The detector misses frames 6 and 7; the face keeps moving.
        for i in 6..8 {
            let masks = t.update(&[]);
            let truth = face(50.0 + 12.0 * i as f32, 80.0, 40.0).bbox;
            assert!(covers(&masks[0].bbox, &truth), "frame {i}: {:?} does not cover {truth:?}", masks[0].bbox);
        }
    }

    #[test]
    fn the_mask_never_shrinks_below_the_detection() {
        let mut t = Tracker::new(TrackerConfig::default());
        t.update(&[face(0.0, 0.0, 40.0)]);
        // A jump the smoothed box lags behind.
        let d = face(25.0, 0.0, 40.0);
        let masks = t.update(&[d.clone()]);
        assert_eq!(masks.len(), 1);
        assert!(covers(&masks[0].bbox, &d.bbox));
    }

    fn plate(x: f32) -> Detection {
        Detection {
            category: Category::LicensePlate,
            bbox: BBox { x1: x, y1: 300.0, x2: x + 120.0, y2: 330.0 },
            score: 0.9,
            landmarks: None,
        }
    }

    #[test]
    fn plates_looked_for_every_fourth_frame_stay_covered_while_moving() {
        let mut t = Tracker::new(TrackerConfig::default());
        let faces_only: CategorySet = [Category::Face].into_iter().collect();
        // A plate moving 9 px a frame, detected on frames 0, 4, 8, ...; faces every frame.
        for i in 0..40u32 {
            let truth = plate(100.0 + 9.0 * i as f32);
            let masks = if i % 4 == 0 {
                t.update_looking_for(&[truth.clone()], None, 8)
            } else {
                t.update_looking_for(&[], Some(faces_only), 8)
            };
            let m: Vec<&MaskBox> = masks.iter().filter(|m| m.category == Category::LicensePlate).collect();
            assert_eq!(m.len(), 1, "frame {i}: {masks:?}");
            assert_eq!(m[0].missed, 0, "carried frames are not misses");
            if i >= 8 {
                assert!(covers(&m[0].bbox, &truth.bbox), "frame {i}: {:?} does not cover {:?}", m[0].bbox, truth.bbox);
            }
        }
        // Never looked for again: dropped after the carry limit.
        for _ in 0..9 {
            t.update_looking_for(&[], Some(faces_only), 8);
        }
        assert!(t.update_looking_for(&[], Some(faces_only), 8).is_empty());
    }

    #[test]
    fn separate_faces_get_separate_tracks_and_disabled_passes_through() {
        let mut t = Tracker::new(TrackerConfig::default());
        let m = t.update(&[face(0.0, 0.0, 30.0), face(200.0, 0.0, 30.0)]);
        assert_ne!(m[0].track_id, m[1].track_id);
        let m2 = t.update(&[face(201.0, 1.0, 30.0), face(1.0, 0.0, 30.0)]);
        let ids = |m: &[MaskBox]| {
            let mut v: Vec<u64> = m.iter().map(|b| b.track_id).collect();
            v.sort();
            v
        };
        assert_eq!(ids(&m), ids(&m2));
        let mut off = Tracker::new(TrackerConfig { enabled: false, ..TrackerConfig::default() });
        off.update(&[face(0.0, 0.0, 30.0)]);
        assert!(off.update(&[]).is_empty());
    }
}
