//! Detection on quarter-turned copies of an image as well as the image itself (`rotations`):
//! faces lying on their side or upside down in the pixels (a camera mounted sideways, a photo
//! whose EXIF orientation was lost) score far lower than upright ones. Each turned copy is
//! detected like the original, its boxes turned back into the original's pixels, and all of
//! them merged by NMS per category.

use std::str::FromStr;

use crate::detection::{BBox, Detection, Point};
use crate::error::DetectError;
use crate::params::DetectParams;
use crate::preprocess::RgbImage;
use crate::{DetectOutput, Detector};

/// Which quarter turns (clockwise: 90, 180, 270 degrees) are searched besides the image as it is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rotations(u8);

impl Rotations {
    pub const NONE: Rotations = Rotations(0);
    pub const ALL: Rotations = Rotations(0b111);

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The turns, in degrees clockwise (0 is always searched and not listed).
    pub fn degrees(self) -> impl Iterator<Item = u16> {
        [90u16, 180, 270].into_iter().enumerate().filter(move |(i, _)| self.0 & (1 << i) != 0).map(|(_, d)| d)
    }

    pub fn union(self, other: Rotations) -> Rotations {
        Rotations(self.0 | other.0)
    }
}

impl FromStr for Rotations {
    type Err = DetectError;
    /// A comma-separated list of 0, 90, 180 and 270 (or `all`, or empty/`0`/`none` for none).
    fn from_str(s: &str) -> Result<Self, DetectError> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("all") {
            return Ok(Rotations::ALL);
        }
        if s.is_empty() || s.eq_ignore_ascii_case("none") {
            return Ok(Rotations::NONE);
        }
        let mut bits = 0u8;
        for part in s.split(',') {
            bits |= match part.trim() {
                "0" => 0,
                "90" => 1,
                "180" => 2,
                "270" => 4,
                other => {
                    return Err(DetectError::InvalidParam(format!(
                        "detect_rotations: '{other}' is not one of 0, 90, 180, 270 (or 'all')"
                    )))
                }
            };
        }
        Ok(Rotations(bits))
    }
}

impl std::fmt::Display for Rotations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list: Vec<String> = std::iter::once(0).chain(self.degrees()).map(|d| d.to_string()).collect();
        f.write_str(&list.join(","))
    }
}

/// `src` (`w` x `h` RGB) turned `degrees` clockwise; its width and height.
pub fn rotate_rgb(src: &[u8], w: u32, h: u32, degrees: u16) -> (Vec<u8>, u32, u32) {
    let (w, h) = (w as usize, h as usize);
    let mut out = vec![0u8; src.len()];
    let (ow, oh) = if degrees % 180 == 0 { (w, h) } else { (h, w) };
    for y in 0..h {
        let row = &src[y * w * 3..(y + 1) * w * 3];
        for x in 0..w {
            let (ox, oy) = match degrees {
                90 => (h - 1 - y, x),
                180 => (w - 1 - x, h - 1 - y),
                270 => (y, w - 1 - x),
                _ => (x, y),
            };
            let o = (oy * ow + ox) * 3;
            out[o..o + 3].copy_from_slice(&row[x * 3..x * 3 + 3]);
        }
    }
    (out, ow as u32, oh as u32)
}

/// A point of the copy turned `degrees` clockwise (of an original `w` x `h`) in the original.
fn unrotate(p: (f32, f32), w: f32, h: f32, degrees: u16) -> (f32, f32) {
    let (x, y) = p;
    match degrees {
        90 => (y, h - x),
        180 => (w - x, h - y),
        270 => (w - y, x),
        _ => (x, y),
    }
}

/// A detection on the turned copy, in the original's pixels (box corners re-sorted; landmarks
/// kept in their order, which is the face's own).
fn unrotate_detection(d: Detection, w: f32, h: f32, degrees: u16) -> Detection {
    let (ax, ay) = unrotate((d.bbox.x1, d.bbox.y1), w, h, degrees);
    let (bx, by) = unrotate((d.bbox.x2, d.bbox.y2), w, h, degrees);
    let bbox = BBox { x1: ax.min(bx), y1: ay.min(by), x2: ax.max(bx), y2: ay.max(by) };
    let landmarks = d.landmarks.map(|lm| {
        lm.map(|p| {
            let (x, y) = unrotate((p.x, p.y), w, h, degrees);
            Point { x, y }
        })
    });
    Detection { bbox, landmarks, ..d }
}

/// Detect in `image` and, for each turn `params.rotations` names, in a turned copy; every box in
/// `image`'s pixels, merged per category at `params.nms_threshold`, best first, at most
/// `params.max_faces`. Timings add up over the passes; any pass failing fails the whole.
pub fn detect(detector: &dyn Detector, image: &RgbImage<'_>, params: &DetectParams) -> Result<DetectOutput, DetectError> {
    let inner = DetectParams { rotations: Rotations::NONE, ..*params };
    let mut out = detector.detect(image, &inner)?;
    if params.rotations.is_empty() {
        return Ok(out);
    }
    let (w, h) = (image.width as f32, image.height as f32);
    let mut all = std::mem::take(&mut out.detections);
    for degrees in params.rotations.degrees() {
        let (pixels, rw, rh) = rotate_rgb(image.data, image.width, image.height, degrees);
        let turned = detector.detect(&RgbImage::new(&pixels, rw, rh)?, &inner)?;
        out.timings.preprocess_ms += turned.timings.preprocess_ms;
        out.timings.inference_ms += turned.timings.inference_ms;
        out.timings.postprocess_ms += turned.timings.postprocess_ms;
        all.extend(turned.detections.into_iter().map(|d| unrotate_detection(d, w, h, degrees)));
    }
    let mut merged = Vec::new();
    for category in crate::Category::ALL {
        let of: Vec<Detection> = all.iter().filter(|d| d.category == category).cloned().collect();
        merged.extend(crate::nms::suppress(of, params.nms_threshold));
    }
    merged.sort_by(|a, b| b.score.total_cmp(&a.score));
    if params.max_faces > 0 {
        merged.truncate(params.max_faces);
    }
    out.detections = merged;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turns_parse_and_print() {
        assert_eq!("90,270".parse::<Rotations>().unwrap().degrees().collect::<Vec<_>>(), [90, 270]);
        assert_eq!("all".parse::<Rotations>().unwrap(), Rotations::ALL);
        assert_eq!("0".parse::<Rotations>().unwrap(), Rotations::NONE);
        assert!("45".parse::<Rotations>().is_err());
        assert_eq!(Rotations::ALL.to_string(), "0,90,180,270");
    }

    #[test]
    fn a_pixel_turned_and_a_box_turned_back_land_where_they_started() {
        // A 4x2 image with one red pixel at (3, 0).
        let (w, h) = (4u32, 2u32);
        let mut img = vec![0u8; (w * h * 3) as usize];
        img[3 * 3] = 255;
        for degrees in [90u16, 180, 270] {
            let (turned, tw, th) = rotate_rgb(&img, w, h, degrees);
            let at = turned.chunks(3).position(|p| p[0] == 255).unwrap() as u32;
            let (tx, ty) = (at % tw, at / tw);
            // The pixel's box in the turned copy, turned back.
            let d = Detection {
                category: crate::Category::Face,
                bbox: BBox { x1: tx as f32, y1: ty as f32, x2: tx as f32 + 1.0, y2: ty as f32 + 1.0 },
                score: 1.0,
                landmarks: None,
            };
            let back = unrotate_detection(d, w as f32, h as f32, degrees).bbox;
            assert_eq!((back.x1, back.y1, back.x2, back.y2), (3.0, 0.0, 4.0, 1.0), "{degrees}");
            assert_eq!(rotate_rgb(&turned, tw, th, 360 - degrees).0, img);
        }
    }
}
