//! A 2x2, stride-2 max pool over NCHW f32 as a tract op, plugged in for YuNet's ONNX `MaxPool`
//! nodes (tract 0.23's generic pooling took a fifth of YuNet's inference time at 720p).

use tract_hir::internal::*;
use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;

/// Parse `MaxPool` nodes as [`MaxPool2x2`]; a node of any other shape is refused (YuNet's
/// network, built by `models/tool/yunet.py`, has only 2x2 stride-2 pools without padding).
pub fn register(onnx: &mut tract_onnx::Onnx) {
    onnx.op_register.insert("MaxPool", parse);
}

fn parse(_ctx: &ParsingContext, node: &NodeProto) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let ints = |name: &str| node.get_attr_opt_vec::<isize>(name);
    ensure!(node.output.len() == 1, "MaxPool with indices is not supported");
    ensure!(ints("kernel_shape")?.as_deref() == Some(&[2, 2][..]), "only 2x2 MaxPool is supported");
    ensure!(ints("strides")?.as_deref() == Some(&[2, 2][..]), "only stride-2 MaxPool is supported");
    ensure!(ints("pads")?.is_none_or(|p| p.iter().all(|&v| v == 0)), "padded MaxPool is not supported");
    ensure!(ints("dilations")?.is_none_or(|d| d.iter().all(|&v| v == 1)), "dilated MaxPool is not supported");
    ensure!(node.get_attr_opt::<i64>("ceil_mode")?.unwrap_or(0) == 0, "MaxPool ceil_mode is not supported");
    if let Some(pad) = node.get_attr_opt::<&str>("auto_pad")? {
        ensure!(pad == "NOTSET" || pad == "VALID", "MaxPool auto_pad={pad} is not supported");
    }
    Ok((expand(Pool2x2Expansion), vec![]))
}

#[derive(Debug, Clone)]
struct Pool2x2Expansion;

impl Expansion for Pool2x2Expansion {
    fn name(&self) -> StaticName {
        "VeilMaxPool2x2Expansion".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 1)?;
        check_output_arity(outputs, 1)?;
        s.equals(&outputs[0].datum_type, &inputs[0].datum_type)?;
        s.equals(&inputs[0].rank, 4)?;
        s.equals(&outputs[0].rank, 4)?;
        s.given(&inputs[0].shape, move |s, x| {
            let (h, w) = (x[2].to_usize()?, x[3].to_usize()?);
            let out: TVec<TDim> = tvec![x[0].clone(), x[1].clone(), (h / 2).into(), (w / 2).into()];
            s.equals(&outputs[0].shape, ShapeFactoid::from(out))
        })
    }

    fn wire(&self, prefix: &str, model: &mut TypedModel, inputs: &[OutletId]) -> TractResult<TVec<OutletId>> {
        model.wire_node(prefix, MaxPool2x2, &[inputs[0]])
    }
}

/// Max of each 2x2 block of an NCHW f32 tensor (odd last rows and columns are dropped, as
/// ONNX's floor mode does).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MaxPool2x2;

impl Op for MaxPool2x2 {
    fn name(&self) -> StaticName {
        "VeilMaxPool2x2".into()
    }

    op_as_typed_op!();
}

/// Pool one `h` x `w` plane into `out` (`h / 2` x `w / 2`).
fn pool_plane(input: &[f32], w: usize, out: &mut [f32]) {
    let ow = w / 2;
    for (oy, o) in out.chunks_exact_mut(ow).enumerate() {
        let r0 = &input[2 * oy * w..2 * oy * w + 2 * ow];
        let r1 = &input[(2 * oy + 1) * w..(2 * oy + 1) * w + 2 * ow];
        for ((o, a), b) in o.iter_mut().zip(r0.chunks_exact(2)).zip(r1.chunks_exact(2)) {
            *o = a[0].max(a[1]).max(b[0].max(b[1]));
        }
    }
}

impl EvalOp for MaxPool2x2 {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let x = &inputs[0];
        let shape = x.shape();
        ensure!(shape.len() == 4, "VeilMaxPool2x2 needs NCHW input, got {shape:?}");
        let (planes, h, w) = (shape[0] * shape[1], shape[2], shape[3]);
        let (oh, ow) = (h / 2, w / 2);
        let mut out = Tensor::zero::<f32>(&[shape[0], shape[1], oh, ow])?;
        if oh > 0 && ow > 0 {
            let xv = x.try_as_plain_ram()?;
            let input = xv.as_slice::<f32>()?;
            let mut ov = out.try_as_plain_ram_mut()?;
            let output = ov.as_slice_mut::<f32>()?;
            for (p, o) in output.chunks_exact_mut(oh * ow).enumerate().take(planes) {
                pool_plane(&input[p * h * w..(p + 1) * h * w], w, o);
            }
        }
        Ok(tvec!(out.into_tvalue()))
    }
}

impl TypedOp for MaxPool2x2 {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let s = &inputs[0].shape;
        ensure!(s.rank() == 4, "VeilMaxPool2x2 needs NCHW input");
        let half = |d: &TDim| -> TractResult<TDim> { Ok((d.to_usize()? / 2).into()) };
        Ok(tvec!(f32::datum_type().fact(tvec![s[0].clone(), s[1].clone(), half(&s[2])?, half(&s[3])?])))
    }

    as_op!();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_output_is_the_max_of_its_block_and_odd_edges_are_dropped() {
        // One 3x5 plane: values 0..15 with a spike in the first block.
        let mut v: Vec<f32> = (0..15).map(|x| x as f32).collect();
        v[1] = 99.0;
        let mut out = vec![0f32; 2];
        pool_plane(&v, 5, &mut out);
        assert_eq!(out, [99.0, 8.0]);
        let x = Tensor::from_shape(&[1, 1, 3, 5], &v).unwrap();
        let y = MaxPool2x2.eval_out_of_plan(tvec!(x.into_tvalue())).unwrap().unwrap();
        assert_eq!(y[0].shape(), &[1, 1, 1, 2]);
        assert_eq!(y[0].to_plain_array_view::<f32>().unwrap().as_slice().unwrap(), &[99.0, 8.0]);
    }
}
