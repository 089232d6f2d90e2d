//! YuNet (libfacedetection's network, weights from the yuface wheel rebuilt as ONNX by
//! `models/tool/yunet.py`): BGR 0..255 input, scores sqrt(cls x obj) at strides 8, 16 and 32,
//! boxes and five landmarks per cell.

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

/// The output strides, in the order of the model's outputs (cls, obj, bbox, kps per stride).
const STRIDES: [usize; 3] = [8, 16, 32];

/// The YuNet face detector over one fp32 model file.
pub struct YuNet {
    info: BackendInfo,
    plans: PlanCache,
}

impl YuNet {
    /// Parse the YuNet ONNX model. `threads` > 1 lets tract's matrix products use that many.
    pub fn from_bytes(bytes: &[u8], info: BackendInfo, threads: usize) -> Result<Self, DetectError> {
        let model = Self::graph(bytes)
            .map_err(|e| DetectError::ModelUnavailable { path: info.name.clone(), reason: format!("{e:#}") })?;
        let mut options = RunOptions::default();
        if threads > 1 {
            options.executor = Some(tract_linalg::multithread::Executor::multithread(threads));
        }
        Ok(Self { info, plans: PlanCache::new(model, options) })
    }

    /// The model as tract will optimize it: veil's fused ops (stem, 1x1 + depthwise units,
    /// 2x2 pool) written into the ONNX graph before tract parses it. Public for
    /// `examples/profile_ops.rs`.
    pub fn graph(bytes: &[u8]) -> TractResult<InferenceModel> {
        let mut onnx = tract_onnx::onnx();
        crate::pool2x2::register(&mut onnx);
        crate::yunet_stem::register(&mut onnx);
        crate::dp_unit::register(&mut onnx);
        let mut proto = onnx.proto_model_for_read(&mut Cursor::new(bytes))?;
        crate::yunet_stem::fuse(&mut proto);
        crate::dp_unit::fuse(&mut proto);
        onnx.model_for_proto_model(&proto)
    }

    /// Names of the ops of the optimized plan for a `w` x `h` network input.
    pub fn optimized_ops(&self, w: u32, h: u32) -> Result<Vec<String>, DetectError> {
        let model = self.plans.optimized_model(pad32(w), pad32(h))?;
        Ok(model.nodes().iter().map(|n| format!("{} ({})", n.op.name(), n.op.info().unwrap_or_default().join("; "))).collect())
    }
}

impl Detector for YuNet {
    fn info(&self) -> &BackendInfo {
        &self.info
    }

    fn detect(&self, image: &RgbImage<'_>, params: &DetectParams) -> Result<DetectOutput, DetectError> {
        params.validate()?;
        params.wanted(&self.info.categories)?;
        scan::detect_faces(self, image, params)
    }
}

impl FaceNetwork for YuNet {
    fn channel_order(&self) -> ChannelOrder {
        ChannelOrder::Bgr
    }

    fn prepare(&self, nw: u32, nh: u32) -> Result<(), DetectError> {
        self.plans.get(nw, nh).map(|_| ())
    }

    fn infer(&self, input: Tensor, nw: u32, nh: u32, w: u32, h: u32, min_score: f32) -> Result<(Vec<Detection>, f64), DetectError> {
        let plan = self.plans.get(nw, nh)?;
        let t = Instant::now();
        let outputs = plan.run(tvec!(input.into()))?;
        let inference_ms = t.elapsed().as_secs_f64() * 1000.0;
        if outputs.len() != 4 * STRIDES.len() {
            return Err(DetectError::Inference(format!("expected 12 outputs, got {}", outputs.len())));
        }
        let mut out = Vec::new();
        for (level, &stride) in STRIDES.iter().enumerate() {
            let (gw, gh) = (nw as usize / stride, nh as usize / stride);
            let plane = gw * gh;
            let map = |i: usize, channels: usize| -> Result<&[f32], DetectError> {
                let s = outputs[4 * level + i]
                    .to_plain_array_view::<f32>()?
                    .to_slice()
                    .ok_or_else(|| DetectError::Inference("a YuNet output is not contiguous".into()))?;
                if s.len() != channels * plane {
                    return Err(DetectError::Inference(format!(
                        "stride {stride} output {i} has {} values, expected {}",
                        s.len(),
                        channels * plane
                    )));
                }
                Ok(s)
            };
            let (cls, obj, reg, kps) = (map(0, 1)?, map(1, 1)?, map(2, 4)?, map(3, 10)?);
            let s = stride as f32;
            let (limit_x, limit_y) = (w as f32, h as f32);
            for cy in 0..gh {
                for cx in 0..gw {
                    let i = cy * gw + cx;
                    let score = (cls[i] * obj[i]).max(0.0).sqrt();
                    if !(score >= min_score) {
                        continue;
                    }
                    let (x, y) = (cx as f32, cy as f32);
                    let (mx, my) = ((reg[i] + x) * s, (reg[plane + i] + y) * s);
                    let (bw, bh) = (reg[2 * plane + i].exp() * s, reg[3 * plane + i].exp() * s);
                    let mut landmarks = [Point { x: 0.0, y: 0.0 }; 5];
                    for (k, p) in landmarks.iter_mut().enumerate() {
                        *p = Point { x: (kps[2 * k * plane + i] + x) * s, y: (kps[(2 * k + 1) * plane + i] + y) * s };
                    }
                    let bbox = BBox {
                        x1: (mx - bw / 2.0).clamp(0.0, limit_x),
                        y1: (my - bh / 2.0).clamp(0.0, limit_y),
                        x2: (mx + bw / 2.0).clamp(0.0, limit_x),
                        y2: (my + bh / 2.0).clamp(0.0, limit_y),
                    };
                    if bbox.x2 > bbox.x1 && bbox.y2 > bbox.y1 {
                        out.push(Detection { category: Category::Face, bbox, score, landmarks: Some(landmarks) });
                    }
                }
            }
        }
        Ok((out, inference_ms))
    }
}
