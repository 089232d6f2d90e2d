//! The arithmetic of the int8 ops on plain slices, separate from tract's plumbing so it can be
//! unit-tested against a scalar reference.

/// Geometry and quantization of one depthwise convolution (batch 1, NCHW, dilation 1).
#[derive(Debug, Clone, PartialEq)]
pub struct DepthwiseSpec {
    pub channels: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: (usize, usize),
    /// Padding (top, left, bottom, right).
    pub pads: (usize, usize, usize, usize),
    pub x_zero: i32,
    pub y_zero: i32,
    /// `channels * kh * kw` int8 weights (zero point 0).
    pub weights: Vec<i8>,
    /// Per-channel int32 bias in accumulator units.
    pub bias: Vec<i32>,
    /// Per-channel requantization multiplier `x_scale * w_scale[c] / y_scale`.
    pub multiplier: Vec<f32>,
}

impl DepthwiseSpec {
    pub fn output_hw(&self, h: usize, w: usize) -> Option<(usize, usize)> {
        let ph = h + self.pads.0 + self.pads.2;
        let pw = w + self.pads.1 + self.pads.3;
        if ph < self.kh || pw < self.kw {
            return None;
        }
        Some(((ph - self.kh) / self.stride.0 + 1, (pw - self.kw) / self.stride.1 + 1))
    }
}

#[inline(always)]
fn requant(acc: i32, m: f32, zero: i32) -> i8 {
    // Ties-to-even rounding maps to one vector instruction (round() would be a libm call).
    ((acc as f32 * m).round_ties_even() as i32 + zero).clamp(-128, 127) as i8
}

#[cfg(test)]
/// Depthwise int8 convolution of `input` (`channels` planes of `h` x `w`) into `output`.
/// Accumulates exactly in i32; padding contributes nothing (it stands for the zero point).
pub fn depthwise(spec: &DepthwiseSpec, input: &[i8], h: usize, w: usize, output: &mut [i8]) {
    depthwise_channels(spec, 0..spec.channels, input, h, w, output)
}

/// The same for the channels `range` only: `input` and `output` hold just those planes.
pub fn depthwise_channels(
    spec: &DepthwiseSpec,
    range: std::ops::Range<usize>,
    input: &[i8],
    h: usize,
    w: usize,
    output: &mut [i8],
) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2, checked just above.
            unsafe { depthwise_avx2(spec, range, input, h, w, output) };
            return;
        }
    }
    depthwise_generic(spec, range, input, h, w, output)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn depthwise_avx2(
    spec: &DepthwiseSpec,
    range: std::ops::Range<usize>,
    input: &[i8],
    h: usize,
    w: usize,
    output: &mut [i8],
) {
    depthwise_generic(spec, range, input, h, w, output)
}

#[inline(always)]
fn depthwise_generic(
    spec: &DepthwiseSpec,
    range: std::ops::Range<usize>,
    input: &[i8],
    h: usize,
    w: usize,
    output: &mut [i8],
) {
    let Some((ho, wo)) = spec.output_hw(h, w) else { return };
    let (pt, pl, pb, pr) = spec.pads;
    let (sh, sw) = spec.stride;
    let (ph, pw) = (h + pt + pb, w + pl + pr);
    // Zero-point-centred, zero-padded plane, stored as `sw` column phases (phase p holds padded
    // columns p, p + sw, p + 2 sw, ...) so every inner loop reads contiguous memory at any stride.
    let pcols = pw.div_ceil(sw);
    let mut phases = vec![0i16; sw * ph * pcols];
    let mut acc = vec![0i32; wo];
    for (i, c) in range.enumerate() {
        let plane = &input[i * h * w..(i + 1) * h * w];
        for y in 0..h {
            let src = &plane[y * w..(y + 1) * w];
            let zx = spec.x_zero as i16;
            if sw == 1 {
                let row = (y + pt) * pcols + pl;
                for (d, &v) in phases[row..row + w].iter_mut().zip(src) {
                    *d = v as i16 - zx;
                }
            } else {
                for phase in 0..sw {
                    // First source column landing in this phase, and its column there.
                    let x0 = (phase + sw - pl % sw) % sw;
                    if x0 >= w {
                        continue;
                    }
                    let row = (phase * ph + y + pt) * pcols + (x0 + pl) / sw;
                    for (d, &v) in phases[row..].iter_mut().zip(src[x0..].iter().step_by(sw)) {
                        *d = v as i16 - zx;
                    }
                }
            }
        }
        let k = &spec.weights[c * spec.kh * spec.kw..(c + 1) * spec.kh * spec.kw];
        let out = &mut output[i * ho * wo..(i + 1) * ho * wo];
        let m = spec.multiplier[c];
        for oy in 0..ho {
            acc.iter_mut().for_each(|a| *a = spec.bias[c]);
            for ky in 0..spec.kh {
                let py = oy * sh + ky;
                for kx in 0..spec.kw {
                    let wv = k[ky * spec.kw + kx] as i32;
                    let start = ((kx % sw) * ph + py) * pcols + kx / sw;
                    let src = &phases[start..start + wo];
                    for (a, &v) in acc.iter_mut().zip(src) {
                        *a = a.wrapping_add(wv.wrapping_mul(v as i32));
                    }
                }
            }
            for (o, &a) in out[oy * wo..(oy + 1) * wo].iter_mut().zip(&acc) {
                *o = requant(a, m, spec.y_zero);
            }
        }
        // The padding cells are never written, so they stay zero for every channel.
    }
}

/// Requantizing int8 add: `y = clamp(round(ka * (a - za) + kb * (b - zb)) + zy)` with
/// `ka = a_scale / y_scale`, `kb = b_scale / y_scale`.
pub fn add(a: &[i8], b: &[i8], (ka, za): (f32, i32), (kb, zb): (f32, i32), zy: i32, out: &mut [i8]) {
    for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
        let v = ka * (x as i32 - za) as f32 + kb * (y as i32 - zb) as f32;
        *o = (v.round_ties_even() as i32 + zy).clamp(-128, 127) as i8;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Straightforward reference: float math on dequantized values, then requantize.
    fn reference(spec: &DepthwiseSpec, input: &[i8], h: usize, w: usize) -> Vec<i8> {
        let (ho, wo) = spec.output_hw(h, w).unwrap();
        let mut out = vec![0i8; spec.channels * ho * wo];
        for c in 0..spec.channels {
            for oy in 0..ho {
                for ox in 0..wo {
                    let mut acc = spec.bias[c] as i64;
                    for ky in 0..spec.kh {
                        for kx in 0..spec.kw {
                            let iy = (oy * spec.stride.0 + ky) as isize - spec.pads.0 as isize;
                            let ix = (ox * spec.stride.1 + kx) as isize - spec.pads.1 as isize;
                            if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                continue;
                            }
                            let x = input[c * h * w + iy as usize * w + ix as usize] as i64 - spec.x_zero as i64;
                            acc += x * spec.weights[(c * spec.kh + ky) * spec.kw + kx] as i64;
                        }
                    }
                    let v = ((acc as f64 * spec.multiplier[c] as f64).round_ties_even() as i64 + spec.y_zero as i64)
                        .clamp(-128, 127);
                    out[(c * ho + oy) * wo + ox] = v as i8;
                }
            }
        }
        out
    }

    fn lcg(seed: &mut u64) -> i8 {
        *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (*seed >> 56) as i8
    }

    #[test]
    fn depthwise_matches_reference_for_strides_and_pads() {
        let mut seed = 42;
        for &(stride, pads, h, w) in &[
            ((1, 1), (1, 1, 1, 1), 7, 9),
            ((2, 2), (1, 1, 1, 1), 8, 10),
            ((2, 2), (0, 0, 1, 1), 9, 7),
            ((1, 2), (1, 0, 1, 0), 5, 6),
            ((1, 1), (1, 1, 1, 1), 1, 1),
        ] {
            let channels = 3;
            let spec = DepthwiseSpec {
                channels,
                kh: 3,
                kw: 3,
                stride,
                pads,
                x_zero: -7,
                y_zero: -128,
                weights: (0..channels * 9).map(|_| lcg(&mut seed)).collect(),
                bias: vec![100, -2000, 0],
                multiplier: vec![0.004, 0.0021, 0.01],
            };
            let input: Vec<i8> = (0..channels * h * w).map(|_| lcg(&mut seed)).collect();
            let (ho, wo) = spec.output_hw(h, w).unwrap();
            let mut got = vec![0i8; channels * ho * wo];
            depthwise(&spec, &input, h, w, &mut got);
            let want = reference(&spec, &input, h, w);
            let off: Vec<(usize, i8, i8)> = got
                .iter()
                .zip(&want)
                .enumerate()
                .filter(|(_, (a, b))| (**a as i32 - **b as i32).abs() > 1)
                .map(|(i, (a, b))| (i, *a, *b))
                .collect();
            assert!(off.is_empty(), "stride {stride:?} pads {pads:?}: {off:?}");
        }
    }

    #[test]
    fn add_requantizes_and_saturates() {
        let mut out = [0i8; 3];
        add(&[10, 127, -128], &[20, 127, -128], (0.5, 0), (0.5, 0), 0, &mut out);
        assert_eq!(out, [15, 127, -128]);
        add(&[0, 0, 0], &[0, 0, 0], (1.0, 10), (1.0, 10), 100, &mut out);
        assert_eq!(out, [80, 80, 80]);
    }
}
