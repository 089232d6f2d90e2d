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
    /// The device is not there (yet): unplugged, or never present.
    #[error("camera unavailable: {0}")]
    Unavailable(String),
    /// The device went away while streaming.
    #[error("camera lost: {0}")]
    Disconnected(String),
    /// The device exists but cannot do what the config asks.
    #[error("camera unsupported: {0}")]
    Unsupported(String),
    #[error("frame buffer of {len} bytes does not hold {width}x{height} {format}")]
    BadBuffer { len: usize, width: u32, height: u32, format: &'static str },
}

impl SourceError {
    /// Whether reopening the source may help (a lost or absent device), as opposed to a
    /// configuration the device will never accept.
    pub fn is_transient(&self) -> bool {
        matches!(self, SourceError::Unavailable(_) | SourceError::Disconnected(_) | SourceError::Io { .. })
    }
}
