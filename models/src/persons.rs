//! The `persons` backend: whole people found by NanoDet-g (converted from the human-models npm
//! package by `models/tool/nanodet.py`, person class only) on a 416x416 letterboxed copy of the
//! image, boxes decoded from its distance distributions at strides 8, 16 and 32.

use std::io::Cursor;
use std::time::Instant;

use tract_onnx::prelude::*;

use crate::detection::{BBox, Category, Detection};
use crate::error::DetectError;
use crate::nms;
use crate::params::DetectParams;
use crate::plan_cache::{Plan, PlanCache};
use crate::preprocess::RgbImage;
use crate::registry::BackendInfo;
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
/// Each box grows by this share of its width and height on every side: the network's boxes end
/// at the outline, and a mask must cover hair, fingers and the shoes' tips too.
const GROW: f32 = 0.04;

/// NanoDet-g's person detector.
pub struct Persons {
    info: BackendInfo,
    plans: PlanCache,
}

impl Persons {
    pub fn from_bytes(bytes: &[u8], info: BackendInfo, threads: usize) -> Result<Self, DetectError> {
        let model = tract_onnx::onnx()
            .model_for_read(&mut Cursor::new(bytes))
            .map_err(|e| DetectError::ModelUnavailable { path: info.name.clone(), reason: format!("{e:#}") })?;
        let mut options = RunOptions::default();
        if threads > 1 {
            options.executor = Some(tract_linalg::multithread::Executor::multithread(threads));
        }
        Ok(Self { info, plans: PlanCache::new(model, options) })
    }

    fn plan(&self) -> Result<Plan, DetectError> {
        self.plans.get(SIDE, SIDE)
    }
}

impl Detector for Persons {
    fn info(&self) -> &BackendInfo {
        &self.info
    }

    fn detect(&self, image: &RgbImage<'_>, params: &DetectParams) -> Result<DetectOutput, DetectError> {
        params.validate()?;
        params.wanted(&self.info.categories)?;
        let t0 = Instant::now();
        let plan = self.plan()?;
        let (input, scale) = letterbox(image);
        let t1 = Instant::now();
        let outputs = plan.run(tvec!(input.into()))?;
        let t2 = Instant::now();
        let mut found = Vec::new();
        for (output, stride) in outputs.iter().zip(STRIDES) {
            let view = output.to_plain_array_view::<f32>()?;
            let shape = view.shape().to_vec();
            if shape.len() != 4 || shape[1] != 1 + 4 * BINS {
                return Err(DetectError::Inference(format!("person model output has shape {shape:?}")));
            }
            let data = view.as_slice().ok_or_else(|| DetectError::Inference("person model output is not contiguous".into()))?;
            found.extend(decode_level(data, shape[2], shape[3], stride, params.person_confidence));
        }
        let (w, h) = (image.width as f32, image.height as f32);
        let detections = nms::suppress(found, NMS_IOU)
            .into_iter()
            .map(|d| Detection { bbox: in_image(&d.bbox, scale, w, h), ..d })
            .filter(|d| d.bbox.width() > 0.0 && d.bbox.height() > 0.0)
            .collect();
        let t3 = Instant::now();
        Ok(DetectOutput { detections, timings: StageTimings::between([t0, t1, t2, t3]), network_input: (SIDE, SIDE) })
    }
}

/// The image scaled to fit a [`SIDE`] square (top-left, aspect kept), the rest at the mean (zero
/// after normalisation), normalised as NanoDet was trained; and the scale applied.
fn letterbox(image: &RgbImage<'_>) -> (Tensor, f64) {
    let scale = SIDE as f64 / image.width.max(image.height) as f64;
    let w = ((image.width as f64 * scale).round() as u32).clamp(1, SIDE);
    let h = ((image.height as f64 * scale).round() as u32).clamp(1, SIDE);
    let region = Region { fx: w as f64 / image.width as f64, fy: h as f64 / image.height as f64, x0: 0, y0: 0, w, h };
    let copy = region_tensor(image, &region, ChannelOrder::Bgr);
    let copy = copy.to_plain_array_view::<f32>().expect("region tensor is f32");
    let (cw, ch) = (copy.shape()[3], copy.shape()[2]);
    let side = SIDE as usize;
    let mut buf = vec![0f32; 3 * side * side];
    for c in 0..3 {
        for y in 0..h as usize {
            for x in 0..w as usize {
                buf[c * side * side + y * side + x] = (copy[[0, c, y, x]] - MEAN[c]) / STD[c];
            }
        }
    }
    debug_assert!(cw >= w as usize && ch >= h as usize);
    (Tensor::from_shape(&[1, 3, side, side], &buf).expect("shape matches buffer"), scale)
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

/// A network box back in the `w` x `h` image (the letterbox's `scale` undone), grown by
/// [`GROW`] and clipped to the image.
fn in_image(b: &BBox, scale: f64, w: f32, h: f32) -> BBox {
    let s = scale as f32;
    let (x1, y1, x2, y2) = (b.x1 / s, b.y1 / s, b.x2 / s, b.y2 / s);
    let (gx, gy) = (GROW * (x2 - x1), GROW * (y2 - y1));
    BBox { x1: (x1 - gx).clamp(0.0, w), y1: (y1 - gy).clamp(0.0, h), x2: (x2 + gx).clamp(0.0, w), y2: (y2 + gy).clamp(0.0, h) }
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
        let (t, scale) = letterbox(&img);
        assert_eq!(scale, 0.5);
        let v = t.to_plain_array_view::<f32>().unwrap();
        assert_eq!(v.shape(), &[1, 3, 416, 416]);
        assert!((v[[0, 0, 10, 10]] - (128.0 - MEAN[0]) / STD[0]).abs() < 1e-3);
        assert_eq!(v[[0, 1, 300, 10]], 0.0);
        let back = in_image(&BBox { x1: 10.0, y1: 10.0, x2: 60.0, y2: 110.0 }, scale, 832.0, 416.0);
        assert_eq!(back, BBox { x1: 16.0, y1: 12.0, x2: 124.0, y2: 228.0 });
    }
}
