//! `GET /metrics`: the daemon's counters and the board's health in Prometheus' text exposition
//! format (version 0.0.4), for a scraper on the fleet's network.

use std::fmt::Write as _;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use super::api_error::{ApiError, ApiStyle};
use super::AppState;
use crate::pipeline::metrics::MetricsSnapshot;
use crate::store::jobs::JobTotals;
use crate::telemetry::Telemetry;

pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

pub async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    let task = tokio::task::spawn_blocking(move || {
        let store = state.engine.store();
        let snapshot = state.metrics.as_ref().map(|m| m.snapshot());
        let silence = state.metrics.as_ref().map(|m| m.worker_silence().as_secs_f64());
        let sample = state.telemetry_sample();
        let jobs = store.job_totals(None).map_err(|e| e.to_string())?;
        Ok::<_, String>(render(&Figures { telemetry: &sample, pipeline: snapshot.as_ref(), worker_silence_s: silence, jobs: &jobs }))
    });
    match task.await {
        Ok(Ok(body)) => Ok((StatusCode::OK, [(header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response()),
        Ok(Err(e)) => Err(ApiError::internal(ApiStyle::Veil, format!("metrics: {e}"))),
        Err(_) => Err(ApiError::internal(ApiStyle::Veil, "metrics task failed")),
    }
}

/// Everything one scrape reports.
pub struct Figures<'a> {
    pub telemetry: &'a Telemetry,
    /// `None` without a camera.
    pub pipeline: Option<&'a MetricsSnapshot>,
    pub worker_silence_s: Option<f64>,
    pub jobs: &'a JobTotals,
}

/// Writes metric families: `# HELP`, `# TYPE`, then samples, one family at a time.
struct Exposition {
    out: String,
}

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str) -> &mut Self {
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        self
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) -> &mut Self {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape_label(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {}", number(value));
        self
    }

    /// A family with one unlabelled sample.
    fn single(&mut self, name: &str, kind: &str, help: &str, value: f64) -> &mut Self {
        self.family(name, kind, help).sample(name, &[], value)
    }
}

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v}")
    }
}

const MB: f64 = (1u64 << 20) as f64;

pub fn render(f: &Figures<'_>) -> String {
    let t = f.telemetry;
    let mut e = Exposition { out: String::with_capacity(4096) };
    e.family("veil_build_info", "gauge", "Always 1; the version and the detection backend in use as labels.")
        .sample("veil_build_info", &[("version", env!("CARGO_PKG_VERSION")), ("backend", &t.backend)], 1.0);
    e.single("veil_uptime_seconds", "gauge", "Seconds since the daemon started.", t.uptime_s as f64);
    e.family("veil_capture", "gauge", "1 for the capture state the camera is in: on, off (held off) or none (no camera).");
    for state in ["on", "off", "none"] {
        e.sample("veil_capture", &[("state", state)], f64::from(u8::from(t.capture == state)));
    }

    // The camera pipeline.
    if let Some(p) = f.pipeline {
        e.single("veil_frames_captured_total", "counter", "Frames the camera delivered.", p.frames_in as f64);
        e.single("veil_frames_redacted_total", "counter", "Frames redacted and handed to the sinks.", p.frames_out as f64);
        e.family("veil_frames_dropped_total", "counter", "Frames never output, by cause (fail-closed drops included).");
        for (cause, n) in &p.dropped {
            e.sample("veil_frames_dropped_total", &[("cause", cause)], *n as f64);
        }
        e.single("veil_source_errors_total", "counter", "Errors reading the camera.", p.source_errors as f64);
        e.single("veil_sink_errors_total", "counter", "Errors writing redacted frames (spool, preview, events).", p.sink_errors as f64);
        e.single("veil_source_running", "gauge", "1 while the camera delivers frames.", f64::from(u8::from(p.source.running)));
        e.single("veil_frames_per_second_in", "gauge", "Frame rate from the camera over the last 5 s.", p.fps_in);
        e.single("veil_frames_per_second_out", "gauge", "Redacted frame rate over the last 5 s.", p.fps_out);
        e.single("veil_queue_depth", "gauge", "Frames waiting for detection.", p.queue_depth as f64);
        e.single("veil_live_tracks", "gauge", "Faces the tracker follows now.", p.live_tracks as f64);
        // Percentiles of the last 512 frames: gauges (a Prometheus summary's count and sum would
        // have to cover the whole run).
        for (name, what, window) in [
            ("veil_inference", "Detection time per frame", &p.inference_ms),
            ("veil_end_to_end", "Capture to redacted output per frame", &p.end_to_end_ms),
        ] {
            if let Some(w) = window {
                for (q, v) in [("p50", w.p50), ("p95", w.p95)] {
                    let metric = format!("{name}_{q}_seconds");
                    e.single(&metric, "gauge", &format!("{what}, {q} of the last 512 frames."), v / 1000.0);
                }
            }
        }
    }
    if let Some(s) = f.worker_silence_s {
        e.single(
            "veil_pipeline_worker_silence_seconds",
            "gauge",
            "Seconds since the detection worker last went round its loop (the watchdog's measure of a hung pipeline).",
            s,
        );
    }

    // Upload jobs and events.
    let j = f.jobs;
    e.family("veil_jobs", "gauge", "Upload jobs in the database, by state.");
    for (state, n) in [("queued", j.queued), ("processing", j.processing), ("completed", j.completed), ("failed", j.failed)] {
        e.sample("veil_jobs", &[("state", state)], n as f64);
    }
    e.single("veil_job_faces", "gauge", "Faces masked in the jobs still in the database.", j.faces as f64);
    e.single("veil_job_result_bytes", "gauge", "Bytes of redacted results kept for download.", j.stored_result_bytes as f64);
    e.single("veil_events_queued", "gauge", "MQTT events waiting in the on-disk outbox.", t.events_queued as f64);
    e.single("veil_events_dropped_total", "counter", "MQTT events dropped because the outbox was full.", t.events_dropped as f64);

    // The board.
    e.single("veil_cpu_usage_ratio", "gauge", "CPU use of the whole board, 0 to 1.", f64::from(t.cpu_percent) / 100.0);
    e.family("veil_load_average", "gauge", "Load average over 1, 5 and 15 minutes.");
    for (window, v) in [("1m", t.load_1m), ("5m", t.load_5m), ("15m", t.load_15m)] {
        e.sample("veil_load_average", &[("window", window)], v);
    }
    if let Some(c) = t.temperature_c {
        e.single("veil_temperature_celsius", "gauge", "The hottest thermal sensor of the board.", f64::from(c));
    }
    e.single("veil_memory_used_bytes", "gauge", "Memory in use on the board.", t.memory_used_mb as f64 * MB);
    e.single("veil_memory_total_bytes", "gauge", "Memory of the board.", t.memory_total_mb as f64 * MB);
    e.single("process_resident_memory_bytes", "gauge", "Resident memory of the veil process.", t.process_rss_mb as f64 * MB);
    if let (Some(free), Some(total)) = (t.disk_free_mb, t.disk_total_mb) {
        e.single("veil_state_disk_free_bytes", "gauge", "Free space on the file system of the state directory.", free as f64 * MB);
        e.single("veil_state_disk_total_bytes", "gauge", "Size of the file system of the state directory.", total as f64 * MB);
    }
    e.out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::metrics::{DropCause, Metrics};

    #[test]
    fn every_sample_follows_its_help_and_type_and_labels_are_escaped() {
        let m = Metrics::default();
        m.frame_captured();
        m.frame_output(12.0, 30.0);
        m.dropped(DropCause::Deadline, 2);
        let snapshot = m.snapshot();
        let t = Telemetry { backend: "centerface \"int8\"\n".into(), capture: "on", temperature_c: Some(51.5), ..Default::default() };
        let jobs = JobTotals { queued: 1, completed: 3, faces: 7, ..Default::default() };
        let text = render(&Figures { telemetry: &t, pipeline: Some(&snapshot), worker_silence_s: Some(0.1), jobs: &jobs });
        assert!(text.contains(r#"veil_build_info{version="0.1.0",backend="centerface \"int8\"\n"} 1"#), "{text}");
        assert!(text.contains("veil_frames_dropped_total{cause=\"deadline\"} 2\n"), "{text}");
        assert!(text.contains("veil_inference_p50_seconds 0.012\n"), "{text}");
        assert!(text.contains("veil_jobs{state=\"completed\"} 3\n"), "{text}");
        assert!(text.contains("veil_capture{state=\"on\"} 1\nveil_capture{state=\"off\"} 0\n"), "{text}");
        // Each family is declared once, before its samples.
        let mut declared = std::collections::HashSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                assert!(declared.insert(rest.split(' ').next().unwrap().to_string()), "{line} twice");
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap();
                assert!(declared.contains(name), "{name} has no TYPE before it");
            }
        }
        let without_camera = render(&Figures { telemetry: &t, pipeline: None, worker_silence_s: None, jobs: &jobs });
        assert!(!without_camera.contains("veil_frames_captured_total"));
        assert!(without_camera.contains("veil_capture{state=\"on\"} 1"));
    }
}
