//! `veil eval` on small labelled sets built at test time from the fixture photos: the WIDER face
//! format and the plate label format, scored end to end through the real detector.

mod common;

use common::*;
use serde_json::Value;

fn eval_json(set: &std::path::Path, extra: &[&str]) -> Value {
    let mut args = vec!["eval", set.to_str().unwrap(), "--json", "--threads", "1"];
    args.extend_from_slice(extra);
    let out = veil_ok(&args);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

#[test]
fn faces_in_wider_format_are_scored() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("images/1--Group")).unwrap();
    std::fs::copy(photo("group6.jpg"), tmp.path().join("images/1--Group/group6.jpg")).unwrap();
    std::fs::copy(photo("coffee.png"), tmp.path().join("images/coffee.png")).unwrap();
    let faces = ground_truth("group6.gt");
    let mut gt = format!("1--Group/group6.jpg\n{}\n", faces.len() + 1);
    for (i, f) in faces.iter().enumerate() {
        let level = if i < 3 { "easy" } else { "hard" };
        gt += &format!("{} {} {} {} 0 0 0 0 0 0 {level}\n", f[0], f[1], f[2] - f[0], f[3] - f[1]);
    }
    // A labelled face where there is none: found by nobody, and marked ignore, so it costs nothing.
    gt += "10 10 20 20 0 0 0 0 0 0 ignore\ncoffee.png\n0\n0 0 0 0 0 0 0 0 0 0\n";
    std::fs::write(tmp.path().join("gt_wider_format.txt"), gt).unwrap();
    let v = eval_json(tmp.path(), &[]);
    assert_eq!(v["kind"], "faces");
    let s = &v["score"];
    assert_eq!((s["images"].as_u64(), s["faces_easy"].as_u64(), s["faces_hard"].as_u64()), (Some(2), Some(3), Some(6)));
    assert_eq!(s["recall_easy"], 1.0, "{s}");
    assert_eq!(s["recall_hard"], 1.0, "{s}");
    assert_eq!(s["precision"], 1.0, "{s}");
    assert!(s["ap"].as_f64().unwrap() > 0.99, "{s}");
    // A stricter IoU than the boxes meet loses faces: the scoring really compares boxes.
    let strict = eval_json(tmp.path(), &["--iou", "0.95"]);
    assert!(strict["score"]["recall_hard"].as_f64().unwrap() < 1.0, "{strict}");
}

/// A crowd: the group photo shrunk to `cell` px wide, twelve times over (4 x 3), with its six
/// labelled faces in each copy (72 faces of about `cell` / 10 px), as a WIDER-format set.
fn crowd_set(dir: &std::path::Path, cell: u32) {
    let group = load_rgb(&photo("group6.jpg"));
    let f = cell as f32 / group.width() as f32;
    let ch = (group.height() as f32 * f).round() as u32;
    let small = image::imageops::resize(&group, cell, ch, image::imageops::FilterType::Triangle);
    let mut crowd = image::RgbImage::new(4 * cell, 3 * ch);
    let mut lines = Vec::new();
    for r in 0..3 {
        for c in 0..4 {
            image::imageops::replace(&mut crowd, &small, (c * cell) as i64, (r * ch) as i64);
            for b in ground_truth("group6.gt") {
                let (x, y) = ((c * cell) as f32 + b[0] * f, (r * ch) as f32 + b[1] * f);
                lines.push(format!("{x} {y} {} {} 0 0 0 0 0 0 hard", (b[2] - b[0]) * f, (b[3] - b[1]) * f));
            }
        }
    }
    std::fs::create_dir_all(dir.join("images")).unwrap();
    crowd.save(dir.join("images/crowd.png")).unwrap();
    std::fs::write(dir.join("gt_wider_format.txt"), format!("crowd.png\n{}\n{}\n", lines.len(), lines.join("\n"))).unwrap();
}

#[test]
fn the_default_operating_point_finds_small_faces_the_old_one_missed() {
    // 640x333 with faces of 13-16 px: the privacy-first default (YuNet, confidence 0.25 on a
    // copy upscaled to 1024) finds every labelled face; CenterFace at its old default
    // (confidence 0.5, native scale) misses some.
    let tmp = tempfile::tempdir().unwrap();
    crowd_set(tmp.path(), 160);
    let s = &eval_json(tmp.path(), &[])["score"];
    assert_eq!(s["faces_hard"], 72);
    assert!(s["recall_hard"].as_f64().unwrap() >= 0.97, "default: {s}");
    assert!(s["precision"].as_f64().unwrap() >= 0.6, "default: {s}");
    let old = &eval_json(tmp.path(), &["--backend", "centerface", "--precision", "int8", "--scale", "native", "--confidence", "0.5"])["score"];
    assert!(old["recall_hard"].as_f64().unwrap() < 0.9, "old default: {old}");
}

#[test]
fn faces_of_16_px_in_a_4k_frame_are_found_through_the_tiles() {
    // A 3840x2160 frame (tiled: no single network input holds it) with twelve copies of the
    // group photo shrunk so each face is about 16 px wide, spread over the frame and across
    // the tiles' seams.
    let tmp = tempfile::tempdir().unwrap();
    let group = load_rgb(&photo("group6.jpg"));
    let cell = 205u32;
    let f = cell as f32 / group.width() as f32;
    let ch = (group.height() as f32 * f).round() as u32;
    let small = image::imageops::resize(&group, cell, ch, image::imageops::FilterType::Triangle);
    let mut frame = image::RgbImage::from_pixel(3840, 2160, image::Rgb([96, 104, 98]));
    let mut lines = Vec::new();
    for r in 0..3u32 {
        for c in 0..4u32 {
            let (x0, y0) = (60 + c * 1000, 100 + r * 720);
            image::imageops::replace(&mut frame, &small, x0 as i64, y0 as i64);
            for b in ground_truth("group6.gt") {
                let (x, y) = (x0 as f32 + b[0] * f, y0 as f32 + b[1] * f);
                lines.push(format!("{x} {y} {} {} 0 0 0 0 0 0 hard", (b[2] - b[0]) * f, (b[3] - b[1]) * f));
            }
        }
    }
    std::fs::create_dir_all(tmp.path().join("images")).unwrap();
    frame.save(tmp.path().join("images/frame4k.png")).unwrap();
    std::fs::write(tmp.path().join("gt_wider_format.txt"), format!("frame4k.png\n{}\n{}\n", lines.len(), lines.join("\n"))).unwrap();
    let s = &eval_json(tmp.path(), &[])["score"];
    assert_eq!(s["faces_hard"], 72);
    assert!(s["recall_hard"].as_f64().unwrap() >= 0.95, "{s}");
}

#[test]
fn plate_labels_are_scored_per_region_with_coverage() {
    // The face detector on a plate-format set whose "plates" are the labelled faces grown by half
    // their size on every side: the face boxes alone cover a quarter of each, padded by half
    // they cover all of it.
    let tmp = tempfile::tempdir().unwrap();
    let region = tmp.path().join("eu");
    std::fs::create_dir_all(&region).unwrap();
    std::fs::copy(photo("group6.jpg"), region.join("group6.jpg")).unwrap();
    let labels: String = ground_truth("group6.gt")
        .iter()
        .map(|f| {
            let (w, h) = (f[2] - f[0], f[3] - f[1]);
            format!("group6.jpg\t{}\t{}\t{}\t{}\tFACE\n", f[0] - w / 2.0, f[1] - h / 2.0, 2.0 * w, 2.0 * h)
        })
        .collect();
    std::fs::write(region.join("group6.txt"), labels).unwrap();
    let v = eval_json(tmp.path(), &["--padding", "0.55"]);
    assert_eq!(v["kind"], "plates");
    let eu = &v["regions"][0];
    assert_eq!(eu["region"], "eu");
    assert_eq!((eu["plates"].as_u64(), eu["fully_masked"].as_u64()), (Some(6), Some(6)), "{eu}");
    assert_eq!(eu["precision"], 1.0);
    let bare = &eval_json(tmp.path(), &[])["regions"][0];
    assert_eq!((bare["fully_masked"].as_u64(), bare["half_covered"].as_u64()), (Some(0), Some(0)), "{bare}");
    assert_eq!(bare["precision"], 1.0, "every box lies on a labelled plate");
    assert_eq!(bare["missed"].as_array().unwrap().len(), 6);
    // Not a labelled set: a clear error.
    let empty = tempfile::tempdir().unwrap();
    let out = veil(&["eval", empty.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("neither gt_wider_format.txt"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn the_plates_backend_masks_every_fetched_plate() {
    // The 19 real plate photos `make fixtures` fetches (18 Vietnamese car fronts, one Czech car
    // rear), each with one labelled plate.
    let set = root().join("tests/fixtures/cache/plates");
    assert!(set.join("cz/skoda.txt").is_file(), "run `make fixtures` (make test does)");
    let v = eval_json(&set, &["--backend", "plates"]);
    let all = v["regions"].as_array().unwrap().iter().find(|r| r["region"] == "all").unwrap().clone();
    assert_eq!(all["plates"].as_u64(), Some(19), "{v}");
    let share = all["fully_masked_share"].as_f64().unwrap();
    assert!(share >= 0.94, "only {:.0} % of the plates fully masked: {v}", share * 100.0);
    assert!(all["precision"].as_f64().unwrap() >= 0.5, "{v}");
    assert!(v["detector"].as_str().unwrap().starts_with("plates-fp32"), "{v}");
}

#[test]
fn the_plate_detector_in_bands_still_masks_the_fetched_plates() {
    // camera.plate_band_rows: the network worked in horizontal bands (less memory); at 128 rows
    // a 1280-wide photo is cut into about ten, so most plates lie across a cut.
    let set = root().join("tests/fixtures/cache/plates");
    assert!(set.join("cz/skoda.txt").is_file(), "run `make fixtures` (make test does)");
    for rows in ["224", "128"] {
        let v = eval_json(&set, &["--backend", "plates", "--plate-long-side", "1280", "--plate-band-rows", rows]);
        let all = v["regions"].as_array().unwrap().iter().find(|r| r["region"] == "all").unwrap().clone();
        assert_eq!(all["plates"].as_u64(), Some(19), "{v}");
        let share = all["fully_masked_share"].as_f64().unwrap();
        assert!(share >= 0.94, "bands of {rows} rows: only {:.0} % of the plates fully masked: {v}", share * 100.0);
        assert!(all["precision"].as_f64().unwrap() >= 0.5, "bands of {rows} rows: {v}");
    }
    // A band too thin to keep anything beyond the rows bands share is refused, not run.
    let out = veil(&["detect", "--backend", "plates", "--plate-band-rows", "64", set.join("cz/skoda.png").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("plate_band_rows"));
}
