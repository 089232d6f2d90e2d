//! Camera pixel formats and their conversion to packed RGB8.

use crate::frame::SourceError;

/// Formats a camera may deliver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PixelFormat {
    /// Motion JPEG: each frame a JPEG image.
    Mjpeg,
    /// YUV 4:2:2 packed as Y0 U Y1 V.
    Yuyv,
    /// Packed RGB, 3 bytes a pixel.
    Rgb24,
}

/// BT.601 limited-range YUYV to RGB, in 16.16 fixed point. `src` holds rows of `stride` bytes.
pub fn yuyv_to_rgb(src: &[u8], width: u32, height: u32, stride: usize, dst: &mut Vec<u8>) -> Result<(), SourceError> {
    let (w, h) = (width as usize, height as usize);
    if w % 2 != 0 || stride < w * 2 || src.len() < stride * h.saturating_sub(1) + w * 2 {
        return Err(SourceError::BadBuffer { len: src.len(), width, height, format: "YUYV" });
    }
    dst.clear();
    dst.resize(w * h * 3, 0);
    for y in 0..h {
        let row = &src[y * stride..y * stride + w * 2];
        let out = &mut dst[y * w * 3..(y + 1) * w * 3];
        for (quad, px) in row.chunks_exact(4).zip(out.chunks_exact_mut(6)) {
            let (u, v) = (quad[1] as i32 - 128, quad[3] as i32 - 128);
            let ruv = 104_597 * v;
            let guv = -25_675 * u - 53_279 * v;
            let buv = 132_201 * u;
            for (i, &luma) in [quad[0], quad[2]].iter().enumerate() {
                let c = (luma as i32 - 16).max(0) * 76_309;
                let clamp = |x: i32| ((x + 32_768) >> 16).clamp(0, 255) as u8;
                px[i * 3] = clamp(c + ruv);
                px[i * 3 + 1] = clamp(c + guv);
                px[i * 3 + 2] = clamp(c + buv);
            }
        }
    }
    Ok(())
}

/// Packed RGB24 with row padding to tightly packed RGB8.
pub fn rgb24_to_rgb(src: &[u8], width: u32, height: u32, stride: usize, dst: &mut Vec<u8>) -> Result<(), SourceError> {
    let (w, h) = (width as usize, height as usize);
    if stride < w * 3 || src.len() < stride * h.saturating_sub(1) + w * 3 {
        return Err(SourceError::BadBuffer { len: src.len(), width, height, format: "RGB24" });
    }
    dst.clear();
    dst.reserve(w * h * 3);
    for y in 0..h {
        dst.extend_from_slice(&src[y * stride..y * stride + w * 3]);
    }
    Ok(())
}

/// The standard Huffman tables (JPEG Annex K) as DHT segments. UVC cameras leave them out of
/// MJPEG frames and expect them implied; the `image` encoder writes exactly these, so they are
/// taken from one tiny encoded image instead of being spelled out here.
fn standard_huffman_segments() -> &'static [u8] {
    static TABLES: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    TABLES.get_or_init(|| {
        let mut jpeg = Vec::new();
        let pixels = [128u8; 8 * 8 * 3];
        let encoded = image::codecs::jpeg::JpegEncoder::new(&mut jpeg).encode(&pixels, 8, 8, image::ExtendedColorType::Rgb8);
        let mut tables = Vec::new();
        if encoded.is_ok() {
            for (marker, segment) in segments(&jpeg) {
                if marker == 0xC4 {
                    tables.extend_from_slice(segment);
                }
            }
        }
        tables
    })
}

/// The marker segments of a JPEG header up to (not including) the start of scan: (marker, bytes
/// of the whole segment including its FF xx prefix).
fn segments(jpeg: &[u8]) -> Vec<(u8, &[u8])> {
    let mut out = Vec::new();
    let mut i = 2;
    while i + 4 <= jpeg.len() && jpeg[i] == 0xFF {
        let marker = jpeg[i + 1];
        if marker == 0xDA {
            break;
        }
        let len = u16::from_be_bytes([jpeg[i + 2], jpeg[i + 3]]) as usize;
        let end = (i + 2 + len).min(jpeg.len());
        out.push((marker, &jpeg[i..end]));
        i = end;
    }
    out
}

/// `data` with the standard Huffman tables inserted before the scan, if it has none.
fn with_huffman_tables(data: &[u8]) -> Option<Vec<u8>> {
    if data.len() < 4 || data[..2] != [0xFF, 0xD8] {
        return None;
    }
    let segs = segments(data);
    if segs.iter().any(|(m, _)| *m == 0xC4) {
        return None;
    }
    let header_len: usize = 2 + segs.iter().map(|(_, s)| s.len()).sum::<usize>();
    let tables = standard_huffman_segments();
    let mut out = Vec::with_capacity(data.len() + tables.len());
    out.extend_from_slice(&data[..header_len]);
    out.extend_from_slice(tables);
    out.extend_from_slice(&data[header_len..]);
    Some(out)
}

/// Decode one Motion-JPEG frame into packed RGB8; returns its size. Frames without Huffman
/// tables (most UVC webcams) get the standard ones.
pub fn decode_mjpeg(data: &[u8], what: &str, dst: &mut Vec<u8>) -> Result<(u32, u32), SourceError> {
    let completed = with_huffman_tables(data);
    let data = completed.as_deref().unwrap_or(data);
    let img = image::load_from_memory_with_format(data, image::ImageFormat::Jpeg)
        .map_err(|e| SourceError::Decode { what: what.to_string(), reason: e.to_string() })?
        .into_rgb8();
    let (w, h) = img.dimensions();
    *dst = img.into_raw();
    Ok((w, h))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference: the BT.601 limited-range equations in floating point.
    fn reference(y: u8, u: u8, v: u8) -> [u8; 3] {
        let (c, d, e) = (y as f64 - 16.0, u as f64 - 128.0, v as f64 - 128.0);
        let c = c.max(0.0);
        let f = |x: f64| x.round().clamp(0.0, 255.0) as u8;
        [f(1.164383 * c + 1.596027 * e), f(1.164383 * c - 0.391762 * d - 0.812968 * e), f(1.164383 * c + 2.017232 * d)]
    }

    #[test]
    fn yuyv_matches_the_bt601_reference_within_one_level() {
        let mut src = Vec::new();
        let mut expect = Vec::new();
        for (i, y0) in (0..=255u16).step_by(5).enumerate() {
            let (y0, y1) = (y0 as u8, (255 - y0) as u8);
            let (u, v) = ((i * 37 % 256) as u8, (i * 91 % 256) as u8);
            src.extend_from_slice(&[y0, u, y1, v]);
            expect.extend_from_slice(&reference(y0, u, v));
            expect.extend_from_slice(&reference(y1, u, v));
        }
        let width = (src.len() / 2) as u32;
        let mut out = Vec::new();
        yuyv_to_rgb(&src, width, 1, src.len(), &mut out).unwrap();
        for (i, (a, b)) in out.iter().zip(&expect).enumerate() {
            assert!((*a as i32 - *b as i32).abs() <= 1, "byte {i}: {a} vs {b}");
        }
        // Known colours: black, white, mid grey.
        yuyv_to_rgb(&[16, 128, 235, 128], 2, 1, 4, &mut out).unwrap();
        assert_eq!(out, [0, 0, 0, 255, 255, 255]);
    }

    #[test]
    fn strides_and_bad_buffers() {
        let src = [16, 128, 16, 128, 9, 9, 235, 128, 235, 128, 9, 9];
        let mut out = Vec::new();
        yuyv_to_rgb(&src, 2, 2, 6, &mut out).unwrap();
        assert_eq!(out, [0, 0, 0, 0, 0, 0, 255, 255, 255, 255, 255, 255]);
        assert!(yuyv_to_rgb(&src, 3, 2, 6, &mut out).is_err());
        assert!(yuyv_to_rgb(&src[..8], 2, 2, 6, &mut out).is_err());
        rgb24_to_rgb(&[1, 2, 3, 0, 4, 5, 6, 0], 1, 2, 4, &mut out).unwrap();
        assert_eq!(out, [1, 2, 3, 4, 5, 6]);
        assert!(rgb24_to_rgb(&[1, 2], 1, 1, 3, &mut out).is_err());
    }
}
