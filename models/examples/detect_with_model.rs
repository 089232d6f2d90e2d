//! Model experiments: `veil detect`'s JSON for any CenterFace ONNX file, bypassing the manifest
//! (the product refuses unlisted files). Called by `models/tool/eval_faces.py --veil` through a
//! wrapper: `detect_with_model MODEL.onnx detect FILES... [--confidence C] [--scale S]`.

use veil_models::{BackendInfo, CenterFace, Category, DetectParams, DetectScale, Detector, Precision, RgbImage};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let model = std::fs::read(&args[0])?;
    let mut files = Vec::new();
    let mut params = DetectParams::default();
    let mut i = 2; // skip MODEL and "detect"
    while i < args.len() {
        match args[i].as_str() {
            "--confidence" => {
                params.confidence = args[i + 1].parse()?;
                i += 2;
            }
            "--scale" => {
                params.scale = args[i + 1].parse::<DetectScale>()?;
                i += 2;
            }
            a if a.starts_with("--") => i += 2,
            f => {
                files.push(f.to_string());
                i += 1;
            }
        }
    }
    let info = BackendInfo {
        name: "centerface".into(),
        version: "experiment".into(),
        categories: vec![Category::Face],
        precision: Precision::Int8,
        sha256: String::new(),
        input_multiple: 32,
        input_layout: "NCHW".into(),
        available: true,
        auto_probe: None,
    };
    let detector = CenterFace::from_bytes(&model, info, 1)?;
    let mut out = Vec::new();
    for f in &files {
        let img = image::open(f)?.into_rgb8();
        let (w, h) = img.dimensions();
        let dets = detector.detect(&RgbImage::new(img.as_raw(), w, h)?, &params)?;
        let list: Vec<_> = dets
            .detections
            .iter()
            .map(|d| {
                serde_json::json!({"bbox": {"x1": d.bbox.x1, "y1": d.bbox.y1, "x2": d.bbox.x2, "y2": d.bbox.y2},
                    "confidence": d.score})
            })
            .collect();
        out.push(serde_json::json!({"file": f, "detections": list}));
    }
    println!("{}", serde_json::Value::Array(out));
    Ok(())
}
