//! `veil redact` on real photos: every face changed, everything far from faces untouched,
//! faces no longer detectable, bad files reported without stopping the run, metadata policy.

mod common;
use common::privacy::{detail_kept, mean_abs_diff, MAX_DETAIL_KEPT};
use common::*;

use std::path::Path;

#[test]
fn redacts_every_face_and_leaves_far_pixels_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("group6.png");
    veil_ok(&["redact", photo("group6.jpg").to_str().unwrap(), "-o", out.to_str().unwrap(), "--threads", "1"]);
    let before = load_rgb(&photo("group6.jpg"));
    let after = load_rgb(&out);
    assert_eq!(before.dimensions(), after.dimensions());
    let truth = ground_truth("group6.gt");
    for face in &truth {
        let diff = mean_abs_diff(&before, &after, *face);
        assert!(diff > 8.0, "face {face:?} barely changed ({diff:.1})");
        let kept = detail_kept(&before, &after, *face);
        assert!(kept < MAX_DETAIL_KEPT, "face {face:?} keeps {kept:.2} of its fine detail");
    }
    // Pixels more than the padding (30 %) plus feather band away from every face are identical.
    let (w, h) = before.dimensions();
    let near = |x: u32, y: u32| {
        truth.iter().any(|b| {
            let (mx, my) = ((b[2] - b[0]) * 0.5, (b[3] - b[1]) * 0.5);
            (x as f32) > b[0] - mx && (x as f32) < b[2] + mx && (y as f32) > b[1] - my && (y as f32) < b[3] + my
        })
    };
    let mut checked = 0;
    for y in (0..h).step_by(3) {
        for x in (0..w).step_by(3) {
            if !near(x, y) {
                assert_eq!(before.get_pixel(x, y), after.get_pixel(x, y), "pixel {x},{y} changed");
                checked += 1;
            }
        }
    }
    assert!(checked > 80_000);
    // The redacted faces are no longer found by the detector.
    let v = detect_json(&out, &["--precision", "fp32"]);
    let left: Vec<_> = boxes(&v).into_iter().filter(|b| truth.iter().any(|t| iou(*b, *t) > 0.3)).collect();
    assert!(left.is_empty(), "still detectable after redaction: {left:?}");
}

#[test]
fn every_method_and_shape_masks_the_face() {
    let dir = tempfile::tempdir().unwrap();
    let src = photo("astronaut.png");
    let before = load_rgb(&src);
    let face = ground_truth("astronaut.gt")[0];
    for args in [
        vec!["--method", "pixelate"],
        vec!["--method", "solid", "--color", "#102030", "--shape", "rect"],
        vec!["--method", "gaussian", "--strength", "1", "--feather", "0"],
    ] {
        let out = dir.path().join("a.png");
        let mut a = vec!["redact", src.to_str().unwrap(), "-o", out.to_str().unwrap(), "--threads", "1"];
        a.extend(args.iter());
        veil_ok(&a);
        let after = load_rgb(&out);
        assert!(mean_abs_diff(&before, &after, face) > 8.0, "{args:?}");
        // (A mosaic's block edges are its own detail, not the face's: this holds for it too.)
        assert!(detail_kept(&before, &after, face) < MAX_DETAIL_KEPT, "{args:?}");
        let v = detect_json(&out, &["--precision", "fp32"]);
        assert!(boxes(&v).iter().all(|b| iou(*b, face) < 0.3), "{args:?}: face still detectable: {v}");
        if args.contains(&"solid") {
            let c = after.get_pixel(((face[0] + face[2]) / 2.0) as u32, ((face[1] + face[3]) / 2.0) as u32);
            assert_eq!(c.0, [0x10, 0x20, 0x30]);
        }
    }
    let bad =
        veil(&["redact", src.to_str().unwrap(), "-o", dir.path().join("x.png").to_str().unwrap(), "--padding", "9"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("padding"));
}

/// A PNG whose header claims 20000 x 20000 pixels, with no pixel data behind it.
fn huge_png_header() -> Vec<u8> {
    let mut v = vec![0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend_from_slice(&20000u32.to_be_bytes());
    ihdr.extend_from_slice(&20000u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    v.extend_from_slice(&13u32.to_be_bytes());
    v.extend_from_slice(&ihdr);
    v.extend_from_slice(&crc32(&ihdr).to_be_bytes());
    // A tiny (empty) compressed stream and the end chunk: a well-formed file that lies about size.
    for (kind, data) in
        [(&b"IDAT"[..], &[0x78u8, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01][..]), (&b"IEND"[..], &[][..])]
    {
        let mut chunk = kind.to_vec();
        chunk.extend_from_slice(data);
        v.extend_from_slice(&(data.len() as u32).to_be_bytes());
        v.extend_from_slice(&chunk);
        v.extend_from_slice(&crc32(&chunk).to_be_bytes());
    }
    v
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

#[test]
fn bad_files_are_listed_and_the_rest_is_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir_all(input.join("sub/deeper")).unwrap();
    std::fs::copy(photo("astronaut.png"), input.join("sub/deeper/astronaut.png")).unwrap();
    std::fs::copy(photo("group6.jpg"), input.join("group6.jpg")).unwrap();
    let jpeg = std::fs::read(photo("group6.jpg")).unwrap();
    std::fs::write(input.join("truncated.jpg"), &jpeg[..jpeg.len() / 3]).unwrap();
    std::fs::write(input.join("zero.jpg"), b"").unwrap();
    std::fs::write(input.join("notes.png"), b"this is not an image at all").unwrap();
    std::fs::write(input.join("huge.png"), huge_png_header()).unwrap();
    image::RgbImage::from_pixel(1, 1, image::Rgb([9, 9, 9])).save(input.join("one.png")).unwrap();
    let out = dir.path().join("out");
    let started = std::time::Instant::now();
    let res = veil(&["redact", input.to_str().unwrap(), "-o", out.to_str().unwrap(), "--threads", "2"]);
    assert_eq!(res.status.code(), Some(1), "failures must make the exit code non-zero");
    let err = String::from_utf8_lossy(&res.stderr);
    for bad in ["truncated.jpg", "zero.jpg", "notes.png", "huge.png"] {
        assert!(err.contains(bad), "{bad} not reported: {err}");
        let stem = Path::new(bad).file_stem().unwrap().to_str().unwrap();
        assert!(std::fs::read_dir(&out).unwrap().all(|e| !e.unwrap().file_name().to_str().unwrap().starts_with(stem)));
    }
    assert!(err.contains("20000x20000"), "{err}");
    assert!(out.join("group6.jpg").is_file());
    assert!(out.join("sub/deeper/astronaut.png").is_file());
    assert!(out.join("one.png").is_file(), "a 1x1 image is valid and is written: {err}");
    assert!(started.elapsed().as_secs() < 120);
    // No temporary files left behind.
    let leftovers: Vec<_> = walk(&out).into_iter().filter(|p| p.to_str().unwrap().ends_with(".tmp")).collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            v.extend(walk(&p));
        } else {
            v.push(p);
        }
    }
    v
}

/// JPEG of the astronaut with EXIF: orientation 6 (rotate 90° clockwise to view), a camera make
/// and a GPS position.
fn jpeg_with_exif(path: &Path) {
    use exif::{experimental::Writer, Field, In, Rational, Tag, Value};
    let img = load_rgb(&photo("astronaut.png"));
    let sideways = image::imageops::rotate270(&img);
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 95).encode_image(&sideways).unwrap();
    let fields = [
        Field { tag: Tag::Orientation, ifd_num: In::PRIMARY, value: Value::Short(vec![6]) },
        Field { tag: Tag::Make, ifd_num: In::PRIMARY, value: Value::Ascii(vec![b"VeilTestCam".to_vec()]) },
        Field { tag: Tag::GPSLatitudeRef, ifd_num: In::PRIMARY, value: Value::Ascii(vec![b"N".to_vec()]) },
        Field {
            tag: Tag::GPSLatitude,
            ifd_num: In::PRIMARY,
            value: Value::Rational(vec![
                Rational { num: 48, denom: 1 },
                Rational { num: 51, denom: 1 },
                Rational { num: 0, denom: 1 },
            ]),
        },
    ];
    let mut w = Writer::new();
    for f in &fields {
        w.push_field(f);
    }
    let mut tiff = std::io::Cursor::new(Vec::new());
    w.write(&mut tiff, false).unwrap();
    let mut parsed = img_parts::jpeg::Jpeg::from_bytes(jpeg.into()).unwrap();
    use img_parts::ImageEXIF;
    parsed.set_exif(Some(tiff.into_inner().into()));
    let mut out = Vec::new();
    parsed.encoder().write_to(&mut out).unwrap();
    std::fs::write(path, out).unwrap();
}

fn exif_fields(path: &Path) -> Option<Vec<(exif::Tag, String)>> {
    let bytes = std::fs::read(path).unwrap();
    let e = exif::Reader::new().read_from_container(&mut std::io::Cursor::new(bytes)).ok()?;
    Some(e.fields().map(|f| (f.tag, f.display_value().to_string())).collect())
}

#[test]
fn orientation_is_applied_and_metadata_stripped() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("phone.jpg");
    jpeg_with_exif(&src);
    assert!(exif_fields(&src).unwrap().iter().any(|(t, _)| *t == exif::Tag::GPSLatitude));

    let plain = dir.path().join("plain.jpg");
    veil_ok(&["redact", src.to_str().unwrap(), "-o", plain.to_str().unwrap(), "--threads", "1"]);
    assert!(exif_fields(&plain).is_none_or(|f| f.is_empty()), "metadata left: {:?}", exif_fields(&plain));
    // Upright (orientation applied): the face is where it is in the upright photo, and blurred.
    let upright = load_rgb(&photo("astronaut.png"));
    let out = load_rgb(&plain);
    assert_eq!(out.dimensions(), upright.dimensions());
    let face = ground_truth("astronaut.gt")[0];
    assert!(detail_kept(&upright, &out, face) < MAX_DETAIL_KEPT);

    let kept = dir.path().join("kept.jpg");
    veil_ok(&["redact", src.to_str().unwrap(), "-o", kept.to_str().unwrap(), "--keep-metadata", "--threads", "1"]);
    let fields = exif_fields(&kept).expect("EXIF kept");
    assert!(fields.iter().any(|(t, v)| *t == exif::Tag::Make && v.contains("VeilTestCam")), "{fields:?}");
    assert!(fields.iter().all(|(t, _)| t.context() != exif::Context::Gps), "GPS survived: {fields:?}");
    assert!(fields.iter().any(|(t, v)| *t == exif::Tag::Orientation && v.contains("row 0 at top")), "{fields:?}");
}
