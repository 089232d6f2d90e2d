//! A dense 3x3 convolution (stride 1, zero padding 1) as one veil op streamed over rows: the
//! text detector's 96 -> 24 channel convolutions at a quarter of its input were tract's
//! zero-padded copy of the whole 96-channel map (23 MB at 1280x736, where a pass peaked) and
//! an AVX2-width matrix product; here three padded input rows per channel are kept in a ring
//! and every output row is summed from them in registers (AVX-512 where the CPU has it).

use tract_hir::internal::*;
use tract_onnx::model::ParsingContext;
use tract_onnx::pb::{ModelProto, NodeProto};

/// The op type [`fuse`] writes into the graph.
const OP: &str = "VeilConv3x3";

/// Output channels summed together (one broadcast weight per channel and tap).
const OB: usize = 8;
/// Output pixels summed together: two vectors of 16.
const XB: usize = 32;

/// Parse the nodes [`fuse`] rewrites.
pub fn register(onnx: &mut tract_onnx::Onnx) {
    onnx.op_register.insert(OP, parse);
}

/// Whether this CPU runs the op at least as fast as tract's own convolution (measured on
/// AVX-512 only: elsewhere the graph keeps tract's).
pub fn worth_fusing() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Rewrite every `Conv` with a constant [O, C, 3, 3] kernel (C >= 8), stride 1, dilation 1, one
/// group and one pixel of zero padding on each side (and an optional constant bias) as the veil
/// op on the same inputs. Returns how many it rewrote.
pub fn fuse(model: &mut ModelProto) -> usize {
    let Some(graph) = model.graph.as_mut() else { return 0 };
    let constants = crate::dw_stride2::constants(graph);
    let plain: Vec<usize> = graph
        .node
        .iter()
        .enumerate()
        .filter(|(_, node)| {
            if node.op_type != "Conv" || !(2..=3).contains(&node.input.len()) || node.output.len() != 1 {
                return false;
            }
            let ints = |name: &str| node.get_attr_opt_vec::<isize>(name).ok().flatten();
            let kernel_ok =
                constants.get(&node.input[1]).is_some_and(|w| w.dims.len() == 4 && w.dims[1] >= 8 && w.dims[2..] == [3, 3]);
            let bias_ok = node.input.get(2).is_none_or(|b| constants.contains_key(b));
            kernel_ok
                && bias_ok
                && ints("kernel_shape").is_none_or(|k| k == [3, 3])
                && ints("strides").is_none_or(|s| s == [1, 1])
                && ints("dilations").is_none_or(|d| d == [1, 1])
                && ints("pads").is_some_and(|p| p == [1, 1, 1, 1])
                && node.get_attr_opt::<i64>("group").ok().flatten().is_none_or(|g| g == 1)
                && node.get_attr_opt::<String>("auto_pad").ok().flatten().is_none_or(|a| a == "NOTSET")
        })
        .map(|(ix, _)| ix)
        .collect();
    for &ix in &plain {
        graph.node[ix].op_type = OP.into();
        graph.node[ix].attribute.clear();
    }
    plain.len()
}

fn parse(_ctx: &ParsingContext, node: &NodeProto) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    ensure!((2..=3).contains(&node.input.len()) && node.output.len() == 1, "{OP} takes the map, the kernel and a bias");
    Ok((expand(Conv3x3Expansion), vec![]))
}

#[derive(Debug, Clone, Hash)]
struct Conv3x3Expansion;

impl Expansion for Conv3x3Expansion {
    fn name(&self) -> StaticName {
        "VeilConv3x3Expansion".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_output_arity(outputs, 1)?;
        s.equals(&outputs[0].datum_type, &inputs[0].datum_type)?;
        s.equals(&inputs[1].datum_type, &inputs[0].datum_type)?;
        s.equals(&inputs[0].rank, 4)?;
        s.equals(&inputs[1].rank, 4)?;
        s.equals(&outputs[0].rank, 4)?;
        s.equals(&outputs[0].shape[0], &inputs[0].shape[0])?;
        s.equals(&outputs[0].shape[1], &inputs[1].shape[0])?;
        s.equals(&outputs[0].shape[2], &inputs[0].shape[2])?;
        s.equals(&outputs[0].shape[3], &inputs[0].shape[3])
    }

    fn wire(&self, prefix: &str, model: &mut TypedModel, inputs: &[OutletId]) -> TractResult<TVec<OutletId>> {
        model.wire_node(prefix, Conv3x3, inputs)
    }
}

/// `x` [N, C, H, W] convolved with `k` [O, C, 3, 3] (+ `b` [O]): [N, O, H, W].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Conv3x3;

impl Op for Conv3x3 {
    fn name(&self) -> StaticName {
        OP.into()
    }

    op_as_typed_op!();
}

impl EvalOp for Conv3x3 {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        ensure!((2..=3).contains(&inputs.len()), "{OP} takes the map, the kernel and a bias");
        let (sx, sk) = (inputs[0].shape(), inputs[1].shape());
        ensure!(
            sx.len() == 4 && sk.len() == 4 && sk[1] == sx[1] && sx[1] > 0 && sk[2..] == [3, 3],
            "{OP}: a map {sx:?} and a kernel {sk:?} that do not fit"
        );
        let (n, c, h, w, o) = (sx[0], sx[1], sx[2], sx[3], sk[0]);
        let xv = inputs[0].try_as_plain_ram()?;
        let kv = inputs[1].try_as_plain_ram()?;
        let bias = match inputs.get(2) {
            Some(b) => {
                ensure!(b.len() == o, "{OP}: {} biases for {o} channels", b.len());
                b.try_as_plain_ram()?.as_slice::<f32>()?.to_vec()
            }
            None => vec![0.0; o],
        };
        let kernel = Kernel::pack(kv.as_slice::<f32>()?, &bias, o, c);
        let mut out = Tensor::zero::<f32>(&[n, o, h, w])?;
        {
            let x = xv.as_slice::<f32>()?;
            let mut ov = out.try_as_plain_ram_mut()?;
            let dst = ov.as_slice_mut::<f32>()?;
            if h * w > 0 {
                for (src, dst) in x.chunks_exact(c * h * w).zip(dst.chunks_exact_mut(o * h * w)) {
                    kernel.run(src, h, w, dst);
                }
            }
        }
        Ok(tvec!(out.into_tvalue()))
    }
}

impl TypedOp for Conv3x3 {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs.len() >= 2 && inputs[0].rank() == 4 && inputs[1].rank() == 4, "{OP} needs an NCHW map and an OCHW kernel");
        let (x, k) = (&inputs[0].shape, &inputs[1].shape);
        Ok(tvec!(inputs[0].datum_type.fact([x[0].clone(), k[0].clone(), x[2].clone(), x[3].clone()])))
    }

    as_op!();
}

/// The kernel regrouped for the row loop: per block of [`OB`] output channels, per input
/// channel and tap, the block's [`OB`] weights side by side (zero past the last channel).
struct Kernel {
    weights: Vec<f32>,
    /// One per output channel, zero past the last.
    bias: Vec<f32>,
    out_channels: usize,
    channels: usize,
}

impl Kernel {
    fn pack(k: &[f32], bias: &[f32], o: usize, c: usize) -> Self {
        let blocks = o.div_ceil(OB);
        let mut weights = vec![0.0; blocks * c * 9 * OB];
        for oc in 0..o {
            for ic in 0..c {
                for tap in 0..9 {
                    weights[((oc / OB * c + ic) * 9 + tap) * OB + oc % OB] = k[(oc * c + ic) * 9 + tap];
                }
            }
        }
        let mut padded = bias.to_vec();
        padded.resize(blocks * OB, 0.0);
        Self { weights, bias: padded, out_channels: o, channels: c }
    }

    /// One image: `src` [C, H, W] into `dst` [O, H, W].
    fn run(&self, src: &[f32], h: usize, w: usize, dst: &mut [f32]) {
        let mut rows = RowRing::new(self.channels, w);
        for y in 0..h {
            if y == 0 {
                rows.load(src, h, w, 0);
            }
            if y + 1 < h {
                rows.load(src, h, w, y + 1);
            }
            let taps = |ic: usize| -> [&[f32]; 3] { [rows.row(ic, y as isize - 1, h), rows.row(ic, y as isize, h), rows.row(ic, y as isize + 1, h)] };
            #[cfg(target_arch = "x86_64")]
            if std::is_x86_feature_detected!("avx512f") {
                // SAFETY: the CPU has AVX-512F (checked just above); the rows are `RowRing::stride`
                // long, past every pixel a chunk reads.
                unsafe { self.row_avx512(&taps, y, h, w, dst) };
                continue;
            }
            self.row_portable(&taps, y, h, w, dst);
        }
    }

    /// Output row `y` of every channel, plainly.
    fn row_portable<'a>(&self, taps: &impl Fn(usize) -> [&'a [f32]; 3], y: usize, h: usize, w: usize, dst: &mut [f32]) {
        for block in 0..self.bias.len() / OB {
            for x0 in (0..w).step_by(XB) {
                let mut acc = [[0f32; XB]; OB];
                for (o, a) in acc.iter_mut().enumerate() {
                    *a = [self.bias[block * OB + o]; XB];
                }
                for ic in 0..self.channels {
                    let k = &self.weights[(block * self.channels + ic) * 9 * OB..][..9 * OB];
                    for (ky, row) in taps(ic).into_iter().enumerate() {
                        for kx in 0..3 {
                            let v = &row[x0 + kx..][..XB];
                            for (o, a) in acc.iter_mut().enumerate() {
                                let wt = k[(ky * 3 + kx) * OB + o];
                                for (a, &v) in a.iter_mut().zip(v) {
                                    *a += wt * v;
                                }
                            }
                        }
                    }
                }
                self.store(&acc, block, y, h, w, x0, dst);
            }
        }
    }

    /// What [`Kernel::row_portable`] does, with the sums in AVX-512 registers.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn row_avx512<'a>(&self, taps: &impl Fn(usize) -> [&'a [f32]; 3], y: usize, h: usize, w: usize, dst: &mut [f32]) {
        use std::arch::x86_64::*;
        for block in 0..self.bias.len() / OB {
            for x0 in (0..w).step_by(XB) {
                let mut lo = [_mm512_setzero_ps(); OB];
                let mut hi = [_mm512_setzero_ps(); OB];
                for o in 0..OB {
                    lo[o] = _mm512_set1_ps(self.bias[block * OB + o]);
                    hi[o] = lo[o];
                }
                for ic in 0..self.channels {
                    let k = self.weights.as_ptr().add((block * self.channels + ic) * 9 * OB);
                    for (ky, row) in taps(ic).into_iter().enumerate() {
                        let r = row.as_ptr().add(x0);
                        for kx in 0..3 {
                            let v0 = _mm512_loadu_ps(r.add(kx));
                            let v1 = _mm512_loadu_ps(r.add(kx + 16));
                            let kt = k.add((ky * 3 + kx) * OB);
                            for o in 0..OB {
                                let wt = _mm512_set1_ps(*kt.add(o));
                                lo[o] = _mm512_fmadd_ps(wt, v0, lo[o]);
                                hi[o] = _mm512_fmadd_ps(wt, v1, hi[o]);
                            }
                        }
                    }
                }
                let mut acc = [[0f32; XB]; OB];
                for o in 0..OB {
                    _mm512_storeu_ps(acc[o].as_mut_ptr(), lo[o]);
                    _mm512_storeu_ps(acc[o].as_mut_ptr().add(16), hi[o]);
                }
                self.store(&acc, block, y, h, w, x0, dst);
            }
        }
    }

    /// The sums of output pixels `x0..` of row `y` for one block into `dst` (the real channels
    /// and pixels only).
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn store(&self, acc: &[[f32; XB]; OB], block: usize, y: usize, h: usize, w: usize, x0: usize, dst: &mut [f32]) {
        let n = XB.min(w - x0);
        for (o, a) in acc.iter().enumerate() {
            let oc = block * OB + o;
            if oc < self.out_channels {
                dst[(oc * h + y) * w + x0..][..n].copy_from_slice(&a[..n]);
            }
        }
    }
}

/// The last three input rows of every channel, each with a zero column on the left and zeros
/// past its right end (so a chunk of [`XB`] + 2 pixels never leaves the row), and one zero row
/// for the rows above the top and below the bottom.
struct RowRing {
    data: Vec<f32>,
    stride: usize,
}

impl RowRing {
    fn new(channels: usize, w: usize) -> Self {
        let stride = w.div_ceil(XB) * XB + 2;
        Self { data: vec![0.0; (channels * 3 + 1) * stride], stride }
    }

    /// Copy input row `y` of every channel into its slot.
    fn load(&mut self, src: &[f32], h: usize, w: usize, y: usize) {
        let channels = (self.data.len() / self.stride - 1) / 3;
        for ic in 0..channels {
            let at = (ic * 3 + y % 3) * self.stride + 1;
            self.data[at..at + w].copy_from_slice(&src[(ic * h + y) * w..][..w]);
        }
    }

    /// Padded input row `y` of channel `ic` (the zero row outside the image).
    fn row(&self, ic: usize, y: isize, h: usize) -> &[f32] {
        let slot = if y < 0 || y >= h as isize { self.data.len() / self.stride - 1 } else { ic * 3 + y as usize % 3 };
        &self.data[slot * self.stride..][..self.stride]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text_map::rewrite_tests::{noise, text_detector_agrees};

    /// The convolution by its definition.
    fn definition(x: &[f32], k: &[f32], b: &[f32], c: usize, h: usize, w: usize, o: usize) -> Vec<f32> {
        let mut out = vec![0.0; o * h * w];
        for oc in 0..o {
            for y in 0..h {
                for xx in 0..w {
                    let mut s = b[oc];
                    for ic in 0..c {
                        for ky in 0..3 {
                            for kx in 0..3 {
                                let (iy, ix) = (y as isize + ky as isize - 1, xx as isize + kx as isize - 1);
                                if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w {
                                    s += k[((oc * c + ic) * 3 + ky) * 3 + kx] * x[(ic * h + iy as usize) * w + ix as usize];
                                }
                            }
                        }
                    }
                    out[(oc * h + y) * w + xx] = s;
                }
            }
        }
        out
    }

    #[test]
    fn each_output_is_the_sum_over_its_neighbourhood_at_every_edge() {
        // Sizes around the chunk width, channels around the block, two images.
        for &(n, c, h, w, o) in &[(1, 8, 1, 1, 1), (2, 9, 5, 33, 11), (1, 12, 7, 64, 24), (1, 16, 3, 17, 8)] {
            let x = noise(n * c * h * w, 3);
            let k = noise(o * c * 9, 7);
            let b = noise(o, 11);
            let inputs = tvec!(
                Tensor::from_shape(&[n, c, h, w], &x).unwrap().into_tvalue(),
                Tensor::from_shape(&[o, c, 3, 3], &k).unwrap().into_tvalue(),
                Tensor::from_shape(&[o], &b).unwrap().into_tvalue()
            );
            let out = Conv3x3.eval_out_of_plan(inputs).unwrap().unwrap().remove(0);
            assert_eq!(out.shape(), &[n, o, h, w]);
            let got = out.try_as_plain_ram().unwrap().as_slice::<f32>().unwrap().to_vec();
            for i in 0..n {
                let want = definition(&x[i * c * h * w..], &k, &b, c, h, w, o);
                for (j, (g, e)) in got[i * o * h * w..][..o * h * w].iter().zip(&want).enumerate() {
                    assert!((g - e).abs() <= 1e-4, "{n}x{c}x{h}x{w} -> {o}: value {j} of image {i}: {g} against {e}");
                }
            }
        }
    }

    #[test]
    fn the_plain_row_loop_gives_what_the_vector_one_does() {
        let (c, h, w, o) = (10, 4, 45, 13);
        let (x, k) = (noise(c * h * w, 5), noise(o * c * 9, 9));
        let kernel = Kernel::pack(&k, &vec![0.5; o], o, c);
        let want = definition(&x, &k, &vec![0.5; o], c, h, w, o);
        let mut rows = RowRing::new(c, w);
        let mut got = vec![0.0; o * h * w];
        for y in 0..h {
            if y == 0 {
                rows.load(&x, h, w, 0);
            }
            if y + 1 < h {
                rows.load(&x, h, w, y + 1);
            }
            let taps = |ic: usize| -> [&[f32]; 3] { [rows.row(ic, y as isize - 1, h), rows.row(ic, y as isize, h), rows.row(ic, y as isize + 1, h)] };
            kernel.row_portable(&taps, y, h, w, &mut got);
        }
        for (g, e) in got.iter().zip(&want) {
            assert!((g - e).abs() <= 1e-4, "{g} against {e}");
        }
    }

    #[test]
    fn a_kernel_for_other_channels_is_an_error() {
        let x = Tensor::zero::<f32>(&[1, 8, 4, 4]).unwrap().into_tvalue();
        let k = Tensor::zero::<f32>(&[4, 9, 3, 3]).unwrap().into_tvalue();
        assert!(Conv3x3.eval_out_of_plan(tvec!(x, k)).is_err());
        let x = Tensor::zero::<f32>(&[1, 0, 4, 4]).unwrap().into_tvalue();
        let k = Tensor::zero::<f32>(&[4, 0, 3, 3]).unwrap().into_tvalue();
        assert!(Conv3x3.eval_out_of_plan(tvec!(x, k)).is_err(), "no channels");
    }

    #[test]
    fn the_text_detector_with_the_op_gives_what_it_gives_without() {
        // The neck's four 96 -> 24 convolutions and the head's first.
        text_detector_agrees(register, fuse, 5, 5);
    }
}
