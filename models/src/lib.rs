//! veil-models: face (YuNet, CenterFace), licence-plate and text detectors on tract, and QR codes and
//! barcodes read by rxing, behind one [`Detector`] API, with their pre/post-processing, model
//! artifacts and a registry of backends.

mod artifacts;
mod centerface;
mod codes;
mod contrast;
mod detection;
mod ensemble;
mod error;
mod int8;
mod lazy_network;
mod nms;
mod params;
mod persons;
mod plan_cache;
mod plates;
mod dp_unit;
mod dw_stride2;
mod upsample_add;
mod conv3x3;
mod pool2x2;
mod yunet_stem;
mod precision;
mod preprocess;
mod registry;
mod resample;
pub mod rotations;
mod scan;
mod text;
mod text_map;
mod text_regions;
mod yunet;

pub use artifacts::{ModelArtifact, ModelStore, MANIFEST_JSON};
pub use centerface::CenterFace;
pub use codes::Codes;
pub use detection::{BBox, Category, CategorySet, Detection, Point};
pub use ensemble::Ensemble;
pub use error::DetectError;
pub use int8::onnx_with_int8_ops;
pub use params::{
    DetectParams, DetectScale, Tiling, AUTO_MIN_LONG_SIDE, DEFAULT_CONFIDENCE, DEFAULT_TEXT_CONFIDENCE, DEFAULT_TEXT_MIN_HEIGHT,
    DEFAULT_TINY_CONFIDENCE, TINY_FACE_PX,
};
pub use persons::{Persons, SIDE as PERSONS_SIDE};
pub use plates::{PlateShape, Plates};
pub use precision::Precision;
pub use preprocess::RgbImage;
pub use rotations::Rotations;
pub use registry::{BackendInfo, PrecisionProbe, Registry, ENSEMBLE_SEPARATOR};
pub use scan::TILE_OVERLAP;
pub use text::Text;
/// The text detector's network, public for `examples/profile_ops.rs`.
#[doc(hidden)]
pub use text_map::TextMapNetwork;
pub use yunet::YuNet;

/// Per-stage timings of one detection call, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct StageTimings {
    pub preprocess_ms: f64,
    pub inference_ms: f64,
    pub postprocess_ms: f64,
}

impl StageTimings {
    /// The stages' lengths from the instants at which preprocessing starts, inference starts,
    /// postprocessing starts and postprocessing ends.
    pub fn between([t0, t1, t2, t3]: [std::time::Instant; 4]) -> Self {
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
        Self { preprocess_ms: ms(t1 - t0), inference_ms: ms(t2 - t1), postprocess_ms: ms(t3 - t2) }
    }
}

/// What a detector returns for one image.
#[derive(Debug, Clone, Default)]
pub struct DetectOutput {
    pub detections: Vec<Detection>,
    pub timings: StageTimings,
    /// Size (w, h) of the tensor the network saw.
    pub network_input: (u32, u32),
}

/// One detection API; backends (CenterFace, plates, ensembles of them) implement it.
pub trait Detector: Send + Sync {
    /// Static facts about this backend instance (name, precision, model hash, ...).
    fn info(&self) -> &BackendInfo;

    /// Find objects in `image`. Boxes are in `image`'s pixel coordinates.
    fn detect(&self, image: &RgbImage<'_>, params: &DetectParams) -> Result<DetectOutput, DetectError>;
}
