//! `veil detect IMG...`: print detections as JSON, one object per image (an array for several).

use std::time::Instant;

use crate::cli::DetectCmd;
use crate::detect_response::DetectResponse;
use crate::photo::{decode, DecodeLimits};
use crate::redaction::RedactionTimings;

/// One image's line of output: its detections, or why it could not be read.
#[derive(serde::Serialize)]
#[serde(untagged)]
enum Outcome {
    Ok(DetectResponse),
    Failed { file: String, error: String },
}

pub fn run(cmd: DetectCmd) -> anyhow::Result<i32> {
    let detector = super::build_detector(&cmd.detector, cmd.detector.thread_count())?;
    let params = cmd.detector.params();
    let limits = DecodeLimits::default();
    let mut results = Vec::new();
    let mut failed = 0;
    for path in &cmd.images {
        let t0 = Instant::now();
        let outcome = std::fs::read(path)
            .map_err(|e| e.to_string())
            .and_then(|bytes| decode(&bytes, &limits).map_err(|e| e.to_string()))
            .and_then(|photo| {
                let decode_ms = t0.elapsed().as_secs_f64() * 1000.0;
                let (w, h) = photo.image.dimensions();
                let view = veil_models::RgbImage::new(photo.image.as_raw(), w, h).map_err(|e| e.to_string())?;
                let out = veil_models::rotations::detect(&*detector, &view, &params).map_err(|e| e.to_string())?;
                let timings = RedactionTimings { detect: out.timings, mask_ms: 0.0 };
                Ok(DetectResponse::build(
                    Some(path.display().to_string()),
                    (w, h),
                    out.network_input,
                    &out.detections,
                    detector.info(),
                    decode_ms,
                    &timings,
                    t0.elapsed().as_secs_f64() * 1000.0,
                ))
            });
        match outcome {
            Ok(resp) => results.push(Outcome::Ok(resp)),
            Err(error) => {
                failed += 1;
                eprintln!("veil: {}: {error}", path.display());
                results.push(Outcome::Failed { file: path.display().to_string(), error });
            }
        }
    }
    let text = match (results.len(), cmd.pretty) {
        (1, true) => serde_json::to_string_pretty(&results[0])?,
        (1, false) => serde_json::to_string(&results[0])?,
        (_, true) => serde_json::to_string_pretty(&results)?,
        (_, false) => serde_json::to_string(&results)?,
    };
    println!("{text}");
    Ok(if failed > 0 { 1 } else { 0 })
}
