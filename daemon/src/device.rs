//! The running device as the fleet's commands see it: its effective config, the live detection
//! and masking settings, the capture switch, the swappable detectors and the latest redacted
//! frame. MQTT commands act through this; it knows nothing of MQTT.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use tokio::sync::watch;
use veil_models::{Detector, Precision, Registry};

use crate::config::Config;
use crate::pipeline::controls::{CaptureSwitch, LiveTuning, Tuning};
use crate::remote_config;
use crate::sinks::preview::{PreviewFeed, PreviewImage};
use crate::swappable_detector::SwappableDetector;

/// Who holds capture off when a remote command stops it.
pub const REMOTE_HOLD: &str = "remote";

pub struct Device {
    config: Mutex<Config>,
    overlay: Mutex<Value>,
    state_dir: PathBuf,
    changes: watch::Sender<Arc<Config>>,
    pub tuning: Arc<LiveTuning>,
    pub capture: Arc<CaptureSwitch>,
    registry: Registry,
    /// The camera pipeline's detector and the job workers' (one inference thread each).
    pipeline_detector: Arc<SwappableDetector>,
    job_detector: Arc<SwappableDetector>,
    pipeline_threads: usize,
    preview: PreviewFeed,
}

/// A command the device refused, with the reason to send back.
#[derive(Debug)]
pub struct Refused(pub String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn refuse<T>(why: impl Into<String>) -> Result<T, Refused> {
    Err(Refused(why.into()))
}

pub struct DeviceParts {
    pub config: Config,
    pub overlay: Value,
    pub state_dir: PathBuf,
    pub registry: Registry,
    pub pipeline_detector: Arc<SwappableDetector>,
    pub job_detector: Arc<SwappableDetector>,
    pub pipeline_threads: usize,
    pub preview: PreviewFeed,
    /// Made before the pipeline, so a privacy switch that is on at boot holds capture from the start.
    pub capture: Arc<CaptureSwitch>,
}

impl Device {
    pub fn new(parts: DeviceParts) -> anyhow::Result<Arc<Self>> {
        let params = crate::categories::camera_params(
            parts.config.detect_params()?,
            &parts.pipeline_detector.info().categories,
        );
        let tuning = Tuning { params, style: parts.config.mask_style()? };
        Ok(Arc::new(Self {
            changes: watch::channel(Arc::new(parts.config.clone())).0,
            config: Mutex::new(parts.config),
            overlay: Mutex::new(parts.overlay),
            state_dir: parts.state_dir,
            tuning: Arc::new(LiveTuning::new(tuning)),
            capture: parts.capture,
            registry: parts.registry,
            pipeline_detector: parts.pipeline_detector,
            job_detector: parts.job_detector,
            pipeline_threads: parts.pipeline_threads,
            preview: parts.preview,
        }))
    }

    pub fn config(&self) -> Config {
        self.config.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Follows every accepted config change.
    pub fn config_changes(&self) -> watch::Receiver<Arc<Config>> {
        self.changes.subscribe()
    }

    pub fn has_camera(&self) -> bool {
        self.config.lock().unwrap_or_else(|p| p.into_inner()).camera.is_some()
    }

    /// `on`, `off` (held off by the privacy switch or a command) or `none` (no camera).
    pub fn capture_state(&self) -> &'static str {
        match (self.has_camera(), self.capture.is_on()) {
            (false, _) => "none",
            (true, true) => "on",
            (true, false) => "off",
        }
    }

    /// `name-precision` of the backend in use.
    pub fn backend(&self) -> String {
        let info = self.pipeline_detector.info();
        format!("{}-{}", info.name, info.precision)
    }

    /// `config/get`: the effective config, secrets hidden.
    pub fn config_json(&self) -> Value {
        remote_config::redacted(&self.config())
    }

    /// `config/set`: validate `patch` against the whole config, apply what can change live,
    /// persist the overlay atomically. Nothing changes when it is refused.
    pub fn set_config(&self, patch: &Value) -> Result<Value, Refused> {
        let mut config = self.config.lock().unwrap_or_else(|p| p.into_inner());
        let mut overlay = self.overlay.lock().unwrap_or_else(|p| p.into_inner());
        let change = remote_config::plan(&config, &overlay, patch).map_err(Refused)?;
        let new = &change.config;
        let backend_changed = new.detector.backend != config.detector.backend || new.detector.precision != config.detector.precision;
        let tuning = Tuning {
            params: new.detect_params().map_err(|e| Refused(e.to_string()))?,
            style: new.mask_style().map_err(|e| Refused(e.to_string()))?,
        };
        // Build a new backend before anything is stored, so a failure changes nothing.
        let detectors = if backend_changed {
            let precision = new.precision().map_err(|e| Refused(e.to_string()))?;
            let size = new.camera.as_ref().map(|c| (c.width, c.height));
            Some(self.build_backend(&new.detector.backend, precision, size, &tuning)?)
        } else {
            None
        };
        let categories = match &detectors {
            Some((pipeline, _)) => pipeline.info().categories.clone(),
            None => self.pipeline_detector.info().categories.clone(),
        };
        if new.camera.is_some() {
            crate::categories::check_camera(&tuning.params, &categories).map_err(Refused)?;
        }
        let tuning = Tuning { params: crate::categories::camera_params(tuning.params, &categories), ..tuning };
        let path = remote_config::save(&self.state_dir, &change.overlay)
            .map_err(|e| Refused(format!("could not store the change: {e}")))?;
        if let Some((pipeline, jobs)) = detectors {
            self.pipeline_detector.replace(pipeline);
            self.job_detector.replace(jobs);
        }
        self.tuning.set(tuning);
        *config = change.config.clone();
        *overlay = change.overlay;
        self.changes.send_replace(Arc::new(change.config));
        tracing::info!(live = ?change.live, at_restart = ?change.at_restart, "config changed remotely");
        Ok(json!({
            "applied": change.live,
            "restart_required": change.at_restart,
            "stored_in": path.display().to_string(),
        }))
    }

    /// `backend/set`: switch the detector of the pipeline and the jobs; persisted like a config change.
    pub fn set_backend(&self, name: &str, precision: Option<&str>) -> Result<Value, Refused> {
        let precision = precision.unwrap_or("int8");
        self.set_config(&json!({"detector": {"backend": name, "precision": precision}}))?;
        Ok(json!({"active": self.backend()}))
    }

    /// Build the pipeline's and the jobs' detectors for `name`, warmed up for the camera's
    /// `size`. Called with the config lock held: reads nothing else behind a lock.
    fn build_backend(
        &self,
        name: &str,
        precision: Precision,
        size: Option<(u32, u32)>,
        tuning: &Tuning,
    ) -> Result<(Arc<dyn Detector>, Arc<dyn Detector>), Refused> {
        let mut known: Vec<String> = self.registry.list().into_iter().filter(|b| b.available).map(|b| b.name).collect();
        known.dedup();
        if !name.split(veil_models::ENSEMBLE_SEPARATOR).all(|member| known.iter().any(|k| k == member)) {
            return refuse(format!("unknown backend {name:?}; available: {}", known.join(", ")));
        }
        let build = |threads| self.registry.create(name, precision, threads).map_err(|e| Refused(format!("backend {name}: {e}")));
        let pipeline = build(self.pipeline_threads)?;
        let jobs = build(1)?;
        // Build the inference plan for the camera's size now, not on the next live frame.
        if let Some((width, height)) = size {
            let blank = vec![0u8; width as usize * height as usize * 3];
            if let Ok(image) = veil_models::RgbImage::new(&blank, width, height) {
                let params = crate::categories::camera_params(tuning.params, &pipeline.info().categories);
                pipeline
                    .detect(&image, &params)
                    .map_err(|e| Refused(format!("backend {name} failed its warm-up: {e}")))?;
            }
        }
        Ok((pipeline, jobs))
    }

    /// `capture/start` and `capture/stop`.
    pub fn set_capture(&self, on: bool) -> Result<Value, Refused> {
        if !self.has_camera() {
            return refuse("this device has no camera configured ([camera] is not set)");
        }
        let now_on = self.capture.hold(REMOTE_HOLD, !on);
        Ok(json!({"capture": if now_on { "on" } else { "off" }, "held_off_by": self.capture.holders()}))
    }

    /// Where the pipeline leaves its latest redacted frame.
    pub fn preview(&self) -> &PreviewFeed {
        &self.preview
    }

    /// The latest redacted frame, for `snapshot`.
    pub fn snapshot(&self) -> Result<Arc<PreviewImage>, Refused> {
        if !self.has_camera() {
            return refuse("this device has no camera configured ([camera] is not set)");
        }
        match self.preview.subscribe().borrow().clone() {
            Some(image) => Ok(image),
            None => refuse("no redacted frame yet"),
        }
    }
}
