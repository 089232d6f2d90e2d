//! Cameras and clips GStreamer can open: a pipeline (`gst:...`), the named presets that build
//! one (`libcamera` for Raspberry Pi camera modules, `nvargus` for Jetson CSI cameras,
//! `rtsp://` for IP cameras, a video file), all ending in an RGB appsink this source reads.
//! Raw frames never leave that appsink: nothing is teed, every frame goes to the caller.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;

use crate::frame::{Frame, SourceError};
use crate::FrameSource;

/// The appsink veil reads: a `gst:` pipeline may end in one of this name, else veil adds it.
pub const SINK_NAME: &str = "veil";

/// What to open.
#[derive(Debug, Clone, PartialEq)]
pub enum GstInput {
    /// A pipeline as `gst-launch-1.0` takes it.
    Pipeline(String),
    /// A Raspberry Pi camera module through libcamera.
    Libcamera,
    /// A Jetson CSI camera through Argus.
    Nvargus,
    /// An RTSP (or any network URI GStreamer reads) camera.
    Uri(String),
    /// A video file, replayed at its own pace (`realtime`) or as fast as it decodes.
    File { path: PathBuf, realtime: bool },
}

/// A GStreamer source and the frame size and rate asked of cameras.
#[derive(Debug, Clone, PartialEq)]
pub struct GstConfig {
    pub input: GstInput,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    /// Start a file again at its end.
    pub looped: bool,
    /// A live source with no frame for this long is treated as lost (and reopened).
    pub frame_timeout: Duration,
}

impl GstInput {
    /// The input a `camera.source` value names, if it is a GStreamer one.
    pub fn parse(source: &str) -> Option<GstInput> {
        if let Some(p) = source.strip_prefix("gst:") {
            return Some(GstInput::Pipeline(p.trim().to_string()));
        }
        match source {
            "libcamera" => return Some(GstInput::Libcamera),
            "nvargus" => return Some(GstInput::Nvargus),
            _ => {}
        }
        let lower = source.to_ascii_lowercase();
        if ["rtsp://", "rtsps://", "rtspt://", "http://", "https://"].iter().any(|p| lower.starts_with(p)) {
            return Some(GstInput::Uri(source.to_string()));
        }
        None
    }

    fn is_live(&self) -> bool {
        !matches!(self, GstInput::File { .. })
    }
}

/// Quote a value for `gst::parse::launch`.
fn quoted(v: &str) -> String {
    format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))
}

impl GstConfig {
    /// The pipeline text, ending in the RGB appsink.
    pub fn pipeline(&self) -> String {
        let (w, h, f) = (self.width, self.height, self.fps.max(1));
        let live_sink = format!("appsink name={SINK_NAME} max-buffers=2 drop=true sync=false");
        let to_rgb = "videoconvert ! video/x-raw,format=RGB";
        match &self.input {
            GstInput::Pipeline(p) if p.contains(&format!("name={SINK_NAME}")) => p.clone(),
            GstInput::Pipeline(p) => format!("{p} ! {to_rgb} ! {live_sink}"),
            GstInput::Libcamera => {
                format!("libcamerasrc ! video/x-raw,width={w},height={h},framerate={f}/1 ! {to_rgb} ! {live_sink}")
            }
            GstInput::Nvargus => format!(
                "nvarguscamerasrc ! video/x-raw(memory:NVMM),width={w},height={h},framerate={f}/1 ! nvvidconv ! \
                 video/x-raw,format=BGRx ! {to_rgb} ! {live_sink}"
            ),
            GstInput::Uri(uri) => format!("uridecodebin uri={} ! {to_rgb} ! {live_sink}", quoted(uri)),
            GstInput::File { path, realtime } => format!(
                "filesrc location={} ! decodebin ! {to_rgb} ! appsink name={SINK_NAME} max-buffers=4 sync={realtime}",
                quoted(&path.to_string_lossy())
            ),
        }
    }
}

/// A running GStreamer pipeline read frame by frame.
pub struct GstSource {
    config: GstConfig,
    pipeline: gst::Pipeline,
    sink: gst_app::AppSink,
    sequence: u64,
    label: String,
}

impl GstSource {
    /// Build and start the pipeline. A missing element is `Unsupported` (never fixed by a
    /// retry); a camera or server that is not there is `Unavailable`.
    pub fn open(config: &GstConfig) -> Result<GstSource, SourceError> {
        gst::init().map_err(|e| SourceError::Unsupported(format!("GStreamer: {e}")))?;
        let text = config.pipeline();
        let label = match &config.input {
            GstInput::Pipeline(_) => format!("gst:{text}"),
            GstInput::Libcamera => "libcamera".into(),
            GstInput::Nvargus => "nvargus".into(),
            GstInput::Uri(u) => redact_credentials(u),
            GstInput::File { path, .. } => path.display().to_string(),
        };
        // A missing element or a malformed pipeline is the configuration's fault: not retried.
        let element = gst::parse::launch(&text)
            .map_err(|e| SourceError::Unsupported(format!("{label}: cannot build the GStreamer pipeline: {e}")))?;
        let pipeline = element
            .downcast::<gst::Pipeline>()
            .map_err(|_| SourceError::Unsupported(format!("{label}: not a pipeline")))?;
        let sink = pipeline
            .by_name(SINK_NAME)
            .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
            .ok_or_else(|| SourceError::Unsupported(format!("{label}: the pipeline has no appsink named '{SINK_NAME}'")))?;
        // Whatever the pipeline says, the sink hands over packed RGB.
        sink.set_caps(Some(&gst::Caps::builder("video/x-raw").field("format", "RGB").build()));
        if pipeline.set_state(gst::State::Playing).is_err() {
            let why = bus_error(&pipeline).unwrap_or_else(|| "the pipeline does not start".into());
            let _ = pipeline.set_state(gst::State::Null);
            return Err(SourceError::Unavailable(format!("{label}: {why}")));
        }
        Ok(GstSource { config: config.clone(), pipeline, sink, sequence: 0, label })
    }

    fn unpack(&mut self, sample: &gst::Sample) -> Result<Frame, SourceError> {
        let bad = |reason: String| SourceError::Decode { what: self.label.clone(), reason };
        let caps = sample.caps().ok_or_else(|| bad("a frame without caps".into()))?;
        let info = gst_video::VideoInfo::from_caps(caps).map_err(|e| bad(format!("frame format: {e}")))?;
        let buffer = sample.buffer().ok_or_else(|| bad("a frame without data".into()))?;
        let map = buffer.map_readable().map_err(|e| bad(e.to_string()))?;
        let (w, h) = (info.width() as usize, info.height() as usize);
        let (stride, offset) = (info.stride()[0] as usize, info.offset()[0]);
        if w == 0 || h == 0 || stride < w * 3 || map.len() < offset + stride * (h - 1) + w * 3 {
            return Err(SourceError::BadBuffer { len: map.len(), width: w as u32, height: h as u32, format: "RGB" });
        }
        let mut rgb = Vec::with_capacity(w * h * 3);
        for row in 0..h {
            let start = offset + row * stride;
            rgb.extend_from_slice(&map[start..start + w * 3]);
        }
        let frame = Frame { rgb, width: w as u32, height: h as u32, sequence: self.sequence, timestamp: SystemTime::now() };
        self.sequence += 1;
        Ok(frame)
    }
}

/// `rtsp://user:secret@host/...` without the secret, for logs.
fn redact_credentials(uri: &str) -> String {
    match (uri.find("://"), uri.find('@')) {
        (Some(scheme), Some(at)) if at > scheme => format!("{}://***@{}", &uri[..scheme], &uri[at + 1..]),
        _ => uri.to_string(),
    }
}

/// The first error on `pipeline`'s bus, as `element: message` (the daemon's video graphs use it
/// too).
pub fn bus_error(pipeline: &gst::Pipeline) -> Option<String> {
    let bus = pipeline.bus()?;
    while let Some(msg) = bus.pop_filtered(&[gst::MessageType::Error]) {
        if let gst::MessageView::Error(err) = msg.view() {
            let from = msg.src().map(|s| s.name().to_string()).unwrap_or_default();
            return Some(format!("{from}: {}", err.error()));
        }
    }
    None
}

impl FrameSource for GstSource {
    fn describe(&self) -> String {
        self.label.clone()
    }

    fn next_frame(&mut self) -> Result<Option<Frame>, SourceError> {
        let started = std::time::Instant::now();
        loop {
            if let Some(e) = bus_error(&self.pipeline) {
                return Err(SourceError::Disconnected(format!("{}: {e}", self.label)));
            }
            if let Some(sample) = self.sink.try_pull_sample(gst::ClockTime::from_mseconds(100)) {
                return self.unpack(&sample).map(Some);
            }
            if self.sink.is_eos() {
                if self.config.input.is_live() {
                    // A camera or a server that ended its stream: lost, to be reopened.
                    return Err(SourceError::Disconnected(format!("{}: the stream ended", self.label)));
                }
                if !self.config.looped {
                    return Ok(None);
                }
                if self.sequence == 0 {
                    return Err(SourceError::Empty(self.label.clone()));
                }
                self.pipeline
                    .seek_simple(gst::SeekFlags::FLUSH | gst::SeekFlags::KEY_UNIT, gst::ClockTime::ZERO)
                    .map_err(|e| SourceError::Decode { what: self.label.clone(), reason: format!("cannot loop: {e}") })?;
                continue;
            }
            if self.config.input.is_live() && started.elapsed() > self.config.frame_timeout {
                return Err(SourceError::Disconnected(format!(
                    "{}: no frame for {} s",
                    self.label,
                    self.config.frame_timeout.as_secs()
                )));
            }
        }
    }

    fn release(&mut self) {
        // Files keep their place (paused); cameras and streams are let go and reopened by the
        // reconnecting wrapper.
        let _ = self.pipeline.set_state(if self.config.input.is_live() { gst::State::Null } else { gst::State::Paused });
    }
}

impl Drop for GstSource {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(input: GstInput) -> GstConfig {
        GstConfig { input, width: 1280, height: 720, fps: 30, looped: false, frame_timeout: Duration::from_secs(10) }
    }

    #[test]
    fn sources_name_their_inputs_and_every_pipeline_ends_in_the_rgb_appsink() {
        assert_eq!(GstInput::parse("libcamera"), Some(GstInput::Libcamera));
        assert_eq!(GstInput::parse("nvargus"), Some(GstInput::Nvargus));
        assert_eq!(GstInput::parse("rtsp://cam.local/stream1"), Some(GstInput::Uri("rtsp://cam.local/stream1".into())));
        assert_eq!(GstInput::parse("gst: v4l2src ! videoconvert"), Some(GstInput::Pipeline("v4l2src ! videoconvert".into())));
        assert_eq!(GstInput::parse("/dev/video0"), None);
        assert_eq!(GstInput::parse("frames/"), None);
        let lib = config(GstInput::Libcamera).pipeline();
        assert!(lib.starts_with("libcamerasrc ! video/x-raw,width=1280,height=720,framerate=30/1"), "{lib}");
        assert!(config(GstInput::Nvargus).pipeline().contains("nvvidconv"));
        let own = config(GstInput::Pipeline("videotestsrc ! videoconvert ! appsink name=veil".into())).pipeline();
        assert_eq!(own, "videotestsrc ! videoconvert ! appsink name=veil", "an appsink named veil is used as it is");
        for input in [GstInput::Libcamera, GstInput::Uri("rtsp://h/x".into()), GstInput::Pipeline("videotestsrc".into())] {
            assert!(config(input).pipeline().ends_with("appsink name=veil max-buffers=2 drop=true sync=false"));
        }
        assert_eq!(redact_credentials("rtsp://admin:hunter2@10.0.0.5/live"), "rtsp://***@10.0.0.5/live");
    }

    #[test]
    fn a_test_pipeline_delivers_rgb_frames_and_a_file_ends_or_loops() {
        // A live source's appsink keeps only the newest frames: some of the 5 may be dropped.
        let input = GstInput::Pipeline("videotestsrc num-buffers=5 ! video/x-raw,width=64,height=48".into());
        let mut src = GstSource::open(&GstConfig { looped: false, ..config(input) }).unwrap();
        let f = src.next_frame().unwrap().unwrap();
        assert_eq!((f.width, f.height, f.rgb.len(), f.sequence), (64, 48, 64 * 48 * 3, 0));
        let mut frames = 1;
        let end = loop {
            match src.next_frame() {
                Ok(Some(f)) => {
                    assert_eq!(f.sequence, frames);
                    frames += 1;
                }
                other => break other,
            }
        };
        assert!(frames <= 5);
        // A live pipeline that ends is a lost camera (the reconnecting wrapper reopens it).
        assert!(matches!(end, Err(SourceError::Disconnected(_))), "{end:?}");
        // A clip is not live: every frame, in order, then the end (or again from the start).
        // (Theora in Ogg: both in gst-plugins-base, so the aarch64 run under qemu has them too.)
        let clip = std::env::temp_dir().join(format!("veil-gst-source-{}.ogv", std::process::id()));
        let make = format!(
            "videotestsrc num-buffers=12 ! video/x-raw,width=64,height=48,framerate=30/1 ! theoraenc ! oggmux ! filesink location={}",
            clip.display()
        );
        let writer = gst::parse::launch(&make).unwrap();
        writer.set_state(gst::State::Playing).unwrap();
        let bus = writer.bus().unwrap();
        assert!(bus.timed_pop_filtered(gst::ClockTime::from_seconds(30), &[gst::MessageType::Eos]).is_some());
        writer.set_state(gst::State::Null).unwrap();
        let file = GstInput::File { path: clip.clone(), realtime: false };
        let mut src = GstSource::open(&config(file.clone())).unwrap();
        let mut n = 0;
        while let Some(f) = src.next_frame().unwrap() {
            assert_eq!(f.sequence, n);
            n += 1;
        }
        assert_eq!(n, 12);
        let mut looped = GstSource::open(&GstConfig { looped: true, ..config(file) }).unwrap();
        for i in 0..30 {
            assert_eq!(looped.next_frame().unwrap().unwrap().sequence, i);
        }
        let _ = std::fs::remove_file(&clip);
        let bad = GstSource::open(&config(GstInput::Pipeline("nosuchelement ! fakesink".into())));
        assert!(matches!(bad, Err(SourceError::Unsupported(_))));
    }
}
