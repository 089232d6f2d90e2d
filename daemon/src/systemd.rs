//! systemd's service protocol: `READY=1` once the daemon serves, `STOPPING=1` on shutdown, and
//! watchdog pings (`WATCHDOG=1`) only while the camera pipeline is making progress, so systemd
//! restarts a hung daemon. Everything is a no-op when systemd did not ask for it.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use crate::pipeline::metrics::Metrics;

/// Where to send notifications (`$NOTIFY_SOCKET`), and the watchdog period (`$WATCHDOG_USEC`).
pub struct Notifier {
    socket: Option<(UnixDatagram, String)>,
    watchdog: Option<Duration>,
}

impl Notifier {
    /// Read the environment systemd sets (or a test harness emulating it).
    pub fn from_env() -> Self {
        let socket = std::env::var("NOTIFY_SOCKET").ok().filter(|s| !s.is_empty()).and_then(|path| match UnixDatagram::unbound() {
            Ok(s) => Some((s, path)),
            Err(e) => {
                eprintln!("veil: NOTIFY_SOCKET set but no socket: {e}");
                None
            }
        });
        let for_us = std::env::var("WATCHDOG_PID").ok().and_then(|p| p.parse::<u32>().ok()).is_none_or(|p| p == std::process::id());
        let watchdog = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|u| u.parse::<u64>().ok())
            .filter(|&u| u > 0 && for_us)
            .map(Duration::from_micros);
        Self { socket, watchdog }
    }

    pub fn is_active(&self) -> bool {
        self.socket.is_some()
    }

    /// The watchdog timeout systemd enforces, if it asked for pings.
    pub fn watchdog(&self) -> Option<Duration> {
        self.watchdog.filter(|_| self.socket.is_some())
    }

    /// Send `state` (`READY=1`, `STATUS=...`, ...); failures are logged, never fatal.
    pub fn notify(&self, state: &str) {
        let Some((socket, path)) = &self.socket else { return };
        let sent = match path.strip_prefix('@') {
            Some(name) => {
                use std::os::linux::net::SocketAddrExt;
                std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
                    .and_then(|addr| socket.send_to_addr(state.as_bytes(), &addr))
            }
            None => socket.send_to(state.as_bytes(), path),
        };
        if let Err(e) = sent {
            tracing::warn!("systemd notify {state:?}: {e}");
        }
    }
}

/// Whether the camera pipeline is making progress: its worker goes round its loop at least
/// every 200 ms unless it is inside a frame, which the frame deadline bounds. A finished replay,
/// or no camera at all, is healthy.
pub fn pipeline_health(metrics: Option<&Metrics>, stall_limit: Duration) -> Result<(), String> {
    let Some(m) = metrics else { return Ok(()) };
    let silence = m.worker_silence();
    if silence <= stall_limit || m.snapshot().source.finished {
        return Ok(());
    }
    Err(format!("the pipeline's detection worker has made no progress for {:.0} s", silence.as_secs_f64()))
}

/// Ping the watchdog at half its period while `healthy` says so; stop pinging (and say why,
/// once) when it does not, so systemd restarts the daemon.
pub async fn feed_watchdog(
    notifier: std::sync::Arc<Notifier>,
    healthy: impl Fn() -> Result<(), String> + Send + 'static,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let Some(timeout) = notifier.watchdog() else { return };
    let mut reported = false;
    loop {
        match healthy() {
            Ok(()) => {
                notifier.notify("WATCHDOG=1");
                reported = false;
            }
            Err(why) if !reported => {
                eprintln!("veil: {why}; withholding the watchdog ping so the service manager restarts veil");
                notifier.notify(&format!("STATUS=stalled: {why}"));
                reported = true;
            }
            Err(_) => {}
        }
        tokio::select! {
            _ = tokio::time::sleep(timeout / 2) => {}
            _ = shutdown.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_silent_worker_is_unhealthy_and_a_beating_one_is_not() {
        let m = Metrics::default();
        m.worker_alive();
        assert!(pipeline_health(Some(&m), Duration::from_millis(100)).is_ok());
        std::thread::sleep(Duration::from_millis(150));
        let err = pipeline_health(Some(&m), Duration::from_millis(100)).unwrap_err();
        assert!(err.contains("no progress"), "{err}");
        m.set_source("replay".into(), false, true);
        assert!(pipeline_health(Some(&m), Duration::from_millis(100)).is_ok(), "a finished replay is done, not hung");
        assert!(pipeline_health(None, Duration::ZERO).is_ok());
    }

    #[test]
    fn notifications_reach_the_socket_and_the_watchdog_period_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let server = UnixDatagram::bind(&path).unwrap();
        let n = Notifier {
            socket: Some((UnixDatagram::unbound().unwrap(), path.to_str().unwrap().into())),
            watchdog: Some(Duration::from_secs(30)),
        };
        n.notify("READY=1");
        let mut buf = [0u8; 64];
        let len = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"READY=1");
        assert_eq!(n.watchdog(), Some(Duration::from_secs(30)));
        let silent = Notifier { socket: None, watchdog: Some(Duration::from_secs(30)) };
        assert_eq!(silent.watchdog(), None, "no socket, no pings");
        silent.notify("READY=1");
    }
}
