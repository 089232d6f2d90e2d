//! PP-OCRv4's text detector (DBNet, from the rapidocr wheel) on tract: an RGB image in, a
//! per-pixel text probability map at the network's resolution out, and the text boxes of that
//! map in the image's pixels (what the `plates` and `text` backends shape into masks).

use std::io::Cursor;
use std::time::Instant;

use tract_onnx::prelude::*;

use crate::contrast::{equalize_lightness, Clahe};
use crate::detection::{BBox, Detection};
use crate::error::DetectError;
use crate::params::{DetectParams, DetectScale};
use crate::plan_cache::{Plan, PlanCache};
use crate::preprocess::{bilinear_taps, RgbImage};
use crate::text_regions::{text_regions, RegionRule};
use crate::{DetectOutput, StageTimings};

/// Long side of the network input when the caller asks for the native scale: plates are small
/// text, and the recipe was measured at this size (README, "Licence plates").
pub const DEFAULT_LONG_SIDE: u32 = 1600;

/// Network rows neighbouring bands share ([`bands`]): text crossing a cut is seen whole, or
/// nearly, by one of them (README, "Camera rate": memory, the coverage measured).
pub const BAND_OVERLAP: u32 = 32;

/// One horizontal band of a banded pass: network input rows `y0..y0 + rows`.
#[derive(Debug, Clone, PartialEq)]
pub struct Band {
    pub y0: usize,
    pub rows: u32,
}

/// The bands for a network input `h` rows high worked at most `max_rows` rows at a time (one
/// pass holds tensors in proportion to its rows: about 80 MB at 1280x736): as few as fit, all
/// the same height (a multiple of 32, so one plan serves them), spread evenly so that
/// neighbours share at least `overlap` rows. One band (the whole input) when it fits, or when
/// `max_rows` leaves less than 32 rows beyond the overlaps at both ends.
pub fn bands(h: u32, max_rows: u32, overlap: u32) -> Vec<Band> {
    let max_rows = max_rows / 32 * 32;
    if h <= max_rows || max_rows < 2 * overlap + 32 {
        return vec![Band { y0: 0, rows: h }];
    }
    // The face scan's tiles along one axis, which are laid out by these same rules.
    crate::scan::axis_tiles(h, max_rows, overlap).into_iter().map(|(y0, rows)| Band { y0: y0 as usize, rows }).collect()
}

/// A text probability map: `w` x `h` values in 0..=1, row-major.
pub struct ProbabilityMap {
    pub values: Vec<f32>,
    pub w: usize,
    pub h: usize,
}

/// The text detector network with one optimized plan per input size.
pub struct TextMapNetwork {
    plans: PlanCache,
}

impl TextMapNetwork {
    pub fn from_bytes(bytes: &[u8], name: &str, threads: usize) -> Result<Self, DetectError> {
        let model =
            Self::graph(bytes).map_err(|e| DetectError::ModelUnavailable { path: name.to_string(), reason: format!("{e:#}") })?;
        let mut options = RunOptions::default();
        if threads > 1 {
            options.executor = Some(tract_linalg::multithread::Executor::multithread(threads));
        }
        Ok(Self { plans: PlanCache::new(model, options) })
    }

    /// The model as tract will optimize it: its stride-2 depthwise convolutions, its
    /// upsample-and-add steps and (where measured faster) its dense 3x3 convolutions rewritten
    /// as veil's ops before tract parses the graph. Public for
    /// `examples/profile_ops.rs`.
    pub fn graph(bytes: &[u8]) -> TractResult<InferenceModel> {
        let mut onnx = tract_onnx::onnx();
        crate::dw_stride2::register(&mut onnx);
        crate::upsample_add::register(&mut onnx);
        crate::conv3x3::register(&mut onnx);
        let mut proto = onnx.proto_model_for_read(&mut Cursor::new(bytes))?;
        crate::dw_stride2::fuse(&mut proto);
        crate::upsample_add::fuse(&mut proto);
        if crate::conv3x3::worth_fusing() {
            crate::conv3x3::fuse(&mut proto);
        }
        onnx.model_for_proto_model(&proto)
    }

    /// The network size (multiples of 32) for an image of `w` x `h` at `scale`: the native and
    /// auto scales mean long side `long_side` (default [`DEFAULT_LONG_SIDE`]).
    pub fn network_size(w: u32, h: u32, scale: &DetectScale, long_side: Option<u32>) -> (u32, u32) {
        let (tw, th) = match scale {
            DetectScale::Native | DetectScale::Auto => {
                let f = long_side.unwrap_or(DEFAULT_LONG_SIDE) as f64 / w.max(h) as f64;
                ((w as f64 * f) as u32, (h as f64 * f) as u32)
            }
            other => other.target_size(w, h),
        };
        let round32 = |v: u32| ((v as f64 / 32.0).round().max(1.0) * 32.0) as u32;
        (round32(tw), round32(th))
    }

    /// The plan for a `w` x `h` input (built on first use of that size).
    pub fn plan(&self, w: u32, h: u32) -> Result<Plan, DetectError> {
        self.plans.get(w, h)
    }

    /// `image` resized to `w` x `h` with CLAHE on lightness, packed RGB8 (a quarter of the
    /// float input's bytes; bands are cut from it).
    fn prepared_rgb(image: &RgbImage<'_>, w: u32, h: u32) -> Vec<u8> {
        let (w, h) = (w as usize, h as usize);
        let mut rgb = resize_rgb(image, w, h);
        equalize_lightness(&mut rgb, w, h, &Clahe::default());
        rgb
    }

    /// The network input for rows `y0..y0 + rows` of a prepared `w`-wide image: BGR planes
    /// scaled to -1..1.
    fn band_input(rgb: &[u8], w: usize, y0: usize, rows: usize) -> Tensor {
        let plane = w * rows;
        // Written in place, so the input is never held twice.
        let mut tensor = Tensor::zero::<f32>(&[1, 3, rows, w]).expect("a plain f32 shape");
        let mut ram = tensor.try_as_plain_ram_mut().expect("a tensor in plain memory");
        let buf = ram.as_slice_mut::<f32>().expect("an f32 tensor");
        for (i, px) in rgb[y0 * w * 3..(y0 + rows) * w * 3].chunks_exact(3).enumerate() {
            // Channel order B, G, R.
            for (c, &v) in [px[2], px[1], px[0]].iter().enumerate() {
                buf[c * plane + i] = v as f32 / 127.5 - 1.0;
            }
        }
        tensor
    }

    /// The probability map of a prepared `w` x `h` image ([`Self::prepared_rgb`]) in one pass,
    /// or with `max_rows` in the horizontal bands of [`bands`], the higher probability kept
    /// where two overlap (privacy first: text half seen by one band is not lost).
    fn map(&self, rgb: &[u8], w: u32, h: u32, max_rows: Option<u32>) -> Result<ProbabilityMap, DetectError> {
        let layout = max_rows.map_or_else(|| vec![Band { y0: 0, rows: h }], |m| bands(h, m, BAND_OVERLAP));
        let plan = self.plan(w, layout[0].rows)?;
        if layout.len() == 1 {
            return Self::run(&plan, Self::band_input(rgb, w as usize, 0, h as usize), w, h);
        }
        let width = w as usize;
        let mut values = vec![0f32; width * h as usize];
        for band in &layout {
            let part = Self::run(&plan, Self::band_input(rgb, width, band.y0, band.rows as usize), w, band.rows)?;
            let rows = &mut values[band.y0 * width..(band.y0 + band.rows as usize) * width];
            for (v, &p) in rows.iter_mut().zip(&part.values) {
                *v = v.max(p);
            }
        }
        Ok(ProbabilityMap { values, w: width, h: h as usize })
    }

    /// Run the plan on a prepared input.
    pub fn run(plan: &Plan, input: Tensor, w: u32, h: u32) -> Result<ProbabilityMap, DetectError> {
        let outputs = plan.run(tvec!(input.into()))?;
        let out = outputs.first().ok_or_else(|| DetectError::Inference("the text detector gave no output".into()))?;
        let view = out.to_plain_array_view::<f32>()?;
        let (w, h) = (w as usize, h as usize);
        if view.len() != w * h {
            return Err(DetectError::Inference(format!(
                "text map has shape {:?}, expected {w}x{h}",
                view.shape()
            )));
        }
        Ok(ProbabilityMap { values: view.iter().copied().collect(), w, h })
    }
}

/// The text boxes of one image: source pixels, with their scores.
pub struct TextBoxes {
    pub boxes: Vec<(BBox, f32)>,
    network_input: (u32, u32),
    /// When preprocessing, inference and postprocessing started.
    started: [Instant; 3],
}

impl TextBoxes {
    /// The detector's answer: `detections` shaped from these boxes (postprocessing ends now).
    pub fn output(&self, detections: Vec<Detection>) -> DetectOutput {
        let [t0, t1, t2] = self.started;
        DetectOutput {
            detections,
            timings: StageTimings::between([t0, t1, t2, Instant::now()]),
            network_input: self.network_input,
        }
    }
}

impl TextMapNetwork {
    /// The regions (under `rule`) of the probability map of `image` at the network size
    /// `params` asks for, mapped back to the image's pixels.
    pub fn text_boxes(&self, image: &RgbImage<'_>, params: &DetectParams, rule: &RegionRule) -> Result<TextBoxes, DetectError> {
        let (nw, nh) = Self::network_size(image.width, image.height, &params.scale, params.plate_long_side);
        params.check_network_size(nw, nh)?;
        let t0 = Instant::now();
        let rgb = Self::prepared_rgb(image, nw, nh);
        let t1 = Instant::now();
        let map = self.map(&rgb, nw, nh, params.plate_band_rows)?;
        let t2 = Instant::now();
        let sx = image.width as f32 / nw as f32;
        let sy = image.height as f32 / nh as f32;
        let boxes = text_regions(&map, rule)
            .into_iter()
            .map(|r| {
                let b = r.bbox;
                (BBox { x1: b.x1 * sx, y1: b.y1 * sy, x2: b.x2 * sx, y2: b.y2 * sy }, r.score)
            })
            .collect();
        Ok(TextBoxes { boxes, network_input: (nw, nh), started: [t0, t1, t2] })
    }
}

/// Bilinear resize of packed RGB8 (pixel centres aligned).
fn resize_rgb(img: &RgbImage<'_>, tw: usize, th: usize) -> Vec<u8> {
    let (sw, sh) = (img.width as usize, img.height as usize);
    if (sw, sh) == (tw, th) {
        return img.data.to_vec();
    }
    let mut out = vec![0u8; tw * th * 3];
    let cols = bilinear_taps(sw, tw);
    for (y, (y0, y1, wy)) in bilinear_taps(sh, th).into_iter().enumerate() {
        let r0 = &img.data[y0 * sw * 3..(y0 + 1) * sw * 3];
        let r1 = &img.data[y1 * sw * 3..(y1 + 1) * sw * 3];
        let row = &mut out[y * tw * 3..(y + 1) * tw * 3];
        for (x, &(x0, x1, wx)) in cols.iter().enumerate() {
            for c in 0..3 {
                let top = r0[x0 * 3 + c] as f32 * (1.0 - wx) + r0[x1 * 3 + c] as f32 * wx;
                let bottom = r1[x0 * 3 + c] as f32 * (1.0 - wx) + r1[x1 * 3 + c] as f32 * wx;
                row[x * 3 + c] = (top * (1.0 - wy) + bottom * wy + 0.5) as u8;
            }
        }
    }
    out
}

/// What the tests of veil's graph rewrites share.
#[cfg(test)]
pub(crate) mod rewrite_tests {
    use std::io::Cursor;
    use tract_hir::internal::*;
    use tract_onnx::pb::ModelProto;

    /// Uniform noise in -1..1 from `seed`.
    pub fn noise(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (s >> 8) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0
            })
            .collect()
    }

    /// The whole text detector with a rewrite (its op registered, `rewrites` nodes rewritten)
    /// gives what it gives without, to 1e-4, on a 160x96 input of noise from `seed`.
    pub fn text_detector_agrees(register: fn(&mut tract_onnx::Onnx), fuse: fn(&mut ModelProto) -> usize, rewrites: usize, seed: u32) {
        let bytes = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/cache/ppocrv4-det.onnx"))
            .expect("models/cache/ppocrv4-det.onnx is missing: `make fp32` fetches it");
        let (h, w) = (96, 160);
        let input = Tensor::from_shape(&[1, 3, h, w], &noise(3 * h * w, seed)).unwrap();
        let run = |fused: bool| {
            let mut onnx = tract_onnx::onnx();
            register(&mut onnx);
            let mut proto = onnx.proto_model_for_read(&mut Cursor::new(&bytes)).unwrap();
            if fused {
                assert_eq!(fuse(&mut proto), rewrites);
            }
            let model = onnx.model_for_proto_model(&proto).unwrap().with_input_fact(0, f32::fact([1, 3, h, w]).into()).unwrap();
            model.into_optimized().unwrap().into_runnable().unwrap().run(tvec!(input.clone().into())).unwrap()
        };
        let (plain, fused) = (run(false), run(true));
        for (a, b) in plain.iter().zip(&fused) {
            let (a, b) = (a.to_plain_array_view::<f32>().unwrap(), b.to_plain_array_view::<f32>().unwrap());
            assert_eq!(a.shape(), b.shape());
            let worst = a.iter().zip(b.iter()).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
            assert!(worst <= 1e-4, "outputs differ by {worst}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_size_is_long_side_1600_by_default_in_multiples_of_32() {
        assert_eq!(TextMapNetwork::network_size(4000, 3000, &DetectScale::Native, None), (1600, 1216));
        assert_eq!(TextMapNetwork::network_size(640, 480, &DetectScale::Native, None), (1600, 1216));
        assert_eq!(TextMapNetwork::network_size(1280, 720, &DetectScale::Auto, Some(1280)), (1280, 736));
        assert_eq!(TextMapNetwork::network_size(640, 480, &DetectScale::Factor(1.0), None), (640, 480));
        assert_eq!(TextMapNetwork::network_size(10, 5, &DetectScale::Factor(1.0), None), (32, 32));
    }

    #[test]
    fn input_is_bgr_in_minus_one_to_one() {
        let data = [230u8, 20, 20].repeat(128 * 128);
        let img = RgbImage::new(&data, 128, 128).unwrap();
        let t = TextMapNetwork::band_input(&TextMapNetwork::prepared_rgb(&img, 128, 128), 128, 0, 128);
        assert_eq!(t.shape(), &[1, 3, 128, 128]);
        let v = t.to_plain_array_view::<f32>().unwrap();
        let v = v.as_slice().unwrap();
        // Blue plane first: red has little blue; red plane last, near its top.
        assert!(v[0] < -0.7, "{}", v[0]);
        assert!(v[2 * 128 * 128] > 0.7, "{}", v[2 * 128 * 128]);
    }

    #[test]
    fn a_band_is_cut_from_its_rows() {
        // Row y is grey level 10 * y: band rows 3..5 hold levels 30 and 40.
        let data: Vec<u8> = (0..8u8).flat_map(|y| [10 * y; 3 * 4]).collect();
        let t = TextMapNetwork::band_input(&data, 4, 3, 2);
        assert_eq!(t.shape(), &[1, 3, 2, 4]);
        let v = t.to_plain_array_view::<f32>().unwrap();
        assert_eq!(v[[0, 0, 0, 0]], 30.0 / 127.5 - 1.0);
        assert_eq!(v[[0, 2, 1, 3]], 40.0 / 127.5 - 1.0);
    }

    #[test]
    fn an_input_within_the_band_is_one_band() {
        assert_eq!(bands(480, 512, 32), vec![Band { y0: 0, rows: 480 }]);
        // Too few rows to keep anything beyond the overlap: one pass, not a thousand.
        assert_eq!(bands(2304, 64, 32).len(), 1);
    }

    #[test]
    fn a_720p_camera_frame_at_224_rows_is_four_bands() {
        let b = bands(736, 224, BAND_OVERLAP);
        assert_eq!(b.iter().map(|b| (b.y0, b.rows)).collect::<Vec<_>>(), [(0, 224), (170, 224), (341, 224), (512, 224)]);
    }

    #[test]
    fn bands_cover_every_row_within_the_limit_and_share_the_overlap() {
        for h in (32..=4096).step_by(32) {
            for &(max_rows, overlap) in &[(224, BAND_OVERLAP), (256, 64), (100, 16), (1024, 32)] {
                let b = bands(h, max_rows, overlap);
                let rows = b[0].rows;
                assert_eq!(rows % 32, 0, "{h}: {b:?}");
                if b.len() > 1 {
                    assert!(rows <= max_rows, "{h}: {b:?}");
                }
                assert_eq!(b[0].y0, 0);
                assert_eq!(b.last().map(|l| l.y0 + l.rows as usize), Some(h as usize), "{h}: {b:?}");
                for pair in b.windows(2) {
                    assert_eq!(pair[1].rows, rows, "one plan serves every band");
                    assert!(pair[0].y0 + rows as usize >= pair[1].y0 + overlap as usize, "{h} {max_rows}: {b:?}");
                }
            }
        }
    }
}
