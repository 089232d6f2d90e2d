//! Running a face network over a whole image at the detection scale: the scaled copy is cut
//! into overlapping tiles, smaller copies (a pyramid, each a quarter of the last) catch faces
//! larger than the overlap, every tile is one network input sampled straight from the source
//! (no full-size copy is made), and the boxes of all tiles are merged by NMS in source pixels.

use std::time::Instant;

use tract_onnx::prelude::Tensor;

use crate::detection::{BBox, Detection, Point};
use crate::error::DetectError;
use crate::nms;
use crate::params::{DetectParams, DetectScale, TINY_FACE_PX};
use crate::preprocess::{pad32, RgbImage};
use crate::resample::{region_tensor, ChannelOrder, Region};
use crate::{DetectOutput, StageTimings};

/// Neighbouring tiles share this many pixels: a face up to this size lies wholly inside one of
/// them, and a bigger one is at least 24 px in the next pyramid level (a quarter the size).
pub const TILE_OVERLAP: u32 = 96;
/// Each pyramid level is this much smaller than the previous one.
const PYRAMID_STEP: f64 = 4.0;
/// On every pyramid level but the last, faces wider than this (in that level's pixels) are left
/// to the next level, where they are at least 48 px and seen whole: at full resolution a tile
/// holds only part of such a face, and soft, enlarged texture (skin, cloth, foliage) there
/// scores as large false faces.
pub const LEVEL_FACE_MAX: f32 = 2.0 * TILE_OVERLAP as f32;

/// A face network run on one input (one tile).
pub trait FaceNetwork {
    /// The colour order of the network's input planes.
    fn channel_order(&self) -> ChannelOrder;

    /// Build (or find) the plan for an `nw` x `nh` input, outside the timed stages.
    fn prepare(&self, nw: u32, nh: u32) -> Result<(), DetectError>;

    /// Faces scoring at least `min_score` in `input` (`[1, 3, nh, nw]`, the tile in its top-left
    /// `w` x `h` corner), boxes and landmarks in input pixels, clipped to that corner; plus the
    /// inference time in ms.
    fn infer(&self, input: Tensor, nw: u32, nh: u32, w: u32, h: u32, min_score: f32)
        -> Result<(Vec<Detection>, f64), DetectError>;
}

/// Cut an axis of `len` pixels into tiles of at most `max` with at least `overlap` shared:
/// (start, length) pairs, equal lengths (multiples of 32 where possible), evenly spread.
pub(crate) fn axis_tiles(len: u32, max: u32, overlap: u32) -> Vec<(u32, u32)> {
    if len <= max {
        return vec![(0, len)];
    }
    let step = max.saturating_sub(overlap).max(32);
    let n = (len - overlap).div_ceil(step);
    let tile = (len + (n - 1) * overlap).div_ceil(n);
    let tile = (tile.div_ceil(32) * 32).min(max.max(tile)).min(len);
    (0..n).map(|i| ((i as u64 * (len - tile) as u64 / (n - 1) as u64) as u32, tile)).collect()
}

/// The network inputs for an image of `w` x `h` at `params`' scale and tiling.
pub fn regions(w: u32, h: u32, params: &DetectParams) -> Result<Vec<Region>, DetectError> {
    let (sw, sh) = params.scale.target_size_within(w, h, params.max_network_pixels);
    if params.scale != DetectScale::Auto {
        params.check_network_size(pad32(sw), pad32(sh))?;
    }
    let Some((tw, th)) = params.tile.max_tile() else {
        params.check_network_size(pad32(sw), pad32(sh))?;
        return Ok(vec![Region { fx: sw as f64 / w as f64, fy: sh as f64 / h as f64, x0: 0, y0: 0, w: sw, h: sh }]);
    };
    let mut out = Vec::new();
    let (mut lw, mut lh) = (sw, sh);
    loop {
        let (fx, fy) = (lw as f64 / w as f64, lh as f64 / h as f64);
        for &(y0, rh) in &axis_tiles(lh, th, TILE_OVERLAP) {
            for &(x0, rw) in &axis_tiles(lw, tw, TILE_OVERLAP) {
                out.push(Region { fx, fy, x0, y0, w: rw, h: rh });
            }
        }
        if lw <= tw && lh <= th {
            return Ok(out);
        }
        lw = ((lw as f64 / PYRAMID_STEP).round() as u32).max(1);
        lh = ((lh as f64 / PYRAMID_STEP).round() as u32).max(1);
    }
}

/// Detect faces in `image` with `net` over every region; boxes in source pixels, merged by NMS
/// at `params.nms_threshold`, best first, at most `params.max_faces`.
pub fn detect_faces(net: &dyn FaceNetwork, image: &RgbImage<'_>, params: &DetectParams) -> Result<DetectOutput, DetectError> {
    let regions = regions(image.width, image.height, params)?;
    let last_level = regions.iter().map(|r| r.fx).fold(f64::INFINITY, f64::min);
    let floor = params.confidence;
    let tiny_floor = params.tiny_confidence.max(params.confidence);
    let mut timings = StageTimings::default();
    let mut found = Vec::new();
    for r in &regions {
        net.prepare(pad32(r.w), pad32(r.h))?;
        let t0 = Instant::now();
        let input = region_tensor(image, r, net.channel_order());
        let t1 = Instant::now();
        let (dets, inference_ms) = net.infer(input, pad32(r.w), pad32(r.h), r.w, r.h, floor)?;
        let t2 = Instant::now();
        let (fx, fy) = (r.fx as f32, r.fy as f32);
        let (ox, oy) = (r.x0 as f32, r.y0 as f32);
        let to_source = |x: f32, y: f32| ((x + ox) / fx, (y + oy) / fy);
        let level_max = if r.fx > last_level { LEVEL_FACE_MAX } else { f32::INFINITY };
        for d in dets {
            if d.bbox.width() < TINY_FACE_PX && d.score < tiny_floor {
                continue;
            }
            if d.bbox.width() > level_max {
                continue;
            }
            let (x1, y1) = to_source(d.bbox.x1, d.bbox.y1);
            let (x2, y2) = to_source(d.bbox.x2, d.bbox.y2);
            let landmarks = d.landmarks.map(|lm| {
                lm.map(|p| {
                    let (x, y) = to_source(p.x, p.y);
                    Point { x, y }
                })
            });
            found.push(Detection { bbox: BBox { x1, y1, x2, y2 }, landmarks, ..d });
        }
        timings.preprocess_ms += (t1 - t0).as_secs_f64() * 1000.0;
        timings.inference_ms += inference_ms;
        timings.postprocess_ms += (t2 - t1).as_secs_f64() * 1000.0 - inference_ms;
    }
    let t = Instant::now();
    let mut detections = nms::suppress(found, params.nms_threshold);
    if params.max_faces > 0 {
        detections.truncate(params.max_faces);
    }
    timings.postprocess_ms += t.elapsed().as_secs_f64() * 1000.0;
    let first = regions[0];
    Ok(DetectOutput { detections, timings, network_input: (pad32(first.w), pad32(first.h)) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::Tiling;

    #[test]
    fn axes_are_cut_evenly_with_the_overlap() {
        assert_eq!(axis_tiles(1280, 1280, 96), [(0, 1280)]);
        let t = axis_tiles(1920, 1280, 96);
        assert_eq!(t, [(0, 1024), (896, 1024)]);
        for len in [1281, 3000, 6016, 4160] {
            let t = axis_tiles(len, 1280, 96);
            assert_eq!(t[0].0, 0);
            assert_eq!(t.last().map(|(s, l)| s + l), Some(len), "{len}: {t:?}");
            for w in t.windows(2) {
                assert!(w[0].0 + w[0].1 >= w[1].0 + 96, "{len}: {t:?}");
            }
            assert!(t.iter().all(|(_, l)| *l <= 1280));
        }
    }

    #[test]
    fn a_camera_frame_is_one_input_and_a_big_photo_a_pyramid_of_tiles() {
        let p = DetectParams::default();
        assert_eq!(regions(1280, 720, &p).unwrap().len(), 1);
        let small = regions(416, 300, &p).unwrap();
        assert_eq!((small.len(), small[0].w, small[0].h), (1, 1024, 738));
        let hd = regions(1920, 1080, &p).unwrap();
        assert_eq!(hd.len(), 3, "{hd:?}"); // two tiles and a 480x270 copy
        assert_eq!((hd[2].w, hd[2].h), (480, 270));
        let big = regions(6016, 4160, &p).unwrap();
        assert!(big.iter().all(|r| r.w <= 1280 && r.h <= 1280));
        assert_eq!(big.last().map(|r| r.w < 1280), Some(true));
        // Off: one input, refused when too large.
        let off = DetectParams { tile: Tiling::Off, scale: DetectScale::Native, ..p };
        assert_eq!(regions(1920, 1080, &off).unwrap().len(), 1);
        assert!(regions(8000, 8000, &off).is_err());
        // An explicit scale beyond the pixel budget is refused even when tiled.
        let huge = DetectParams { scale: DetectScale::Factor(8.0), ..p };
        assert!(regions(1000, 1000, &huge).is_err());
    }
}
