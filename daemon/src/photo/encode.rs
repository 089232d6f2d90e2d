//! Encoding redacted RGB8 frames to JPEG, PNG or WebP, with only the metadata the caller passes.

use std::path::Path;

use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::codecs::webp::WebPEncoder;
use image::{ExtendedColorType, ImageEncoder, RgbImage};

use super::PhotoError;

/// Output file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// JPEG at a quality of 1..=100.
    Jpeg {
        quality: u8,
    },
    Png,
    /// Lossless WebP.
    WebP,
}

impl OutputFormat {
    /// From a name (`jpeg`, `jpg`, `png`, `webp`); JPEG gets `quality`.
    pub fn from_name(name: &str, quality: u8) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "jpg" | "jpeg" => Some(OutputFormat::Jpeg { quality: quality.clamp(1, 100) }),
            "png" => Some(OutputFormat::Png),
            "webp" => Some(OutputFormat::WebP),
            _ => None,
        }
    }

    /// From a path's extension.
    pub fn from_path(path: &Path, quality: u8) -> Option<Self> {
        path.extension().and_then(|e| e.to_str()).and_then(|e| Self::from_name(e, quality))
    }

    pub fn extension(&self) -> &'static str {
        match self {
            OutputFormat::Jpeg { .. } => "jpg",
            OutputFormat::Png => "png",
            OutputFormat::WebP => "webp",
        }
    }

    pub fn mime(&self) -> &'static str {
        match self {
            OutputFormat::Jpeg { .. } => "image/jpeg",
            OutputFormat::Png => "image/png",
            OutputFormat::WebP => "image/webp",
        }
    }
}

/// Encode `img`. `exif` (raw TIFF-structured EXIF) and `icc` are written when given; nothing
/// else from the source file is.
pub fn encode(
    img: &RgbImage,
    format: OutputFormat,
    exif: Option<Vec<u8>>,
    icc: Option<Vec<u8>>,
) -> Result<Vec<u8>, PhotoError> {
    let mut out = Vec::with_capacity(img.len() / 4);
    let (w, h) = img.dimensions();
    let err = |e: image::ImageError| PhotoError::Encode(e.to_string());
    fn with_meta<E: ImageEncoder>(mut enc: E, exif: Option<Vec<u8>>, icc: Option<Vec<u8>>) -> E {
        if let Some(x) = exif {
            let _ = enc.set_exif_metadata(x);
        }
        if let Some(p) = icc {
            let _ = enc.set_icc_profile(p);
        }
        enc
    }
    match format {
        OutputFormat::Jpeg { quality } => with_meta(JpegEncoder::new_with_quality(&mut out, quality), exif, icc)
            .write_image(img.as_raw(), w, h, ExtendedColorType::Rgb8)
            .map_err(err)?,
        OutputFormat::Png => with_meta(PngEncoder::new(&mut out), exif, icc)
            .write_image(img.as_raw(), w, h, ExtendedColorType::Rgb8)
            .map_err(err)?,
        OutputFormat::WebP => with_meta(WebPEncoder::new_lossless(&mut out), exif, icc)
            .write_image(img.as_raw(), w, h, ExtendedColorType::Rgb8)
            .map_err(err)?,
    }
    Ok(out)
}
