//! `veil eval SET`: run a detector over a labelled photo set and score it: recall, precision and
//! AP for faces (WIDER format), the share of fully masked plates and precision per region for
//! licence plates. Evaluation sets stay outside the project (e.g. `../shared/eval/`).

use std::path::Path;

use crate::cli::EvalCmd;
use crate::evaluation::{faces, plates, Box4};
use crate::photo::{decode, DecodeLimits};

pub fn run(cmd: EvalCmd) -> anyhow::Result<i32> {
    anyhow::ensure!((0.0..=1.0).contains(&cmd.iou), "--iou must be within 0..1");
    anyhow::ensure!((0.0..=1.0).contains(&cmd.min_cover), "--min-cover must be within 0..1");
    anyhow::ensure!((0.0..=2.0).contains(&cmd.padding), "--padding must be within 0..2");
    let wider = cmd.set.join("gt_wider_format.txt");
    if wider.is_file() {
        eval_faces(&cmd, &wider)
    } else {
        eval_plates(&cmd)
    }
}

/// Detections (box, score) in one photo; a photo that cannot be read is an error, not a miss.
fn detect(detector: &dyn veil_models::Detector, params: &veil_models::DetectParams, path: &Path) -> anyhow::Result<Vec<(Box4, f32)>> {
    let bytes = std::fs::read(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let photo = decode(&bytes, &DecodeLimits::default()).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let (w, h) = photo.image.dimensions();
    let view = veil_models::RgbImage::new(photo.image.as_raw(), w, h)?;
    let out = veil_models::rotations::detect(detector, &view, params)?;
    Ok(out.detections.iter().map(|d| ([d.bbox.x1, d.bbox.y1, d.bbox.x2, d.bbox.y2], d.score)).collect())
}

fn describe(cmd: &EvalCmd, detector: &dyn veil_models::Detector) -> String {
    let info = detector.info();
    format!("{}-{}, confidence {}, scale {:?}", info.name, info.precision, cmd.detector.confidence, cmd.detector.scale)
}

fn eval_faces(cmd: &EvalCmd, gt_path: &Path) -> anyhow::Result<i32> {
    let gt = faces::read_wider(&std::fs::read_to_string(gt_path)?)?;
    let detector = super::build_detector(&cmd.detector, cmd.detector.thread_count())?;
    let params = cmd.detector.params();
    let images_dir = cmd.set.join("images");
    let mut scored = Vec::with_capacity(gt.len());
    for (name, labelled) in gt {
        // Stored flat (`images/NAME.jpg`) or in WIDER's event folders (`images/0--Parade/...`).
        let nested = images_dir.join(&name);
        let flat = images_dir.join(Path::new(&name).file_name().unwrap_or_default());
        let path = if nested.is_file() { nested } else { flat };
        scored.push((labelled, detect(detector.as_ref(), &params, &path)?));
    }
    let s = faces::score(&scored, cmd.iou);
    if cmd.json {
        println!("{}", serde_json::json!({"set": cmd.set, "kind": "faces", "detector": describe(cmd, detector.as_ref()), "score": s}));
    } else {
        println!("faces: {} photos, {} labelled faces (easy {}, medium {}, hard {}); {}", s.images, s.faces_hard, s.faces_easy, s.faces_medium, s.faces_hard, describe(cmd, detector.as_ref()));
        println!(
            "recall easy {:.3}  medium {:.3}  hard {:.3}  precision {:.3}  AP {:.3}  ({} detections, IoU {})",
            s.recall_easy, s.recall_medium, s.recall_hard, s.precision, s.ap, s.detections, s.iou_threshold
        );
    }
    Ok(0)
}

fn pad(b: Box4, p: f32) -> Box4 {
    let (w, h) = (b[2] - b[0], b[3] - b[1]);
    [b[0] - p * w, b[1] - p * h, b[2] + p * w, b[3] + p * h]
}

fn eval_plates(cmd: &EvalCmd) -> anyhow::Result<i32> {
    let set = plates::read_set(&cmd.set)?;
    anyhow::ensure!(
        !set.is_empty(),
        "{}: neither gt_wider_format.txt (faces) nor plate label files (REGION/NAME.txt)",
        cmd.set.display()
    );
    let detector = super::build_detector(&cmd.detector, cmd.detector.thread_count())?;
    let params = cmd.detector.params();
    let mut masks = Vec::with_capacity(set.len());
    for photo in &set {
        let found = detect(detector.as_ref(), &params, &photo.image)?;
        masks.push(found.into_iter().map(|(b, _)| pad(b, cmd.padding)).collect::<Vec<_>>());
    }
    let mut regions: Vec<String> = set.iter().map(|p| p.region.clone()).collect();
    regions.dedup();
    let mut scores = Vec::new();
    for region in regions.iter().map(String::as_str).chain(std::iter::once("all")) {
        let photos: Vec<(&plates::PlatePhoto, Vec<Box4>)> = set
            .iter()
            .zip(&masks)
            .filter(|(p, _)| region == "all" || p.region == region)
            .map(|(p, m)| (p, m.clone()))
            .collect();
        if region == "all" && regions.len() == 1 {
            break;
        }
        scores.push(plates::score(region, &photos, cmd.min_cover));
    }
    if cmd.json {
        println!(
            "{}",
            serde_json::json!({"set": cmd.set, "kind": "plates", "detector": describe(cmd, detector.as_ref()),
                "min_cover": cmd.min_cover, "padding": cmd.padding, "regions": scores})
        );
    } else {
        println!("plates: {}; masks padded by {}, fully masked = {:.0} % of the characters' area covered", describe(cmd, detector.as_ref()), cmd.padding, cmd.min_cover * 100.0);
        println!("{:<8} {:>6} {:>6} {:>14} {:>14} {:>10}", "region", "photos", "plates", "fully masked", "half covered", "precision");
        for s in &scores {
            println!(
                "{:<8} {:>6} {:>6} {:>7} {:>5.1} % {:>7} {:>5.1} % {:>10.3}",
                s.region,
                s.photos,
                s.plates,
                s.fully_masked,
                s.fully_masked_share * 100.0,
                s.half_covered,
                if s.plates == 0 { 0.0 } else { s.half_covered as f64 * 100.0 / s.plates as f64 },
                s.precision
            );
        }
    }
    Ok(0)
}
