//! Webhooks: when a job ends (or its original is deleted) a notification is written to SQLite,
//! then a sender task POSTs it, signed, retrying with backoff; retries survive a restart.

pub mod payload;
mod sender;
pub mod signature;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use crate::jobs::JobObserver;
use crate::store::jobs::{Job, JobStatus};
use crate::store::Store;

pub use sender::run_sender;

/// Check a webhook URL: absolute http(s) with a host.
pub fn check_url(url: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("'{url}' is not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none_or(|h| h.is_empty()) {
        return Err(format!("'{url}' must be an http:// or https:// URL with a host"));
    }
    if url.len() > 2048 {
        return Err("webhook URL longer than 2048 characters".into());
    }
    Ok(())
}

/// How deliveries are made.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    pub secret: Vec<u8>,
    pub timeout: Duration,
    pub max_attempts: i64,
    pub retry_base: Duration,
    /// Where deliveries may go (`webhooks.allow`), checked after DNS at every attempt.
    pub policy: crate::outbound::OutboundPolicy,
}

/// Records notifications for finished jobs and wakes the sender.
pub struct Webhooks {
    store: Arc<Store>,
    wake: Arc<Notify>,
}

impl Webhooks {
    pub fn new(store: Arc<Store>) -> Self {
        Self { store, wake: Arc::new(Notify::new()) }
    }

    pub fn wake(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    fn enqueue(&self, job: &Job, event: &str, p: payload::Payload) {
        let Some(url) = &job.webhook_url else { return };
        match self.store.enqueue_delivery(&job.id, event, url, &p.content_type, &p.body) {
            Ok(_) => self.wake.notify_one(),
            Err(e) => eprintln!("veil: job {}: cannot record the {event} webhook: {e}", job.id),
        }
    }
}

impl JobObserver for Webhooks {
    fn finished(&self, job: &Job, result: Option<&[u8]>) {
        if job.webhook_url.is_none() {
            return;
        }
        let (event, result) = match job.status {
            // The MaskIt style sends the image itself.
            JobStatus::Completed => ("media.processed", result.filter(|_| job.api == "maskit")),
            _ => ("media.failed", None),
        };
        self.enqueue(job, event, payload::finished(job, event, result));
    }

    fn original_deleted(&self, job: &Job) {
        self.enqueue(job, "media.source_deleted", payload::source_deleted(job));
    }
}

/// The signing secret: the config's, else the one kept in `state_dir/webhook-secret` (made at
/// first start, readable by the daemon's user only).
pub fn load_secret(configured: Option<&str>, state_dir: &Path) -> anyhow::Result<Vec<u8>> {
    if let Some(s) = configured {
        return Ok(s.as_bytes().to_vec());
    }
    let path = state_dir.join("webhook-secret");
    if let Ok(s) = std::fs::read_to_string(&path) {
        let s = s.trim();
        if s.len() >= 16 {
            return Ok(s.as_bytes().to_vec());
        }
    }
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw).map_err(|e| anyhow::anyhow!("no randomness for the webhook secret: {e}"))?;
    let secret = hex::encode(raw);
    crate::commands::write_atomic(&path, secret.as_bytes())?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    }
    eprintln!("veil: webhook signing secret generated in {}", path.display());
    Ok(secret.into_bytes())
}
