//! Model experiment for the plate backend (issue 7): load the PP-OCRv4 text detector
//! (`python3 models/tool/pinned.py text-det DIR`) in tract at a fixed input size, list the ops
//! of the optimized graph, time inference, and write the probability map as raw f32 so it can be
//! compared with onnxruntime's.
//!
//! `text_detector_probe MODEL.onnx PHOTO LONG_SIDE [OUT.f32]`

use std::time::Instant;

use tract_onnx::prelude::*;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [model, photo, long_side, ..] = args.as_slice() else {
        return Err("usage: text_detector_probe MODEL.onnx PHOTO LONG_SIDE [OUT.f32]".into());
    };
    let long: u32 = long_side.parse()?;
    let img = image::open(photo)?.into_rgb8();
    let (w, h) = img.dimensions();
    let scale = long as f32 / w.max(h) as f32;
    let round32 = |v: f32| ((v / 32.0).round().max(1.0) * 32.0) as u32;
    let (nw, nh) = (round32(w as f32 * scale), round32(h as f32 * scale));
    let resized = image::imageops::resize(&img, nw, nh, image::imageops::FilterType::Triangle);
    // BGR planes, (x / 255 - 0.5) / 0.5, as the detector was trained.
    let mut input = Tensor::zero::<f32>(&[1, 3, nh as usize, nw as usize])?;
    {
        let mut view = input.to_plain_array_view_mut::<f32>()?;
        for (x, y, p) in resized.enumerate_pixels() {
            for (c, channel) in [2usize, 1, 0].into_iter().enumerate() {
                view[[0, c, y as usize, x as usize]] = (p.0[channel] as f32 / 255.0 - 0.5) / 0.5;
            }
        }
    }
    let t = Instant::now();
    let plan = tract_onnx::onnx()
        .model_for_path(model)?
        .with_input_fact(0, f32::fact([1, 3, nh as usize, nw as usize]).into())?
        .into_optimized()?;
    let mut ops: Vec<String> = plan.nodes().iter().map(|n| n.op().name().to_string()).collect();
    ops.sort();
    ops.dedup();
    eprintln!("optimized in {:.2} s; ops: {}", t.elapsed().as_secs_f64(), ops.join(", "));
    let runnable = plan.into_runnable()?;
    let input: TValue = input.into();
    let mut times = Vec::new();
    let mut out = None;
    for _ in 0..5 {
        let t = Instant::now();
        out = Some(runnable.run(tvec!(input.clone()))?);
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    let out = out.ok_or("no run")?;
    let map = out[0].to_plain_array_view::<f32>()?;
    let above = map.iter().filter(|&&v| v > 0.3).count();
    println!(
        "{}x{} -> {nw}x{nh}: median {:.1} ms (min {:.1}); output {:?}, {} pixels above 0.3",
        w,
        h,
        times[2],
        times[0],
        map.shape(),
        above
    );
    if let Some(path) = args.get(3) {
        let bytes: Vec<u8> = map.iter().flat_map(|v| v.to_le_bytes()).collect();
        std::fs::write(path, bytes)?;
    }
    Ok(())
}
