//! Time each op of an optimized CenterFace or YuNet plan (to see where int8 or fp32 time goes).
//! `cargo run -p veil-models --example profile_ops -- MODEL.onnx [W H]`; a model file named
//! `yunet*` gets YuNet's fused ops and one named `ppocr*` the text detector's, as the backends
//! build them.

use std::collections::BTreeMap;
use std::time::Instant;

use tract_onnx::prelude::*;

fn main() -> TractResult<()> {
    let args: Vec<String> = std::env::args().collect();
    let path = &args[1];
    let w: usize = args.get(2).map(|s| s.parse().unwrap()).unwrap_or(640);
    let h: usize = args.get(3).map(|s| s.parse().unwrap()).unwrap_or(480);
    let is_yunet = std::path::Path::new(path).file_name().is_some_and(|n| n.to_string_lossy().starts_with("yunet"));
    let is_text = std::path::Path::new(path).file_name().is_some_and(|n| n.to_string_lossy().starts_with("ppocr"));
    let model = if is_yunet {
        veil_models::YuNet::graph(&std::fs::read(path)?)?
    } else if is_text {
        veil_models::TextMapNetwork::graph(&std::fs::read(path)?)?
    } else {
        veil_models::onnx_with_int8_ops().model_for_path(path)?
    };
    let mut model = model.with_input_fact(0, f32::fact([1, 3, h, w]).into())?;
    for i in 0..model.output_outlets()?.len() {
        model.set_output_fact(i, InferenceFact::default())?;
    }
    let threads: usize = std::env::var("THREADS").ok().and_then(|t| t.parse().ok()).unwrap_or(1);
    let mut options = RunOptions::default();
    if threads > 1 {
        options.executor = Some(tract_linalg::multithread::Executor::multithread(threads));
    }
    let plan = model.into_optimized()?.into_runnable_with_options(&options)?;
    let input: TValue = Tensor::zero::<f32>(&[1, 3, h, w])?.into();
    let mut by_op: BTreeMap<String, (f64, usize)> = BTreeMap::new();
    let mut by_node: BTreeMap<String, f64> = BTreeMap::new();
    let runs: usize = std::env::var("RUNS").ok().and_then(|t| t.parse().ok()).unwrap_or(5);
    let mut total = Vec::new();
    for r in 0..=runs {
        let mut state = plan.spawn()?;
        let t = Instant::now();
        state.run_plan_with_eval(tvec!(input.clone()), |ctx, st, node, inputs| {
            let shape = inputs.first().map(|i| format!("{:?}", i.shape())).unwrap_or_default();
            let t = Instant::now();
            let out = tract_core::plan::eval(ctx, st, node, inputs);
            if r > 0 {
                let ms = t.elapsed().as_secs_f64() * 1000.0 / runs as f64;
                let e = by_op.entry(node.op.name().to_string()).or_default();
                e.0 += ms;
                e.1 += 1;
                *by_node
                    .entry(format!("{} {} {} {shape}", node.op.name(), node.name, node.op.info().unwrap_or_default().join(";")))
                    .or_default() += ms;
            }
            out
        })?;
        if r > 0 {
            total.push(t.elapsed().as_secs_f64() * 1000.0);
        }
    }
    total.sort_by(f64::total_cmp);
    println!("median total {:.1} ms", total[total.len() / 2]);
    let mut ops: Vec<_> = by_op.into_iter().collect();
    ops.sort_by(|a, b| b.1 .0.total_cmp(&a.1 .0));
    for (name, (ms, n)) in ops {
        println!("{ms:8.2} ms  {:4}  {name}", n / runs);
    }
    let mut nodes: Vec<_> = by_node.into_iter().collect();
    nodes.sort_by(|a, b| b.1.total_cmp(&a.1));
    println!("--- top nodes");
    let top: usize = std::env::var("TOP").ok().and_then(|t| t.parse().ok()).unwrap_or(25);
    for (name, ms) in nodes.iter().take(top) {
        println!("{ms:8.2} ms  {}", &name[..name.len().min(230)]);
    }
    Ok(())
}
