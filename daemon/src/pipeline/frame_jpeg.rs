//! A redacted camera frame to JPEG, with `jpeg-encoder` (SIMD on CPUs that have it): the camera's
//! JPEG is encoded once per output frame, so its cost comes straight off the frame rate.

use jpeg_encoder::{ColorType, Encoder, SamplingFactor};

/// Encode `rgb` (`width` x `height`, 8-bit RGB) at `quality` with 4:2:0 chroma.
pub fn encode(rgb: &[u8], width: u32, height: u32, quality: u8) -> Result<Vec<u8>, String> {
    let (w, h) = (u16::try_from(width), u16::try_from(height));
    let (Ok(w), Ok(h)) = (w, h) else {
        return Err(format!("JPEG encoding: {width}x{height} is past JPEG's 65535 px a side"));
    };
    let mut out = Vec::with_capacity(rgb.len() / 8);
    let mut encoder = Encoder::new(&mut out, quality);
    encoder.set_sampling_factor(SamplingFactor::R_4_2_0);
    encoder.encode(rgb, w, h, ColorType::Rgb).map_err(|e| format!("JPEG encoding: {e}"))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn encodes_a_frame_that_decodes_to_the_same_picture() {
        let (w, h) = (64u32, 48u32);
        let rgb: Vec<u8> = (0..w * h).flat_map(|i| [(i % w * 4) as u8, (i / w * 5) as u8, 128]).collect();
        let jpeg = super::encode(&rgb, w, h, 90).unwrap();
        let back = image::load_from_memory(&jpeg).unwrap().into_rgb8();
        assert_eq!(back.dimensions(), (w, h));
        let err: f64 = back.as_raw().iter().zip(&rgb).map(|(a, b)| (*a as f64 - *b as f64).abs()).sum::<f64>() / rgb.len() as f64;
        assert!(err < 4.0, "mean error {err}");
        assert!(super::encode(&rgb, 70_000, 1, 90).is_err());
    }
}
