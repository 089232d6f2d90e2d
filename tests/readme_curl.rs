//! Every `curl` line of README.md's "REST API" section, run as written (host and key swapped)
//! against a live `veil serve` with a camera: each must exit 0 with a 2xx answer, and every image
//! the examples download must have the uploaded photo's faces hidden (and the video example's
//! download must be a video).

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::daemon::Daemon;
use common::*;
use serde_json::Value;

/// The `curl` lines of the README's REST API section, in order.
fn readme_curl_lines() -> Vec<String> {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let start = readme.find("\n## REST API").expect("README has a REST API section");
    let end = readme[start + 1..].find("\n## ").map(|i| i + start + 1).unwrap_or(readme.len());
    let mut lines = Vec::new();
    let mut in_sh = false;
    for line in readme[start..end].lines() {
        if line.starts_with("```") {
            in_sh = line == "```sh";
            continue;
        }
        if in_sh && line.contains("curl ") {
            lines.push(line.to_string());
        }
    }
    lines
}

/// Wait until `path` (a status route) reports a finished job.
fn wait_done(d: &Daemon, path: &str) {
    let c = reqwest::blocking::Client::new();
    let t = Instant::now();
    loop {
        let v: Value = c.get(d.url(path)).header("X-API-Key", &d.key).send().unwrap().json().unwrap();
        let s = v["status"].as_str().unwrap_or("");
        if ["completed", "failed", "ReadyToDownload", "Failed"].contains(&s) {
            assert!(s == "completed" || s == "ReadyToDownload", "{path}: {v}");
            return;
        }
        assert!(t.elapsed() < Duration::from_secs(120), "{path} never finished: {v}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn every_curl_example_in_the_readme_works_as_written() {
    let lines = readme_curl_lines();
    assert!(lines.len() >= 20, "expected the README's curl examples, found {}", lines.len());
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    for name in ["headshot.jpg", "photo.jpg", "photo1.jpg", "photo2.jpg", "photo3.jpg"] {
        std::fs::copy(photo("group6.jpg"), work.join(name)).unwrap();
    }
    std::fs::copy(root().join("tests/fixtures/cache/sequences/carphone.mp4"), work.join("clip.mp4")).unwrap();
    // A camera that keeps producing frames, for the event stream example.
    let cfg = tmp.path().join("veil.toml");
    std::fs::write(
        &cfg,
        format!("[camera]\nsource = {:?}\nloop = true\nfps = 2\ncategories = [\"faces\"]\n", root().join("tests/fixtures/cache/astronaut.png")),
    )
    .unwrap();
    let d = Daemon::start(&tmp.path().join("state"), &["--config", cfg.to_str().unwrap()]);
    let out = veil_ok(&["keys", "create", "--name", "ops", "--admin", "--state-dir", d.state_dir.to_str().unwrap()]);
    let admin_key = String::from_utf8(out.stdout).unwrap().lines().last().unwrap().to_string();
    // The admin API's examples sign in as the admin user they make.
    let admin_password = "readme admin password";
    let made = Command::new("bash")
        .args(["-c", &format!("echo \"$ADMIN_PW\" | {} admin add-user ops --state-dir {}", env!("CARGO_BIN_EXE_veil"), d.state_dir.display())])
        .env("ADMIN_PW", admin_password)
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let mut ids: Vec<(&str, String)> = Vec::new();
    for line in &lines {
        let line = line.replace("http://localhost:8080", &d.base);
        // Results are fetched only once their job is done, as a client polling status would.
        for (var, status) in [
            ("JOB_ID", "/v1/status/"),
            ("MEDIA_ID", "/api/v1/media/"),
            ("MASKIT_JOB_ID", "/api/v1/masking/image-status?jobId="),
        ] {
            if line.contains(&format!("${var}")) && line.contains("download") {
                let id = &ids.iter().find(|(k, _)| *k == var).unwrap_or_else(|| panic!("no {var} yet")).1;
                wait_done(&d, &format!("{status}{id}"));
            }
        }
        let streaming = line.contains("curl -sN");
        let script = if streaming {
            format!("timeout 5 {line}")
        } else {
            format!("{line} -w '\\nHTTP_STATUS:%{{http_code}}'")
        };
        let mut cmd = Command::new("bash");
        cmd.args(["-c", &script]).current_dir(&work).env("VEIL_KEY", &d.key).env("VEIL_ADMIN_KEY", &admin_key).env("ADMIN_PW", admin_password);
        for (k, v) in &ids {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("bash runs");
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        if streaming {
            assert!(stdout.contains("event: frame"), "{line}: no events: {stdout}");
            continue;
        }
        assert!(out.status.success(), "{line}: exit {:?}: {}", out.status, String::from_utf8_lossy(&out.stderr));
        let (body, status) = stdout.rsplit_once("HTTP_STATUS:").unwrap_or_else(|| panic!("{line}: {stdout}"));
        let status: u16 = status.trim().parse().unwrap();
        assert!((200..300).contains(&status), "{line}: HTTP {status}: {body}");
        if let Ok(v) = serde_json::from_str::<Value>(body.trim()) {
            for (key, var) in [("job_id", "JOB_ID"), ("media_id", "MEDIA_ID"), ("jobId", "MASKIT_JOB_ID")] {
                if let Some(id) = v[key].as_str() {
                    ids.retain(|(k, _)| *k != var);
                    ids.push((var, id.to_string()));
                }
            }
        }
    }
    // The downloads landed where the examples put them.
    let video = std::fs::read(work.join("redacted.mp4")).expect("the video example's download");
    assert!(video.len() > 10_000 && &video[4..8] == b"ftyp", "an MP4 came back");
    for file in ["protected.png", "masked.png", "redacted.jpg", "masked-photo.jpg", "headers.txt"] {
        let p = work.join(file);
        assert!(p.is_file(), "{file} missing");
        if file != "headers.txt" {
            // Every upload of the examples is the group photo: each result has its faces hidden.
            privacy::assert_faces_hidden(&p, "group6.gt");
        }
    }
    let headers = std::fs::read_to_string(work.join("headers.txt")).unwrap().to_ascii_lowercase();
    assert!(headers.contains("x-face-count: 6"), "{headers}");
}
