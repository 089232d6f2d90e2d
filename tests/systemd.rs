//! The systemd unit (`systemd/veil.service`) as systemd sees it, and the notify protocol spoken
//! to an emulated service manager: READY once serving, watchdog pings, STOPPING on SIGTERM, and a
//! wedged pipeline starving the watchdog into an abort and a restart.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::service_manager::ServiceManager;
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
    let manager = ServiceManager::new(tmp.path());
    let state = tmp.path().join("state");
    let frames = frames_dir(tmp.path(), &["group6.jpg"]);
    let mut service = manager.start(
        &["serve", "--listen", "127.0.0.1:0", "--state-dir", state.to_str().unwrap(), "--backend", "yunet", "--source", frames.to_str().unwrap()],
        Some(Duration::from_millis(400)),
        &[],
    );
    let first = manager.expect(&service, "READY=1", Duration::from_secs(60));
    assert!(first.starts_with("READY=1\nSTATUS=serving"), "{first}");
    // "veil: ready" is written before READY=1 is sent; the thread draining stderr may lag a little.
    let seen = Instant::now();
    while !service.log().contains("veil: ready") && seen.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(service.log().contains("veil: ready"), "READY only once serving: {}", service.log());
    // Pings at half the watchdog period while the pipeline runs (and after the replay ends).
    let t = Instant::now();
    for _ in 0..6 {
        manager.expect(&service, "WATCHDOG=1", Duration::from_secs(5));
    }
    let elapsed = t.elapsed();
    assert!(elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(10), "6 pings in {elapsed:?}");
    common::daemon::signal(service.child.id(), "TERM");
    manager.expect(&service, "STOPPING=1", Duration::from_secs(20));
    assert!(service.child.wait().unwrap().success());
}

/// A pipeline wedged mid-frame (fault injection: the masking stage never returns, as in a
/// deadlock) stops the pings; the emulated systemd then aborts veil as `WatchdogSec=` does, and
/// `Restart=on-failure` starts it again on the same state directory, where it serves and pings.
#[test]
fn a_wedged_pipeline_starves_the_watchdog_and_the_restarted_daemon_serves() {
    use std::os::unix::process::ExitStatusExt;
    let tmp = tempfile::tempdir().unwrap();
    let manager = ServiceManager::new(tmp.path());
    let state = tmp.path().join("state");
    let frames = frames_dir(tmp.path(), &["group6.jpg"]);
    // A looped replay at 4 fps is paced like a live camera: its frames have a 1.5 s deadline, so
    // a worker silent for 11.5 s is hung.
    let config = camera_config(tmp.path(), &frames, "fps = 4\nloop = true\ndeadline_ms = 1500\ncategories = [\"faces\"]\n");
    let args = ["serve", "--config", config.to_str().unwrap(), "--listen", "127.0.0.1:0", "--state-dir", state.to_str().unwrap()];
    let period = Duration::from_secs(3);
    let mut wedged = manager.start(&args, Some(period), &[("VEIL_FAULT_STALL_AT_FRAME", "4")]);
    manager.expect(&wedged, "READY=1", Duration::from_secs(60));
    let started = Instant::now();
    let (pings, said) = manager.watch_until_starved(&wedged, period, Duration::from_secs(60));
    let starved_after = started.elapsed();
    let status = wedged.child.wait().unwrap();
    println!("{pings} pings, starved after {starved_after:?}, exit {status:?}");
    assert_eq!(status.signal(), Some(6), "killed by the watchdog's SIGABRT: {status:?}");
    assert!(pings >= 4, "pinged while the pipeline ran: {pings}");
    assert!(starved_after >= Duration::from_secs(11), "not before the stall limit: {starved_after:?}");
    assert!(said.iter().any(|m| m.starts_with("STATUS=stalled: the pipeline's detection worker has made no progress")), "{said:?}");
    assert!(wedged.log().contains("withholding the watchdog ping"), "{}", wedged.log());

    // Restart=on-failure: the same command on the same state directory (the wedge was transient).
    let mut restarted = manager.start(&args, Some(period), &[]);
    manager.expect(&restarted, "READY=1", Duration::from_secs(60));
    for _ in 0..3 {
        manager.expect(&restarted, "WATCHDOG=1", Duration::from_secs(5));
    }
    common::daemon::signal(restarted.child.id(), "TERM");
    manager.expect(&restarted, "STOPPING=1", Duration::from_secs(20));
    assert!(restarted.child.wait().unwrap().success(), "{}", restarted.log());
}
