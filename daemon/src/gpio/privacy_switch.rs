//! The physical privacy switch: polled, debounced, and while it is on capture is held off (the
//! camera device is closed) whatever else says.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::SwitchInput;
use crate::pipeline::controls::CaptureSwitch;

/// The holder name capture is held off under.
pub const HOLDER: &str = "privacy-switch";

/// Poll `input` every `poll`; a position must read the same `stable_reads` times in a row to
/// count (contact bounce never toggles capture).
pub async fn run(
    mut input: impl SwitchInput,
    capture: Arc<CaptureSwitch>,
    poll: Duration,
    stable_reads: u32,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut applied: Option<bool> = None;
    let (mut candidate, mut streak) = (false, 0u32);
    loop {
        let now = input.is_on();
        if now == candidate {
            streak = streak.saturating_add(1);
        } else {
            (candidate, streak) = (now, 1);
        }
        if streak >= stable_reads && applied != Some(candidate) {
            capture.hold(HOLDER, candidate);
            eprintln!("veil: privacy switch {}", if candidate { "on: capture stopped" } else { "off: capture may run" });
            applied = Some(candidate);
        }
        tokio::select! {
            _ = tokio::time::sleep(poll) => {}
            _ = shutdown.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    struct FakeSwitch(Arc<AtomicBool>);

    impl SwitchInput for FakeSwitch {
        fn is_on(&mut self) -> bool {
            self.0.load(Ordering::SeqCst)
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_switch_holds_capture_off_and_bounce_is_ignored() {
        let position = Arc::new(AtomicBool::new(false));
        let capture = Arc::new(CaptureSwitch::default());
        let (_stop_tx, stop) = watch::channel(false);
        let poll = Duration::from_millis(10);
        tokio::spawn(run(FakeSwitch(position.clone()), capture.clone(), poll, 3, stop));
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(capture.is_on());
        // A 15 ms bounce (two reads) does nothing.
        position.store(true, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(15)).await;
        position.store(false, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(capture.is_on(), "bounce ignored");
        position.store(true, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!capture.is_on());
        assert_eq!(capture.holders(), vec![HOLDER]);
        // A remote start does not override the physical switch.
        capture.hold("remote", false);
        assert!(!capture.is_on());
        position.store(false, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(capture.is_on());
    }
}
