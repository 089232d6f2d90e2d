//! The task that sends due webhook deliveries, one POST each with a timeout, and schedules a
//! retry (doubling waits) after a failure or a non-2xx answer.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Notify};

use super::signature::{hmac_hex, signature_header};
use super::WebhookSettings;
use crate::store::webhooks::Delivery;
use crate::store::{now_ms, Store};

/// Send deliveries until `shutdown` flips.
pub async fn run_sender(
    store: Arc<Store>,
    settings: WebhookSettings,
    wake: Arc<Notify>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        if *shutdown.borrow() {
            return;
        }
        let due = {
            let store = store.clone();
            tokio::task::spawn_blocking(move || store.due_deliveries(now_ms(), 16)).await
        };
        let due = match due {
            Ok(Ok(d)) => d,
            Ok(Err(e)) => {
                eprintln!("veil: webhooks: {e}");
                Vec::new()
            }
            Err(_) => Vec::new(),
        };
        for d in &due {
            let outcome = send(&settings, d).await;
            let store = store.clone();
            let (id, attempts) = (d.id, d.attempts);
            let retry_at = (attempts + 1 < settings.max_attempts).then(|| {
                let wait = settings.retry_base.saturating_mul(1u32 << attempts.clamp(0, 16) as u32);
                now_ms() + wait.as_millis().min(i64::MAX as u128) as i64
            });
            let _ = tokio::task::spawn_blocking(move || match outcome {
                Ok(()) => store.delivery_succeeded(id),
                Err(e) => store.delivery_failed(id, &e, retry_at),
            })
            .await;
        }
        if !due.is_empty() {
            continue;
        }
        let next = {
            let store = store.clone();
            tokio::task::spawn_blocking(move || store.next_delivery_at()).await.ok().and_then(Result::ok).flatten()
        };
        let sleep = match next {
            Some(at) => Duration::from_millis((at - now_ms()).clamp(0, 60_000) as u64),
            None => Duration::from_secs(60),
        };
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(sleep) => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// One attempt: the URL's host is resolved and every address checked against the policy now
/// (DNS may have changed since it was submitted), and the POST goes to the address checked, with
/// no redirect followed and no proxy.
async fn send(settings: &WebhookSettings, d: &Delivery) -> Result<(), String> {
    let client = settings.policy.client_for(&d.url, settings.timeout).await?;
    let mut req = client
        .post(&d.url)
        .header("Content-Type", &d.content_type)
        .header("X-Veil-Event", &d.event)
        .header("X-Veil-Delivery", d.id.to_string())
        .header("X-Veil-Signature", signature_header(&settings.secret, &d.body));
    if d.content_type.starts_with("multipart/") {
        // The MaskIt style's own header: the bare hex HMAC.
        req = req.header("X-Signature", hmac_hex(&settings.secret, &d.body));
    } else {
        // The PiiBlur style's own header (the same `sha256=<hex>`); JSON deliveries of the other
        // styles carry it too, which their clients ignore.
        req = req.header("X-PiiBlur-Signature", signature_header(&settings.secret, &d.body));
    }
    let resp = req.body(d.body.clone()).send().await.map_err(|e| format!("{e}"))?;
    if resp.status().is_success() {
        Ok(())
    } else {
        Err(format!("HTTP {}", resp.status().as_u16()))
    }
}
