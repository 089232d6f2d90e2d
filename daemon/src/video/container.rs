//! Which encoder, parser and muxer a redacted video is written with, from its file extension,
//! and how `--video-quality` maps onto each encoder's own scale.

use std::path::Path;

/// Extensions read as video (the decoders come from GStreamer, so more would work; these are the
/// ones a directory walk picks up and the ones tested).
pub const VIDEO_EXTENSIONS: &[&str] = &["mp4", "mov", "m4v", "mkv", "webm"];

/// Whether `path` names a video file by its extension.
pub fn is_video(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| VIDEO_EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

/// The video codec a container is written with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    H264,
    Vp9,
}

/// An output container: the muxer element, its codec, and the extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Container {
    pub extension: &'static str,
    pub muxer: &'static str,
    pub codec: Codec,
}

impl Container {
    /// The container for an output path's extension (`None` for anything else).
    pub fn for_path(path: &Path) -> Option<Container> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        let (extension, muxer, codec) = match ext.as_str() {
            "mp4" | "m4v" => ("mp4", "mp4mux", Codec::H264),
            "mov" => ("mov", "qtmux", Codec::H264),
            "mkv" => ("mkv", "matroskamux", Codec::H264),
            "webm" => ("webm", "webmmux", Codec::Vp9),
            _ => return None,
        };
        Some(Container { extension, muxer, codec })
    }

    /// The encoder element used unless `--encoder` names another.
    pub fn default_encoder(&self) -> &'static str {
        match self.codec {
            Codec::H264 => "x264enc",
            Codec::Vp9 => "vp9enc",
        }
    }

    /// Caps the encoder's output must have (a mismatching `--encoder` fails at link time).
    pub fn encoded_caps(&self) -> &'static str {
        match self.codec {
            Codec::H264 => "video/x-h264",
            Codec::Vp9 => "video/x-vp9",
        }
    }

    /// The parser between encoder and muxer, if the codec needs one.
    pub fn parser(&self) -> Option<&'static str> {
        match self.codec {
            Codec::H264 => Some("h264parse"),
            Codec::Vp9 => None,
        }
    }
}

/// `--video-quality` (1..=100, higher is better, like JPEG quality) on x264's constant-quality
/// quantizer (0..=50, lower is better): 100 -> 10, 80 -> 18, 50 -> 30, 1 -> 50.
pub fn x264_quantizer(quality: u8) -> u32 {
    let q = quality.clamp(1, 100) as f32;
    (10.0 + (100.0 - q) * 0.4).round().min(50.0) as u32
}

/// `--video-quality` on libvpx's constant-quality level (0..=63, lower is better): 100 -> 10,
/// 80 -> 20, 1 -> 60.
pub fn vpx_cq_level(quality: u8) -> i32 {
    let q = quality.clamp(1, 100) as f32;
    (10.0 + (100.0 - q) * 0.5).round().min(63.0) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containers_follow_the_extension() {
        assert_eq!(Container::for_path(Path::new("a/b.MP4")).unwrap().muxer, "mp4mux");
        assert_eq!(Container::for_path(Path::new("b.mov")).unwrap().muxer, "qtmux");
        assert_eq!(Container::for_path(Path::new("b.mkv")).unwrap().codec, Codec::H264);
        assert_eq!(Container::for_path(Path::new("b.webm")).unwrap().codec, Codec::Vp9);
        assert!(Container::for_path(Path::new("b.avi")).is_none());
        assert!(is_video(Path::new("x.WebM")) && !is_video(Path::new("x.jpg")));
    }

    #[test]
    fn quality_scales_are_monotonic_and_bounded() {
        assert_eq!((x264_quantizer(100), x264_quantizer(80), x264_quantizer(1)), (10, 18, 50));
        assert_eq!((vpx_cq_level(100), vpx_cq_level(80), vpx_cq_level(1)), (10, 20, 60));
        assert!((1..100).all(|q| x264_quantizer(q) >= x264_quantizer(q + 1)));
    }
}
