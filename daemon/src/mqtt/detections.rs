//! The `detections` payloads: per-frame results from the pipeline's event stream (frame id,
//! time, count, boxes as fractions of the frame, scores, backend), one message per frame or one
//! batch per window. Never any pixels.

use serde::Serialize;

use crate::pipeline::output::FrameEvent;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FrameDetections {
    pub frame_id: u64,
    pub timestamp_ms: u64,
    pub count: usize,
    pub objects: Vec<DetectedObject>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DetectedObject {
    pub category: &'static str,
    pub track_id: u64,
    /// `[x, y, w, h]`, fractions of the frame.
    pub bbox: [f32; 4],
    pub score: f32,
    /// `false` while the tracker holds a mask the detector missed in this frame.
    pub detected: bool,
}

impl FrameDetections {
    pub fn from_event(e: &FrameEvent) -> Self {
        let objects: Vec<DetectedObject> = e
            .objects
            .iter()
            .map(|o| {
                let [x1, y1, x2, y2] = o.bbox;
                DetectedObject {
                    category: o.category,
                    track_id: o.track_id,
                    bbox: [x1, y1, x2 - x1, y2 - y1].map(|v| (v * 10_000.0).round() / 10_000.0),
                    score: (o.score * 1000.0).round() / 1000.0,
                    detected: o.detected,
                }
            })
            .collect();
        Self { frame_id: e.frame_id, timestamp_ms: e.timestamp_ms, count: objects.len(), objects }
    }
}

/// One message per frame.
#[derive(Debug, Serialize)]
pub struct PerFrame<'a> {
    pub backend: &'a str,
    #[serde(flatten)]
    pub frame: FrameDetections,
}

/// One message per window: every frame seen, the ones with detections listed.
#[derive(Debug, Serialize)]
pub struct Window<'a> {
    pub backend: &'a str,
    pub window_s: f64,
    pub frames: u64,
    pub first_frame_id: Option<u64>,
    pub last_frame_id: Option<u64>,
    pub max_count: usize,
    /// Frames with at least one masked object.
    pub detections: Vec<FrameDetections>,
}

/// Collects a window's frames.
#[derive(Default)]
pub struct WindowBuilder {
    frames: u64,
    first: Option<u64>,
    last: Option<u64>,
    max_count: usize,
    with_objects: Vec<FrameDetections>,
}

impl WindowBuilder {
    pub fn add(&mut self, e: &FrameEvent) {
        self.frames += 1;
        self.first.get_or_insert(e.frame_id);
        self.last = Some(e.frame_id);
        let d = FrameDetections::from_event(e);
        self.max_count = self.max_count.max(d.count);
        if d.count > 0 {
            self.with_objects.push(d);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.frames == 0
    }

    /// The window's message; the builder starts afresh.
    pub fn take<'a>(&mut self, backend: &'a str, window_s: f64) -> Window<'a> {
        let w = std::mem::take(self);
        Window {
            backend,
            window_s,
            frames: w.frames,
            first_frame_id: w.first,
            last_frame_id: w.last,
            max_count: w.max_count,
            detections: w.with_objects,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::output::{EventObject, EventTimings};

    fn event(id: u64, boxes: &[[f32; 4]]) -> FrameEvent {
        FrameEvent {
            frame_id: id,
            timestamp_ms: 1_700_000_000_000 + id,
            width: 640,
            height: 480,
            objects: boxes
                .iter()
                .map(|b| EventObject { category: "face", track_id: 1, bbox: *b, score: 0.87654, detected: true })
                .collect(),
            zones: 0,
            timings: EventTimings::default(),
        }
    }

    #[test]
    fn boxes_become_x_y_w_h_fractions_and_windows_keep_frames_with_faces() {
        let d = FrameDetections::from_event(&event(3, &[[0.1, 0.2, 0.4, 0.6]]));
        assert_eq!(d.count, 1);
        assert_eq!(d.objects[0].bbox, [0.1, 0.2, 0.3, 0.4]);
        assert_eq!(d.objects[0].score, 0.877);
        let mut w = WindowBuilder::default();
        w.add(&event(1, &[]));
        w.add(&event(2, &[[0.1, 0.1, 0.2, 0.2], [0.5, 0.5, 0.6, 0.6]]));
        w.add(&event(3, &[]));
        let msg = w.take("centerface-int8", 5.0);
        assert_eq!((msg.frames, msg.first_frame_id, msg.last_frame_id, msg.max_count), (3, Some(1), Some(3), 2));
        assert_eq!(msg.detections.len(), 1);
        assert!(w.is_empty());
    }
}
