//! The `codes` backend: QR codes and barcodes found by decoding them (rxing, ZXing's readers),
//! each boxed by its whole symbol plus a quiet-zone margin; what a code says is never kept.
//!
//! A reader reports a few points, not the symbol's outline: a QR code's corners or its finder
//! centres, a 1D barcode's scan line. The box grows from those points by the symbol's geometry
//! (for a 1D barcode: over the rows beside the line that repeat its bars), and the image is
//! searched again with every box found so far flattened, until nothing more decodes: a code is
//! boxed until no reader pass can read it.

use std::time::Instant;

use rxing::common::HybridBinarizer;
use rxing::multi::{GenericMultipleBarcodeReader, MultipleBarcodeReader};
use rxing::{BarcodeFormat, BinaryBitmap, DecodeHints, Exceptions, Luma8Source, MultiUseMultiFormatReader, Point};

use crate::detection::{BBox, Category, Detection};
use crate::error::DetectError;
use crate::params::DetectParams;
use crate::preprocess::RgbImage;
use crate::registry::BackendInfo;
use crate::{DetectOutput, Detector, StageTimings};

/// At most this many search passes (the first, then one per round of newly boxed codes).
const MAX_PASSES: usize = 4;
/// A QR symbol is at most this many times its finder centres' span (version 1: 21 modules
/// around centres 14 apart).
const QR_SPAN_TO_SYMBOL: f32 = 21.0 / 14.0;
/// The quiet zone and a little more, as a share of the symbol's longer side, on every side.
const MARGIN: f32 = 0.12;
/// A row beside a 1D barcode's line belongs to its bars when this share of its samples agree
/// with the line's (unrelated texture agrees about half the time).
const ROW_AGREEMENT: f32 = 0.75;
/// ...and the bars end after this many rows in a row that do not.
const MISSES: u32 = 3;

/// QR codes and barcodes, located by decoding them.
pub struct Codes {
    info: BackendInfo,
}

impl Codes {
    pub fn new(info: BackendInfo) -> Self {
        Self { info }
    }
}

impl Detector for Codes {
    fn info(&self) -> &BackendInfo {
        &self.info
    }

    fn detect(&self, image: &RgbImage<'_>, params: &DetectParams) -> Result<DetectOutput, DetectError> {
        params.validate()?;
        let wanted = params.wanted(&self.info.categories)?;
        let (w, h) = (image.width, image.height);
        params.check_network_size(w, h)?;
        let t0 = Instant::now();
        let mut luma = luma_of(image);
        let t1 = Instant::now();
        let mut found: Vec<Found> = Vec::new();
        for _ in 0..MAX_PASSES {
            let results = decode_all(&luma, w, h)?;
            let mut grew = false;
            for r in &results {
                let Some(region) = symbol_box(&r.format, &r.points, &luma, w) else {
                    continue;
                };
                let category = category_of(&r.format);
                let same = found
                    .iter_mut()
                    .find(|f| f.format == r.format && f.content == r.text && overlaps_or_touches(&f.bbox, &region));
                match same {
                    Some(f) => {
                        let united = f.bbox.union(&region);
                        grew |= united != f.bbox;
                        f.bbox = united;
                    }
                    None => {
                        grew = true;
                        found.push(Found { format: r.format, content: r.text.clone(), category, bbox: region });
                    }
                }
                flatten(&mut luma, w, &region);
            }
            if !grew {
                break;
            }
        }
        let t2 = Instant::now();
        let detections = found
            .into_iter()
            .filter(|f| wanted.contains(f.category))
            .map(|f| Detection { category: f.category, bbox: f.bbox, score: 1.0, landmarks: None })
            .collect();
        let t3 = Instant::now();
        Ok(DetectOutput { detections, timings: StageTimings::between([t0, t1, t2, t3]), network_input: (w, h) })
    }
}

/// One code found so far. Its content only tells two codes apart within this call; it is
/// dropped with the call, never logged or returned.
struct Found {
    format: BarcodeFormat,
    content: String,
    category: Category,
    bbox: BBox,
}

/// QR codes (and their micro forms) are `qr_code`; every other symbology is `barcode`.
fn category_of(format: &BarcodeFormat) -> Category {
    match format {
        BarcodeFormat::QR_CODE | BarcodeFormat::MICRO_QR_CODE | BarcodeFormat::RECTANGULAR_MICRO_QR_CODE => {
            Category::QrCode
        }
        _ => Category::Barcode,
    }
}

/// BT.601 luma of an RGB image, in integers.
fn luma_of(image: &RgbImage<'_>) -> Vec<u8> {
    image
        .data
        .chunks_exact(3)
        .map(|p| ((77 * p[0] as u32 + 150 * p[1] as u32 + 29 * p[2] as u32 + 128) >> 8) as u8)
        .collect()
}

/// What a reader made of one code.
struct Read {
    format: BarcodeFormat,
    text: String,
    points: Vec<Point>,
}

/// Every code one multi-symbol pass decodes (none is not an error; a reader failure is).
fn decode_all(luma: &[u8], w: u32, h: u32) -> Result<Vec<Read>, DetectError> {
    let source = Luma8Source::new_with_slice(luma, w, h)
        .map_err(|e| DetectError::Inference(format!("code reader: {e}")))?;
    let mut bitmap = BinaryBitmap::new(HybridBinarizer::new(source));
    let hints = DecodeHints { TryHarder: Some(true), AlsoInverted: Some(true), ..DecodeHints::default() };
    let mut reader = GenericMultipleBarcodeReader::new(MultiUseMultiFormatReader::default());
    match reader.decode_multiple_with_hints(&mut bitmap, &hints) {
        Ok(results) => Ok(results
            .into_iter()
            .map(|r| Read { format: *r.getBarcodeFormat(), text: r.getText().to_string(), points: r.getPoints().to_vec() })
            .collect()),
        Err(Exceptions::NotFoundException(_)) => Ok(Vec::new()),
        // The readers report a damaged or unreadable symbol as an error of its own kind; to a
        // search for codes that is nothing found, not a failed detection.
        Err(Exceptions::ChecksumException(_)) | Err(Exceptions::FormatException(_)) => Ok(Vec::new()),
        Err(e) => Err(DetectError::Inference(format!("code reader: {e}"))),
    }
}

/// The box (image pixels, clipped) covering the whole symbol a reader located by `points` in
/// `luma` (`w` pixels wide), plus the margin; `None` without points.
fn symbol_box(format: &BarcodeFormat, points: &[Point], luma: &[u8], w: u32) -> Option<BBox> {
    let pts: Vec<(f32, f32)> = points.iter().filter(|p| p.x.is_finite() && p.y.is_finite()).map(|p| (p.x, p.y)).collect();
    let h = luma.len() / (w as usize).max(1);
    if pts.is_empty() {
        return None;
    }
    let corners: Vec<(f32, f32)> = match format {
        BarcodeFormat::QR_CODE if pts.len() >= 3 && !right_angle_at(pts[1], pts[0], pts[2]) => pts,
        // ZXing's own QR detector reports the bottom-left, top-left and top-right finder
        // centres (then the alignment pattern), at a right angle at the top-left: the
        // parallelogram they span, its fourth corner completed, grown about its centre to the
        // largest symbol those centres can belong to. (The other QR detector reports the
        // symbol's four corners, taken as they are above.)
        BarcodeFormat::QR_CODE if pts.len() >= 3 => {
            let (bl, tl, tr) = (pts[0], pts[1], pts[2]);
            let br = (tr.0 + bl.0 - tl.0, tr.1 + bl.1 - tl.1);
            let quad = [bl, tl, tr, br];
            let c = (quad.iter().map(|p| p.0).sum::<f32>() / 4.0, quad.iter().map(|p| p.1).sum::<f32>() / 4.0);
            let mut out: Vec<(f32, f32)> = quad
                .iter()
                .map(|p| (c.0 + (p.0 - c.0) * QR_SPAN_TO_SYMBOL, c.1 + (p.1 - c.1) * QR_SPAN_TO_SYMBOL))
                .collect();
            out.extend(pts.iter().copied());
            out
        }
        // A 1D reader gives the ends of the line it read: the bars stand across that line, as
        // far as rows beside it repeat its pattern.
        f if is_linear(f) && pts.len() >= 2 => bars_beside(luma, w as usize, h, pts[0], *pts.last().unwrap()),
        // Data Matrix, Aztec, PDF417, MaxiCode report their corners (or the start and stop
        // patterns' ends).
        _ => pts,
    };
    let (mut x1, mut y1, mut x2, mut y2) = (f32::MAX, f32::MAX, f32::MIN, f32::MIN);
    for (x, y) in &corners {
        x1 = x1.min(*x);
        y1 = y1.min(*y);
        x2 = x2.max(*x);
        y2 = y2.max(*y);
    }
    let margin = MARGIN * (x2 - x1).max(y2 - y1).max(8.0);
    let (fw, fh) = (w as f32, h as f32);
    let b = BBox { x1: (x1 - margin).max(0.0), y1: (y1 - margin).max(0.0), x2: (x2 + margin).min(fw), y2: (y2 + margin).min(fh) };
    (b.width() > 0.0 && b.height() > 0.0).then_some(b)
}

/// Whether the angle at `v` between the rays to `a` and `b` is nearer a right angle than half
/// of one (finder centres: 90 degrees; a symbol's top-right, top-left and bottom-left corners
/// taken as such: 45).
fn right_angle_at(v: (f32, f32), a: (f32, f32), b: (f32, f32)) -> bool {
    let (ax, ay, bx, by) = (a.0 - v.0, a.1 - v.1, b.0 - v.0, b.1 - v.1);
    let norms = (ax * ax + ay * ay).sqrt() * (bx * bx + by * by).sqrt();
    norms > 0.0 && ((ax * bx + ay * by) / norms).abs() < (67.5f32).to_radians().cos()
}

/// The corners of the band of rows beside the line `a` -> `b` (read across a 1D barcode) that
/// repeat its bar pattern: rows are taken a pixel further out each step, on both sides, and
/// may slide a pixel along the line per step to follow a slanted barcode; a side ends after
/// [`MISSES`] rows in a row that do not match, or at the line's length.
fn bars_beside(luma: &[u8], w: usize, h: usize, a: (f32, f32), b: (f32, f32)) -> Vec<(f32, f32)> {
    let len = ((b.0 - a.0).powi(2) + (b.1 - a.1).powi(2)).sqrt();
    if len < 2.0 {
        return vec![a, b];
    }
    let d = ((b.0 - a.0) / len, (b.1 - a.1) / len);
    let n = (-d.1, d.0);
    let samples = len as usize;
    // The pattern of the row at `offset` across the line, slid by `slide` along it.
    let row = |offset: f32, slide: f32| -> Option<Vec<bool>> {
        let mut v = Vec::with_capacity(samples);
        for t in 0..samples {
            let t = t as f32 + slide;
            let (x, y) = (a.0 + d.0 * t + n.0 * offset, a.1 + d.1 * t + n.1 * offset);
            if x < 0.0 || y < 0.0 || x >= w as f32 || y >= h as f32 {
                return None;
            }
            v.push(luma[y as usize * w + x as usize]);
        }
        let mean = v.iter().map(|&p| p as u32).sum::<u32>() / samples as u32;
        Some(v.into_iter().map(|p| (p as u32) < mean).collect())
    };
    let Some(line) = row(0.0, 0.0) else { return vec![a, b] };
    let agree = |r: &[bool]| r.iter().zip(&line).filter(|(x, y)| x == y).count() as f32 / samples as f32;
    let mut corners = Vec::with_capacity(4);
    for side in [-1.0f32, 1.0] {
        let (mut reach, mut slide_at_reach, mut slide, mut misses) = (0.0f32, 0.0f32, 0.0f32, 0);
        let mut step = 1.0;
        while step <= len && misses < MISSES {
            let best = [slide - 1.0, slide, slide + 1.0]
                .into_iter()
                .filter_map(|s| row(side * step, s).map(|r| (agree(&r), s)))
                .max_by(|x, y| x.0.total_cmp(&y.0));
            match best {
                Some((score, s)) if score >= ROW_AGREEMENT => {
                    (reach, slide_at_reach, slide, misses) = (step, s, s, 0);
                }
                _ => misses += 1,
            }
            step += 1.0;
        }
        let at = |p: (f32, f32)| (p.0 + d.0 * slide_at_reach + n.0 * side * reach, p.1 + d.1 * slide_at_reach + n.1 * side * reach);
        corners.push(at(a));
        corners.push(at(b));
    }
    corners
}

/// The one-dimensional symbologies (a reader reports the line it read).
fn is_linear(format: &BarcodeFormat) -> bool {
    !matches!(
        format,
        BarcodeFormat::QR_CODE
            | BarcodeFormat::MICRO_QR_CODE
            | BarcodeFormat::RECTANGULAR_MICRO_QR_CODE
            | BarcodeFormat::DATA_MATRIX
            | BarcodeFormat::AZTEC
            | BarcodeFormat::PDF_417
            | BarcodeFormat::MAXICODE
    )
}

fn overlaps_or_touches(a: &BBox, b: &BBox) -> bool {
    a.x1 <= b.x2 && b.x1 <= a.x2 && a.y1 <= b.y2 && b.y1 <= a.y2
}

/// Flatten `b` in the luma plane to its mean: nothing there decodes in the next pass.
fn flatten(luma: &mut [u8], w: u32, b: &BBox) {
    let w = w as usize;
    let h = luma.len() / w.max(1);
    let (x1, x2) = (b.x1.floor().max(0.0) as usize, (b.x2.ceil() as usize).min(w));
    let (y1, y2) = (b.y1.floor().max(0.0) as usize, (b.y2.ceil() as usize).min(h));
    if x1 >= x2 || y1 >= y2 {
        return;
    }
    let mut sum = 0u64;
    for y in y1..y2 {
        sum += luma[y * w + x1..y * w + x2].iter().map(|&v| v as u64).sum::<u64>();
    }
    let mean = (sum / ((x2 - x1) * (y2 - y1)) as u64) as u8;
    for y in y1..y2 {
        luma[y * w + x1..y * w + x2].fill(mean);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn pt(x: f32, y: f32) -> Point {
        Point { x, y }
    }

    #[test]
    fn a_qr_box_covers_the_symbol_around_its_finder_centres() {
        // A version-1 code of 10 px modules at (100, 100): finder centres 3.5 modules in.
        let luma = vec![128u8; 1000 * 1000];
        let centres = [pt(135.0, 275.0), pt(135.0, 135.0), pt(275.0, 135.0)];
        let b = symbol_box(&BarcodeFormat::QR_CODE, &centres, &luma, 1000).unwrap();
        assert!(b.x1 <= 100.0 && b.y1 <= 100.0 && b.x2 >= 310.0 && b.y2 >= 310.0, "{b:?}");
        // ...with a margin of at most a quarter of the symbol.
        assert!(b.x1 >= 100.0 - 0.25 * 210.0 && b.x2 <= 310.0 + 0.25 * 210.0, "{b:?}");
        // The symbol's own corners (top-left, top-right, bottom-left, bottom-right) are taken
        // as they are, plus the margin.
        let corners = [pt(100.0, 100.0), pt(310.0, 100.0), pt(100.0, 310.0), pt(310.0, 310.0)];
        let b = symbol_box(&BarcodeFormat::QR_CODE, &corners, &luma, 1000).unwrap();
        assert!(b.x1 <= 100.0 && b.x2 >= 310.0 && b.x1 >= 100.0 - 0.25 * 210.0 && b.y2 <= 310.0 + 0.25 * 210.0, "{b:?}");
    }

    #[test]
    fn a_barcode_box_follows_its_bars_across_the_line_read() {
        // Bars 3 px wide at irregular steps, rows 100..160 of a 300 x 300 grey image with noise
        // above and below; the line read is row 150 (near the bottom), from x 40 to 240.
        let (w, h) = (300usize, 300usize);
        let mut luma: Vec<u8> = (0..w * h).map(|i| ((i * 7919) % 251) as u8).collect();
        for y in 100..160 {
            for x in 0..w {
                let bar = (40..240).contains(&x) && ((x - 40) / 3) % 3 != 1 && ((x - 40) / 3) % 5 != 2;
                luma[y * w + x] = if bar { 20 } else { 235 };
            }
        }
        let b = symbol_box(&BarcodeFormat::CODE_128, &[pt(40.0, 150.0), pt(240.0, 150.0)], &luma, w as u32).unwrap();
        assert!(b.y1 <= 100.0 && b.y2 >= 159.0, "{b:?}");
        // Not grown into the noise beyond the margin (12 % of 200 px).
        assert!(b.y1 >= 100.0 - 25.0 && b.y2 <= 160.0 + 25.0, "{b:?}");
        assert!(b.x1 < 40.0 && b.x2 > 240.0, "{b:?}");
        assert!(symbol_box(&BarcodeFormat::CODE_128, &[], &luma, w as u32).is_none());
    }

    #[test]
    fn flattening_leaves_one_value() {
        let mut luma: Vec<u8> = (0..100u32).map(|i| (i * 37 % 256) as u8).collect();
        flatten(&mut luma, 10, &BBox { x1: 2.0, y1: 3.0, x2: 6.0, y2: 7.0 });
        let inside: HashSet<u8> = (3..7).flat_map(|y| (2..6).map(move |x| (x, y))).map(|(x, y)| luma[y * 10 + x]).collect();
        assert_eq!(inside.len(), 1);
        assert_eq!(luma[0], 0);
    }
}
