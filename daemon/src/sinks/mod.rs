//! Where redacted frames go. One [`Sink`] interface; the [`Dispatcher`] hands every redacted
//! frame to each sink in turn (spool files, video recording, live preview, event stream, which
//! MQTT reads). A sink only
//! ever receives a [`RedactedFrame`], which only the pipeline can make.

pub mod events;
pub mod preview;
pub mod recording;
pub mod spool;
pub mod writer;

use crate::pipeline::output::RedactedFrame;

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("{0}")]
    Io(String),
    /// The sink could not keep up and skipped this frame.
    #[error("backlog full, frame skipped")]
    Backlog,
}

pub trait Sink: Send {
    fn name(&self) -> &'static str;
    fn publish(&mut self, frame: &RedactedFrame) -> Result<(), SinkError>;
}

/// Fans each frame out to every sink; one sink's failure does not stop the others.
#[derive(Default)]
pub struct Dispatcher {
    sinks: Vec<Box<dyn Sink>>,
}

impl Dispatcher {
    pub fn add(&mut self, sink: Box<dyn Sink>) {
        self.sinks.push(sink);
    }

    pub fn is_empty(&self) -> bool {
        self.sinks.is_empty()
    }

    /// Publish to every sink; returns how many failed.
    pub fn publish(&mut self, frame: &RedactedFrame) -> usize {
        let mut failed = 0;
        for sink in &mut self.sinks {
            if let Err(e) = sink.publish(frame) {
                failed += 1;
                tracing::warn!(sink = sink.name(), frame = frame.event().frame_id, "sink: {e}");
            }
        }
        failed
    }
}
