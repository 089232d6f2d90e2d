//! `veil bench --plates`: the plates backend's stages (resize + CLAHE, inference, regions) at
//! three network sizes, on one and all cores, against onnxruntime running the same text
//! detector at the same sizes in the same run.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;
use veil_models::{DetectParams, DetectScale, Precision};

use super::bench::{stat, Reference, Stat};
use crate::photo::{decode, DecodeLimits};

#[derive(Debug, Serialize)]
pub struct PlateCase {
    /// Network input, WxH.
    pub network: String,
    pub threads: usize,
    pub plates: usize,
    pub preprocess: Stat,
    pub inference: Stat,
    pub postprocess: Stat,
    pub total: Stat,
}

#[derive(Debug, Serialize)]
pub struct PlateReport {
    pub photo: String,
    pub cases: Vec<PlateCase>,
    pub onnxruntime: Option<String>,
    pub reference: Vec<Reference>,
}

/// The bench photo: `--image`, else the Czech car of the plate fixtures.
fn photo(explicit: &Option<PathBuf>) -> anyhow::Result<(String, image::RgbImage)> {
    let path = explicit
        .clone()
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cache/plates/cz/skoda.png"));
    let bytes = std::fs::read(&path).map_err(|e| anyhow::anyhow!("{}: {e} (run `make fixtures` or give --image)", path.display()))?;
    Ok((path.display().to_string(), decode(&bytes, &DecodeLimits::default())?.image))
}

pub fn run(
    registry: &veil_models::Registry,
    image: &Option<PathBuf>,
    iterations: usize,
    thread_counts: &[usize],
    reference: bool,
) -> anyhow::Result<PlateReport> {
    let (name, img) = photo(image)?;
    let view = veil_models::RgbImage::new(img.as_raw(), img.width(), img.height())?;
    // Long side 640 and 1280, and the backend's own choice (long side 1600).
    let scales = [DetectScale::Fit { w: 640, h: 640 }, DetectScale::Fit { w: 1280, h: 1280 }, DetectScale::Native];
    let mut cases = Vec::new();
    for &threads in thread_counts {
        let detector = registry.create("plates", Precision::Fp32, threads)?;
        for scale in scales {
            let params = DetectParams { scale, ..DetectParams::default() };
            let mut s: [Vec<f64>; 4] = Default::default();
            let (mut plates, mut network) = (0, (0, 0));
            for i in 0..=iterations {
                let t = Instant::now();
                let out = detector.detect(&view, &params)?;
                let total = t.elapsed().as_secs_f64() * 1000.0;
                if i == 0 {
                    continue; // warm-up: builds the plan for this size
                }
                plates = out.detections.len();
                network = out.network_input;
                s[0].push(out.timings.preprocess_ms);
                s[1].push(out.timings.inference_ms);
                s[2].push(out.timings.postprocess_ms);
                s[3].push(total);
            }
            let [pre, inf, post, total] = s;
            cases.push(PlateCase {
                network: format!("{}x{}", network.0, network.1),
                threads,
                plates,
                preprocess: stat(pre),
                inference: stat(inf),
                postprocess: stat(post),
                total: stat(total),
            });
        }
    }
    let (onnxruntime, reference) = if reference {
        let mut sizes: Vec<String> = cases.iter().map(|c| c.network.clone()).collect();
        sizes.dedup();
        sizes.truncate(scales.len());
        super::bench::run_reference(registry, "plates", &sizes.join(","), iterations, thread_counts)?
    } else {
        (None, Vec::new())
    };
    Ok(PlateReport { photo: name, cases, onnxruntime, reference })
}

pub fn print(r: &PlateReport) {
    println!("plates backend on {}, medians (p95) in ms:", r.photo);
    println!(
        "{:<10} {:>3} {:>6} | {:>15} {:>15} {:>15} {:>15} | {:>13}",
        "network", "thr", "plates", "resize+CLAHE", "inference", "regions", "total", "/onnxruntime"
    );
    let f = |s: &Stat| format!("{:.1} ({:.1})", s.median_ms, s.p95_ms);
    for c in &r.cases {
        let ratio = r
            .reference
            .iter()
            .find(|x| x.size == c.network && x.threads == c.threads)
            .map(|x| format!("{:.2}", c.inference.median_ms / x.median_ms))
            .unwrap_or_else(|| "-".into());
        println!(
            "{:<10} {:>3} {:>6} | {:>15} {:>15} {:>15} {:>15} | {:>13}",
            c.network,
            c.threads,
            c.plates,
            f(&c.preprocess),
            f(&c.inference),
            f(&c.postprocess),
            f(&c.total),
            ratio
        );
    }
    if let Some(v) = &r.onnxruntime {
        println!("(last column: veil inference / onnxruntime {v} inference on the same model and size)");
    }
}
