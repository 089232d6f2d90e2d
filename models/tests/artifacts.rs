//! The model files match the manifest, the int8 model agrees with fp32 on real photos, YuNet on
//! tract agrees with onnxruntime on the same file, and `auto` precision keeps what it measured
//! to be faster.

use std::path::PathBuf;

use veil_models::{Detector, ModelStore, Precision, Registry};

#[test]
fn model_files_match_the_manifest_sha256() {
    let store = ModelStore::default();
    for (backend, p) in [
        ("yunet", Precision::Fp32),
        ("centerface", Precision::Int8),
        ("centerface", Precision::Fp32),
        ("plates", Precision::Fp32),
        ("persons", Precision::Fp32),
    ] {
        let a = store.artifact(backend, p).expect("listed in the manifest");
        // `read` refuses a file whose sha256 differs; a missing fp32 file (make models) fails too.
        store.read(a).unwrap_or_else(|e| panic!("{backend} {p}: {e}"));
    }
}

#[test]
fn a_backend_built_on_first_use_refuses_a_missing_or_altered_file_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let store = ModelStore::new(vec![dir.path().to_path_buf()]);
    let person = store.artifact("persons", Precision::Fp32).unwrap().clone();
    let good = std::fs::read(store.locate(&person.file).unwrap()).unwrap();
    store.check(&person).unwrap();
    // The copy in the first directory searched, one byte changed: refused by `check` (which
    // reads through a small buffer) and so by the registry when it builds `persons`, before any call.
    let mut bad = good.clone();
    bad[good.len() / 2] ^= 1;
    std::fs::write(dir.path().join(&person.file), &bad).unwrap();
    let err = store.check(&person).unwrap_err().to_string();
    assert!(err.contains(&person.sha256), "{err}");
    let err = Registry::new(store.clone()).create("persons", Precision::Fp32, 1).err().expect("refused").to_string();
    assert!(err.contains(&person.sha256), "{err}");
    // Put right, it builds.
    std::fs::write(dir.path().join(&person.file), &good).unwrap();
    Registry::new(store).create("persons", Precision::Fp32, 1).unwrap();
}

#[test]
fn registry_lists_every_backend_and_precision_with_their_hashes() {
    let list = Registry::default().list();
    let names: Vec<String> = list.iter().map(|b| format!("{}-{}", b.name, b.precision)).collect();
    assert_eq!(names, ["yunet-fp32", "centerface-int8", "centerface-fp32", "plates-fp32", "text-fp32", "persons-fp32", "codes-auto"]);
    // Every model file is present with its hash; `text` runs the plates file; `codes` has none.
    let model_backed: Vec<_> = list.iter().filter(|b| b.name != "codes").collect();
    assert!(model_backed.iter().all(|b| b.available && b.sha256.len() == 64));
    let sha = |name: &str| list.iter().find(|b| b.name == name).map(|b| b.sha256.clone());
    assert_eq!(sha("text"), sha("plates"));
    assert!(list.iter().any(|b| b.name == "codes" && b.available && b.sha256.is_empty()));
}

fn photo(name: &str) -> image::RgbImage {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/cache").join(name);
    image::open(&p).unwrap_or_else(|e| panic!("{}: {e} (run `make fixtures`)", p.display())).into_rgb8()
}

/// Faces a person counts in each fixture photo (`mask_white` is a surgical mask on its own,
/// `coffee` a cup: false positives there count as misses of the detector, not of int8).
const FACES: [(&str, usize); 5] =
    [("group6.jpg", 6), ("astronaut.png", 1), ("camera.png", 1), ("mask_white.jpg", 0), ("coffee.png", 0)];

#[test]
fn int8_finds_what_fp32_finds_on_real_photos() {
    let reg = Registry::default();
    let fp32 = reg.create("centerface", Precision::Fp32, 1).unwrap();
    let int8 = reg.create("centerface", Precision::Int8, 1).unwrap();
    // Each photo as one network input at its own size: the comparison is of the two networks, and
    // the upscaled pyramid would only multiply the (emulated) cost.
    let params = veil_models::DetectParams { scale: veil_models::DetectScale::Native, ..Default::default() };
    let (mut reference, mut matched, mut extra) = (0, 0, 0);
    // The emulated aarch64 run (tests/cross/unit_tests.sh) names a smaller set: under qemu every
    // photo costs minutes. Each photo's own face count is asserted, so a subset still judges.
    let all = "group6.jpg astronaut.png camera.png mask_white.jpg coffee.png";
    let names = std::env::var("VEIL_INT8_PHOTOS").unwrap_or_else(|_| all.into());
    for name in names.split_whitespace() {
        let img = photo(name);
        let view = veil_models::RgbImage::new(img.as_raw(), img.width(), img.height()).unwrap();
        let a = fp32.detect(&view, &params).unwrap().detections;
        let b = int8.detect(&view, &params).unwrap().detections;
        let expected = FACES.iter().find(|(n, _)| *n == name).unwrap_or_else(|| panic!("{name}: no count")).1;
        assert_eq!(a.len(), expected, "{name}: faces found by fp32 vs faces in the photo");
        reference += a.len();
        matched += a.iter().filter(|d| b.iter().any(|e| e.bbox.iou(&d.bbox) >= 0.5)).count();
        extra += b.iter().filter(|e| !a.iter().any(|d| e.bbox.iou(&d.bbox) >= 0.5)).count();
        // Boxes of matched faces stay within a few pixels.
        for d in &a {
            if let Some(e) = b.iter().find(|e| e.bbox.iou(&d.bbox) >= 0.5) {
                assert!(e.bbox.iou(&d.bbox) > 0.8, "{name}: int8 box {:?} vs fp32 {:?}", e.bbox, d.bbox);
            }
        }
    }
    assert_eq!(matched, reference, "int8 missed faces fp32 found");
    assert_eq!(extra, 0, "int8 found faces fp32 did not");
}

#[test]
fn one_plan_per_shape_is_built_and_reused() {
    let store = ModelStore::default();
    let a = store.artifact("centerface", Precision::Int8).unwrap();
    let bytes = store.read(a).unwrap();
    let info = Registry::default().list().into_iter().find(|b| b.precision == Precision::Int8).unwrap();
    let det = veil_models::CenterFace::from_bytes(&bytes, info, 1).unwrap();
    let frame = vec![120u8; 64 * 48 * 3];
    let img = veil_models::RgbImage::new(&frame, 64, 48).unwrap();
    let p = veil_models::DetectParams::default();
    for _ in 0..3 {
        det.detect(&img, &p).unwrap();
    }
    assert_eq!(det.cached_plans(), 1);
    let frame2 = vec![120u8; 100 * 40 * 3];
    det.detect(&veil_models::RgbImage::new(&frame2, 100, 40).unwrap(), &p).unwrap();
    assert_eq!(det.cached_plans(), 2);
    // Tiny and huge requests: a 1x1 image works, an oversized network input is refused.
    det.detect(&veil_models::RgbImage::new(&[1, 2, 3], 1, 1).unwrap(), &p).unwrap();
    let huge = veil_models::DetectParams { scale: veil_models::DetectScale::Factor(8.0), ..p };
    let big = vec![0u8; 1000 * 1000 * 3];
    let err = det.detect(&veil_models::RgbImage::new(&big, 1000, 1000).unwrap(), &huge).unwrap_err();
    assert!(err.to_string().contains("too large"), "{err}");
}

#[test]
fn auto_precision_keeps_the_precision_it_measured_faster() {
    let det = Registry::default().create("centerface", Precision::Auto, 1).unwrap();
    let probe = det.info().auto_probe.expect("both centerface files are present, so both were timed");
    let faster = if probe.int8_ms <= probe.fp32_ms { Precision::Int8 } else { Precision::Fp32 };
    assert_eq!(det.info().precision, faster, "{probe:?}");
    // One file only (YuNet is fp32): nothing to time.
    let yunet = Registry::default().create("yunet", Precision::Auto, 1).unwrap();
    assert_eq!((yunet.info().precision, yunet.info().auto_probe), (Precision::Fp32, None));
    let img = photo("group6.jpg");
    let view = veil_models::RgbImage::new(img.as_raw(), img.width(), img.height()).unwrap();
    assert_eq!(det.detect(&view, &veil_models::DetectParams::default()).unwrap().detections.len(), 6);
    assert!(Registry::default().create("nope", Precision::Auto, 1).is_err());
}

/// YuNet on onnxruntime (`models/tool/yunet_reference.py`): every candidate cell at or above
/// `threshold`, boxes in image pixels.
fn onnxruntime_yunet(image: &std::path::Path, threshold: f32) -> Vec<(f32, veil_models::BBox)> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new("python3")
        .arg(root.join("tool/yunet_reference.py"))
        .arg(root.join("artifacts/yunet.onnx"))
        .arg(image)
        .args(["--threshold", &threshold.to_string()])
        .output()
        .expect("python3 runs (make pydeps installs onnxruntime)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let b: Vec<f32> = c["box"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect();
            (c["score"].as_f64().unwrap() as f32, veil_models::BBox { x1: b[0], y1: b[1], x2: b[2], y2: b[3] })
        })
        .collect()
}

#[test]
fn yunet_on_tract_agrees_with_onnxruntime() {
    let reg = Registry::default();
    let yunet = reg.create("yunet", Precision::Fp32, 1).unwrap();
    // One network input at the photo's own size, as the reference feeds it.
    let params = veil_models::DetectParams {
        confidence: 0.3,
        tiny_confidence: 0.0,
        scale: veil_models::DetectScale::Native,
        tile: veil_models::Tiling::Off,
        ..Default::default()
    };
    let mut compared = 0;
    for name in ["group6.jpg", "astronaut.png", "mask_white.jpg", "coffee.png"] {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/cache").join(name);
        let img = photo(name);
        let view = veil_models::RgbImage::new(img.as_raw(), img.width(), img.height()).unwrap();
        let ours = yunet.detect(&view, &params).unwrap().detections;
        let theirs = onnxruntime_yunet(&path, 0.3);
        // Every face veil keeps is one of onnxruntime's cells: same box, same score.
        for d in &ours {
            let best = theirs.iter().max_by(|a, b| a.1.iou(&d.bbox).total_cmp(&b.1.iou(&d.bbox))).unwrap_or_else(|| panic!("{name}: onnxruntime found nothing"));
            assert!(best.1.iou(&d.bbox) > 0.99 && (best.0 - d.score).abs() < 1e-3, "{name}: veil {d:?} vs onnxruntime {best:?}");
            compared += 1;
        }
        // And every confident onnxruntime cell is covered by one of veil's faces.
        for (score, b) in theirs.iter().filter(|c| c.0 >= 0.6) {
            assert!(ours.iter().any(|d| d.bbox.iou(b) > 0.3), "{name}: onnxruntime's face {b:?} ({score}) is missing in veil's");
        }
    }
    assert!(compared >= 8, "expected the fixture faces, veil found {compared}");
}
