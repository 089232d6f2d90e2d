//! `veil detect` on real photos: faces found where they are, the JSON contract, both precisions.

mod common;
use common::*;

fn assert_matches_truth(found: &[[f32; 4]], truth: &[[f32; 4]], what: &str) {
    for t in truth {
        assert!(found.iter().any(|f| iou(*f, *t) >= 0.5), "{what}: face {t:?} not found in {found:?}");
    }
    for f in found {
        assert!(truth.iter().any(|t| iou(*f, *t) >= 0.5), "{what}: detection {f:?} is not a labelled face");
    }
}

#[test]
fn finds_the_six_faces_of_the_group_photo_with_every_face_model() {
    let truth = ground_truth("group6.gt");
    for (backend, precision) in [("yunet", "fp32"), ("centerface", "int8"), ("centerface", "fp32")] {
        let v = detect_json(&photo("group6.jpg"), &["--backend", backend, "--precision", precision]);
        assert_matches_truth(&boxes(&v), &truth, &format!("{backend} {precision}"));
        assert_eq!((v["model"]["backend"].as_str(), v["model"]["precision"].as_str()), (Some(backend), Some(precision)));
    }
    // The default is YuNet; `auto` precision reports what it chose.
    let v = detect_json(&photo("group6.jpg"), &[]);
    assert_eq!((v["model"]["backend"].as_str(), v["model"]["precision"].as_str()), (Some("yunet"), Some("fp32")));
}

#[test]
fn finds_the_astronaut_and_no_face_on_coffee_or_confidently_on_a_cat() {
    let v = detect_json(&photo("astronaut.png"), &[]);
    assert_matches_truth(&boxes(&v), &ground_truth("astronaut.gt"), "astronaut");
    let v = detect_json(&photo("coffee.png"), &[]);
    assert!(boxes(&v).is_empty(), "coffee: {v}");
    // The privacy-first default (confidence 0.25 on an upscaled copy) masks the cat's face too
    // (README, "Detection quality"); a confident threshold finds none.
    let v = detect_json(&photo("chelsea.png"), &["--confidence", "0.7"]);
    assert!(boxes(&v).is_empty(), "chelsea at 0.7: {v}");
}

#[test]
fn json_follows_the_detect_response_contract() {
    let v = detect_json(&photo("group6.jpg"), &[]);
    assert_eq!(v["image"]["width"], 1280);
    assert_eq!(v["image"]["height"], 886);
    let d = &v["detections"][0];
    for key in ["bbox", "confidence", "landmarks", "size", "area", "center", "relative"] {
        assert!(!d[key].is_null(), "detection lacks {key}: {d}");
    }
    assert_eq!(d["landmarks"].as_array().unwrap().len(), 5);
    let rel = d["relative"]["x2"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&rel));
    assert_eq!(v["summary"]["count"], 6);
    for key in ["decode_ms", "preprocess_ms", "inference_ms", "postprocess_ms"] {
        assert!(v["profiling"][key].as_f64().unwrap() >= 0.0);
    }
    assert!(v["processing_ms"].as_f64().unwrap() > 0.0);
}

#[test]
fn flags_override_defaults() {
    let p = photo("group6.jpg");
    let v = detect_json(&p, &["--max-faces", "2"]);
    assert_eq!(boxes(&v).len(), 2);
    let v = detect_json(&p, &["--confidence", "0.99"]);
    assert!(boxes(&v).is_empty());
    // Detecting on a half-size copy still finds the faces and maps the boxes back to full size.
    let v = detect_json(&p, &["--scale", "0.5"]);
    assert_matches_truth(&boxes(&v), &ground_truth("group6.gt"), "scale 0.5");
    assert_eq!(v["network_input"]["width"], 640);
    let bad = veil(&["detect", p.to_str().unwrap(), "--confidence", "2"]);
    assert!(!bad.status.success());
    let bad = veil(&["detect", p.to_str().unwrap(), "--backend", "nope"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown backend"));
}

#[test]
fn several_images_give_an_array_and_bad_ones_an_error_entry() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.jpg");
    std::fs::write(&empty, b"").unwrap();
    let out = veil(&["detect", photo("astronaut.png").to_str().unwrap(), empty.to_str().unwrap(), "--threads", "1"]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let arr = v.as_array().unwrap();
    assert_eq!(arr.len(), 2);
    assert_eq!(boxes(&arr[0]).len(), 1);
    assert!(arr[1]["error"].as_str().unwrap().contains("empty"));
}
