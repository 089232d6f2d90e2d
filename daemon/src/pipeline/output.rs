//! What leaves the pipeline: a [`RedactedFrame`] (JPEG of pixels that went through masking; only
//! this module's pipeline can make one) and its [`FrameEvent`] (per-frame results for telemetry).

use std::sync::Arc;

use serde::Serialize;

/// One object masked in a frame. Boxes are fractions of the frame (0..1), clipped.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct EventObject {
    pub category: &'static str,
    pub track_id: u64,
    /// `[x1, y1, x2, y2]`
    pub bbox: [f32; 4],
    pub score: f32,
    /// `false` while the tracker holds a mask for a face the detector missed in this frame.
    pub detected: bool,
}

#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct EventTimings {
    pub queue_ms: f64,
    pub inference_ms: f64,
    pub mask_ms: f64,
    pub encode_ms: f64,
    /// Capture to output.
    pub total_ms: f64,
}

/// Per-frame results, published on the in-process event stream.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FrameEvent {
    pub frame_id: u64,
    /// Capture time, milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    pub width: u32,
    pub height: u32,
    pub objects: Vec<EventObject>,
    /// Privacy zones masked in this frame.
    pub zones: usize,
    pub timings: EventTimings,
}

/// A frame that has been through detection and masking. Its constructor is private to the
/// pipeline, so a sink cannot be handed anything else.
#[derive(Clone)]
pub struct RedactedFrame {
    event: Arc<FrameEvent>,
    jpeg: Arc<Vec<u8>>,
}

impl RedactedFrame {
    pub(in crate::pipeline) fn new(event: FrameEvent, jpeg: Vec<u8>) -> Self {
        Self { event: Arc::new(event), jpeg: Arc::new(jpeg) }
    }

    pub fn event(&self) -> &Arc<FrameEvent> {
        &self.event
    }

    /// The redacted frame as JPEG.
    pub fn jpeg(&self) -> &Arc<Vec<u8>> {
        &self.jpeg
    }

    /// A frame for sink tests; the bytes are whatever the test passes (never camera pixels).
    #[cfg(test)]
    pub fn for_test(frame_id: u64, jpeg: Vec<u8>) -> Self {
        let event = FrameEvent {
            frame_id,
            timestamp_ms: 0,
            width: 1,
            height: 1,
            objects: vec![],
            zones: 0,
            timings: EventTimings::default(),
        };
        Self::new(event, jpeg)
    }
}
