//! `veil serve` configuration: a TOML file (every key optional; embedded defaults otherwise),
//! validated as a whole before anything starts, with the command line's overrides applied on top.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use veil_models::{DetectParams, DetectScale, Precision, Tiling};
use veil_redact::{MaskStyle, Method, Shape};

use crate::pipeline::tracker::TrackerConfig;

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub detector: DetectorConfig,
    pub redact: RedactConfig,
    /// No `[camera]` section: the daemon serves the API only.
    pub camera: Option<CameraConfig>,
    pub tracker: TrackerConfig,
    #[serde(rename = "privacy_zone")]
    pub privacy_zones: Vec<PrivacyZone>,
    pub spool: SpoolConfig,
    pub recording: RecordingConfig,
    pub preview: PreviewConfig,
    pub api: ApiConfig,
    pub jobs: JobsConfig,
    pub webhooks: WebhooksConfig,
    /// No `[mqtt]` section: no broker is contacted.
    pub mqtt: Option<MqttConfig>,
    pub gpio: GpioConfig,
}

/// Redacted video recording of the camera (`sinks::recording`): H.264 segments beside (or
/// instead of) the JPEG spool.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecordingConfig {
    pub enabled: bool,
    /// Relative paths are under the state directory.
    pub dir: PathBuf,
    /// Length of each file.
    pub segment_seconds: u64,
    /// `mp4` (fragmented: a power cut loses at most the last second) or `mkv`.
    pub container: String,
    /// GStreamer H.264 encoder: `x264enc` (software, any board), `v4l2h264enc` (Raspberry Pi 4's
    /// hardware encoder), `nvv4l2h264enc` (Jetson).
    pub encoder: String,
    /// x264enc's bitrate.
    pub bitrate_kbps: u32,
    /// Rotation, oldest segment first (0 age = no age limit).
    pub max_files: usize,
    pub max_megabytes: u64,
    pub max_age_hours: f64,
    /// fsync each segment before it becomes visible.
    pub fsync: bool,
}

impl Default for RecordingConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            dir: "recordings".into(),
            segment_seconds: 60,
            container: "mp4".into(),
            encoder: "x264enc".into(),
            bitrate_kbps: 2000,
            max_files: 1000,
            max_megabytes: 8192,
            max_age_hours: 0.0,
            fsync: true,
        }
    }
}

/// The Raspberry Pi's status LED and privacy switch (BCM pin numbers; needs the `rpi` build).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct GpioConfig {
    pub enabled: bool,
    pub led_pin: Option<u8>,
    pub led_active_low: bool,
    pub privacy_switch_pin: Option<u8>,
    /// The switch closes to ground (internal pull-up); `false`: it pulls the pin high.
    pub privacy_switch_active_low: bool,
    pub poll_ms: u64,
    /// Consecutive equal reads before a new switch position counts.
    pub debounce_reads: u32,
}

impl Default for GpioConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            led_pin: None,
            led_active_low: false,
            privacy_switch_pin: None,
            privacy_switch_active_low: true,
            poll_ms: 10,
            debounce_reads: 3,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    pub listen: String,
    /// Where the daemon keeps its database, spool and uploads. Default: `$STATE_DIRECTORY`
    /// (systemd), else `./veil-state`.
    pub state_dir: Option<PathBuf>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self { listen: "127.0.0.1:8080".into(), state_dir: None }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DetectorConfig {
    pub backend: String,
    pub precision: String,
    pub confidence: f32,
    pub nms_threshold: f32,
    pub max_faces: usize,
    pub scale: String,
    /// auto | off | WxH: how the scaled image is cut into network inputs.
    pub tile: String,
    /// Tiny boxes (under 24 network px) need at least this score.
    pub tiny_confidence: f32,
    /// The `text` backend: minimum mean text probability of a line, and its minimum height (px).
    pub text_confidence: f32,
    pub text_min_height: f32,
    /// The `persons` backend: minimum score of a person.
    pub person_confidence: f32,
    /// Inference threads (0 = all cores).
    pub threads: usize,
    pub model_dir: Option<PathBuf>,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        let p = DetectParams::default();
        Self {
            backend: "yunet+plates+codes+text+persons".into(),
            precision: "auto".into(),
            confidence: p.confidence,
            nms_threshold: p.nms_threshold,
            max_faces: p.max_faces,
            scale: "auto".into(),
            tile: "auto".into(),
            tiny_confidence: p.tiny_confidence,
            text_confidence: p.text_confidence,
            text_min_height: p.text_min_height,
            person_confidence: p.person_confidence,
            threads: 0,
            model_dir: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedactConfig {
    pub method: String,
    pub strength: Option<f32>,
    pub block: Option<u32>,
    pub color: String,
    pub shape: String,
    pub padding: f32,
    pub feather: f32,
}

impl Default for RedactConfig {
    fn default() -> Self {
        Self {
            method: "gaussian".into(),
            strength: None,
            block: None,
            color: "#000000".into(),
            shape: "ellipse".into(),
            padding: veil_redact::DEFAULT_PADDING,
            feather: veil_redact::DEFAULT_FEATHER,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct CameraConfig {
    /// `/dev/videoN`, a V4L2 card name (`v4l2:NAME`), `libcamera` (Pi camera modules),
    /// `nvargus` (Jetson CSI), `rtsp://...`, `gst:<pipeline>`, a video file, a directory of
    /// images, an MJPEG file, or `test-pattern`.
    pub source: String,
    pub width: u32,
    pub height: u32,
    /// Frame rate asked of a camera (default 30). For files and the test pattern: unset means
    /// every frame is processed as fast as the pipeline goes; set, they replay at this pace like
    /// a live camera (frames dropped when detection falls behind).
    pub fps: Option<u32>,
    /// Pixel formats to try, in order: mjpeg, yuyv, rgb24.
    pub formats: Vec<String>,
    /// V4L2 controls to set at open, by name.
    pub controls: std::collections::BTreeMap<String, String>,
    /// Replay files forever.
    #[serde(rename = "loop")]
    pub looped: bool,
    /// Video files play at their own frame rate, like a camera (frames are dropped when
    /// detection falls behind); off, every frame is redacted as fast as detection goes.
    pub realtime: bool,
    /// Frames waiting for detection; when full, the oldest is dropped (live sources). 1 keeps
    /// latency lowest: detection always takes the freshest frame.
    pub queue_depth: usize,
    /// A frame not redacted within this many milliseconds of capture is dropped, never output.
    pub deadline_ms: u64,
    /// What the camera masks (`faces`, `license_plates`, `qr_codes`, `barcodes`, `text`); empty = the
    /// faces and licence plates of what the detector backend finds. Uploads choose per request.
    pub categories: Vec<String>,
    /// Detection workers, each detecting its own frame (0 = one per core); frames re-enter
    /// capture order before the tracker. Each worker's inference gets cores / workers threads.
    pub detect_workers: usize,
    /// Licence plates (and text, the same network) are looked for in every Nth frame (the plate
    /// detector costs many face detections); the tracker carries and moves their masks between.
    /// 1 = every frame.
    pub plates_every: u32,
    /// The plate detector's input long side in the camera (uploads use 1600, which finds a few
    /// more plates at about twice the cost).
    pub plate_long_side: u32,
    /// The plate detector works the frame in horizontal bands of at most this many network rows
    /// (0: one pass). Lowers the camera's peak memory and costs frames (README, "Camera rate":
    /// memory, measured).
    pub plate_band_rows: u32,
    /// The camera is mounted turned: its frames are turned this many degrees clockwise (0, 90,
    /// 180 or 270) as they are captured, before detection and every sink.
    pub rotation: u16,
}

/// `camera.plates_every`'s default (README, "Camera rate": the coverage measured at it).
pub const DEFAULT_PLATES_EVERY: u32 = 4;
/// `camera.plate_long_side`'s default: a 720p frame's own width.
pub const DEFAULT_PLATE_LONG_SIDE: u32 = 1280;

impl CameraConfig {
    /// Detection workers for `cores` cores.
    pub fn workers(&self, cores: usize) -> usize {
        match self.detect_workers {
            0 => cores.max(1),
            n => n,
        }
    }
}

impl Default for CameraConfig {
    fn default() -> Self {
        Self {
            source: "/dev/video0".into(),
            width: 1280,
            height: 720,
            fps: None,
            formats: vec!["mjpeg".into(), "yuyv".into(), "rgb24".into()],
            controls: Default::default(),
            looped: false,
            realtime: false,
            queue_depth: 1,
            deadline_ms: 2000,
            categories: Vec::new(),
            detect_workers: 0,
            plates_every: DEFAULT_PLATES_EVERY,
            plate_long_side: DEFAULT_PLATE_LONG_SIDE,
            plate_band_rows: 0,
            rotation: 0,
        }
    }
}

/// A fixed polygon masked in every frame, in coordinates relative to the frame (0..1).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PrivacyZone {
    #[serde(default)]
    pub name: String,
    pub points: Vec<[f32; 2]>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SpoolConfig {
    pub enabled: bool,
    /// Relative paths are under the state directory.
    pub dir: PathBuf,
    pub max_files: usize,
    pub max_megabytes: u64,
    /// Delete frames older than this (0 = keep until count or size rotates them out).
    pub max_age_hours: f64,
    pub quality: u8,
    /// fsync each frame before it becomes visible (survives power loss; slower on SD cards).
    pub fsync: bool,
}

impl Default for SpoolConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            dir: "spool".into(),
            max_files: 10_000,
            max_megabytes: 2048,
            max_age_hours: 0.0,
            quality: 85,
            fsync: true,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PreviewConfig {
    pub enabled: bool,
    /// At most this many preview frames a second per viewer.
    pub max_fps: f64,
}

impl Default for PreviewConfig {
    fn default() -> Self {
        Self { enabled: true, max_fps: 10.0 }
    }
}

/// The REST APIs: auth, limits, TLS.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// Require an API key (`veil keys create`) on every route except health and the OpenAPI
    /// document.
    pub auth: bool,
    /// Requests a key may make per minute and per UTC day (0 = no limit).
    pub rate_per_minute: u32,
    pub rate_per_day: u32,
    /// Largest request body; bigger uploads get 413.
    pub max_upload_megabytes: u64,
    /// Largest video upload (PiiBlur's `POST /api/v1/media/redact`; spooled to disk as it
    /// arrives, never held in memory); bigger gets 413.
    pub max_video_megabytes: u64,
    /// Longest video upload, by its container's duration; longer gets 413 before it is queued.
    pub max_video_seconds: u64,
    /// Largest image (pixels) an upload may decode to.
    pub max_image_megapixels: u64,
    /// Memory for photos being processed at once (each reserves about 8 bytes a pixel plus
    /// 96 MB before it is decoded; beyond it work waits, and a sync request that cannot get its
    /// share within half its timeout gets 503 + Retry-After). 0 = a quarter of the machine's RAM.
    pub max_decode_megabytes: u64,
    /// A request still running after this long gets 503 (its photo is never passed through).
    pub request_timeout_s: u64,
    /// Requests served at once; more get 503 at once instead of queueing without bound.
    pub max_concurrent_requests: usize,
    /// Requests one API key may have in flight (0 = a quarter of `max_concurrent_requests`);
    /// health, metrics and the field page's files are outside both pools.
    pub max_concurrent_per_key: usize,
    /// Uploads slower than this many KB/s after their first 10 s are cut off with 408; 0 = no
    /// minimum.
    pub min_upload_kbps: u64,
    /// Let FaceBlurest-style requests name a `photo_url` for the device to fetch (off: SSRF).
    pub photo_url_fetch: bool,
    /// Serve kept originals at `/api/v1/media/{id}/original` (needs `jobs.keep_originals_hours`).
    /// Off: unredacted photos never leave the device over HTTP.
    pub serve_originals: bool,
    /// Serve HTTPS with this certificate chain and key (PEM); both or neither.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// The masking floor's categories: masked in every upload whatever the request names (a
    /// plates-only request still gets its faces masked). `[]` lets clients turn faces off.
    pub always_mask: Vec<String>,
    /// How long an admin console sign-in (`POST /api/v1/admin/auth/login`) lasts.
    pub admin_session_seconds: u64,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            auth: true,
            rate_per_minute: 600,
            rate_per_day: 100_000,
            max_upload_megabytes: 25,
            max_video_megabytes: 500,
            max_video_seconds: 600,
            max_image_megapixels: 100,
            max_decode_megabytes: 0,
            request_timeout_s: 120,
            max_concurrent_requests: 64,
            max_concurrent_per_key: 0,
            min_upload_kbps: 4,
            photo_url_fetch: false,
            serve_originals: false,
            tls_cert: None,
            tls_key: None,
            always_mask: vec!["faces".into()],
            admin_session_seconds: 43_200,
        }
    }
}

/// The job engine behind the upload APIs.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct JobsConfig {
    /// Worker threads (0 = one per core).
    pub workers: usize,
    /// Keep uploaded originals this long after their job ends (0 = delete at once).
    pub keep_originals_hours: f64,
    /// Keep redacted results this long, and within this much disk (oldest deleted first).
    pub result_ttl_hours: f64,
    pub max_result_megabytes: u64,
    /// A job interrupted by a stop this many times fails instead of running again.
    pub max_attempts: u32,
    /// Uploads refused (503) while this many jobs wait.
    pub max_queued: usize,
    /// How often retention is enforced.
    pub sweep_interval_s: f64,
}

impl Default for JobsConfig {
    fn default() -> Self {
        Self {
            workers: 0,
            keep_originals_hours: 0.0,
            result_ttl_hours: 24.0,
            max_result_megabytes: 2048,
            max_attempts: 3,
            max_queued: 1000,
            sweep_interval_s: 30.0,
        }
    }
}

/// Completion notifications.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhooksConfig {
    /// HMAC-SHA256 key of `X-Veil-Signature`. Unset: one is generated at first start and kept
    /// in `STATE_DIR/webhook-secret`.
    pub secret: Option<String>,
    /// Where MaskIt-style jobs with `useWebhook` report (that API takes no URL per job).
    pub default_url: Option<String>,
    /// Where deliveries may go: `*` (any address except loopback, link-local and the cloud
    /// metadata addresses, the device's own, and IPv6 forms of those), CIDRs, addresses or host
    /// names. An entry naming a refused address allows it (a receiver on this device); a list
    /// without `*` allows only what it names. Checked when a URL is submitted (422) and again,
    /// after DNS, at every delivery.
    pub allow: Vec<String>,
    pub timeout_s: f64,
    /// Attempts per notification; the wait doubles from `retry_base_s` after each failure.
    pub max_attempts: u32,
    pub retry_base_s: f64,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        Self {
            secret: None,
            default_url: None,
            allow: vec!["*".into()],
            timeout_s: 10.0,
            max_attempts: 8,
            retry_base_s: 5.0,
        }
    }
}

/// How the device talks to the fleet's MQTT broker.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct MqttConfig {
    /// `mqtt://HOST:PORT` or `mqtts://HOST:PORT` (TLS).
    pub url: String,
    /// Default: the host name.
    pub device_id: Option<String>,
    /// Default: `veil/<device_id>`.
    pub topic_prefix: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    /// A file holding the password (first line), kept out of the config file.
    pub password_file: Option<PathBuf>,
    /// CA certificates (PEM) the broker's certificate must chain to; default: the public web roots.
    pub ca_file: Option<PathBuf>,
    /// Client certificate chain and key (PEM) for brokers that require mutual TLS.
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    pub keep_alive_s: u64,
    pub telemetry_interval_s: f64,
    /// `window` (a batch every `detections_window_s`), `frame` (one message per frame) or `off`.
    pub detections: String,
    pub detections_window_s: f64,
    /// Events kept on disk while the broker is away; beyond it the oldest are dropped (counted).
    pub max_queued_events: usize,
    pub reconnect_min_s: f64,
    pub reconnect_max_s: f64,
    /// Publish Home Assistant discovery documents under `discovery_prefix`.
    pub homeassistant: bool,
    pub discovery_prefix: String,
}

impl Default for MqttConfig {
    fn default() -> Self {
        Self {
            url: "mqtt://127.0.0.1:1883".into(),
            device_id: None,
            topic_prefix: None,
            username: None,
            password: None,
            password_file: None,
            ca_file: None,
            client_cert: None,
            client_key: None,
            keep_alive_s: 30,
            telemetry_interval_s: 30.0,
            detections: "window".into(),
            detections_window_s: 5.0,
            max_queued_events: 10_000,
            reconnect_min_s: 1.0,
            reconnect_max_s: 60.0,
            homeassistant: true,
            discovery_prefix: "homeassistant".into(),
        }
    }
}

impl Config {
    /// Read and validate a config file.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let config: Config = toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        Ok(config)
    }

    /// Check every value; the error names the key.
    pub fn validate(&self) -> anyhow::Result<()> {
        self.detect_params()?;
        self.precision()?;
        let known = veil_models::Registry::backend_names();
        let members: Vec<&str> = self.detector.backend.split(veil_models::ENSEMBLE_SEPARATOR).map(str::trim).collect();
        if let Some(bad) = members.iter().find(|m| !known.contains(m)) {
            anyhow::bail!(
                "detector.backend {:?}: unknown backend {bad:?} (known: {}; join several with +)",
                self.detector.backend,
                known.join(", ")
            );
        }
        self.mask_style()?;
        self.tracker.validate().map_err(anyhow::Error::msg)?;
        for (i, zone) in self.privacy_zones.iter().enumerate() {
            if zone.points.len() < 3 {
                anyhow::bail!("privacy_zone {i} ({}) needs at least 3 points", zone.name);
            }
            if zone.points.iter().flatten().any(|v| !(0.0..=1.0).contains(v)) {
                anyhow::bail!("privacy_zone {i} ({}): points are fractions of the frame, 0..1", zone.name);
            }
            let span = |k: usize| {
                let v = zone.points.iter().map(|p| p[k]);
                v.clone().fold(f32::MIN, f32::max) - v.fold(f32::MAX, f32::min)
            };
            if span(0) <= 0.0 || span(1) <= 0.0 {
                anyhow::bail!("privacy_zone {i} ({}): the points enclose no area", zone.name);
            }
        }
        if let Some(cam) = &self.camera {
            if cam.fps == Some(0) || cam.fps.is_some_and(|f| f > 1000) {
                anyhow::bail!("camera.fps must be within 1..1000 (leave it out to process every file)");
            }
            if cam.queue_depth == 0 || cam.queue_depth > 64 {
                anyhow::bail!("camera.queue_depth must be within 1..64");
            }
            if cam.deadline_ms == 0 {
                anyhow::bail!("camera.deadline_ms must be positive");
            }
            if cam.detect_workers > 64 {
                anyhow::bail!("camera.detect_workers must be within 0..64 (0 = one per core)");
            }
            if !(1..=100).contains(&cam.plates_every) {
                anyhow::bail!("camera.plates_every must be within 1..100 (1 = plates in every frame)");
            }
            if ![0, 90, 180, 270].contains(&cam.rotation) {
                anyhow::bail!("camera.rotation must be 0, 90, 180 or 270");
            }
            if !(320..=4096).contains(&cam.plate_long_side) {
                anyhow::bail!("camera.plate_long_side must be within 320..4096");
            }
            if cam.plate_band_rows != 0 && !(96..=4096).contains(&cam.plate_band_rows) {
                anyhow::bail!("camera.plate_band_rows must be 0 (one pass) or within 96..4096");
            }
            cam.pixel_formats()?;
        }
        if !(1..=100).contains(&self.spool.quality) {
            anyhow::bail!("spool.quality must be within 1..100");
        }
        let r = &self.recording;
        if !["mp4", "mkv"].contains(&r.container.as_str()) {
            anyhow::bail!("recording.container must be mp4 or mkv");
        }
        if !(1..=3600).contains(&r.segment_seconds) {
            anyhow::bail!("recording.segment_seconds must be within 1..3600");
        }
        if !(0.1..=120.0).contains(&self.preview.max_fps) {
            anyhow::bail!("preview.max_fps must be within 0.1..120");
        }
        if !(0.0..=1e6).contains(&self.spool.max_age_hours) {
            anyhow::bail!("spool.max_age_hours must be within 0..1000000 (0 = no age limit)");
        }
        let a = &self.api;
        if a.max_upload_megabytes == 0 || a.max_upload_megabytes > 1024 {
            anyhow::bail!("api.max_upload_megabytes must be within 1..1024");
        }
        if a.max_video_megabytes == 0 || a.max_video_megabytes > 16384 {
            anyhow::bail!("api.max_video_megabytes must be within 1..16384");
        }
        if a.max_video_seconds == 0 || a.max_video_seconds > 24 * 3600 {
            anyhow::bail!("api.max_video_seconds must be within 1..86400");
        }
        if a.max_image_megapixels == 0 || a.max_image_megapixels > 1000 {
            anyhow::bail!("api.max_image_megapixels must be within 1..1000");
        }
        if a.max_decode_megabytes != 0 && a.max_decode_megabytes < 128 {
            anyhow::bail!("api.max_decode_megabytes must be 0 (a quarter of the RAM) or at least 128");
        }
        if a.request_timeout_s == 0 || a.max_concurrent_requests == 0 {
            anyhow::bail!("api.request_timeout_s and api.max_concurrent_requests must be positive");
        }
        if a.tls_cert.is_some() != a.tls_key.is_some() {
            anyhow::bail!("api.tls_cert and api.tls_key go together: set both or neither");
        }
        if let Some(bad) = a.always_mask.iter().find(|n| crate::categories::category_of(n).is_none()) {
            anyhow::bail!("api.always_mask: unknown category '{bad}' (faces, license_plates)");
        }
        let j = &self.jobs;
        for (name, v) in [
            ("jobs.keep_originals_hours", j.keep_originals_hours),
            ("jobs.result_ttl_hours", j.result_ttl_hours),
            ("jobs.sweep_interval_s", j.sweep_interval_s),
        ] {
            if !(0.0..=1e6).contains(&v) {
                anyhow::bail!("{name} must be within 0..1000000");
            }
        }
        if j.sweep_interval_s < 0.05 || j.max_attempts == 0 || j.max_queued == 0 {
            anyhow::bail!(
                "jobs.sweep_interval_s must be at least 0.05, jobs.max_attempts and jobs.max_queued positive"
            );
        }
        let w = &self.webhooks;
        if !(0.1..=300.0).contains(&w.timeout_s) || !(0.01..=3600.0).contains(&w.retry_base_s) || w.max_attempts == 0 {
            anyhow::bail!("webhooks: timeout_s within 0.1..300, retry_base_s within 0.01..3600, max_attempts positive");
        }
        crate::outbound::OutboundPolicy::webhooks(&w.allow).map_err(anyhow::Error::msg)?;
        if let Some(url) = &w.default_url {
            crate::webhooks::check_url(url).map_err(|e| anyhow::anyhow!("webhooks.default_url: {e}"))?;
        }
        if w.secret.as_deref().is_some_and(|s| s.len() < 16) {
            anyhow::bail!("webhooks.secret must be at least 16 characters");
        }
        self.server.listen.parse::<std::net::SocketAddr>().map_err(|e| anyhow::anyhow!("server.listen: {e}"))?;
        if let Some(m) = &self.mqtt {
            crate::mqtt::settings::validate(m)?;
        }
        let g = &self.gpio;
        if g.enabled {
            if !cfg!(feature = "rpi") {
                anyhow::bail!("gpio.enabled: this veil was built without GPIO support (cargo build --features rpi)");
            }
            if g.led_pin.is_none() && g.privacy_switch_pin.is_none() {
                anyhow::bail!("gpio.enabled needs gpio.led_pin or gpio.privacy_switch_pin");
            }
            if g.led_pin.is_some() && g.led_pin == g.privacy_switch_pin {
                anyhow::bail!("gpio.led_pin and gpio.privacy_switch_pin must be different pins");
            }
        }
        if !(1..=1000).contains(&self.gpio.poll_ms) || !(1..=100).contains(&self.gpio.debounce_reads) {
            anyhow::bail!("gpio.poll_ms must be within 1..1000 and gpio.debounce_reads within 1..100");
        }
        Ok(())
    }

    pub fn detect_params(&self) -> anyhow::Result<DetectParams> {
        let d = &self.detector;
        // The camera's categories; jobs replace them with their own request's.
        let categories = match self.camera.as_ref().map(|c| &c.categories) {
            Some(names) if !names.is_empty() => {
                Some(crate::categories::category_set(names).map_err(|e| anyhow::anyhow!("camera.categories: {e}"))?)
            }
            _ => None,
        };
        let params = DetectParams {
            confidence: d.confidence,
            nms_threshold: d.nms_threshold,
            max_faces: d.max_faces,
            scale: d.scale.parse::<DetectScale>().map_err(|e| anyhow::anyhow!("detector.scale: {e}"))?,
            tile: d.tile.parse::<Tiling>().map_err(|e| anyhow::anyhow!("detector.tile: {e}"))?,
            tiny_confidence: d.tiny_confidence,
            text_confidence: d.text_confidence,
            text_min_height: d.text_min_height,
            person_confidence: d.person_confidence,
            categories,
            ..DetectParams::default()
        };
        params.validate().map_err(|e| anyhow::anyhow!("detector: {e}"))?;
        Ok(params)
    }

    pub fn precision(&self) -> anyhow::Result<Precision> {
        self.detector.precision.parse().map_err(|e| anyhow::anyhow!("detector.precision: {e}"))
    }

    pub fn mask_style(&self) -> anyhow::Result<MaskStyle> {
        let r = &self.redact;
        let color = veil_redact::parse_color(&r.color).map_err(|e| anyhow::anyhow!("redact.color: {e}"))?;
        let mut method = Method::from_name(&r.method, r.strength, color).map_err(|e| anyhow::anyhow!("redact: {e}"))?;
        if let (Method::Pixelate { block }, Some(b)) = (&mut method, r.block) {
            *block = Some(b);
        }
        let shape: Shape = r.shape.parse().map_err(|e| anyhow::anyhow!("redact.shape: {e}"))?;
        let style = MaskStyle { method, shape, padding: r.padding, feather: r.feather };
        style.validate().map_err(|e| anyhow::anyhow!("redact: {e}"))?;
        Ok(style)
    }

    /// The state directory: the config's, else systemd's `$STATE_DIRECTORY`, else `./veil-state`.
    pub fn state_dir(&self) -> PathBuf {
        self.server
            .state_dir
            .clone()
            .or_else(|| std::env::var_os("STATE_DIRECTORY").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("veil-state"))
    }

    pub fn recording_dir(&self) -> PathBuf {
        if self.recording.dir.is_absolute() {
            self.recording.dir.clone()
        } else {
            self.state_dir().join(&self.recording.dir)
        }
    }

    pub fn spool_dir(&self) -> PathBuf {
        if self.spool.dir.is_absolute() {
            self.spool.dir.clone()
        } else {
            self.state_dir().join(&self.spool.dir)
        }
    }
}

impl CameraConfig {
    pub fn pixel_formats(&self) -> anyhow::Result<Vec<veil_camera::PixelFormat>> {
        use veil_camera::PixelFormat;
        self.formats
            .iter()
            .map(|f| match f.to_ascii_lowercase().as_str() {
                "mjpeg" | "mjpg" => Ok(PixelFormat::Mjpeg),
                "yuyv" => Ok(PixelFormat::Yuyv),
                "rgb24" | "rgb3" => Ok(PixelFormat::Rgb24),
                other => Err(anyhow::anyhow!("camera.formats: unknown format {other:?} (mjpeg, yuyv, rgb24)")),
            })
            .collect()
    }

    pub fn deadline(&self) -> Duration {
        Duration::from_millis(self.deadline_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_the_embedded_defaults_and_valid() {
        let c: Config = toml::from_str("").unwrap();
        c.validate().unwrap();
        assert!(c.camera.is_none());
        assert_eq!(c.server.listen, "127.0.0.1:8080");
    }

    #[test]
    fn camera_plate_bands_are_off_or_thick_enough_to_keep_rows() {
        let with = |rows: u32| -> anyhow::Result<()> {
            let c: Config = toml::from_str(&format!("[camera]\nsource = \"test-pattern\"\nplate_band_rows = {rows}")).unwrap();
            c.validate()
        };
        with(0).unwrap();
        with(224).unwrap();
        let err = with(64).unwrap_err().to_string();
        assert!(err.contains("camera.plate_band_rows"), "{err}");
    }

    #[test]
    fn the_example_config_is_valid_and_matches_the_defaults() {
        let example: Config = toml::from_str(include_str!("../../veil.example.toml")).unwrap();
        example.validate().unwrap();
        let defaults = Config::default();
        let as_toml = |c: &Config| toml::to_string(c).unwrap();
        let mut example_no_camera = example.clone();
        assert_eq!(example_no_camera.camera.take().unwrap().source, "/dev/video0");
        assert!(example_no_camera.mqtt.is_none(), "MQTT stays off until a broker is configured");
        assert_eq!(as_toml(&example_no_camera), as_toml(&defaults), "example and embedded defaults drifted apart");
        let cam = example.camera.unwrap();
        assert_eq!(toml::to_string(&cam).unwrap(), toml::to_string(&CameraConfig::default()).unwrap());
    }

    #[test]
    fn the_example_documents_the_mqtt_defaults_in_comments() {
        let example = include_str!("../../veil.example.toml");
        let block: String = example
            .lines()
            .skip_while(|l| !l.starts_with("# [mqtt]"))
            .take_while(|l| l.starts_with('#'))
            .filter(|l| !l.starts_with("##"))
            .map(|l| l.strip_prefix("# ").unwrap_or(l).to_string() + "\n")
            .filter(|l| l.starts_with('[') || l.contains(" = "))
            .collect();
        let parsed: Config = toml::from_str(&block).unwrap_or_else(|e| panic!("{e}: {block}"));
        let documented = parsed.mqtt.expect("an [mqtt] block");
        assert_eq!(toml::to_string(&documented).unwrap(), toml::to_string(&MqttConfig::default()).unwrap());
    }

    #[test]
    fn a_full_config_parses_and_bad_values_name_their_key() {
        let text = r#"
            [server]
            listen = "0.0.0.0:9000"
            [camera]
            source = "test-pattern"
            fps = 15
            formats = ["yuyv"]
            controls = { "Power Line Frequency" = "50 Hz" }
            [tracker]
            hold_frames = 4
            [[privacy_zone]]
            name = "neighbour's window"
            points = [[0.1, 0.1], [0.3, 0.1], [0.3, 0.4]]
            [spool]
            max_files = 50
        "#;
        let c: Config = toml::from_str(text).unwrap();
        c.validate().unwrap();
        assert_eq!(c.camera.as_ref().unwrap().fps, Some(15));
        assert_eq!(c.privacy_zones[0].points.len(), 3);
        let bad = text.replace("[0.3, 0.4]", "[1.3, 0.4]");
        let err = toml::from_str::<Config>(&bad).unwrap().validate().unwrap_err().to_string();
        assert!(err.contains("privacy_zone 0"), "{err}");
        let flat = text.replace("[0.3, 0.4]", "[0.2, 0.1]");
        let err = toml::from_str::<Config>(&flat).unwrap().validate().unwrap_err().to_string();
        assert!(err.contains("no area"), "{err}");
        for bad in ["[preview]\nmax_fps = nan", "[preview]\nmax_fps = 1e-30", "[spool]\nmax_age_hours = inf"] {
            assert!(toml::from_str::<Config>(bad).unwrap().validate().is_err(), "{bad}");
        }
        assert!(toml::from_str::<Config>("[camera]\nsorce = \"x\"").is_err(), "unknown keys are refused");
        let err = toml::from_str::<Config>("[redact]\nmethod = \"smudge\"").unwrap().validate().unwrap_err();
        assert!(err.to_string().contains("smudge"));
    }
}
