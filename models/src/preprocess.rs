//! The borrowed RGB image every detector takes, the bilinear taps of the plate network's resize,
//! and the networks' multiple-of-32 padding.

use crate::error::DetectError;

/// A borrowed, tightly packed RGB8 image.
#[derive(Debug, Clone, Copy)]
pub struct RgbImage<'a> {
    pub data: &'a [u8],
    pub width: u32,
    pub height: u32,
}

impl<'a> RgbImage<'a> {
    pub fn new(data: &'a [u8], width: u32, height: u32) -> Result<Self, DetectError> {
        let expected = width as usize * height as usize * 3;
        if width == 0 || height == 0 || data.len() != expected {
            return Err(DetectError::BadImage { width, height, expected, actual: data.len() });
        }
        Ok(Self { data, width, height })
    }
}

/// For each of `dst` output positions along one axis, the two source positions (of `src`) a
/// bilinear resize blends and the second one's weight (pixel centres aligned).
pub fn bilinear_taps(src: usize, dst: usize) -> Vec<(usize, usize, f32)> {
    let f = src as f32 / dst as f32;
    (0..dst)
        .map(|i| {
            let s = ((i as f32 + 0.5) * f - 0.5).clamp(0.0, (src - 1) as f32);
            let lo = s.floor() as usize;
            (lo, (lo + 1).min(src - 1), s - lo as f32)
        })
        .collect()
}

/// Round up to the next multiple of 32 (the network's total stride).
pub fn pad32(v: u32) -> u32 {
    v.div_ceil(32).max(1) * 32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_inconsistent_buffers() {
        assert!(RgbImage::new(&[0u8; 5], 2, 1).is_err());
        assert!(RgbImage::new(&[], 0, 0).is_err());
        assert_eq!(pad32(1), 32);
        assert_eq!(pad32(64), 64);
        assert_eq!(pad32(65), 96);
    }
}
