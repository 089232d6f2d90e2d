//! Local contrast for the text detector: CLAHE on the lightness of CIE Lab (sRGB, D65), the first
//! step of the plate recipe (dark plates in shade and washed-out plates in sun both gain edges).

/// Contrast-limited adaptive histogram equalisation parameters (OpenCV's meaning).
#[derive(Debug, Clone, Copy)]
pub struct Clahe {
    /// Histogram bins are clipped at `clip_limit` times the mean bin height.
    pub clip_limit: f32,
    /// Tiles across and down.
    pub tiles: usize,
}

impl Default for Clahe {
    fn default() -> Self {
        Self { clip_limit: 2.0, tiles: 8 }
    }
}

impl Clahe {
    /// Equalise a `w` x `h` 8-bit plane in place.
    pub fn apply(&self, plane: &mut [u8], w: usize, h: usize) {
        assert_eq!(plane.len(), w * h, "plane size");
        if w == 0 || h == 0 {
            return;
        }
        let n = self.tiles.max(1);
        // Tiles cover the plane extended (mirrored) to a multiple of the grid, like OpenCV.
        let (tw, th) = (w.div_ceil(n).max(1), h.div_ceil(n).max(1));
        let tile_area = (tw * th) as f32;
        let clip = ((self.clip_limit * tile_area / 256.0) as usize).max(1);
        let mirror = |v: usize, len: usize| -> usize {
            if v < len {
                v
            } else if len == 1 {
                0
            } else {
                // reflect-101: len, len+1, ... map to len-2, len-3, ...
                (2 * (len - 1)).saturating_sub(v).min(len - 1)
            }
        };
        let mut luts = vec![[0u8; 256]; n * n];
        for ty in 0..n {
            for tx in 0..n {
                let mut hist = [0usize; 256];
                for y in ty * th..(ty + 1) * th {
                    let row = mirror(y, h) * w;
                    for x in tx * tw..(tx + 1) * tw {
                        hist[plane[row + mirror(x, w)] as usize] += 1;
                    }
                }
                let mut excess = 0;
                for b in hist.iter_mut() {
                    if *b > clip {
                        excess += *b - clip;
                        *b = clip;
                    }
                }
                let (batch, mut residual) = (excess / 256, excess % 256);
                for b in hist.iter_mut() {
                    *b += batch;
                }
                if let Some(step) = 256usize.checked_div(residual) {
                    let step = step.max(1);
                    let mut i = 0;
                    while i < 256 && residual > 0 {
                        hist[i] += 1;
                        residual -= 1;
                        i += step;
                    }
                }
                let scale = 255.0 / tile_area;
                let lut = &mut luts[ty * n + tx];
                let mut sum = 0usize;
                for (v, b) in hist.iter().enumerate() {
                    sum += b;
                    lut[v] = to_u8(sum as f32 * scale);
                }
            }
        }
        // Bilinear blend of the four nearest tiles' mappings.
        let axis = |p: usize, size: usize| -> (usize, usize, f32) {
            let f = (p as f32 + 0.5) / size as f32 - 0.5;
            let lo = f.floor();
            let frac = f - lo;
            let lo = lo as isize;
            let a = lo.clamp(0, n as isize - 1) as usize;
            let b = (lo + 1).clamp(0, n as isize - 1) as usize;
            (a, b, frac)
        };
        let cols: Vec<(usize, usize, f32)> = (0..w).map(|x| axis(x, tw)).collect();
        for y in 0..h {
            let (ty1, ty2, fy) = axis(y, th);
            for (x, &(tx1, tx2, fx)) in cols.iter().enumerate() {
                let v = plane[y * w + x] as usize;
                let top = luts[ty1 * n + tx1][v] as f32 * (1.0 - fx) + luts[ty1 * n + tx2][v] as f32 * fx;
                let bottom = luts[ty2 * n + tx1][v] as f32 * (1.0 - fx) + luts[ty2 * n + tx2][v] as f32 * fx;
                plane[y * w + x] = to_u8(top * (1.0 - fy) + bottom * fy);
            }
        }
    }
}

/// Round a non-negative value to the nearest u8 (saturating); `f32::round` is a libm call on
/// baseline x86-64 and this runs per pixel.
fn to_u8(v: f32) -> u8 {
    (v + 0.5).clamp(0.0, 255.0) as u8
}

// sRGB (D65) <-> XYZ <-> Lab.
const WHITE: [f32; 3] = [0.950_456, 1.0, 1.088_754];
const RGB_TO_XYZ: [[f32; 3]; 3] =
    [[0.412_453, 0.357_580, 0.180_423], [0.212_671, 0.715_160, 0.072_169], [0.019_334, 0.119_193, 0.950_227]];
const XYZ_TO_RGB: [[f32; 3]; 3] =
    [[3.240_479, -1.537_15, -0.498_535], [-0.969_256, 1.875_992, 0.041_556], [0.055_648, -0.204_043, 1.057_311]];
/// Steps of the linear-light -> sRGB table.
const ENCODE_STEPS: usize = 4096;
/// Steps of Lab's f(t) table over t in 0..=[`LAB_F_MAX`] (linearly interpolated).
const LAB_F_STEPS: usize = 8192;
/// XYZ over the white point stays below this for any sRGB colour.
const LAB_F_MAX: f32 = 1.01;

fn lab_f(t: f32) -> f32 {
    if t > 0.008_856 {
        t.cbrt()
    } else {
        7.787 * t + 16.0 / 116.0
    }
}

/// Lab's f(t) from a table: `cbrt` per channel per pixel dominated the preprocessing.
struct LabF(Vec<f32>);

impl LabF {
    fn new() -> Self {
        Self((0..=LAB_F_STEPS + 1).map(|i| lab_f(i as f32 * LAB_F_MAX / LAB_F_STEPS as f32)).collect())
    }

    fn at(&self, t: f32) -> f32 {
        let x = t.clamp(0.0, LAB_F_MAX) * (LAB_F_STEPS as f32 / LAB_F_MAX);
        let i = x as usize;
        let frac = x - i as f32;
        self.0[i] + (self.0[i + 1] - self.0[i]) * frac
    }
}

fn lab_f_inv(f: f32) -> f32 {
    let t = f * f * f;
    if t > 0.008_856 {
        t
    } else {
        (f - 16.0 / 116.0) / 7.787
    }
}

/// Equalise the lightness of a packed RGB8 image in place, keeping each pixel's a* and b*.
pub fn equalize_lightness(rgb: &mut [u8], w: usize, h: usize, clahe: &Clahe) {
    assert_eq!(rgb.len(), w * h * 3, "image size");
    let decode: Vec<f32> = (0..256)
        .map(|v| {
            let c = v as f32 / 255.0;
            if c <= 0.040_45 {
                c / 12.92
            } else {
                ((c + 0.055) / 1.055).powf(2.4)
            }
        })
        .collect();
    let encode: Vec<u8> = (0..=ENCODE_STEPS)
        .map(|i| {
            let c = i as f32 / ENCODE_STEPS as f32;
            let s = if c <= 0.003_130_8 { 12.92 * c } else { 1.055 * c.powf(1.0 / 2.4) - 0.055 };
            to_u8(s * 255.0)
        })
        .collect();
    let f = LabF::new();
    let mut lightness = vec![0u8; w * h];
    let mut chroma = vec![[0f32; 2]; w * h];
    for (i, px) in rgb.chunks_exact(3).enumerate() {
        let lin = [decode[px[0] as usize], decode[px[1] as usize], decode[px[2] as usize]];
        let xyz: [f32; 3] = std::array::from_fn(|r| {
            (RGB_TO_XYZ[r][0] * lin[0] + RGB_TO_XYZ[r][1] * lin[1] + RGB_TO_XYZ[r][2] * lin[2]) / WHITE[r]
        });
        let (fx, fy, fz) = (f.at(xyz[0]), f.at(xyz[1]), f.at(xyz[2]));
        let l = 116.0 * fy - 16.0;
        lightness[i] = to_u8(l * 255.0 / 100.0);
        chroma[i] = [500.0 * (fx - fy), 200.0 * (fy - fz)];
    }
    clahe.apply(&mut lightness, w, h);
    for (i, px) in rgb.chunks_exact_mut(3).enumerate() {
        let l = lightness[i] as f32 * 100.0 / 255.0;
        let fy = (l + 16.0) / 116.0;
        let [a, b] = chroma[i];
        let xyz = [lab_f_inv(fy + a / 500.0) * WHITE[0], lab_f_inv(fy) * WHITE[1], lab_f_inv(fy - b / 200.0) * WHITE[2]];
        for (c, out) in px.iter_mut().enumerate() {
            let lin = XYZ_TO_RGB[c][0] * xyz[0] + XYZ_TO_RGB[c][1] * xyz[1] + XYZ_TO_RGB[c][2] * xyz[2];
            *out = encode[(lin.clamp(0.0, 1.0) * ENCODE_STEPS as f32 + 0.5) as usize];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flat_plane_stays_flat_and_a_ramp_gains_contrast() {
        let mut flat = vec![100u8; 64 * 48];
        Clahe::default().apply(&mut flat, 64, 48);
        let first = flat[0];
        assert!(flat.iter().all(|&v| v == first));

        // A low-contrast ramp (values 100..131) spreads out.
        let (w, h) = (128, 96);
        let mut ramp: Vec<u8> = (0..w * h).map(|i| 100 + ((i % w) * 32 / w) as u8).collect();
        Clahe::default().apply(&mut ramp, w, h);
        let (lo, hi) = (ramp.iter().min().unwrap(), ramp.iter().max().unwrap());
        assert!(hi - lo > 40, "range {lo}..{hi}");
    }

    #[test]
    fn the_lab_table_matches_the_function() {
        let f = LabF::new();
        for i in 0..=1000 {
            let t = i as f32 / 1000.0;
            assert!((f.at(t) - lab_f(t)).abs() < 1e-4, "f({t}) = {} vs {}", f.at(t), lab_f(t));
        }
    }

    #[test]
    fn grey_stays_grey_and_colour_keeps_its_hue() {
        // Greys map to greys (a* = b* = 0 survives the round trip).
        let mut img: Vec<u8> = (0..32 * 32).flat_map(|i| [(i % 256) as u8; 3]).collect();
        equalize_lightness(&mut img, 32, 32, &Clahe::default());
        for px in img.chunks_exact(3) {
            assert!(px[0].abs_diff(px[1]) <= 1 && px[1].abs_diff(px[2]) <= 1, "{px:?}");
        }
        // A flat red image stays red (tiles of 16x16 px: the clip limit keeps a flat tile flat).
        let mut red = [200u8, 30, 30].repeat(128 * 128);
        equalize_lightness(&mut red, 128, 128, &Clahe::default());
        assert!(red[0] > red[1] + 100 && red[1].abs_diff(red[2]) <= 2, "{:?}", &red[..3]);
    }
}
