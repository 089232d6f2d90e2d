//! Shared helpers of the end-to-end tests: fixture photos, ground truth, running the binary.

#![allow(dead_code)]

pub mod daemon;
pub mod media;
pub mod mosquitto;
pub mod privacy;
pub mod service_manager;
pub mod webhook_receiver;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A fetched fixture photo; fails loudly when `make fixtures` has not run.
pub fn photo(name: &str) -> PathBuf {
    let p = root().join("tests/fixtures/cache").join(name);
    assert!(p.is_file(), "{} is missing: run `make fixtures` (make test does)", p.display());
    p
}

/// Ground-truth boxes `[x1, y1, x2, y2]` from `tests/fixtures/NAME.gt`.
pub fn ground_truth(name: &str) -> Vec<[f32; 4]> {
    std::fs::read_to_string(root().join("tests/fixtures").join(name))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let v: Vec<f32> = l.split_whitespace().map(|x| x.parse().unwrap()).collect();
            [v[0], v[1], v[2], v[3]]
        })
        .collect()
}

/// `dir/frames/` holding copies of the named fixture photos: a camera replay source.
pub fn frames_dir(dir: &Path, photos: &[&str]) -> PathBuf {
    let frames = dir.join("frames");
    std::fs::create_dir_all(&frames).unwrap();
    for name in photos {
        std::fs::copy(photo(name), frames.join(name)).unwrap();
    }
    frames
}

/// `dir/veil.toml` with a `[camera]` replaying `frames` plus `camera_keys` (TOML lines).
pub fn camera_config(dir: &Path, frames: &Path, camera_keys: &str) -> PathBuf {
    let config = dir.join("veil.toml");
    std::fs::write(&config, format!("[camera]\nsource = {:?}\n{camera_keys}", frames.to_str().unwrap())).unwrap();
    config
}

/// The `.jpg` files of `dir`, sorted, once there are at least `n` of them: sinks write after the
/// pipeline counts a frame out, so a test waits for the files rather than racing the spool.
pub fn spooled_jpegs(dir: &Path, n: usize) -> Vec<PathBuf> {
    let started = std::time::Instant::now();
    loop {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|d| d.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "jpg")).collect())
            .unwrap_or_default();
        files.sort();
        if files.len() >= n || started.elapsed() > Duration::from_secs(30) {
            return files;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Call `f` every 100 ms until it returns something; fail the test after `limit`.
pub fn poll_for<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let started = std::time::Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(started.elapsed() < limit, "{what} did not happen within {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn iou(a: [f32; 4], b: [f32; 4]) -> f32 {
    let iw = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let ih = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = iw * ih;
    inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)
}

pub fn veil(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_veil")).args(args).output().expect("veil runs")
}

pub fn veil_ok(args: &[&str]) -> Output {
    let out = veil(args);
    assert!(out.status.success(), "veil {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    out
}

/// Boxes from one `veil detect` JSON object.
pub fn boxes(v: &serde_json::Value) -> Vec<[f32; 4]> {
    v["detections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let b = &d["bbox"];
            [
                b["x1"].as_f64().unwrap() as f32,
                b["y1"].as_f64().unwrap() as f32,
                b["x2"].as_f64().unwrap() as f32,
                b["y2"].as_f64().unwrap() as f32,
            ]
        })
        .collect()
}

pub fn detect_json(path: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["detect", path.to_str().unwrap(), "--threads", "1"];
    args.extend_from_slice(extra);
    let out = veil_ok(&args);
    serde_json::from_slice(&out.stdout).expect("detect prints JSON")
}

/// The `category` of every detection in a job's JSON (`detections[]`), in order.
pub fn categories_found(media: &serde_json::Value) -> Vec<String> {
    media["detections"].as_array().unwrap().iter().map(|d| d["category"].as_str().unwrap().to_string()).collect()
}

pub fn load_rgb(path: &Path) -> image::RgbImage {
    image::open(path).unwrap().into_rgb8()
}

/// Open a raw upload to `path` with `key` that announces `len` bytes and sends 10 of them every
/// half second (far under any rate limit); returns what the server finally answers.
pub fn trickle_upload(addr: String, path: &'static str, key: String, len: usize) -> std::thread::JoinHandle<(u16, String)> {
    use std::io::{Read, Write};
    std::thread::spawn(move || {
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
        write!(
            s,
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nX-API-Key: {key}\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: {len}\r\n\r\n--b\r\nContent-Disposition: form-data; name=\"image\"; filename=\"x.jpg\"\r\n\r\n"
        )
        .unwrap();
        let mut answer = Vec::new();
        let started = std::time::Instant::now();
        let mut writable = true;
        while started.elapsed() < Duration::from_secs(60) {
            // Once the server stops reading, what it answered is still to be read.
            writable = writable && s.write_all(&[0u8; 10]).is_ok();
            let mut buf = [0u8; 4096];
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    answer.extend_from_slice(&buf[..n]);
                    if answer.windows(4).any(|w| w == b"\r\n\r\n") && !answer.ends_with(b"\r\n\r\n") {
                        break;
                    }
                }
                Err(_) => {}
            }
        }
        let text = String::from_utf8_lossy(&answer).to_string();
        let status = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        (status, text)
    })
}
