//! V4L2 capture through the `v4l` crate: device by path or card name, format negotiation
//! (MJPEG, YUYV, RGB24, converted to RGB here), resolution and frame rate, MMAP streaming,
//! frames stamped with the driver's capture time.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use v4l::buffer::Type;
use v4l::io::mmap::Stream;
use v4l::io::traits::CaptureStream;
use v4l::video::capture::Parameters;
use v4l::video::Capture;
use v4l::{Device, FourCC};

use crate::frame::{Frame, SourceError};
use crate::pixel_format::{decode_mjpeg, rgb24_to_rgb, yuyv_to_rgb, PixelFormat};
use crate::FrameSource;

/// What to open and how to configure it.
#[derive(Debug, Clone)]
pub struct V4l2Config {
    /// `/dev/videoN`, or a card name as `v4l2-ctl --list-devices` shows it (exact, or a unique
    /// case-insensitive substring).
    pub device: String,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    /// Formats to try, in order of preference.
    pub formats: Vec<PixelFormat>,
    /// MMAP buffers to queue.
    pub buffers: u32,
    /// Give up waiting for one frame after this long (the device is treated as lost).
    pub frame_timeout: Duration,
    /// Controls to set at open, by the name the driver gives them (`Exposure Time, Absolute`,
    /// `Power Line Frequency`): an integer, `true`/`false`, a menu item's name, or `press` for a button.
    pub controls: Vec<(String, String)>,
}

impl Default for V4l2Config {
    fn default() -> Self {
        Self {
            device: "/dev/video0".into(),
            width: 1280,
            height: 720,
            fps: 30,
            formats: vec![PixelFormat::Mjpeg, PixelFormat::Yuyv, PixelFormat::Rgb24],
            buffers: 4,
            frame_timeout: Duration::from_secs(5),
            controls: Vec::new(),
        }
    }
}

/// The format the device agreed to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Negotiated {
    pub format: PixelFormat,
    pub width: u32,
    pub height: u32,
    /// Bytes per row of the raw buffer.
    pub stride: u32,
    /// Frame rate the driver reports after the request (0 when it reports none).
    pub fps: f64,
}

pub struct V4l2Source {
    label: String,
    negotiated: Negotiated,
    stream: Stream<'static>,
    // Keeps the file descriptor open for the stream's lifetime.
    _device: Device,
    sequence: u64,
    last_driver_sequence: Option<u32>,
    skipped_by_driver: u64,
}

fn fourcc(format: PixelFormat) -> FourCC {
    FourCC::new(match format {
        PixelFormat::Mjpeg => b"MJPG",
        PixelFormat::Yuyv => b"YUYV",
        PixelFormat::Rgb24 => b"RGB3",
    })
}

fn io_err(what: &str, e: std::io::Error) -> SourceError {
    SourceError::Io { path: what.to_string(), reason: e.to_string() }
}

/// Resolve `device` (a path or a card name) to a device node that can capture video.
pub fn resolve_device(device: &str) -> Result<PathBuf, SourceError> {
    if device.starts_with('/') {
        return Ok(PathBuf::from(device));
    }
    let mut matches = Vec::new();
    for (path, card) in list_devices() {
        if card == device {
            return Ok(path);
        }
        if card.to_lowercase().contains(&device.to_lowercase()) {
            matches.push(path);
        }
    }
    match matches.len() {
        1 => Ok(matches.remove(0)),
        0 => Err(SourceError::Unavailable(format!("no video capture device named {device:?}"))),
        n => Err(SourceError::Unavailable(format!("{n} devices match {device:?}; name one exactly or give its path"))),
    }
}

/// Video capture nodes under /dev with their card names, sorted by path.
pub fn list_devices() -> Vec<(PathBuf, String)> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/dev") else { return found };
    for entry in entries.flatten() {
        let path = entry.path();
        if !path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("video")) {
            continue;
        }
        if let Ok(dev) = Device::with_path(&path) {
            if let Ok(caps) = dev.query_caps() {
                if caps.capabilities.contains(v4l::capability::Flags::VIDEO_CAPTURE) {
                    found.push((path, caps.card));
                }
            }
        }
    }
    found.sort();
    found
}

impl V4l2Source {
    /// Open the device, negotiate a format and start streaming.
    pub fn open(config: &V4l2Config) -> Result<Self, SourceError> {
        let path = resolve_device(&config.device)?;
        let label = path.display().to_string();
        let device = Device::with_path(&path).map_err(|e| SourceError::Unavailable(format!("{label}: {e}")))?;
        let caps = device.query_caps().map_err(|e| io_err(&label, e))?;
        if !caps.capabilities.contains(v4l::capability::Flags::VIDEO_CAPTURE) {
            return Err(SourceError::Unsupported(format!("{label} ({}) cannot capture video", caps.card)));
        }
        apply_controls(&device, &config.controls).map_err(|e| SourceError::Unsupported(format!("{label}: {e}")))?;
        let negotiated = negotiate(&device, config, &label)?;
        let stream = Stream::with_buffers(&device, Type::VideoCapture, config.buffers.max(2))
            .map_err(|e| io_err(&format!("{label}: MMAP buffers"), e))?;
        let mut source = Self {
            label: format!("{label} ({})", caps.card),
            negotiated,
            stream,
            _device: device,
            sequence: 0,
            last_driver_sequence: None,
            skipped_by_driver: 0,
        };
        source.stream.set_timeout(config.frame_timeout);
        Ok(source)
    }

    pub fn negotiated(&self) -> Negotiated {
        self.negotiated
    }

    /// Frames the driver numbered but never delivered (it had no free buffer).
    pub fn skipped_by_driver(&self) -> u64 {
        self.skipped_by_driver
    }

    /// Continue numbering frames from `sequence` (used when a device is reopened).
    pub fn set_next_sequence(&mut self, sequence: u64) {
        self.sequence = sequence;
    }
}

/// Set controls by name on an open device (see [`V4l2Config::controls`]).
pub fn apply_controls(device: &Device, controls: &[(String, String)]) -> Result<(), String> {
    use v4l::control::{Control, MenuItem, Type as CtrlType, Value};
    if controls.is_empty() {
        return Ok(());
    }
    let known = device.query_controls().map_err(|e| format!("cannot list controls: {e}"))?;
    for (name, value) in controls {
        let Some(desc) = known.iter().find(|d| d.name.eq_ignore_ascii_case(name)) else {
            let names: Vec<&str> = known.iter().map(|d| d.name.as_str()).collect();
            return Err(format!("no control named {name:?}; the device has {}", names.join(", ")));
        };
        let bad = || format!("control {name:?}: cannot set {value:?}");
        let v = match desc.typ {
            CtrlType::Button => Value::None,
            CtrlType::Boolean => Value::Boolean(match value.to_ascii_lowercase().as_str() {
                "true" | "1" | "on" | "yes" => true,
                "false" | "0" | "off" | "no" => false,
                _ => return Err(bad()),
            }),
            CtrlType::Menu | CtrlType::IntegerMenu => {
                let item = desc.items.iter().flatten().find(|(_, item)| match item {
                    MenuItem::Name(n) => n.eq_ignore_ascii_case(value),
                    MenuItem::Value(v) => v.to_string() == *value,
                });
                match item {
                    Some((index, _)) => Value::Integer(*index as i64),
                    None => Value::Integer(value.parse().map_err(|_| bad())?),
                }
            }
            CtrlType::Integer | CtrlType::Integer64 => Value::Integer(value.parse().map_err(|_| bad())?),
            _ => return Err(format!("control {name:?}: type {:?} is not supported", desc.typ)),
        };
        device.set_control(Control { id: desc.id, value: v }).map_err(|e| format!("{}: {e}", bad()))?;
    }
    Ok(())
}

/// Open `path` and set controls on it (tests and tools; the source sets its own at open).
pub fn set_controls_on(path: &Path, controls: &[(String, String)]) -> Result<(), String> {
    let device = Device::with_path(path).map_err(|e| format!("{}: {e}", path.display()))?;
    apply_controls(&device, controls)
}

fn negotiate(device: &Device, config: &V4l2Config, label: &str) -> Result<Negotiated, SourceError> {
    let offered: Vec<FourCC> =
        device.enum_formats().map_err(|e| io_err(label, e))?.into_iter().map(|d| d.fourcc).collect();
    let mut tried = Vec::new();
    for &format in &config.formats {
        let code = fourcc(format);
        if !offered.contains(&code) {
            tried.push(format!("{format:?} (not offered)"));
            continue;
        }
        let mut want = device.format().map_err(|e| io_err(label, e))?;
        want.width = config.width;
        want.height = config.height;
        want.fourcc = code;
        let got = device.set_format(&want).map_err(|e| io_err(&format!("{label}: set format"), e))?;
        if got.fourcc != code {
            tried.push(format!("{format:?} (driver answered {})", got.fourcc));
            continue;
        }
        let min_stride = match format {
            PixelFormat::Yuyv => got.width * 2,
            PixelFormat::Rgb24 => got.width * 3,
            PixelFormat::Mjpeg => 0,
        };
        let stride = got.stride.max(min_stride);
        let fps = if config.fps > 0 {
            match device.set_params(&Parameters::with_fps(config.fps)) {
                Ok(p) if p.interval.numerator > 0 => p.interval.denominator as f64 / p.interval.numerator as f64,
                _ => 0.0,
            }
        } else {
            0.0
        };
        return Ok(Negotiated { format, width: got.width, height: got.height, stride, fps });
    }
    Err(SourceError::Unsupported(format!(
        "{label}: none of the wanted formats works: {}; the device offers {}",
        tried.join(", "),
        offered.iter().map(|f| f.to_string()).collect::<Vec<_>>().join(", ")
    )))
}

impl FrameSource for V4l2Source {
    fn describe(&self) -> String {
        let n = self.negotiated;
        format!("v4l2:{} {:?} {}x{} @ {:.1} fps", self.label, n.format, n.width, n.height, n.fps)
    }

    fn skipped_frames(&self) -> u64 {
        self.skipped_by_driver
    }

    fn next_frame(&mut self) -> Result<Option<Frame>, SourceError> {
        let n = self.negotiated;
        let (buf, meta) = self.stream.next().map_err(|e| SourceError::Disconnected(format!("{}: {e}", self.label)))?;
        // time_t is i32 on 32-bit ARM boards: the casts are needed there.
        #[allow(clippy::unnecessary_cast)]
        let timestamp = driver_time(meta.timestamp.sec as i64, meta.timestamp.usec as i64).unwrap_or_else(SystemTime::now);
        if let Some(last) = self.last_driver_sequence {
            self.skipped_by_driver += meta.sequence.wrapping_sub(last).saturating_sub(1) as u64;
        }
        self.last_driver_sequence = Some(meta.sequence);
        let used = (meta.bytesused as usize).min(buf.len());
        let data = &buf[..if used == 0 { buf.len() } else { used }];
        let mut rgb = Vec::new();
        let (width, height) = match n.format {
            PixelFormat::Yuyv => {
                yuyv_to_rgb(data, n.width, n.height, n.stride as usize, &mut rgb)?;
                (n.width, n.height)
            }
            PixelFormat::Rgb24 => {
                rgb24_to_rgb(data, n.width, n.height, n.stride as usize, &mut rgb)?;
                (n.width, n.height)
            }
            PixelFormat::Mjpeg => {
                let what = format!("{} frame {}", self.label, meta.sequence);
                decode_mjpeg(data, &what, &mut rgb)?
            }
        };
        let frame = Frame { rgb, width, height, sequence: self.sequence, timestamp };
        self.sequence += 1;
        Ok(Some(frame))
    }
}

/// The wall-clock time of a driver timestamp on the monotonic clock (what UVC and most V4L2
/// drivers stamp buffers with); `None` if it is unset or does not look monotonic.
fn driver_time(sec: i64, usec: i64) -> Option<SystemTime> {
    if sec <= 0 && usec <= 0 {
        return None;
    }
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec into the valid pointer we pass.
    if unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) } != 0 {
        return None;
    }
    let now = Duration::new(now.tv_sec as u64, now.tv_nsec as u32);
    let stamped = Duration::new(sec as u64, (usec.clamp(0, 999_999) * 1000) as u32);
    let age = now.checked_sub(stamped)?;
    if age > Duration::from_secs(10) {
        return None;
    }
    SystemTime::now().checked_sub(age)
}

/// Whether `path` names an existing V4L2-looking device node (for config validation).
pub fn looks_like_device(path: &Path) -> bool {
    path.to_str().is_some_and(|p| p.starts_with("/dev/video"))
}
