//! The live preview: the latest redacted JPEG, shared with any number of HTTP viewers, who each
//! pull at their own pace (a slow viewer skips frames, never holds up the pipeline).

use std::sync::Arc;

use tokio::sync::watch;

use super::{Sink, SinkError};
use crate::pipeline::output::RedactedFrame;

/// One preview image.
#[derive(Debug)]
pub struct PreviewImage {
    pub frame_id: u64,
    pub jpeg: Arc<Vec<u8>>,
}

#[derive(Clone)]
pub struct PreviewFeed {
    tx: Arc<watch::Sender<Option<Arc<PreviewImage>>>>,
}

impl Default for PreviewFeed {
    fn default() -> Self {
        Self { tx: Arc::new(watch::channel(None).0) }
    }
}

impl PreviewFeed {
    pub fn subscribe(&self) -> watch::Receiver<Option<Arc<PreviewImage>>> {
        self.tx.subscribe()
    }

    pub fn sink(&self) -> Box<dyn Sink> {
        Box::new(PreviewSink { tx: self.tx.clone() })
    }
}

struct PreviewSink {
    tx: Arc<watch::Sender<Option<Arc<PreviewImage>>>>,
}

impl Sink for PreviewSink {
    fn name(&self) -> &'static str {
        "preview"
    }

    fn publish(&mut self, frame: &RedactedFrame) -> Result<(), SinkError> {
        let image = PreviewImage { frame_id: frame.event().frame_id, jpeg: frame.jpeg().clone() };
        self.tx.send_replace(Some(Arc::new(image)));
        Ok(())
    }
}
