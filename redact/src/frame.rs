//! A borrowed, mutable view of a packed RGB8 image (row stride may exceed width * 3).

use crate::region::PixelRect;

/// Why a buffer cannot be viewed as an RGB frame.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("frame has a zero dimension ({width}x{height})")]
    Empty { width: u32, height: u32 },
    #[error("row stride {stride} is shorter than a row of {width} RGB pixels")]
    StrideTooShort { stride: usize, width: u32 },
    #[error("buffer holds {len} bytes; {width}x{height} RGB with stride {stride} needs {needed}")]
    BufferTooSmall { len: usize, width: u32, height: u32, stride: usize, needed: usize },
}

/// Mutable RGB8 frame: `height` rows of `stride` bytes, each starting with `width` RGB triplets.
pub struct RgbFrame<'a> {
    data: &'a mut [u8],
    width: u32,
    height: u32,
    stride: usize,
}

impl<'a> RgbFrame<'a> {
    /// View a tightly packed buffer (`stride == width * 3`).
    pub fn new(data: &'a mut [u8], width: u32, height: u32) -> Result<Self, FrameError> {
        Self::with_stride(data, width, height, width as usize * 3)
    }

    /// View a buffer whose rows are `stride` bytes apart.
    pub fn with_stride(data: &'a mut [u8], width: u32, height: u32, stride: usize) -> Result<Self, FrameError> {
        if width == 0 || height == 0 {
            return Err(FrameError::Empty { width, height });
        }
        if stride < width as usize * 3 {
            return Err(FrameError::StrideTooShort { stride, width });
        }
        let needed = stride * (height as usize - 1) + width as usize * 3;
        if data.len() < needed {
            return Err(FrameError::BufferTooSmall { len: data.len(), width, height, stride, needed });
        }
        Ok(Self { data, width, height, stride })
    }

    pub fn width(&self) -> u32 {
        self.width
    }

    pub fn height(&self) -> u32 {
        self.height
    }

    /// Copy the pixels of `area` (already clipped to the frame) into a packed buffer.
    pub(crate) fn copy_rect(&self, area: &PixelRect) -> Vec<u8> {
        let row_bytes = area.w as usize * 3;
        let mut out = Vec::with_capacity(row_bytes * area.h as usize);
        for y in area.y..area.y + area.h {
            let start = y as usize * self.stride + area.x as usize * 3;
            out.extend_from_slice(&self.data[start..start + row_bytes]);
        }
        out
    }

    /// Mix `patch` (packed, `area`-sized) into the frame with per-pixel opacity from `alpha`
    /// (0 keeps the frame pixel, 255 takes the patch pixel). Coordinates given to `alpha` are
    /// frame coordinates.
    pub(crate) fn blend_rect(&mut self, area: &PixelRect, patch: &[u8], alpha: impl Fn(u32, u32) -> u8) {
        let row_bytes = area.w as usize * 3;
        for (row, y) in (area.y..area.y + area.h).enumerate() {
            let start = y as usize * self.stride + area.x as usize * 3;
            let dst = &mut self.data[start..start + row_bytes];
            let src = &patch[row * row_bytes..(row + 1) * row_bytes];
            for (col, x) in (area.x..area.x + area.w).enumerate() {
                let a = alpha(x, y) as u32;
                if a == 0 {
                    continue;
                }
                let i = col * 3;
                if a == 255 {
                    dst[i..i + 3].copy_from_slice(&src[i..i + 3]);
                } else {
                    for c in 0..3 {
                        let mixed = (src[i + c] as u32 * a + dst[i + c] as u32 * (255 - a) + 127) / 255;
                        dst[i + c] = mixed as u8;
                    }
                }
            }
        }
    }
}
