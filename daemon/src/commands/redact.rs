//! `veil redact IN... -o OUT`: redact photos, videos and directory trees of both, carry on past
//! bad files, list them and exit non-zero if any failed. Output is written atomically and only
//! after detection succeeded on the whole file (fail closed).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use crate::cli::RedactCmd;
use crate::inputs::{expand, InputFile};
use crate::photo::{decode, encode, exif_without_gps, DecodeLimits, OutputFormat};
use crate::redaction::Redactor;
use crate::video::{self, Container, EncodeOptions};

/// How one file went.
struct Done {
    faces: usize,
}

pub fn run(cmd: RedactCmd) -> anyhow::Result<i32> {
    let style = cmd.mask.style().map_err(anyhow::Error::msg)?;
    let forced_format = match &cmd.format {
        Some(f) => Some(
            OutputFormat::from_name(f, cmd.quality)
                .ok_or_else(|| anyhow::anyhow!("unknown format '{f}' (expected jpeg, png or webp)"))?,
        ),
        None => None,
    };
    let (files, missing) = expand(&cmd.inputs);
    let single_file_target = cmd.inputs.len() == 1
        && cmd.inputs[0].is_file()
        && (OutputFormat::from_path(&cmd.output, cmd.quality).is_some() || Container::for_path(&cmd.output).is_some())
        && !cmd.output.is_dir();
    // A single output file names its own format unless --format says otherwise.
    let forced_format = if single_file_target {
        forced_format.or(OutputFormat::from_path(&cmd.output, cmd.quality))
    } else {
        forced_format
    };
    let threads = cmd.detector.thread_count();
    // Many files: one inference thread per worker; a single file: all threads on its inference.
    let workers = threads.min(files.len()).max(1);
    let inference_threads = if workers > 1 { 1 } else { threads };
    let redactor = Redactor {
        detector: super::build_detector(&cmd.detector, inference_threads)?,
        params: cmd.detector.params(),
        style,
    };

    let bars = MultiProgress::new();
    let bar = bars.add(ProgressBar::new(files.len() as u64));
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} {elapsed_precise} eta {eta} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let failures: Mutex<Vec<(PathBuf, String)>> =
        Mutex::new(missing.into_iter().map(|p| (p, "no such file or directory".into())).collect());
    let faces = AtomicUsize::new(0);
    let failed_files = AtomicUsize::new(0);
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(file) = files.get(i) else { break };
                let target = if single_file_target { cmd.output.clone() } else { cmd.output.join(&file.relative) };
                let done = if video::is_video(&file.path) {
                    process_video(file, &target, &cmd, &redactor, &bars)
                } else {
                    process(file, &target, forced_format, &cmd, &redactor)
                };
                match done {
                    Ok(done) => {
                        faces.fetch_add(done.faces, Ordering::Relaxed);
                    }
                    Err(e) => {
                        failed_files.fetch_add(1, Ordering::Relaxed);
                        bar.suspend(|| eprintln!("veil: {}: {e}", file.path.display()));
                        failures.lock().unwrap_or_else(|p| p.into_inner()).push((file.path.clone(), e));
                    }
                }
                bar.inc(1);
            });
        }
    });
    bar.finish_and_clear();
    let failures = failures.into_inner().unwrap_or_else(|p| p.into_inner());
    let ok = files.len() - failed_files.load(Ordering::Relaxed);
    eprintln!(
        "veil: redacted {ok} of {} file(s), {} detection(s) masked{}",
        files.len(),
        faces.load(Ordering::Relaxed),
        if failures.is_empty() { String::new() } else { format!("; {} failed:", failures.len()) }
    );
    for (path, reason) in &failures {
        eprintln!("  {}: {reason}", path.display());
    }
    Ok(if failures.is_empty() && !files.is_empty() { 0 } else { 1 })
}

fn process(
    file: &InputFile,
    target: &Path,
    forced: Option<OutputFormat>,
    cmd: &RedactCmd,
    redactor: &Redactor,
) -> Result<Done, String> {
    let bytes = std::fs::read(&file.path).map_err(|e| format!("cannot read: {e}"))?;
    let mut photo = decode(&bytes, &DecodeLimits::default()).map_err(|e| e.to_string())?;
    drop(bytes);
    let format = forced
        .or_else(|| OutputFormat::from_path(&file.path, cmd.quality))
        .unwrap_or(OutputFormat::Jpeg { quality: cmd.quality });
    let target = if OutputFormat::from_path(target, cmd.quality) == Some(format) {
        target.to_path_buf()
    } else {
        target.with_extension(format.extension())
    };
    let report =
        redactor.redact_in_place(&mut photo.image).map_err(|e| format!("detection failed, nothing written: {e}"))?;
    let exif = if cmd.keep_metadata { photo.exif.as_deref().and_then(exif_without_gps) } else { None };
    let encoded = encode(&photo.image, format, exif, photo.icc_profile.take()).map_err(|e| e.to_string())?;
    super::write_atomic(&target, &encoded).map_err(|e| format!("cannot write {}: {e}", target.display()))?;
    Ok(Done { faces: report.detections.len() })
}

/// One video: decoded, every frame detected, tracked and masked, encoded at the source's size,
/// rate and frame count into the target's container (its own if the target names none).
fn process_video(
    file: &InputFile,
    target: &Path,
    cmd: &RedactCmd,
    redactor: &Redactor,
    bars: &MultiProgress,
) -> Result<Done, String> {
    let target = if Container::for_path(target).is_some() { target.to_path_buf() } else { target.with_extension("mp4") };
    let container = Container::for_path(&target).ok_or("no container for the output")?;
    let opts = EncodeOptions {
        container,
        quality: cmd.video_quality,
        encoder: cmd.encoder.clone(),
        audio: cmd.audio,
        keep_metadata: cmd.keep_metadata,
    };
    let deadlines = video::Deadlines {
        frame: std::time::Duration::from_secs(cmd.frame_timeout.max(1)),
        wedge_detection_at: wedge_fault_from_env(),
        ..Default::default()
    };
    let name = file.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let bar = bars.add(ProgressBar::new(0));
    bar.set_style(
        ProgressStyle::with_template("{prefix} {bar:30} {pos}/{len} frames {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_prefix(name);
    let progress = |done: u64, total: Option<u64>| {
        bar.set_length(total.unwrap_or(done).max(done));
        bar.set_position(done);
    };
    let tracker = crate::pipeline::tracker::TrackerConfig::default();
    let result = video::redact_file(&file.path, &target, redactor, &tracker, &opts, deadlines, &progress);
    bar.finish_and_clear();
    bars.remove(&bar);
    let report = result.map_err(|e| format!("{e}; nothing written"))?;
    bars.suspend(|| {
        eprintln!(
            "veil: {}: {} frames in {:.1} s ({:.1} fps), {} masked",
            file.path.display(),
            report.frames,
            report.seconds,
            report.frames as f64 / report.seconds.max(1e-9),
            report.masked_frames
        )
    });
    Ok(Done { faces: report.detections as usize })
}

/// Fault injection for the fail-closed video test: `VEIL_FAULT_STALL_AT_FRAME=N` wedges a video's
/// detection from frame N on, as a hung detector would. Never set it outside tests.
fn wedge_fault_from_env() -> Option<u64> {
    let at = std::env::var("VEIL_FAULT_STALL_AT_FRAME").ok()?.parse().ok()?;
    eprintln!("veil: fault injection: video detection wedges at frame {at} (VEIL_FAULT_STALL_AT_FRAME)");
    Some(at)
}
