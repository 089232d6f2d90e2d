//! A running `veil serve` for end-to-end tests: started on a free port with its own state
//! directory and API key, reached over real HTTP, killed on drop.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Daemon {
    pub child: Child,
    /// `host:port`.
    pub addr: String,
    /// `http://host:port` (or https).
    pub base: String,
    /// A valid API key of this daemon's state directory.
    pub key: String,
    pub state_dir: PathBuf,
    pub stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

/// Make an API key in `state_dir` with `veil keys create`; the key is the last stdout line.
pub fn create_key(state_dir: &Path, name: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_veil"))
        .args(["keys", "create", "--name", name, "--state-dir", state_dir.to_str().unwrap()])
        .output()
        .expect("veil keys runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().lines().last().unwrap().trim().to_string()
}

impl Daemon {
    /// Start `veil serve --state-dir STATE ARGS` after making a key in `state_dir`.
    pub fn start(state_dir: &Path, args: &[&str]) -> Daemon {
        let key = create_key(state_dir, "e2e");
        Self::start_with_key(state_dir, key, args)
    }

    /// Start with an existing key (a restart); returns once the daemon says it is ready.
    pub fn start_with_key(state_dir: &Path, key: String, args: &[&str]) -> Daemon {
        let d = Self::start_listening(state_dir, key, args);
        let t = Instant::now();
        while !d.log().contains("veil: ready") {
            assert!(t.elapsed() < Duration::from_secs(120), "veil serve never got ready: {}", d.log());
            std::thread::sleep(Duration::from_millis(20));
        }
        d
    }

    /// Start and return as soon as the port is open (the model may still be loading).
    pub fn start_listening(state_dir: &Path, key: String, args: &[&str]) -> Daemon {
        let mut child = Command::new(env!("CARGO_BIN_EXE_veil"))
            .arg("serve")
            .args(["--listen", "127.0.0.1:0", "--state-dir", state_dir.to_str().unwrap()])
            .args(args)
            .env("VEIL_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("veil serve starts");
        let stderr = child.stderr.take().unwrap();
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let log2 = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(base) = line.strip_prefix("veil: listening on ") {
                    let _ = tx.send(base.to_string());
                }
                let mut l = log2.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let base = rx.recv_timeout(Duration::from_secs(120)).unwrap_or_else(|_| {
            let _ = child.kill();
            panic!("veil serve did not start: {}", log.lock().unwrap())
        });
        let addr = base.split_once("://").unwrap().1.to_string();
        Daemon { child, addr, base, key, state_dir: state_dir.to_path_buf(), stderr: log }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn log(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// A raw HTTP/1.1 GET with the key: (status, body).
    pub fn get(&self, path: &str) -> (u16, String) {
        let mut s = TcpStream::connect(&self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        write!(s, "GET {path} HTTP/1.1\r\nHost: {}\r\nX-API-Key: {}\r\nConnection: close\r\n\r\n", self.addr, self.key)
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        let status = out[9..12].parse().unwrap();
        let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
        (status, dechunk(&body))
    }

    /// Open a raw streaming GET with the key (for MJPEG and SSE).
    pub fn open_stream(&self, path: &str) -> TcpStream {
        let mut s = TcpStream::connect(&self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        write!(s, "GET {path} HTTP/1.1\r\nHost: {}\r\nX-API-Key: {}\r\n\r\n", self.addr, self.key).unwrap();
        s
    }

    /// Upload `photo` through the PiiBlur-style API asking for `categories` and wait for its
    /// job: the finished media JSON (asserted completed), its text as served, and the redacted
    /// image.
    pub fn piiblur(&self, photo: &Path, categories: &[&str]) -> (serde_json::Value, String, image::RgbImage) {
        use reqwest::blocking::multipart::{Form, Part};
        let c = reqwest::blocking::Client::builder().timeout(Duration::from_secs(300)).build().unwrap();
        let name = photo.file_name().unwrap().to_string_lossy().into_owned();
        let mut form = Form::new().part("file", Part::bytes(std::fs::read(photo).unwrap()).file_name(name));
        for cat in categories {
            form = form.text("pii_categories[]", cat.to_string());
        }
        let r = c.post(self.url("/api/v1/media/redact")).bearer_auth(&self.key).multipart(form).send().unwrap();
        let (status, text) = (r.status().as_u16(), r.text().unwrap());
        assert_eq!(status, 201, "{text}");
        let created: serde_json::Value = serde_json::from_str(&text).unwrap();
        let id = created["media_id"].as_str().unwrap().to_string();
        let (media, text) = super::poll_for("the PiiBlur job", Duration::from_secs(300), || {
            let text = c.get(self.url(&format!("/api/v1/media/{id}"))).bearer_auth(&self.key).send().unwrap().text().unwrap();
            let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
            (v["status"] == "completed" || v["status"] == "failed").then_some((v, text))
        });
        assert_eq!(media["status"], "completed", "{media}");
        let bytes = c.get(self.url(&format!("/api/v1/media/{id}/download"))).bearer_auth(&self.key).send().unwrap().bytes().unwrap();
        (media, text, image::load_from_memory(&bytes).unwrap().to_rgb8())
    }

    pub fn pipeline(&self) -> serde_json::Value {
        let (status, body) = self.get("/api/v1/pipeline");
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    /// Wait until the pipeline reports `frames_out >= n` and the source finished.
    pub fn wait_processed(&self, n: u64) -> serde_json::Value {
        let t = Instant::now();
        loop {
            let p = self.pipeline();
            if p["frames_out"].as_u64().unwrap() + p["dropped_total"].as_u64().unwrap() >= n
                && p["source"]["finished"] == true
            {
                return p;
            }
            assert!(t.elapsed() < Duration::from_secs(180), "not processed: {p}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn kill9(&mut self) {
        signal(self.child.id(), "KILL");
        let _ = self.child.wait();
    }

    /// SIGTERM and wait for the exit: (status, stderr).
    pub fn terminate(mut self) -> (std::process::ExitStatus, String) {
        signal(self.child.id(), "TERM");
        let t = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(100));
                let log = self.stderr.lock().unwrap().clone();
                return (status, log);
            }
            assert!(t.elapsed() < Duration::from_secs(20), "no exit after SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // A failing test: say whether the daemon was still alive, and what it logged, so a
            // CI failure can be read without rerunning it.
            let state = match self.child.try_wait() {
                Ok(Some(status)) => format!("had exited: {status}"),
                Ok(None) => "was still running".to_string(),
                Err(e) => format!("state unknown: {e}"),
            };
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!("veil serve ({}) {state}; the last lines it logged:", self.base);
            for line in tail.iter().rev() {
                eprintln!("  | {line}");
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn signal(pid: u32, signal: &str) {
    let ok = Command::new("kill").args([&format!("-{signal}"), &pid.to_string()]).status().unwrap().success();
    assert!(ok, "kill -{signal} {pid}");
}

fn dechunk(body: &str) -> String {
    // Small JSON bodies come chunked or not; strip chunk-size lines if present.
    let mut out = String::new();
    let mut rest = body;
    loop {
        let Some((size, after)) = rest.split_once("\r\n") else { return body.to_string() };
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else { return body.to_string() };
        if n == 0 {
            return out;
        }
        if after.len() < n {
            return body.to_string();
        }
        out.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
}
