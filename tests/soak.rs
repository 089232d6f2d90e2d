//! A bounded soak of `veil serve` (about two minutes): queued and synchronous uploads from
//! several keys' clients, slow uploads, broken files, and a `kill -9` and restart in the middle.
//! No 5xx but the documented 503 (busy, with Retry-After), no job lost, no original left behind,
//! every result redacted, and the resident set bounded and given back once idle.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::daemon::Daemon;
use common::*;
use reqwest::blocking::multipart::{Form, Part};
use reqwest::blocking::Client;
use serde_json::Value;

fn client() -> Client {
    Client::builder().timeout(Duration::from_secs(120)).build().unwrap()
}

/// GET `path` with `key`, waiting out 429s (the checks below make hundreds of requests on one key,
/// past its per-minute rate); anything else but 200 fails the test with the body.
fn get_ok(c: &Client, d: &Daemon, path: &str) -> reqwest::blocking::Response {
    let started = Instant::now();
    loop {
        let resp = c.get(d.url(path)).bearer_auth(&d.key).send().unwrap();
        let status = resp.status().as_u16();
        if status == 429 && started.elapsed() < Duration::from_secs(180) {
            let wait: u64 = resp.headers().get("retry-after").and_then(|v| v.to_str().ok()?.parse().ok()).unwrap_or(1);
            std::thread::sleep(Duration::from_secs(wait.clamp(1, 60)));
            continue;
        }
        assert_eq!(status, 200, "GET {path}: {}", resp.text().unwrap_or_default());
        return resp;
    }
}

fn rss_mib(pid: u32, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: f64 = status.lines().find(|l| l.starts_with(field)).unwrap().split_whitespace().nth(1).unwrap().parse().unwrap();
    kb / 1024.0
}

/// What the load saw: statuses outside the documented set, and the queued jobs' ids.
#[derive(Default)]
struct Seen {
    wrong: Vec<String>,
    jobs: Vec<String>,
    answers: usize,
}

/// Run the mixed load against `d` until `stop`; transport errors count only while `alive`.
fn load(d: &Daemon, other_key: &str, stop: &AtomicBool, alive: &AtomicBool, seen: &Mutex<Seen>) {
    let photos: Vec<(Vec<u8>, &str, &str)> = vec![
        (std::fs::read(photo("astronaut.png")).unwrap(), "a.png", "image/png"),
        (std::fs::read(photo("group6.jpg")).unwrap(), "g.jpg", "image/jpeg"),
    ];
    let broken = {
        let g = std::fs::read(photo("group6.jpg")).unwrap();
        g[..g.len() / 2].to_vec()
    };
    let note = |what: &str, r: reqwest::Result<reqwest::blocking::Response>, ok: &[u16]| -> Option<Value> {
        match r {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let retry = resp.headers().contains_key("retry-after");
                let body = resp.bytes().unwrap_or_default();
                let mut s = seen.lock().unwrap();
                s.answers += 1;
                let documented = ok.contains(&status) || (status == 503 && retry) || status == 429;
                if !documented {
                    s.wrong.push(format!("{what}: {status} {}", String::from_utf8_lossy(&body[..body.len().min(300)])));
                }
                serde_json::from_slice(&body).ok()
            }
            Err(e) => {
                if alive.load(Ordering::SeqCst) && !stop.load(Ordering::SeqCst) {
                    seen.lock().unwrap().wrong.push(format!("{what}: {e}"));
                }
                None
            }
        }
    };
    std::thread::scope(|s| {
        // Queued jobs (PiiBlur) from the daemon's key.
        s.spawn(|| {
            let c = client();
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                let (bytes, name, mime) = &photos[i % 2];
                i += 1;
                let form = Form::new()
                    .part("file", Part::bytes(bytes.clone()).file_name(*name).mime_str(mime).unwrap())
                    .text("pii_categories[]", "heads");
                let r = c.post(d.url("/api/v1/media/redact")).bearer_auth(&d.key).multipart(form).send();
                if let Some(v) = note("queued upload", r, &[201]) {
                    if let Some(id) = v["media_id"].as_str() {
                        seen.lock().unwrap().jobs.push(id.to_string());
                    }
                }
                std::thread::sleep(Duration::from_millis(150));
            }
        });
        // Synchronous masks from another key, and broken files among them.
        s.spawn(|| {
            let c = client();
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                i += 1;
                let (bytes, name, mime, ok): (Vec<u8>, &str, &str, &[u16]) =
                    if i % 4 == 0 { (broken.clone(), "cut.jpg", "image/jpeg", &[400]) } else { (photos[1].0.clone(), "g.jpg", "image/jpeg", &[200]) };
                let form = Form::new().part("image", Part::bytes(bytes).file_name(name).mime_str(mime).unwrap());
                note("sync mask", c.post(d.url("/api/v1/mask")).header("X-API-Key", other_key).multipart(form).send(), ok);
            }
        });
        // Slow uploads from the daemon's key, cut off with 408.
        s.spawn(|| {
            let addr = d.url("").trim_start_matches("http://").trim_end_matches('/').to_string();
            while !stop.load(Ordering::SeqCst) {
                let (status, text) = trickle_upload(addr.clone(), "/api/v1/detect", d.key.clone(), 100_000).join().unwrap();
                let mut s = seen.lock().unwrap();
                if alive.load(Ordering::SeqCst) && ![408, 503].contains(&status) {
                    s.wrong.push(format!("slow upload: {status} {text}"));
                }
            }
        });
        // The operator's view stays answered throughout.
        s.spawn(|| {
            let c = client();
            while !stop.load(Ordering::SeqCst) {
                note("health", c.get(d.url("/health")).send(), &[200]);
                std::thread::sleep(Duration::from_millis(500));
            }
        });
    });
}

#[test]
fn mixed_load_with_a_kill_9_loses_nothing_and_stays_within_bounds() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let other = common::daemon::create_key(&state, "laptop-2");
    let cfg = tmp.path().join("veil.toml");
    std::fs::write(&cfg, "[api]\nmax_concurrent_requests = 16\nrequest_timeout_s = 100\n[jobs]\nworkers = 2\n").unwrap();
    let args = ["--config", cfg.to_str().unwrap()];
    let seen = Mutex::new(Seen::default());

    // Phase 1: load, and a kill -9 after 25 s while it goes on.
    let mut d = Daemon::start(&state, &args);
    let key = d.key.clone();
    let (stop, alive) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(true)));
    let pid = d.child.id();
    std::thread::scope(|s| {
        s.spawn(|| load(&d, &other, &stop, &alive, &seen));
        std::thread::sleep(Duration::from_secs(25));
        alive.store(false, Ordering::SeqCst);
        common::daemon::signal(pid, "KILL");
        stop.store(true, Ordering::SeqCst);
    });
    d.kill9();
    drop(d);

    // Phase 2: restarted on the same state, load again for 25 s.
    let d = Daemon::start_with_key(&state, key, &args);
    let (stop, alive) = (AtomicBool::new(false), AtomicBool::new(true));
    std::thread::scope(|s| {
        s.spawn(|| load(&d, &other, &stop, &alive, &seen));
        std::thread::sleep(Duration::from_secs(25));
        stop.store(true, Ordering::SeqCst);
    });
    let seen = seen.into_inner().unwrap();
    assert!(seen.wrong.is_empty(), "undocumented answers ({} of {}): {:#?}", seen.wrong.len(), seen.answers, seen.wrong);
    assert!(seen.jobs.len() >= 20, "only {} jobs were queued", seen.jobs.len());

    // Every queued job ends completed, its result redacted; nothing of it stays on disk.
    let c = client();
    let started = Instant::now();
    let (mut pending, mut finals) = (seen.jobs.clone(), Vec::<Value>::new());
    while !pending.is_empty() {
        assert!(started.elapsed() < Duration::from_secs(240), "{} jobs still unfinished", pending.len());
        pending.retain(|id| {
            let v: Value = get_ok(&c, &d, &format!("/api/v1/media/{id}")).json().unwrap();
            let done = v["status"] == "completed" || v["status"] == "failed";
            if done {
                finals.push(v);
            }
            !done
        });
        std::thread::sleep(Duration::from_millis(500));
    }
    let astronaut = load_rgb(&photo("astronaut.png"));
    for v in &finals {
        assert_eq!(v["status"], "completed", "{v}");
        if v["width"] == astronaut.width() {
            let id = v["media_id"].as_str().unwrap();
            let bytes = get_ok(&c, &d, &format!("/api/v1/media/{id}/download")).bytes().unwrap();
            let out = image::load_from_memory(&bytes).unwrap().into_rgb8();
            privacy::assert_boxes_masked(&astronaut, &out, &ground_truth("astronaut.gt"), privacy::MAX_DETAIL_KEPT);
        }
    }
    poll_for("originals deleted", Duration::from_secs(20), || {
        (std::fs::read_dir(state.join("jobs/originals")).unwrap().count() == 0).then_some(())
    });

    // Memory: the peak stays far under the budget's worst case, and goes back once idle.
    let (pid, peak) = (d.child.id(), rss_mib(d.child.id(), "VmHWM:"));
    let settled = Instant::now();
    while rss_mib(pid, "VmRSS:") > 400.0 && settled.elapsed() < Duration::from_secs(15) {
        std::thread::sleep(Duration::from_millis(250));
    }
    let idle = rss_mib(pid, "VmRSS:");
    println!("{} answers, {} jobs; resident peak {peak:.0} MiB, idle {idle:.0} MiB", seen.answers, finals.len());
    assert!(peak < 1500.0, "peak resident {peak:.0} MiB");
    assert!(idle < 400.0, "resident {idle:.0} MiB once idle (peak {peak:.0})");
}
