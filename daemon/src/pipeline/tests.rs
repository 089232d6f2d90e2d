//! Fault injection: a detector that errors, hangs, panics and returns garbage on chosen frames,
//! and a masking stage that panics, must never let an unredacted frame reach a sink.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use veil_camera::{Frame, FrameSource, SourceError};
use veil_models::{
    BBox, BackendInfo, Category, CategorySet, DetectError, DetectOutput, DetectParams, Detection, Detector, Precision, RgbImage,
};
use veil_redact::{MaskStyle, Method, Shape};

use super::*;
use controls::Tuning;
use crate::sinks::{Sink, SinkError};

const W: u32 = 96;
const H: u32 = 64;
/// The "face": a white square at a fixed place on a mid-grey frame.
const FACE: (u32, u32, u32) = (40, 20, 24);

/// Frames numbered in their first pixel (R = id), with a white face patch.
struct NumberedFrames {
    next: u64,
    count: u64,
}

impl FrameSource for NumberedFrames {
    fn describe(&self) -> String {
        "numbered".into()
    }
    fn next_frame(&mut self) -> Result<Option<Frame>, SourceError> {
        if self.next == self.count {
            return Ok(None);
        }
        let mut rgb = vec![128u8; (W * H * 3) as usize];
        let (fx, fy, side) = FACE;
        for y in fy..fy + side {
            for x in fx..fx + side {
                let i = ((y * W + x) * 3) as usize;
                rgb[i..i + 3].copy_from_slice(&[255, 255, 255]);
            }
        }
        rgb[0] = self.next as u8;
        let frame = Frame { rgb, width: W, height: H, sequence: self.next, timestamp: SystemTime::now() };
        self.next += 1;
        Ok(Some(frame))
    }
}

#[derive(Clone, Copy)]
enum Fault {
    Fail,
    Hang,
    Panic,
    NotANumber,
}

struct FaultyDetector {
    info: BackendInfo,
    faults: Vec<(u8, Fault)>,
    delay: Duration,
    /// Detect calls running now, and the most there ever were.
    at_once: Arc<std::sync::atomic::AtomicUsize>,
    most_at_once: Arc<std::sync::atomic::AtomicUsize>,
    /// The categories each frame (by id) was looked for in.
    asked: Arc<Mutex<Vec<(u8, Option<CategorySet>)>>>,
}

impl FaultyDetector {
    fn new(faults: Vec<(u8, Fault)>, delay: Duration) -> Self {
        let info = BackendInfo {
            name: "faulty".into(),
            version: "test".into(),
            categories: vec![Category::Face],
            precision: Precision::Fp32,
            sha256: String::new(),
            input_multiple: 1,
            input_layout: "rgb".into(),
            available: true,
            auto_probe: None,
        };
        Self { info, faults, delay, at_once: Arc::default(), most_at_once: Arc::default(), asked: Arc::default() }
    }
}

impl Detector for FaultyDetector {
    fn info(&self) -> &BackendInfo {
        &self.info
    }

    fn detect(&self, image: &RgbImage<'_>, params: &DetectParams) -> Result<DetectOutput, DetectError> {
        use std::sync::atomic::Ordering::SeqCst;
        let id = image.data[0];
        self.asked.lock().unwrap().push((id, params.categories));
        let now = self.at_once.fetch_add(1, SeqCst) + 1;
        self.most_at_once.fetch_max(now, SeqCst);
        std::thread::sleep(self.delay);
        self.at_once.fetch_sub(1, SeqCst);
        let (fx, fy, side) = FACE;
        let mut bbox = BBox { x1: fx as f32, y1: fy as f32, x2: (fx + side) as f32, y2: (fy + side) as f32 };
        match self.faults.iter().find(|(f, _)| *f == id).map(|(_, k)| *k) {
            Some(Fault::Fail) => return Err(DetectError::Inference("injected failure".into())),
            // Long enough to be a hang under any load; the abandoned thread never holds up the test.
            Some(Fault::Hang) => std::thread::sleep(Duration::from_secs(30)),
            Some(Fault::Panic) => panic!("injected detector panic on frame {id}"),
            Some(Fault::NotANumber) => bbox.x2 = f32::NAN,
            None => {}
        }
        let detection = Detection { category: Category::Face, bbox, score: 0.9, landmarks: None };
        Ok(DetectOutput { detections: vec![detection], ..DetectOutput::default() })
    }
}

/// Records what reached it and checks each frame's face patch is hidden.
struct CheckingSink {
    seen: Arc<Mutex<Vec<(u64, f64)>>>,
}

impl Sink for CheckingSink {
    fn name(&self) -> &'static str {
        "checking"
    }
    fn publish(&mut self, frame: &RedactedFrame) -> Result<(), SinkError> {
        let img = image::load_from_memory(frame.jpeg()).unwrap().into_rgb8();
        let (fx, fy, side) = FACE;
        let mut sum = 0.0;
        for y in fy..fy + side {
            for x in fx..fx + side {
                sum += img.get_pixel(x, y).0.iter().map(|&v| v as f64).sum::<f64>() / 3.0;
            }
        }
        self.seen.lock().unwrap().push((frame.event().frame_id, sum / (side * side) as f64));
        Ok(())
    }
}

/// Masking with solid black, detection defaults.
fn black_tuning() -> Arc<LiveTuning> {
    Arc::new(LiveTuning::new(Tuning { params: DetectParams::default(), style: solid_black() }))
}

fn solid_black() -> MaskStyle {
    MaskStyle { method: Method::Solid { color: [0, 0, 0] }, shape: Shape::Rect, padding: 0.0, feather: 0.0 }
}

fn run(
    count: u64,
    detector: FaultyDetector,
    config: PipelineConfig,
) -> (Vec<(u64, f64)>, Arc<Metrics>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut sinks = Dispatcher::default();
    sinks.add(Box::new(CheckingSink { seen: seen.clone() }));
    let pipeline = Pipeline::start(
        Box::new(NumberedFrames { next: 0, count }),
        Arc::new(detector),
        config,
        sinks,
        Arc::new(StopSignal::default()),
    )
    .unwrap();
    let metrics = pipeline.metrics();
    pipeline.wait();
    let seen = seen.lock().unwrap().clone();
    (seen, metrics)
}

#[test]
fn faulty_frames_never_reach_a_sink_and_every_output_is_masked() {
    // One detection worker, then several: a fault in one worker's frame must neither leak it
    // nor release another worker's later frame out of order.
    for workers in [1, 3] {
        let faults = vec![(3, Fault::Fail), (7, Fault::Hang), (11, Fault::Panic), (15, Fault::NotANumber)];
        let hook: FaultHook = Arc::new(|id| {
            if id == 19 {
                panic!("injected masking-stage panic");
            }
        });
        let config = PipelineConfig {
            backpressure: Backpressure::Block,
            deadline: Duration::from_millis(2500),
            tuning: black_tuning(),
            fault_hook: Some(hook),
            detect_workers: workers,
            ..PipelineConfig::default()
        };
        // A little detection time, so the workers really overlap.
        let (seen, metrics) = run(24, FaultyDetector::new(faults, Duration::from_millis(5)), config);
        let ids: Vec<u64> = seen.iter().map(|(id, _)| *id).collect();
        let expected: Vec<u64> = (0..24).filter(|i| ![3, 7, 11, 15, 19].contains(i)).collect();
        assert_eq!(ids, expected, "{workers} workers: exactly the healthy frames, in capture order");
        for (id, mean) in &seen {
            assert!(*mean < 20.0, "{workers} workers: frame {id}: face patch mean {mean}, not masked");
        }
        assert_eq!(metrics.dropped_count(DropCause::DetectorError), 2, "error + NaN box");
        assert_eq!(metrics.dropped_count(DropCause::Deadline), 1, "hang");
        assert_eq!(metrics.dropped_count(DropCause::DetectorPanic), 1);
        assert_eq!(metrics.dropped_count(DropCause::StagePanic), 1);
        assert_eq!(metrics.frames_out(), 19);
    }
}

#[test]
fn plates_and_text_are_looked_for_on_their_beat_and_faces_in_every_frame() {
    let mut detector = FaultyDetector::new(vec![], Duration::ZERO);
    detector.info.categories = vec![Category::Face, Category::LicensePlate, Category::Text, Category::QrCode];
    let asked = detector.asked.clone();
    let config = PipelineConfig {
        backpressure: Backpressure::Block,
        tuning: black_tuning(),
        detect_workers: 2,
        plates_every: 3,
        ..PipelineConfig::default()
    };
    let (seen, _) = run(12, detector, config);
    assert_eq!(seen.len(), 12);
    let mut asked = asked.lock().unwrap().clone();
    asked.sort_by_key(|(id, _)| *id);
    assert_eq!(asked.len(), 12);
    for (id, categories) in asked {
        let categories = categories.expect("the pipeline names what each frame looks for");
        let on_beat = id % 3 == 0;
        assert!(categories.contains(Category::Face) && categories.contains(Category::QrCode), "frame {id}");
        assert_eq!(categories.contains(Category::LicensePlate), on_beat, "frame {id}: plates");
        assert_eq!(categories.contains(Category::Text), on_beat, "frame {id}: text");
    }
}

#[test]
fn several_workers_detect_in_parallel_and_keep_capture_order() {
    // 40 ms a frame: two workers overlap, and the hang of frame 5 in one worker holds back
    // (never releases) the frames the other finished meanwhile.
    let overlap = |workers: usize, faults: Vec<(u8, Fault)>| {
        let config = PipelineConfig {
            backpressure: Backpressure::Block,
            deadline: Duration::from_millis(600),
            tuning: black_tuning(),
            detect_workers: workers,
            queue_depth: 2,
            ..PipelineConfig::default()
        };
        let detector = FaultyDetector::new(faults, Duration::from_millis(40));
        let most = detector.most_at_once.clone();
        let (seen, _) = run(30, detector, config);
        (most.load(std::sync::atomic::Ordering::SeqCst), seen)
    };
    let (one, seen1) = overlap(1, vec![]);
    let (two, seen2) = overlap(2, vec![]);
    assert_eq!(seen1.len(), 30);
    assert_eq!(seen1.iter().map(|s| s.0).collect::<Vec<_>>(), seen2.iter().map(|s| s.0).collect::<Vec<_>>());
    assert_eq!((one, two), (1, 2), "frames detected at once with one and two workers");
    let (_, hung) = overlap(2, vec![(5, Fault::Hang)]);
    let ids: Vec<u64> = hung.iter().map(|s| s.0).collect();
    assert_eq!(ids, (0..30).filter(|i| *i != 5).collect::<Vec<u64>>(), "order kept around the hang");
    assert!(hung.iter().all(|(_, mean)| *mean < 20.0));
}

#[test]
fn a_slow_detector_drops_input_frames_not_redaction() {
    let config = PipelineConfig {
        backpressure: Backpressure::DropOldest,
        queue_depth: 2,
        tuning: black_tuning(),
        ..PipelineConfig::default()
    };
    // Capture is instant; detection takes 15 ms a frame.
    let (seen, metrics) = run(60, FaultyDetector::new(vec![], Duration::from_millis(15)), config);
    let dropped = metrics.dropped_count(DropCause::QueueFull);
    assert!(dropped > 0, "the queue must shed input frames");
    assert_eq!(seen.len() as u64 + dropped, 60, "every frame is either output or counted as dropped");
    assert!(seen.iter().all(|(_, mean)| *mean < 20.0), "every output frame is masked");
    assert!(seen.windows(2).all(|w| w[0].0 < w[1].0), "output stays in capture order");
}

#[test]
fn a_detector_that_keeps_hanging_is_declared_broken_and_nothing_leaks() {
    let faults: Vec<(u8, Fault)> = (0..12).map(|i| (i, Fault::Hang)).collect();
    let config = PipelineConfig {
        backpressure: Backpressure::Block,
        deadline: Duration::from_millis(100),
        max_hung_detectors: 2,
        tuning: black_tuning(),
        ..PipelineConfig::default()
    };
    let (seen, metrics) = run(12, FaultyDetector::new(faults, Duration::ZERO), config);
    assert!(seen.is_empty());
    assert_eq!(metrics.dropped_count(DropCause::Deadline), 3, "three hangs, then the stage is broken");
    assert_eq!(metrics.dropped_count(DropCause::DetectorError), 9);
}

#[test]
fn privacy_zones_are_masked_in_every_output_frame() {
    // A zone over the left quarter of the frame, which holds no face.
    let config = PipelineConfig {
        backpressure: Backpressure::Block,
        tuning: black_tuning(),
        zones: vec![vec![(0.0, 0.0), (0.25, 0.0), (0.25, 1.0), (0.0, 1.0)]],
        ..PipelineConfig::default()
    };
    let seen = Arc::new(Mutex::new(Vec::new()));
    struct ZoneSink(Arc<Mutex<Vec<(usize, f64, f64)>>>);
    impl Sink for ZoneSink {
        fn name(&self) -> &'static str {
            "zone"
        }
        fn publish(&mut self, frame: &RedactedFrame) -> Result<(), SinkError> {
            let img = image::load_from_memory(frame.jpeg()).unwrap().into_rgb8();
            let mean = |x0: u32, x1: u32| {
                let mut sum = 0.0;
                for y in 0..H {
                    for x in x0..x1 {
                        sum += img.get_pixel(x, y).0[1] as f64;
                    }
                }
                sum / ((x1 - x0) * H) as f64
            };
            self.0.lock().unwrap().push((frame.event().zones, mean(1, W / 4 - 2), mean(W / 4 + 2, W / 4 + 10)));
            Ok(())
        }
    }
    let mut sinks = Dispatcher::default();
    sinks.add(Box::new(ZoneSink(seen.clone())));
    let pipeline = Pipeline::start(
        Box::new(NumberedFrames { next: 0, count: 4 }),
        Arc::new(FaultyDetector::new(vec![], Duration::ZERO)),
        config,
        sinks,
        Arc::new(StopSignal::default()),
    )
    .unwrap();
    pipeline.wait();
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 4);
    for (zones, inside, outside) in seen.iter() {
        assert_eq!(*zones, 1);
        assert!(*inside < 10.0, "zone not masked: mean {inside}");
        assert!((*outside - 128.0).abs() < 10.0, "outside the zone changed: mean {outside}");
    }
}

/// Counts reads and releases of the frames it passes through.
struct Watched {
    inner: NumberedFrames,
    reads: Arc<std::sync::atomic::AtomicUsize>,
    releases: Arc<std::sync::atomic::AtomicUsize>,
}

impl FrameSource for Watched {
    fn describe(&self) -> String {
        "watched".into()
    }
    fn next_frame(&mut self) -> Result<Option<Frame>, SourceError> {
        self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.next_frame()
    }
    fn release(&mut self) {
        self.releases.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

#[test]
fn paused_capture_lets_go_of_the_source_and_reads_nothing_until_resumed() {
    use std::sync::atomic::Ordering::SeqCst;
    let switch = Arc::new(CaptureSwitch::default());
    switch.hold("test", true);
    let (reads, releases) = (Arc::default(), Arc::default());
    let source = Watched { inner: NumberedFrames { next: 0, count: 5 }, reads: Arc::clone(&reads), releases: Arc::clone(&releases) };
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut sinks = Dispatcher::default();
    sinks.add(Box::new(CheckingSink { seen: seen.clone() }));
    let config = PipelineConfig {
        backpressure: Backpressure::Block,
        tuning: black_tuning(),
        capture: switch.clone(),
        ..PipelineConfig::default()
    };
    let detector = FaultyDetector::new(vec![], Duration::ZERO);
    let pipeline = Pipeline::start(Box::new(source), Arc::new(detector), config, sinks, Arc::new(StopSignal::default())).unwrap();
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(reads.load(SeqCst), 0, "nothing is read while capture is held off");
    assert_eq!(releases.load(SeqCst), 1, "the device is let go once");
    let status = pipeline.metrics().snapshot().source;
    assert!(!status.running && status.description.contains("paused"), "{status:?}");
    switch.hold("test", false);
    let metrics = pipeline.metrics();
    pipeline.wait();
    assert_eq!(metrics.frames_out(), 5);
    assert_eq!(seen.lock().unwrap().len(), 5);
}
