//! Turning an RGB image into the network's input tensor: resize to the detection size, pad to a
//! multiple of 32, planar float 0..255 (CenterFace takes raw RGB values, no normalisation).

use tract_onnx::prelude::*;

use crate::error::DetectError;

/// A borrowed, tightly packed RGB8 image.
#[derive(Debug, Clone, Copy)]
pub struct RgbImage<'a> {
    pub data: &'a [u8],
    pub width: u32,
    pub height: u32,
}

impl<'a> RgbImage<'a> {
    pub fn new(data: &'a [u8], width: u32, height: u32) -> Result<Self, DetectError> {
        let expected = width as usize * height as usize * 3;
        if width == 0 || height == 0 || data.len() != expected {
            return Err(DetectError::BadImage { width, height, expected, actual: data.len() });
        }
        Ok(Self { data, width, height })
    }
}

/// For each of `dst` output positions along one axis, the two source positions (of `src`) a
/// bilinear resize blends and the second one's weight (pixel centres aligned).
pub fn bilinear_taps(src: usize, dst: usize) -> Vec<(usize, usize, f32)> {
    let f = src as f32 / dst as f32;
    (0..dst)
        .map(|i| {
            let s = ((i as f32 + 0.5) * f - 0.5).clamp(0.0, (src - 1) as f32);
            let lo = s.floor() as usize;
            (lo, (lo + 1).min(src - 1), s - lo as f32)
        })
        .collect()
}

/// Round up to the next multiple of 32 (the network's total stride).
pub fn pad32(v: u32) -> u32 {
    v.div_ceil(32).max(1) * 32
}

/// Build a `[1, 3, pad32(th), pad32(tw)]` tensor holding `img` resized to `tw` x `th` (bilinear,
/// pixel centres aligned) in its top-left corner, zeros elsewhere.
pub fn to_tensor(img: &RgbImage<'_>, tw: u32, th: u32) -> Tensor {
    let (nw, nh) = (pad32(tw) as usize, pad32(th) as usize);
    let (tw, th) = (tw as usize, th as usize);
    let plane = nw * nh;
    let mut buf = vec![0f32; 3 * plane];
    let (sw, sh) = (img.width as usize, img.height as usize);
    if tw == sw && th == sh {
        for y in 0..th {
            let row = &img.data[y * sw * 3..(y + 1) * sw * 3];
            for (x, px) in row.chunks_exact(3).enumerate() {
                let o = y * nw + x;
                buf[o] = px[0] as f32;
                buf[plane + o] = px[1] as f32;
                buf[2 * plane + o] = px[2] as f32;
            }
        }
    } else {
        let cols = bilinear_taps(sw, tw);
        for (y, (y0, y1, wy)) in bilinear_taps(sh, th).into_iter().enumerate() {
            let r0 = &img.data[y0 * sw * 3..(y0 + 1) * sw * 3];
            let r1 = &img.data[y1 * sw * 3..(y1 + 1) * sw * 3];
            for (x, &(x0, x1, wx)) in cols.iter().enumerate() {
                let o = y * nw + x;
                for c in 0..3 {
                    let top = r0[x0 * 3 + c] as f32 * (1.0 - wx) + r0[x1 * 3 + c] as f32 * wx;
                    let bot = r1[x0 * 3 + c] as f32 * (1.0 - wx) + r1[x1 * 3 + c] as f32 * wx;
                    buf[c * plane + o] = top * (1.0 - wy) + bot * wy;
                }
            }
        }
    }
    Tensor::from_shape(&[1, 3, nh, nw], &buf).expect("shape matches buffer")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_size_copies_planar_and_pads_with_zeros() {
        let data: Vec<u8> = (0..2 * 3 * 3).map(|v| v as u8).collect();
        let img = RgbImage::new(&data, 3, 2).unwrap();
        let t = to_tensor(&img, 3, 2);
        assert_eq!(t.shape(), &[1, 3, 32, 32]);
        let view = t.to_plain_array_view::<f32>().unwrap();
        let v = view.as_slice().unwrap();
        assert_eq!(v[0], 0.0); // R of (0,0)
        assert_eq!(v[1], 3.0); // R of (1,0)
        assert_eq!(v[32], 9.0); // R of (0,1)
        assert_eq!(v[32 * 32], 1.0); // G of (0,0)
        assert_eq!(v[3], 0.0); // padding
    }

    #[test]
    fn upscaling_a_flat_image_stays_flat() {
        let data = vec![200u8; 5 * 4 * 3];
        let img = RgbImage::new(&data, 5, 4).unwrap();
        let t = to_tensor(&img, 10, 8);
        let view = t.to_plain_array_view::<f32>().unwrap();
        let v = view.as_slice().unwrap();
        assert!((v[7 * 32 + 9] - 200.0).abs() < 1e-3);
        assert_eq!(v[8 * 32], 0.0);
    }

    #[test]
    fn rejects_inconsistent_buffers() {
        assert!(RgbImage::new(&[0u8; 5], 2, 1).is_err());
        assert!(RgbImage::new(&[], 0, 0).is_err());
        assert_eq!(pad32(1), 32);
        assert_eq!(pad32(64), 64);
        assert_eq!(pad32(65), 96);
    }
}
