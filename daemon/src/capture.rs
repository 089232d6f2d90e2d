//! Turns the `[camera]` config into a frame source and the pipeline's pacing: a V4L2 device
//! or a GStreamer camera (libcamera, Argus, RTSP, a pipeline; reopened after a loss), a video
//! file, a directory or glob of images, an MJPEG file, or the test pattern.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use veil_camera::{FrameSource, GstConfig, GstInput, GstSource, ImageFiles, MjpegFile, Reconnecting, TestPattern};

use crate::config::CameraConfig;
use crate::pipeline::{Backpressure, StopSignal};

/// A source and how the pipeline should feed from it.
pub struct SourcePlan {
    pub source: Box<dyn FrameSource>,
    pub backpressure: Backpressure,
    pub pace: Option<Duration>,
}

fn is_device(source: &str) -> bool {
    source.starts_with("/dev/") || source.starts_with("v4l2:")
}

/// Open the configured source, its frames turned upright by `camera.rotation`. A missing camera
/// is not an error (it is waited for); a missing directory or file is.
pub fn open_source(cam: &CameraConfig, stop: Arc<StopSignal>) -> anyhow::Result<SourcePlan> {
    let mut plan = open_unturned(cam, stop)?;
    if cam.rotation != 0 {
        plan.source = Box::new(Turned { inner: plan.source, degrees: cam.rotation });
    }
    Ok(plan)
}

/// A camera mounted on its side or upside down: every frame turned `degrees` clockwise as it
/// is captured, so detection sees upright faces and every sink gets upright frames.
struct Turned {
    inner: Box<dyn FrameSource>,
    degrees: u16,
}

impl FrameSource for Turned {
    fn describe(&self) -> String {
        format!("{} turned {} degrees", self.inner.describe(), self.degrees)
    }

    fn next_frame(&mut self) -> Result<Option<veil_camera::Frame>, veil_camera::SourceError> {
        Ok(self.inner.next_frame()?.map(|f| {
            let (rgb, width, height) = veil_models::rotations::rotate_rgb(&f.rgb, f.width, f.height, self.degrees);
            veil_camera::Frame { rgb, width, height, ..f }
        }))
    }

    fn skipped_frames(&self) -> u64 {
        self.inner.skipped_frames()
    }

    fn release(&mut self) {
        self.inner.release()
    }
}

fn open_unturned(cam: &CameraConfig, stop: Arc<StopSignal>) -> anyhow::Result<SourcePlan> {
    let s = cam.source.as_str();
    let replay_pace = cam.fps.map(|f| Duration::from_secs_f64(1.0 / f.max(1) as f64));
    let replay = |source: Box<dyn FrameSource>| SourcePlan {
        source,
        backpressure: if replay_pace.is_some() { Backpressure::DropOldest } else { Backpressure::Block },
        pace: replay_pace,
    };
    if s == "test-pattern" {
        let pattern = TestPattern::new(cam.width, cam.height, None);
        // An endless synthetic source is always paced like a camera.
        let pace = replay_pace.unwrap_or(Duration::from_secs_f64(1.0 / 30.0));
        return Ok(SourcePlan { source: Box::new(pattern), backpressure: Backpressure::DropOldest, pace: Some(pace) });
    }
    if is_device(s) {
        return open_device(cam, stop);
    }
    if let Some(input) = GstInput::parse(s) {
        return Ok(open_gstreamer(cam, input, stop));
    }
    if s.contains('*') || s.contains('?') {
        return Ok(replay(Box::new(ImageFiles::from_glob(s, cam.looped)?)));
    }
    let path = Path::new(s);
    if path.is_dir() {
        return Ok(replay(Box::new(ImageFiles::from_dir(path, cam.looped)?)));
    }
    if !path.exists() {
        anyhow::bail!("camera.source {s:?}: no such file or directory");
    }
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    if ["mjpeg", "mjpg"].contains(&ext.as_str()) {
        return Ok(replay(Box::new(MjpegFile::open(path, cam.looped)?)));
    }
    if crate::video::is_video(path) {
        let config = gst_config(cam, GstInput::File { path: path.to_path_buf(), realtime: cam.realtime });
        let source = GstSource::open(&config).map_err(|e| anyhow::anyhow!("camera.source {s:?}: {e}"))?;
        let mut plan = replay(Box::new(source));
        if cam.realtime {
            // The clip's own clock paces it; detection that falls behind drops frames.
            plan.backpressure = Backpressure::DropOldest;
        }
        return Ok(plan);
    }
    Ok(replay(Box::new(ImageFiles::from_list(vec![path.to_path_buf()], s.to_string(), cam.looped)?)))
}

fn gst_config(cam: &CameraConfig, input: GstInput) -> GstConfig {
    GstConfig {
        input,
        width: cam.width,
        height: cam.height,
        fps: cam.fps.unwrap_or(30),
        looped: cam.looped,
        frame_timeout: Duration::from_secs(10),
    }
}

/// A GStreamer camera or stream, reopened with backoff after a loss (a server restart, a
/// cable), like a V4L2 device.
fn open_gstreamer(cam: &CameraConfig, input: GstInput, stop: Arc<StopSignal>) -> SourcePlan {
    let config = gst_config(cam, input);
    let open = move || GstSource::open(&config).map(|s| Box::new(s) as Box<dyn FrameSource>);
    let label = cam.source.split('@').next_back().unwrap_or_default().to_string();
    let source = Reconnecting::new(label, Box::new(open), Box::new(move |d| stop.sleep(d)));
    SourcePlan { source: Box::new(source), backpressure: Backpressure::DropOldest, pace: None }
}

#[cfg(target_os = "linux")]
fn open_device(cam: &CameraConfig, stop: Arc<StopSignal>) -> anyhow::Result<SourcePlan> {
    use veil_camera::v4l2::{V4l2Config, V4l2Source};
    let config = V4l2Config {
        device: cam.source.strip_prefix("v4l2:").unwrap_or(&cam.source).to_string(),
        width: cam.width,
        height: cam.height,
        fps: cam.fps.unwrap_or(30),
        formats: cam.pixel_formats()?,
        controls: cam.controls.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        ..V4l2Config::default()
    };
    let label = config.device.clone();
    let open = move || V4l2Source::open(&config).map(|s| Box::new(s) as Box<dyn FrameSource>);
    let source = Reconnecting::new(label, Box::new(open), Box::new(move |d| stop.sleep(d)));
    Ok(SourcePlan { source: Box::new(source), backpressure: Backpressure::DropOldest, pace: None })
}

#[cfg(not(target_os = "linux"))]
fn open_device(cam: &CameraConfig, _stop: Arc<StopSignal>) -> anyhow::Result<SourcePlan> {
    anyhow::bail!("camera.source {:?}: V4L2 devices need Linux", cam.source)
}
