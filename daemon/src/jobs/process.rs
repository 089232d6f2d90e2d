//! One photo through decode -> detect -> mask -> encode, failing closed: any error yields no
//! pixels. Shared by queued jobs and the synchronous routes.

use std::time::Instant;

use image::ImageFormat;
use serde::Serialize;
use veil_models::{Detection, Detector};

use super::options::ResolvedOptions;
use crate::photo::{decode, encode, DecodeLimits, OutputFormat, PhotoError};
use crate::redaction::Redactor;

/// Stage timings of one photo, in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct ProcessTimings {
    pub decode_ms: f64,
    pub preprocess_ms: f64,
    pub inference_ms: f64,
    pub postprocess_ms: f64,
    pub mask_ms: f64,
    pub encode_ms: f64,
    pub total_ms: f64,
}

/// A redacted photo, ready to store or send.
pub struct Processed {
    /// The encoded image (empty for detect-only requests).
    pub encoded: Vec<u8>,
    pub format: OutputFormat,
    pub width: u32,
    pub height: u32,
    pub source_format: ImageFormat,
    /// What the request asked to see (its thresholds, categories and face limit).
    pub detections: Vec<Detection>,
    /// Everything masked (for detect-only requests: everything found at the masking floor), a
    /// superset of `detections`.
    pub masked: Vec<Detection>,
    pub network_input: (u32, u32),
    pub timings: ProcessTimings,
}

/// Why a photo produced no output.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The upload itself is unusable (the client's fault).
    #[error("{0}")]
    Image(#[from] PhotoError),
    #[error("No face detected")]
    NoFace,
    #[error("detection failed: {0}")]
    Detection(String),
    #[error("{0}")]
    Internal(String),
    /// Not enough of the memory budget (`api.max_decode_megabytes`) for this photo.
    #[error("{0}")]
    Budget(#[from] super::memory_budget::BudgetError),
}

/// The detections of a job as stored: `[{category, score, box: [x1, y1, x2, y2]}]` in pixels.
pub fn detections_json(dets: &[Detection]) -> String {
    let v: Vec<_> = dets
        .iter()
        .map(|d| {
            serde_json::json!({
                "category": d.category.as_str(),
                "score": (d.score as f64 * 10000.0).round() / 10000.0,
                "box": [d.bbox.x1.round(), d.bbox.y1.round(), d.bbox.x2.round(), d.bbox.y2.round()],
            })
        })
        .collect();
    serde_json::Value::Array(v).to_string()
}

/// Redact `bytes`. Metadata is never carried over (EXIF, GPS and all).
pub fn process_photo(
    bytes: &[u8],
    opts: &ResolvedOptions,
    detector: &std::sync::Arc<dyn Detector>,
    limits: &DecodeLimits,
) -> Result<Processed, ProcessError> {
    let start = Instant::now();
    let mut photo = decode(bytes, limits)?;
    let decode_ms = start.elapsed().as_secs_f64() * 1000.0;
    let (width, height) = photo.image.dimensions();
    if opts.detect_only {
        let view = veil_models::RgbImage::new(photo.image.as_raw(), width, height)
            .map_err(|e| ProcessError::Internal(e.to_string()))?;
        let out = veil_models::rotations::detect(&**detector, &view, &opts.params).map_err(|e| ProcessError::Detection(e.to_string()))?;
        let d = out.timings;
        return Ok(Processed {
            encoded: Vec::new(),
            format: OutputFormat::Png,
            width,
            height,
            source_format: photo.format,
            detections: opts.report.apply(&out.detections),
            masked: out.detections,
            network_input: out.network_input,
            timings: ProcessTimings {
                decode_ms,
                preprocess_ms: d.preprocess_ms,
                inference_ms: d.inference_ms,
                postprocess_ms: d.postprocess_ms,
                total_ms: start.elapsed().as_secs_f64() * 1000.0,
                ..Default::default()
            },
        });
    }
    let redactor = Redactor { detector: detector.clone(), params: opts.params, style: opts.style };
    let report = redactor.redact_in_place(&mut photo.image).map_err(|e| ProcessError::Detection(e.to_string()))?;
    let reported = opts.report.apply(&report.detections);
    if opts.require_face && reported.is_empty() {
        return Err(ProcessError::NoFace);
    }
    let format = opts.format.unwrap_or(match photo.format {
        ImageFormat::Png => OutputFormat::Png,
        ImageFormat::WebP => OutputFormat::WebP,
        _ => OutputFormat::Jpeg { quality: opts.quality },
    });
    let t = Instant::now();
    let encoded = encode(&photo.image, format, None, None).map_err(|e| ProcessError::Internal(e.to_string()))?;
    let encode_ms = t.elapsed().as_secs_f64() * 1000.0;
    let d = report.timings.detect;
    Ok(Processed {
        encoded,
        format,
        width,
        height,
        source_format: photo.format,
        detections: reported,
        masked: report.detections,
        network_input: report.network_input,
        timings: ProcessTimings {
            decode_ms,
            preprocess_ms: d.preprocess_ms,
            inference_ms: d.inference_ms,
            postprocess_ms: d.postprocess_ms,
            mask_ms: report.timings.mask_ms,
            encode_ms,
            total_ms: start.elapsed().as_secs_f64() * 1000.0,
        },
    })
}
