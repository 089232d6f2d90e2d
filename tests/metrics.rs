//! `GET /metrics` as a Prometheus scraper sees it: the key is required, the text passes
//! `promtool check metrics` (Prometheus' own linter), and its figures agree with the pipeline's.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::daemon::Daemon;
use common::*;

/// The value of the sample written exactly as `series` (name and labels).
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
        .parse()
        .unwrap()
}

#[test]
fn metrics_pass_promtool_and_agree_with_the_pipeline() {
    let tmp = tempfile::tempdir().unwrap();
    let frames = frames_dir(tmp.path(), &["group6.jpg", "astronaut.png"]);
    let d = Daemon::start(&tmp.path().join("state"), &["--backend", "yunet", "--source", frames.to_str().unwrap()]);
    let pipeline = d.wait_processed(2);

    let client = reqwest::blocking::Client::new();
    let anonymous = client.get(d.url("/metrics")).send().unwrap();
    assert_eq!(anonymous.status(), 401, "metrics need a key");
    let resp = client.get(d.url("/metrics")).bearer_auth(&d.key).send().unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/plain; version=0.0.4; charset=utf-8");
    let text = resp.text().unwrap();

    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (package prometheus) runs");
    promtool.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let checked = promtool.wait_with_output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&checked.stdout), String::from_utf8_lossy(&checked.stderr));
    assert!(checked.status.success() && said.trim().is_empty(), "promtool check metrics: {said}\n{text}");

    assert_eq!(sample(&text, "veil_frames_captured_total"), pipeline["frames_in"].as_f64().unwrap());
    assert_eq!(sample(&text, "veil_frames_redacted_total"), pipeline["frames_out"].as_f64().unwrap());
    assert_eq!(sample(&text, "veil_frames_redacted_total"), 2.0);
    assert_eq!(sample(&text, "veil_frames_dropped_total{cause=\"deadline\"}"), 0.0);
    assert_eq!(sample(&text, "veil_capture{state=\"on\"}"), 1.0);
    let p50 = sample(&text, "veil_inference_p50_seconds");
    assert!(p50 > 0.0 && p50 < 60.0, "{p50}");
    assert!(sample(&text, "process_resident_memory_bytes") > 10e6);
    assert!(sample(&text, "veil_memory_total_bytes") >= sample(&text, "veil_memory_used_bytes"));
    assert_eq!(sample(&text, "veil_jobs{state=\"completed\"}"), 0.0);
    assert!(text.contains("veil_build_info{version=\"0.1.0\",backend=\"yunet-fp32\"} 1"), "{text}");
}
