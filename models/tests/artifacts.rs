//! The model files match the manifest, and the int8 model agrees with fp32 on real photos.

use std::path::PathBuf;

use veil_models::{Detector, ModelStore, Precision, Registry};

#[test]
fn model_files_match_the_manifest_sha256() {
    let store = ModelStore::default();
    for (backend, p) in [("centerface", Precision::Int8), ("centerface", Precision::Fp32), ("plates", Precision::Fp32)] {
        let a = store.artifact(backend, p).expect("listed in the manifest");
        // `read` refuses a file whose sha256 differs; a missing fp32 file (make models) fails too.
        store.read(a).unwrap_or_else(|e| panic!("{backend} {p}: {e}"));
    }
}

#[test]
fn registry_lists_every_backend_and_precision_with_their_hashes() {
    let list = Registry::default().list();
    let names: Vec<String> = list.iter().map(|b| format!("{}-{}", b.name, b.precision)).collect();
    assert_eq!(names, ["centerface-int8", "centerface-fp32", "plates-fp32"]);
    assert!(list.iter().all(|b| b.available && b.sha256.len() == 64));
}

fn photo(name: &str) -> image::RgbImage {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/cache").join(name);
    image::open(&p).unwrap_or_else(|e| panic!("{}: {e} (run `make fixtures`)", p.display())).into_rgb8()
}

#[test]
fn int8_finds_what_fp32_finds_on_real_photos() {
    let reg = Registry::default();
    let fp32 = reg.create("centerface", Precision::Fp32, 1).unwrap();
    let int8 = reg.create("centerface", Precision::Int8, 1).unwrap();
    let params = veil_models::DetectParams::default();
    let (mut reference, mut matched, mut extra) = (0, 0, 0);
    for name in ["group6.jpg", "astronaut.png", "camera.png", "mask_white.jpg", "coffee.png"] {
        let img = photo(name);
        let view = veil_models::RgbImage::new(img.as_raw(), img.width(), img.height()).unwrap();
        let a = fp32.detect(&view, &params).unwrap().detections;
        let b = int8.detect(&view, &params).unwrap().detections;
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
    assert!(reference >= 8, "expected the fixture faces, fp32 found {reference}");
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
fn auto_precision_picks_a_concrete_model_that_works() {
    let det = Registry::default().create("centerface", Precision::Auto, 1).unwrap();
    assert!(matches!(det.info().precision, Precision::Int8 | Precision::Fp32));
    let img = photo("group6.jpg");
    let view = veil_models::RgbImage::new(img.as_raw(), img.width(), img.height()).unwrap();
    assert_eq!(det.detect(&view, &veil_models::DetectParams::default()).unwrap().detections.len(), 6);
    assert!(Registry::default().create("nope", Precision::Auto, 1).is_err());
}
