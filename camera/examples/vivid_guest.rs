//! Runs inside the test VM (see `tests/vivid/run.sh`): captures from the kernel's `vivid` virtual
//! camera through veil's V4L2 source and checks formats, content, numbering, and recovery after the
//! device is unplugged and comes back. Prints `VIVID PASS` or `VIVID FAIL: reason`.

use std::process::Command;
use std::time::{Duration, Instant};

use veil_camera::v4l2::{list_devices, set_controls_on, V4l2Config, V4l2Source};
use veil_camera::{FrameSource, PixelFormat, Reconnecting, SourceError};

/// RGB of the eight bars of vivid's "100% Colorbar" pattern, left to right.
const BARS: [[u8; 3]; 8] = [
    [255, 255, 255],
    [255, 255, 0],
    [0, 255, 255],
    [0, 255, 0],
    [255, 0, 255],
    [255, 0, 0],
    [0, 0, 255],
    [0, 0, 0],
];

fn controls() -> Vec<(String, String)> {
    vec![
        ("Test Pattern".into(), "100% Colorbar".into()),
        ("OSD Text Mode".into(), "None".into()),
    ]
}

fn config(formats: Vec<PixelFormat>) -> V4l2Config {
    V4l2Config {
        device: "vivid".into(),
        width: 640,
        height: 480,
        fps: 30,
        formats,
        buffers: 4,
        frame_timeout: Duration::from_secs(5),
        controls: controls(),
    }
}

fn check_bars(rgb: &[u8], width: u32, height: u32, what: &str) -> Result<(), String> {
    let (w, y) = (width as usize, height as usize / 2);
    for (i, want) in BARS.iter().enumerate() {
        let x = (2 * i + 1) * w / 16;
        let px = &rgb[(y * w + x) * 3..(y * w + x) * 3 + 3];
        if px.iter().zip(want).any(|(a, b)| (*a as i32 - *b as i32).abs() > 8) {
            return Err(format!("{what}: bar {i} at x={x} is {px:?}, want {want:?}"));
        }
    }
    Ok(())
}

fn capture_and_check(formats: Vec<PixelFormat>, expect: PixelFormat) -> Result<(), String> {
    let mut source = V4l2Source::open(&config(formats)).map_err(|e| e.to_string())?;
    let n = source.negotiated();
    println!("opened {}", source.describe());
    if n.format != expect || (n.width, n.height) != (640, 480) {
        return Err(format!("negotiated {n:?}, want {expect:?} 640x480"));
    }
    let mut last = None;
    for i in 0..3u64 {
        let f = source.next_frame().map_err(|e| e.to_string())?.ok_or("stream ended")?;
        if f.sequence != i || f.rgb.len() != 640 * 480 * 3 {
            return Err(format!("frame {i}: sequence {} with {} bytes", f.sequence, f.rgb.len()));
        }
        if let Some(t) = last {
            if f.timestamp < t {
                return Err("timestamps go backwards".into());
            }
        }
        last = Some(f.timestamp);
        check_bars(&f.rgb, f.width, f.height, &format!("{expect:?} frame {i}"))?;
    }
    println!("{expect:?}: 3 frames, colour bars correct");
    Ok(())
}

fn replug(module_dir: &str) -> Result<(), String> {
    // The source has released the device after the loss; reload the driver as a replug would.
    for attempt in 0..50 {
        let out = Command::new("rmmod").arg("vivid").output().map_err(|e| e.to_string())?;
        if out.status.success() {
            break;
        }
        if attempt == 49 {
            return Err(format!("rmmod vivid: {}", String::from_utf8_lossy(&out.stderr)));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    let status = Command::new("insmod").arg(format!("{module_dir}/vivid.ko")).status().map_err(|e| e.to_string())?;
    if !status.success() {
        return Err("insmod vivid failed".into());
    }
    Ok(())
}

fn unplug_and_return(module_dir: &str) -> Result<(), String> {
    let cfg = config(vec![PixelFormat::Yuyv]);
    let open_cfg = cfg.clone();
    let mut source = Reconnecting::new(
        "vivid".into(),
        Box::new(move || V4l2Source::open(&open_cfg).map(|s| Box::new(s) as Box<dyn FrameSource>)),
        Box::new(std::thread::sleep),
    )
    .with_backoff(Duration::from_millis(50), Duration::from_millis(400));
    for _ in 0..2 {
        source.next_frame().map_err(|e| e.to_string())?;
    }
    let node = list_devices().into_iter().next().ok_or("no capture device")?.0;
    set_controls_on(&node, &[("Disconnect".into(), "press".into())])?;
    println!("pressed vivid's Disconnect on {}", node.display());
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut sequences = Vec::new();
    let mut replugged = false;
    let mut errors = 0;
    while sequences.len() < 3 {
        if Instant::now() > deadline {
            return Err(format!("no recovery: {errors} errors, losses {}", source.losses()));
        }
        match source.next_frame() {
            Ok(Some(f)) => {
                if !replugged && source.losses() == 0 {
                    continue; // frames already queued before the unplug
                }
                if replugged {
                    check_bars(&f.rgb, f.width, f.height, "after replug")?;
                    sequences.push(f.sequence);
                }
            }
            Ok(None) => return Err("stream ended".into()),
            Err(e) => {
                errors += 1;
                if !matches!(e, SourceError::Disconnected(_) | SourceError::Unavailable(_) | SourceError::Io { .. }) {
                    return Err(format!("unexpected error kind: {e}"));
                }
                if !replugged && !source.is_connected() {
                    println!("device lost as expected: {e}");
                    replug(module_dir)?;
                    replugged = true;
                }
            }
        }
    }
    if source.losses() != 1 || source.reopens() != 1 {
        return Err(format!("losses {} reopens {}", source.losses(), source.reopens()));
    }
    if sequences.windows(2).any(|w| w[1] != w[0] + 1) || sequences[0] < 2 {
        return Err(format!("numbering did not continue: {sequences:?}"));
    }
    println!("replug: lost once, reopened once, frames {sequences:?} continue the numbering");
    Ok(())
}

fn run(module_dir: &str) -> Result<(), String> {
    let devices = list_devices();
    println!("capture devices: {devices:?}");
    capture_and_check(vec![PixelFormat::Yuyv], PixelFormat::Yuyv)?;
    capture_and_check(vec![PixelFormat::Rgb24], PixelFormat::Rgb24)?;
    // vivid offers no MJPEG: negotiation must fall through to the next preference.
    capture_and_check(vec![PixelFormat::Mjpeg, PixelFormat::Yuyv], PixelFormat::Yuyv)?;
    match V4l2Source::open(&config(vec![PixelFormat::Mjpeg])) {
        Err(SourceError::Unsupported(msg)) => println!("MJPEG-only refused: {msg}"),
        Err(e) => return Err(format!("MJPEG-only: wrong error {e}")),
        Ok(_) => return Err("MJPEG-only: vivid has no MJPEG, yet it opened".into()),
    }
    let missing = V4l2Config { device: "/dev/video99".into(), ..config(vec![PixelFormat::Yuyv]) };
    match V4l2Source::open(&missing) {
        Err(e) if e.is_transient() => println!("missing device: {e}"),
        other => return Err(format!("missing device: {:?}", other.err())),
    }
    unplug_and_return(module_dir)
}

fn main() {
    let module_dir = std::env::args().nth(1).unwrap_or_else(|| "/modules".into());
    match run(&module_dir) {
        Ok(()) => println!("VIVID PASS"),
        Err(e) => println!("VIVID FAIL: {e}"),
    }
}
