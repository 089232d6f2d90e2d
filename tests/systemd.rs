//! The systemd unit (`systemd/veil.service`) as systemd sees it, and the notify protocol spoken
//! to an emulated service manager: READY once serving, watchdog pings, STOPPING on SIGTERM.

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// The unit with ExecStart pointing at the binary under test (verify checks it is executable).
fn unit_under_test(dir: &std::path::Path) -> std::path::PathBuf {
    let unit = std::fs::read_to_string(root().join("systemd/veil.service")).unwrap();
    assert!(unit.contains("ExecStart=/usr/bin/veil serve"), "the unit runs the installed binary");
    let path = dir.join("veil.service");
    std::fs::write(&path, unit.replace("/usr/bin/veil", env!("CARGO_BIN_EXE_veil"))).unwrap();
    path
}

#[test]
fn the_unit_verifies_cleanly_and_its_exposure_is_below_two() {
    let tmp = tempfile::tempdir().unwrap();
    let unit = unit_under_test(tmp.path());
    let out = Command::new("systemd-analyze").arg("verify").arg(&unit).output().expect("systemd-analyze (package systemd)");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && said.trim().is_empty(), "systemd-analyze verify: {said}");
    let out = Command::new("systemd-analyze").args(["security", "--offline=true"]).arg(&unit).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| l.contains("Overall exposure level")).unwrap_or_else(|| panic!("{text}"));
    let level: f64 = line.split(':').nth(1).unwrap().split_whitespace().next().unwrap().parse().unwrap();
    println!("systemd-analyze security: {line}");
    assert!(level < 2.0, "{line}");
}

#[test]
fn ready_watchdog_and_stopping_reach_an_emulated_service_manager() {
    let tmp = tempfile::tempdir().unwrap();
    let socket_path = tmp.path().join("notify");
    let manager = UnixDatagram::bind(&socket_path).unwrap();
    manager.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let state = tmp.path().join("state");
    let frames = tmp.path().join("frames");
    std::fs::create_dir_all(&frames).unwrap();
    std::fs::copy(photo("group6.jpg"), frames.join("group6.jpg")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_veil"))
        .args(["serve", "--listen", "127.0.0.1:0", "--state-dir", state.to_str().unwrap()])
        .args(["--source", frames.to_str().unwrap()])
        .env("NOTIFY_SOCKET", &socket_path)
        .env("WATCHDOG_USEC", "400000")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let l = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            l.lock().unwrap().push_str(&(line + "\n"));
        }
    });
    let mut buf = vec![0u8; 4096];
    let mut recv = || {
        let n = manager.recv(&mut buf).unwrap_or_else(|e| panic!("no notification: {e}; {}", log.lock().unwrap()));
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let first = recv();
    assert!(first.starts_with("READY=1\nSTATUS=serving"), "{first}");
    assert!(log.lock().unwrap().contains("veil: ready"), "READY only once serving");
    // Pings at half the watchdog period while the pipeline runs (and after the replay ends).
    let t = Instant::now();
    let mut pings = 0;
    while pings < 6 {
        if recv() == "WATCHDOG=1" {
            pings += 1;
        }
    }
    let elapsed = t.elapsed();
    assert!(elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(10), "6 pings in {elapsed:?}");
    common::daemon::signal(child.id(), "TERM");
    let t = Instant::now();
    loop {
        if recv() == "STOPPING=1" {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(20), "no STOPPING=1");
    }
    assert!(child.wait().unwrap().success());
}
