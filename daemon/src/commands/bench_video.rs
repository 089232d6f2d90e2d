//! `veil bench --video FILE`: `veil redact` on a video clip against deface (1.5.0, onnxruntime on
//! the CPU) on the same clip in the same run, both timed as a user runs them (process start to
//! finished file): fps of each and the ratio, and, when the clip has face labels
//! (`NAME.faces.txt` beside it: `FRAME<TAB>x1<TAB>y1<TAB>x2<TAB>y2`, FRAME a file name whose
//! number is the frame index), how many labelled faces each left masked, judged on the decoded
//! outputs against the decoded original (pixels changed, fine detail gone).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde::Serialize;
use veil_camera::{Frame, FrameSource, GstConfig, GstInput, GstSource};

/// One tool's pass over the clip.
#[derive(Debug, Serialize)]
pub struct VideoRun {
    pub tool: String,
    pub seconds: f64,
    pub frames: u64,
    pub fps: f64,
    /// Labelled faces masked in the output, of those labelled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub faces_masked: Option<(u64, u64)>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recall: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct VideoReport {
    pub machine: String,
    pub clip: String,
    pub frames: u64,
    pub width: u32,
    pub height: u32,
    pub runs: Vec<VideoRun>,
    /// veil's fps over deface's.
    pub veil_vs_deface: f64,
}

/// Labelled face boxes by frame index.
type Labels = BTreeMap<u64, Vec<[f32; 4]>>;

fn read_labels(path: &Path) -> anyhow::Result<Labels> {
    let mut labels = Labels::new();
    for (n, line) in std::fs::read_to_string(path)?.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let parts: Vec<&str> = line.split('\t').collect();
        let bad = || anyhow::anyhow!("{}:{}: expected FRAME x1 y1 x2 y2", path.display(), n + 1);
        anyhow::ensure!(parts.len() == 5, bad());
        let digits: String = parts[0].chars().filter(|c| c.is_ascii_digit()).collect();
        let frame: u64 = digits.parse().map_err(|_| bad())?;
        let mut b = [0f32; 4];
        for (v, p) in b.iter_mut().zip(&parts[1..]) {
            *v = p.trim().parse().map_err(|_| bad())?;
        }
        labels.entry(frame).or_default().push(b);
    }
    Ok(labels)
}

/// The fine detail (green minus its 3x3 mean) inside `b`, row by row.
fn detail(f: &Frame, b: [f32; 4]) -> Vec<f64> {
    let (w, h) = (f.width as i64, f.height as i64);
    let g = |x: i64, y: i64| f.rgb[((y.clamp(0, h - 1) * w + x.clamp(0, w - 1)) * 3 + 1) as usize] as f64;
    let (x1, y1) = ((b[0].max(0.0) as i64).min(w), (b[1].max(0.0) as i64).min(h));
    let (x2, y2) = ((b[2].max(0.0) as i64).min(w), (b[3].max(0.0) as i64).min(h));
    let mut out = Vec::new();
    for y in y1..y2 {
        for x in x1..x2 {
            let around: f64 = (-1..=1).flat_map(|dy| (-1..=1).map(move |dx| g(x + dx, y + dy))).sum();
            out.push(g(x, y) - around / 9.0);
        }
    }
    out
}

/// Whether the face in `b` is masked in `after`: its pixels changed by more than 8 levels on
/// average and at most 0.15 of the original's fine detail correlates with what is there now.
fn masked(before: &Frame, after: &Frame, b: [f32; 4]) -> bool {
    let (a, c) = (detail(before, b), detail(after, b));
    if a.is_empty() || a.len() != c.len() {
        return false;
    }
    let (w, h) = (before.width as usize, before.height as usize);
    let (x1, y1) = ((b[0].max(0.0) as usize).min(w), (b[1].max(0.0) as usize).min(h));
    let (x2, y2) = ((b[2].max(0.0) as usize).min(w), (b[3].max(0.0) as usize).min(h));
    let (mut diff, mut n) = (0u64, 0u64);
    for y in y1..y2 {
        let row = (y * w + x1) * 3..(y * w + x2) * 3;
        diff += before.rgb[row.clone()].iter().zip(&after.rgb[row]).map(|(p, q)| p.abs_diff(*q) as u64).sum::<u64>();
        n += ((x2 - x1) * 3) as u64;
    }
    if (diff as f64 / n.max(1) as f64) <= 8.0 {
        return false;
    }
    let len = a.len() as f64;
    let (ma, mc) = (a.iter().sum::<f64>() / len, c.iter().sum::<f64>() / len);
    let cov: f64 = a.iter().zip(&c).map(|(x, y)| (x - ma) * (y - mc)).sum();
    let va: f64 = a.iter().map(|x| (x - ma).powi(2)).sum();
    let vc: f64 = c.iter().map(|y| (y - mc).powi(2)).sum();
    va < 1e-9 || vc < 1e-9 || cov / (va * vc).sqrt() < 0.15
}

fn reader(path: &Path) -> anyhow::Result<GstSource> {
    let config = GstConfig {
        input: GstInput::File { path: path.to_path_buf(), realtime: false },
        width: 0,
        height: 0,
        fps: 30,
        looped: false,
        frame_timeout: Duration::from_secs(60),
    };
    GstSource::open(&config).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// What reading an output beside the original found.
struct Judged {
    original_frames: u64,
    frames: u64,
    faces_masked: Option<(u64, u64)>,
}

/// Frames of `output` and of the original, and how many labelled faces the output masked.
fn judge(original: &Path, output: &Path, labels: Option<&Labels>) -> anyhow::Result<Judged> {
    let (mut a, mut b) = (reader(original)?, reader(output)?);
    let (mut frames, mut good, mut total) = (0u64, 0u64, 0u64);
    loop {
        let (fa, fb) = (a.next_frame()?, b.next_frame()?);
        let (more_a, more_b) = (fa.is_some(), fb.is_some());
        let (Some(fa), Some(fb)) = (fa, fb) else {
            // One may be longer: count what is left of each.
            let (mut original_frames, mut frames) = (frames + u64::from(more_a), frames + u64::from(more_b));
            while a.next_frame()?.is_some() {
                original_frames += 1;
            }
            while b.next_frame()?.is_some() {
                frames += 1;
            }
            return Ok(Judged { original_frames, frames, faces_masked: labels.map(|_| (good, total)) });
        };
        anyhow::ensure!((fa.width, fa.height) == (fb.width, fb.height), "{} changed the frame size", output.display());
        if let Some(boxes) = labels.and_then(|l| l.get(&frames)) {
            for bx in boxes {
                total += 1;
                good += u64::from(masked(&fa, &fb, *bx));
            }
        }
        frames += 1;
    }
}

/// Time `command`, which must write `output`.
fn timed(mut command: Command, output: &Path) -> anyhow::Result<f64> {
    let t = Instant::now();
    let out = command.output().map_err(|e| anyhow::anyhow!("cannot run {:?}: {e}", command.get_program()))?;
    let seconds = t.elapsed().as_secs_f64();
    let said = String::from_utf8_lossy(&out.stderr);
    anyhow::ensure!(out.status.success() && output.is_file(), "{:?} failed: {}", command.get_program(), said.lines().last().unwrap_or(""));
    Ok(seconds)
}

/// deface from `--deface`, else from PATH.
fn find_deface(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(p) = given {
        return Ok(p.to_path_buf());
    }
    std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|d| d.join("deface")).find(|p| p.is_file()))
        .ok_or_else(|| {
            anyhow::anyhow!("--video compares with deface: install it (`make bench` puts deface 1.5.0 in target/deface-venv) or name it with --deface")
        })
}

pub fn run(clip: &Path, deface: Option<&Path>, labels: Option<&Path>) -> anyhow::Result<VideoReport> {
    anyhow::ensure!(clip.is_file(), "{}: no such file", clip.display());
    let deface = find_deface(deface)?;
    let labels_path = labels.map(Path::to_path_buf).or_else(|| {
        let p = clip.with_extension("faces.txt");
        p.is_file().then_some(p)
    });
    let labels = labels_path.as_deref().map(read_labels).transpose()?;
    let info = crate::video::probe::probe(clip, Duration::from_secs(30)).map_err(|e| anyhow::anyhow!("{}: {e}", clip.display()))?;
    let work = tempfile::tempdir()?;
    let ext = clip.extension().and_then(|e| e.to_str()).unwrap_or("mp4");

    let veil_out = work.path().join(format!("veil.{ext}"));
    let mut veil = Command::new(std::env::current_exe()?);
    veil.arg("redact").arg(clip).arg("-o").arg(&veil_out);
    eprintln!("veil redact {} ...", clip.display());
    let veil_seconds = timed(veil, &veil_out)?;

    let deface_out = work.path().join(format!("deface.{ext}"));
    let mut peer = Command::new(&deface);
    peer.arg(clip).arg("-o").arg(&deface_out).args(["--execution-provider", "CPUExecutionProvider"]);
    eprintln!("deface {} ...", clip.display());
    let deface_seconds = timed(peer, &deface_out)?;

    let mut runs = Vec::new();
    let mut original_frames = 0;
    for (tool, out, seconds) in [("veil", &veil_out, veil_seconds), ("deface 1.5.0", &deface_out, deface_seconds)] {
        let Judged { original_frames: n, frames, faces_masked } = judge(clip, out, labels.as_ref())?;
        original_frames = n;
        runs.push(VideoRun {
            tool: tool.into(),
            seconds,
            frames,
            fps: frames as f64 / seconds,
            faces_masked,
            recall: faces_masked.map(|(g, t)| g as f64 / t.max(1) as f64),
        });
    }
    let veil_vs_deface = runs[0].fps / runs[1].fps;
    Ok(VideoReport {
        machine: super::bench::machine(),
        clip: clip.display().to_string(),
        frames: original_frames,
        width: info.width,
        height: info.height,
        runs,
        veil_vs_deface,
    })
}

pub fn print(r: &VideoReport) {
    println!("{}", r.machine);
    println!("{}: {}x{}, {} frames", r.clip, r.width, r.height, r.frames);
    for run in &r.runs {
        let recall = match (run.faces_masked, run.recall) {
            (Some((g, t)), Some(rec)) => format!(", labelled faces masked {g}/{t} ({:.1} %)", rec * 100.0),
            _ => String::new(),
        };
        println!("{:>13}: {:.1} s, {} frames out, {:.2} fps{recall}", run.tool, run.seconds, run.frames, run.fps);
    }
    println!("veil / deface: {:.2}x the frame rate", r.veil_vs_deface);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(w: u32, h: u32, f: impl Fn(u32, u32) -> u8) -> Frame {
        let mut rgb = Vec::new();
        for y in 0..h {
            for x in 0..w {
                rgb.extend_from_slice(&[f(x, y), f(x, y), f(x, y)]);
            }
        }
        Frame { rgb, width: w, height: h, sequence: 0, timestamp: std::time::SystemTime::now() }
    }

    #[test]
    fn a_face_counts_as_masked_only_when_it_changed_and_lost_its_detail() {
        let texture = |x: u32, y: u32| ((x * 37 + y * 91) % 200) as u8;
        let before = frame(64, 64, texture);
        let filled = frame(64, 64, |x, y| if (16..48).contains(&x) && (16..48).contains(&y) { 128 } else { texture(x, y) });
        let brighter = frame(64, 64, |x, y| texture(x, y) + 30);
        let b = [16.0, 16.0, 48.0, 48.0];
        assert!(masked(&before, &filled, b));
        assert!(!masked(&before, &before, b), "unchanged");
        assert!(!masked(&before, &brighter, b), "changed but every detail kept");
    }

    #[test]
    fn labels_are_read_by_frame_number() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.faces.txt");
        std::fs::write(&p, "0000.jpg\t1\t2\t3\t4\n0002.jpg\t5\t6\t7\t8\n0002.jpg\t1\t1\t2\t2\n").unwrap();
        let l = read_labels(&p).unwrap();
        assert_eq!(l[&0], vec![[1.0, 2.0, 3.0, 4.0]]);
        assert_eq!(l[&2].len(), 2);
        std::fs::write(&p, "0000.jpg\t1\t2\n").unwrap();
        assert!(read_labels(&p).is_err());
    }
}
