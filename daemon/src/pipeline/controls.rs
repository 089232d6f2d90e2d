//! What may change while the pipeline runs: the detection and masking settings ([`LiveTuning`])
//! and whether the camera is capturing at all ([`CaptureSwitch`]).

use std::collections::BTreeSet;
use std::sync::{Condvar, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::watch;
use veil_models::DetectParams;
use veil_redact::MaskStyle;

/// The settings each frame is detected and masked with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tuning {
    pub params: DetectParams,
    pub style: MaskStyle,
}

/// Read once per frame (or job); replaced whole, so a frame never mixes old and new settings.
#[derive(Debug)]
pub struct LiveTuning {
    current: RwLock<Tuning>,
}

impl LiveTuning {
    pub fn new(tuning: Tuning) -> Self {
        Self { current: RwLock::new(tuning) }
    }

    pub fn get(&self) -> Tuning {
        *self.current.read().unwrap_or_else(|p| p.into_inner())
    }

    pub fn set(&self, tuning: Tuning) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = tuning;
    }
}

impl Default for LiveTuning {
    fn default() -> Self {
        Self::new(Tuning { params: DetectParams::default(), style: MaskStyle::default() })
    }
}

/// Capture runs while nobody holds it off. Several parties may hold it (a remote command, a
/// physical privacy switch); it resumes only when every one of them has let go.
pub struct CaptureSwitch {
    holds: Mutex<BTreeSet<&'static str>>,
    cond: Condvar,
    on: watch::Sender<bool>,
}

impl Default for CaptureSwitch {
    fn default() -> Self {
        Self { holds: Mutex::new(BTreeSet::new()), cond: Condvar::new(), on: watch::channel(true).0 }
    }
}

impl CaptureSwitch {
    /// Hold capture off on behalf of `who`, or release that hold. Returns whether capture is on.
    pub fn hold(&self, who: &'static str, off: bool) -> bool {
        let mut holds = self.holds.lock().unwrap_or_else(|p| p.into_inner());
        if off {
            holds.insert(who);
        } else {
            holds.remove(who);
        }
        let on = holds.is_empty();
        self.on.send_if_modified(|v| std::mem::replace(v, on) != on);
        self.cond.notify_all();
        on
    }

    pub fn is_on(&self) -> bool {
        self.holds.lock().unwrap_or_else(|p| p.into_inner()).is_empty()
    }

    /// Who holds capture off.
    pub fn holders(&self) -> Vec<&'static str> {
        self.holds.lock().unwrap_or_else(|p| p.into_inner()).iter().copied().collect()
    }

    /// Wait up to `timeout` for capture to be on; returns whether it is.
    pub fn wait_on(&self, timeout: Duration) -> bool {
        let holds = self.holds.lock().unwrap_or_else(|p| p.into_inner());
        let (holds, _) = self.cond.wait_timeout_while(holds, timeout, |h| !h.is_empty()).unwrap_or_else(|p| p.into_inner());
        holds.is_empty()
    }

    /// Follows every change between on and off.
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.on.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capture_resumes_only_when_every_holder_lets_go() {
        let s = CaptureSwitch::default();
        let mut changes = s.subscribe();
        assert!(s.is_on());
        assert!(!s.hold("remote", true));
        assert!(!s.hold("privacy-switch", true));
        assert!(!s.hold("remote", false), "the privacy switch still holds it");
        assert!(!s.wait_on(Duration::from_millis(10)));
        assert_eq!(s.holders(), vec!["privacy-switch"]);
        assert!(s.hold("privacy-switch", false));
        assert!(s.wait_on(Duration::ZERO));
        assert!(changes.has_changed().unwrap());
        assert!(*changes.borrow_and_update());
    }

    #[test]
    fn a_waiting_capture_thread_wakes_when_released() {
        let s = std::sync::Arc::new(CaptureSwitch::default());
        s.hold("remote", true);
        let waiter = {
            let s = s.clone();
            std::thread::spawn(move || s.wait_on(Duration::from_secs(10)))
        };
        std::thread::sleep(Duration::from_millis(50));
        s.hold("remote", false);
        assert!(waiter.join().unwrap());
    }
}
