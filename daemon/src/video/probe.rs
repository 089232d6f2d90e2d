//! What an uploaded video is before any of it is decoded: its container, duration, size and
//! frame rate, read by demuxing only (filesrc -> parsebin -> fakesinks, playing until every
//! stream is exposed), so the API can refuse a file that is too long or not a video while the
//! client still waits.

use std::path::Path;
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;

/// Which family a file's first bytes belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sniffed {
    /// ISO base media (MP4, MOV, M4V) that is not a HEIF/AVIF still image.
    IsoMedia,
    /// EBML: Matroska or WebM.
    Matroska,
}

/// Still-image brands of the ISO base media format (HEIF, AVIF): photos, not videos.
const IMAGE_BRANDS: &[&[u8; 4]] = &[b"heic", b"heix", b"mif1", b"msf1", b"avif", b"avis", b"heim", b"heis"];

/// A video container from the first bytes of a file (at least 12 are needed).
pub fn sniff(head: &[u8]) -> Option<Sniffed> {
    if head.starts_with(&[0x1a, 0x45, 0xdf, 0xa3]) {
        return Some(Sniffed::Matroska);
    }
    if head.len() >= 12 {
        let kind = &head[4..8];
        if kind == b"ftyp" {
            let brand: &[u8; 4] = head[8..12].try_into().ok()?;
            return (!IMAGE_BRANDS.contains(&brand)).then_some(Sniffed::IsoMedia);
        }
        // QuickTime files written without an `ftyp` box start with one of these.
        if [b"moov", b"mdat", b"wide", b"free", b"skip"].iter().any(|k| kind == *k) {
            return Some(Sniffed::IsoMedia);
        }
    }
    None
}

/// What the demuxer says about a video file.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoInfo {
    pub duration: Duration,
    pub width: u32,
    pub height: u32,
    /// Frames per second when the stream declares it.
    pub fps: Option<f64>,
    pub has_audio: bool,
}

impl VideoInfo {
    /// The frame count the duration and rate imply (the decoder has the last word).
    pub fn frames(&self) -> Option<u64> {
        self.fps.map(|f| (self.duration.as_secs_f64() * f).round() as u64)
    }
}

/// Demux `path` far enough to know its streams and duration, within `timeout`.
pub fn probe(path: &Path, timeout: Duration) -> Result<VideoInfo, String> {
    gst::init().map_err(|e| format!("GStreamer: {e}"))?;
    let pipeline = gst::Pipeline::new();
    let make = |factory: &str| {
        gst::ElementFactory::make(factory).build().map_err(|_| format!("GStreamer element '{factory}' is missing"))
    };
    let src = make("filesrc")?;
    src.set_property("location", path.to_string_lossy().as_ref());
    let parse = make("parsebin")?;
    pipeline.add_many([&src, &parse]).map_err(|e| e.to_string())?;
    src.link(&parse).map_err(|e| e.to_string())?;
    let video_caps = std::sync::Arc::new(std::sync::Mutex::new(None::<gst::Caps>));
    let all_pads = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    {
        let all_pads = all_pads.clone();
        parse.connect_no_more_pads(move |_| all_pads.store(true, std::sync::atomic::Ordering::SeqCst));
    }
    let audio = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    {
        let (video_caps, audio) = (video_caps.clone(), audio.clone());
        let bin = pipeline.downgrade();
        parse.connect_pad_added(move |_, pad| {
            let Some(bin) = bin.upgrade() else { return };
            let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
            let media = caps.structure(0).map(|s| s.name().to_string()).unwrap_or_default();
            if media.starts_with("video/") {
                video_caps.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(caps);
            } else if media.starts_with("audio/") {
                audio.store(true, std::sync::atomic::Ordering::SeqCst);
            }
            let Ok(sink) = gst::ElementFactory::make("fakesink").property("sync", false).property("async", false).build() else { return };
            if bin.add(&sink).is_ok() {
                let _ = sink.sync_state_with_parent();
                if let Some(sinkpad) = sink.static_pad("sink") {
                    let _ = pad.link(&sinkpad);
                }
            }
        });
    }
    let outcome = run_until_exposed(&pipeline, &all_pads, timeout);
    let _ = pipeline.set_state(gst::State::Null);
    let duration = outcome?;
    let caps = video_caps.lock().unwrap_or_else(|p| p.into_inner()).take().ok_or("the file has no video stream")?;
    let s = caps.structure(0).ok_or("the video stream has no caps")?;
    let width = s.get::<i32>("width").ok().filter(|w| *w > 0).ok_or("the video stream does not say its width")?;
    let height = s.get::<i32>("height").ok().filter(|h| *h > 0).ok_or("the video stream does not say its height")?;
    let fps = s
        .get::<gst::Fraction>("framerate")
        .ok()
        .filter(|f| f.numer() > 0 && f.denom() > 0)
        .map(|f| f.numer() as f64 / f.denom() as f64);
    let duration = duration.ok_or("the container does not say how long the video is")?;
    Ok(VideoInfo {
        duration: Duration::from_nanos(duration.nseconds()),
        width: width as u32,
        height: height as u32,
        fps,
        has_audio: audio.load(std::sync::atomic::Ordering::SeqCst),
    })
}

/// Play the (parse-only, unsynchronised, never prerolling) pipeline until the demuxer has
/// exposed every stream and knows the duration, or the file ends. Prerolling sinks would stall
/// here: one stream's sink holds the demuxer's only thread while another stream waits for data.
fn run_until_exposed(
    pipeline: &gst::Pipeline,
    all_pads: &std::sync::atomic::AtomicBool,
    timeout: Duration,
) -> Result<Option<gst::ClockTime>, String> {
    pipeline.set_state(gst::State::Playing).map_err(|_| "not a readable video file".to_string())?;
    let bus = pipeline.bus().ok_or("no bus")?;
    let deadline = Instant::now() + timeout;
    loop {
        if all_pads.load(std::sync::atomic::Ordering::SeqCst) {
            if let Some(d) = pipeline.query_duration::<gst::ClockTime>() {
                return Ok(Some(d));
            }
        }
        if Instant::now() >= deadline {
            return Err(format!("the file could not be read within {} s", timeout.as_secs()));
        }
        let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(20)) else { continue };
        match msg.view() {
            gst::MessageView::Error(e) => return Err(format!("not a readable video file: {}", e.error())),
            // Read to the end (a stream that never states its length, as browsers' WebM): the
            // last position is the length.
            gst::MessageView::Eos(_) => {
                return Ok(pipeline.query_duration::<gst::ClockTime>().or_else(|| pipeline.query_position::<gst::ClockTime>()))
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_containers_and_leaves_still_images_alone() {
        let mp4 = b"\0\0\0\x20ftypisom\0\0\x02\0";
        let heic = b"\0\0\0\x18ftypheic\0\0\0\0";
        let webm = [0x1a, 0x45, 0xdf, 0xa3, 0x9f, 0x42, 0x86, 0x81];
        let jpeg = [0xff, 0xd8, 0xff, 0xe0, 0, 0x10, b'J', b'F', b'I', b'F', 0, 1];
        assert_eq!(sniff(mp4), Some(Sniffed::IsoMedia));
        assert_eq!(sniff(b"\0\0\0\x08wide\0\0\0\0mdat"), Some(Sniffed::IsoMedia));
        assert_eq!(sniff(&webm), Some(Sniffed::Matroska));
        assert_eq!(sniff(heic), None);
        assert_eq!(sniff(&jpeg), None);
        assert_eq!(sniff(b"\0\0"), None);
    }
}
