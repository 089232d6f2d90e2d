//! Unit tests of the masking operations on synthetic frames.

use super::*;

fn checker(w: u32, h: u32) -> Vec<u8> {
    let mut v = Vec::with_capacity((w * h * 3) as usize);
    for y in 0..h {
        for x in 0..w {
            let on = ((x / 2) + (y / 2)) % 2 == 0;
            let base = if on { 230 } else { 20 };
            v.extend_from_slice(&[base, (x * 7 % 256) as u8, (y * 5 % 256) as u8]);
        }
    }
    v
}

fn px(buf: &[u8], w: u32, x: u32, y: u32) -> [u8; 3] {
    let i = ((y * w + x) * 3) as usize;
    [buf[i], buf[i + 1], buf[i + 2]]
}

fn hard(method: Method, shape: Shape) -> MaskStyle {
    MaskStyle { method, shape, padding: 0.0, feather: 0.0 }
}

const RED: Method = Method::Solid { color: [255, 0, 0] };

#[test]
fn one_pixel_box_masks_exactly_that_pixel() {
    let (w, h) = (9, 7);
    let orig = checker(w, h);
    let mut buf = orig.clone();
    let mut frame = RgbFrame::new(&mut buf, w, h).unwrap();
    let n = redact(&mut frame, &[Region::new(4.2, 3.1, 4.8, 3.9)], &hard(RED, Shape::Rect));
    assert_eq!(n, 1);
    for y in 0..h {
        for x in 0..w {
            let expect = if (x, y) == (4, 3) { [255, 0, 0] } else { px(&orig, w, x, y) };
            assert_eq!(px(&buf, w, x, y), expect, "pixel {x},{y}");
        }
    }
}

#[test]
fn full_frame_and_oversized_boxes_are_clipped() {
    let (w, h) = (16, 10);
    let mut buf = checker(w, h);
    let mut frame = RgbFrame::new(&mut buf, w, h).unwrap();
    redact(&mut frame, &[Region::new(-50.0, -50.0, 500.0, 500.0)], &hard(RED, Shape::Rect));
    assert!(buf.chunks_exact(3).all(|p| p == [255, 0, 0]));
}

#[test]
fn off_frame_empty_and_nan_boxes_touch_nothing() {
    let (w, h) = (8, 8);
    let orig = checker(w, h);
    let mut buf = orig.clone();
    let mut frame = RgbFrame::new(&mut buf, w, h).unwrap();
    let boxes = [
        Region::new(20.0, 20.0, 30.0, 30.0),
        Region::new(-30.0, 2.0, -20.0, 5.0),
        Region::new(3.0, 3.0, 3.0, 6.0),
        Region::new(f32::NAN, 1.0, 4.0, 4.0),
    ];
    assert_eq!(redact(&mut frame, &boxes, &MaskStyle::default()), 0);
    assert_eq!(buf, orig);
}

#[test]
fn padding_grows_each_side_by_the_fraction() {
    let (w, h) = (40, 40);
    let mut buf = checker(w, h);
    let mut frame = RgbFrame::new(&mut buf, w, h).unwrap();
    let style = MaskStyle { padding: 0.5, ..hard(RED, Shape::Rect) };
    redact(&mut frame, &[Region::new(15.0, 15.0, 25.0, 25.0)], &style);
    // 10 px box + 5 px each side -> 10..30.
    assert_eq!(px(&buf, w, 10, 10), [255, 0, 0]);
    assert_eq!(px(&buf, w, 29, 29), [255, 0, 0]);
    assert_ne!(px(&buf, w, 9, 20), [255, 0, 0]);
    assert_ne!(px(&buf, w, 30, 20), [255, 0, 0]);
}

#[test]
fn ellipse_leaves_corners_and_fills_centre() {
    let (w, h) = (40, 40);
    let orig = checker(w, h);
    let mut buf = orig.clone();
    let mut frame = RgbFrame::new(&mut buf, w, h).unwrap();
    redact(&mut frame, &[Region::new(0.0, 0.0, 40.0, 40.0)], &hard(RED, Shape::Ellipse));
    assert_eq!(px(&buf, w, 20, 20), [255, 0, 0]);
    assert_eq!(px(&buf, w, 20, 0), [255, 0, 0]);
    assert_eq!(px(&buf, w, 0, 0), px(&orig, w, 0, 0));
    assert_eq!(px(&buf, w, 39, 39), px(&orig, w, 39, 39));
}

#[test]
fn feather_fades_outside_and_keeps_the_core_opaque() {
    let (w, h) = (60, 60);
    let orig = checker(w, h);
    let mut buf = orig.clone();
    let mut frame = RgbFrame::new(&mut buf, w, h).unwrap();
    let style = MaskStyle { feather: 1.0, ..hard(RED, Shape::Rect) };
    redact(&mut frame, &[Region::new(20.0, 20.0, 40.0, 40.0)], &style);
    // Core fully masked.
    for y in 20..40 {
        for x in 20..40 {
            assert_eq!(px(&buf, w, x, y), [255, 0, 0]);
        }
    }
    // Band = 1.0 * 20 * 0.25 = 5 px: partly mixed just outside, untouched beyond.
    let near = px(&buf, w, 41, 30);
    assert_ne!(near, px(&orig, w, 41, 30));
    assert_ne!(near, [255, 0, 0]);
    assert_eq!(px(&buf, w, 47, 30), px(&orig, w, 47, 30));
}

#[test]
fn gaussian_removes_detail_and_leaves_the_rest() {
    let (w, h) = (64, 64);
    let orig = checker(w, h);
    let mut buf = orig.clone();
    let mut frame = RgbFrame::new(&mut buf, w, h).unwrap();
    let style = hard(Method::Gaussian { strength: DEFAULT_STRENGTH }, Shape::Rect);
    redact(&mut frame, &[Region::new(16.0, 16.0, 48.0, 48.0)], &style);
    // The 2x2 checker of 20/230 averages out near 125 in the middle of the box.
    let centre = px(&buf, w, 32, 32)[0];
    assert!((100..=150).contains(&centre), "centre red {centre}");
    let spread = (20..44).map(|x| px(&buf, w, x, 32)[0] as i32);
    let (lo, hi) = spread.fold((255, 0), |(lo, hi), v| (lo.min(v), hi.max(v)));
    assert!(hi - lo < 40, "blurred row still spans {lo}..{hi}");
    for y in 0..h {
        for x in 0..w {
            if !(16..48).contains(&x) || !(16..48).contains(&y) {
                assert_eq!(px(&buf, w, x, y), px(&orig, w, x, y));
            }
        }
    }
}

#[test]
fn pixelate_makes_uniform_blocks() {
    let (w, h) = (32, 32);
    let mut buf = checker(w, h);
    let mut frame = RgbFrame::new(&mut buf, w, h).unwrap();
    let style = hard(Method::Pixelate { block: Some(8) }, Shape::Rect);
    redact(&mut frame, &[Region::new(0.0, 0.0, 32.0, 32.0)], &style);
    for by in 0..4 {
        for bx in 0..4 {
            let first = px(&buf, w, bx * 8, by * 8);
            for y in 0..8 {
                for x in 0..8 {
                    assert_eq!(px(&buf, w, bx * 8 + x, by * 8 + y), first);
                }
            }
        }
    }
}

#[test]
fn strided_frames_leave_row_padding_alone() {
    let (w, h, stride) = (4u32, 3u32, 16usize);
    let mut buf = vec![7u8; stride * 3];
    let mut frame = RgbFrame::with_stride(&mut buf, w, h, stride).unwrap();
    redact(&mut frame, &[Region::new(0.0, 0.0, 4.0, 3.0)], &hard(RED, Shape::Rect));
    for row in buf.chunks(stride) {
        assert!(row[..12].chunks(3).all(|p| p == [255, 0, 0]));
        assert!(row[12..].iter().all(|&b| b == 7));
    }
}

#[test]
fn bad_frames_and_styles_are_rejected() {
    let mut buf = vec![0u8; 10];
    assert!(matches!(RgbFrame::new(&mut buf, 0, 3), Err(FrameError::Empty { .. })));
    assert!(matches!(RgbFrame::new(&mut buf, 4, 4), Err(FrameError::BufferTooSmall { .. })));
    assert!(matches!(RgbFrame::with_stride(&mut buf, 4, 1, 6), Err(FrameError::StrideTooShort { .. })));
    let bad = MaskStyle { padding: -1.0, ..MaskStyle::default() };
    assert!(bad.validate().is_err());
    let bad = MaskStyle { method: Method::Gaussian { strength: f32::NAN }, ..MaskStyle::default() };
    assert!(bad.validate().is_err());
    assert!(MaskStyle::default().validate().is_ok());
    assert_eq!(parse_color("#ff8000"), Ok([255, 128, 0]));
    assert!(parse_color("#ff80").is_err());
    assert!(Method::from_name("sparkles", None, [0, 0, 0]).is_err());
    assert_eq!("rectangle".parse::<Shape>(), Ok(Shape::Rect));
}

#[test]
fn polygon_zone_masks_inside_only() {
    let (w, h) = (40u32, 30u32);
    let mut data: Vec<u8> = (0..w * h * 3).map(|i| (i % 200) as u8 + 20).collect();
    let before = data.clone();
    let style = MaskStyle { method: Method::Solid { color: [0, 0, 0] }, ..MaskStyle::default() };
    let triangle = [(5.0, 5.0), (35.0, 5.0), (5.0, 25.0)];
    let mut frame = RgbFrame::new(&mut data, w, h).unwrap();
    assert!(redact_polygon(&mut frame, &triangle, &style));
    let px = |d: &[u8], x: u32, y: u32| d[((y * w + x) * 3) as usize..((y * w + x) * 3 + 3) as usize].to_vec();
    assert_eq!(px(&data, 6, 6), [0, 0, 0]);
    assert_eq!(px(&data, 10, 15), [0, 0, 0]);
    // Outside the hypotenuse and outside the bounds: untouched.
    assert_eq!(px(&data, 30, 20), px(&before, 30, 20));
    assert_eq!(px(&data, 2, 2), px(&before, 2, 2));
    // Degenerate and off-frame polygons do nothing.
    let mut frame = RgbFrame::new(&mut data, w, h).unwrap();
    assert!(!redact_polygon(&mut frame, &[(1.0, 1.0), (2.0, 2.0)], &style));
    assert!(!redact_polygon(&mut frame, &[(100.0, 100.0), (120.0, 100.0), (110.0, 120.0)], &style));
}

#[test]
fn polygon_zone_catches_a_sliver_thinner_than_a_pixel() {
    let (w, h) = (20u32, 20u32);
    let mut data = vec![200u8; (w * h * 3) as usize];
    let style = MaskStyle { method: Method::Solid { color: [0, 0, 0] }, ..MaskStyle::default() };
    let sliver = [(2.0, 10.2), (18.0, 10.2), (18.0, 10.4), (2.0, 10.4)];
    let mut frame = RgbFrame::new(&mut data, w, h).unwrap();
    redact_polygon(&mut frame, &sliver, &style);
    let i = ((10 * w + 9) * 3) as usize;
    assert_eq!(&data[i..i + 3], &[0, 0, 0]);
}

#[test]
fn a_self_crossing_zone_masks_its_overlap_too() {
    // A pentagram: its centre is wound twice (even-odd would call it outside).
    let (w, h) = (60u32, 60u32);
    let mut data = vec![200u8; (w * h * 3) as usize];
    let style = MaskStyle { method: Method::Solid { color: [0, 0, 0] }, ..MaskStyle::default() };
    let star: Vec<(f32, f32)> = (0..5)
        .map(|k| {
            let a = std::f32::consts::PI * (-0.5 + 0.8 * k as f32);
            (30.0 + 25.0 * a.cos(), 30.0 + 25.0 * a.sin())
        })
        .collect();
    let mut frame = RgbFrame::new(&mut data, w, h).unwrap();
    redact_polygon(&mut frame, &star, &style);
    let i = ((30 * w + 30) * 3) as usize;
    assert_eq!(&data[i..i + 3], &[0, 0, 0], "the pentagram's centre");
    assert_eq!(&data[0..3], &[200, 200, 200], "a corner far outside");
}
