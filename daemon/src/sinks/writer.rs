//! The sink side of a sink that writes on its own thread (the spool, the recording): frames go
//! through a short queue, a full queue skips the frame (`Backlog`), the thread's write failures
//! are reported with the next frame, and dropping the sink lets the thread finish what is queued.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Arc;

use super::SinkError;
use crate::pipeline::output::RedactedFrame;

/// Counts the writer thread's failures.
#[derive(Clone, Default)]
pub struct Failures(Arc<AtomicU64>);

impl Failures {
    pub fn add(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    fn count(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

pub struct WriterThread {
    what: &'static str,
    tx: Option<SyncSender<RedactedFrame>>,
    thread: Option<std::thread::JoinHandle<()>>,
    failures: Failures,
    /// Failures already reported through `publish`.
    reported: u64,
}

impl WriterThread {
    /// Start thread `name` running `run` over a queue of `capacity` frames; `what` names the
    /// sink in errors.
    pub fn start(
        what: &'static str,
        name: &str,
        capacity: usize,
        run: impl FnOnce(Receiver<RedactedFrame>, Failures) + Send + 'static,
    ) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::sync_channel(capacity);
        let failures = Failures::default();
        let f = failures.clone();
        let thread = std::thread::Builder::new().name(name.into()).spawn(move || run(rx, f))?;
        Ok(Self { what, tx: Some(tx), thread: Some(thread), failures, reported: 0 })
    }

    pub fn publish(&mut self, frame: &RedactedFrame) -> Result<(), SinkError> {
        let failures = self.failures.count();
        if failures > self.reported {
            let new = failures - self.reported;
            self.reported = failures;
            let _ = self.tx.as_ref().map(|tx| tx.try_send(frame.clone()));
            return Err(SinkError::Io(format!("{new} earlier {} write(s) failed (disk full or not writable?)", self.what)));
        }
        let tx = self.tx.as_ref().ok_or_else(|| SinkError::Io(format!("{} closed", self.what)))?;
        match tx.try_send(frame.clone()) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err(SinkError::Backlog),
            Err(TrySendError::Disconnected(_)) => Err(SinkError::Io(format!("{} writer stopped", self.what))),
        }
    }
}

impl Drop for WriterThread {
    /// Flush: the thread finishes what is queued before the sink goes away.
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
