//! Keeps a device source alive across unplug and replug: after a transient error it drops the
//! device and reopens it with exponential backoff, numbering frames without a restart.

use std::time::Duration;

use crate::frame::{Frame, SourceError};
use crate::FrameSource;

/// Opens (or reopens) the underlying source.
pub type Opener = Box<dyn FnMut() -> Result<Box<dyn FrameSource>, SourceError> + Send>;
/// Waits between attempts; the pipeline passes one that returns early on shutdown.
pub type Sleeper = Box<dyn FnMut(Duration) + Send>;

pub struct Reconnecting {
    label: String,
    open: Opener,
    sleep: Sleeper,
    current: Option<Box<dyn FrameSource>>,
    delay: Duration,
    min_delay: Duration,
    max_delay: Duration,
    next_sequence: u64,
    losses: u64,
    reopens: u64,
    /// Frames delivered by the current session; a session that ends without any backs off.
    session_frames: u64,
    /// Skipped frames of earlier sessions.
    skipped_before: u64,
}

impl Reconnecting {
    pub fn new(label: String, open: Opener, sleep: Sleeper) -> Self {
        let min_delay = Duration::from_millis(100);
        Self {
            label,
            open,
            sleep,
            current: None,
            delay: min_delay,
            min_delay,
            max_delay: Duration::from_secs(5),
            next_sequence: 0,
            losses: 0,
            reopens: 0,
            session_frames: 0,
            skipped_before: 0,
        }
    }

    pub fn with_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.min_delay = min;
        self.delay = min;
        self.max_delay = max.max(min);
        self
    }

    /// Times the device was lost while streaming.
    pub fn losses(&self) -> u64 {
        self.losses
    }

    /// Successful opens after the first one.
    pub fn reopens(&self) -> u64 {
        self.reopens
    }

    pub fn is_connected(&self) -> bool {
        self.current.is_some()
    }

    fn back_off(&mut self) {
        let d = self.delay;
        (self.sleep)(d);
        self.delay = (d * 2).min(self.max_delay);
    }
}

impl FrameSource for Reconnecting {
    fn describe(&self) -> String {
        match &self.current {
            Some(s) => s.describe(),
            None => format!("{} (waiting for the device)", self.label),
        }
    }

    fn skipped_frames(&self) -> u64 {
        self.skipped_before + self.current.as_ref().map_or(0, |s| s.skipped_frames())
    }

    fn release(&mut self) {
        if let Some(source) = self.current.take() {
            self.skipped_before += source.skipped_frames();
        }
    }

    fn next_frame(&mut self) -> Result<Option<Frame>, SourceError> {
        if self.current.is_none() {
            match (self.open)() {
                Ok(source) => {
                    if self.losses > 0 || self.next_sequence > 0 {
                        self.reopens += 1;
                    }
                    self.current = Some(source);
                    self.session_frames = 0;
                }
                Err(e) => {
                    self.back_off();
                    return Err(e);
                }
            }
        }
        let source = self.current.as_mut().expect("opened above");
        match source.next_frame() {
            Ok(Some(mut frame)) => {
                self.delay = self.min_delay;
                self.session_frames += 1;
                frame.sequence = self.next_sequence;
                self.next_sequence += 1;
                Ok(Some(frame))
            }
            Ok(None) => Ok(None),
            Err(e) if e.is_transient() => {
                self.skipped_before += source.skipped_frames();
                self.current = None;
                self.losses += 1;
                if self.session_frames == 0 {
                    // Opens but fails at once (EIO, no bandwidth): do not reopen in a tight loop.
                    self.back_off();
                }
                Err(e)
            }
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::TestPattern;

    /// A device that streams `frames_per_session` frames, then vanishes; while `absent` counts
    /// down, opening it fails as an unplugged device does.
    struct FlakyDevice {
        inner: TestPattern,
        left: u32,
    }

    impl FrameSource for FlakyDevice {
        fn describe(&self) -> String {
            "flaky".into()
        }
        fn next_frame(&mut self) -> Result<Option<Frame>, SourceError> {
            if self.left == 0 {
                return Err(SourceError::Disconnected("unplugged".into()));
            }
            self.left -= 1;
            self.inner.next_frame()
        }
    }

    #[test]
    fn reopens_after_loss_with_backoff_and_keeps_numbering() {
        let absent_opens = Arc::new(Mutex::new(3u32));
        let a = absent_opens.clone();
        let open: Opener = Box::new(move || {
            let mut absent = a.lock().unwrap();
            if *absent > 0 {
                *absent -= 1;
                return Err(SourceError::Unavailable("no /dev/video0".into()));
            }
            *absent = 2; // after the next loss, the device stays away for two attempts
            Ok(Box::new(FlakyDevice { inner: TestPattern::new(32, 32, None), left: 4 }))
        });
        let slept = Arc::new(Mutex::new(Vec::new()));
        let s = slept.clone();
        let mut source = Reconnecting::new("flaky".into(), open, Box::new(move |d| s.lock().unwrap().push(d)));
        let mut sequences = Vec::new();
        let mut errors = 0;
        while sequences.len() < 10 {
            match source.next_frame() {
                Ok(Some(f)) => sequences.push(f.sequence),
                Ok(None) => unreachable!(),
                Err(e) => {
                    assert!(e.is_transient());
                    errors += 1;
                    assert!(errors < 30, "never recovered");
                }
            }
        }
        assert_eq!(sequences, (0..10).collect::<Vec<_>>());
        assert_eq!(source.losses(), 2);
        assert_eq!(source.reopens(), 2);
        let slept = slept.lock().unwrap();
        // 3 failed opens at start (100, 200, 400 ms), then the delay resets once frames flow.
        assert_eq!(&slept[..3], &[Duration::from_millis(100), Duration::from_millis(200), Duration::from_millis(400)]);
        assert_eq!(slept[3], Duration::from_millis(100));
    }

    #[test]
    fn backoff_is_capped() {
        let open: Opener = Box::new(|| Err(SourceError::Unavailable("gone".into())));
        let slept = Arc::new(Mutex::new(Vec::new()));
        let s = slept.clone();
        let mut source = Reconnecting::new("gone".into(), open, Box::new(move |d| s.lock().unwrap().push(d)))
            .with_backoff(Duration::from_millis(100), Duration::from_secs(1));
        for _ in 0..8 {
            assert!(source.next_frame().is_err());
        }
        assert_eq!(*slept.lock().unwrap().last().unwrap(), Duration::from_secs(1));
        assert!(!source.is_connected());
    }
}

#[cfg(test)]
mod backoff_tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    struct FailsAtOnce;

    impl FrameSource for FailsAtOnce {
        fn describe(&self) -> String {
            "fails".into()
        }
        fn next_frame(&mut self) -> Result<Option<Frame>, SourceError> {
            Err(SourceError::Disconnected("EIO".into()))
        }
    }

    #[test]
    fn a_device_that_opens_but_never_delivers_is_not_reopened_in_a_tight_loop() {
        let slept = Arc::new(Mutex::new(Vec::new()));
        let s = slept.clone();
        let open: Opener = Box::new(|| Ok(Box::new(FailsAtOnce)));
        let mut source = Reconnecting::new("eio".into(), open, Box::new(move |d| s.lock().unwrap().push(d)));
        for _ in 0..4 {
            assert!(source.next_frame().is_err());
        }
        assert_eq!(*slept.lock().unwrap(), [100, 200, 400, 800].map(Duration::from_millis));
    }

    #[test]
    fn release_closes_the_device_and_the_next_read_opens_it_again() {
        let opens = Arc::new(Mutex::new(0u32));
        let o = opens.clone();
        let open: Opener = Box::new(move || {
            *o.lock().unwrap() += 1;
            Ok(Box::new(crate::TestPattern::new(16, 16, None)))
        });
        let mut source = Reconnecting::new("cam".into(), open, Box::new(|_| {}));
        assert_eq!(source.next_frame().unwrap().unwrap().sequence, 0);
        source.release();
        assert!(!source.is_connected(), "paused capture holds no device open");
        assert_eq!(source.next_frame().unwrap().unwrap().sequence, 1, "numbering carries on");
        assert_eq!(*opens.lock().unwrap(), 2);
    }
}
