//! Time each op of an optimized CenterFace or YuNet plan (to see where int8 or fp32 time goes).
//! `cargo run -p veil-models --example profile_ops -- MODEL.onnx [W H]`; a model file named
//! `yunet*` gets YuNet's fused ops and one named `ppocr*` the text detector's, as the backends
//! build them. It also reports the live heap: its peak over a pass and the nodes it peaks in.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use tract_onnx::prelude::*;

/// The system allocator with a count of the bytes live now and the most live since the last reset.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every block comes from and goes back to `System`; the counters are only arithmetic.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc(layout);
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn mib(bytes: usize) -> f64 {
    bytes as f64 / 1048576.0
}

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
    let before_pass = LIVE.load(Ordering::Relaxed);
    println!("live heap with the plan and input: {:.1} MiB", mib(before_pass));
    // The nodes whose eval raised the peak: (peak within the node, node).
    let mut peaks: Vec<(usize, String)> = Vec::new();
    let mut by_op: BTreeMap<String, (f64, usize)> = BTreeMap::new();
    let mut by_node: BTreeMap<String, f64> = BTreeMap::new();
    let runs: usize = std::env::var("RUNS").ok().and_then(|t| t.parse().ok()).unwrap_or(5);
    let mut total = Vec::new();
    for r in 0..=runs {
        if r == 0 {
            PEAK.store(LIVE.load(Ordering::Relaxed), Ordering::Relaxed);
        }
        let mut state = plan.spawn()?;
        let t = Instant::now();
        state.run_plan_with_eval(tvec!(input.clone()), |ctx, st, node, inputs| {
            let shape = inputs.first().map(|i| format!("{:?}", i.shape())).unwrap_or_default();
            let peak_before = PEAK.load(Ordering::Relaxed);
            let t = Instant::now();
            let out = tract_core::plan::eval(ctx, st, node, inputs);
            let peak_after = PEAK.load(Ordering::Relaxed);
            if r == 0 && peak_after > peak_before {
                peaks.push((peak_after, format!("{} {} {shape}", node.op.name(), node.name)));
            }
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
    peaks.sort_by(|a, b| b.0.cmp(&a.0));
    println!("peak live heap in a pass: {:.1} MiB over the plan and input", mib(peaks.first().map_or(0, |p| p.0) - before_pass));
    for (bytes, node) in peaks.iter().take(5) {
        println!("  {:7.1} MiB  {}", mib(bytes - before_pass), &node[..node.len().min(160)]);
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
