//! veil-camera: where frames come from. One [`FrameSource`] trait with implementations for
//! image files (a directory or list, sorted, optionally looped), MJPEG stream files and a
//! synthetic test pattern, V4L2 devices (MMAP streaming, reopened after unplug); pixel format
//! conversion to packed RGB8; anything GStreamer opens (`gst_source`: libcamera, Jetson Argus,
//! RTSP, video files, a pipeline).

mod files;
mod frame;
#[cfg(feature = "gstreamer")]
pub mod gst_source;
mod mjpeg_file;
mod pixel_format;
mod reconnect;
mod test_pattern;
#[cfg(target_os = "linux")]
pub mod v4l2;

pub use files::ImageFiles;
pub use frame::{Frame, SourceError};
#[cfg(feature = "gstreamer")]
pub use gst_source::{GstConfig, GstInput, GstSource};
pub use mjpeg_file::MjpegFile;
pub use pixel_format::{decode_mjpeg, rgb24_to_rgb, yuyv_to_rgb, PixelFormat};
pub use reconnect::{Opener, Reconnecting, Sleeper};
pub use test_pattern::TestPattern;

/// A source of RGB frames. `next_frame` returns `Ok(None)` at the end of a finite source.
pub trait FrameSource: Send {
    /// A short description for logs (`files:/data/run1 (120 images)`, `test-pattern 640x480`).
    fn describe(&self) -> String;

    fn next_frame(&mut self) -> Result<Option<Frame>, SourceError>;

    /// Frames the device produced but never delivered (its buffers were full), so far.
    fn skipped_frames(&self) -> u64 {
        0
    }

    /// Let go of the device while capture is paused (its streaming stops, its LED goes out);
    /// the next [`next_frame`](Self::next_frame) opens it again. Files and patterns keep their place.
    fn release(&mut self) {}
}
