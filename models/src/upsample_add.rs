//! A nearest-neighbour 2x upsampling added to a map twice its size, as one veil op written in
//! place: the text detector's top-down path (`lateral + Resize(coarser, x2)`) made a 22.6 MB
//! upsampled copy at 1280x736 and a 22.6 MB sum beside the lateral map, at the top of its pass.

use tract_hir::internal::*;
use tract_onnx::model::ParsingContext;
use tract_onnx::pb::{ModelProto, NodeProto, TensorProto};

/// The op type [`fuse`] writes into the graph.
const OP: &str = "VeilUpsampleAdd";

/// Parse the nodes [`fuse`] rewrites.
pub fn register(onnx: &mut tract_onnx::Onnx) {
    onnx.op_register.insert(OP, parse);
}

/// The values of a small constant f32 tensor (scales), from its typed or raw data.
fn floats(t: &TensorProto) -> Vec<f32> {
    if !t.float_data.is_empty() {
        return t.float_data.clone();
    }
    t.raw_data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
}

/// Rewrite every `Add(a, Resize(x))` whose `Resize` doubles height and width by nearest
/// neighbour (asymmetric coordinates, rounding down: output pixel (y, x) is input (y/2, x/2))
/// and feeds nothing but that `Add`, as the veil op on `(a, x)`. Returns how many it rewrote.
pub fn fuse(model: &mut ModelProto) -> usize {
    let Some(graph) = model.graph.as_mut() else { return 0 };
    let constants = crate::dw_stride2::constants(graph);
    let readers = |name: &str, nodes: &[NodeProto]| nodes.iter().filter(|n| n.input.iter().any(|i| i == name)).count();
    let outputs: Vec<String> = graph.output.iter().map(|o| o.name.clone()).collect();
    let mut doubled: Vec<(usize, String, String)> = Vec::new();
    for (ix, node) in graph.node.iter().enumerate() {
        let attr = |name: &str| node.get_attr_opt::<String>(name).ok().flatten();
        let nearest = node.op_type == "Resize"
            && node.output.len() == 1
            && node.input.len() == 3
            && attr("mode").as_deref() == Some("nearest")
            && attr("coordinate_transformation_mode").as_deref() == Some("asymmetric")
            && attr("nearest_mode").as_deref() == Some("floor")
            && constants.get(&node.input[2]).is_some_and(|t| floats(t) == [1.0, 1.0, 2.0, 2.0])
            && !outputs.contains(&node.output[0])
            && readers(&node.output[0], &graph.node) == 1;
        if nearest {
            doubled.push((ix, node.input[0].clone(), node.output[0].clone()));
        }
    }
    let mut removed = Vec::new();
    for (ix, coarse, upsampled) in doubled {
        let Some(add) = graph.node.iter_mut().find(|n| n.op_type == "Add" && n.input.len() == 2 && n.input.contains(&upsampled)) else {
            continue;
        };
        let lateral = if add.input[0] == upsampled { add.input[1].clone() } else { add.input[0].clone() };
        if lateral == upsampled {
            continue;
        }
        add.op_type = OP.into();
        add.input = vec![lateral, coarse];
        add.attribute.clear();
        removed.push(ix);
    }
    removed.sort_unstable();
    for ix in removed.iter().rev() {
        graph.node.remove(*ix);
    }
    removed.len()
}

fn parse(_ctx: &ParsingContext, node: &NodeProto) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    ensure!(node.input.len() == 2 && node.output.len() == 1, "{OP} takes the map and the coarser map");
    Ok((expand(UpsampleAddExpansion), vec![]))
}

#[derive(Debug, Clone, Hash)]
struct UpsampleAddExpansion;

impl Expansion for UpsampleAddExpansion {
    fn name(&self) -> StaticName {
        "VeilUpsampleAddExpansion".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 2)?;
        check_output_arity(outputs, 1)?;
        s.equals(&outputs[0].datum_type, &inputs[0].datum_type)?;
        s.equals(&inputs[1].datum_type, &inputs[0].datum_type)?;
        s.equals(&inputs[0].rank, 4)?;
        s.equals(&inputs[1].rank, 4)?;
        s.equals(&outputs[0].shape, &inputs[0].shape)
    }

    fn wire(&self, prefix: &str, model: &mut TypedModel, inputs: &[OutletId]) -> TractResult<TVec<OutletId>> {
        model.wire_node(prefix, UpsampleAdd, &[inputs[0], inputs[1]])
    }
}

/// `a + up2(x)`: `a` is [N, C, H, W], `x` is [N, C, H/2, W/2].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UpsampleAdd;

impl Op for UpsampleAdd {
    fn name(&self) -> StaticName {
        OP.into()
    }

    op_as_typed_op!();
}

impl EvalOp for UpsampleAdd {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let (a, x) = args_2!(inputs);
        let (sa, sx) = (a.shape().to_vec(), x.shape().to_vec());
        ensure!(
            sa.len() == 4 && sx.len() == 4 && sa[..2] == sx[..2] && sa[2] == 2 * sx[2] && sa[3] == 2 * sx[3],
            "{OP}: a map {sa:?} is not twice {sx:?}"
        );
        // The map is written in place: the plan hands over its last reader's only reference.
        let mut out = a.into_tensor();
        {
            let xv = x.try_as_plain_ram()?;
            let coarse = xv.as_slice::<f32>()?;
            let mut ov = out.try_as_plain_ram_mut()?;
            add_upsampled(ov.as_slice_mut::<f32>()?, coarse, sx[0] * sx[1], sx[2], sx[3]);
        }
        Ok(tvec!(out.into_tvalue()))
    }
}

impl TypedOp for UpsampleAdd {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs[0].rank() == 4 && inputs[1].rank() == 4, "{OP} needs NCHW inputs");
        Ok(tvec!(inputs[0].datum_type.fact(inputs[0].shape.clone())))
    }

    as_op!();
}

/// Adds plane by plane `coarse` ([planes, h, w]) upsampled 2x by nearest neighbour into `map`
/// ([planes, 2h, 2w]).
fn add_upsampled(map: &mut [f32], coarse: &[f32], planes: usize, h: usize, w: usize) {
    for p in 0..planes {
        for y in 0..2 * h {
            let src = &coarse[(p * h + y / 2) * w..][..w];
            let dst = &mut map[(p * 2 * h + y) * 2 * w..][..2 * w];
            for (pair, &v) in dst.chunks_exact_mut(2).zip(src) {
                pair[0] += v;
                pair[1] += v;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_value_is_its_own_plus_the_coarse_pixel_above_it() {
        let (planes, h, w) = (2, 3, 5);
        let coarse: Vec<f32> = (0..planes * h * w).map(|i| i as f32 * 100.0).collect();
        let mut map: Vec<f32> = (0..planes * 4 * h * w).map(|i| i as f32).collect();
        let before = map.clone();
        add_upsampled(&mut map, &coarse, planes, h, w);
        for p in 0..planes {
            for y in 0..2 * h {
                for x in 0..2 * w {
                    let i = (p * 2 * h + y) * 2 * w + x;
                    assert_eq!(map[i], before[i] + coarse[(p * h + y / 2) * w + x / 2], "plane {p} ({x}, {y})");
                }
            }
        }
    }

    #[test]
    fn a_map_not_twice_the_coarse_one_is_an_error() {
        let a = Tensor::zero::<f32>(&[1, 2, 6, 8]).unwrap().into_tvalue();
        let x = Tensor::zero::<f32>(&[1, 2, 3, 3]).unwrap().into_tvalue();
        assert!(UpsampleAdd.eval_out_of_plan(tvec!(a, x)).is_err());
    }

    #[test]
    fn the_text_detector_with_the_op_gives_what_it_gives_without() {
        // The three steps of the top-down path (the head's upsamplings feed a Concat).
        crate::text_map::rewrite_tests::text_detector_agrees(register, fuse, 3, 5);
    }
}
