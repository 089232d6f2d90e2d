//! The GStreamer graph of one video file's redaction. The file is parsed (`parsebin`); its first
//! video stream is decoded to packed RGB frames that veil pulls from an appsink; veil pushes the
//! masked frames into an appsrc whose branch encodes and muxes them into the output. Audio goes
//! from the parser to the muxer as it was, never decoded (or is dropped); other streams are
//! dropped. Tag events (GPS above all) are dropped on the way unless metadata is kept, and even
//! then geo-location tags never reach the muxer. Raw frames never leave the process: the only
//! path from the decoder to a file goes through veil's masking.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gstreamer as gst;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;
use gst::prelude::*;

use veil_camera::gst_source::bus_error;

use super::container::{self, Codec, Container};

/// What to do with the source's audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AudioMode {
    /// Copied into the output as it was (not decoded or re-encoded).
    Copy,
    /// Left out of the output.
    Drop,
}

/// How the output is encoded.
#[derive(Debug, Clone)]
pub struct EncodeOptions {
    pub container: Container,
    /// 1..=100, higher is better (see `container::x264_quantizer`).
    pub quality: u8,
    /// A GStreamer encoder element instead of the container's default.
    pub encoder: Option<String>,
    pub audio: AudioMode,
    /// Keep the source's container tags (never its geo-location).
    pub keep_metadata: bool,
}

/// One decoded frame: packed RGB rows, and the timing the output keeps.
pub struct DecodedFrame {
    pub rgb: Vec<u8>,
    pub width: u32,
    pub height: u32,
    pub pts: Option<gst::ClockTime>,
    pub duration: Option<gst::ClockTime>,
}

/// State the streaming threads share with veil's loop.
#[derive(Default)]
struct Shared {
    error: Mutex<Option<String>>,
    saw_video: AtomicBool,
    no_more_pads: AtomicBool,
    /// A stream other than the video reached its end.
    other_ended: AtomicBool,
}

impl Shared {
    fn fail(&self, message: String) {
        let mut e = self.error.lock().unwrap_or_else(|p| p.into_inner());
        e.get_or_insert(message);
    }
}

/// A running transcode graph: pull frames with [`next_frame`](Self::next_frame), push masked
/// ones with [`push_frame`](Self::push_frame), then [`finish`](Self::finish).
pub struct Graph {
    pipeline: gst::Pipeline,
    frames: gst_app::AppSink,
    masked: gst_app::AppSrc,
    shared: Arc<Shared>,
    out_info: Option<gst_video::VideoInfo>,
    /// Frames per second and the stream's duration, once known.
    pub fps: Option<f64>,
    pub duration: Option<gst::ClockTime>,
}

fn make(factory: &str) -> Result<gst::Element, String> {
    gst::ElementFactory::make(factory)
        .build()
        .map_err(|_| format!("the GStreamer element '{factory}' is not installed (see README: video)"))
}

/// The tags without their geo-location (and orientation, which no longer applies).
fn without_location(tags: &gst::TagList) -> gst::TagList {
    let mut tags = tags.clone();
    {
        let tags = tags.make_mut();
        let located: Vec<String> = tags
            .iter()
            .map(|(name, _)| name.to_string())
            .filter(|n| n.starts_with("geo-location") || n == "image-orientation")
            .collect();
        for name in located {
            tags.remove_generic(name.as_str());
        }
    }
    tags
}

/// Drop the tag events going through `pad`. With `keep`, they are passed on without their
/// geo-location fields, or (`merge_into`, for the video, whose decoded frames carry no tags)
/// merged into the muxer that way.
fn filter_tags(pad: &gst::Pad, keep: bool, merge_into: Option<gst::Element>) {
    pad.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |_, info| {
        let Some(gst::PadProbeData::Event(event)) = &info.data else { return gst::PadProbeReturn::Ok };
        let gst::EventView::Tag(tag) = event.view() else { return gst::PadProbeReturn::Ok };
        // `Handled` rather than `Drop`: the event is released here, by its Rust owner.
        if !keep {
            return gst::PadProbeReturn::Handled;
        }
        let tags = without_location(&tag.tag_owned());
        if let Some(setter) = merge_into.as_ref().and_then(|m| m.dynamic_cast_ref::<gst::TagSetter>()) {
            setter.merge_tags(&tags, gst::TagMergeMode::Replace);
            return gst::PadProbeReturn::Handled;
        }
        info.data = Some(gst::PadProbeData::Event(gst::event::Tag::new(tags)));
        gst::PadProbeReturn::Ok
    });
}

impl Graph {
    /// Build and start the graph reading `input` and writing `output` (a temporary name; the
    /// caller renames it once [`finish`](Self::finish) succeeded).
    pub fn start(input: &Path, output: &Path, opts: &EncodeOptions) -> Result<Graph, String> {
        gst::init().map_err(|e| format!("GStreamer cannot start: {e}"))?;
        let pipeline = gst::Pipeline::new();
        let shared = Arc::new(Shared::default());

        // Reading side: file -> parsebin -> (video) decodebin -> videoconvert -> RGB appsink.
        let src = make("filesrc")?;
        src.set_property("location", input.to_str().ok_or("the input path is not UTF-8")?);
        let parse = make("parsebin")?;
        let decode = make("decodebin")?;
        let convert_in = make("videoconvert")?;
        let frames = gst_app::AppSink::builder()
            .caps(&gst::Caps::builder("video/x-raw").field("format", "RGB").build())
            .sync(false)
            .max_buffers(4)
            .drop(false)
            .build();

        // Writing side: RGB appsrc -> videoconvert -> encoder -> (parser) -> muxer -> file.
        let masked = gst_app::AppSrc::builder().format(gst::Format::Time).is_live(false).block(true).build();
        masked.set_property("max-bytes", 64u64 << 20);
        let convert_out = make("videoconvert")?;
        let encoder = make(opts.encoder.as_deref().unwrap_or(opts.container.default_encoder()))?;
        configure_encoder(&encoder, opts);
        let encoded = make("capsfilter")?;
        encoded.set_property("caps", gst::Caps::builder(opts.container.encoded_caps()).build());
        let parser = opts.container.parser().map(make).transpose()?;
        let muxer = make(opts.container.muxer)?;
        let sink = make("filesink")?;
        sink.set_property("location", output.to_str().ok_or("the output path is not UTF-8")?);
        sink.set_property("sync", false);
        // The file cannot preroll before veil has pushed frames, which needs the pipeline playing.
        sink.set_property("async", false);

        let added = |e: Result<(), gst::glib::BoolError>| e.map_err(|e| format!("cannot build the video graph: {e}"));
        added(pipeline.add_many([&src, &parse, &decode, &convert_in, frames.upcast_ref()]))?;
        added(pipeline.add_many([masked.upcast_ref(), &convert_out, &encoder, &encoded, &muxer, &sink]))?;
        let linked = |what: &str, e: Result<(), gst::glib::BoolError>| e.map_err(|e| format!("cannot link {what}: {e}"));
        linked("the file to its parser", src.link(&parse))?;
        linked("the decoder's output", convert_in.link(frames.upcast_ref::<gst::Element>()))?;
        linked("the encoder's input", gst::Element::link_many([masked.upcast_ref(), &convert_out, &encoder, &encoded]))?;
        let encoder_end = match &parser {
            Some(p) => {
                added(pipeline.add(p))?;
                linked("the encoder's parser", encoded.link(p))?;
                p.clone()
            }
            None => encoded.clone(),
        };
        let video_pad = muxer.request_pad_simple("video_%u").ok_or("the muxer has no video input")?;
        encoder_end
            .static_pad("src")
            .ok_or("the encoder has no output")?
            .link(&video_pad)
            .map_err(|e| format!("the encoder's output cannot go into {}: {e:?}", opts.container.extension))?;
        linked("the muxer to the file", muxer.link(&sink))?;

        // The decoder's pad appears once it knows the stream.
        let convert_sink = convert_in.static_pad("sink").ok_or("videoconvert has no input")?;
        {
            let shared = shared.clone();
            decode.connect_pad_added(move |_, pad| {
                let caps = pad.current_caps().or_else(|| Some(pad.query_caps(None)));
                let is_video = caps.and_then(|c| c.structure(0).map(|s| s.name().starts_with("video/"))).unwrap_or(false);
                if is_video && !convert_sink.is_linked() {
                    if let Err(e) = pad.link(&convert_sink) {
                        shared.fail(format!("cannot take the decoded video: {e:?}"));
                    }
                }
            });
        }
        {
            let shared = shared.clone();
            let (decode, muxer, pipeline_weak) = (decode.clone(), muxer.clone(), pipeline.downgrade());
            let (audio, keep, ext) = (opts.audio, opts.keep_metadata, opts.container.extension);
            parse.connect_pad_added(move |_, pad| {
                let Some(pipeline) = pipeline_weak.upgrade() else { return };
                let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
                let name = caps.structure(0).map(|s| s.name().to_string()).unwrap_or_default();
                if let Err(e) = route_stream(&pipeline, pad, &name, &caps, &decode, &muxer, audio, keep, ext, &shared) {
                    shared.fail(e);
                }
            });
        }
        {
            let shared = shared.clone();
            parse.connect_no_more_pads(move |_| shared.no_more_pads.store(true, Ordering::SeqCst));
        }

        pipeline
            .set_state(gst::State::Playing)
            .map_err(|_| bus_error(&pipeline).unwrap_or_else(|| "the video graph would not start".into()))?;
        Ok(Graph { pipeline, frames, masked, shared, out_info: None, fps: None, duration: None })
    }

    fn check(&self) -> Result<(), String> {
        if let Some(e) = self.shared.error.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            return Err(e);
        }
        match bus_error(&self.pipeline) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// The next decoded frame, `None` at the end of the stream. Fails on a decoding error or when
    /// nothing arrives within `stall`.
    pub fn next_frame(&mut self, stall: Duration) -> Result<Option<DecodedFrame>, String> {
        let started = std::time::Instant::now();
        loop {
            self.check()?;
            if let Some(sample) = self.frames.try_pull_sample(gst::ClockTime::from_mseconds(100)) {
                return self.unpack(&sample).map(Some);
            }
            if self.frames.is_eos() {
                return if self.shared.saw_video.load(Ordering::SeqCst) { Ok(None) } else { Err("no video stream".into()) };
            }
            let ended_without_video = self.shared.no_more_pads.load(Ordering::SeqCst) || self.shared.other_ended.load(Ordering::SeqCst);
            if ended_without_video && !self.shared.saw_video.load(Ordering::SeqCst) {
                return Err("the file has no video stream".into());
            }
            if started.elapsed() > stall {
                return Err(format!("no frame decoded for {} s", stall.as_secs()));
            }
        }
    }

    fn unpack(&mut self, sample: &gst::Sample) -> Result<DecodedFrame, String> {
        let caps = sample.caps().ok_or("a decoded frame without caps")?;
        let info = gst_video::VideoInfo::from_caps(caps).map_err(|e| format!("decoded frame format: {e}"))?;
        let buffer = sample.buffer().ok_or("a decoded frame without data")?;
        let map = buffer.map_readable().map_err(|e| format!("decoded frame: {e}"))?;
        let (w, h) = (info.width() as usize, info.height() as usize);
        let stride = info.stride()[0] as usize;
        let offset = info.offset()[0];
        if w == 0 || h == 0 || stride < w * 3 || map.len() < offset + stride * (h - 1) + w * 3 {
            return Err(format!("a decoded frame of {} bytes does not hold {w}x{h} RGB", map.len()));
        }
        let mut rgb = Vec::with_capacity(w * h * 3);
        for row in 0..h {
            let start = offset + row * stride;
            rgb.extend_from_slice(&map[start..start + w * 3]);
        }
        if self.fps.is_none() {
            let fps = info.fps();
            if fps.numer() > 0 && fps.denom() > 0 {
                self.fps = Some(fps.numer() as f64 / fps.denom() as f64);
            }
            self.duration = self.pipeline.query_duration::<gst::ClockTime>();
        }
        if self.out_info.is_none() {
            // The encoder gets the frames at the source's size and rate.
            let out = gst_video::VideoInfo::builder(gst_video::VideoFormat::Rgb, info.width(), info.height())
                .fps(info.fps())
                .par(info.par())
                .build()
                .map_err(|e| format!("output format: {e}"))?;
            self.masked.set_caps(Some(&out.to_caps().map_err(|e| format!("output format: {e}"))?));
            self.out_info = Some(out);
        }
        Ok(DecodedFrame { rgb, width: w as u32, height: h as u32, pts: buffer.pts(), duration: buffer.duration() })
    }

    /// Hand a masked frame (packed RGB of the decoded frame's size) to the encoder.
    pub fn push_frame(&mut self, frame: &DecodedFrame) -> Result<(), String> {
        let info = self.out_info.as_ref().ok_or("a frame pushed before any was decoded")?;
        let (w, h) = (info.width() as usize, info.height() as usize);
        if (frame.width as usize, frame.height as usize) != (w, h) {
            return Err(format!("the video changed size mid-stream ({w}x{h} -> {}x{})", frame.width, frame.height));
        }
        let (stride, offset) = (info.stride()[0] as usize, info.offset()[0]);
        let mut buffer = gst::Buffer::with_size(info.size()).map_err(|e| format!("frame buffer: {e}"))?;
        {
            let buffer = buffer.get_mut().ok_or("frame buffer is shared")?;
            buffer.set_pts(frame.pts);
            buffer.set_duration(frame.duration);
            let mut map = buffer.map_writable().map_err(|e| format!("frame buffer: {e}"))?;
            for row in 0..h {
                let start = offset + row * stride;
                map[start..start + w * 3].copy_from_slice(&frame.rgb[row * w * 3..(row + 1) * w * 3]);
            }
        }
        self.masked.push_buffer(buffer).map_err(|e| {
            self.check().err().unwrap_or_else(|| format!("the encoder refused a frame: {e:?}"))
        })?;
        Ok(())
    }

    /// End the stream and wait until the muxer has written everything (or `timeout`).
    pub fn finish(self, timeout: Duration) -> Result<(), String> {
        self.check()?;
        self.masked.end_of_stream().map_err(|e| format!("cannot end the video: {e:?}"))?;
        let bus = self.pipeline.bus().ok_or("the video graph has no bus")?;
        let msg = bus.timed_pop_filtered(
            gst::ClockTime::from_mseconds(timeout.as_millis() as u64),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        );
        let result = match msg.as_ref().map(|m| m.view()) {
            Some(gst::MessageView::Eos(_)) => self.shared.error.lock().unwrap_or_else(|p| p.into_inner()).clone().map_or(Ok(()), Err),
            Some(gst::MessageView::Error(err)) => Err(format!("{}", err.error())),
            _ => Err(format!("the encoder did not finish within {} s", timeout.as_secs())),
        };
        let _ = self.pipeline.set_state(gst::State::Null);
        result
    }
}

impl Drop for Graph {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// Send one parsed stream where it goes: the first video to the decoder, audio to the muxer as it
/// is (or nowhere), anything else nowhere.
#[allow(clippy::too_many_arguments)]
fn route_stream(
    pipeline: &gst::Pipeline,
    pad: &gst::Pad,
    name: &str,
    caps: &gst::Caps,
    decode: &gst::Element,
    muxer: &gst::Element,
    audio: AudioMode,
    keep: bool,
    ext: &str,
    shared: &Arc<Shared>,
) -> Result<(), String> {
    let discard = || -> Result<(), String> {
        let sink = make("fakesink")?;
        sink.set_property("sync", false);
        sink.set_property("async", false);
        pipeline.add(&sink).map_err(|e| e.to_string())?;
        sink.sync_state_with_parent().map_err(|e| e.to_string())?;
        pad.link(&sink.static_pad("sink").ok_or("fakesink has no input")?).map_err(|e| format!("{e:?}"))?;
        Ok(())
    };
    if name.starts_with("video/") && !shared.saw_video.swap(true, Ordering::SeqCst) {
        filter_tags(pad, keep, Some(muxer.clone()));
        let sink = decode.static_pad("sink").ok_or("decodebin has no input")?;
        return pad.link(&sink).map(|_| ()).map_err(|e| format!("cannot decode the video ({caps}): {e:?}"));
    }
    {
        // A file without video ends without the decoder ever starting: notice it by this end.
        let shared = shared.clone();
        pad.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |_, info| {
            if let Some(gst::PadProbeData::Event(e)) = &info.data {
                if e.type_() == gst::EventType::Eos {
                    shared.other_ended.store(true, Ordering::SeqCst);
                }
            }
            gst::PadProbeReturn::Ok
        });
    }
    if name.starts_with("audio/") && audio == AudioMode::Copy {
        filter_tags(pad, keep, None);
        // The encoder holds dozens of frames before its first output (lookahead), and the muxer
        // waits for video meanwhile: the audio waits here, bounded by size rather than time.
        let queue = make("queue")?;
        queue.set_property("max-size-time", 0u64);
        queue.set_property("max-size-buffers", 0u32);
        queue.set_property("max-size-bytes", 64u32 << 20);
        pipeline.add(&queue).map_err(|e| e.to_string())?;
        queue.sync_state_with_parent().map_err(|e| e.to_string())?;
        pad.link(&queue.static_pad("sink").ok_or("queue has no input")?).map_err(|e| format!("{e:?}"))?;
        let into = muxer
            .request_pad_simple("audio_%u")
            .ok_or_else(|| format!("a .{ext} cannot take another audio track (use --audio drop)"))?;
        let out = queue.static_pad("src").ok_or("queue has no output")?;
        return out.link(&into).map(|_| ()).map_err(|_| {
            format!("the audio ({name}) cannot be copied into a .{ext} without re-encoding it (use --audio drop or another container)")
        });
    }
    discard()
}

fn configure_encoder(encoder: &gst::Element, opts: &EncodeOptions) {
    let has = |p: &str| encoder.find_property(p).is_some();
    match (opts.container.codec, opts.encoder.is_none()) {
        (Codec::H264, true) => {
            encoder.set_property_from_str("speed-preset", "veryfast");
            encoder.set_property_from_str("pass", "qual");
            encoder.set_property("quantizer", container::x264_quantizer(opts.quality));
        }
        (Codec::Vp9, true) => {
            encoder.set_property_from_str("end-usage", "cq");
            encoder.set_property("cq-level", container::vpx_cq_level(opts.quality));
            if has("deadline") {
                encoder.set_property("deadline", 1i64);
            }
            if has("cpu-used") {
                encoder.set_property("cpu-used", 4i32);
            }
            if has("row-mt") {
                encoder.set_property("row-mt", true);
            }
        }
        // Another encoder: its own defaults, which the README's encoder notes cover.
        _ => {}
    }
}
