//! Decoding an image file's bytes into upright RGB8, refusing what would need too much memory
//! and what is truncated. PNGs are decoded straight to 8-bit RGB, row by row.

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
            return Err(truncated("file is truncated (its compressed image data ends before the end-of-image marker)"))
        }
        ImageFormat::Png if !png_is_complete(bytes) => {
            return Err(truncated("file is truncated (a chunk runs past the end, or no IEND chunk)"))
        }
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
    if format == ImageFormat::Png {
        return decode_png(bytes);
    }
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

/// A PNG straight to upright 8-bit RGB: 16-bit samples are stripped, palettes and grey expanded
/// and alpha dropped row by row as the rows are decoded, so no wider copy of the picture is ever
/// held (a 10000x10000 16-bit RGBA PNG would need 800 MB before its 300 MB of RGB). Interlaced
/// files are assembled at 8 bits (at most 4 bytes a pixel) first. `inspect` has checked the size.
fn decode_png(bytes: &[u8]) -> Result<DecodedPhoto, PhotoError> {
    let corrupt = |e: png::DecodingError| PhotoError::Corrupt { format: "PNG", reason: e.to_string() };
    let mut decoder = png::Decoder::new(Cursor::new(bytes));
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info().map_err(corrupt)?;
    let (w, h, interlaced) = {
        let i = reader.info();
        (i.width as usize, i.height as usize, i.interlaced)
    };
    let exif = reader.info().exif_metadata.as_ref().map(|c| c.to_vec());
    let icc_profile = reader.info().icc_profile.as_ref().map(|c| c.to_vec());
    let channels = reader.output_color_type().0.samples();
    let ended = || PhotoError::Corrupt { format: "PNG", reason: "file is truncated (image data ends early)".into() };
    let mut rgb = vec![0u8; w * h * 3];
    if interlaced {
        let size = reader.output_buffer_size().ok_or_else(ended)?;
        let mut frame = vec![0u8; size];
        reader.next_frame(&mut frame).map_err(corrupt)?;
        let stride = frame.len() / h.max(1);
        for (y, out) in rgb.chunks_exact_mut(w * 3).enumerate() {
            to_rgb8(&frame[y * stride..], channels, out);
        }
    } else {
        for out in rgb.chunks_exact_mut(w * 3) {
            let row = reader.next_row().map_err(corrupt)?.ok_or_else(ended)?;
            to_rgb8(row.data(), channels, out);
        }
    }
    reader.finish().map_err(corrupt)?;
    let image = RgbImage::from_raw(w as u32, h as u32, rgb).ok_or_else(ended)?;
    let mut img = DynamicImage::ImageRgb8(image);
    if let Some(o) = exif.as_deref().and_then(image::metadata::Orientation::from_exif_chunk) {
        img.apply_orientation(o);
    }
    Ok(DecodedPhoto { image: img.into_rgb8(), format: ImageFormat::Png, exif, icc_profile })
}

/// One decoded 8-bit row of `channels` samples a pixel (grey, grey+alpha, RGB, RGBA) as RGB.
fn to_rgb8(row: &[u8], channels: usize, out: &mut [u8]) {
    for (px, o) in row.chunks_exact(channels).zip(out.chunks_exact_mut(3)) {
        match channels {
            1 | 2 => o.fill(px[0]),
            _ => o.copy_from_slice(&px[..3]),
        }
    }
}

/// Whether a PNG's chunks, walked by their lengths from the signature, all lie within the file
/// and end with IEND: a file cut anywhere (inside the image data above all) has a chunk running
/// past its end, whatever bytes its text chunks happen to hold.
fn png_is_complete(bytes: &[u8]) -> bool {
    const SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
    if !bytes.starts_with(&SIGNATURE) {
        return false;
    }
    let mut at = SIGNATURE.len();
    while at + 12 <= bytes.len() {
        let len = u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]) as usize;
        let Some(end) = at.checked_add(12).and_then(|e| e.checked_add(len)) else { return false };
        if end > bytes.len() {
            return false;
        }
        if &bytes[at + 4..at + 8] == b"IEND" {
            return true;
        }
        at = end;
    }
    false
}

/// Whether a WebP file is as long as its RIFF header says.
fn webp_is_complete(bytes: &[u8]) -> bool {
    bytes.len() >= 12 && {
        let size = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]) as usize;
        bytes.len() >= size.saturating_add(8)
    }
}

/// Whether a JPEG's compressed data runs to its end-of-image marker, found the way a decoder
/// finds it: segments are walked by their lengths from SOI (so the bytes of an APPn or COM
/// segment, an EXIF thumbnail's own SOS and EOI among them, are skipped unread), and each scan's
/// entropy-coded data must end in a marker (inside it 0xFF is always followed by 0x00 or a
/// restart marker). A file cut inside a scan, where lenient decoders fill the rest with grey,
/// ends without one.
fn jpeg_is_complete(b: &[u8]) -> bool {
    if b.len() < 4 || b[0] != 0xFF || b[1] != 0xD8 {
        return false;
    }
    let mut i = 2;
    loop {
        // Find the next marker; decoders skip stray bytes and fill bytes (repeated 0xFF).
        while i < b.len() && b[i] != 0xFF {
            i += 1;
        }
        while i < b.len() && b[i] == 0xFF {
            i += 1;
        }
        let Some(&marker) = b.get(i) else { return false };
        i += 1;
        match marker {
            0xD9 => return true,
            0xD8 | 0xD0..=0xD7 | 0x01 => {}
            _ => {
                let Some(len) = b.get(i..i + 2).map(|l| u16::from_be_bytes([l[0], l[1]]) as usize) else { return false };
                if len < 2 || i + len > b.len() {
                    return false;
                }
                i += len;
                if marker == 0xDA {
                    // Entropy-coded data up to the next real marker.
                    loop {
                        let Some(ff) = b[i..].iter().position(|&x| x == 0xFF) else { return false };
                        i += ff;
                        match b.get(i + 1) {
                            None => return false,
                            Some(0x00) | Some(0xD0..=0xD7) => i += 2,
                            Some(0xFF) => i += 1,
                            Some(_) => break,
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A JPEG whose APP1 segment carries a complete thumbnail (its own SOS ... EOI), then the
    /// main image; `cut` bytes are removed from the end.
    fn jpeg_with_thumbnail(cut: usize) -> Vec<u8> {
        let mut main = Vec::new();
        let img = image::RgbImage::from_fn(64, 48, |x, y| image::Rgb([(x * 4) as u8, (y * 5) as u8, 90]));
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut main, 90).encode_image(&img).unwrap();
        let thumb = b"\xFF\xD8\xFF\xDA\x00\x02\x12\x34\xFF\xD9".to_vec();
        let mut app1 = vec![0xFF, 0xE1];
        app1.extend_from_slice(&((thumb.len() + 2) as u16).to_be_bytes());
        app1.extend_from_slice(&thumb);
        let mut out = main[..2].to_vec();
        out.extend_from_slice(&app1);
        out.extend_from_slice(&main[2..]);
        out.truncate(out.len() - cut);
        out
    }

    #[test]
    fn a_jpeg_cut_in_its_scan_is_truncated_even_with_a_thumbnail_holding_sos_and_eoi() {
        assert!(jpeg_is_complete(&jpeg_with_thumbnail(0)));
        for cut in [2, 10, 200] {
            let b = jpeg_with_thumbnail(cut);
            assert!(!jpeg_is_complete(&b), "cut {cut}");
            assert!(matches!(inspect(&b, &DecodeLimits::default()), Err(PhotoError::Corrupt { .. })), "cut {cut}");
        }
    }

    fn png_16bit_rgba(w: u32, h: u32) -> Vec<u8> {
        let img = image::ImageBuffer::<image::Rgba<u16>, _>::from_fn(w, h, |x, y| image::Rgba([x as u16 * 1000, y as u16 * 900, 12345, 65535]));
        let mut out = Vec::new();
        image::DynamicImage::ImageRgba16(img).write_to(&mut Cursor::new(&mut out), ImageFormat::Png).unwrap();
        out
    }

    #[test]
    fn pngs_decode_to_8_bit_rgb_and_a_cut_one_is_refused() {
        let png = png_16bit_rgba(40, 30);
        let photo = decode(&png, &DecodeLimits::default()).unwrap();
        assert_eq!(photo.image.dimensions(), (40, 30));
        // 16-bit values keep their top byte; alpha is dropped.
        assert_eq!(photo.image.get_pixel(3, 2).0, [(3000u16 >> 8) as u8, (1800u16 >> 8) as u8, (12345u16 >> 8) as u8]);
        for cut in [13, 100, png.len() / 2] {
            let b = &png[..png.len() - cut];
            assert!(matches!(decode(b, &DecodeLimits::default()), Err(PhotoError::Corrupt { .. })), "cut {cut}");
        }
        // A text chunk holding IEND's bytes does not make a cut file look complete.
        let mut tricky = png[..33].to_vec();
        let text = b"tEXtkey\0\0\0\0\0IEND";
        tricky.extend_from_slice(&(text.len() as u32 - 4).to_be_bytes());
        tricky.extend_from_slice(text);
        tricky.extend_from_slice(&[0, 0, 0, 0]);
        tricky.extend_from_slice(&png[33..png.len() - 20]);
        assert!(!png_is_complete(&tricky));
    }
}
