//! Judging redaction independently of the detector that did it: labelled boxes whose pixels
//! must have changed and whose fine detail must be gone.

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

/// Std-dev of neighbouring-pixel differences inside `r`: how much fine detail is left.
pub fn detail(img: &image::RgbImage, r: [f32; 4]) -> f64 {
    let mut v = Vec::new();
    for y in r[1] as u32..r[3] as u32 {
        for x in r[0] as u32..(r[2] as u32).saturating_sub(1) {
            v.push(img.get_pixel(x + 1, y)[1] as f64 - img.get_pixel(x, y)[1] as f64);
        }
    }
    let m = v.iter().sum::<f64>() / v.len().max(1) as f64;
    (v.iter().map(|d| (d - m) * (d - m)).sum::<f64>() / v.len().max(1) as f64).sqrt()
}

/// Every labelled box of `truth` is masked in `after`: its pixels changed (mean difference over
/// 8 levels) and at most `max_detail` of its fine detail is left.
pub fn assert_boxes_masked(before: &image::RgbImage, after: &image::RgbImage, truth: &[[f32; 4]], max_detail: f64) {
    assert_eq!(before.dimensions(), after.dimensions());
    for b in truth {
        let diff = mean_abs_diff(before, after, *b);
        assert!(diff > 8.0, "labelled box {b:?} barely changed ({diff:.1})");
        let (d0, d1) = (detail(before, *b), detail(after, *b));
        assert!(d1 < d0 * max_detail, "labelled box {b:?} keeps detail: {d0:.1} -> {d1:.1}");
    }
}
