//! Judging redaction independently of the detector that did it: labelled boxes whose pixels
//! must have changed and whose fine detail must be gone, and a second detector at a low
//! threshold that must find none of them.

/// Mean absolute difference per channel of `a` and `b` inside `r`.
pub fn mean_abs_diff(a: &image::RgbImage, b: &image::RgbImage, r: [f32; 4]) -> f64 {
    let (mut sum, mut n) = (0u64, 0u64);
    for y in r[1] as u32..r[3] as u32 {
        for x in r[0] as u32..r[2] as u32 {
            let (p, q) = (a.get_pixel(x, y), b.get_pixel(x, y));
            sum += (0..3).map(|c| (p[c] as i32 - q[c] as i32).unsigned_abs() as u64).sum::<u64>();
            n += 3;
        }
    }
    sum as f64 / n.max(1) as f64
}

/// The fine detail (green minus its 3x3 mean) of the pixels inside `r`, row by row.
fn fine_detail(img: &image::RgbImage, r: [f32; 4]) -> Vec<f64> {
    let (w, h) = img.dimensions();
    let g = |x: i64, y: i64| img.get_pixel(x.clamp(0, w as i64 - 1) as u32, y.clamp(0, h as i64 - 1) as u32)[1] as f64;
    let mut out = Vec::new();
    for y in r[1] as i64..r[3] as i64 {
        for x in r[0] as i64..r[2] as i64 {
            let mean = (-1..=1).flat_map(|dy| (-1..=1).map(move |dx| (dx, dy))).map(|(dx, dy)| g(x + dx, y + dy)).sum::<f64>() / 9.0;
            out.push(g(x, y) - mean);
        }
    }
    out
}

/// How much of `before`'s fine detail inside `r` survives in `after`: the correlation of the two
/// (1 for the same face re-encoded as JPEG, about 0.5 after a light blur of 1.5 px, about 0.2
/// after 3 px, about 0 for veil's blur, mosaic or fill; 0 when nothing is left). Unlike a
/// measure of how much detail `after` has, a mosaic's block edges do not count as the face's.
pub fn detail_kept(before: &image::RgbImage, after: &image::RgbImage, r: [f32; 4]) -> f64 {
    let (a, b) = (fine_detail(before, r), fine_detail(after, r));
    let n = a.len().max(1) as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let cov: f64 = a.iter().zip(&b).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let (va, vb): (f64, f64) = (a.iter().map(|x| (x - ma).powi(2)).sum(), b.iter().map(|y| (y - mb).powi(2)).sum());
    if va < 1e-9 || vb < 1e-9 {
        return 0.0;
    }
    cov / (va * vb).sqrt()
}

/// Every labelled box of `truth` is masked in `after`: its pixels changed (mean difference over
/// 8 levels) and at most `max_detail` of its fine detail survives ([`detail_kept`]).
pub fn assert_boxes_masked(before: &image::RgbImage, after: &image::RgbImage, truth: &[[f32; 4]], max_detail: f64) {
    assert_eq!(before.dimensions(), after.dimensions());
    for b in truth {
        let diff = mean_abs_diff(before, after, *b);
        assert!(diff > 8.0, "labelled box {b:?} barely changed ({diff:.1})");
        let kept = detail_kept(before, after, *b);
        assert!(kept < max_detail, "labelled box {b:?} keeps {kept:.2} of its fine detail");
    }
}

/// The share of a face's fine detail a mask may leave: veil's masks leave about none; a 3 px
/// blur, which leaves a face recognisable, about 0.2.
pub const MAX_DETAIL_KEPT: f64 = 0.15;

/// The fixture photo a ground-truth file labels (`group6.gt` -> `group6.jpg`).
fn labelled_photo(gt: &str) -> std::path::PathBuf {
    let stem = gt.trim_end_matches(".gt");
    ["jpg", "png"]
        .iter()
        .map(|ext| crate::common::root().join("tests/fixtures/cache").join(format!("{stem}.{ext}")))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("no photo for {gt}: run `make fixtures`"))
}

/// Boxes a second detector finds in `image`: CenterFace (not the default backend, a different
/// network) at a low threshold, 0.2.
pub fn second_detector(image: &std::path::Path) -> Vec<[f32; 4]> {
    let v = crate::common::detect_json(image, &["--backend", "centerface", "--precision", "fp32", "--confidence", "0.2"]);
    crate::common::boxes(&v)
}

/// `redacted` (a file) is the photo `gt` labels with every labelled face hidden, judged without
/// the detector that did it: each labelled box changed and lost its fine detail, and a second
/// detector at a low threshold (which finds each of them in the original) finds none of them.
pub fn assert_faces_hidden(redacted: &std::path::Path, gt: &str) {
    let original_path = labelled_photo(gt);
    let truth = crate::common::ground_truth(gt);
    let (before, after) = (crate::common::load_rgb(&original_path), crate::common::load_rgb(redacted));
    assert_boxes_masked(&before, &after, &truth, MAX_DETAIL_KEPT);
    let near = |found: &[[f32; 4]], face: [f32; 4]| found.iter().any(|b| crate::common::iou(*b, face) >= 0.3);
    let in_original = second_detector(&original_path);
    for face in &truth {
        assert!(near(&in_original, *face), "the second detector misses labelled face {face:?} even in the original");
    }
    let in_redacted = second_detector(redacted);
    for face in &truth {
        assert!(!near(&in_redacted, *face), "labelled face {face:?} is still found by a second detector in {}", redacted.display());
    }
}
