//! `VeilQDepthwise`: tract op running an int8 depthwise convolution with per-channel weights.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

use tract_linalg::multithread::{current_tract_executor, Executor};

use super::kernels::{depthwise_channels, DepthwiseSpec};

#[derive(Debug, Clone, PartialEq)]
pub struct QDepthwise {
    pub spec: DepthwiseSpec,
}

impl Eq for QDepthwise {}

impl std::hash::Hash for QDepthwise {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.spec.channels.hash(state);
        self.spec.weights.hash(state);
    }
}

impl QDepthwise {
    fn out_shape(&self, shape: &[usize]) -> TractResult<[usize; 4]> {
        ensure!(shape.len() == 4 && shape[0] == 1, "VeilQDepthwise takes [1, C, H, W], got {shape:?}");
        ensure!(
            shape[1] == self.spec.channels,
            "VeilQDepthwise expects {} channels, got {}",
            self.spec.channels,
            shape[1]
        );
        let (ho, wo) = self.spec.output_hw(shape[2], shape[3]).context("input smaller than the kernel")?;
        Ok([1, shape[1], ho, wo])
    }
}

impl Op for QDepthwise {
    fn name(&self) -> StaticName {
        "VeilQDepthwise".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        let s = &self.spec;
        Ok(vec![format!(
            "c:{} k:{}x{} stride:{:?} pads:{:?} int8 per-channel",
            s.channels, s.kh, s.kw, s.stride, s.pads
        )])
    }

    op_as_typed_op!();
}

impl EvalOp for QDepthwise {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = &inputs[0];
        ensure!(input.datum_type().unquantized() == i8::datum_type(), "VeilQDepthwise input must be int8");
        let shape = self.out_shape(input.shape())?;
        let (h, w) = (input.shape()[2], input.shape()[3]);
        let view = input.try_as_plain_ram()?;
        let src: &[i8] = view.as_slice::<i8>()?;
        let mut out = Tensor::zero::<i8>(&shape)?;
        {
            let mut dst = out.try_as_plain_ram_mut()?;
            let dst = dst.as_slice_mut::<i8>()?;
            let (ho, wo) = (shape[2], shape[3]);
            let pool = super::current_pool().or(match current_tract_executor() {
                Executor::MultiThread(pool) => Some(pool),
                _ => None,
            });
            match pool {
                // A thread pool is available: split the channels between its threads.
                Some(pool) if self.spec.channels > 1 => {
                    use rayon::prelude::*;
                    let per = self.spec.channels.div_ceil(pool.current_num_threads().max(1));
                    pool.install(|| {
                        dst.par_chunks_mut(per * ho * wo).zip(src.par_chunks(per * h * w)).enumerate().for_each(
                            |(k, (o, i))| {
                                let start = k * per;
                                let end = (start + per).min(self.spec.channels);
                                depthwise_channels(&self.spec, start..end, i, h, w, o);
                            },
                        )
                    });
                }
                _ => depthwise_channels(&self.spec, 0..self.spec.channels, src, h, w, dst),
            }
        }
        Ok(tvec!(out.into_tvalue()))
    }
}

impl TypedOp for QDepthwise {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let shape = inputs[0].shape.as_concrete().context("VeilQDepthwise needs a concrete input shape")?;
        let out = self.out_shape(shape)?;
        Ok(tvec!(i8::datum_type().fact(out)))
    }

    as_op!();
}
