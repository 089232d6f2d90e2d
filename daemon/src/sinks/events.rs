//! The in-process stream of per-frame results: every subscriber (MQTT, REST, tests) gets each
//! [`FrameEvent`]; a subscriber that falls behind loses the oldest events, never blocks the pipeline.

use std::sync::Arc;

use tokio::sync::broadcast;

use super::{Sink, SinkError};
use crate::pipeline::output::{FrameEvent, RedactedFrame};

#[derive(Clone)]
pub struct EventStream {
    tx: broadcast::Sender<Arc<FrameEvent>>,
}

impl EventStream {
    pub fn new(capacity: usize) -> Self {
        Self { tx: broadcast::channel(capacity.max(1)).0 }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<FrameEvent>> {
        self.tx.subscribe()
    }

    pub fn sink(&self) -> Box<dyn Sink> {
        Box::new(EventSink { tx: self.tx.clone() })
    }
}

struct EventSink {
    tx: broadcast::Sender<Arc<FrameEvent>>,
}

impl Sink for EventSink {
    fn name(&self) -> &'static str {
        "events"
    }

    fn publish(&mut self, frame: &RedactedFrame) -> Result<(), SinkError> {
        // No subscribers is fine: nobody is listening yet.
        let _ = self.tx.send(frame.event().clone());
        Ok(())
    }
}
