//! Media through GStreamer's own tools for tests: run a `gst-launch-1.0` pipeline, decode a
//! video's frames to PNG files, count them.

use std::path::{Path, PathBuf};
use std::process::Command;

pub fn gst_launch(args: &[&str]) {
    let out = Command::new("gst-launch-1.0").arg("-q").args(args).output().expect("gst-launch-1.0 (gstreamer1.0-tools) runs");
    assert!(out.status.success(), "gst-launch-1.0 {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Every frame of `video` as PNG files, in order, decoded by GStreamer.
pub fn frames_of(video: &Path, dir: &Path) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).unwrap();
    let (src, dst) = (format!("location={}", video.display()), format!("location={}/%04d.png", dir.display()));
    gst_launch(&["filesrc", &src, "!", "decodebin", "!", "videoconvert", "!", "video/x-raw,format=RGB", "!", "pngenc", "!", "multifilesink", &dst]);
    let mut frames: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    frames.sort();
    frames
}

/// How many frames `video` decodes to (written as thumbnails: cheap, and counted on disk).
pub fn frame_count(video: &Path, dir: &Path) -> usize {
    std::fs::create_dir_all(dir).unwrap();
    let (src, dst) = (format!("location={}", video.display()), format!("location={}/%04d.png", dir.display()));
    gst_launch(&["filesrc", &src, "!", "decodebin", "!", "videoscale", "!", "video/x-raw,width=32,height=18", "!", "videoconvert", "!", "pngenc", "!", "multifilesink", &dst]);
    std::fs::read_dir(dir).unwrap().count()
}

/// A video stream's declared frame rate and its last frame's presentation time, as the MP4
/// demuxer reports them (`30/1`, `0:00:02.966666666`).
pub fn video_timing(video: &Path) -> (String, String) {
    let src = format!("location={}", video.display());
    let out = Command::new("gst-launch-1.0")
        .args(["-v", "filesrc", &src, "!", "qtdemux", "!", "h264parse", "!", "identity", "silent=false", "!", "fakesink"])
        .output()
        .expect("gst-launch-1.0 runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let rate = text
        .split("framerate=(fraction)")
        .nth(1)
        .map(|r| r.chars().take_while(|c| c.is_ascii_digit() || *c == '/').collect())
        .unwrap_or_default();
    // Presentation order differs from decoding order (B-frames): the latest is the largest.
    let last = text.split("pts: ").skip(1).map(|p| p.chars().take_while(|c| c.is_ascii_digit() || ":.".contains(*c)).collect::<String>()).max().unwrap_or_default();
    (rate, last)
}
