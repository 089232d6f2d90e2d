//! Decoding an image file's bytes into upright RGB8, refusing what would need too much memory.

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits, RgbImage};

/// Why a photo could not be read. Every variant is the caller's input, never a crash.
#[derive(Debug, thiserror::Error)]
pub enum PhotoError {
    #[error("empty file")]
    Empty,
    #[error("file is {size} bytes; the limit is {limit}")]
    TooLarge { size: u64, limit: u64 },
    #[error("not a supported image (JPEG, PNG or WebP)")]
    UnknownFormat,
    #[error("image is {width}x{height}; the limit is {max_side} px a side and {max_pixels} pixels")]
    Dimensions { width: u32, height: u32, max_side: u32, max_pixels: u64 },
    #[error("cannot decode {format}: {reason}")]
    Corrupt { format: &'static str, reason: String },
    #[error("cannot encode: {0}")]
    Encode(String),
}

/// Upper bounds checked before any pixel buffer is allocated.
#[derive(Debug, Clone, Copy)]
pub struct DecodeLimits {
    pub max_file_bytes: u64,
    pub max_side: u32,
    pub max_pixels: u64,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self { max_file_bytes: 100 * 1024 * 1024, max_side: 16384, max_pixels: 100_000_000 }
    }
}

/// A decoded, upright photo and the metadata it carried.
pub struct DecodedPhoto {
    pub image: RgbImage,
    pub format: ImageFormat,
    /// Raw EXIF (TIFF structure), when the file had any.
    pub exif: Option<Vec<u8>>,
    pub icc_profile: Option<Vec<u8>>,
}

fn format_name(f: ImageFormat) -> &'static str {
    match f {
        ImageFormat::Jpeg => "JPEG",
        ImageFormat::Png => "PNG",
        ImageFormat::WebP => "WebP",
        _ => "image",
    }
}

/// What a cheap look at a file's header says: its format and size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PhotoHeader {
    pub format: ImageFormat,
    pub width: u32,
    pub height: u32,
}

/// Check `bytes` without decoding the pixels: a supported format, dimensions within `limits`,
/// and (for JPEG) not truncated. [`decode`] runs the same checks first.
pub fn inspect(bytes: &[u8], limits: &DecodeLimits) -> Result<PhotoHeader, PhotoError> {
    if bytes.is_empty() {
        return Err(PhotoError::Empty);
    }
    if bytes.len() as u64 > limits.max_file_bytes {
        return Err(PhotoError::TooLarge { size: bytes.len() as u64, limit: limits.max_file_bytes });
    }
    let format = image::guess_format(bytes).map_err(|_| PhotoError::UnknownFormat)?;
    if !matches!(format, ImageFormat::Jpeg | ImageFormat::Png | ImageFormat::WebP) {
        return Err(PhotoError::UnknownFormat);
    }
    let corrupt = |e: image::ImageError| PhotoError::Corrupt { format: format_name(format), reason: e.to_string() };
    // Header first: refuse oversized images before any decoder allocates for them.
    let mut header = ImageReader::with_format(Cursor::new(bytes), format);
    header.no_limits();
    let (width, height) = header.into_dimensions().map_err(corrupt)?;
    if width == 0
        || height == 0
        || width > limits.max_side
        || height > limits.max_side
        || width as u64 * height as u64 > limits.max_pixels
    {
        return Err(PhotoError::Dimensions { width, height, max_side: limits.max_side, max_pixels: limits.max_pixels });
    }
    let truncated = |reason: &str| PhotoError::Corrupt { format: format_name(format), reason: reason.into() };
    match format {
        ImageFormat::Jpeg if !jpeg_is_complete(bytes) => {
            return Err(truncated("file is truncated (no end-of-image marker after the scan)"))
        }
        ImageFormat::Png if !png_is_complete(bytes) => return Err(truncated("file is truncated (no IEND chunk)")),
        ImageFormat::WebP if !webp_is_complete(bytes) => {
            return Err(truncated("file is truncated (shorter than its RIFF header says)"))
        }
        _ => {}
    }
    Ok(PhotoHeader { format, width, height })
}

/// Decode `bytes`: check the format and the header's dimensions against `limits` first, then
/// decode, apply the EXIF orientation, and convert to RGB8 (alpha is dropped, grey expanded).
pub fn decode(bytes: &[u8], limits: &DecodeLimits) -> Result<DecodedPhoto, PhotoError> {
    let PhotoHeader { format, .. } = inspect(bytes, limits)?;
    let corrupt = |e: image::ImageError| PhotoError::Corrupt { format: format_name(format), reason: e.to_string() };
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut lim = Limits::default();
    lim.max_image_width = Some(limits.max_side);
    lim.max_image_height = Some(limits.max_side);
    // RGBA16 is the widest buffer any supported decoder makes.
    lim.max_alloc = Some(limits.max_pixels.saturating_mul(8).max(1 << 20));
    reader.limits(lim);
    let mut decoder = reader.into_decoder().map_err(corrupt)?;
    let orientation = decoder.orientation().map_err(corrupt)?;
    let exif = decoder.exif_metadata().ok().flatten();
    let icc_profile = decoder.icc_profile().ok().flatten();
    let mut img = DynamicImage::from_decoder(decoder).map_err(corrupt)?;
    img.apply_orientation(orientation);
    Ok(DecodedPhoto { image: img.into_rgb8(), format, exif, icc_profile })
}

/// Whether a PNG has its closing IEND chunk (a truncated file does not).
fn png_is_complete(bytes: &[u8]) -> bool {
    let tail = &bytes[bytes.len().saturating_sub(64 * 1024)..];
    tail.windows(8).any(|w| w == [0, 0, 0, 0, b'I', b'E', b'N', b'D'])
}

/// Whether a WebP file is as long as its RIFF header says.
fn webp_is_complete(bytes: &[u8]) -> bool {
    bytes.len() >= 12 && {
        let size = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]) as usize;
        bytes.len() >= size.saturating_add(8)
    }
}

/// Whether a JPEG has an end-of-image marker after its first scan. Lenient decoders fill a
/// truncated scan with grey; veil refuses such a file instead of redacting half a photo.
/// (Inside entropy-coded data 0xFF is always followed by 0x00 or a restart marker, so 0xFFD9
/// after the start of scan can only be the real end marker; a thumbnail's own EOI sits before it.)
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let Some(sos) = bytes.windows(2).position(|w| w == [0xFF, 0xDA]) else { return false };
    bytes[sos..].windows(2).any(|w| w == [0xFF, 0xD9])
}
