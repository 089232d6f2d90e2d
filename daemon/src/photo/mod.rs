//! Photos in and out: decoding with size limits and EXIF orientation, encoding to JPEG/PNG/WebP,
//! and the metadata policy (stripped by default; GPS always stripped).

mod decode;
mod encode;
mod metadata;

pub use decode::{decode, inspect, DecodeLimits, DecodedPhoto, PhotoError, PhotoHeader};
pub use encode::{encode, OutputFormat};
pub use metadata::exif_without_gps;
