//! QR codes and barcodes end to end: codes the test encodes (rxing's writers) and draws onto a
//! real photo, turned, scaled and in perspective, go through the PiiBlur API of `veil serve` on
//! its default backend; afterwards no rxing reader decodes any of them, nothing the codes say is
//! in any answer, and the rest of the photo is untouched. A photo without codes gets no boxes.

mod common;

use common::daemon::Daemon;
use common::{detect_json, load_rgb, photo, veil};
use image::RgbImage;
use rxing::common::{BitMatrix, HybridBinarizer};
use rxing::{BarcodeFormat, BinaryBitmap, DecodeHints, Luma8Source, MultiFormatReader, MultiFormatWriter, Reader, Writer};
use serde_json::Value;

/// A code drawn onto the photo: what it says, its symbology, where its corners landed
/// (top-left, top-right, bottom-right, bottom-left, quiet zone included) and the bounds of its
/// dark modules.
struct Placed {
    text: &'static str,
    format: BarcodeFormat,
    quad: [(f64, f64); 4],
    ink: [f64; 4],
}

impl Placed {
    fn bounds(&self) -> [f64; 4] {
        let xs = self.quad.map(|p| p.0);
        let ys = self.quad.map(|p| p.1);
        let min = |v: [f64; 4]| v.iter().copied().fold(f64::MAX, f64::min);
        let max = |v: [f64; 4]| v.iter().copied().fold(f64::MIN, f64::max);
        [min(xs), min(ys), max(xs), max(ys)]
    }
}

/// The corners of a `w` x `h` rectangle centred on `c`, turned `deg` degrees clockwise.
fn turned(c: (f64, f64), w: f64, h: f64, deg: f64) -> [(f64, f64); 4] {
    let (s, co) = deg.to_radians().sin_cos();
    [(-w, -h), (w, -h), (w, h), (-w, h)].map(|(x, y)| (c.0 + (x * co - y * s) / 2.0, c.1 + (x * s + y * co) / 2.0))
}

/// The projective map of the unit square onto `q` (Heckbert's square-to-quad), as a 3x3 matrix
/// taking (u, v, 1) to homogeneous image coordinates.
fn square_to_quad(q: [(f64, f64); 4]) -> [[f64; 3]; 3] {
    let [(x0, y0), (x1, y1), (x2, y2), (x3, y3)] = q;
    let (dx3, dy3) = (x0 - x1 + x2 - x3, y0 - y1 + y2 - y3);
    let (dx1, dx2, dy1, dy2) = (x1 - x2, x3 - x2, y1 - y2, y3 - y2);
    let den = dx1 * dy2 - dx2 * dy1;
    let g = (dx3 * dy2 - dx2 * dy3) / den;
    let h = (dx1 * dy3 - dx3 * dy1) / den;
    [[x1 - x0 + g * x1, x3 - x0 + h * x3, x0], [y1 - y0 + g * y1, y3 - y0 + h * y3, y0], [g, h, 1.0]]
}

fn inverse(m: [[f64; 3]; 3]) -> [[f64; 3]; 3] {
    let c = |r: usize, k: usize| {
        let (r1, r2, k1, k2) = ((r + 1) % 3, (r + 2) % 3, (k + 1) % 3, (k + 2) % 3);
        m[r1][k1] * m[r2][k2] - m[r1][k2] * m[r2][k1]
    };
    let det = m[0][0] * c(0, 0) + m[0][1] * c(0, 1) + m[0][2] * c(0, 2);
    let mut out = [[0.0; 3]; 3];
    for (r, row) in out.iter_mut().enumerate() {
        for (k, v) in row.iter_mut().enumerate() {
            *v = c(k, r) / det;
        }
    }
    out
}

fn encode(text: &str, format: BarcodeFormat) -> BitMatrix {
    let height = if matches!(format, BarcodeFormat::QR_CODE) { 0 } else { 40 };
    MultiFormatWriter.encode(text, &format, 0, height).expect("encode")
}

/// Encode `text` and draw its modules (quiet zone included) onto `img` so that the symbol's
/// corners land on `quad`.
fn draw(img: &mut RgbImage, text: &'static str, format: BarcodeFormat, quad: [(f64, f64); 4]) -> Placed {
    let code = encode(text, format);
    let to_square = inverse(square_to_quad(quad));
    let mut p = Placed { text, format, quad, ink: [f64::MAX, f64::MAX, f64::MIN, f64::MIN] };
    let [x1, y1, x2, y2] = p.bounds();
    for y in y1.floor().max(0.0) as u32..=(y2.ceil() as u32).min(img.height() - 1) {
        for x in x1.floor().max(0.0) as u32..=(x2.ceil() as u32).min(img.width() - 1) {
            let (px, py) = (x as f64 + 0.5, y as f64 + 0.5);
            let m = &to_square;
            let w = m[2][0] * px + m[2][1] * py + m[2][2];
            let (u, v) = ((m[0][0] * px + m[0][1] * py + m[0][2]) / w, (m[1][0] * px + m[1][1] * py + m[1][2]) / w);
            if !(0.0..1.0).contains(&u) || !(0.0..1.0).contains(&v) {
                continue;
            }
            let (mx, my) = ((u * code.width() as f64) as u32, (v * code.height() as f64) as u32);
            let dark = code.get(mx, my);
            if dark {
                let (x, y) = (x as f64, y as f64);
                p.ink = [p.ink[0].min(x), p.ink[1].min(y), p.ink[2].max(x + 1.0), p.ink[3].max(y + 1.0)];
            }
            img.put_pixel(x, y, image::Rgb(if dark { [20, 20, 24] } else { [236, 236, 230] }));
        }
    }
    p
}

fn luma(img: &RgbImage, b: [f64; 4]) -> (Vec<u8>, u32, u32) {
    let (x1, y1) = (b[0].max(0.0) as u32, b[1].max(0.0) as u32);
    let (x2, y2) = ((b[2].ceil() as u32).min(img.width()), (b[3].ceil() as u32).min(img.height()));
    let mut out = Vec::new();
    for y in y1..y2 {
        for x in x1..x2 {
            let p = img.get_pixel(x, y).0;
            out.push(((77 * p[0] as u32 + 150 * p[1] as u32 + 29 * p[2] as u32) >> 8) as u8);
        }
    }
    (out, x2 - x1, y2 - y1)
}

/// What rxing's readers (every format, trying harder, inverted too) decode in `b` of `img`.
fn read(img: &RgbImage, b: [f64; 4]) -> Option<String> {
    let (l, w, h) = luma(img, b);
    let mut bitmap = BinaryBitmap::new(HybridBinarizer::new(Luma8Source::new_with_slice(&l, w, h).unwrap()));
    let hints = DecodeHints { TryHarder: Some(true), AlsoInverted: Some(true), ..DecodeHints::default() };
    MultiFormatReader::default().decode_with_hints(&mut bitmap, &hints).ok().map(|r| r.getText().to_string())
}

/// `b` grown by `m` pixels on every side.
fn grown(b: [f64; 4], m: f64) -> [f64; 4] {
    [b[0] - m, b[1] - m, b[2] + m, b[3] + m]
}

/// The group photo with two QR codes and two barcodes drawn below the faces.
fn photo_with_codes() -> (RgbImage, Vec<Placed>) {
    let mut img = load_rgb(&photo("group6.jpg"));
    let placed = vec![
        // Turned 25 degrees, about 5 px a module.
        draw(&mut img, "https://example.invalid/t/48213", BarcodeFormat::QR_CODE, turned((170.0, 700.0), 170.0, 170.0, 25.0)),
        // In perspective: the right edge further away.
        draw(
            &mut img,
            "VEIL-PRIVATE-7731",
            BarcodeFormat::QR_CODE,
            [(380.0, 575.0), (590.0, 600.0), (585.0, 800.0), (375.0, 830.0)],
        ),
        // Upright, scaled 2.5x.
        draw(&mut img, "5901234123457", BarcodeFormat::EAN_13, turned((780.0, 690.0), 280.0, 130.0, 0.0)),
        // Turned 8 degrees.
        draw(&mut img, "VEIL-ASSET-0042", BarcodeFormat::CODE_128, turned((1110.0, 700.0), 290.0, 120.0, -8.0)),
    ];
    (img, placed)
}

#[test]
fn drawn_codes_are_masked_until_no_reader_reads_them() {
    let (img, placed) = photo_with_codes();
    // The premise: each drawn code reads back before redaction.
    for p in &placed {
        assert_eq!(read(&img, grown(p.bounds(), 20.0)).as_deref(), Some(p.text), "{:?} does not read back", p.format);
    }
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("codes.png");
    img.save(&file).unwrap();
    let d = Daemon::start(&tmp.path().join("state"), &[]);
    let (_, usage) = d.get("/api/v1/usage");
    let usage: Value = serde_json::from_str(&usage).unwrap();
    for name in ["qr_codes", "barcodes"] {
        assert!(usage["supported_categories"].as_array().unwrap().iter().any(|c| c == name), "{usage}");
    }

    let (media, answer, redacted) = d.piiblur(&file, &["qr_codes", "barcodes"]);
    // The codes (and the faces: the masking floor, `api.always_mask`, is on by default).
    let codes: Vec<&Value> =
        media["detections"].as_array().unwrap().iter().filter(|d| d["category"] != "face").collect();
    let mut categories: Vec<&str> = codes.iter().map(|d| d["category"].as_str().unwrap()).collect();
    categories.sort();
    assert_eq!(categories, ["barcode", "barcode", "qr_code", "qr_code"], "{media}");
    let boxes: Vec<[f64; 4]> = codes
        .iter()
        .map(|d| {
            let b: Vec<f64> = d["box"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
            [b[0], b[1], b[2], b[3]]
        })
        .collect();
    for p in &placed {
        // Every dark module of it is inside one mask, and that mask is not much bigger than
        // the symbol with its quiet zone (at most half as wide and high again)...
        let (ink, b) = (p.ink, p.bounds());
        let (bw, bh) = (b[2] - b[0], b[3] - b[1]);
        assert!(
            boxes.iter().any(|m| m[0] <= ink[0] && m[1] <= ink[1] && m[2] >= ink[2] && m[3] >= ink[3]
                && m[2] - m[0] <= 1.5 * bw && m[3] - m[1] <= 1.5 * bh),
            "{:?} inked over {ink:?} is not snugly inside one of {boxes:?}",
            p.format
        );
        // ...no reader gets anything from it...
        assert_eq!(read(&redacted, grown(b, 20.0)), None, "{:?} still reads after redaction", p.format);
        // ...and what it says is in no answer.
        assert!(!answer.contains(p.text), "the job's answer carries a code's content: {answer}");
    }
    assert_eq!(read(&redacted, [0.0, 0.0, redacted.width() as f64, redacted.height() as f64]), None);
    // Away from the masks (the faces above them) nothing changed: PNG in, PNG out.
    for (x, y) in [(600, 100), (200, 100), (700, 300), (1100, 150)] {
        assert_eq!(img.get_pixel(x, y), redacted.get_pixel(x, y), "pixel ({x}, {y}) changed");
    }
    // The field page offers them (it lists what the device supports).
    let (_, device) = d.get("/api/v1/device");
    assert!(device.contains("qr_codes") && device.contains("barcodes"), "{device}");
}

#[test]
fn photos_without_codes_get_no_code_boxes() {
    for name in ["coffee.png", "group6.jpg", "astronaut.png"] {
        let v = detect_json(&photo(name), &["--backend", "codes"]);
        assert_eq!(v["detections"], serde_json::json!([]), "{name}: {v}");
    }
    // The backend is listed, with the categories it serves.
    let out = veil(&["models", "--json"]);
    let models = String::from_utf8_lossy(&out.stdout);
    assert!(models.contains("\"codes\"") && models.contains("qr_code") && models.contains("barcode"), "{models}");
}

/// Sizes, turns and perspective, each code alone on its own copy of the group photo, through
/// `veil redact`: every code a reader gets from the photo before redaction reads nowhere after.
#[test]
fn every_size_and_turn_that_reads_is_masked_until_it_does_not() {
    let tmp = tempfile::tempdir().unwrap();
    let (input, output) = (tmp.path().join("in"), tmp.path().join("out"));
    std::fs::create_dir_all(&input).unwrap();
    let base = load_rgb(&photo("group6.jpg"));
    let mut cases = Vec::new();
    let codes: [(&'static str, BarcodeFormat, &[f64], &[f64]); 3] = [
        ("https://example.invalid/badge/0731", BarcodeFormat::QR_CODE, &[2.0, 3.0, 5.0], &[0.0, 20.0, 45.0]),
        ("VEIL-ASSET-0042", BarcodeFormat::CODE_128, &[1.5, 2.0, 3.0], &[0.0, 10.0, 20.0]),
        ("5901234123457", BarcodeFormat::EAN_13, &[1.5, 2.0, 3.0], &[0.0, 10.0, 20.0]),
    ];
    for (text, format, modules, turns) in codes {
        let m = encode(text, format);
        for &module in modules {
            for &turn in turns {
                for perspective in [false, true] {
                    let (w, h) = (m.width() as f64 * module, m.height() as f64 * module.max(2.0));
                    let mut quad = turned((640.0, 690.0), w, h, turn);
                    if perspective {
                        // The right edge a fifth shorter: seen from the left.
                        let mid = ((quad[1].0 + quad[2].0) / 2.0, (quad[1].1 + quad[2].1) / 2.0);
                        for i in [1, 2] {
                            quad[i] = (mid.0 + (quad[i].0 - mid.0) * 0.8, mid.1 + (quad[i].1 - mid.1) * 0.8);
                        }
                    }
                    let mut img = base.clone();
                    let placed = draw(&mut img, text, format, quad);
                    let name = format!("{:?}-{module}px-{turn}deg-{}.png", format, if perspective { "persp" } else { "flat" });
                    // The premise: a reader scanning the photo gets it. (At the readers' limit,
                    // 2 px modules turned and in perspective, some codes read only in some crops.)
                    let reads = read(&img, [0.0, 0.0, img.width() as f64, img.height() as f64]).as_deref() == Some(text);
                    if reads {
                        img.save(input.join(&name)).unwrap();
                    }
                    cases.push((name, placed, reads));
                }
            }
        }
    }
    let readable = cases.iter().filter(|c| c.2).count();
    // Most of them read before redaction (not the smallest turned too far).
    assert!(readable * 10 >= cases.len() * 6, "only {readable} of {} drawn codes read back", cases.len());
    let out = veil(&["redact", input.to_str().unwrap(), "-o", output.to_str().unwrap(), "--backend", "codes"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for (name, placed, _) in cases.iter().filter(|c| c.2) {
        // Afterwards not even a crop around it reads.
        let after = load_rgb(&output.join(name));
        assert_eq!(read(&after, grown(placed.bounds(), 20.0)), None, "{name} still reads after redaction");
        assert_eq!(read(&after, [0.0, 0.0, after.width() as f64, after.height() as f64]), None, "{name}");
    }
    eprintln!("{readable} of {} drawn codes read before redaction; none of them after", cases.len());
}
