//! `veil serve`: the daemon. Loads the config, starts the camera pipeline (when `[camera]` is
//! set) and the HTTP server, and shuts both down cleanly on SIGINT/SIGTERM.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;

use crate::capture::open_source;
use crate::cli::ServeCmd;
use crate::config::{CameraConfig, Config};
use crate::pipeline::{Backpressure, Pipeline, PipelineConfig, StopSignal};

/// The smallest per-frame deadline of a file replay that processes every frame.
const REPLAY_DEADLINE: Duration = Duration::from_secs(60);
use crate::config::MqttConfig;
use crate::device::{Device, DeviceParts};
use crate::jobs::{EngineConfig, JobEngine, JobObserver, Observers};
use crate::mqtt::events::EventOutbox;
use crate::mqtt::{LinkParts, MqttLink};
use crate::remote_config;
use crate::swappable_detector::SwappableDetector;
use crate::gpio::{self, status::{device_state, DeviceState}};
use crate::pipeline::controls::CaptureSwitch;
use crate::systemd::{self, Notifier};
use veil_models::Detector;
use crate::photo::DecodeLimits;
use crate::server::auth::Auth;
use crate::server::rate_limit::RateLimiter;
use crate::server::{self, ApiSettings, AppState, TlsFiles};
use crate::store::Store;
use crate::webhooks::{load_secret, run_sender, WebhookSettings, Webhooks};
use crate::sinks::events::EventStream;
use crate::sinks::preview::PreviewFeed;
use crate::sinks::recording::{RecordingOptions, RecordingSink};
use crate::sinks::spool::{SpoolLimits, SpoolSink};
use crate::sinks::Dispatcher;

/// The config file, then the changes received from the fleet (the overlay in the state
/// directory), then the command line's overrides; validated. Also returns the overlay.
pub fn effective_config(cmd: &ServeCmd) -> anyhow::Result<(Config, serde_json::Value)> {
    let mut config = match &cmd.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    if let Some(dir) = &cmd.state_dir {
        config.server.state_dir = Some(dir.clone());
    }
    let state_dir = config.state_dir();
    let overlay = remote_config::load_overlay(&state_dir)?;
    if overlay.as_object().is_some_and(|o| !o.is_empty()) {
        match remote_config::apply(&config, &overlay).and_then(|c| c.validate().map(|()| c)) {
            Ok(c) => {
                eprintln!("veil: remote config changes applied from {}", remote_config::overlay_path(&state_dir).display());
                config = c;
            }
            Err(e) => eprintln!(
                "veil: WARNING: ignoring {}: {e}; fix or delete it",
                remote_config::overlay_path(&state_dir).display()
            ),
        }
    }
    if let Some(listen) = &cmd.listen {
        config.server.listen = listen.clone();
    }
    if let Some(backend) = &cmd.backend {
        config.detector.backend = backend.clone();
    }
    if let Some(source) = &cmd.source {
        config.camera.get_or_insert_with(CameraConfig::default).source = source.clone();
    }
    if let Some(spool) = &cmd.spool {
        config.spool.dir = spool.clone();
        config.spool.enabled = true;
    }
    if let Some(url) = &cmd.mqtt_url {
        config.mqtt.get_or_insert_with(MqttConfig::default).url = url.clone();
    }
    if let Some(id) = &cmd.device_id {
        match &mut config.mqtt {
            Some(m) => m.device_id = Some(id.clone()),
            None => anyhow::bail!("--device-id names the device on MQTT: give --mqtt-url or an [mqtt] section too"),
        }
    }
    config.validate()?;
    Ok((config, overlay))
}

pub fn run(cmd: ServeCmd) -> anyhow::Result<i32> {
    let (config, overlay) = effective_config(&cmd)?;
    let state_dir = config.state_dir();
    std::fs::create_dir_all(&state_dir).with_context(|| format!("state directory {}", state_dir.display()))?;
    let threads = match config.detector.threads {
        0 => super::cores(),
        n => n,
    };
    let tls = match (&config.api.tls_cert, &config.api.tls_key) {
        (Some(cert), Some(key)) => Some(TlsFiles { cert: cert.clone(), key: key.clone() }),
        _ => None,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.clamp(1, 4))
        .enable_all()
        .thread_name("veil-http")
        .build()?;
    runtime.block_on(async { server::install_crypto_provider() });
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let notifier = Arc::new(Notifier::from_env());
    let n = notifier.clone();
    runtime.spawn(async move {
        wait_for_signal().await;
        eprintln!("veil: shutting down");
        n.notify("STOPPING=1");
        let _ = shutdown_tx.send(true);
    });

    // Listen first: while the model loads, health checks get 503 instead of a refused connection.
    let listen = &config.server.listen;
    let listener = std::net::TcpListener::bind(listen).with_context(|| format!("listen on {listen}"))?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    eprintln!("veil: listening on {scheme}://{}", listener.local_addr()?);
    let (loaded_tx, loaded_rx) = watch::channel(false);
    let loading_server = runtime.spawn(server::serve(
        listener.try_clone()?,
        tls.clone(),
        server::loading_router(),
        loaded_rx,
        Duration::from_secs(2),
    ));
    // GPIO first: the LED shows that veil is starting, and a privacy switch that is on at boot
    // holds capture off before the camera is ever opened.
    let gpio::Pins { led, privacy_switch: mut switch } = gpio::open(&config.gpio)?;
    let capture = Arc::new(CaptureSwitch::default());
    if switch.as_mut().is_some_and(|s| s.is_on()) {
        capture.hold(gpio::privacy_switch::HOLDER, true);
        eprintln!("veil: privacy switch on: capture stays off");
    }
    let (device_state_tx, led_states) = watch::channel(DeviceState::Starting);
    if let Some(led) = led {
        runtime.spawn(gpio::led::run(led, led_states, shutdown_rx.clone()));
    }
    let started = runtime.block_on(async {
        start_services(&config, overlay, &state_dir, threads, capture.clone(), shutdown_rx.clone())
    });
    let _ = loaded_tx.send(true);
    let _ = runtime.block_on(loading_server);
    let Services { state, engine, pipeline, stop, webhook_sender, mqtt, outbox } = started?;
    let has_pipeline = pipeline.is_some();
    eprintln!("veil: ready");
    notifier.notify(&format!("READY=1\nSTATUS=serving on {}", config.server.listen));
    let metrics = state.metrics.clone();
    // A frame is abandoned at its deadline; a worker silent for 10 s longer than that is hung.
    let stall_limit = pipeline.as_ref().map_or(REPLAY_DEADLINE, |p| p.deadline()) + Duration::from_secs(10);
    let watchdog = systemd::feed_watchdog(
        notifier.clone(),
        move || systemd::pipeline_health(metrics.as_deref(), stall_limit),
        shutdown_rx.clone(),
    );

    if let Some(switch) = switch {
        let poll = Duration::from_millis(config.gpio.poll_ms);
        runtime.spawn(gpio::privacy_switch::run(switch, capture.clone(), poll, config.gpio.debounce_reads, shutdown_rx.clone()));
    }
    let state_metrics = state.metrics.clone();
    let mut state_shutdown = shutdown_rx.clone();
    runtime.spawn(async move {
        loop {
            let now = device_state(state_metrics.as_deref(), &capture, stall_limit);
            device_state_tx.send_if_modified(|s| std::mem::replace(s, now) != now);
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                _ = state_shutdown.changed() => return,
            }
        }
    });

    let served = runtime.block_on(async move {
        tokio::spawn(webhook_sender);
        tokio::spawn(watchdog);
        let served = server::serve(listener, tls, server::router(state), shutdown_rx, Duration::from_secs(10)).await;
        if let (Some(o), true) = (&outbox, has_pipeline) {
            // Delivered in order at the next connection.
            o.capture_changed(false, "daemon stopping", &[]);
        }
        if let Some(link) = mqtt {
            link.finish().await;
        }
        served
    });
    stop.stop();
    engine.shutdown();
    if let Some(p) = pipeline {
        let m = p.metrics();
        p.shutdown();
        let s = m.snapshot();
        eprintln!("veil: pipeline stopped: {} frames in, {} out, {} dropped", s.frames_in, s.frames_out, s.dropped_total);
    }
    served?;
    Ok(0)
}

/// Everything the daemon runs once the model is loaded.
struct Services {
    state: AppState,
    engine: Arc<JobEngine>,
    pipeline: Option<Pipeline>,
    stop: Arc<StopSignal>,
    webhook_sender: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
    mqtt: Option<MqttLink>,
    /// MQTT events (present with `[mqtt]`).
    outbox: Option<EventOutbox>,
}

/// Load the model, open the store, start the job engine, the camera pipeline and the MQTT link
/// (on the caller's tokio runtime).
fn start_services(
    config: &Config,
    overlay: serde_json::Value,
    state_dir: &std::path::Path,
    threads: usize,
    capture: Arc<CaptureSwitch>,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<Services> {
    let registry = super::registry(&config.detector.model_dir);
    // Each camera detection worker gets its share of the inference threads.
    let threads = match &config.camera {
        Some(cam) => (threads / cam.workers(super::cores())).max(1),
        None => threads,
    };
    let detector = SwappableDetector::new(registry.create(&config.detector.backend, config.precision()?, threads)?);
    let backend = detector.info().clone();
    eprintln!("veil: model {} {} ({}) loaded", backend.name, backend.version, backend.precision);
    if config.camera.is_some() {
        crate::categories::check_camera(&config.detect_params()?, &backend.categories).map_err(anyhow::Error::msg)?;
    }

    let store = Arc::new(Store::open(state_dir)?);
    let job_workers = match config.jobs.workers {
        0 => super::cores(),
        n => n,
    };
    // Job workers run one photo each on one inference thread: throughput over latency.
    let job_detector = SwappableDetector::new(registry.create(&config.detector.backend, config.precision()?, 1)?);
    let preview = PreviewFeed::default();
    let device = Device::new(DeviceParts {
        config: config.clone(),
        overlay,
        state_dir: state_dir.to_path_buf(),
        registry: registry.clone(),
        pipeline_detector: detector.clone(),
        job_detector: job_detector.clone(),
        pipeline_threads: threads,
        preview: preview.clone(),
        capture,
    })?;
    let webhooks = Arc::new(Webhooks::new(store.clone()));
    let outbox = config.mqtt.as_ref().map(|m| EventOutbox::new(store.clone(), m.max_queued_events));
    let mut observers: Vec<Arc<dyn JobObserver>> = vec![webhooks.clone()];
    if let Some(o) = &outbox {
        observers.push(Arc::new(o.clone()));
    }
    let engine = JobEngine::start(
        store.clone(),
        &state_dir.join("jobs"),
        job_detector.clone(),
        device.tuning.clone(),
        engine_config(config, job_workers),
        Arc::new(Observers(observers)),
    )?;
    let webhook_settings = WebhookSettings {
        secret: load_secret(config.webhooks.secret.as_deref(), state_dir)?,
        timeout: Duration::from_secs_f64(config.webhooks.timeout_s),
        max_attempts: config.webhooks.max_attempts as i64,
        retry_base: Duration::from_secs_f64(config.webhooks.retry_base_s),
        policy: crate::outbound::OutboundPolicy::webhooks(&config.webhooks.allow).map_err(anyhow::Error::msg)?,
    };
    let auth = Arc::new(Auth {
        enabled: config.api.auth,
        store: store.clone(),
        limiter: RateLimiter::new(store.clone(), config.api.rate_per_minute, config.api.rate_per_day),
    });
    if !config.api.auth {
        eprintln!("veil: WARNING: api.auth = false: every API route is open to anyone who can reach {}", config.server.listen);
    } else if store.list_keys()?.iter().all(|k| k.revoked_at.is_some()) {
        eprintln!(
            "veil: no API key yet; make one with: veil keys create --name NAME --state-dir {}",
            state_dir.display()
        );
    }
    let webhook_policy = Arc::new(webhook_settings.policy.clone());
    let api = Arc::new(ApiSettings {
        max_upload_bytes: (config.api.max_upload_megabytes as usize) << 20,
        max_video_bytes: (config.api.max_video_megabytes as usize) << 20,
        photo_url_fetch: config.api.photo_url_fetch,
        backends: registry.list().iter().map(|b| format!("{}-{}", b.name, b.precision)).collect(),
        default_webhook_url: config.webhooks.default_url.clone(),
        request_timeout: Duration::from_secs(config.api.request_timeout_s),
        max_concurrent_requests: config.api.max_concurrent_requests,
        max_concurrent_per_key: match config.api.max_concurrent_per_key {
            0 => (config.api.max_concurrent_requests / 4).max(1),
            n => n,
        },
        min_upload_bytes_per_s: config.api.min_upload_kbps * 1024,
        serve_originals: config.api.serve_originals && config.jobs.keep_originals_hours > 0.0,
        webhook_policy: webhook_policy.clone(),
    });

    let events = EventStream::new(256);
    let stop = Arc::new(StopSignal::default());
    let pipeline = match &config.camera {
        Some(cam) => Some(start_pipeline(config, cam, detector.clone(), &device, &events, stop.clone())?),
        None => None,
    };
    if let Some(cam) = &config.camera {
        eprintln!("veil: camera {} -> preview at /api/v1/stream.mjpeg", cam.source);
    }
    let state = AppState {
        preview,
        events,
        metrics: pipeline.as_ref().map(|p| p.metrics()),
        detector: job_detector,
        preview_interval: Duration::from_secs_f64(1.0 / config.preview.max_fps),
        preview_enabled: config.preview.enabled && config.camera.is_some(),
        shutdown: shutdown.clone(),
        engine: engine.clone(),
        auth,
        api,
        device: device.clone(),
        admin: Arc::new(crate::server::AdminSettings::new(config.api.admin_session_seconds as i64, config.api.tls_cert.is_some())),
        sampler: Arc::new(std::sync::Mutex::new(crate::telemetry::Sampler::new(state_dir)?)),
    };
    if let (Some(o), Some(_)) = (&outbox, &pipeline) {
        o.capture_changed(true, "daemon started", &[]);
    }
    let mqtt = match (&config.mqtt, outbox.clone()) {
        (Some(m), Some(outbox)) => Some(MqttLink::start(LinkParts {
            config: m.clone(),
            device,
            store: store.clone(),
            outbox,
            metrics: state.metrics.clone(),
            frames: state.events.clone(),
            state_dir: state_dir.to_path_buf(),
            shutdown: shutdown.clone(),
        })?),
        _ => None,
    };
    let webhook_sender = Box::pin(run_sender(store, webhook_settings, webhooks.wake(), shutdown));
    Ok(Services { state, engine, pipeline, stop, webhook_sender, mqtt, outbox })
}

fn engine_config(config: &Config, workers: usize) -> EngineConfig {
    let j = &config.jobs;
    let hours = |h: f64| Duration::from_secs_f64(h * 3600.0);
    EngineConfig {
        workers,
        keep_originals: hours(j.keep_originals_hours),
        result_ttl: hours(j.result_ttl_hours),
        max_result_bytes: j.max_result_megabytes.saturating_mul(1 << 20),
        max_attempts: j.max_attempts as i64,
        max_queued: j.max_queued,
        inline_timeout: Duration::from_secs(config.api.request_timeout_s),
        decode_limits: DecodeLimits {
            max_file_bytes: config.api.max_upload_megabytes << 20,
            max_side: 16384,
            max_pixels: config.api.max_image_megapixels * 1_000_000,
        },
        sweep_interval: Duration::from_secs_f64(j.sweep_interval_s),
        always_mask: config.api.always_mask.iter().filter_map(|n| crate::categories::category_of(n)).collect(),
        memory: crate::jobs::memory_budget::MemoryBudget::new(match config.api.max_decode_megabytes {
            0 => crate::jobs::memory_budget::default_limit(),
            mb => mb << 20,
        }),
        max_video_seconds: config.api.max_video_seconds,
        ..EngineConfig::default()
    }
}

fn start_pipeline(
    config: &Config,
    cam: &CameraConfig,
    detector: Arc<SwappableDetector>,
    device: &Device,
    events: &EventStream,
    stop: Arc<StopSignal>,
) -> anyhow::Result<Pipeline> {
    let plan = open_source(cam, stop.clone())?;
    let mut sinks = Dispatcher::default();
    if config.spool.enabled {
        let dir = config.spool_dir();
        let limits = SpoolLimits {
            max_files: config.spool.max_files,
            max_bytes: config.spool.max_megabytes.saturating_mul(1 << 20),
            max_age: (config.spool.max_age_hours > 0.0)
                .then(|| Duration::from_secs_f64(config.spool.max_age_hours * 3600.0)),
            fsync: config.spool.fsync,
        };
        sinks.add(Box::new(SpoolSink::start(&dir, limits).with_context(|| format!("spool {}", dir.display()))?));
        eprintln!("veil: redacted frames -> {}", dir.display());
    }
    if config.recording.enabled {
        let r = &config.recording;
        let dir = config.recording_dir();
        let opts = RecordingOptions {
            segment: Duration::from_secs(r.segment_seconds),
            container: r.container.clone(),
            encoder: r.encoder.clone(),
            bitrate_kbps: r.bitrate_kbps,
            fps: cam.fps.unwrap_or(30),
            limits: SpoolLimits {
                max_files: r.max_files,
                max_bytes: r.max_megabytes.saturating_mul(1 << 20),
                max_age: (r.max_age_hours > 0.0).then(|| Duration::from_secs_f64(r.max_age_hours * 3600.0)),
                fsync: r.fsync,
            },
        };
        sinks.add(Box::new(RecordingSink::start(&dir, opts).with_context(|| format!("recording {}", dir.display()))?));
        eprintln!("veil: redacted video -> {}", dir.display());
    }
    // The latest redacted frame is kept even with the HTTP preview off: `snapshot` sends it.
    sinks.add(device.preview().sink());
    sinks.add(events.sink());
    let pipeline_config = PipelineConfig {
        queue_depth: cam.queue_depth,
        // A replay has no live latency to protect: it only needs to catch a hung detector, and
        // must not drop a frame because the first one of a new size builds a plan.
        deadline: match plan.backpressure {
            Backpressure::Block => cam.deadline().max(REPLAY_DEADLINE),
            Backpressure::DropOldest => cam.deadline(),
        },
        backpressure: plan.backpressure,
        pace: plan.pace,
        tuning: device.tuning.clone(),
        capture: device.capture.clone(),
        tracker: config.tracker.clone(),
        zones: config.privacy_zones.iter().map(|z| z.points.iter().map(|p| (p[0], p[1])).collect()).collect(),
        jpeg_quality: config.spool.quality,
        fault_hook: stall_fault_from_env(),
        detect_workers: cam.workers(super::cores()),
        // A cadence needs a video: an unpaced replay of a folder is unrelated photos, each of
        // which is searched for plates.
        plates_every: if plan.backpressure == Backpressure::Block && plan.pace.is_none() { 1 } else { cam.plates_every },
        plate_long_side: Some(cam.plate_long_side),
        plate_band_rows: (cam.plate_band_rows != 0).then_some(cam.plate_band_rows),
        ..PipelineConfig::default()
    };
    if plan.backpressure == Backpressure::DropOldest {
        // Build the inference plan for the camera's size now, not on the first live frames
        // (which would miss their deadline while it builds).
        // The frames' size once turned upright (camera.rotation).
        let (fw, fh) = if cam.rotation % 180 == 0 { (cam.width, cam.height) } else { (cam.height, cam.width) };
        let blank = vec![0u8; fw as usize * fh as usize * 3];
        if let Ok(image) = veil_models::RgbImage::new(&blank, fw, fh) {
            let t = std::time::Instant::now();
            let params = veil_models::DetectParams {
                plate_long_side: pipeline_config.plate_long_side,
                plate_band_rows: pipeline_config.plate_band_rows,
                ..pipeline_config.tuning.get().params
            };
            if let Err(e) = detector.detect(&image, &params) {
                anyhow::bail!("detector warm-up at {}x{} failed: {e}", fw, fh);
            }
            eprintln!("veil: detector ready for {}x{} in {:.1} s", fw, fh, t.elapsed().as_secs_f64());
            let rate = CameraRate { fps: cam.fps.unwrap_or(30), workers: pipeline_config.detect_workers, plates_every: pipeline_config.plates_every };
            report_category_costs(detector.as_ref(), &image, &params, rate);
        }
    }
    eprintln!("veil: source {}", plan.source.describe());
    Ok(Pipeline::start(plan.source, detector, pipeline_config, sinks, stop)?)
}

/// Fault injection for the watchdog test: `VEIL_FAULT_STALL_AT_FRAME=N` wedges the masking stage
/// from frame N on, as a deadlock would, so the pipeline stops making progress. Never set it in
/// production: the daemon then only ever gets restarted by its watchdog.
fn stall_fault_from_env() -> Option<crate::pipeline::FaultHook> {
    let at: u64 = std::env::var("VEIL_FAULT_STALL_AT_FRAME").ok()?.parse().ok()?;
    eprintln!("veil: fault injection: the pipeline wedges at frame {at} (VEIL_FAULT_STALL_AT_FRAME)");
    Some(Arc::new(move |id| {
        if id >= at {
            loop {
                std::thread::park();
            }
        }
    }))
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

/// What a camera's detection has to keep up with.
#[derive(Clone, Copy)]
struct CameraRate {
    fps: u32,
    workers: usize,
    plates_every: u32,
}

/// Time each category the camera masks, alone, on the warm-up frame, and say which one this board
/// is too slow for at the camera's rate (its frames would be dropped at the deadline, never
/// passed raw). A blank frame holds no codes, so a code search costs more on a real one.
fn report_category_costs(
    detector: &dyn veil_models::Detector,
    image: &veil_models::RgbImage<'_>,
    params: &veil_models::DetectParams,
    rate: CameraRate,
) {
    let Some(categories) = params.categories else { return };
    let CameraRate { fps, workers, plates_every } = rate;
    for category in categories.iter() {
        // Each worker has this long per frame at the camera's rate (plates are looked for in
        // every `plates_every`th frame only, and so is text).
        let every = if crate::pipeline::on_plate_beat(category) { plates_every.max(1) } else { 1 };
        let budget_ms = 1000.0 * (workers.max(1) as u32 * every) as f64 / fps.max(1) as f64;
        let one = veil_models::DetectParams { categories: Some([category].into_iter().collect()), ..*params };
        let t = std::time::Instant::now();
        if detector.detect(image, &one).is_err() {
            continue;
        }
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        if ms > budget_ms {
            tracing::warn!(
                category = category.as_str(),
                ms,
                budget_ms,
                "camera: {} detection takes {ms:.0} ms a {}x{} frame on this board, over the {budget_ms:.0} ms that \
                 {fps} fps leaves {workers} detection workers: frames will be dropped (camera.categories, camera.fps)",
                category.as_str(),
                image.width,
                image.height
            );
        } else {
            tracing::info!(category = category.as_str(), ms, budget_ms, "camera: category cost per frame");
        }
    }
}
