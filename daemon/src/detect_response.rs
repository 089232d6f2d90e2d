//! The JSON body of a detection result, shaped like the Xylolabs face-api `DetectResponse`
//! (boxes in pixels and relative to the image, size/area/centre per face, a summary, timings).

use serde::Serialize;
use veil_models::{BackendInfo, Detection};

use crate::redaction::RedactionTimings;

#[derive(Debug, Serialize)]
pub struct Size {
    pub width: u32,
    pub height: u32,
}

#[derive(Debug, Serialize)]
pub struct FloatSize {
    pub width: f64,
    pub height: f64,
}

#[derive(Debug, Serialize)]
pub struct XY {
    pub x: f64,
    pub y: f64,
}

#[derive(Debug, Serialize)]
pub struct Corners {
    pub x1: f64,
    pub y1: f64,
    pub x2: f64,
    pub y2: f64,
}

#[derive(Debug, Serialize)]
pub struct DetectionJson {
    pub category: &'static str,
    pub bbox: Corners,
    pub confidence: f64,
    pub landmarks: Option<Vec<XY>>,
    pub size: FloatSize,
    pub area: f64,
    pub center: XY,
    /// The box as fractions (0..1) of the image width and height.
    pub relative: Corners,
}

#[derive(Debug, Serialize)]
pub struct Summary {
    pub count: usize,
    pub max_confidence: Option<f64>,
    pub mean_confidence: Option<f64>,
    /// Share of the image area covered by boxes (overlaps counted twice).
    pub covered_fraction: f64,
}

#[derive(Debug, Serialize)]
pub struct Profiling {
    pub decode_ms: f64,
    pub preprocess_ms: f64,
    pub inference_ms: f64,
    pub postprocess_ms: f64,
}

#[derive(Debug, Serialize)]
pub struct ModelJson {
    pub backend: String,
    pub precision: String,
    pub version: String,
}

#[derive(Debug, Serialize)]
pub struct DetectResponse {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    pub image: Size,
    pub network_input: Size,
    pub detections: Vec<DetectionJson>,
    pub summary: Summary,
    pub model: ModelJson,
    pub processing_ms: f64,
    pub profiling: Profiling,
}

fn r(v: f32) -> f64 {
    (v as f64 * 100.0).round() / 100.0
}

fn r4(v: f32) -> f64 {
    (v as f64 * 10000.0).round() / 10000.0
}

fn r3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

impl DetectResponse {
    #[allow(clippy::too_many_arguments)]
    pub fn build(
        file: Option<String>,
        (w, h): (u32, u32),
        network_input: (u32, u32),
        detections: &[Detection],
        backend: &BackendInfo,
        decode_ms: f64,
        timings: &RedactionTimings,
        processing_ms: f64,
    ) -> Self {
        let (fw, fh) = (w as f32, h as f32);
        let dets: Vec<DetectionJson> = detections
            .iter()
            .map(|d| {
                let b = d.bbox;
                DetectionJson {
                    category: d.category.as_str(),
                    bbox: Corners { x1: r(b.x1), y1: r(b.y1), x2: r(b.x2), y2: r(b.y2) },
                    confidence: r4(d.score),
                    landmarks: d.landmarks.map(|l| l.iter().map(|p| XY { x: r(p.x), y: r(p.y) }).collect()),
                    size: FloatSize { width: r(b.width()), height: r(b.height()) },
                    area: r(b.area()),
                    center: XY { x: r((b.x1 + b.x2) / 2.0), y: r((b.y1 + b.y2) / 2.0) },
                    relative: Corners { x1: r4(b.x1 / fw), y1: r4(b.y1 / fh), x2: r4(b.x2 / fw), y2: r4(b.y2 / fh) },
                }
            })
            .collect();
        let n = detections.len();
        let summary = Summary {
            count: n,
            max_confidence: detections.iter().map(|d| d.score).reduce(f32::max).map(r4),
            mean_confidence: (n > 0).then(|| r4(detections.iter().map(|d| d.score).sum::<f32>() / n as f32)),
            covered_fraction: r4(detections.iter().map(|d| d.bbox.area()).sum::<f32>() / (fw * fh)),
        };
        DetectResponse {
            file,
            image: Size { width: w, height: h },
            network_input: Size { width: network_input.0, height: network_input.1 },
            detections: dets,
            summary,
            model: ModelJson {
                backend: backend.name.clone(),
                precision: backend.precision.to_string(),
                version: backend.version.clone(),
            },
            processing_ms: r3(processing_ms),
            profiling: Profiling {
                decode_ms: r3(decode_ms),
                preprocess_ms: r3(timings.detect.preprocess_ms),
                inference_ms: r3(timings.detect.inference_ms),
                postprocess_ms: r3(timings.detect.postprocess_ms),
            },
        }
    }
}
