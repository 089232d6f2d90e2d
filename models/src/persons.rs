//! The `persons` backend: whole people found by NanoDet-g (converted from the human-models npm
//! package by `models/tool/nanodet.py`, person class only) on 416x416 letterboxed copies of the
//! image (the whole of it, and overlapping tiles of a big one so small people stay big enough),
//! boxes decoded from its distance distributions at strides 8, 16 and 32.

use std::io::Cursor;
use std::time::Instant;

use tract_onnx::prelude::*;

use crate::detection::{BBox, Category, Detection};
use crate::error::DetectError;
use crate::lazy_network::LazyNetwork;
use crate::nms;
use crate::params::{DetectParams, Tiling};
use crate::plan_cache::{Plan, PlanCache};
use crate::preprocess::RgbImage;
use crate::registry::{BackendInfo, ModelFile};
use crate::resample::{region_tensor, ChannelOrder, Region};
use crate::{DetectOutput, Detector, StageTimings};

/// The network's fixed input side.
pub const SIDE: u32 = 416;
/// The output strides, in the order of the model's outputs (`s8`, `s16`, `s32`).
const STRIDES: [usize; 3] = [8, 16, 32];
/// Bins of each side's distance distribution (NanoDet's reg_max + 1).
const BINS: usize = 11;
/// NanoDet's per-channel normalisation, in the network's BGR order.
const MEAN: [f32; 3] = [103.53, 116.28, 123.675];
const STD: [f32; 3] = [57.375, 57.12, 58.395];
/// Person boxes overlapping more than this are one person (NanoDet's own NMS threshold).
const NMS_IOU: f32 = 0.5;
/// At [`Tiling::Auto`], an image whose long side exceeds this is also searched in square tiles
/// of this side, each halved into the network: a person 40 px tall is then 20 px there, which
/// the finest stride still finds.
pub const AUTO_TILE: u32 = 2 * SIDE;
/// Neighbouring tiles share this share of their side, so a person cut by one tile's edge is
/// whole (or mostly) in the next.
const TILE_OVERLAP: f64 = 0.25;
/// Each box grows by this share of its width and height on every side: the network's boxes end
/// at the outline, and a mask must cover hair, fingers and the shoes' tips too.
const GROW: f32 = 0.04;
/// A tile's box ending this share of the tile's side (or less) from an edge the tile shares
/// with the image's inside was cut there: it may be part of a person seen whole elsewhere.
const CUT_MARGIN: f32 = 0.02;
/// A cut box with at least this share of its area inside a bigger box is that box's person:
/// the bigger box grows to cover it instead of counting a person of its own.
const PART_OF: f32 = 0.6;

/// NanoDet-g's person detector. Its network is built on the first call that asks for people:
/// a daemon offering people to uploads carries only the model file's bytes until then.
pub struct Persons {
    info: BackendInfo,
    plans: LazyNetwork<PlanCache>,
}

impl Persons {
    pub fn new(file: &ModelFile, info: BackendInfo, threads: usize) -> Result<Self, DetectError> {
        Ok(Self { info, plans: LazyNetwork::new(file, threads)? })
    }

    fn plan(&self) -> Result<Plan, DetectError> {
        let plans = self.plans.get("the person detector", |bytes, threads| {
            let model = tract_onnx::onnx().model_for_read(&mut Cursor::new(bytes))?;
            let mut options = RunOptions::default();
            if threads > 1 {
                options.executor = Some(tract_linalg::multithread::Executor::multithread(threads));
            }
            Ok(PlanCache::new(model, options))
        })?;
        plans.get(SIDE, SIDE)
    }
}

impl Detector for Persons {
    fn info(&self) -> &BackendInfo {
        &self.info
    }

    fn detect(&self, image: &RgbImage<'_>, params: &DetectParams) -> Result<DetectOutput, DetectError> {
        params.validate()?;
        params.wanted(&self.info.categories)?;
        let plan = self.plan()?;
        let (mut prep, mut infer, mut post) = (0.0, 0.0, 0.0);
        let ms = |a: Instant, b: Instant| (b - a).as_secs_f64() * 1000.0;
        let (w, h) = (image.width as f32, image.height as f32);
        let mut found = Vec::new();
        for crop in crops(image.width, image.height, params.tile) {
            let t0 = Instant::now();
            let (input, region) = letterbox(image, crop);
            let t1 = Instant::now();
            let outputs = plan.run(tvec!(input.into()))?;
            let t2 = Instant::now();
            for (output, stride) in outputs.iter().zip(STRIDES) {
                let view = output.to_plain_array_view::<f32>()?;
                let shape = view.shape().to_vec();
                if shape.len() != 4 || shape[1] != 1 + 4 * BINS {
                    return Err(DetectError::Inference(format!("person model output has shape {shape:?}")));
                }
                let data =
                    view.as_slice().ok_or_else(|| DetectError::Inference("person model output is not contiguous".into()))?;
                let level = decode_level(data, shape[2], shape[3], stride, params.person_confidence);
                found.extend(level.into_iter().map(|d| {
                    let cut = cut_by_tile_edge(&unplaced(&d.bbox, &region), crop, image.width, image.height);
                    (Detection { bbox: in_image(&d.bbox, &region, w, h), ..d }, cut)
                }));
            }
            let t3 = Instant::now();
            (prep, infer, post) = (prep + ms(t0, t1), infer + ms(t1, t2), post + ms(t2, t3));
        }
        let t = Instant::now();
        let kept = nms::suppress_by(found, |(d, _)| d, NMS_IOU);
        let detections =
            join_tile_parts(kept).into_iter().filter(|d| d.bbox.width() > 0.0 && d.bbox.height() > 0.0).collect();
        let timings = StageTimings { preprocess_ms: prep, inference_ms: infer, postprocess_ms: post + ms(t, Instant::now()) };
        Ok(DetectOutput { detections, timings, network_input: (SIDE, SIDE) })
    }
}

/// The rectangles `(x, y, w, h)` of a `width` x `height` image searched: the whole image, then
/// at [`Tiling::Auto`] (tiles of [`AUTO_TILE`]) or `Size` (tiles of the larger side asked, at
/// least [`SIDE`]) overlapping square tiles when the image is bigger than a tile.
fn crops(width: u32, height: u32, tiling: Tiling) -> Vec<(u32, u32, u32, u32)> {
    let mut out = vec![(0, 0, width, height)];
    let tile = match tiling {
        Tiling::Off => return out,
        Tiling::Auto => AUTO_TILE,
        Tiling::Size { w, h } => w.max(h).max(SIDE),
    };
    if width.max(height) <= tile {
        return out;
    }
    let starts = |len: u32| -> Vec<u32> {
        if len <= tile {
            return vec![0];
        }
        let step = (tile as f64 * (1.0 - TILE_OVERLAP)) as u32;
        let n = (len - tile).div_ceil(step) + 1;
        // Spread evenly so the last tile ends at the edge.
        (0..n).map(|i| ((len - tile) as u64 * i as u64 / (n - 1) as u64) as u32).collect()
    };
    for y in starts(height) {
        for x in starts(width) {
            out.push((x, y, tile.min(width), tile.min(height)));
        }
    }
    out
}

/// Where a crop of the image went in the network input: scaled by (`fx`, `fy`), its top-left
/// corner at pixel (`x0`, `y0`) of the scaled image.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Placed {
    fx: f64,
    fy: f64,
    x0: f64,
    y0: f64,
}

/// The crop `(x, y, w, h)` of the image scaled to fit a [`SIDE`] square (top-left, aspect
/// kept), the rest at the mean (zero after normalisation), normalised as NanoDet was trained;
/// and where it was placed.
fn letterbox(image: &RgbImage<'_>, (cx, cy, cw, ch): (u32, u32, u32, u32)) -> (Tensor, Placed) {
    let scale = SIDE as f64 / cw.max(ch) as f64;
    let w = ((cw as f64 * scale).round() as u32).clamp(1, SIDE);
    let h = ((ch as f64 * scale).round() as u32).clamp(1, SIDE);
    let (fx, fy) = (w as f64 / cw as f64, h as f64 / ch as f64);
    let (x0, y0) = ((cx as f64 * fx).round() as u32, (cy as f64 * fy).round() as u32);
    let region = Region { fx, fy, x0, y0, w, h };
    let copy = region_tensor(image, &region, ChannelOrder::Bgr);
    let copy = copy.to_plain_array_view::<f32>().expect("region tensor is f32");
    let (tw, th) = (copy.shape()[3], copy.shape()[2]);
    let side = SIDE as usize;
    let mut buf = vec![0f32; 3 * side * side];
    for c in 0..3 {
        for y in 0..h as usize {
            for x in 0..w as usize {
                buf[c * side * side + y * side + x] = (copy[[0, c, y, x]] - MEAN[c]) / STD[c];
            }
        }
    }
    debug_assert!(tw >= w as usize && th >= h as usize);
    (Tensor::from_shape(&[1, 3, side, side], &buf).expect("shape matches buffer"), Placed { fx, fy, x0: x0 as f64, y0: y0 as f64 })
}

/// People in one level's `[45, rows, cols]` map (channel 0 the person logit, then four 11-bin
/// distance distributions: left, top, right, bottom) at least `threshold` likely, in network pixels.
fn decode_level(data: &[f32], rows: usize, cols: usize, stride: usize, threshold: f32) -> Vec<Detection> {
    let plane = rows * cols;
    // sigmoid(l) >= t  <=>  l >= ln(t / (1 - t)); the clamp keeps t = 0 and 1 finite.
    let t = threshold.clamp(1e-6, 1.0 - 1e-6);
    let min_logit = (t / (1.0 - t)).ln();
    let mut out = Vec::new();
    for i in 0..rows {
        for j in 0..cols {
            let cell = i * cols + j;
            let logit = data[cell];
            if logit < min_logit {
                continue;
            }
            let mut side = [0f32; 4];
            for (k, d) in side.iter_mut().enumerate() {
                let bins: Vec<f32> = (0..BINS).map(|b| data[(1 + k * BINS + b) * plane + cell]).collect();
                *d = expectation(&bins) * stride as f32;
            }
            let (cx, cy) = ((j as f32 + 0.5) * stride as f32, (i as f32 + 0.5) * stride as f32);
            out.push(Detection {
                category: Category::Person,
                bbox: BBox { x1: cx - side[0], y1: cy - side[1], x2: cx + side[2], y2: cy + side[3] },
                score: 1.0 / (1.0 + (-logit).exp()),
                landmarks: None,
            });
        }
    }
    out
}

/// The mean bin of a softmax over `logits`.
fn expectation(logits: &[f32]) -> f32 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let (mut total, mut weighted) = (0f32, 0f32);
    for (b, &l) in logits.iter().enumerate() {
        let e = (l - max).exp();
        total += e;
        weighted += e * b as f32;
    }
    weighted / total
}

/// A network box back in the image's pixels (the letterbox's placing undone), as found.
fn unplaced(b: &BBox, at: &Placed) -> BBox {
    let x = |v: f32| ((v as f64 + at.x0) / at.fx) as f32;
    let y = |v: f32| ((v as f64 + at.y0) / at.fy) as f32;
    BBox { x1: x(b.x1), y1: y(b.y1), x2: x(b.x2), y2: y(b.y2) }
}

/// A network box back in the `w` x `h` image, grown by [`GROW`] and clipped to the image.
fn in_image(b: &BBox, at: &Placed, w: f32, h: f32) -> BBox {
    let BBox { x1, y1, x2, y2 } = unplaced(b, at);
    let (gx, gy) = (GROW * (x2 - x1), GROW * (y2 - y1));
    BBox { x1: (x1 - gx).clamp(0.0, w), y1: (y1 - gy).clamp(0.0, h), x2: (x2 + gx).clamp(0.0, w), y2: (y2 + gy).clamp(0.0, h) }
}

/// Whether box `b` (image pixels, as found in `crop`) reaches an edge of the crop that lies
/// inside the image: the person may go on beyond the tile. The whole image is never cut.
fn cut_by_tile_edge(b: &BBox, (cx, cy, cw, ch): (u32, u32, u32, u32), width: u32, height: u32) -> bool {
    let m = CUT_MARGIN * cw.max(ch) as f32;
    let (left, top, right, bottom) = (cx as f32, cy as f32, (cx + cw) as f32, (cy + ch) as f32);
    (cx > 0 && b.x1 <= left + m)
        || (cy > 0 && b.y1 <= top + m)
        || (cx + cw < width && b.x2 >= right - m)
        || (cy + ch < height && b.y2 >= bottom - m)
}

/// Boxes after NMS, each with whether a tile's edge cut it: a cut box lying mostly
/// ([`PART_OF`]) inside a bigger box is part of that box's person (the whole image's view of
/// someone big, or the tile that saw more of them), so the bigger box grows to cover it and one
/// person is reported, not two. Nothing masked before is left out: the union covers both.
fn join_tile_parts(kept: Vec<(Detection, bool)>) -> Vec<Detection> {
    let mut by_size = kept;
    by_size.sort_by(|a, b| b.0.bbox.area().total_cmp(&a.0.bbox.area()));
    let mut out: Vec<Detection> = Vec::with_capacity(by_size.len());
    for (d, cut) in by_size {
        let area = d.bbox.area();
        let host = cut
            .then(|| out.iter_mut().find(|o| area > 0.0 && o.bbox.intersection_area(&d.bbox) >= PART_OF * area))
            .flatten();
        match host {
            Some(o) => {
                o.bbox = o.bbox.union(&d.bbox);
                o.score = o.score.max(d.score);
            }
            None => out.push(d),
        }
    }
    out.sort_by(|a, b| b.score.total_cmp(&a.score));
    out
}


#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expectation_of_a_peaked_distribution_is_its_peak() {
        let mut l = vec![-20.0; BINS];
        l[3] = 20.0;
        assert!((expectation(&l) - 3.0).abs() < 1e-3);
        assert!((expectation(&[0.0; BINS]) - 5.0).abs() < 1e-4);
    }

    #[test]
    fn a_confident_cell_decodes_to_its_distances_around_the_cell_centre() {
        let (rows, cols, plane) = (2, 3, 6);
        let mut data = vec![-20.0f32; 45 * plane];
        data[4] = 3.0; // row 1, col 1
        for (k, bin) in [2usize, 1, 4, 6].into_iter().enumerate() {
            data[(1 + k * BINS + bin) * plane + 4] = 30.0;
        }
        let found = decode_level(&data, rows, cols, 16, 0.5);
        assert_eq!(found.len(), 1);
        let b = found[0].bbox;
        // Cell centre (24, 24); distances 2, 1, 4, 6 strides.
        assert!((b.x1 - (24.0 - 32.0)).abs() < 1e-3 && (b.y1 - 8.0).abs() < 1e-3);
        assert!((b.x2 - 88.0).abs() < 1e-3 && (b.y2 - 120.0).abs() < 1e-3);
        assert!((found[0].score - 0.9526).abs() < 1e-3);
        assert!(decode_level(&data, rows, cols, 16, 0.96).is_empty());
    }

    #[test]
    fn letterbox_keeps_the_aspect_and_fills_the_rest_with_zero() {
        let data = vec![128u8; 832 * 416 * 3];
        let img = RgbImage::new(&data, 832, 416).unwrap();
        let (t, at) = letterbox(&img, (0, 0, 832, 416));
        assert_eq!(at, Placed { fx: 0.5, fy: 0.5, x0: 0.0, y0: 0.0 });
        let v = t.to_plain_array_view::<f32>().unwrap();
        assert_eq!(v.shape(), &[1, 3, 416, 416]);
        assert!((v[[0, 0, 10, 10]] - (128.0 - MEAN[0]) / STD[0]).abs() < 1e-3);
        assert_eq!(v[[0, 1, 300, 10]], 0.0);
        let back = in_image(&BBox { x1: 10.0, y1: 10.0, x2: 60.0, y2: 110.0 }, &at, 832.0, 416.0);
        assert_eq!(back, BBox { x1: 16.0, y1: 12.0, x2: 124.0, y2: 228.0 });
        // A tile's boxes land where the tile was.
        let (_, at) = letterbox(&img, (416, 0, 416, 416));
        assert_eq!(at, Placed { fx: 1.0, fy: 1.0, x0: 416.0, y0: 0.0 });
        let back = in_image(&BBox { x1: 0.0, y1: 0.0, x2: 100.0, y2: 100.0 }, &at, 832.0, 416.0);
        assert_eq!(back, BBox { x1: 412.0, y1: 0.0, x2: 520.0, y2: 104.0 });
    }

    fn person(x1: f32, y1: f32, x2: f32, y2: f32, score: f32) -> Detection {
        Detection { category: Category::Person, bbox: BBox { x1, y1, x2, y2 }, score, landmarks: None }
    }

    #[test]
    fn a_box_cut_by_a_tile_edge_inside_the_image_is_told_apart() {
        let tile = (544, 0, 832, 832);
        // Reaches the tile's left edge (x 544, inside a 1920-wide image): cut.
        assert!(cut_by_tile_edge(&BBox { x1: 548.0, y1: 100.0, x2: 700.0, y2: 500.0 }, tile, 1920, 1080));
        // Reaches the tile's bottom edge (832 < 1080): cut.
        assert!(cut_by_tile_edge(&BBox { x1: 700.0, y1: 400.0, x2: 800.0, y2: 830.0 }, tile, 1920, 1080));
        // Well inside: not cut.
        assert!(!cut_by_tile_edge(&BBox { x1: 700.0, y1: 100.0, x2: 800.0, y2: 500.0 }, tile, 1920, 1080));
        // At the image's own top edge and the whole image's edges: not cut.
        assert!(!cut_by_tile_edge(&BBox { x1: 700.0, y1: 0.0, x2: 800.0, y2: 500.0 }, tile, 1920, 1080));
        assert!(!cut_by_tile_edge(&BBox { x1: 0.0, y1: 0.0, x2: 1920.0, y2: 1080.0 }, (0, 0, 1920, 1080), 1920, 1080));
    }

    #[test]
    fn parts_cut_by_tiles_join_the_person_they_belong_to_and_stay_covered() {
        let whole = person(500.0, 100.0, 900.0, 1000.0, 0.8);
        // The lower half of the same person, cut by a tile's top edge, reaching a little wider.
        let part = person(480.0, 540.0, 890.0, 1000.0, 0.9);
        // Someone else, cut by a tile edge but mostly outside every other box.
        let other = person(880.0, 200.0, 1100.0, 700.0, 0.7);
        // Not cut: a person standing in front of the first stays a person of their own.
        let front = person(600.0, 600.0, 700.0, 900.0, 0.6);
        let out = join_tile_parts(vec![(part.clone(), true), (whole, false), (other.clone(), true), (front.clone(), false)]);
        assert_eq!(out.len(), 3, "{out:?}");
        let joined = out.iter().find(|d| d.bbox.y1 == 100.0).unwrap();
        assert_eq!(joined.bbox, BBox { x1: 480.0, y1: 100.0, x2: 900.0, y2: 1000.0 }, "grew to cover the part");
        assert_eq!(joined.score, 0.9);
        assert!(out.contains(&other) && out.contains(&front));
    }

    #[test]
    fn big_images_are_also_searched_in_overlapping_tiles_that_reach_every_edge() {
        assert_eq!(crops(1280, 720, Tiling::Off), [(0, 0, 1280, 720)]);
        assert_eq!(crops(800, 600, Tiling::Auto), [(0, 0, 800, 600)]);
        let c = crops(1920, 1080, Tiling::Auto);
        assert_eq!(c[0], (0, 0, 1920, 1080));
        assert_eq!(c[1..], [(0, 0, 832, 832), (544, 0, 832, 832), (1088, 0, 832, 832), (0, 248, 832, 832), (544, 248, 832, 832), (1088, 248, 832, 832)]);
        // A wide strip: one row of tiles as tall as the image.
        let c = crops(3000, 500, Tiling::Auto);
        assert!(c[1..].iter().all(|&(_, y, w, h)| y == 0 && w == 832 && h == 500), "{c:?}");
        assert_eq!(c.last().unwrap().0 + 832, 3000);
        for pair in c[1..].windows(2) {
            assert!(pair[1].0 - pair[0].0 <= 624, "{c:?}");
        }
        assert_eq!(crops(1000, 1000, Tiling::Size { w: 300, h: 200 })[1], (0, 0, 416, 416));
    }
}
