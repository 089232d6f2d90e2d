//! Frames from an MJPEG stream file: JPEG images back to back, split on their start and end
//! markers.

use std::path::Path;
use std::time::SystemTime;

use crate::frame::{Frame, SourceError};
use crate::pixel_format::decode_mjpeg;
use crate::FrameSource;

pub struct MjpegFile {
    label: String,
    data: Vec<u8>,
    pos: usize,
    looped: bool,
    sequence: u64,
}

impl MjpegFile {
    pub fn open(path: &Path, looped: bool) -> Result<Self, SourceError> {
        let data = std::fs::read(path)
            .map_err(|e| SourceError::Io { path: path.display().to_string(), reason: e.to_string() })?;
        Self::from_bytes(data, path.display().to_string(), looped)
    }

    pub fn from_bytes(data: Vec<u8>, label: String, looped: bool) -> Result<Self, SourceError> {
        if find(&data, 0, [0xFF, 0xD8]).is_none() {
            return Err(SourceError::Empty(label));
        }
        Ok(Self { label, data, pos: 0, looped, sequence: 0 })
    }

    /// The next complete JPEG (SOI .. EOI after its scan) from `pos`, if any.
    fn next_jpeg(&mut self) -> Option<std::ops::Range<usize>> {
        let start = find(&self.data, self.pos, [0xFF, 0xD8])?;
        let sos = find(&self.data, start, [0xFF, 0xDA])?;
        let end = find(&self.data, sos, [0xFF, 0xD9])? + 2;
        self.pos = end;
        Some(start..end)
    }
}

fn find(data: &[u8], from: usize, marker: [u8; 2]) -> Option<usize> {
    data.get(from..)?.windows(2).position(|w| w == marker).map(|i| i + from)
}

impl FrameSource for MjpegFile {
    fn describe(&self) -> String {
        format!("mjpeg:{}", self.label)
    }

    fn next_frame(&mut self) -> Result<Option<Frame>, SourceError> {
        let range = match self.next_jpeg() {
            Some(r) => r,
            None if self.looped && self.sequence > 0 => {
                self.pos = 0;
                match self.next_jpeg() {
                    Some(r) => r,
                    None => return Ok(None),
                }
            }
            None => return Ok(None),
        };
        let mut rgb = Vec::new();
        let what = format!("{} frame {}", self.label, self.sequence);
        let (width, height) = decode_mjpeg(&self.data[range], &what, &mut rgb)?;
        let frame = Frame { rgb, width, height, sequence: self.sequence, timestamp: SystemTime::now() };
        self.sequence += 1;
        Ok(Some(frame))
    }
}
