//! The `events` topic's producer side: job outcomes (the webhook payloads), capture started and
//! stopped, errors. Each event goes to the on-disk outbox first, so it survives the broker being
//! away (and a restart) and is delivered in order.

use std::sync::Arc;

use serde_json::{json, Value};
use tokio::sync::Notify;

use crate::jobs::JobObserver;
use crate::store::jobs::{Job, JobStatus};
use crate::store::{now_ms, rfc3339, Store};
use crate::webhooks::payload;

/// Below the topic prefix.
pub const EVENTS_TOPIC: &str = "events";

#[derive(Clone)]
pub struct EventOutbox {
    store: Arc<Store>,
    wake: Arc<Notify>,
    max_queued: usize,
}

impl EventOutbox {
    pub fn new(store: Arc<Store>, max_queued: usize) -> Self {
        Self { store, wake: Arc::new(Notify::new()), max_queued }
    }

    /// Notified when an event is queued.
    pub fn wake(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Queue an event for delivery; never blocks on the network.
    pub fn push(&self, event: &Value) {
        match self.store.outbox_push(EVENTS_TOPIC, event.to_string().as_bytes(), self.max_queued) {
            Ok(0) => {}
            Ok(n) => tracing::warn!("mqtt: event outbox full; {n} oldest event(s) dropped"),
            Err(e) => tracing::error!("mqtt: cannot queue event: {e}"),
        }
        self.wake.notify_one();
    }

    /// `capture.started` / `capture.stopped`; `reason`: `daemon started`, `switched on`,
    /// `held off`, `daemon stopping`.
    pub fn capture_changed(&self, on: bool, reason: &str, held_off_by: &[&str]) {
        self.push(&json!({
            "event": if on { "capture.started" } else { "capture.stopped" },
            "reason": reason,
            "at": rfc3339(now_ms()),
            "held_off_by": held_off_by,
        }));
    }

    /// `error`: something the operator should see (a lost camera, a failing detector).
    pub fn error(&self, source: &str, message: &str) {
        self.push(&json!({"event": "error", "source": source, "message": message, "at": rfc3339(now_ms())}));
    }
}

impl JobObserver for EventOutbox {
    fn finished(&self, job: &Job, _result: Option<&[u8]>) {
        let event = if job.status == JobStatus::Completed { "media.processed" } else { "media.failed" };
        self.push(&payload::finished_json(job, event));
    }

    fn original_deleted(&self, job: &Job) {
        self.push(&payload::source_deleted_json(job));
    }
}
