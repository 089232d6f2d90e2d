//! A synthetic, deterministic test pattern: colour bars with a bright square that moves one step
//! per frame, so a consumer can check ordering and content without a camera.

use std::time::SystemTime;

use crate::frame::{Frame, SourceError};
use crate::FrameSource;

pub struct TestPattern {
    width: u32,
    height: u32,
    sequence: u64,
    limit: Option<u64>,
}

impl TestPattern {
    /// `limit` frames (endless when `None`).
    pub fn new(width: u32, height: u32, limit: Option<u64>) -> Self {
        Self { width: width.max(16), height: height.max(16), sequence: 0, limit }
    }

    /// Top-left corner of the moving square in frame `sequence` (side = height / 8).
    pub fn square_at(&self, sequence: u64) -> (u32, u32) {
        let side = self.height / 8;
        let span = (self.width - side) as u64;
        (((sequence * 8) % span.max(1)) as u32, self.height / 2 - side / 2)
    }
}

const BARS: [[u8; 3]; 8] = [
    [235, 235, 235],
    [235, 235, 16],
    [16, 235, 235],
    [16, 235, 16],
    [235, 16, 235],
    [235, 16, 16],
    [16, 16, 235],
    [16, 16, 16],
];

impl FrameSource for TestPattern {
    fn describe(&self) -> String {
        format!("test-pattern {}x{}", self.width, self.height)
    }

    fn next_frame(&mut self) -> Result<Option<Frame>, SourceError> {
        if self.limit.is_some_and(|l| self.sequence >= l) {
            return Ok(None);
        }
        let (w, h) = (self.width as usize, self.height as usize);
        let mut rgb = Vec::with_capacity(w * h * 3);
        for _y in 0..h {
            for x in 0..w {
                rgb.extend_from_slice(&BARS[x * 8 / w]);
            }
        }
        let side = (self.height / 8) as usize;
        let (sx, sy) = self.square_at(self.sequence);
        for y in sy as usize..sy as usize + side {
            for x in sx as usize..sx as usize + side {
                rgb[(y * w + x) * 3..(y * w + x) * 3 + 3].copy_from_slice(&[255, 255, 255]);
            }
        }
        let frame = Frame {
            rgb,
            width: self.width,
            height: self.height,
            sequence: self.sequence,
            timestamp: SystemTime::now(),
        };
        self.sequence += 1;
        Ok(Some(frame))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_moves_and_ends() {
        let mut p = TestPattern::new(64, 32, Some(2));
        let a = p.next_frame().unwrap().unwrap();
        let b = p.next_frame().unwrap().unwrap();
        assert!(p.next_frame().unwrap().is_none());
        assert_eq!((a.sequence, b.sequence), (0, 1));
        assert_eq!(a.rgb.len(), 64 * 32 * 3);
        let probe = TestPattern::new(64, 32, None);
        let (x, y) = probe.square_at(1);
        let i = ((y * 64 + x) * 3) as usize;
        assert_eq!(&b.rgb[i..i + 3], &[255, 255, 255]);
        assert_ne!(&a.rgb[i..i + 3], &[255, 255, 255]);
        assert_eq!(&a.rgb[0..3], &BARS[0]);
    }
}
