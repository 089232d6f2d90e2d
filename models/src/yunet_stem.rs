//! YuNet's first block (3x3 stride-2 convolution + ReLU, 1x1 convolution, depthwise 3x3 + ReLU,
//! 2x2 max pool) as one tract op that works through the image a band of rows at a time: the
//! block's three full-width intermediate tensors (each 14 MB at 720p, made and zeroed afresh by
//! tract for every frame) never exist, only a band of a few hundred kilobytes does.

use tract_hir::internal::*;
use tract_onnx::model::ParsingContext;
use tract_onnx::pb::{ModelProto, NodeProto};

use crate::dp_unit::{const_f32, deinterleave, depthwise, pointwise_on, pool_pairs, simd_entry_points};

/// The op type of the fused node [`fuse`] writes into the graph.
const OP: &str = "VeilYuNetStem";
/// Pooled output rows made per band (so a band holds twice as many rows of the block's tensors,
/// plus one row above and below for the depthwise kernel).
const BAND: usize = 16;

/// Parse the fused node [`fuse`] writes.
pub fn register(onnx: &mut tract_onnx::Onnx) {
    onnx.op_register.insert(OP, parse);
}

/// Replace the graph's first six nodes by one fused node when they are YuNet's first block fed
/// by the graph's input, and nothing else reads the tensors between them. Returns whether it
/// did; a graph of any other shape is left as it is.
pub fn fuse(model: &mut ModelProto) -> bool {
    let Some(graph) = model.graph.as_mut() else { return false };
    let Some(input) = graph.input.first().map(|i| i.name.clone()) else { return false };
    if graph.node.len() < 7 {
        return false;
    }
    let nodes = &graph.node[..6];
    let types: Vec<&str> = nodes.iter().map(|n| n.op_type.as_str()).collect();
    if types != ["Conv", "Relu", "Conv", "Conv", "Relu", "MaxPool"] {
        return false;
    }
    let ints = |n: &NodeProto, name: &str| n.get_attr_opt_vec::<isize>(name).ok().flatten();
    let int = |n: &NodeProto, name: &str| n.get_attr_opt::<i64>(name).ok().flatten();
    let chained = nodes[0].input.first() == Some(&input)
        && nodes.windows(2).all(|w| w[0].output.len() == 1 && w[1].input.first() == w[0].output.first());
    let (conv, pw, dw, pool) = (&nodes[0], &nodes[2], &nodes[3], &nodes[5]);
    let shaped = conv.input.len() == 3
        && ints(conv, "kernel_shape").as_deref() == Some(&[3, 3][..])
        && ints(conv, "strides").as_deref() == Some(&[2, 2][..])
        && ints(conv, "pads").as_deref() == Some(&[1, 1, 1, 1][..])
        && int(conv, "group").unwrap_or(1) == 1
        && pw.input.len() == 3
        && ints(pw, "kernel_shape").as_deref() == Some(&[1, 1][..])
        && ints(pw, "strides").is_none_or(|s| s == [1, 1])
        && ints(pw, "pads").is_none_or(|p| p.iter().all(|&v| v == 0))
        && int(pw, "group").unwrap_or(1) == 1
        && dw.input.len() == 3
        && ints(dw, "kernel_shape").as_deref() == Some(&[3, 3][..])
        && ints(dw, "strides").is_none_or(|s| s == [1, 1])
        && ints(dw, "pads").as_deref() == Some(&[1, 1, 1, 1][..])
        && int(dw, "group").is_some_and(|g| g > 1)
        && ints(pool, "kernel_shape").as_deref() == Some(&[2, 2][..])
        && ints(pool, "strides").as_deref() == Some(&[2, 2][..])
        && ints(pool, "pads").is_none_or(|p| p.iter().all(|&v| v == 0))
        && pool.output.len() == 1
        && [conv, pw, dw].iter().all(|n| ints(n, "dilations").is_none_or(|d| d.iter().all(|&v| v == 1)));
    if !chained || !shaped {
        return false;
    }
    let inner: Vec<&String> = nodes[..5].iter().map(|n| &n.output[0]).collect();
    let read_later = graph.node[6..].iter().flat_map(|n| &n.input).any(|i| inner.contains(&i));
    let is_output = graph.output.iter().any(|o| inner.contains(&&o.name));
    if read_later || is_output {
        return false;
    }
    let fused = NodeProto {
        name: "veil_yunet_stem".into(),
        op_type: OP.into(),
        input: vec![
            input,
            conv.input[1].clone(),
            conv.input[2].clone(),
            pw.input[1].clone(),
            pw.input[2].clone(),
            dw.input[1].clone(),
            dw.input[2].clone(),
        ],
        output: pool.output.clone(),
        ..Default::default()
    };
    graph.node.splice(..6, [fused]);
    true
}

fn parse(_ctx: &ParsingContext, node: &NodeProto) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    ensure!(node.input.len() == 7 && node.output.len() == 1, "{OP} takes the input and six weights");
    Ok((expand(StemExpansion), vec![]))
}

/// Output side of the block for an input side: the stride-2 convolution (padding 1) rounds up,
/// the pool rounds down.
fn out_side(side: usize) -> usize {
    side.div_ceil(2) / 2
}

#[derive(Debug, Clone)]
struct StemExpansion;

impl Expansion for StemExpansion {
    fn name(&self) -> StaticName {
        "VeilYuNetStemExpansion".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 7)?;
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
        let (w0, b0, w1, b1, w2, b2) = (konst(1)?, konst(2)?, konst(3)?, konst(4)?, konst(5)?, konst(6)?);
        let c = b0.len();
        let x_channels = w0.len() / (9 * c.max(1));
        ensure!(
            c > 0 && w0.len() == c * x_channels * 9 && w1.len() == c * c && b1.len() == c && w2.len() == c * 9 && b2.len() == c,
            "{OP}: weights of unexpected sizes"
        );
        let stem = YuNetStem { x_channels, channels: c, w0: w0.into(), b0: b0.into(), w1: w1.into(), b1: b1.into(), w2: w2.into(), b2: b2.into() };
        model.wire_node(prefix, stem, &[inputs[0]])
    }
}

/// The fused block with its weights (ONNX layouts: `w0` [C, X, 3, 3], `w1` [C, C], `w2` [C, 3, 3]).
#[derive(Debug, Clone, PartialEq)]
pub struct YuNetStem {
    x_channels: usize,
    channels: usize,
    w0: Arc<[f32]>,
    b0: Arc<[f32]>,
    w1: Arc<[f32]>,
    b1: Arc<[f32]>,
    w2: Arc<[f32]>,
    b2: Arc<[f32]>,
}

impl std::hash::Hash for YuNetStem {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (self.x_channels, self.channels).hash(state);
        for v in [&self.w0, &self.b0, &self.w1, &self.b1, &self.w2, &self.b2] {
            v.iter().for_each(|f| f.to_bits().hash(state));
        }
    }
}

impl Eq for YuNetStem {}

impl Op for YuNetStem {
    fn name(&self) -> StaticName {
        OP.into()
    }

    op_as_typed_op!();
}

impl EvalOp for YuNetStem {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let x = &inputs[0];
        let shape = x.shape();
        ensure!(shape.len() == 4 && shape[1] == self.x_channels, "{OP} needs [N, {}, H, W] input, got {shape:?}", self.x_channels);
        let (n, h, w) = (shape[0], shape[2], shape[3]);
        let (oh, ow) = (out_side(h), out_side(w));
        let mut out = Tensor::zero::<f32>(&[n, self.channels, oh, ow])?;
        if oh > 0 && ow > 0 {
            let xv = x.try_as_plain_ram()?;
            let input = xv.as_slice::<f32>()?;
            let mut ov = out.try_as_plain_ram_mut()?;
            let output = ov.as_slice_mut::<f32>()?;
            let (in_image, out_image) = (self.x_channels * h * w, self.channels * oh * ow);
            for b in 0..n {
                self.run(&input[b * in_image..(b + 1) * in_image], h, w, &mut output[b * out_image..(b + 1) * out_image]);
            }
        }
        Ok(tvec!(out.into_tvalue()))
    }
}

impl TypedOp for YuNetStem {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let s = &inputs[0].shape;
        ensure!(s.rank() == 4, "{OP} needs NCHW input");
        let side = |d: &TDim| -> TractResult<TDim> { Ok(out_side(d.to_usize()?).into()) };
        Ok(tvec!(f32::datum_type().fact(tvec![s[0].clone(), self.channels.into(), side(&s[2])?, side(&s[3])?])))
    }

    as_op!();
}

// `run`: one image, `input` [X, h, w] into `output` [C, h/4, w/4] (rounded as [`out_side`]).
simd_entry_points!(YuNetStem);

/// The block over one image, band by band. Rows of the block's tensors: `h2` x `w2` after the
/// stride-2 convolution; each band computes the 1x1 output for its rows plus one row above and
/// below (zero outside the image), then the depthwise kernel, ReLU and the pool row by row.
#[inline(always)]
fn run_body<const FMA: bool, const AVX512: bool>(stem: &YuNetStem, input: &[f32], h: usize, w: usize, output: &mut [f32]) {
    let (xc, c) = (stem.x_channels, stem.channels);
    let (h2, w2) = (h.div_ceil(2), w.div_ceil(2));
    let (oh, ow) = (h2 / 2, w2 / 2);
    // Rows of the 1x1 output kept per band, each padded with a zero column on both sides.
    let rows = 2 * BAND + 2;
    let stride = w2 + 2;
    let mut band = vec![0f32; c * rows * stride];
    // The stride-2 convolution's taps for one output row: for each input channel, kernel row and
    // kernel column, the w2 input values it multiplies (columns 2x-1, 2x, 2x+1; zero outside),
    // so the convolution is a 1x1 convolution of 9 x X "channels" ([`pointwise`]).
    let taps = xc * 9;
    let mut tap_rows = vec![0f32; taps * w2];
    let mut conv = vec![0f32; c * w2];
    let mut row_c = vec![0f32; 2 * w2];
    let zeros = vec![0f32; stride];
    let plane = h * w;
    let mut p0 = 0;
    while p0 < oh {
        let p1 = (p0 + BAND).min(oh);
        // Rows of the block's tensors this band needs: [r0, r1), within [0, h2).
        let (c_lo, c_hi) = (2 * p0, 2 * p1);
        let r0 = c_lo.saturating_sub(1);
        let r1 = (c_hi + 1).min(h2);
        for r in r0..r1 {
            // The stride-2 convolution's row r reads input rows 2r-1, 2r, 2r+1.
            for ch in 0..xc {
                for ky in 0..3 {
                    let t = (ch * 3 + ky) * 3;
                    let (left, rest) = tap_rows[t * w2..(t + 3) * w2].split_at_mut(w2);
                    let (mid, right) = rest.split_at_mut(w2);
                    let y = (2 * r + ky) as isize - 1;
                    if y < 0 || y as usize >= h {
                        left.fill(0.0);
                        mid.fill(0.0);
                        right.fill(0.0);
                        continue;
                    }
                    let src = &input[ch * plane + y as usize * w..ch * plane + (y as usize + 1) * w];
                    // Columns 2x and 2x + 1, then 2x - 1: the odd columns one to the right.
                    deinterleave::<AVX512>(src, mid, right);
                    left[0] = 0.0;
                    left[1..].copy_from_slice(&right[..w2 - 1]);
                }
            }
            pointwise_on::<FMA, AVX512>(&stem.w0, &stem.b0, taps, w2, &tap_rows, |t| t * w2, &mut conv, |oc| oc * w2);
            conv.iter_mut().for_each(|v| *v = v.max(0.0));
            // The 1x1 convolution into the band's row (column 0 and the last stay zero).
            let slot = r - r0;
            pointwise_on::<FMA, AVX512>(&stem.w1, &stem.b1, c, w2, &conv, |ic| ic * w2, &mut band, |oc| (oc * rows + slot) * stride + 1);
        }
        // Depthwise 3x3 + ReLU on the rows [c_lo, c_hi), pooled in pairs.
        for oc in 0..c {
            let k = &stem.w2[oc * 9..oc * 9 + 9];
            let bias = stem.b2[oc];
            let row = |r: isize| -> &[f32] {
                if r >= r0 as isize && (r as usize) < r1 {
                    &band[(oc * rows + r as usize - r0) * stride..][..stride]
                } else {
                    &zeros
                }
            };
            for p in p0..p1 {
                for half in 0..2 {
                    let r = (2 * p + half) as isize;
                    depthwise::<FMA>(k, bias, 0.0, [row(r - 1), row(r), row(r + 1)], &mut row_c[half * w2..(half + 1) * w2]);
                }
                // Both rows are at least 0 already (ReLU).
                let (top, bottom) = row_c.split_at(w2);
                let out = &mut output[(oc * oh + p) * ow..][..ow];
                pool_pairs::<AVX512>(top, out, false);
                pool_pairs::<AVX512>(bottom, out, true);
            }
        }
        p0 = p1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn yunet_bytes() -> Vec<u8> {
        std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/artifacts/yunet.onnx")).unwrap()
    }

    fn run(fused: bool, h: usize, w: usize, input: &Tensor) -> TVec<TValue> {
        let mut onnx = tract_onnx::onnx();
        crate::pool2x2::register(&mut onnx);
        register(&mut onnx);
        let mut proto = onnx.proto_model_for_read(&mut Cursor::new(yunet_bytes())).unwrap();
        if fused {
            assert!(fuse(&mut proto), "YuNet's first block is fused");
            assert_eq!(proto.graph.as_ref().unwrap().node[0].op_type, OP);
        }
        let model = onnx.model_for_proto_model(&proto).unwrap().with_input_fact(0, f32::fact([1, 3, h, w]).into()).unwrap();
        let plan = model.into_optimized().unwrap().into_runnable().unwrap();
        plan.run(tvec!(input.clone().into())).unwrap()
    }

    #[test]
    fn the_fused_block_gives_what_the_six_nodes_give() {
        // Odd sizes too (not multiples of 4), and values like a BGR photo's.
        for (h, w) in [(64, 96), (70, 102), (32, 32)] {
            let mut seed = 7u32;
            let data: Vec<f32> = (0..3 * h * w)
                .map(|_| {
                    seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    (seed >> 24) as f32
                })
                .collect();
            let input = Tensor::from_shape(&[1, 3, h, w], &data).unwrap();
            let (plain, fused) = (run(false, h, w, &input), run(true, h, w, &input));
            assert_eq!(plain.len(), fused.len());
            for (a, b) in plain.iter().zip(&fused) {
                let (a, b) = (a.to_plain_array_view::<f32>().unwrap(), b.to_plain_array_view::<f32>().unwrap());
                assert_eq!(a.shape(), b.shape());
                let scale = a.iter().fold(1f32, |m, v| m.max(v.abs()));
                let worst = a.iter().zip(b.iter()).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
                assert!(worst <= 1e-4 * scale, "{h}x{w}: outputs differ by {worst} (scale {scale})");
            }
        }
    }

    #[test]
    fn a_graph_of_another_shape_is_left_alone() {
        let onnx = tract_onnx::onnx();
        let mut proto = onnx.proto_model_for_read(&mut Cursor::new(yunet_bytes())).unwrap();
        proto.graph.as_mut().unwrap().node[1].op_type = "Sigmoid".into();
        let before = proto.clone();
        assert!(!fuse(&mut proto));
        assert_eq!(proto, before);
    }
}
