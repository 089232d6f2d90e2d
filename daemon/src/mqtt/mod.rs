//! The MQTT fleet link, off unless `[mqtt]` is set. One session task owns the broker connection
//! ([`session`]); around it, small tasks feed it telemetry, detections, capture state and
//! errors, and answer commands through the [`Device`]. Events go through the on-disk outbox
//! ([`events`]) so none is lost while the broker is away. Only JSON and, on request, a redacted
//! snapshot are ever published.

pub mod commands;
pub mod detections;
pub mod discovery;
pub mod events;
pub mod session;
pub mod settings;
pub mod topics;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::config::{Config, MqttConfig};
use crate::device::Device;
use crate::pipeline::metrics::Metrics;
use crate::sinks::events::EventStream;
use crate::store::Store;
use crate::telemetry;
use detections::{PerFrame, WindowBuilder};
use events::EventOutbox;
use session::{Message, SessionParts};
use topics::Topics;

/// What the link needs from the rest of the daemon.
pub struct LinkParts {
    pub config: MqttConfig,
    pub device: Arc<Device>,
    pub store: Arc<Store>,
    pub outbox: EventOutbox,
    /// `None` without a camera.
    pub metrics: Option<Arc<Metrics>>,
    pub frames: EventStream,
    pub state_dir: PathBuf,
    pub shutdown: watch::Receiver<bool>,
}

/// The running link.
pub struct MqttLink {
    session: JoinHandle<()>,
    helpers: Vec<JoinHandle<()>>,
}

impl MqttLink {
    /// Start on the current tokio runtime. Fails only on a bad config (unreadable certificate
    /// or password file); an unreachable broker is retried.
    pub fn start(p: LinkParts) -> anyhow::Result<Self> {
        let device_id = settings::device_id(&p.config);
        let topics = Topics::new(&p.config.topic_prefix.clone().unwrap_or_else(|| format!("veil/{device_id}")));
        let connection = settings::Connection::from_config(&p.config, &device_id)?;
        eprintln!("veil: mqtt: {} as {}, topics under {}/", connection.broker.url(), connection.client_id, topics.prefix());
        let (out_tx, out_rx) = mpsc::channel::<Message>(256);
        let (cmd_tx, cmd_rx) = mpsc::channel::<(String, Vec<u8>)>(64);
        let (connected_tx, connected) = watch::channel(false);
        let announce = {
            let (device, topics, config) = (p.device.clone(), topics.clone(), p.config.clone());
            let device_id = device_id.clone();
            Box::new(move || {
                let mut m = vec![
                    Message::retained(topics.status(), b"online".to_vec()),
                    Message::retained(topics.capture_state(), capture_payload(device.capture.is_on()).to_vec()),
                ];
                if config.homeassistant {
                    m.extend(discovery::documents(&config.discovery_prefix, &device_id, &topics));
                }
                m
            })
        };
        let session = tokio::spawn(session::run(SessionParts {
            connection,
            topics: topics.clone(),
            store: p.store.clone(),
            outgoing: out_rx,
            outbox_wake: p.outbox.wake(),
            incoming: cmd_tx,
            announce,
            connected: connected_tx,
            shutdown: p.shutdown.clone(),
        }));
        let helpers = vec![
            tokio::spawn(answer_commands(p.device.clone(), topics.clone(), cmd_rx, out_tx.clone())),
            tokio::spawn(send_telemetry(
                p.device.clone(),
                p.store.clone(),
                p.metrics.clone(),
                p.state_dir.clone(),
                topics.clone(),
                out_tx.clone(),
                connected.clone(),
                p.shutdown.clone(),
            )),
            tokio::spawn(send_detections(p.device.clone(), p.frames.clone(), topics.clone(), out_tx.clone(), connected.clone(), p.shutdown.clone())),
            tokio::spawn(follow_capture(p.device.clone(), p.outbox.clone(), topics.clone(), out_tx, p.shutdown.clone())),
            tokio::spawn(report_errors(p.metrics, p.outbox, p.shutdown)),
        ];
        Ok(Self { session, helpers })
    }

    /// After shutdown was signalled: wait (briefly) for `offline` to be published.
    pub async fn finish(self) {
        let _ = tokio::time::timeout(Duration::from_secs(5), self.session).await;
        for h in self.helpers {
            h.abort();
        }
    }
}

fn capture_payload(on: bool) -> &'static [u8] {
    if on {
        b"ON"
    } else {
        b"OFF"
    }
}

async fn answer_commands(
    device: Arc<Device>,
    topics: Topics,
    mut commands: mpsc::Receiver<(String, Vec<u8>)>,
    out: mpsc::Sender<Message>,
) {
    while let Some((topic, payload)) = commands.recv().await {
        let (device, topics) = (device.clone(), topics.clone());
        // Commands may build a backend or write files: off the async threads.
        let replies = tokio::task::spawn_blocking(move || commands::handle(&device, &topics, &topic, &payload)).await;
        for m in replies.unwrap_or_default() {
            if out.send(m).await.is_err() {
                return;
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn send_telemetry(
    device: Arc<Device>,
    store: Arc<Store>,
    metrics: Option<Arc<Metrics>>,
    state_dir: PathBuf,
    topics: Topics,
    out: mpsc::Sender<Message>,
    mut connected: watch::Receiver<bool>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut sampler = match telemetry::Sampler::new(&state_dir) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("veil: mqtt: no telemetry: {e}");
            return;
        }
    };
    let mut config = device.config_changes();
    loop {
        let interval = Duration::from_secs_f64(mqtt_section(&config.borrow()).telemetry_interval_s);
        // The first sample goes out as soon as the broker is there.
        if *connected.borrow() {
            let sample = sampler.sample(&telemetry::Sources {
                metrics: metrics.as_ref(),
                store: &store,
                capture: device.capture_state(),
                backend: device.backend(),
            });
            if let Ok(body) = serde_json::to_vec(&sample) {
                let _ = out.try_send(Message::transient(topics.telemetry(), body));
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = connected.changed() => {}
            _ = config.changed() => {}
            _ = shutdown.changed() => return,
        }
    }
}

fn mqtt_section(c: &Config) -> MqttConfig {
    c.mqtt.clone().unwrap_or_default()
}

async fn send_detections(
    device: Arc<Device>,
    frames: EventStream,
    topics: Topics,
    out: mpsc::Sender<Message>,
    connected: watch::Receiver<bool>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut rx = frames.subscribe();
    let mut config = device.config_changes();
    let mut window = WindowBuilder::default();
    loop {
        let section = mqtt_section(&config.borrow());
        let window_s = section.detections_window_s;
        let mode = section.detections;
        let flush = tokio::time::sleep(Duration::from_secs_f64(window_s));
        tokio::pin!(flush);
        loop {
            tokio::select! {
                frame = rx.recv() => match frame {
                    Ok(event) if mode == "frame" => {
                        if *connected.borrow() {
                            let backend = device.backend();
                            let msg = PerFrame { backend: &backend, frame: detections::FrameDetections::from_event(&event) };
                            if let Ok(body) = serde_json::to_vec(&msg) {
                                let _ = out.try_send(Message::transient(topics.detections(), body));
                            }
                        }
                    }
                    Ok(event) if mode == "window" => window.add(&event),
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => tracing::debug!("mqtt: {n} frame events skipped"),
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                },
                _ = &mut flush => {
                    if !window.is_empty() {
                        let backend = device.backend();
                        let msg = window.take(&backend, window_s);
                        if *connected.borrow() {
                            if let Ok(body) = serde_json::to_vec(&msg) {
                                let _ = out.try_send(Message::transient(topics.detections(), body));
                            }
                        }
                    }
                    break;
                }
                _ = config.changed() => break,
                _ = shutdown.changed() => return,
            }
        }
    }
}

/// Publish the capture switch's state (retained) and a `capture.started`/`stopped` event on
/// every change, whoever made it.
async fn follow_capture(
    device: Arc<Device>,
    outbox: EventOutbox,
    topics: Topics,
    out: mpsc::Sender<Message>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut changes = device.capture.subscribe();
    loop {
        tokio::select! {
            changed = changes.changed() => {
                if changed.is_err() {
                    return;
                }
                let on = *changes.borrow_and_update();
                outbox.capture_changed(on, if on { "switched on" } else { "held off" }, &device.capture.holders());
                let _ = out.try_send(Message::retained(topics.capture_state(), capture_payload(on).to_vec()));
            }
            _ = shutdown.changed() => return,
        }
    }
}

/// Turn a new camera error into an `error` event (once per distinct message).
async fn report_errors(metrics: Option<Arc<Metrics>>, outbox: EventOutbox, mut shutdown: watch::Receiver<bool>) {
    let Some(metrics) = metrics else { return };
    let mut last: Option<String> = None;
    loop {
        let error = metrics.snapshot().source.last_error;
        if error.is_some() && error != last {
            outbox.error("camera", error.as_deref().unwrap_or(""));
        }
        last = error;
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = shutdown.changed() => return,
        }
    }
}
