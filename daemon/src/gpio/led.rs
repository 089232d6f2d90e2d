//! Blink patterns of the status LED, one per device state, played until the state changes.

use std::time::Duration;

use tokio::sync::watch;

use super::status::DeviceState;
use super::Led;

/// (on, off) steps in milliseconds, repeated.
pub fn pattern(state: DeviceState) -> &'static [(u64, u64)] {
    match state {
        // Even slow blink while the model loads.
        DeviceState::Starting => &[(500, 500)],
        // Steady on.
        DeviceState::Running => &[(1000, 0)],
        // A short blip every 2 s: alive, capture held off by the privacy switch or a command.
        DeviceState::Paused => &[(100, 1900)],
        // Double blink: working, but the camera is missing or failing.
        DeviceState::Degraded => &[(150, 150), (150, 1050)],
        // Fast blink: the pipeline is stalled (the watchdog will restart veil).
        DeviceState::Error => &[(100, 100)],
    }
}

/// Drive `led` with the pattern of the current state until shutdown (then switch it off).
pub async fn run(mut led: impl Led, mut states: watch::Receiver<DeviceState>, mut shutdown: watch::Receiver<bool>) {
    loop {
        let state = *states.borrow_and_update();
        'pattern: loop {
            for &(on, off) in pattern(state) {
                for (lit, ms) in [(true, on), (false, off)] {
                    if ms == 0 {
                        continue;
                    }
                    led.set(lit);
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(ms)) => {}
                        changed = states.changed() => {
                            if changed.is_err() {
                                led.set(false);
                                return;
                            }
                            break 'pattern;
                        }
                        _ = shutdown.changed() => {
                            led.set(false);
                            return;
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tokio::time::Instant;

    use super::*;

    /// Records (ms since start, lit) at every change.
    #[derive(Clone)]
    struct FakeLed {
        start: Instant,
        log: Arc<Mutex<Vec<(u64, bool)>>>,
    }

    impl Led for FakeLed {
        fn set(&mut self, on: bool) {
            let mut log = self.log.lock().unwrap();
            if log.last().map(|&(_, l)| l) != Some(on) {
                log.push((self.start.elapsed().as_millis() as u64, on));
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn each_state_plays_its_pattern_and_a_change_takes_effect_at_once() {
        let led = FakeLed { start: Instant::now(), log: Arc::default() };
        let log = led.log.clone();
        let (state_tx, states) = watch::channel(DeviceState::Starting);
        let (stop_tx, stop) = watch::channel(false);
        let task = tokio::spawn(run(led, states, stop));
        tokio::time::sleep(Duration::from_millis(1600)).await;
        state_tx.send(DeviceState::Degraded).unwrap();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        state_tx.send(DeviceState::Running).unwrap();
        tokio::time::sleep(Duration::from_millis(3000)).await;
        stop_tx.send(true).unwrap();
        task.await.unwrap();
        let log = log.lock().unwrap().clone();
        assert_eq!(
            log,
            vec![
                // starting: 500/500
                (0, true), (500, false), (1000, true), (1500, false),
                // degraded from 1600: double blink, 150/150/150/1050
                (1600, true), (1750, false), (1900, true), (2050, false),
                // running from 3100: steady on
                (3100, true),
                // shutdown: off
                (6100, false),
            ]
        );
    }
}
