//! `veil bench`: per-stage medians and p95 (decode, preprocess, inference, decode+NMS, mask,
//! encode) per frame size, precision and thread count, peak RSS, and a same-run onnxruntime
//! reference on the fp32 model so the ratios compare like with like.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use image::imageops::FilterType;
use serde::Serialize;
use veil_models::{DetectParams, DetectScale, Precision, Tiling};
use veil_redact::MaskStyle;

use crate::cli::BenchCmd;
use crate::photo::{decode, encode, DecodeLimits, OutputFormat};
use crate::redaction::Redactor;

#[derive(Debug, Serialize, Clone, Copy, Default)]
pub struct Stat {
    pub median_ms: f64,
    pub p95_ms: f64,
}

pub fn stat(mut v: Vec<f64>) -> Stat {
    if v.is_empty() {
        return Stat::default();
    }
    v.sort_by(f64::total_cmp);
    let at = |p: f64| v[((p * (v.len() - 1) as f64).round() as usize).min(v.len() - 1)];
    Stat { median_ms: at(0.5), p95_ms: at(0.95) }
}

#[derive(Debug, Serialize)]
pub struct Case {
    pub backend: String,
    pub size: String,
    pub precision: String,
    pub threads: usize,
    pub faces: usize,
    pub decode: Stat,
    pub preprocess: Stat,
    pub inference: Stat,
    pub postprocess: Stat,
    pub mask: Stat,
    pub encode: Stat,
    pub end_to_end: Stat,
    pub peak_rss_mib: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Reference {
    /// The face backend whose fp32 model onnxruntime ran.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub backend: String,
    pub size: String,
    pub threads: usize,
    pub median_ms: f64,
    pub p95_ms: f64,
}

/// Masking cost of one large region at a given blur strength (shows cost does not grow with it).
#[derive(Debug, Serialize)]
pub struct MaskCost {
    pub method: String,
    pub strength: f32,
    pub ns_per_pixel: f64,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub machine: String,
    pub cores: usize,
    pub iterations: usize,
    pub cases: Vec<Case>,
    pub onnxruntime: Option<String>,
    /// onnxruntime on each backend's fp32 model, at the same sizes and thread counts.
    pub reference: Vec<Reference>,
    pub mask_cost: Vec<MaskCost>,
}

fn parse_sizes(s: &str) -> anyhow::Result<Vec<(u32, u32)>> {
    s.split(',')
        .map(|p| {
            let (w, h) = p.trim().split_once('x').ok_or_else(|| anyhow::anyhow!("size '{p}' is not WxH"))?;
            Ok((w.parse()?, h.parse()?))
        })
        .collect()
}

/// Peak resident set size of this process so far, MiB (Linux; 0 elsewhere).
pub fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

/// The bench photo: `--image`, else the group photo fetched by `make models`, else a synthetic
/// frame (timings of dense convolutions do not depend on content; face count then is 0).
fn source_image(explicit: &Option<PathBuf>) -> anyhow::Result<image::RgbImage> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let candidates: Vec<PathBuf> = match explicit {
        Some(p) => vec![p.clone()],
        None => vec![root.join("models/cache/photos/group6.jpg"), root.join("tests/fixtures/cache/group6.jpg")],
    };
    for c in &candidates {
        if let Ok(bytes) = std::fs::read(c) {
            return Ok(decode(&bytes, &DecodeLimits::default())?.image);
        }
        if explicit.is_some() {
            anyhow::bail!("cannot read {}", c.display());
        }
    }
    Ok(image::RgbImage::from_fn(1280, 720, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, ((x ^ y) % 256) as u8])
    }))
}

pub fn run(cmd: BenchCmd) -> anyhow::Result<i32> {
    if cmd.http {
        return run_http_bench(&cmd);
    }
    if let Some(clip) = &cmd.clip {
        return run_clip_bench(&cmd, clip);
    }
    if let Some(video) = &cmd.video {
        let r = super::bench_video::run(video, cmd.deface.as_deref(), cmd.labels.as_deref())?;
        if cmd.json {
            println!("{}", serde_json::to_string_pretty(&r)?);
        } else {
            super::bench_video::print(&r);
        }
        return Ok(0);
    }
    if !cmd.flicker.is_empty() || cmd.pipeline {
        return run_sequence_benches(&cmd);
    }
    let cores = crate::commands::cores();
    if cmd.plates {
        let threads = if cores > 1 { vec![1, cores] } else { vec![1] };
        let r = super::bench_plates::run(
            &super::registry(&cmd.model_dir),
            &cmd.image,
            cmd.iterations.max(1),
            &threads,
            !cmd.no_reference,
        )?;
        if cmd.json {
            println!("{}", serde_json::to_string_pretty(&r)?);
        } else {
            super::bench_plates::print(&r);
        }
        return Ok(0);
    }
    let sizes = parse_sizes(&cmd.sizes)?;
    let precisions: Vec<Precision> = cmd.precisions.split(',').map(|p| p.trim().parse()).collect::<Result<_, _>>()?;
    let backends: Vec<String> = cmd.backend.as_deref().unwrap_or("yunet,centerface,persons").split(',').map(|b| b.trim().to_string()).collect();
    let mut thread_counts = vec![1];
    if cores > 1 {
        thread_counts.push(cores);
    }
    let source = source_image(&cmd.image)?;
    let registry = super::registry(&cmd.model_dir);
    let iterations = cmd.iterations.max(1);
    // Each size is one network input of that size, as onnxruntime's reference sees it.
    let params = DetectParams { scale: DetectScale::Native, tile: Tiling::Off, ..DetectParams::default() };
    let mut cases = Vec::new();
    for backend in &backends {
        for &precision in &precisions {
            if registry.store().artifact(backend, precision).is_none() {
                continue; // e.g. YuNet has no int8 model
            }
            for &threads in &thread_counts {
                let detector = registry.create(backend, precision, threads)?;
                let redactor = Redactor { detector, params, style: MaskStyle::default() };
                for &(w, h) in &sizes {
                    let case = time_case(&redactor, &source, (w, h), iterations, backend, precision, threads)?;
                    if !cmd.json {
                        eprintln!(
                            "  {} {} {} x{}: inference {:.1} ms",
                            case.backend, case.size, case.precision, threads, case.inference.median_ms
                        );
                    }
                    cases.push(case);
                }
            }
        }
    }
    let (onnxruntime, reference) = if cmd.no_reference {
        (None, Vec::new())
    } else {
        let mut version = None;
        let mut all = Vec::new();
        for backend in &backends {
            if backend == "persons" {
                // A fixed 416x416 network whatever the frame: timed once at that size, it is the
                // reference for every frame size.
                let side = format!("{0}x{0}", veil_models::PERSONS_SIDE);
                let (v, refs) = run_reference(&registry, backend, &side, iterations, &thread_counts)?;
                version = version.or(v);
                for r in refs {
                    all.extend(sizes.iter().map(|(w, h)| Reference { backend: backend.clone(), size: format!("{w}x{h}"), ..r.clone() }));
                }
                continue;
            }
            let (v, refs) = run_reference(&registry, backend, &cmd.sizes, iterations, &thread_counts)?;
            version = version.or(v);
            all.extend(refs.into_iter().map(|r| Reference { backend: backend.clone(), ..r }));
        }
        (version, all)
    };
    let mask_cost = mask_costs(iterations);
    let report = Report { machine: machine(), cores, iterations, cases, onnxruntime, reference, mask_cost };
    if cmd.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_tables(&report);
    }
    Ok(0)
}

/// Time `redactor` end to end (decode, detect, mask, encode) on `source` resized to `w` x `h`.
fn time_case(
    redactor: &Redactor,
    source: &image::RgbImage,
    (w, h): (u32, u32),
    iterations: usize,
    backend: &str,
    precision: Precision,
    threads: usize,
) -> anyhow::Result<Case> {
    let frame = image::imageops::resize(source, w, h, FilterType::Triangle);
    let jpeg = encode(&frame, OutputFormat::Jpeg { quality: 90 }, None, None)?;
    let mut s: [Vec<f64>; 7] = Default::default();
    let mut faces = 0;
    for i in 0..=iterations {
        let t0 = Instant::now();
        let mut img = decode(&jpeg, &DecodeLimits::default())?.image;
        let t1 = Instant::now();
        let report = redactor.redact_in_place(&mut img)?;
        let t2 = Instant::now();
        let out = encode(&img, OutputFormat::Jpeg { quality: 90 }, None, None)?;
        let t3 = Instant::now();
        std::hint::black_box(out);
        if i == 0 {
            continue; // warm-up: builds the plan for this shape
        }
        faces = report.detections.len();
        let ms = |a: Instant, b: Instant| (b - a).as_secs_f64() * 1000.0;
        s[0].push(ms(t0, t1));
        s[1].push(report.timings.detect.preprocess_ms);
        s[2].push(report.timings.detect.inference_ms);
        s[3].push(report.timings.detect.postprocess_ms);
        s[4].push(report.timings.mask_ms);
        s[5].push(ms(t2, t3));
        s[6].push(ms(t0, t3));
    }
    let [d, p, inf, post, m, e, all] = s;
    Ok(Case {
        backend: backend.to_string(),
        size: format!("{w}x{h}"),
        precision: precision.to_string(),
        threads,
        faces,
        decode: stat(d),
        preprocess: stat(p),
        inference: stat(inf),
        postprocess: stat(post),
        mask: stat(m),
        encode: stat(e),
        end_to_end: stat(all),
        peak_rss_mib: peak_rss_mib(),
    })
}

/// Median time to mask a 600x600 region of a 1280x720 frame, per masked pixel.
fn mask_costs(iterations: usize) -> Vec<MaskCost> {
    use veil_redact::{Method, Region, RgbFrame, Shape};
    let mut out = Vec::new();
    let cases: [(&str, Method, f32); 4] = [
        ("gaussian", Method::Gaussian { strength: 0.1 }, 0.1),
        ("gaussian", Method::Gaussian { strength: 0.5 }, 0.5),
        ("gaussian", Method::Gaussian { strength: 1.0 }, 1.0),
        ("pixelate", Method::Pixelate { block: None }, 0.0),
    ];
    for (name, method, strength) in cases {
        let style = MaskStyle { method, shape: Shape::Rect, padding: 0.0, feather: 0.0 };
        let mut times = Vec::new();
        for _ in 0..iterations.max(3) {
            let mut buf: Vec<u8> = (0..1280 * 720 * 3).map(|i| (i * 7 % 251) as u8).collect();
            let mut frame = RgbFrame::new(&mut buf, 1280, 720).expect("valid frame");
            let t = Instant::now();
            veil_redact::redact(&mut frame, &[Region::new(300.0, 60.0, 900.0, 660.0)], &style);
            times.push(t.elapsed().as_secs_f64() * 1e9 / (600.0 * 600.0));
        }
        out.push(MaskCost { method: name.into(), strength, ns_per_pixel: stat(times).median_ms });
    }
    out
}

pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!("{} {}, {}", std::env::consts::OS, std::env::consts::ARCH, cpu)
}

/// Run `models/tool/ort_reference.py` on `backend`'s fp32 model file.
pub fn run_reference(
    registry: &veil_models::Registry,
    backend: &str,
    sizes: &str,
    iterations: usize,
    threads: &[usize],
) -> anyhow::Result<(Option<String>, Vec<Reference>)> {
    let store = registry.store();
    let artifact =
        store.artifact(backend, Precision::Fp32).ok_or_else(|| anyhow::anyhow!("no fp32 {backend} model listed"))?;
    let model = store.locate(&artifact.file).ok_or_else(|| anyhow::anyhow!("fp32 model missing: run `make models`"))?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/tool/ort_reference.py");
    let threads: Vec<String> = threads.iter().map(|t| t.to_string()).collect();
    let out = Command::new("python3")
        .arg(&script)
        .arg(&model)
        .args(["--sizes", sizes, "--iterations", &iterations.to_string(), "--threads", &threads.join(",")])
        .output()
        .map_err(|e| {
            anyhow::anyhow!("cannot run python3 for the onnxruntime reference: {e} (use --no-reference to skip)")
        })?;
    if !out.status.success() {
        anyhow::bail!(
            "onnxruntime reference failed (pip install onnxruntime onnx numpy, or --no-reference): {}",
            String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or("")
        );
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let version = v["onnxruntime"].as_str().map(str::to_string);
    let refs = v["results"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|r| Reference {
                    backend: String::new(),
                    size: r["size"].as_str().unwrap_or("").to_string(),
                    threads: r["threads"].as_u64().unwrap_or(1) as usize,
                    median_ms: r["median_ms"].as_f64().unwrap_or(f64::NAN),
                    p95_ms: r["p95_ms"].as_f64().unwrap_or(f64::NAN),
                })
                .collect()
        })
        .unwrap_or_default();
    Ok((version, refs))
}

fn print_tables(r: &Report) {
    println!(
        "veil bench — {} ({} cores), {} iterations per case, medians (p95) in ms",
        r.machine, r.cores, r.iterations
    );
    println!(
        "{:<10} {:<10} {:<5} {:>3} {:>5} | {:>15} {:>15} {:>15} {:>13} {:>13} {:>15} | {:>15} {:>8}",
        "backend",
        "size",
        "prec",
        "thr",
        "faces",
        "decode",
        "preprocess",
        "inference",
        "decode+nms",
        "mask",
        "encode",
        "end-to-end",
        "rss MiB"
    );
    let f = |s: &Stat| format!("{:.1} ({:.1})", s.median_ms, s.p95_ms);
    for c in &r.cases {
        println!(
            "{:<10} {:<10} {:<5} {:>3} {:>5} | {:>15} {:>15} {:>15} {:>13} {:>13} {:>15} | {:>15} {:>8.0}",
            c.backend,
            c.size,
            c.precision,
            c.threads,
            c.faces,
            f(&c.decode),
            f(&c.preprocess),
            f(&c.inference),
            f(&c.postprocess),
            f(&c.mask),
            f(&c.encode),
            f(&c.end_to_end),
            c.peak_rss_mib
        );
    }
    if !r.reference.is_empty() {
        println!("\nonnxruntime {} fp32 reference, inference only:", r.onnxruntime.as_deref().unwrap_or("?"));
        for x in &r.reference {
            println!("  {:<10} {:<10} x{}: {:.1} ({:.1}) ms", x.backend, x.size, x.threads, x.median_ms, x.p95_ms);
        }
    }
    println!("\nmask cost, 600x600 region (ns per pixel, median):");
    for m in &r.mask_cost {
        println!("  {:<9} strength {:.1}: {:.1}", m.method, m.strength, m.ns_per_pixel);
    }
    println!("\nratios (inference medians; < 1 means the first is faster):");
    let find = |backend: &str, size: &str, prec: &str, thr: usize| {
        r.cases.iter().find(|c| c.backend == backend && c.size == size && c.precision == prec && c.threads == thr)
    };
    for c in &r.cases {
        let mut line = format!("  {:<10} {:<5} {:<10} x{}:", c.backend, c.precision, c.size, c.threads);
        if c.precision == "int8" {
            if let Some(fp) = find(&c.backend, &c.size, "fp32", c.threads) {
                line += &format!(" int8/fp32 {:.2}", c.inference.median_ms / fp.inference.median_ms);
            }
        }
        if let Some(o) = r.reference.iter().find(|x| x.backend == c.backend && x.size == c.size && x.threads == c.threads) {
            line += &format!("  /onnxruntime fp32 {:.2}", c.inference.median_ms / o.median_ms);
        }
        if c.backend != "centerface" {
            if let Some(cf) = find("centerface", &c.size, "int8", c.threads) {
                line += &format!("  /centerface int8 {:.2}", c.inference.median_ms / cf.inference.median_ms);
            }
        }
        if c.backend == "persons" {
            if let Some(y) = find("yunet", &c.size, "fp32", c.threads) {
                line += &format!("  /yunet fp32 {:.2}", c.inference.median_ms / y.inference.median_ms);
            }
        }
        line += &format!("  end-to-end/inference {:.2}", c.end_to_end.median_ms / c.inference.median_ms);
        println!("{line}");
    }
}

/// `--clip`: the whole pipeline over real frames at the defaults.
fn run_clip_bench(cmd: &BenchCmd, clip: &Path) -> anyhow::Result<i32> {
    let defaults = crate::config::DetectorConfig::default();
    let backend = cmd.backend.clone().unwrap_or(defaults.backend);
    let params = DetectParams {
        confidence: cmd.confidence,
        scale: cmd.scale,
        plate_band_rows: (cmd.plate_band_rows != 0).then_some(cmd.plate_band_rows),
        ..DetectParams::default()
    };
    params.validate()?;
    let r = super::bench_clip::run(super::bench_clip::ClipArgs {
        clip,
        backend: &backend,
        params,
        workers: if cmd.workers == 0 { super::cores() } else { cmd.workers },
        plates_every: cmd.plates_every,
        model_dir: &cmd.model_dir,
        iterations: cmd.iterations.max(1),
        reference: !cmd.no_reference,
        deface: cmd.deface.as_deref(),
    })?;
    if cmd.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        super::bench_clip::print(&r);
    }
    Ok(0)
}

/// `--flicker` and `--pipeline`: whole-pipeline measurements with one int8 detector.
fn run_http_bench(cmd: &BenchCmd) -> anyhow::Result<i32> {
    let photo = source_image(&cmd.image)?;
    let r = super::bench_http::run(&photo, cmd.clients, cmd.seconds)?;
    if cmd.json {
        let mut v = serde_json::to_value(&r)?;
        v["machine"] = machine().into();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(0);
    }
    println!("POST /api/v1/detect, {}, {}:", r.image, machine());
    println!("{:<8} {:>9} {:>8} {:>8} {:>8} {:>22}", "clients", "requests", "req/s", "p50", "p95", "daemon RSS early/end/peak");
    for l in [&r.reference, &r.loaded] {
        println!(
            "{:<8} {:>9} {:>8.2} {:>6.0}ms {:>6.0}ms {:>10.1}/{:.1}/{:.1} MB",
            l.clients, l.requests, l.requests_per_s, l.p50_ms, l.p95_ms, l.rss_mb_early, l.rss_mb_end, l.rss_mb_peak
        );
    }
    println!(
        "throughput {} clients / 1 client: {:.2}x; p95 at {} clients / p50 of 1 client: {:.2}x",
        r.loaded.clients, r.throughput_ratio, r.loaded.clients, r.latency_ratio
    );
    Ok(0)
}

fn run_sequence_benches(cmd: &BenchCmd) -> anyhow::Result<i32> {
    let cores = crate::commands::cores();
    let threads = if cmd.threads == 0 { cores } else { cmd.threads };
    let precision = match cmd.precisions.as_str() {
        "fp32,int8" => Precision::Auto,
        p => p.parse()?,
    };
    let backend = cmd.backend.clone().unwrap_or_else(|| "yunet".into());
    let detector = super::registry(&cmd.model_dir).create(&backend, precision, threads)?;
    let params = DetectParams { confidence: cmd.confidence, scale: cmd.scale, ..DetectParams::default() };
    params.validate()?;
    let mut out = serde_json::Map::new();
    out.insert("machine".into(), machine().into());
    out.insert("cores".into(), cores.into());
    out.insert("threads".into(), threads.into());
    let precision = detector.info().precision;
    out.insert("backend".into(), backend.clone().into());
    out.insert("precision".into(), precision.to_string().into());
    if !cmd.flicker.is_empty() {
        let tracker = crate::pipeline::tracker::TrackerConfig::default();
        let mut seqs = Vec::new();
        for dir in &cmd.flicker {
            let r = super::bench_flicker::measure_sequence(dir, detector.as_ref(), &params, &tracker)?;
            if !cmd.json {
                println!(
                    "{}: {} frames, {} detections; face-frames missed between detections: {}; unmasked without tracker {}, with tracker {}",
                    r.sequence, r.report.frames, r.detections, r.report.missed_face_frames,
                    r.report.unmasked_without_tracker, r.report.unmasked_with_tracker
                );
            }
            seqs.push(serde_json::to_value(r)?);
        }
        out.insert("flicker".into(), seqs.into());
    }
    if cmd.pipeline {
        let sizes = if cmd.sizes == "640x480,1280x720,1920x1080" { "640x480,1280x720".to_string() } else { cmd.sizes.clone() };
        let photo = source_image(&cmd.image)?;
        let workers = if cmd.workers == 0 { cores } else { cmd.workers };
        let runs = super::bench_pipeline::run(detector.clone(), params, &photo, &parse_sizes(&sizes)?, cmd.seconds, workers)?;
        if !cmd.json {
            println!("pipeline, {} cores, {workers} detection workers, {threads} inference threads, {backend} {precision}:", cores);
            println!("{:<10} {:<13} {:>6} {:>6} {:>7} {:>8} {:>9} {:>9} {:>9} {:>6}", "size", "mode", "in", "out", "dropped", "fps out", "e2e p50", "e2e p95", "detect", "eff.");
            for r in &runs {
                let p = |x: &Option<crate::pipeline::metrics::Percentiles>, f: fn(&crate::pipeline::metrics::Percentiles) -> f64| x.as_ref().map(f).unwrap_or(0.0);
                println!(
                    "{:<10} {:<13} {:>6} {:>6} {:>7} {:>8.1} {:>8.0}ms {:>8.0}ms {:>7.0}ms {:>6.2}",
                    r.size, r.mode, r.frames_in, r.frames_out, r.dropped, r.fps_out,
                    p(&r.end_to_end_ms, |q| q.p50), p(&r.end_to_end_ms, |q| q.p95), r.reference_detect_ms, r.efficiency
                );
            }
        }
        out.insert("pipeline".into(), serde_json::to_value(runs)?);
    }
    if cmd.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    }
    Ok(0)
}
