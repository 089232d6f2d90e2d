//! YuNet's depthwise-separable units (a 1x1 convolution, a depthwise 3x3 convolution, then
//! optionally ReLU and a 2x2 max pool) as one tract op each, streamed over rows: the 1x1
//! output lives in a ring of three rows, so the unit's full-size intermediate tensors are never
//! made and its input is read once, in place (tract packs it afresh for every 1x1 convolution
//! that reads it: four times for the heads of each level).

use tract_hir::internal::*;
use tract_onnx::model::ParsingContext;
use tract_onnx::pb::{ModelProto, NodeProto, TensorProto};

/// The op type of the fused nodes [`fuse`] writes into the graph.
const OP: &str = "VeilDpUnit";
/// Output channels worked on together, and pixels per chunk: the 1x1 convolution keeps a
/// `BLOCK` x `CHUNK` tile of accumulators in registers while it walks the input channels (a
/// 32-pixel chunk, measured, was 2.5x slower: the compiler no longer kept the tile in registers).
const BLOCK: usize = 4;
const CHUNK: usize = 16;

/// Parse the fused nodes [`fuse`] writes.
pub fn register(onnx: &mut tract_onnx::Onnx) {
    onnx.op_register.insert(OP, parse);
}

/// Replace every run of graph nodes `Conv 1x1 -> Conv depthwise 3x3 (pads 1) [-> Relu] [-> MaxPool
/// 2x2 stride 2]` whose inner tensors nothing else reads by one fused node. Returns how many it
/// replaced; nodes of any other shape are left as they are.
pub fn fuse(model: &mut ModelProto) -> usize {
    let Some(graph) = model.graph.as_mut() else { return 0 };
    let dims: HashMap<String, Vec<i64>> = graph.initializer.iter().map(|t: &TensorProto| (t.name.clone(), t.dims.clone())).collect();
    let outputs: Vec<String> = graph.output.iter().map(|o| o.name.clone()).collect();
    let readers = |nodes: &[NodeProto], name: &str| nodes.iter().flat_map(|n| &n.input).filter(|i| *i == name).count();
    let ints = |n: &NodeProto, name: &str| n.get_attr_opt_vec::<isize>(name).ok().flatten();
    let int = |n: &NodeProto, name: &str| n.get_attr_opt::<i64>(name).ok().flatten();
    let no_dilation = |n: &NodeProto| ints(n, "dilations").is_none_or(|d| d.iter().all(|&v| v == 1));
    let mut fused = 0;
    let mut i = 0;
    while i + 1 < graph.node.len() {
        let (pw, dw) = (&graph.node[i], &graph.node[i + 1]);
        let pw_dims = pw.input.get(1).and_then(|w| dims.get(w));
        let dw_dims = dw.input.get(1).and_then(|w| dims.get(w));
        let shaped = pw.op_type == "Conv"
            && dw.op_type == "Conv"
            && pw.input.len() == 3
            && dw.input.len() == 3
            && pw.output.len() == 1
            && dw.output.len() == 1
            && dw.input[0] == pw.output[0]
            && [&pw.input[1], &pw.input[2], &dw.input[1], &dw.input[2]].iter().all(|w| dims.contains_key(*w))
            && ints(pw, "kernel_shape").as_deref() == Some(&[1, 1][..])
            && ints(pw, "strides").is_none_or(|s| s == [1, 1])
            && ints(pw, "pads").is_none_or(|p| p.iter().all(|&v| v == 0))
            && int(pw, "group").unwrap_or(1) == 1
            && ints(dw, "kernel_shape").as_deref() == Some(&[3, 3][..])
            && ints(dw, "strides").is_none_or(|s| s == [1, 1])
            && ints(dw, "pads").as_deref() == Some(&[1, 1, 1, 1][..])
            && no_dilation(pw)
            && no_dilation(dw)
            && matches!((pw_dims, dw_dims), (Some(p), Some(d))
                if p.len() == 4 && p[2..] == [1, 1] && d.len() == 4 && d[1..] == [1, 3, 3]
                    && d[0] == p[0] && int(dw, "group") == Some(p[0]))
            && readers(&graph.node, &pw.output[0]) == 1
            && !outputs.contains(&pw.output[0]);
        if !shaped {
            i += 1;
            continue;
        }
        // The ReLU and the pool that follow, when the tensor before each is read by them alone.
        let mut end = i + 2;
        let mut relu = false;
        let mut pool = false;
        let last_alone = |graph: &tract_onnx::pb::GraphProto, end: usize| {
            let name = &graph.node[end - 1].output[0];
            readers(&graph.node, name) == 1 && !outputs.contains(name)
        };
        if let Some(n) = graph.node.get(end) {
            if n.op_type == "Relu" && n.input.first() == graph.node[end - 1].output.first() && n.output.len() == 1 && last_alone(graph, end) {
                relu = true;
                end += 1;
            }
        }
        if let Some(n) = graph.node.get(end) {
            let pooled = n.op_type == "MaxPool"
                && n.input.first() == graph.node[end - 1].output.first()
                && n.output.len() == 1
                && ints(n, "kernel_shape").as_deref() == Some(&[2, 2][..])
                && ints(n, "strides").as_deref() == Some(&[2, 2][..])
                && ints(n, "pads").is_none_or(|p| p.iter().all(|&v| v == 0))
                && int(n, "ceil_mode").unwrap_or(0) == 0
                && ints(n, "dilations").is_none_or(|d| d.iter().all(|&v| v == 1))
                && last_alone(graph, end);
            if pooled {
                pool = true;
                end += 1;
            }
        }
        let (pw, dw) = (&graph.node[i], &graph.node[i + 1]);
        let mut node = NodeProto {
            name: format!("{}.veil_dp_unit", dw.name),
            op_type: OP.into(),
            input: vec![pw.input[0].clone(), pw.input[1].clone(), pw.input[2].clone(), dw.input[1].clone(), dw.input[2].clone()],
            output: graph.node[end - 1].output.clone(),
            ..Default::default()
        };
        for (name, on) in [("relu", relu), ("pool", pool)] {
            node.attribute.push(tract_onnx::pb::AttributeProto {
                name: name.into(),
                r#type: tract_onnx::pb::attribute_proto::AttributeType::Int as i32,
                i: on as i64,
                ..Default::default()
            });
        }
        graph.node.splice(i..end, [node]);
        fused += 1;
        i += 1;
    }
    fused
}

fn parse(_ctx: &ParsingContext, node: &NodeProto) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    ensure!(node.input.len() == 5 && node.output.len() == 1, "{OP} takes the input and four weights");
    let relu = node.get_attr_opt::<i64>("relu")?.unwrap_or(0) != 0;
    let pool = node.get_attr_opt::<i64>("pool")?.unwrap_or(0) != 0;
    Ok((expand(DpExpansion { relu, pool }), vec![]))
}

#[derive(Debug, Clone, Hash)]
struct DpExpansion {
    relu: bool,
    pool: bool,
}

fn out_side(side: usize, pool: bool) -> usize {
    if pool {
        side / 2
    } else {
        side
    }
}

impl Expansion for DpExpansion {
    fn name(&self) -> StaticName {
        "VeilDpUnitExpansion".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 5)?;
        check_output_arity(outputs, 1)?;
        s.equals(&outputs[0].datum_type, &inputs[0].datum_type)?;
        s.equals(&inputs[0].rank, 4)?;
        s.equals(&outputs[0].rank, 4)?;
        let pool = self.pool;
        s.given_2(&inputs[0].shape, &inputs[1].shape, move |s, x, w| {
            let (h, wd) = (x[2].to_usize()?, x[3].to_usize()?);
            let out: TVec<TDim> = tvec![x[0].clone(), w[0].clone(), out_side(h, pool).into(), out_side(wd, pool).into()];
            s.equals(&outputs[0].shape, ShapeFactoid::from(out))
        })
    }

    fn wire(&self, prefix: &str, model: &mut TypedModel, inputs: &[OutletId]) -> TractResult<TVec<OutletId>> {
        let konst = |i: usize| const_f32(model, inputs[i], OP);
        let (w_pw, b_pw, w_dw, b_dw) = (konst(1)?, konst(2)?, konst(3)?, konst(4)?);
        let c = b_pw.len();
        let c_in = w_pw.len() / c.max(1);
        ensure!(
            c > 0 && c_in > 0 && w_pw.len() == c * c_in && w_dw.len() == c * 9 && b_dw.len() == c,
            "{OP}: weights of unexpected sizes"
        );
        let unit = DpUnit {
            c_in,
            channels: c,
            relu: self.relu,
            pool: self.pool,
            w_pw: w_pw.into(),
            b_pw: b_pw.into(),
            w_dw: w_dw.into(),
            b_dw: b_dw.into(),
        };
        model.wire_node(prefix, unit, &[inputs[0]])
    }
}

/// One fused unit with its weights (ONNX layouts: `w_pw` [C, C_in], `w_dw` [C, 3, 3]).
#[derive(Debug, Clone, PartialEq)]
pub struct DpUnit {
    c_in: usize,
    channels: usize,
    relu: bool,
    pool: bool,
    w_pw: Arc<[f32]>,
    b_pw: Arc<[f32]>,
    w_dw: Arc<[f32]>,
    b_dw: Arc<[f32]>,
}

impl std::hash::Hash for DpUnit {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (self.c_in, self.channels, self.relu, self.pool).hash(state);
        for v in [&self.w_pw, &self.b_pw, &self.w_dw, &self.b_dw] {
            v.iter().for_each(|f| f.to_bits().hash(state));
        }
    }
}

impl Eq for DpUnit {}

impl Op for DpUnit {
    fn name(&self) -> StaticName {
        OP.into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!("{} -> {} channels, relu {}, pool {}", self.c_in, self.channels, self.relu, self.pool)])
    }

    op_as_typed_op!();
}

impl EvalOp for DpUnit {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        eval_images(OP, &inputs[0], self.c_in, self.channels, |side| out_side(side, self.pool), |x, h, w, out| self.run(x, h, w, out))
    }
}

impl TypedOp for DpUnit {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let s = &inputs[0].shape;
        ensure!(s.rank() == 4, "{OP} needs NCHW input");
        let side = |d: &TDim| -> TractResult<TDim> { Ok(out_side(d.to_usize()?, self.pool).into()) };
        Ok(tvec!(f32::datum_type().fact(tvec![s[0].clone(), self.channels.into(), side(&s[2])?, side(&s[3])?])))
    }

    as_op!();
}

/// A fused op's weight input, which must be a constant, as f32 values (`op` names it in errors).
pub(crate) fn const_f32(model: &TypedModel, input: OutletId, op: &str) -> TractResult<Vec<f32>> {
    let fact = model.outlet_fact(input)?;
    let k = fact.konst.as_ref().with_context(|| format!("{op}: weight input {input:?} is not a constant"))?;
    Ok(k.cast_to::<f32>()?.try_as_plain_ram()?.as_slice::<f32>()?.to_vec())
}

/// A fused op's eval, image by image: `x` [N, `c_in`, h, w] into a new [N, `c_out`, side(h),
/// side(w)] tensor, every value of which `run(image, h, w, out)` must write.
pub(crate) fn eval_images(
    op: &str,
    x: &TValue,
    c_in: usize,
    c_out: usize,
    side: impl Fn(usize) -> usize,
    run: impl Fn(&[f32], usize, usize, &mut [f32]),
) -> TractResult<TVec<TValue>> {
    let shape = x.shape();
    ensure!(shape.len() == 4 && shape[1] == c_in, "{op} needs [N, {c_in}, H, W] input, got {shape:?}");
    let (n, h, w) = (shape[0], shape[2], shape[3]);
    let (oh, ow) = (side(h), side(w));
    // Every output value is written by `run` (the caller's contract).
    let mut out = unsafe { Tensor::uninitialized::<f32>(&[n, c_out, oh, ow])? };
    if oh > 0 && ow > 0 {
        let xv = x.try_as_plain_ram()?;
        let input = xv.as_slice::<f32>()?;
        let mut ov = out.try_as_plain_ram_mut()?;
        let output = ov.as_slice_mut::<f32>()?;
        let (in_image, out_image) = (c_in * h * w, c_out * oh * ow);
        for b in 0..n {
            run(&input[b * in_image..(b + 1) * in_image], h, w, &mut output[b * out_image..(b + 1) * out_image]);
        }
    }
    Ok(tvec!(out.into_tvalue()))
}

/// `run(&self, input, h, w, output)` for a fused op whose body is `run_body::<FMA, AVX512>`
/// (one image, `input` [C_in, h, w] into `output`): the body compiled for AVX-512, for AVX2, or
/// plainly, chosen by what the CPU has (every aarch64 core has NEON with fused multiply-add).
macro_rules! simd_entry_points {
    ($op:ty) => {
        impl $op {
            fn run(&self, input: &[f32], h: usize, w: usize, output: &mut [f32]) {
                #[cfg(target_arch = "x86_64")]
                {
                    if std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("fma") {
                        // SAFETY: the CPU has the features the function is compiled for (checked just above).
                        unsafe { run_avx512(self, input, h, w, output) };
                        return;
                    }
                    if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                        // SAFETY: as above.
                        unsafe { run_avx2(self, input, h, w, output) };
                        return;
                    }
                    run_body::<false, false>(self, input, h, w, output);
                }
                #[cfg(not(target_arch = "x86_64"))]
                run_body::<true, false>(self, input, h, w, output);
            }
        }

        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx512f,avx2,fma")]
        unsafe fn run_avx512(op: &$op, input: &[f32], h: usize, w: usize, output: &mut [f32]) {
            run_body::<true, true>(op, input, h, w, output)
        }

        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn run_avx2(op: &$op, input: &[f32], h: usize, w: usize, output: &mut [f32]) {
            run_body::<true, false>(op, input, h, w, output)
        }
    };
}
pub(crate) use simd_entry_points;

simd_entry_points!(DpUnit);

/// `a * b + c`, fused where the code is compiled for a CPU that has the instruction (without
/// it, `mul_add` would be a library call per element).
#[inline(always)]
pub(crate) fn madd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// A 1x1 convolution of `n` pixels: output channel `oc` (bias `bias[oc]`, weights
/// `weights[oc * c_in..][..c_in]`) into `dst[dst_at(oc)..][..n]` from input channel `ic` at
/// `src[src_at(ic)..][..n]`. `BLOCK` output channels by `CHUNK` pixels are summed in registers
/// over the input channels (the shape tract's packed matrix products have, without packing).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn pointwise<const FMA: bool>(
    weights: &[f32],
    bias: &[f32],
    c_in: usize,
    n: usize,
    src: &[f32],
    src_at: impl Fn(usize) -> usize,
    dst: &mut [f32],
    dst_at: impl Fn(usize) -> usize,
) {
    let c = bias.len();
    let row = |ic: usize| &src[src_at(ic)..][..n];
    let mut oc = 0;
    while oc + BLOCK <= c {
        let w = &weights[oc * c_in..(oc + BLOCK) * c_in];
        let mut x = 0;
        while x + CHUNK <= n {
            let mut acc = [[0f32; CHUNK]; BLOCK];
            for (j, a) in acc.iter_mut().enumerate() {
                *a = [bias[oc + j]; CHUNK];
            }
            for ic in 0..c_in {
                let s: &[f32; CHUNK] = row(ic)[x..x + CHUNK].try_into().expect("chunk");
                for (j, a) in acc.iter_mut().enumerate() {
                    let k = w[j * c_in + ic];
                    for l in 0..CHUNK {
                        a[l] = madd::<FMA>(k, s[l], a[l]);
                    }
                }
            }
            for (j, a) in acc.iter().enumerate() {
                dst[dst_at(oc + j) + x..][..CHUNK].copy_from_slice(a);
            }
            x += CHUNK;
        }
        for xx in x..n {
            for j in 0..BLOCK {
                let mut a = bias[oc + j];
                for ic in 0..c_in {
                    a = madd::<FMA>(w[j * c_in + ic], row(ic)[xx], a);
                }
                dst[dst_at(oc + j) + xx] = a;
            }
        }
        oc += BLOCK;
    }
    for oc in oc..c {
        let out = &mut dst[dst_at(oc)..][..n];
        out.fill(bias[oc]);
        for ic in 0..c_in {
            let k = weights[oc * c_in + ic];
            for (o, v) in out.iter_mut().zip(row(ic)) {
                *o = madd::<FMA>(k, *v, *o);
            }
        }
    }
}

/// [`pointwise`], or [`pointwise_avx512`] when `AVX512` (set only on paths that checked the
/// CPU), or [`pointwise_neon`] on aarch64.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn pointwise_on<const FMA: bool, const AVX512: bool>(
    weights: &[f32],
    bias: &[f32],
    c_in: usize,
    n: usize,
    src: &[f32],
    src_at: impl Fn(usize) -> usize,
    dst: &mut [f32],
    dst_at: impl Fn(usize) -> usize,
) {
    #[cfg(target_arch = "x86_64")]
    if AVX512 {
        // SAFETY: AVX512 is true only under a function compiled for AVX-512F, which the
        // dispatch calls after checking the CPU has it.
        unsafe { pointwise_avx512(weights, bias, c_in, n, src, src_at, dst, dst_at) };
        return;
    }
    #[cfg(target_arch = "aarch64")]
    {
        pointwise_neon(weights, bias, c_in, n, src, src_at, dst, dst_at)
    }
    #[cfg(not(target_arch = "aarch64"))]
    pointwise::<FMA>(weights, bias, c_in, n, src, src_at, dst, dst_at)
}

/// The explicit kernels' row pointers: input channel `ic`'s `n` values and output channel `oc`'s,
/// each row bounds-checked here, once, so the loops may read and write inside them unchecked.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[allow(clippy::too_many_arguments)]
fn row_pointers(
    c_in: usize,
    c: usize,
    n: usize,
    src: &[f32],
    src_at: &impl Fn(usize) -> usize,
    dst: &mut [f32],
    dst_at: &impl Fn(usize) -> usize,
) -> (Vec<*const f32>, Vec<*mut f32>) {
    let rows = (0..c_in).map(|ic| src[src_at(ic)..][..n].as_ptr()).collect();
    let outs = (0..c).map(|oc| dst[dst_at(oc)..][..n].as_mut_ptr()).collect();
    (rows, outs)
}

/// [`pointwise`] written with AVX-512 instructions: four output channels by 32 pixels (eight
/// registers of sums, enough independent chains to keep both multiply-add units busy), then 16,
/// then a masked tail; each weight broadcast once per input channel and block.
///
/// # Safety
/// The CPU must have AVX-512F (the caller checks).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn pointwise_avx512(
    weights: &[f32],
    bias: &[f32],
    c_in: usize,
    n: usize,
    src: &[f32],
    src_at: impl Fn(usize) -> usize,
    dst: &mut [f32],
    dst_at: impl Fn(usize) -> usize,
) {
    use std::arch::x86_64::*;
    let c = bias.len();
    assert!(weights.len() >= c * c_in);
    let (rows, outs) = row_pointers(c_in, c, n, src, &src_at, dst, &dst_at);
    let tail = (n % 16) as u32;
    let mask: __mmask16 = ((1u32 << tail) - 1) as __mmask16;
    let mut oc = 0;
    while oc + 4 <= c {
        let w = weights.as_ptr().add(oc * c_in);
        let k = |j: usize, ic: usize| _mm512_set1_ps(*w.add(j * c_in + ic));
        let b = [0, 1, 2, 3].map(|j| _mm512_set1_ps(bias[oc + j]));
        let mut x = 0;
        while x + 32 <= n {
            let mut acc = [b[0], b[0], b[1], b[1], b[2], b[2], b[3], b[3]];
            for (ic, row) in rows.iter().enumerate() {
                let s0 = _mm512_loadu_ps(row.add(x));
                let s1 = _mm512_loadu_ps(row.add(x + 16));
                for j in 0..4 {
                    let kj = k(j, ic);
                    acc[2 * j] = _mm512_fmadd_ps(kj, s0, acc[2 * j]);
                    acc[2 * j + 1] = _mm512_fmadd_ps(kj, s1, acc[2 * j + 1]);
                }
            }
            for j in 0..4 {
                _mm512_storeu_ps(outs[oc + j].add(x), acc[2 * j]);
                _mm512_storeu_ps(outs[oc + j].add(x + 16), acc[2 * j + 1]);
            }
            x += 32;
        }
        while x < n {
            let m = if x + 16 <= n { 0xFFFF } else { mask };
            let mut acc = b;
            for (ic, row) in rows.iter().enumerate() {
                let s = _mm512_maskz_loadu_ps(m, row.add(x));
                for (j, a) in acc.iter_mut().enumerate() {
                    *a = _mm512_fmadd_ps(k(j, ic), s, *a);
                }
            }
            for (j, a) in acc.iter().enumerate() {
                _mm512_mask_storeu_ps(outs[oc + j].add(x), m, *a);
            }
            x += 16;
        }
        oc += 4;
    }
    for oc in oc..c {
        let mut x = 0;
        while x < n {
            let m = if x + 16 <= n { 0xFFFF } else { mask };
            let mut a = _mm512_set1_ps(bias[oc]);
            for (ic, row) in rows.iter().enumerate() {
                a = _mm512_fmadd_ps(_mm512_set1_ps(weights[oc * c_in + ic]), _mm512_maskz_loadu_ps(m, row.add(x)), a);
            }
            _mm512_mask_storeu_ps(outs[oc].add(x), m, a);
            x += 16;
        }
    }
}

/// [`pointwise`] written with NEON instructions (every aarch64 core has them): four output
/// channels by 16 pixels, sixteen registers of sums, then the pixels left one by one.
#[cfg(target_arch = "aarch64")]
#[allow(clippy::too_many_arguments)]
pub(crate) fn pointwise_neon(
    weights: &[f32],
    bias: &[f32],
    c_in: usize,
    n: usize,
    src: &[f32],
    src_at: impl Fn(usize) -> usize,
    dst: &mut [f32],
    dst_at: impl Fn(usize) -> usize,
) {
    use std::arch::aarch64::*;
    let c = bias.len();
    assert!(weights.len() >= c * c_in);
    let (rows, outs) = row_pointers(c_in, c, n, src, &src_at, dst, &dst_at);
    let mut oc = 0;
    while oc + 4 <= c {
        let w = &weights[oc * c_in..(oc + 4) * c_in];
        let mut x = 0;
        while x + 16 <= n {
            // SAFETY: x + 16 <= n, and every row and output holds n values (checked above).
            unsafe {
                let mut acc = [[vdupq_n_f32(0.0); 4]; 4];
                for (j, a) in acc.iter_mut().enumerate() {
                    *a = [vdupq_n_f32(bias[oc + j]); 4];
                }
                for (ic, row) in rows.iter().enumerate() {
                    let s = [0, 4, 8, 12].map(|o| vld1q_f32(row.add(x + o)));
                    for (j, a) in acc.iter_mut().enumerate() {
                        let k = w[j * c_in + ic];
                        for q in 0..4 {
                            a[q] = vfmaq_n_f32(a[q], s[q], k);
                        }
                    }
                }
                for (j, a) in acc.iter().enumerate() {
                    for (q, v) in a.iter().enumerate() {
                        vst1q_f32(outs[oc + j].add(x + 4 * q), *v);
                    }
                }
            }
            x += 16;
        }
        for xx in x..n {
            for j in 0..4 {
                let mut a = bias[oc + j];
                for (ic, row) in rows.iter().enumerate() {
                    // SAFETY: xx < n (checked above).
                    a = w[j * c_in + ic].mul_add(unsafe { *row.add(xx) }, a);
                }
                // SAFETY: as above.
                unsafe { *outs[oc + j].add(xx) = a };
            }
        }
        oc += 4;
    }
    if oc < c {
        pointwise::<true>(&weights[oc * c_in..], &bias[oc..], c_in, n, src, src_at, dst, |j| dst_at(oc + j));
    }
}

/// Pixels the row kernels below work on together: one AVX-512 register of f32, two AVX2 ones,
/// four NEON ones. Rows are walked in whole chunks of it, the last one overlapping the one before
/// (its values are written twice, the same both times), so no row ends in a scalar tail (the
/// compiler's own vector loops took 64 pixels a turn and left rows of 40 or 80 mostly scalar).
const LANES: usize = 16;

/// `v` kept at least at `floor`, as one vector max instruction (`f32::max` adds NaN handling;
/// a NaN here becomes `floor`, as it does there).
#[inline(always)]
fn at_least(v: f32, floor: f32) -> f32 {
    if v > floor {
        v
    } else {
        floor
    }
}

/// Starts of the `LANES`-pixel chunks covering `0..n` (`n` >= `LANES`), the last one moved back
/// to end at `n`.
#[inline(always)]
fn chunk_starts(n: usize) -> impl Iterator<Item = usize> {
    debug_assert!(n >= LANES);
    (0..n).step_by(LANES).map(move |x| x.min(n - LANES))
}

/// A depthwise 3x3 convolution at one row: `rows` are the three input rows around it, each
/// `dst.len() + 2` values with a zero column on both sides; kernel `k` (9), then `floor` as a
/// lower bound (0 for ReLU, minus infinity for none). One pass: each output is its nine taps
/// summed in a register.
#[inline(always)]
pub(crate) fn depthwise<const FMA: bool>(k: &[f32], bias: f32, floor: f32, rows: [&[f32]; 3], dst: &mut [f32]) {
    let w = dst.len();
    let k: &[f32; 9] = k.try_into().expect("nine taps");
    let [a, b, c] = rows.map(|r| &r[..w + 2]);
    // A sum per kernel row: three short chains of dependent multiply-adds, not one long one.
    let one = |a: &[f32], b: &[f32], c: &[f32], x: usize| {
        let top = madd::<FMA>(k[2], a[x + 2], madd::<FMA>(k[1], a[x + 1], madd::<FMA>(k[0], a[x], bias)));
        let mid = madd::<FMA>(k[5], b[x + 2], madd::<FMA>(k[4], b[x + 1], k[3] * b[x]));
        let low = madd::<FMA>(k[8], c[x + 2], madd::<FMA>(k[7], c[x + 1], k[6] * c[x]));
        at_least(top + mid + low, floor)
    };
    if w < LANES {
        for (x, o) in dst.iter_mut().enumerate() {
            *o = one(a, b, c, x);
        }
        return;
    }
    for x in chunk_starts(w) {
        fn at(r: &[f32], x: usize) -> &[f32; LANES + 2] {
            r[x..x + LANES + 2].try_into().expect("chunk")
        }
        let (a, b, c) = (at(a, x), at(b, x), at(c, x));
        let out: &mut [f32; LANES] = (&mut dst[x..x + LANES]).try_into().expect("chunk");
        for (l, o) in out.iter_mut().enumerate() {
            *o = one(a, b, c, l);
        }
    }
}

/// Half of a 2x2 max pool: `out[x]` = the larger of `row[2x]` and `row[2x + 1]`, or, when
/// `merge`, the largest of those and `out[x]` (the pair's other row, pooled before).
#[inline(always)]
pub(crate) fn pool_pairs<const AVX512: bool>(row: &[f32], out: &mut [f32], merge: bool) {
    let n = out.len();
    let row = &row[..2 * n];
    let pair = |v: &[f32], x: usize, o: f32| {
        let m = at_least(v[2 * x], v[2 * x + 1]);
        if merge {
            at_least(o, m)
        } else {
            m
        }
    };
    if n < LANES {
        for (x, o) in out.iter_mut().enumerate() {
            *o = pair(row, x, *o);
        }
        return;
    }
    for x in chunk_starts(n) {
        let v: &[f32; 2 * LANES] = row[2 * x..2 * x + 2 * LANES].try_into().expect("chunk");
        let o: &mut [f32; LANES] = (&mut out[x..x + LANES]).try_into().expect("chunk");
        #[cfg(target_arch = "x86_64")]
        if AVX512 {
            // SAFETY: AVX512 is true only under a function compiled for AVX-512F, which the
            // dispatch calls after checking the CPU has it.
            unsafe { avx512::pool_chunk(v, o, merge) };
            continue;
        }
        for l in 0..LANES {
            o[l] = pair(v, l, o[l]);
        }
    }
}

/// `even[x]` = `src[2x]` and `odd[x]` = `src[2x + 1]`, 0 past the end of `src` (`even` and
/// `odd` are `src.len()` / 2 rounded up long).
#[inline(always)]
pub(crate) fn deinterleave<const AVX512: bool>(src: &[f32], even: &mut [f32], odd: &mut [f32]) {
    let n = even.len();
    assert!(odd.len() == n && src.len().div_ceil(2) == n);
    let whole = src.len() / 2;
    if whole < LANES {
        for x in 0..whole {
            (even[x], odd[x]) = (src[2 * x], src[2 * x + 1]);
        }
    } else {
        for x in chunk_starts(whole) {
            let v: &[f32; 2 * LANES] = src[2 * x..2 * x + 2 * LANES].try_into().expect("chunk");
            let e: &mut [f32; LANES] = (&mut even[x..x + LANES]).try_into().expect("chunk");
            let o: &mut [f32; LANES] = (&mut odd[x..x + LANES]).try_into().expect("chunk");
            #[cfg(target_arch = "x86_64")]
            if AVX512 {
                // SAFETY: as in `pool_pairs`.
                unsafe { avx512::deinterleave_chunk(v, e, o) };
                continue;
            }
            for l in 0..LANES {
                (e[l], o[l]) = (v[2 * l], v[2 * l + 1]);
            }
        }
    }
    if whole < n {
        (even[whole], odd[whole]) = (src[2 * whole], 0.0);
    }
}

/// The chunks of [`pool_pairs`] and [`deinterleave`] in AVX-512 (the compiler leaves them scalar):
/// a chunk's 32 values in two registers, split into evens and odds by two permutes.
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::LANES;
    use std::arch::x86_64::*;

    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn split(v: &[f32; 2 * LANES]) -> (__m512, __m512) {
        let (lo, hi) = (_mm512_loadu_ps(v.as_ptr()), _mm512_loadu_ps(v.as_ptr().add(LANES)));
        let evens = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        let odds = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
        (_mm512_permutex2var_ps(lo, evens, hi), _mm512_permutex2var_ps(lo, odds, hi))
    }

    /// # Safety
    /// The CPU must have AVX-512F.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn pool_chunk(v: &[f32; 2 * LANES], out: &mut [f32; LANES], merge: bool) {
        let (e, o) = split(v);
        let mut m = _mm512_max_ps(e, o);
        if merge {
            m = _mm512_max_ps(_mm512_loadu_ps(out.as_ptr()), m);
        }
        _mm512_storeu_ps(out.as_mut_ptr(), m);
    }

    /// # Safety
    /// The CPU must have AVX-512F.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn deinterleave_chunk(v: &[f32; 2 * LANES], even: &mut [f32; LANES], odd: &mut [f32; LANES]) {
        let (e, o) = split(v);
        _mm512_storeu_ps(even.as_mut_ptr(), e);
        _mm512_storeu_ps(odd.as_mut_ptr(), o);
    }
}

/// The unit over one image, row by row: the 1x1 rows in a ring of three, each depthwise row
/// made as soon as the 1x1 row below it exists, pooled in pairs when the unit pools.
#[inline(always)]
fn run_body<const FMA: bool, const AVX512: bool>(unit: &DpUnit, input: &[f32], h: usize, w: usize, output: &mut [f32]) {
    let (c, stride) = (unit.channels, w + 2);
    let slot_len = c * stride;
    // Three 1x1 rows, zero-padded left and right (the padding is never written).
    let mut ring = vec![0f32; 3 * slot_len];
    // A depthwise row on its way to the pool.
    let mut dw = vec![0f32; if unit.pool { w } else { 0 }];
    let zeros = vec![0f32; stride];
    let (oh, ow) = (out_side(h, unit.pool), out_side(w, unit.pool));
    let rows_needed = if unit.pool { 2 * oh } else { h };
    let plane = h * w;
    let pointwise_row = |y: usize, slot: &mut [f32]| {
        pointwise_on::<FMA, AVX512>(&unit.w_pw, &unit.b_pw, unit.c_in, w, input, |ic| ic * plane + y * w, slot, |oc| oc * stride + 1)
    };
    let floor = if unit.relu { 0.0 } else { f32::NEG_INFINITY };
    if h > 0 {
        pointwise_row(0, &mut ring[..slot_len]);
    }
    for r in 0..rows_needed {
        if r + 1 < h {
            let slot = (r + 1) % 3;
            pointwise_row(r + 1, &mut ring[slot * slot_len..(slot + 1) * slot_len]);
        }
        // Row y of channel oc's 1x1 output, zeros outside the image.
        let row = |y: isize, oc: usize| -> &[f32] {
            if y >= 0 && (y as usize) < h {
                &ring[(y as usize % 3) * slot_len + oc * stride..][..stride]
            } else {
                &zeros
            }
        };
        for oc in 0..c {
            let rows = [row(r as isize - 1, oc), row(r as isize, oc), row(r as isize + 1, oc)];
            let (k, bias) = (&unit.w_dw[oc * 9..oc * 9 + 9], unit.b_dw[oc]);
            if unit.pool {
                // The first row of a pair writes its pairwise maxima, the second merges its own.
                depthwise::<FMA>(k, bias, floor, rows, &mut dw);
                pool_pairs::<AVX512>(&dw, &mut output[(oc * oh + r / 2) * ow..][..ow], r % 2 == 1);
            } else {
                depthwise::<FMA>(k, bias, floor, rows, &mut output[(oc * h + r) * w..][..w]);
            }
        }
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
        crate::yunet_stem::register(&mut onnx);
        register(&mut onnx);
        let mut proto = onnx.proto_model_for_read(&mut Cursor::new(yunet_bytes())).unwrap();
        if fused {
            // After the stem (which takes the first unit): the backbone's 10 units, the neck's 3
            // and the 12 heads (no ReLU, no pool).
            assert!(crate::yunet_stem::fuse(&mut proto));
            assert_eq!(fuse(&mut proto), 25);
            let ops: Vec<&str> = proto.graph.as_ref().unwrap().node.iter().map(|n| n.op_type.as_str()).collect();
            // pool2 is fused; pool3 and pool4 stay, as the neck reads what they pool.
            assert!(!ops.contains(&"Relu") && ops.iter().filter(|o| **o == "MaxPool").count() == 2, "{ops:?}");
        }
        let model = onnx.model_for_proto_model(&proto).unwrap().with_input_fact(0, f32::fact([1, 3, h, w]).into()).unwrap();
        let plan = model.into_optimized().unwrap().into_runnable().unwrap();
        plan.run(tvec!(input.clone().into())).unwrap()
    }

    #[test]
    fn the_fused_units_give_what_their_nodes_give() {
        // Sizes whose inner sides are odd (the pools round down), narrower than a chunk, or not
        // a multiple of one.
        for (h, w) in [(64, 96), (96, 160), (32, 32), (160, 224)] {
            let mut seed = 11u32;
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

    /// Both 1x1 kernels against the plain sum, on sizes with remainders (10 output channels:
    /// two blocks and two alone; 37 pixels: a 32-pixel chunk, a 16-pixel step and a tail).
    #[test]
    fn the_1x1_kernels_sum_what_the_definition_sums() {
        let (c, c_in, n, stride) = (10, 7, 37, 41);
        let mut seed = 5u32;
        let mut next = || {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        };
        let weights: Vec<f32> = (0..c * c_in).map(|_| next()).collect();
        let bias: Vec<f32> = (0..c).map(|_| next()).collect();
        let src: Vec<f32> = (0..c_in * stride + 3).map(|_| next()).collect();
        let want: Vec<f32> = (0..c)
            .flat_map(|oc| {
                let (weights, bias, src) = (&weights, &bias, &src);
                (0..n).map(move |x| bias[oc] + (0..c_in).map(|ic| weights[oc * c_in + ic] * src[3 + ic * stride + x]).sum::<f32>())
            })
            .collect();
        let check = |got: &[f32]| {
            for oc in 0..c {
                for x in 0..n {
                    let (g, w) = (got[1 + oc * stride + x], want[oc * n + x]);
                    assert!((g - w).abs() < 1e-5, "channel {oc} pixel {x}: {g} != {w}");
                }
                // Nothing written outside the rows.
                assert_eq!(got[oc * stride], 0.0);
            }
        };
        let mut got = vec![0f32; 1 + c * stride];
        pointwise::<false>(&weights, &bias, c_in, n, &src, |ic| 3 + ic * stride, &mut got, |oc| 1 + oc * stride);
        check(&got);
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx512f") {
            let mut got = vec![0f32; 1 + c * stride];
            // SAFETY: the CPU has AVX-512F (checked just above).
            unsafe { pointwise_avx512(&weights, &bias, c_in, n, &src, |ic| 3 + ic * stride, &mut got, |oc| 1 + oc * stride) };
            check(&got);
        }
        #[cfg(target_arch = "aarch64")]
        {
            let mut got = vec![0f32; 1 + c * stride];
            pointwise_neon(&weights, &bias, c_in, n, &src, |ic| 3 + ic * stride, &mut got, |oc| 1 + oc * stride);
            check(&got);
        }
    }

    /// The row kernels against their definitions at every length from 1 to 70 (shorter than a
    /// chunk, whole chunks, and an overlapping last chunk), on the portable and AVX-512 paths.
    #[test]
    fn the_row_kernels_compute_their_definitions_at_every_length() {
        let mut seed = 17u32;
        let mut next = || {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        };
        #[cfg(target_arch = "x86_64")]
        let avx512 = std::is_x86_feature_detected!("avx512f");
        #[cfg(not(target_arch = "x86_64"))]
        let avx512 = false;
        for n in 1..=70usize {
            let k: Vec<f32> = (0..9).map(|_| next()).collect();
            let rows: Vec<Vec<f32>> = (0..3).map(|_| (0..n + 2).map(|_| next()).collect()).collect();
            for floor in [0.0, f32::NEG_INFINITY] {
                let want: Vec<f32> = (0..n)
                    .map(|x| {
                        let sum: f32 = (0..9).map(|t| k[t] * rows[t / 3][x + t % 3]).sum::<f32>() + 0.25;
                        sum.max(floor)
                    })
                    .collect();
                let mut got = vec![f32::NAN; n];
                depthwise::<false>(&k, 0.25, floor, [&rows[0], &rows[1], &rows[2]], &mut got);
                for (g, w) in got.iter().zip(&want) {
                    assert!((g - w).abs() < 1e-5, "depthwise of {n}: {got:?} != {want:?}");
                }
            }
            let src: Vec<f32> = (0..n).map(|_| next()).collect();
            let half = n.div_ceil(2);
            let want_even: Vec<f32> = (0..half).map(|x| src[2 * x]).collect();
            let want_odd: Vec<f32> = (0..half).map(|x| src.get(2 * x + 1).copied().unwrap_or(0.0)).collect();
            let whole = n / 2;
            let prior: Vec<f32> = (0..whole).map(|_| next()).collect();
            for merge in [false, true] {
                let want: Vec<f32> =
                    (0..whole).map(|x| src[2 * x].max(src[2 * x + 1]).max(if merge { prior[x] } else { f32::MIN })).collect();
                for simd in [false, avx512] {
                    let (mut even, mut odd) = (vec![f32::NAN; half], vec![f32::NAN; half]);
                    let mut pooled = prior.clone();
                    if simd {
                        deinterleave::<true>(&src, &mut even, &mut odd);
                        pool_pairs::<true>(&src, &mut pooled, merge);
                    } else {
                        deinterleave::<false>(&src, &mut even, &mut odd);
                        pool_pairs::<false>(&src, &mut pooled, merge);
                    }
                    assert_eq!((&even, &odd), (&want_even, &want_odd), "deinterleave of {n} (simd {simd})");
                    assert_eq!(pooled, want, "pool of {n} (merge {merge}, simd {simd})");
                }
            }
        }
    }

    #[test]
    fn a_unit_whose_inner_tensor_is_read_elsewhere_is_left_alone() {
        let onnx = tract_onnx::onnx();
        let mut proto = onnx.proto_model_for_read(&mut Cursor::new(yunet_bytes())).unwrap();
        let graph = proto.graph.as_mut().unwrap();
        // A second reader of the first unit's 1x1 output (model1_dp1_pw) keeps that unit apart.
        let pw = graph.node.iter().position(|n| n.name == "backbone__model1_dp1_pw").unwrap();
        let extra = NodeProto {
            name: "reader".into(),
            op_type: "Relu".into(),
            input: vec![graph.node[pw].output[0].clone()],
            output: vec!["reader".into()],
            ..Default::default()
        };
        graph.node.push(extra);
        assert!(crate::yunet_stem::fuse(&mut proto));
        assert_eq!(fuse(&mut proto), 24);
        assert!(proto.graph.as_ref().unwrap().node.iter().any(|n| n.name == "backbone__model1_dp1_pw"));
    }
}
