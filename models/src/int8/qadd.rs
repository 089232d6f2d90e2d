//! `VeilQAdd`: tract op adding two int8 tensors of the same shape with requantization.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

use super::kernels::add;

#[derive(Debug, Clone, PartialEq)]
pub struct QAdd {
    /// (a_scale / y_scale, a_zero)
    pub a: (f32, i32),
    pub b: (f32, i32),
    pub y_zero: i32,
}

impl Eq for QAdd {}

impl std::hash::Hash for QAdd {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.a.1.hash(state);
        self.b.1.hash(state);
        self.y_zero.hash(state);
        self.a.0.to_bits().hash(state);
        self.b.0.to_bits().hash(state);
    }
}

impl Op for QAdd {
    fn name(&self) -> StaticName {
        "VeilQAdd".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!("a:{:?} b:{:?} y_zero:{}", self.a, self.b, self.y_zero)])
    }

    op_as_typed_op!();
}

impl EvalOp for QAdd {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let (a, b) = (&inputs[0], &inputs[1]);
        ensure!(a.shape() == b.shape(), "VeilQAdd needs equal shapes, got {:?} and {:?}", a.shape(), b.shape());
        let av = a.try_as_plain_ram()?;
        let bv = b.try_as_plain_ram()?;
        let mut out = Tensor::zero::<i8>(a.shape())?;
        {
            let mut o = out.try_as_plain_ram_mut()?;
            add(av.as_slice::<i8>()?, bv.as_slice::<i8>()?, self.a, self.b, self.y_zero, o.as_slice_mut::<i8>()?);
        }
        Ok(tvec!(out.into_tvalue()))
    }
}

impl TypedOp for QAdd {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs[0].shape == inputs[1].shape, "VeilQAdd needs equal shapes");
        Ok(tvec!(i8::datum_type().fact(inputs[0].shape.clone())))
    }

    as_op!();
}
