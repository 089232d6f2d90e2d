//! One telemetry sample, as MQTT's `telemetry` payload and `/metrics` both report it: board health (CPU load, temperature, memory, disk, uptime, through
//! `sysinfo` and the kernel's thermal zones) and the daemon's own figures (fps, drops, inference
//! percentiles, queue depth, pending jobs, waiting events).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use sysinfo::{Components, Disks, ProcessesToUpdate, System};

use crate::pipeline::metrics::Metrics;
use crate::store::outbox::DROPPED_COUNTER;
use crate::store::{now_ms, rfc3339, Store};

#[derive(Debug, Default, Serialize)]
pub struct Telemetry {
    pub at: String,
    pub uptime_s: u64,
    pub system_uptime_s: u64,
    pub cpu_percent: f32,
    pub load_1m: f64,
    pub load_5m: f64,
    pub load_15m: f64,
    /// The hottest sensor, where the board exposes one.
    pub temperature_c: Option<f32>,
    pub memory_used_mb: u64,
    pub memory_total_mb: u64,
    pub process_rss_mb: u64,
    /// Of the file system holding the state directory.
    pub disk_free_mb: Option<u64>,
    pub disk_total_mb: Option<u64>,
    /// `on`, `off` or `none` (no camera).
    pub capture: &'static str,
    pub backend: String,
    pub fps_in: f64,
    pub fps_out: f64,
    pub frames_in: u64,
    pub frames_out: u64,
    pub dropped_frames: u64,
    pub inference_p50_ms: Option<f64>,
    pub inference_p95_ms: Option<f64>,
    pub queue_depth: usize,
    pub jobs_pending: u64,
    pub events_queued: u64,
    pub events_dropped: u64,
}

pub struct Sampler {
    system: System,
    disks: Option<Disks>,
    state_dir: PathBuf,
    started: Instant,
    pid: Option<sysinfo::Pid>,
}

/// The daemon-side figures a sample needs.
pub struct Sources<'a> {
    pub metrics: Option<&'a Arc<Metrics>>,
    pub store: &'a Store,
    /// `on`, `off` (held off) or `none` (no camera configured).
    pub capture: &'static str,
    pub backend: String,
}

impl Sampler {
    pub fn new(state_dir: &Path) -> anyhow::Result<Self> {
        let mut system = System::new().map_err(|e| anyhow::anyhow!("system information: {e:?}"))?;
        system.refresh_cpu_usage();
        Ok(Self {
            system,
            disks: Disks::new_with_refreshed_list().ok(),
            state_dir: state_dir.canonicalize().unwrap_or_else(|_| state_dir.to_path_buf()),
            started: Instant::now(),
            pid: sysinfo::get_current_pid().ok(),
        })
    }

    pub fn sample(&mut self, s: &Sources<'_>) -> Telemetry {
        self.system.refresh_cpu_usage();
        self.system.refresh_memory();
        let rss = self.pid.and_then(|pid| {
            self.system.refresh_processes(ProcessesToUpdate::Some(&[pid]), false);
            self.system.process(pid).map(|p| p.memory())
        });
        let load = System::load_average().ok();
        let (disk_free, disk_total) = self.disk_space();
        let m = s.metrics.map(|m| m.snapshot());
        let inference = m.as_ref().and_then(|m| m.inference_ms);
        const MB: u64 = 1 << 20;
        Telemetry {
            at: rfc3339(now_ms()),
            uptime_s: self.started.elapsed().as_secs(),
            system_uptime_s: System::uptime().unwrap_or(0),
            cpu_percent: self.system.global_cpu_usage(),
            load_1m: load.as_ref().map_or(0.0, |l| l.one),
            load_5m: load.as_ref().map_or(0.0, |l| l.five),
            load_15m: load.as_ref().map_or(0.0, |l| l.fifteen),
            temperature_c: temperature(),
            memory_used_mb: self.system.used_memory() / MB,
            memory_total_mb: self.system.total_memory() / MB,
            process_rss_mb: rss.unwrap_or(0) / MB,
            disk_free_mb: disk_free.map(|b| b / MB),
            disk_total_mb: disk_total.map(|b| b / MB),
            capture: s.capture,
            backend: s.backend.clone(),
            fps_in: m.as_ref().map_or(0.0, |m| round2(m.fps_in)),
            fps_out: m.as_ref().map_or(0.0, |m| round2(m.fps_out)),
            frames_in: m.as_ref().map_or(0, |m| m.frames_in),
            frames_out: m.as_ref().map_or(0, |m| m.frames_out),
            dropped_frames: m.as_ref().map_or(0, |m| m.dropped_total),
            inference_p50_ms: inference.as_ref().map(|p| round2(p.p50)),
            inference_p95_ms: inference.as_ref().map(|p| round2(p.p95)),
            queue_depth: m.as_ref().map_or(0, |m| m.queue_depth),
            jobs_pending: s.store.pending_jobs().unwrap_or(0),
            events_queued: s.store.outbox_len().unwrap_or(0),
            events_dropped: s.store.counter(DROPPED_COUNTER).unwrap_or(0),
        }
    }

    /// Free and total bytes of the mount holding the state directory (the longest matching
    /// mount point).
    fn disk_space(&mut self) -> (Option<u64>, Option<u64>) {
        let Some(disks) = self.disks.as_mut() else { return (None, None) };
        disks.refresh(true);
        disks
            .iter()
            .filter(|d| self.state_dir.starts_with(d.mount_point()))
            .max_by_key(|d| d.mount_point().as_os_str().len())
            .map_or((None, None), |d| (Some(d.available_space()), Some(d.total_space())))
    }
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// The hottest thermal zone (Raspberry Pi and Jetson expose their SoC there), else the hottest
/// hardware-monitoring sensor; `None` on boards (and VMs) with neither.
pub fn temperature() -> Option<f32> {
    let zones = std::fs::read_dir("/sys/class/thermal").ok().into_iter().flatten().flatten();
    let from_zones = zones
        .filter(|e| e.file_name().to_string_lossy().starts_with("thermal_zone"))
        .filter_map(|e| std::fs::read_to_string(e.path().join("temp")).ok())
        .filter_map(|t| t.trim().parse::<f32>().ok())
        .map(|milli| milli / 1000.0)
        .filter(|c| (-40.0..150.0).contains(c))
        .fold(None, |hot: Option<f32>, c| Some(hot.map_or(c, |h| h.max(c))));
    from_zones.or_else(|| {
        let components = Components::new_with_refreshed_list().ok()?;
        components.iter().filter_map(|c| c.temperature()).filter(|c| c.is_finite()).reduce(f32::max)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sample_reports_this_machine() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut sampler = Sampler::new(dir.path()).unwrap();
        let t = sampler.sample(&Sources { metrics: None, store: &store, capture: "on", backend: "centerface-int8".into() });
        assert!(t.memory_total_mb > 0 && t.memory_used_mb <= t.memory_total_mb, "{t:?}");
        assert!(t.process_rss_mb > 0, "{t:?}");
        assert!(t.disk_free_mb.is_some_and(|f| f <= t.disk_total_mb.unwrap()), "{t:?}");
        assert!(t.system_uptime_s > 0);
        assert_eq!(t.capture, "on");
        let json = serde_json::to_value(&t).unwrap();
        for key in ["cpu_percent", "temperature_c", "fps_in", "inference_p95_ms", "queue_depth", "jobs_pending"] {
            assert!(json.get(key).is_some(), "{key} missing");
        }
    }
}
