//! Resampling a region of an RGB image into a network's planar float input: a separable
//! triangle filter that is bilinear when upscaling and widens with the factor when downscaling
//! (so a small pyramid level does not alias), pixel centres aligned, edges replicated.

use tract_onnx::prelude::*;

use crate::preprocess::{pad32, RgbImage};

/// Which colour goes into the first input plane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelOrder {
    Rgb,
    Bgr,
}

/// A rectangle of the image resized by (`fx`, `fy`): output pixel (i, j) of the region is pixel
/// (`x0` + i, `y0` + j) of the resized image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Region {
    pub fx: f64,
    pub fy: f64,
    pub x0: u32,
    pub y0: u32,
    pub w: u32,
    pub h: u32,
}

/// Filter taps along one axis: output `i` reads `len` source pixels from `first[i]` with
/// weights `weights[i * len..]`.
struct Taps {
    first: Vec<usize>,
    weights: Vec<f32>,
    len: usize,
}

impl Taps {
    /// Taps for outputs `start..start + n` of an axis of `src` pixels resized by `f`.
    fn new(src: usize, f: f64, start: u32, n: u32) -> Self {
        let support = (1.0 / f).max(1.0);
        let len = (2.0 * support).ceil() as usize + 1;
        let mut first = Vec::with_capacity(n as usize);
        let mut weights = vec![0f32; n as usize * len];
        for i in 0..n as usize {
            let centre = (start as f64 + i as f64 + 0.5) / f;
            let lo = (centre - support - 0.5).floor() as i64;
            // Clamp the window into the image; weights of pixels beyond an edge go to the edge.
            let base = lo.clamp(0, (src as i64 - len as i64).max(0)) as usize;
            first.push(base);
            let row = &mut weights[i * len..(i + 1) * len];
            let mut total = 0.0;
            for k in 0..len + 2 {
                let j = lo + k as i64;
                let w = 1.0 - ((j as f64 + 0.5 - centre).abs() / support);
                if w <= 0.0 {
                    continue;
                }
                let clamped = j.clamp(0, src as i64 - 1) as usize;
                let slot = clamped.saturating_sub(base).min(len - 1);
                row[slot] += w as f32;
                total += w;
            }
            if total > 0.0 {
                row.iter_mut().for_each(|w| *w /= total as f32);
            }
        }
        Self { first, weights, len }
    }

    fn source_range(&self, src: usize) -> (usize, usize) {
        let lo = self.first.iter().copied().min().unwrap_or(0);
        let hi = self.first.iter().map(|f| f + self.len).max().unwrap_or(0).min(src);
        (lo, hi)
    }
}

/// A `[1, 3, pad32(h), pad32(w)]` tensor holding `region` of `img` in its top-left corner, zeros
/// elsewhere, values 0..255 in `order`.
pub fn region_tensor(img: &RgbImage<'_>, region: &Region, order: ChannelOrder) -> Tensor {
    let (nw, nh) = (pad32(region.w) as usize, pad32(region.h) as usize);
    let plane = nw * nh;
    // Written in place: a buffer copied into the tensor afterwards would hold the input twice
    // (11 MB each at 720p) at the top of every pass.
    let mut tensor = Tensor::zero::<f32>(&[1, 3, nh, nw]).expect("a plain f32 shape");
    let mut ram = tensor.try_as_plain_ram_mut().expect("a tensor in plain memory");
    let buf = ram.as_slice_mut::<f32>().expect("an f32 tensor");
    let planes: [usize; 3] = match order {
        ChannelOrder::Rgb => [0, plane, 2 * plane],
        ChannelOrder::Bgr => [2 * plane, plane, 0],
    };
    let (sw, sh) = (img.width as usize, img.height as usize);
    let (rw, rh) = (region.w as usize, region.h as usize);
    if region.fx == 1.0 && region.fy == 1.0 {
        let (x0, y0) = (region.x0 as usize, region.y0 as usize);
        for y in 0..rh.min(sh.saturating_sub(y0)) {
            let row = &img.data[((y0 + y) * sw + x0) * 3..((y0 + y) * sw + sw) * 3];
            for (x, px) in row.chunks_exact(3).take(rw).enumerate() {
                let o = y * nw + x;
                for c in 0..3 {
                    buf[planes[c] + o] = px[c] as f32;
                }
            }
        }
    } else {
        let cols = Taps::new(sw, region.fx, region.x0, region.w);
        let rows = Taps::new(sh, region.fy, region.y0, region.h);
        let (r_lo, r_hi) = rows.source_range(sh);
        // Horizontal pass over the source rows the region needs, then vertical.
        let mut tmp = vec![0f32; (r_hi - r_lo) * rw * 3];
        for r in r_lo..r_hi {
            let src = &img.data[r * sw * 3..(r + 1) * sw * 3];
            let out = &mut tmp[(r - r_lo) * rw * 3..(r - r_lo + 1) * rw * 3];
            for x in 0..rw {
                let (f, w) = (cols.first[x], &cols.weights[x * cols.len..(x + 1) * cols.len]);
                let mut acc = [0f32; 3];
                for (k, &wk) in w.iter().enumerate() {
                    if f + k < sw {
                        let p = &src[(f + k) * 3..(f + k) * 3 + 3];
                        acc[0] += wk * p[0] as f32;
                        acc[1] += wk * p[1] as f32;
                        acc[2] += wk * p[2] as f32;
                    }
                }
                out[x * 3..x * 3 + 3].copy_from_slice(&acc);
            }
        }
        for y in 0..rh {
            let (f, w) = (rows.first[y], &rows.weights[y * rows.len..(y + 1) * rows.len]);
            for x in 0..rw {
                let mut acc = [0f32; 3];
                for (k, &wk) in w.iter().enumerate() {
                    let r = f + k;
                    if wk != 0.0 && r < r_hi {
                        let p = &tmp[((r - r_lo) * rw + x) * 3..((r - r_lo) * rw + x) * 3 + 3];
                        acc[0] += wk * p[0];
                        acc[1] += wk * p[1];
                        acc[2] += wk * p[2];
                    }
                }
                let o = y * nw + x;
                for c in 0..3 {
                    buf[planes[c] + o] = acc[c];
                }
            }
        }
    }
    tensor
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(t: &Tensor) -> Vec<f32> {
        t.to_plain_array_view::<f32>().unwrap().as_slice().unwrap().to_vec()
    }

    #[test]
    fn native_region_copies_planar_in_either_order_and_pads_with_zeros() {
        let data: Vec<u8> = (0..4 * 3 * 3).map(|v| v as u8).collect();
        let img = RgbImage::new(&data, 4, 3).unwrap();
        let r = Region { fx: 1.0, fy: 1.0, x0: 1, y0: 1, w: 2, h: 2 };
        let v = values(&region_tensor(&img, &r, ChannelOrder::Rgb));
        assert_eq!(v.len(), 3 * 32 * 32);
        // Pixel (1,1) of the image is bytes 15..18.
        assert_eq!((v[0], v[1024], v[2048]), (15.0, 16.0, 17.0));
        assert_eq!(v[1], 18.0);
        assert_eq!(v[32], 27.0);
        assert_eq!(v[2], 0.0);
        let b = values(&region_tensor(&img, &r, ChannelOrder::Bgr));
        assert_eq!((b[0], b[1024], b[2048]), (17.0, 16.0, 15.0));
    }

    #[test]
    fn flat_images_stay_flat_up_and_down() {
        let data = vec![200u8; 50 * 40 * 3];
        let img = RgbImage::new(&data, 50, 40).unwrap();
        for f in [2.5, 0.25, 0.7] {
            let r = Region { fx: f, fy: f, x0: 0, y0: 0, w: (50.0 * f) as u32, h: (40.0 * f) as u32 };
            let v = values(&region_tensor(&img, &r, ChannelOrder::Rgb));
            let nw = pad32(r.w) as usize;
            for y in 0..r.h as usize {
                for x in 0..r.w as usize {
                    assert!((v[y * nw + x] - 200.0).abs() < 1e-3, "f {f} at {x},{y}: {}", v[y * nw + x]);
                }
            }
        }
    }

    #[test]
    fn downscaling_averages_instead_of_aliasing() {
        // Alternating black and white columns: a quarter-size copy is mid-grey, not stripes.
        let mut data = vec![0u8; 64 * 8 * 3];
        for y in 0..8 {
            for x in (0..64).step_by(2) {
                data[(y * 64 + x) * 3..(y * 64 + x) * 3 + 3].copy_from_slice(&[255, 255, 255]);
            }
        }
        let img = RgbImage::new(&data, 64, 8).unwrap();
        let r = Region { fx: 0.25, fy: 0.25, x0: 0, y0: 0, w: 16, h: 2 };
        let v = values(&region_tensor(&img, &r, ChannelOrder::Rgb));
        for x in 1..15 {
            assert!((v[x] - 127.5).abs() < 20.0, "column {x}: {}", v[x]);
        }
    }

    #[test]
    fn upscaling_matches_pixel_centre_bilinear() {
        // Two pixels 0 and 100 upscaled 2x: 0, 25, 75, 100.
        let data = [0u8, 0, 0, 100, 100, 100];
        let img = RgbImage::new(&data, 2, 1).unwrap();
        let r = Region { fx: 2.0, fy: 2.0, x0: 0, y0: 0, w: 4, h: 2 };
        let v = values(&region_tensor(&img, &r, ChannelOrder::Rgb));
        assert_eq!(&v[..4], &[0.0, 25.0, 75.0, 100.0]);
    }
}
