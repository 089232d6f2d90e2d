//! The MQTT fleet link against a real Mosquitto started by each test: status and Last Will,
//! telemetry, Home Assistant discovery, commands and replies, the on-disk event queue across a
//! broker restart, bad credentials, mutual TLS, and no raw pixels published during a camera run.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::daemon::Daemon;
use common::mosquitto::{BrokerSetup, Mosquitto, Subscriber, TestPki};
use common::*;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(30);

/// Write a config with an `[mqtt]` section (`url` and `extra` lines) and other `sections`.
fn config(dir: &Path, mqtt: &str, sections: &str) -> String {
    let path = dir.join("veil.toml");
    std::fs::write(&path, format!("[mqtt]\nreconnect_min_s = 0.2\nreconnect_max_s = 1.0\n{mqtt}\n{sections}")).unwrap();
    path.to_str().unwrap().to_string()
}

fn is_online(m: &common::mosquitto::Seen) -> bool {
    m.payload == b"online"
}

#[test]
fn status_telemetry_discovery_and_the_last_will() {
    let tmp = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(tmp.path(), BrokerSetup::default());
    let sub = Subscriber::connect(broker.port, &["veil/rig-a/#", "homeassistant/#"], None);
    let cfg = config(tmp.path(), "telemetry_interval_s = 0.5", "");
    let mut d = Daemon::start(
        &tmp.path().join("state"),
        &["--config", &cfg, "--mqtt-url", &broker.url(), "--device-id", "rig-a"],
    );
    sub.wait_for("veil/rig-a/status", WAIT, is_online);
    let t = sub.wait_for("veil/rig-a/telemetry", WAIT, |_| true).json();
    assert!(t["memory_total_mb"].as_u64().unwrap() > 0, "{t}");
    assert!(t["process_rss_mb"].as_u64().unwrap() > 0, "{t}");
    assert!(t["disk_free_mb"].as_u64().is_some(), "{t}");
    assert_eq!(t["capture"], "none", "no camera configured: {t}");
    assert_eq!(t["backend"], "yunet+plates+codes+text+persons-fp32");
    for key in ["cpu_percent", "load_1m", "temperature_c", "uptime_s", "fps_in", "fps_out", "dropped_frames", "inference_p95_ms", "queue_depth", "jobs_pending", "events_queued"] {
        assert!(t.get(key).is_some(), "telemetry lacks {key}: {t}");
    }
    // Telemetry keeps coming at the configured interval.
    let t0 = Instant::now();
    while sub.all().iter().filter(|m| m.topic == "veil/rig-a/telemetry").count() < 3 {
        assert!(t0.elapsed() < WAIT, "telemetry stopped");
        std::thread::sleep(Duration::from_millis(50));
    }
    let switch = sub.wait_for("homeassistant/switch/veil_rig-a/capture/config", WAIT, |_| true).json();
    assert_eq!(switch["command_topic"], "veil/rig-a/capture/set");
    let temp = sub.wait_for("homeassistant/sensor/veil_rig-a/temperature_c/config", WAIT, |_| true).json();
    assert_eq!(temp["state_topic"], "veil/rig-a/telemetry");
    assert!(temp["value_template"].as_str().unwrap().contains("temperature_c"));

    // Killed without a goodbye: the broker publishes the Last Will.
    d.kill9();
    sub.wait_for("veil/rig-a/status", WAIT, |m| m.payload == b"offline");
    // And it is retained: a client that comes later learns the device is offline.
    let late = Subscriber::connect(broker.port, &["veil/rig-a/status"], None);
    let status = late.wait_for("veil/rig-a/status", WAIT, |_| true);
    assert_eq!((status.text().as_str(), status.retain), ("offline", true));
}

#[test]
fn commands_change_the_config_live_persist_it_and_bad_ones_get_an_error_reply() {
    let tmp = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(tmp.path(), BrokerSetup::default());
    let sub = Subscriber::connect(broker.port, &["veil/rig-b/#"], None);
    let cfg = config(tmp.path(), &format!("url = {:?}\ndevice_id = \"rig-b\"", broker.url()), "");
    let state = tmp.path().join("state");
    let d = Daemon::start(&state, &["--config", &cfg]);
    sub.wait_for("veil/rig-b/status", WAIT, is_online);
    let p = "veil/rig-b";

    let r = sub.command(p, "config/set", json!({"id": "c1", "config": {"detector": {"confidence": 0.35}, "api": {"rate_per_minute": 7}}}));
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["result"]["applied"], json!(["detector.confidence"]), "{r}");
    assert_eq!(r["result"]["restart_required"], json!(["api.rate_per_minute"]), "{r}");
    let got = sub.command(p, "config/get", json!({"id": 2}));
    assert!((got["result"]["detector"]["confidence"].as_f64().unwrap() - 0.35).abs() < 1e-6, "{got}");
    assert_eq!(got["id"], 2);
    let overlay = std::fs::read_to_string(state.join("remote-config.toml")).unwrap();
    assert!(overlay.contains("confidence = 0.35"), "{overlay}");

    for (name, request, expect) in [
        ("config/set", json!({"id": "bad1", "config": {"detector": {"confidence": 7}}}), "confidence"),
        ("config/set", json!({"id": "bad2", "config": {"detector": {"confidance": 0.4}}}), "confidance"),
        ("config/set", json!({"id": "bad3"}), "needs \"config\""),
        ("reboot", json!({"id": "bad4"}), "unknown command"),
        ("capture/stop", json!({"id": "bad5"}), "no camera"),
        ("backend/set", json!({"id": "bad6", "backend": "yolo"}), "unknown backend"),
    ] {
        let r = sub.command(p, name, request);
        assert_eq!(r["ok"], false, "{name}: {r}");
        assert!(r["error"].as_str().unwrap().contains(expect), "{name}: {r}");
    }
    // Not JSON: the error reply has no id to carry.
    sub.publish("veil/rig-b/cmd/config/get", "confidence?");
    let r = sub.wait_for("veil/rig-b/cmd/config/get/reply", WAIT, |m| m.json()["id"].is_null()).json();
    assert!(r["error"].as_str().unwrap().contains("not JSON"), "{r}");
    // A refused change changed nothing.
    let got = sub.command(p, "config/get", json!({"id": 3}));
    assert!((got["result"]["detector"]["confidence"].as_f64().unwrap() - 0.35).abs() < 1e-6, "{got}");

    // Switch the backend live; the REST API reports the new one.
    let r = sub.command(p, "backend/set", json!({"id": "b1", "backend": "centerface", "precision": "fp32"}));
    assert_eq!((r["ok"].clone(), r["result"]["active"].clone()), (json!(true), json!("centerface-fp32")), "{r}");
    let (status, body) = d.get("/v1/backends");
    assert_eq!(status, 200);
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["active"], "centerface-fp32", "{body}");

    // A clean stop says goodbye itself.
    let (exit, log) = d.terminate();
    assert!(exit.success(), "{log}");
    sub.wait_for("veil/rig-b/status", WAIT, |m| m.payload == b"offline");

    // The changes survive a restart.
    let d = Daemon::start_with_key(&state, d_key(&state), &["--config", &cfg]);
    assert!(d.log().contains("remote config changes applied"), "{}", d.log());
    let got = sub.command(p, "config/get", json!({"id": 4}));
    assert!((got["result"]["detector"]["confidence"].as_f64().unwrap() - 0.35).abs() < 1e-6, "{got}");
    assert_eq!(got["result"]["detector"]["precision"], "fp32");
    assert_eq!(got["result"]["api"]["rate_per_minute"], 7);
}

fn d_key(state: &Path) -> String {
    common::daemon::create_key(state, "again")
}

#[test]
fn events_wait_on_disk_while_the_broker_is_away_and_arrive_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    let mut broker = Mosquitto::start(tmp.path(), BrokerSetup::default());
    let cfg = config(tmp.path(), &format!("url = {:?}\ndevice_id = \"rig-c\"", broker.url()), "");
    let d = Daemon::start(&tmp.path().join("state"), &["--config", &cfg]);
    let first = Subscriber::connect(broker.port, &["veil/rig-c/status"], None);
    first.wait_for("veil/rig-c/status", WAIT, is_online);

    broker.stop();
    let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(120)).build().unwrap();
    let mut ids = Vec::new();
    for _ in 0..4 {
        let form = reqwest::blocking::multipart::Form::new().file("file", photo("group6.jpg")).unwrap();
        let resp = client.post(d.url("/v1/protect")).header("X-API-Key", &d.key).multipart(form).send().unwrap();
        assert_eq!(resp.status(), 200);
        let id = resp.json::<Value>().unwrap()["job_id"].as_str().unwrap().to_string();
        // One at a time, so the completion order is the submission order.
        let t = Instant::now();
        loop {
            let (_, body) = d.get(&format!("/v1/status/{id}"));
            if serde_json::from_str::<Value>(&body).unwrap()["status"] == "completed" {
                break;
            }
            assert!(t.elapsed() < Duration::from_secs(120), "job {id}: {body}");
            std::thread::sleep(Duration::from_millis(50));
        }
        ids.push(id);
    }
    assert!(d.log().contains("retrying in"), "the lost broker is logged: {}", d.log());

    broker.restart();
    let sub = Subscriber::connect(broker.port, &["veil/rig-c/#"], None);
    let t = Instant::now();
    let delivered = loop {
        let events: Vec<Value> = sub.all().iter().filter(|m| m.topic == "veil/rig-c/events").map(|m| m.json()).collect();
        let processed: Vec<String> = events
            .iter()
            .filter(|e| e["event"] == "media.processed")
            .map(|e| e["job_id"].as_str().unwrap().to_string())
            .collect();
        if processed.len() >= ids.len() {
            break processed;
        }
        assert!(t.elapsed() < WAIT, "queued events not delivered: {events:?}\n{}", d.log());
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut unique = delivered.clone();
    unique.dedup();
    assert_eq!(unique, ids, "every event, in the order it happened");
    // The originals' deletions were queued too, each after its job.
    sub.wait_for("veil/rig-c/events", WAIT, |m| m.json()["event"] == "media.source_deleted");
    sub.wait_for("veil/rig-c/status", WAIT, is_online);
}

#[test]
fn wrong_credentials_are_logged_and_retried_and_mutual_tls_connects() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = TestPki::make(tmp.path());
    let broker = Mosquitto::start(tmp.path(), BrokerSetup { user: Some(("fleet", "s3cret")), tls: Some(&pki) });
    let sub = Subscriber::connect(broker.port, &["veil/#"], Some(("fleet", "s3cret")));

    let bad_dir = tmp.path().join("bad");
    std::fs::create_dir_all(&bad_dir).unwrap();
    let cfg = config(&bad_dir, &format!("url = {:?}\ndevice_id = \"rig-d\"\nusername = \"fleet\"\npassword = \"wrong\"", broker.url()), "");
    let bad = Daemon::start(&bad_dir.join("state"), &["--config", &cfg]);
    let t = Instant::now();
    while bad.log().matches("refused the connection").count() < 2 {
        assert!(t.elapsed() < WAIT, "no clear log line and retry: {}", bad.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = bad.log();
    assert!(log.contains("bad username or password") || log.contains("not authorized"), "{log}");
    assert!(!log.contains("wrong"), "the password is never logged: {log}");
    drop(bad);

    let tls_dir = tmp.path().join("tls");
    std::fs::create_dir_all(&tls_dir).unwrap();
    let url = format!("mqtts://localhost:{}", broker.tls_port.unwrap());
    let cfg = config(
        &tls_dir,
        &format!(
            "url = {url:?}\ndevice_id = \"rig-tls\"\nca_file = {:?}\nclient_cert = {:?}\nclient_key = {:?}",
            pki.ca, pki.client_cert, pki.client_key
        ),
        "",
    );
    let _tls = Daemon::start(&tls_dir.join("state"), &["--config", &cfg]);
    sub.wait_for("veil/rig-tls/status", WAIT, is_online);

    // Without a client certificate the broker refuses the TLS connection; veil says so and retries.
    let nocert_dir = tmp.path().join("nocert");
    std::fs::create_dir_all(&nocert_dir).unwrap();
    let cfg = config(&nocert_dir, &format!("url = {url:?}\ndevice_id = \"rig-nocert\"\nca_file = {:?}", pki.ca), "");
    let nocert = Daemon::start(&nocert_dir.join("state"), &["--config", &cfg]);
    let t = Instant::now();
    while nocert.log().matches("retrying in").count() < 2 {
        assert!(t.elapsed() < WAIT, "{}", nocert.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!sub.all().iter().any(|m| m.topic == "veil/rig-nocert/status" && m.payload == b"online"));
}

#[test]
fn a_camera_run_publishes_results_and_a_redacted_snapshot_but_never_raw_pixels() {
    let tmp = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(tmp.path(), BrokerSetup::default());
    let sub = Subscriber::connect(broker.port, &["#"], None);
    let frames = tmp.path().join("frames");
    std::fs::create_dir_all(&frames).unwrap();
    std::fs::copy(photo("group6.jpg"), frames.join("group6.jpg")).unwrap();
    let cfg = config(
        tmp.path(),
        &format!("url = {:?}\ndevice_id = \"rig-e\"\ndetections = \"frame\"\ntelemetry_interval_s = 1.0", broker.url()),
        &format!("[camera]\nsource = {frames:?}\nloop = true\nfps = 4\ncategories = [\"faces\"]\n"),
    );
    let d = Daemon::start(&tmp.path().join("state"), &["--config", &cfg]);
    let p = "veil/rig-e";
    sub.wait_for(&format!("{p}/status"), WAIT, is_online);
    sub.wait_for(&format!("{p}/events"), WAIT, |m| m.json()["reason"] == "daemon started");
    let first = sub.wait_for(&format!("{p}/detections"), Duration::from_secs(60), |m| m.json()["count"].as_u64() >= Some(6)).json();
    assert_eq!(first["backend"], "yunet+plates+codes+text+persons-fp32");
    let gt = ground_truth("group6.gt");
    let (w, h) = image::image_dimensions(photo("group6.jpg")).unwrap();
    // Boxes are fractions of the frame and land on the labelled faces.
    for o in first["objects"].as_array().unwrap() {
        let b: Vec<f32> = o["bbox"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
        assert!(b.iter().all(|v| (0.0..=1.0).contains(v)), "{o}");
        let px = [b[0] * w as f32, b[1] * h as f32, (b[0] + b[2]) * w as f32, (b[1] + b[3]) * h as f32];
        assert!(gt.iter().any(|g| iou(*g, px) > 0.3), "{o} is on no labelled face");
    }

    let r = sub.command(p, "snapshot", json!({"id": "s1"}));
    assert_eq!(r["ok"], true, "{r}");
    let snap = sub.wait_for(&format!("{p}/snapshot"), WAIT, |_| true);
    assert_eq!(&snap.payload[..3], &[0xFF, 0xD8, 0xFF], "a JPEG");
    assert_eq!(r["result"]["bytes"].as_u64(), Some(snap.payload.len() as u64));
    let snap_path = tmp.path().join("snapshot.jpg");
    std::fs::write(&snap_path, &snap.payload).unwrap();
    privacy::assert_faces_hidden(&snap_path, "group6.gt");

    // A config change applies to the running pipeline: nothing reaches a 0.99 score, so once
    // the tracker lets go of the held masks, frames report no faces.
    let r = sub.command(p, "config/set", json!({"id": "live", "config": {"detector": {"confidence": 0.99}}}));
    assert_eq!(r["result"]["applied"], json!(["detector.confidence"]), "{r}");
    sub.wait_for(&format!("{p}/detections"), Duration::from_secs(60), |m| m.json()["count"] == 0);
    sub.command(p, "config/set", json!({"id": "back", "config": {"detector": {"confidence": 0.5}}}));

    // Stop capture from the fleet: the switch state and an event follow; telemetry says off.
    let r = sub.command(p, "capture/stop", json!({"id": "c-off"}));
    assert_eq!(r["result"]["capture"], "off", "{r}");
    sub.wait_for(&format!("{p}/capture"), WAIT, |m| m.payload == b"OFF");
    sub.wait_for(&format!("{p}/events"), WAIT, |m| m.json()["event"] == "capture.stopped" && m.json()["reason"] == "held off");
    sub.wait_for(&format!("{p}/telemetry"), WAIT, |m| m.json()["capture"] == "off");
    sub.publish(&format!("{p}/capture/set"), "ON");
    sub.wait_for(&format!("{p}/events"), WAIT, |m| m.json()["event"] == "capture.started");
    drop(d);

    // Nothing published is an unredacted image: every payload is JSON, a status word, or the
    // redacted snapshot; no payload holds the source file's bytes or a raw frame's pixels.
    let original = std::fs::read(photo("group6.jpg")).unwrap();
    let rgb = load_rgb(&photo("group6.jpg")).into_raw();
    let original_chunk = &original[original.len() / 2..original.len() / 2 + 256];
    let row = (h as usize / 2) * w as usize * 3;
    let pixel_chunk = &rgb[row..row + 256];
    let all = sub.all();
    assert!(all.len() > 10);
    for m in &all {
        let p = &m.payload;
        let ok = serde_json::from_slice::<Value>(p).is_ok()
            || [&b"online"[..], b"offline", b"ON", b"OFF"].contains(&p.as_slice())
            || (m.topic.ends_with("/snapshot") && p.starts_with(&[0xFF, 0xD8]));
        assert!(ok, "unexpected payload on {}: {} bytes", m.topic, p.len());
        assert!(!p.windows(256).any(|w| w == original_chunk), "{} carries the original file", m.topic);
        assert!(!p.windows(256).any(|w| w == pixel_chunk), "{} carries raw pixels", m.topic);
        assert_ne!(p.len(), (w * h * 3) as usize, "{} has the size of a raw frame", m.topic);
    }
}
