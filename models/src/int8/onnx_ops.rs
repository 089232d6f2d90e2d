//! Parsing `QLinearConv` and `QLinearAdd` ONNX nodes: depthwise QLinearConv and QLinearAdd go to
//! veil's int8 ops; every other QLinearConv is handed to tract's own quantized convolution.

use tract_hir::internal::*;
use tract_hir::ops::cnn::{Conv, PaddingSpec};
use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;

use super::depthwise::QDepthwise;
use super::kernels::DepthwiseSpec;
use super::qadd::QAdd;

/// tract's ONNX front end with veil's int8 operators registered.
pub fn onnx_with_int8_ops() -> tract_onnx::Onnx {
    let mut onnx = tract_onnx::onnx();
    onnx.op_register.insert("QLinearConv", qlinear_conv);
    onnx.op_register.insert("QLinearAdd", qlinear_add);
    onnx
}

fn ints(node: &NodeProto, name: &str) -> TractResult<Option<Vec<usize>>> {
    Ok(node.get_attr_opt_vec::<isize>(name)?.map(|v| v.into_iter().map(|x| x.max(0) as usize).collect()))
}

fn qlinear_conv(_ctx: &ParsingContext, node: &NodeProto) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    if let Some(pad) = node.get_attr_opt::<&str>("auto_pad")? {
        ensure!(pad == "NOTSET", "QLinearConv auto_pad={pad} is not supported");
    }
    let strides = ints(node, "strides")?;
    let dilations = ints(node, "dilations")?;
    let pads = ints(node, "pads")?;
    let kernel_shape = ints(node, "kernel_shape")?;
    let group: usize = node.get_attr_opt::<i64>("group")?.unwrap_or(1).max(1) as usize;
    if group > 1 {
        ensure!(dilations.as_ref().is_none_or(|d| d.iter().all(|&x| x == 1)), "dilated depthwise is not supported");
        ensure!(node.input.len() >= 8, "QLinearConv needs 8 or 9 inputs");
        let pads = pads.unwrap_or_else(|| vec![0; 4]);
        ensure!(pads.len() == 4, "QLinearConv pads must have 4 values");
        let strides = strides.unwrap_or_else(|| vec![1, 1]);
        let op = DepthwiseExpansion {
            group,
            stride: (strides[0], strides[1]),
            pads: (pads[0], pads[1], pads[2], pads[3]),
            has_bias: node.input.len() == 9,
        };
        return Ok((expand(op), vec![]));
    }
    let mut op = Conv::default();
    if let Some(p) = pads {
        let n = p.len() / 2;
        op = op.padding(PaddingSpec::Explicit(p[..n].into(), p[n..].into()));
    }
    if let Some(k) = kernel_shape {
        op = op.kernel_shape(k.into());
    }
    if let Some(d) = dilations {
        op = op.dilations(d.into());
    }
    if let Some(s) = strides {
        op = op.strides(s.into());
    }
    op.x_scale_input = Some(1);
    op.x_zero_point_input = Some(2);
    op.k_input = Some(3);
    op.k_scale_input = Some(4);
    op.k_zero_point_input = Some(5);
    op.y_scale_input = Some(6);
    op.y_zero_point_input = Some(7);
    if node.input.len() == 9 {
        op.bias_input = Some(8);
    }
    Ok((expand(op), vec![]))
}

fn qlinear_add(_ctx: &ParsingContext, node: &NodeProto) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    ensure!(node.input.len() == 8, "QLinearAdd needs 8 inputs");
    Ok((expand(AddExpansion), vec![]))
}

/// A constant scalar (or per-channel vector) input of a quantized node.
fn konst(model: &TypedModel, outlet: OutletId, what: &str) -> TractResult<Arc<Tensor>> {
    model.outlet_fact(outlet)?.konst.clone().with_context(|| format!("{what} must be a constant"))
}

fn scalar_f32(model: &TypedModel, outlet: OutletId, what: &str) -> TractResult<f32> {
    let t = konst(model, outlet, what)?;
    let t = t.cast_to::<f32>()?;
    let v = t.to_plain_array_view::<f32>()?;
    ensure!(v.len() == 1, "{what} must be a scalar");
    v.iter().next().copied().with_context(|| format!("{what} is empty"))
}

fn scalar_i32(model: &TypedModel, outlet: OutletId, what: &str) -> TractResult<i32> {
    let t = konst(model, outlet, what)?;
    let t = t.cast_to::<i32>()?;
    let v = t.to_plain_array_view::<i32>()?;
    ensure!(v.len() == 1, "{what} must be a scalar");
    v.iter().next().copied().with_context(|| format!("{what} is empty"))
}

#[derive(Debug, Clone)]
struct DepthwiseExpansion {
    group: usize,
    stride: (usize, usize),
    pads: (usize, usize, usize, usize),
    has_bias: bool,
}

impl Expansion for DepthwiseExpansion {
    fn name(&self) -> StaticName {
        "VeilQDepthwiseExpansion".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, if self.has_bias { 9 } else { 8 })?;
        check_output_arity(outputs, 1)?;
        s.equals(&outputs[0].datum_type, &inputs[0].datum_type)?;
        s.equals(&outputs[0].rank, 4)?;
        s.given_2(&inputs[0].shape, &inputs[3].shape, move |s, x, k| {
            let (h, w) = (x[2].to_usize()?, x[3].to_usize()?);
            let (kh, kw) = (k[2].to_usize()?, k[3].to_usize()?);
            let ph = h + self.pads.0 + self.pads.2;
            let pw = w + self.pads.1 + self.pads.3;
            ensure!(ph >= kh && pw >= kw, "input smaller than the kernel");
            let out: TVec<TDim> = tvec![
                x[0].clone(),
                x[1].clone(),
                ((ph - kh) / self.stride.0 + 1).into(),
                ((pw - kw) / self.stride.1 + 1).into()
            ];
            s.equals(&outputs[0].shape, ShapeFactoid::from(out))
        })
    }

    fn wire(&self, prefix: &str, model: &mut TypedModel, inputs: &[OutletId]) -> TractResult<TVec<OutletId>> {
        let x_scale = scalar_f32(model, inputs[1], "x_scale")?;
        let x_zero = scalar_i32(model, inputs[2], "x_zero_point")?;
        let w = konst(model, inputs[3], "weights")?;
        ensure!(w.datum_type().unquantized() == i8::datum_type(), "depthwise weights must be int8");
        let wshape = w.shape().to_vec();
        ensure!(
            wshape.len() == 4 && wshape[1] == 1 && wshape[0] == self.group,
            "depthwise weights must be [C, 1, kh, kw]"
        );
        let channels = wshape[0];
        let w_scale = konst(model, inputs[4], "w_scale")?.cast_to::<f32>()?.into_owned();
        let w_scale: Vec<f32> = w_scale.to_plain_array_view::<f32>()?.iter().copied().collect();
        ensure!(w_scale.len() == 1 || w_scale.len() == channels, "w_scale must be a scalar or one per channel");
        let w_zero = konst(model, inputs[5], "w_zero_point")?.cast_to::<i32>()?.into_owned();
        ensure!(
            w_zero.to_plain_array_view::<i32>()?.iter().all(|&z| z == 0),
            "depthwise weights must be symmetric (zero point 0)"
        );
        let y_scale = scalar_f32(model, inputs[6], "y_scale")?;
        let y_zero = scalar_i32(model, inputs[7], "y_zero_point")?;
        let bias: Vec<i32> = if self.has_bias {
            konst(model, inputs[8], "bias")?.cast_to::<i32>()?.to_plain_array_view::<i32>()?.iter().copied().collect()
        } else {
            vec![0; channels]
        };
        ensure!(bias.len() == channels, "bias must have one value per channel");
        let weights: Vec<i8> = w.cast_to::<i8>()?.to_plain_array_view::<i8>()?.iter().copied().collect();
        let multiplier =
            (0..channels).map(|c| x_scale * w_scale[if w_scale.len() == 1 { 0 } else { c }] / y_scale).collect();
        let spec = DepthwiseSpec {
            channels,
            kh: wshape[2],
            kw: wshape[3],
            stride: self.stride,
            pads: self.pads,
            x_zero,
            y_zero,
            weights,
            bias,
            multiplier,
        };
        model.wire_node(prefix, QDepthwise { spec }, &[inputs[0]])
    }
}

#[derive(Debug, Clone)]
struct AddExpansion;

impl Expansion for AddExpansion {
    fn name(&self) -> StaticName {
        "VeilQAddExpansion".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 8)?;
        check_output_arity(outputs, 1)?;
        s.equals(&outputs[0].datum_type, &inputs[0].datum_type)?;
        s.equals(&inputs[0].shape, &inputs[3].shape)?;
        s.equals(&outputs[0].shape, &inputs[0].shape)
    }

    fn wire(&self, prefix: &str, model: &mut TypedModel, inputs: &[OutletId]) -> TractResult<TVec<OutletId>> {
        let a_scale = scalar_f32(model, inputs[1], "a_scale")?;
        let a_zero = scalar_i32(model, inputs[2], "a_zero_point")?;
        let b_scale = scalar_f32(model, inputs[4], "b_scale")?;
        let b_zero = scalar_i32(model, inputs[5], "b_zero_point")?;
        let y_scale = scalar_f32(model, inputs[6], "y_scale")?;
        let y_zero = scalar_i32(model, inputs[7], "y_zero_point")?;
        let op = QAdd { a: (a_scale / y_scale, a_zero), b: (b_scale / y_scale, b_zero), y_zero };
        model.wire_node(prefix, op, &[inputs[0], inputs[3]])
    }
}
