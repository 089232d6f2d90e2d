//! One task owns the broker connection: it connects (a fresh client each time, clean session,
//! Last Will `offline`), announces the device, subscribes to commands, publishes what the other
//! tasks hand it, and delivers the on-disk event outbox one event at a time, deleting each only
//! when the broker acknowledges it. A lost connection is retried with jittered exponential backoff.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use rumqttc::{AsyncClient, ConnectReturnCode, ConnectionError, Event, EventLoop, Outgoing, Packet, QoS};
use tokio::sync::{mpsc, watch, Notify};

use super::settings::Connection;
use super::topics::Topics;
use crate::store::Store;

/// Something to publish now (dropped, not queued, while the broker is away).
#[derive(Debug, Clone)]
pub struct Message {
    pub topic: String,
    pub payload: Vec<u8>,
    pub retain: bool,
    pub qos: QoS,
}

impl Message {
    /// Telemetry and detections: at most once, not retained.
    pub fn transient(topic: String, payload: Vec<u8>) -> Self {
        Self { topic, payload, retain: false, qos: QoS::AtMostOnce }
    }

    /// Replies and snapshots: at least once, not retained.
    pub fn reliable(topic: String, payload: Vec<u8>) -> Self {
        Self { topic, payload, retain: false, qos: QoS::AtLeastOnce }
    }

    /// Device state (status, capture switch, discovery): at least once, retained.
    pub fn retained(topic: String, payload: Vec<u8>) -> Self {
        Self { topic, payload, retain: true, qos: QoS::AtLeastOnce }
    }
}

/// What the session task needs.
pub struct SessionParts {
    pub connection: Connection,
    pub topics: Topics,
    pub store: Arc<Store>,
    pub outgoing: mpsc::Receiver<Message>,
    pub outbox_wake: Arc<Notify>,
    /// Commands received (topic, payload).
    pub incoming: mpsc::Sender<(String, Vec<u8>)>,
    /// Published on every connect, before anything else: status, capture state, discovery.
    pub announce: Box<dyn Fn() -> Vec<Message> + Send>,
    pub connected: watch::Sender<bool>,
    pub shutdown: watch::Receiver<bool>,
}

/// Why a session ended.
enum End {
    Shutdown,
    Lost { error: ConnectionError, was_connected: bool },
}

/// What an outgoing publish is, for matching its acknowledgement.
#[derive(Clone, Copy)]
enum Tracked {
    Untracked,
    Outbox(i64),
    Farewell,
}

pub async fn run(mut parts: SessionParts) {
    let mut backoff = Backoff::new(parts.connection.reconnect_min, parts.connection.reconnect_max);
    loop {
        if *parts.shutdown.borrow() {
            return;
        }
        let (client, eventloop) = AsyncClient::new(parts.connection.options(&parts.topics), 256);
        let end = session(&mut parts, client, eventloop).await;
        parts.connected.send_replace(false);
        match end {
            End::Shutdown => return,
            End::Lost { error, was_connected } => {
                if was_connected {
                    backoff.reset();
                }
                let wait = backoff.next();
                eprintln!("veil: mqtt: {}; retrying in {:.1} s", describe(&error, &parts.connection), wait.as_secs_f64());
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = parts.shutdown.changed() => return,
                }
            }
        }
    }
}

/// A log line that says what went wrong in the operator's terms.
fn describe(error: &ConnectionError, c: &Connection) -> String {
    let url = c.broker.url();
    match error {
        ConnectionError::ConnectionRefused(ConnectReturnCode::BadUserNamePassword) => format!(
            "broker {url} refused the connection: bad username or password (username {:?})",
            c.username.as_deref().unwrap_or("")
        ),
        ConnectionError::ConnectionRefused(ConnectReturnCode::NotAuthorized) => {
            format!("broker {url} refused the connection: not authorized (check mqtt.username and the broker's ACL)")
        }
        ConnectionError::ConnectionRefused(code) => format!("broker {url} refused the connection: {code:?}"),
        ConnectionError::Io(e) => format!("broker {url}: {e}"),
        ConnectionError::Tls(e) => format!("broker {url}: TLS: {e}"),
        other => format!("broker {url}: {other}"),
    }
}

async fn session(p: &mut SessionParts, client: AsyncClient, mut eventloop: EventLoop) -> End {
    let mut connected = false;
    // One entry per publish handed to the client, in order; rumqttc reports each as it goes out.
    let mut order: VecDeque<Tracked> = VecDeque::new();
    let mut awaiting_ack: HashMap<u16, Tracked> = HashMap::new();
    // The outbox event on its way (one at a time keeps them in order across reconnects).
    let mut in_flight: Option<i64> = None;
    let mut farewell_sent = false;
    let mut farewell_deadline = Box::pin(tokio::time::sleep(Duration::from_secs(86_400 * 365)));
    loop {
        tokio::select! {
            event = eventloop.poll() => match event {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    connected = true;
                    eprintln!("veil: mqtt: connected to {} as {}", p.connection.broker.url(), p.connection.client_id);
                    while p.outgoing.try_recv().is_ok() {} // telemetry from before the connection: stale
                    for filter in [p.topics.commands_filter(), p.topics.capture_set()] {
                        if let Err(e) = client.try_subscribe(filter, QoS::AtLeastOnce) {
                            tracing::warn!("mqtt: subscribe: {e}");
                        }
                    }
                    for m in (p.announce)() {
                        publish(&client, &mut order, &m, Tracked::Untracked);
                    }
                    p.connected.send_replace(true);
                    in_flight = send_next_event(&client, &mut order, &p.store, &p.topics);
                }
                Ok(Event::Incoming(Packet::Publish(m))) => {
                    if p.incoming.try_send((m.topic.clone(), m.payload.to_vec())).is_err() {
                        tracing::warn!("mqtt: command on {} dropped: too many waiting", m.topic);
                    }
                }
                Ok(Event::Incoming(Packet::PubAck(ack))) => match awaiting_ack.remove(&ack.pkid) {
                    Some(Tracked::Outbox(seq)) => {
                        if let Err(e) = p.store.outbox_delete(seq) {
                            tracing::error!("mqtt: outbox: {e}");
                        }
                        in_flight = send_next_event(&client, &mut order, &p.store, &p.topics);
                    }
                    Some(Tracked::Farewell) => {
                        let _ = client.try_disconnect();
                    }
                    _ => {}
                },
                Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                    if let Some(t) = order.pop_front() {
                        if pkid != 0 {
                            awaiting_ack.insert(pkid, t);
                        }
                    }
                }
                Ok(Event::Outgoing(Outgoing::Disconnect)) if farewell_sent => {
                    // Let the DISCONNECT reach the broker (so it does not send the Last Will).
                    let _ = tokio::time::timeout(Duration::from_millis(500), eventloop.poll()).await;
                    return End::Shutdown;
                }
                Ok(_) => {}
                Err(_) if farewell_sent => return End::Shutdown,
                Err(error) => return End::Lost { error, was_connected: connected },
            },
            Some(m) = p.outgoing.recv(), if connected && !farewell_sent => {
                publish(&client, &mut order, &m, Tracked::Untracked);
            }
            _ = p.outbox_wake.notified(), if connected && in_flight.is_none() && !farewell_sent => {
                in_flight = send_next_event(&client, &mut order, &p.store, &p.topics);
            }
            _ = p.shutdown.changed(), if !farewell_sent => {
                if !connected {
                    return End::Shutdown;
                }
                farewell_sent = true;
                let bye = Message::retained(p.topics.status(), b"offline".to_vec());
                publish(&client, &mut order, &bye, Tracked::Farewell);
                farewell_deadline.as_mut().reset(tokio::time::Instant::now() + Duration::from_secs(3));
            }
            _ = &mut farewell_deadline, if farewell_sent => return End::Shutdown,
        }
    }
}

fn publish(client: &AsyncClient, order: &mut VecDeque<Tracked>, m: &Message, tracked: Tracked) -> bool {
    match client.try_publish(m.topic.clone(), m.qos, m.retain, m.payload.clone()) {
        Ok(()) => {
            order.push_back(tracked);
            true
        }
        Err(e) => {
            tracing::warn!("mqtt: publish on {} dropped: {e}", m.topic);
            false
        }
    }
}

/// Hand the oldest outbox event to the client; returns its sequence number if one went.
fn send_next_event(client: &AsyncClient, order: &mut VecDeque<Tracked>, store: &Store, topics: &Topics) -> Option<i64> {
    let event = match store.outbox_next(0) {
        Ok(Some(e)) => e,
        Ok(None) => return None,
        Err(e) => {
            tracing::error!("mqtt: outbox: {e}");
            return None;
        }
    };
    let m = Message::reliable(topics.under(&event.topic), event.payload);
    publish(client, order, &m, Tracked::Outbox(event.seq)).then_some(event.seq)
}

/// Exponential backoff with jitter, so a fleet that lost its broker does not return in lockstep.
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Self {
        Self { min, max: max.max(min), next: min }
    }

    pub fn reset(&mut self) {
        self.next = self.min;
    }

    /// A wait between half and all of the current step; the step doubles up to the maximum.
    pub fn next(&mut self) -> Duration {
        let step = self.next;
        self.next = (step * 2).min(self.max);
        let mut r = [0u8; 4];
        let fraction = match getrandom::fill(&mut r) {
            Ok(()) => u32::from_le_bytes(r) as f64 / u32::MAX as f64,
            Err(_) => 1.0,
        };
        step.mul_f64(0.5 + 0.5 * fraction)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_maximum_and_resets() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(8));
        let waits: Vec<Duration> = (0..6).map(|_| b.next()).collect();
        for (w, step) in waits.iter().zip([1, 2, 4, 8, 8, 8]) {
            let step = Duration::from_secs(step);
            assert!(*w >= step / 2 && *w <= step, "{w:?} not within half..all of {step:?}");
        }
        let distinct: std::collections::BTreeSet<_> = waits[3..].iter().collect();
        assert!(distinct.len() > 1, "waits at the cap are jittered: {waits:?}");
        b.reset();
        assert!(b.next() <= Duration::from_secs(1));
    }
}
