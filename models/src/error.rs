//! Errors of model loading and detection.

/// Why a detector could not be built or could not process an image.
#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    #[error("model file {path}: {reason}")]
    ModelUnavailable { path: String, reason: String },
    #[error("model {name}: sha256 {actual} does not match the manifest's {expected}")]
    ChecksumMismatch { name: String, expected: String, actual: String },
    #[error("unknown backend '{0}'")]
    UnknownBackend(String),
    #[error("this detector cannot find '{0}' (load a backend that does, e.g. centerface+plates)")]
    UnsupportedCategory(String),
    #[error("invalid parameter: {0}")]
    InvalidParam(String),
    #[error("image is {width}x{height}; it must be at least 1x1 and its data {expected} bytes, got {actual}")]
    BadImage { width: u32, height: u32, expected: usize, actual: usize },
    #[error("network input {width}x{height} is too large (limit {limit} pixels)")]
    InputTooLarge { width: u32, height: u32, limit: u64 },
    #[error("inference failed: {0}")]
    Inference(String),
}

impl From<tract_onnx::prelude::TractError> for DetectError {
    fn from(e: tract_onnx::prelude::TractError) -> Self {
        DetectError::Inference(format!("{e:#}"))
    }
}
