//! A captured frame (packed RGB8 with sequence number and timestamp) and source errors.

use std::time::SystemTime;

/// One frame: `width * height * 3` bytes of packed RGB, numbered from 0 per source.
#[derive(Debug, Clone)]
pub struct Frame {
    pub rgb: Vec<u8>,
    pub width: u32,
    pub height: u32,
    pub sequence: u64,
    pub timestamp: SystemTime,
}

/// Why a source could not deliver a frame.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{path}: {reason}")]
    Io { path: String, reason: String },
    #[error("{what}: cannot decode: {reason}")]
    Decode { what: String, reason: String },
    #[error("source has no frames: {0}")]
    Empty(String),
    #[error("frame buffer of {len} bytes does not hold {width}x{height} {format}")]
    BadBuffer { len: usize, width: u32, height: u32, format: &'static str },
}
