//! `veil bench --http`: load on the REST API as a field laptop sees it. Starts a real
//! `veil serve` (this binary) on a free port, then posts a 640x480 JPEG to `/api/v1/detect`
//! from 1 client (the reference) and from N concurrent clients, and reports requests/s, latency
//! p50/p95 and the daemon's resident memory over the loaded run.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::store::Store;

#[derive(Debug, Serialize)]
pub struct LoadRun {
    pub clients: usize,
    pub seconds: f64,
    pub requests: usize,
    pub errors: usize,
    pub requests_per_s: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    /// Daemon RSS (MB) after the first quarter of the run, at its end, and the peak.
    pub rss_mb_early: f64,
    pub rss_mb_end: f64,
    pub rss_mb_peak: f64,
}

#[derive(Debug, Serialize)]
pub struct HttpBench {
    pub image: String,
    pub reference: LoadRun,
    pub loaded: LoadRun,
    /// loaded requests/s over the 1-client reference's.
    pub throughput_ratio: f64,
    /// loaded p95 over the reference p50.
    pub latency_ratio: f64,
}

struct Server {
    child: Child,
    base: String,
    _state: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server() -> anyhow::Result<(Server, String)> {
    let state = tempfile::tempdir()?;
    let (_, key) = Store::open(state.path())?.create_key("bench", false)?;
    let config = state.path().join("veil.toml");
    std::fs::write(&config, "[api]\nrate_per_minute = 0\nrate_per_day = 0\n")?;
    let mut child = Command::new(std::env::current_exe()?)
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .arg("--state-dir")
        .arg(state.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let stderr = child.stderr.take().ok_or_else(|| anyhow::anyhow!("no stderr"))?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut base = None;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(b) = line.strip_prefix("veil: listening on ") {
                base = Some(b.to_string());
            }
            if line.starts_with("veil: ready") {
                if let Some(b) = base.take() {
                    let _ = tx.send(b);
                }
            }
        }
    });
    let base = rx.recv_timeout(Duration::from_secs(120)).map_err(|_| anyhow::anyhow!("veil serve did not start"))?;
    Ok((Server { child, base, _state: state }, key))
}

fn rss_mb(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok()))
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

async fn one_request(client: &reqwest::Client, url: &str, key: &str, jpeg: &[u8]) -> Result<(), String> {
    let part = reqwest::multipart::Part::bytes(jpeg.to_vec()).file_name("frame.jpg").mime_str("image/jpeg").map_err(|e| e.to_string())?;
    let resp = client
        .post(url)
        .header("X-API-Key", key)
        .multipart(reqwest::multipart::Form::new().part("image", part))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = resp.status();
    let _ = resp.bytes().await;
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("HTTP {status}"))
    }
}

fn load(server: &Server, key: &str, jpeg: &[u8], clients: usize, seconds: f64) -> anyhow::Result<LoadRun> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let url = format!("{}/api/v1/detect", server.base);
    let pid = server.child.id();
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let errors = Arc::new(Mutex::new(0usize));
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(seconds);
    let rss = runtime.block_on(async {
        let client = reqwest::Client::builder().timeout(Duration::from_secs(120)).build()?;
        let mut tasks = Vec::new();
        for _ in 0..clients {
            let (client, url, key, jpeg) = (client.clone(), url.clone(), key.to_string(), jpeg.to_vec());
            let (latencies, errors) = (latencies.clone(), errors.clone());
            tasks.push(tokio::spawn(async move {
                while Instant::now() < end {
                    let t = Instant::now();
                    match one_request(&client, &url, &key, &jpeg).await {
                        Ok(()) => latencies.lock().unwrap().push(t.elapsed().as_secs_f64() * 1000.0),
                        Err(_) => *errors.lock().unwrap() += 1,
                    }
                }
            }));
        }
        let mut samples = Vec::new();
        while Instant::now() < end {
            tokio::time::sleep(Duration::from_millis(250)).await;
            samples.push((start.elapsed().as_secs_f64(), rss_mb(pid)));
        }
        for t in tasks {
            let _ = t.await;
        }
        samples.push((start.elapsed().as_secs_f64(), rss_mb(pid)));
        anyhow::Ok(samples)
    })?;
    let elapsed = start.elapsed().as_secs_f64();
    let mut lat = latencies.lock().unwrap().clone();
    lat.sort_by(f64::total_cmp);
    let early = rss.iter().find(|(t, _)| *t >= seconds / 4.0).or(rss.first()).map(|s| s.1).unwrap_or(0.0);
    let errors = *errors.lock().unwrap();
    Ok(LoadRun {
        clients,
        seconds: elapsed,
        requests: lat.len(),
        errors,
        requests_per_s: lat.len() as f64 / elapsed,
        p50_ms: percentile(&lat, 0.5),
        p95_ms: percentile(&lat, 0.95),
        rss_mb_early: early,
        rss_mb_end: rss.last().map(|s| s.1).unwrap_or(0.0),
        rss_mb_peak: rss.iter().map(|s| s.1).fold(0.0, f64::max),
    })
}

/// Run the reference and the loaded phase against a fresh daemon.
pub fn run(photo: &image::RgbImage, clients: usize, seconds: f64) -> anyhow::Result<HttpBench> {
    let frame = image::imageops::resize(photo, 640, 480, image::imageops::FilterType::Triangle);
    let jpeg = crate::photo::encode(&frame, crate::photo::OutputFormat::Jpeg { quality: 90 }, None, None)?;
    let (server, key) = start_server()?;
    // Warm-up: the first request at a new size builds the inference plan.
    load(&server, &key, &jpeg, 1, 2.0)?;
    let reference = load(&server, &key, &jpeg, 1, (seconds / 2.0).max(3.0))?;
    let loaded = load(&server, &key, &jpeg, clients, seconds)?;
    if reference.errors + loaded.errors > 0 {
        anyhow::bail!("{} requests failed", reference.errors + loaded.errors);
    }
    Ok(HttpBench {
        image: "640x480 JPEG".into(),
        throughput_ratio: loaded.requests_per_s / reference.requests_per_s.max(1e-9),
        latency_ratio: loaded.p95_ms / reference.p50_ms.max(1e-9),
        reference,
        loaded,
    })
}
