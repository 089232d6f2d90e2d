//! Redacted video recording: the pipeline's redacted frames (its JPEGs, nothing else reaches a
//! sink) encoded to H.264 in segments of N seconds, fragmented MP4 or Matroska, through
//! GStreamer (appsrc -> jpegdec -> encoder -> muxer -> file). A segment is written under
//! `.partial/` and moved into the directory (fsync, rename) when it is closed; segments rotate
//! by count, size and age like the JPEG spool. After a crash the fragments of the segment in
//! progress are kept: the next start moves what was written into the directory.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use super::spool::{Spool, SpoolLimits};
use super::writer::{Failures, WriterThread};
use super::{Sink, SinkError};
use crate::pipeline::output::RedactedFrame;

/// How a recording is written.
#[derive(Debug, Clone)]
pub struct RecordingOptions {
    pub segment: Duration,
    /// `mp4` (fragmented) or `mkv`.
    pub container: String,
    /// A GStreamer H.264 encoder: `x264enc` (software), `v4l2h264enc` (Raspberry Pi 4),
    /// `nvv4l2h264enc` (Jetson).
    pub encoder: String,
    pub bitrate_kbps: u32,
    /// The camera's nominal rate (caps and keyframe spacing; timestamps are the capture times).
    pub fps: u32,
    pub limits: SpoolLimits,
}

/// Muxed data is flushed in fragments this long (or a quarter of a shorter segment), so a power
/// cut loses at most one.
const FRAGMENT_MS: u32 = 1000;
/// Closing a segment (the encoder drains, the muxer finishes) may take this long.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(20);

fn element(factory: &str) -> Result<gst::Element, String> {
    gst::ElementFactory::make(factory).build().map_err(|_| format!("GStreamer element '{factory}' is missing"))
}

/// A redacted frame's JPEG as the bytes of a GStreamer buffer.
struct SharedJpeg(Arc<Vec<u8>>);

impl AsRef<[u8]> for SharedJpeg {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// One segment being written.
struct Segment {
    pipeline: gst::Pipeline,
    src: gst_app::AppSrc,
    path: PathBuf,
    first_ms: u64,
    frames: u64,
}

impl Segment {
    fn start(path: PathBuf, first_ms: u64, opts: &RecordingOptions) -> Result<Segment, String> {
        gst::init().map_err(|e| format!("GStreamer: {e}"))?;
        let pipeline = gst::Pipeline::new();
        let src = gst_app::AppSrc::builder()
            .caps(&gst::Caps::builder("image/jpeg").field("framerate", gst::Fraction::new(opts.fps.max(1) as i32, 1)).build())
            .format(gst::Format::Time)
            .is_live(true)
            .block(false)
            .max_bytes(64 << 20)
            .build();
        let decode = element("jpegdec")?;
        let convert = element("videoconvert")?;
        let encoder = element(&opts.encoder)?;
        if opts.encoder == "x264enc" {
            encoder.set_property_from_str("tune", "zerolatency");
            encoder.set_property_from_str("speed-preset", "veryfast");
            encoder.set_property("bitrate", opts.bitrate_kbps.max(100));
            encoder.set_property("key-int-max", opts.fps.max(1));
        }
        let parse = element("h264parse")?;
        let mux = if opts.container == "mkv" {
            element("matroskamux")?
        } else {
            let m = element("mp4mux")?;
            let quarter = (opts.segment.as_millis() / 4).clamp(100, FRAGMENT_MS as u128) as u32;
            m.set_property("fragment-duration", quarter);
            m.set_property("streamable", true);
            m
        };
        let sink = element("filesink")?;
        sink.set_property("location", path.to_string_lossy().as_ref());
        sink.set_property("sync", false);
        sink.set_property("async", false);
        let chain = [src.upcast_ref::<gst::Element>(), &decode, &convert, &encoder, &parse, &mux, &sink];
        pipeline.add_many(chain).map_err(|e| e.to_string())?;
        gst::Element::link_many(chain).map_err(|e| format!("{}: {e}", opts.encoder))?;
        pipeline.set_state(gst::State::Playing).map_err(|_| "the recording pipeline does not start".to_string())?;
        Ok(Segment { pipeline, src, path, first_ms, frames: 0 })
    }

    fn check(&self) -> Result<(), String> {
        match veil_camera::gst_source::bus_error(&self.pipeline) {
            Some(e) => Err(format!("recording: {e}")),
            None => Ok(()),
        }
    }

    fn push(&mut self, jpeg: &Arc<Vec<u8>>, timestamp_ms: u64) -> Result<(), String> {
        self.check()?;
        // The frame's JPEG is shared with the buffer, not copied.
        let mut buffer = gst::Buffer::from_slice(SharedJpeg(jpeg.clone()));
        {
            let b = buffer.get_mut().ok_or("shared buffer")?;
            b.set_pts(gst::ClockTime::from_mseconds(timestamp_ms.saturating_sub(self.first_ms)));
        }
        self.src.push_buffer(buffer).map_err(|e| format!("recording: {e:?}"))?;
        self.frames += 1;
        Ok(())
    }

    /// Drain the encoder and finish the file.
    fn close(self) -> Result<PathBuf, String> {
        let _ = self.src.end_of_stream();
        let bus = self.pipeline.bus().ok_or("no bus")?;
        let outcome = match bus.timed_pop_filtered(
            gst::ClockTime::from_mseconds(CLOSE_TIMEOUT.as_millis() as u64),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        ) {
            Some(msg) => match msg.view() {
                gst::MessageView::Eos(_) => Ok(()),
                gst::MessageView::Error(e) => Err(format!("recording: {}", e.error())),
                _ => Ok(()),
            },
            None => Err("recording: the segment did not finish in time".into()),
        };
        let _ = self.pipeline.set_state(gst::State::Null);
        outcome.map(|_| self.path.clone())
    }
}

/// The writer thread's state: the directory and the segment in progress.
struct Recorder {
    spool: Spool,
    opts: RecordingOptions,
    current: Option<Segment>,
}

impl Recorder {
    fn name(first_ms: u64, frame_id: u64, container: &str) -> String {
        format!("{first_ms:013}-{frame_id:010}.{container}")
    }

    fn write(&mut self, frame: &RedactedFrame) -> Result<(), String> {
        let ev = frame.event();
        let due = self.current.as_ref().is_some_and(|s| {
            ev.timestamp_ms.saturating_sub(s.first_ms) >= self.opts.segment.as_millis() as u64 || ev.timestamp_ms < s.first_ms
        });
        if due {
            self.finish()?;
        }
        if self.current.is_none() {
            let path = self.spool.partial_dir().join(Self::name(ev.timestamp_ms, ev.frame_id, &self.opts.container));
            self.current = Some(Segment::start(path, ev.timestamp_ms, &self.opts)?);
        }
        let segment = self.current.as_mut().expect("segment open");
        if let Err(e) = segment.push(frame.jpeg(), ev.timestamp_ms) {
            // A broken segment is closed as far as it goes; the next frame starts a new one.
            let _ = self.finish();
            return Err(e);
        }
        Ok(())
    }

    /// Close the segment in progress and move it into the directory.
    fn finish(&mut self) -> Result<(), String> {
        let Some(segment) = self.current.take() else { return Ok(()) };
        let empty = segment.frames == 0;
        let path = segment.path.clone();
        let closed = segment.close();
        if empty {
            let _ = std::fs::remove_file(&path);
            return closed.map(|_| ());
        }
        // Even a segment whose close failed holds whole fragments: keep what is there.
        let adopted = self.spool.adopt(&path).map_err(|e| format!("recording: cannot keep {}: {e}", path.display()));
        closed.and(adopted.map(|_| ()))
    }
}

/// Sink side: frames go to the writer thread through a short queue; a full queue skips a frame.
pub struct RecordingSink(WriterThread);

impl RecordingSink {
    /// Open the directory (a crash's leftover segment is moved in with what it holds), check
    /// that the encoder exists, and start the writer.
    pub fn start(dir: &Path, opts: RecordingOptions) -> anyhow::Result<Self> {
        gst::init()?;
        for factory in ["jpegdec", "videoconvert", "h264parse", opts.encoder.as_str()] {
            anyhow::ensure!(gst::ElementFactory::find(factory).is_some(), "recording: GStreamer element '{factory}' is missing");
        }
        anyhow::ensure!(["mp4", "mkv"].contains(&opts.container.as_str()), "recording.container must be mp4 or mkv");
        std::fs::create_dir_all(dir)?;
        let spool = Spool::open_with(dir, opts.limits.clone(), if opts.container == "mkv" { "mkv" } else { "mp4" }, |left| {
            let keep = left.metadata().map(|m| m.len() > 0).unwrap_or(false);
            let moved = keep && std::fs::rename(left, dir.join(left.file_name().unwrap_or_default())).is_ok();
            if moved {
                tracing::warn!("recording: kept the interrupted segment {}", left.display());
            } else {
                let _ = std::fs::remove_file(left);
            }
        })?;
        let recorder = Recorder { spool, opts, current: None };
        Ok(Self(WriterThread::start("recording", "veil-recording", 32, move |rx, failures| writer_loop(recorder, rx, failures))?))
    }
}

fn writer_loop(mut recorder: Recorder, rx: Receiver<RedactedFrame>, failures: Failures) {
    let fail = |e: String| {
        failures.add();
        tracing::error!("{e}");
    };
    loop {
        match rx.recv_timeout(recorder.opts.segment) {
            Ok(frame) => {
                if let Err(e) = recorder.write(&frame) {
                    fail(e);
                }
            }
            // No frames for a whole segment (capture paused, camera lost): close the open one.
            Err(RecvTimeoutError::Timeout) => {
                if let Err(e) = recorder.finish() {
                    fail(e);
                }
                recorder.spool.rotate();
            }
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    if let Err(e) = recorder.finish() {
        fail(e);
    }
}

impl Sink for RecordingSink {
    fn name(&self) -> &'static str {
        "recording"
    }

    /// The segment in progress is finished and kept when the sink is dropped (the writer thread
    /// finishes before the drop returns).
    fn publish(&mut self, frame: &RedactedFrame) -> Result<(), SinkError> {
        self.0.publish(frame)
    }
}
