//! What the status LED shows: the device's state, worked out from the pipeline and the capture
//! switch.

use std::time::Duration;

use crate::pipeline::controls::CaptureSwitch;
use crate::pipeline::metrics::Metrics;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceState {
    Starting,
    Running,
    /// Capture held off (privacy switch or a command).
    Paused,
    /// Serving, but the camera is missing or failing.
    Degraded,
    /// The pipeline is stalled.
    Error,
}

pub fn device_state(metrics: Option<&Metrics>, capture: &CaptureSwitch, stall_limit: Duration) -> DeviceState {
    let Some(m) = metrics else { return DeviceState::Running };
    if crate::systemd::pipeline_health(Some(m), stall_limit).is_err() {
        return DeviceState::Error;
    }
    if !capture.is_on() {
        return DeviceState::Paused;
    }
    let source = m.snapshot().source;
    if !source.running && !source.finished {
        return DeviceState::Degraded;
    }
    DeviceState::Running
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_follow_the_pipeline_and_the_switch() {
        let capture = CaptureSwitch::default();
        let long = Duration::from_secs(60);
        assert_eq!(device_state(None, &capture, long), DeviceState::Running, "no camera: serving is running");
        let m = Metrics::default();
        m.worker_alive();
        m.set_source("cam".into(), true, false);
        assert_eq!(device_state(Some(&m), &capture, long), DeviceState::Running);
        m.set_source("cam (waiting for the device)".into(), false, false);
        assert_eq!(device_state(Some(&m), &capture, long), DeviceState::Degraded);
        capture.hold("privacy-switch", true);
        assert_eq!(device_state(Some(&m), &capture, long), DeviceState::Paused);
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(device_state(Some(&m), &capture, Duration::from_millis(5)), DeviceState::Error);
    }
}
