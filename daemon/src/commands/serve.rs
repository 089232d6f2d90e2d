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
use crate::server::{self, AppState};
use crate::sinks::events::EventStream;
use crate::sinks::preview::PreviewFeed;
use crate::sinks::spool::{SpoolLimits, SpoolSink};
use crate::sinks::Dispatcher;

/// The config file plus the command line's overrides, validated.
pub fn effective_config(cmd: &ServeCmd) -> anyhow::Result<Config> {
    let mut config = match &cmd.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    if let Some(listen) = &cmd.listen {
        config.server.listen = listen.clone();
    }
    if let Some(dir) = &cmd.state_dir {
        config.server.state_dir = Some(dir.clone());
    }
    if let Some(source) = &cmd.source {
        config.camera.get_or_insert_with(CameraConfig::default).source = source.clone();
    }
    if let Some(spool) = &cmd.spool {
        config.spool.dir = spool.clone();
        config.spool.enabled = true;
    }
    config.validate()?;
    Ok(config)
}

pub fn run(cmd: ServeCmd) -> anyhow::Result<i32> {
    let config = effective_config(&cmd)?;
    let state_dir = config.state_dir();
    std::fs::create_dir_all(&state_dir).with_context(|| format!("state directory {}", state_dir.display()))?;

    let threads = match config.detector.threads {
        0 => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        n => n,
    };
    let registry = super::registry(&config.detector.model_dir);
    let detector = registry.create(&config.detector.backend, config.precision()?, threads)?;
    let backend = Arc::new(detector.info().clone());
    eprintln!("veil: model {} {} ({}) loaded", backend.name, backend.version, backend.precision);

    let preview = PreviewFeed::default();
    let events = EventStream::new(256);
    let stop = Arc::new(StopSignal::default());
    let pipeline = match &config.camera {
        Some(cam) => Some(start_pipeline(&config, cam, detector.clone(), &preview, &events, stop.clone())?),
        None => None,
    };

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.clamp(1, 4))
        .enable_all()
        .thread_name("veil-http")
        .build()?;
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let state = AppState {
        preview,
        events,
        metrics: pipeline.as_ref().map(|p| p.metrics()),
        backend,
        preview_interval: Duration::from_secs_f64(1.0 / config.preview.max_fps),
        preview_enabled: config.preview.enabled && config.camera.is_some(),
        shutdown: shutdown_rx.clone(),
    };
    let listen = config.server.listen.clone();
    let served = runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&listen).await.with_context(|| format!("listen on {listen}"))?;
        eprintln!("veil: listening on http://{}", listener.local_addr()?);
        if let Some(cam) = &config.camera {
            eprintln!("veil: camera {} -> preview at /api/v1/stream.mjpeg", cam.source);
        }
        tokio::spawn(async move {
            wait_for_signal().await;
            eprintln!("veil: shutting down");
            let _ = shutdown_tx.send(true);
        });
        server::serve(listener, state, shutdown_rx, Duration::from_secs(10)).await?;
        anyhow::Ok(())
    });
    stop.stop();
    if let Some(p) = pipeline {
        let m = p.metrics();
        p.shutdown();
        let s = m.snapshot();
        eprintln!("veil: pipeline stopped: {} frames in, {} out, {} dropped", s.frames_in, s.frames_out, s.dropped_total);
    }
    served?;
    Ok(0)
}

fn start_pipeline(
    config: &Config,
    cam: &CameraConfig,
    detector: Arc<dyn veil_models::Detector>,
    preview: &PreviewFeed,
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
    if config.preview.enabled {
        sinks.add(preview.sink());
    }
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
        params: config.detect_params()?,
        style: config.mask_style()?,
        tracker: config.tracker.clone(),
        zones: config.privacy_zones.iter().map(|z| z.points.iter().map(|p| (p[0], p[1])).collect()).collect(),
        jpeg_quality: config.spool.quality,
        ..PipelineConfig::default()
    };
    if plan.backpressure == Backpressure::DropOldest {
        // Build the inference plan for the camera's size now, not on the first live frames
        // (which would miss their deadline while it builds).
        let blank = vec![0u8; cam.width as usize * cam.height as usize * 3];
        if let Ok(image) = veil_models::RgbImage::new(&blank, cam.width, cam.height) {
            let t = std::time::Instant::now();
            if let Err(e) = detector.detect(&image, &pipeline_config.params) {
                anyhow::bail!("detector warm-up at {}x{} failed: {e}", cam.width, cam.height);
            }
            eprintln!("veil: detector ready for {}x{} in {:.1} s", cam.width, cam.height, t.elapsed().as_secs_f64());
        }
    }
    eprintln!("veil: source {}", plan.source.describe());
    Ok(Pipeline::start(plan.source, detector, pipeline_config, sinks, stop)?)
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
