//! Depthwise convolutions of stride 2 (3x3 or 5x5, "same" padding) as a veil op: tract runs
//! them at about 1 GMAC/s (the text detector's four take 35 ms of a 256 ms pass at 1280x736).
//! Each input row is split once into its even and odd columns, so every tap of a stride-2 row
//! is a contiguous run and the row is summed with vector multiply-adds.

use tract_hir::internal::*;
use tract_onnx::model::ParsingContext;
use tract_onnx::pb::{GraphProto, ModelProto, NodeProto, TensorProto};

use crate::dp_unit::{const_f32, deinterleave, eval_images, madd, simd_entry_points};

/// The op type [`fuse`] writes into the graph.
const OP: &str = "VeilDepthwiseStride2";

/// Parse the nodes [`fuse`] rewrites.
pub fn register(onnx: &mut tract_onnx::Onnx) {
    onnx.op_register.insert(OP, parse);
}

/// Rewrite every `Conv` that is depthwise (one input channel per group, one output per input
/// channel), of kernel 3x3 or 5x5, stride 2, padding half the kernel on every side, no dilation,
/// with constant weights (and bias), as the veil op. Returns how many it rewrote.
pub fn fuse(model: &mut ModelProto) -> usize {
    let Some(graph) = model.graph.as_mut() else { return 0 };
    let dims: HashMap<String, Vec<i64>> = constants(graph).into_iter().map(|(name, t)| (name, t.dims.clone())).collect();
    let mut fused = 0;
    for node in graph.node.iter_mut() {
        if node.op_type != "Conv" || node.input.len() < 2 || node.output.len() != 1 {
            continue;
        }
        let ints = |name: &str| node.get_attr_opt_vec::<isize>(name).ok().flatten();
        let Some(w) = dims.get(&node.input[1]) else { continue };
        let k = match ints("kernel_shape").as_deref() {
            Some([3, 3]) => 3,
            Some([5, 5]) => 5,
            _ => continue,
        };
        let group = node.get_attr_opt::<i64>("group").ok().flatten().unwrap_or(1);
        let shaped = w.len() == 4
            && w[0] == group
            && w[1] == 1
            && w[2..] == [k, k]
            && group > 1
            && node.input.get(2).is_none_or(|b| dims.contains_key(b))
            && ints("strides").as_deref() == Some(&[2, 2][..])
            && ints("pads").is_some_and(|p| p.len() == 4 && p.iter().all(|&v| v == k as isize / 2))
            && ints("dilations").is_none_or(|d| d.iter().all(|&v| v == 1))
            && node.get_attr_opt::<String>("auto_pad").ok().flatten().is_none_or(|a| a == "NOTSET");
        if !shaped {
            continue;
        }
        node.op_type = OP.into();
        node.attribute.retain(|a| a.name == "kernel_shape");
        fused += 1;
    }
    fused
}

/// A graph's constant tensors by name: its initializers, and the values of its `Constant` nodes
/// (how the text detector holds its weights).
pub(crate) fn constants(graph: &GraphProto) -> HashMap<String, &TensorProto> {
    let mut all: HashMap<String, &TensorProto> = graph.initializer.iter().map(|t| (t.name.clone(), t)).collect();
    for n in graph.node.iter().filter(|n| n.op_type == "Constant" && n.output.len() == 1) {
        if let Some(t) = n.attribute.iter().find(|a| a.name == "value").and_then(|a| a.t.as_ref()) {
            all.insert(n.output[0].clone(), t);
        }
    }
    all
}

fn parse(_ctx: &ParsingContext, node: &NodeProto) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    ensure!((2..=3).contains(&node.input.len()) && node.output.len() == 1, "{OP} takes the input, weights and a bias");
    let k = node.get_attr_vec::<usize>("kernel_shape")?;
    ensure!(k.len() == 2 && k[0] == k[1] && (k[0] == 3 || k[0] == 5), "{OP}: kernel 3x3 or 5x5");
    Ok((expand(DwExpansion { k: k[0], bias: node.input.len() == 3 }), vec![]))
}

/// Output side for an input side: padding k/2 on both ends, stride 2 (rounds up).
fn out_side(side: usize) -> usize {
    side.div_ceil(2)
}

#[derive(Debug, Clone, Hash)]
struct DwExpansion {
    k: usize,
    bias: bool,
}

impl Expansion for DwExpansion {
    fn name(&self) -> StaticName {
        "VeilDepthwiseStride2Expansion".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, if self.bias { 3 } else { 2 })?;
        check_output_arity(outputs, 1)?;
        s.equals(&outputs[0].datum_type, &inputs[0].datum_type)?;
        s.equals(&inputs[0].rank, 4)?;
        s.equals(&outputs[0].rank, 4)?;
        s.given_2(&inputs[0].shape, &inputs[1].shape, move |s, x, w| {
            let (h, wd) = (x[2].to_usize()?, x[3].to_usize()?);
            let out: TVec<TDim> = tvec![x[0].clone(), w[0].clone(), out_side(h).into(), out_side(wd).into()];
            s.equals(&outputs[0].shape, ShapeFactoid::from(out))
        })
    }

    fn wire(&self, prefix: &str, model: &mut TypedModel, inputs: &[OutletId]) -> TractResult<TVec<OutletId>> {
        let konst = |i: usize| const_f32(model, inputs[i], OP);
        let weights = konst(1)?;
        let channels = weights.len() / (self.k * self.k);
        let bias = if self.bias { konst(2)? } else { vec![0.0; channels] };
        ensure!(channels > 0 && weights.len() == channels * self.k * self.k && bias.len() == channels, "{OP}: weights of unexpected sizes");
        let op = DepthwiseStride2 { k: self.k, channels, weights: weights.into(), bias: bias.into() };
        model.wire_node(prefix, op, &[inputs[0]])
    }
}

/// One depthwise stride-2 convolution with its weights (ONNX layout [C, 1, k, k]).
#[derive(Debug, Clone, PartialEq)]
pub struct DepthwiseStride2 {
    k: usize,
    channels: usize,
    weights: Arc<[f32]>,
    bias: Arc<[f32]>,
}

impl std::hash::Hash for DepthwiseStride2 {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (self.k, self.channels).hash(state);
        for v in [&self.weights, &self.bias] {
            v.iter().for_each(|f| f.to_bits().hash(state));
        }
    }
}

impl Eq for DepthwiseStride2 {}

impl Op for DepthwiseStride2 {
    fn name(&self) -> StaticName {
        OP.into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!("{} channels, {}x{}", self.channels, self.k, self.k)])
    }

    op_as_typed_op!();
}

impl EvalOp for DepthwiseStride2 {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        eval_images(OP, &inputs[0], self.channels, self.channels, out_side, |x, h, w, out| self.run(x, h, w, out))
    }
}

impl TypedOp for DepthwiseStride2 {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let s = &inputs[0].shape;
        ensure!(s.rank() == 4, "{OP} needs NCHW input");
        let side = |d: &TDim| -> TractResult<TDim> { Ok(out_side(d.to_usize()?).into()) };
        Ok(tvec!(f32::datum_type().fact(tvec![s[0].clone(), self.channels.into(), side(&s[2])?, side(&s[3])?])))
    }

    as_op!();
}

// `run`: one image, `input` [C, h, w] into `output` [C, ceil(h/2), ceil(w/2)].
simd_entry_points!(DepthwiseStride2);

/// One image, row by row. Input column `2x + d` (d in -k/2..=k/2) of output column `x` is
/// `even[x + d/2 + 1]` for even `d` and `odd[x + (d - 1)/2 + 1]` for odd `d`, where `even` and
/// `odd` hold the row's even and odd columns after one zero (column -2, column -1).
#[inline(always)]
fn run_body<const FMA: bool, const AVX512: bool>(op: &DepthwiseStride2, input: &[f32], h: usize, w: usize, output: &mut [f32]) {
    let (k, p) = (op.k, op.k / 2);
    let (oh, ow) = (out_side(h), out_side(w));
    let half = w.div_ceil(2);
    // One zero in front, the split row, zeros after (at least one past the last output's taps).
    let len = half.max(ow) + 3;
    let (mut even, mut odd) = (vec![0f32; len], vec![0f32; len]);
    for c in 0..op.channels {
        let kernel = &op.weights[c * k * k..(c + 1) * k * k];
        let plane = &input[c * h * w..(c + 1) * h * w];
        for y in 0..oh {
            let out = &mut output[(c * oh + y) * ow..][..ow];
            out.fill(op.bias[c]);
            for ky in 0..k {
                let iy = (2 * y + ky) as isize - p as isize;
                if iy < 0 || iy as usize >= h {
                    continue;
                }
                let row = &plane[iy as usize * w..][..w];
                deinterleave::<AVX512>(row, &mut even[1..1 + half], &mut odd[1..1 + half]);
                for kx in 0..k {
                    let d = kx as isize - p as isize;
                    let (src, at) = if d % 2 == 0 { (&even, (d / 2 + 1) as usize) } else { (&odd, ((d - 1) / 2 + 1) as usize) };
                    let wgt = kernel[ky * k + kx];
                    for (o, s) in out.iter_mut().zip(&src[at..at + ow]) {
                        *o = madd::<FMA>(wgt, *s, *o);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The op against the definition of a padded stride-2 depthwise convolution, at sides odd
    /// and even, down to one pixel, on every path this CPU has.
    #[test]
    fn each_output_is_its_taps_summed() {
        let mut seed = 9u32;
        let mut next = || {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        };
        for k in [3usize, 5] {
            let channels = 3;
            let weights: Vec<f32> = (0..channels * k * k).map(|_| next()).collect();
            let bias: Vec<f32> = (0..channels).map(|_| next()).collect();
            let op = DepthwiseStride2 { k, channels, weights: weights.clone().into(), bias: bias.clone().into() };
            for (h, w) in [(1, 1), (2, 3), (5, 4), (7, 9), (6, 37), (3, 70)] {
                let input: Vec<f32> = (0..channels * h * w).map(|_| next()).collect();
                let (oh, ow) = (out_side(h), out_side(w));
                let p = (k / 2) as isize;
                let at = |c: usize, y: isize, x: isize| {
                    if y < 0 || x < 0 || y as usize >= h || x as usize >= w {
                        0.0
                    } else {
                        input[(c * h + y as usize) * w + x as usize]
                    }
                };
                let mut want = vec![0f32; channels * oh * ow];
                for c in 0..channels {
                    for y in 0..oh {
                        for x in 0..ow {
                            let mut sum = bias[c];
                            for ky in 0..k {
                                for kx in 0..k {
                                    let (iy, ix) = (2 * y as isize + ky as isize - p, 2 * x as isize + kx as isize - p);
                                    sum += weights[(c * k + ky) * k + kx] * at(c, iy, ix);
                                }
                            }
                            want[(c * oh + y) * ow + x] = sum;
                        }
                    }
                }
                let mut got = vec![f32::NAN; want.len()];
                op.run(&input, h, w, &mut got);
                for (g, v) in got.iter().zip(&want) {
                    assert!((g - v).abs() < 1e-5, "{k}x{k} over {h}x{w}: {got:?} != {want:?}");
                }
            }
        }
    }

    #[test]
    fn the_text_detector_with_the_op_gives_what_it_gives_without() {
        // The text detector's four: three 3x3 and one 5x5.
        crate::text_map::rewrite_tests::text_detector_agrees(register, fuse, 4, 3);
    }
}
