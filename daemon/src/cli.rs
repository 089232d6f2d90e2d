//! Command-line definition of `veil` and dispatch to the subcommands.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use veil_models::{DetectParams, DetectScale, Precision, Tiling};
use veil_redact::{MaskStyle, Method, Shape};

use crate::commands;

#[derive(Parser, Debug)]
#[command(name = "veil", version, about = "On-device privacy redaction: find faces, blur them, never leak a raw pixel")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the daemon: camera pipeline (with a [camera] source) and the HTTP API.
    Serve(ServeCmd),
    /// Create, list or revoke API keys.
    Keys(KeysCmd),
    /// Admin users of the Xylolabs admin API and the field page's console.
    Admin(AdminCmd),
    /// Check a config file, or print the documented defaults.
    Config(ConfigCmd),
    /// Detect faces in images and print JSON (one object per image; an array for several).
    Detect(DetectCmd),
    /// Redact faces in images or directories (recursive) into OUT.
    Redact(RedactCmd),
    /// List the detection backends and model files.
    Models(ModelsCmd),
    /// Measure per-stage speed and memory (medians, p95) against onnxruntime.
    Bench(BenchCmd),
    /// Score a detector on a labelled photo set: faces (WIDER format) or licence plates.
    Eval(EvalCmd),
}

#[derive(Args, Debug)]
pub struct EvalCmd {
    /// The set: a folder with `gt_wider_format.txt` and `images/` (faces), or with one folder per
    /// region of photos and `NAME.txt` labels, `file x y w h text` tab-separated (plates).
    pub set: PathBuf,
    #[command(flatten)]
    pub detector: DetectorArgs,
    /// Faces: the IoU at which a detection matches a labelled face.
    #[arg(long, default_value_t = 0.5)]
    pub iou: f32,
    /// Plates: grow each mask box by this fraction of its size on every side, as the mask would.
    #[arg(long, default_value_t = 0.0)]
    pub padding: f32,
    /// Plates: the share of a plate's character area that must be masked to count as fully masked.
    #[arg(long, default_value_t = 0.95)]
    pub min_cover: f64,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// Which detector to run and how.
#[derive(Args, Debug, Clone)]
pub struct DetectorArgs {
    /// Detection backend (see `veil models`).
    #[arg(long, default_value = "yunet")]
    pub backend: String,
    /// int8, fp32, or auto (time both at load, keep the faster).
    #[arg(long, default_value = "auto")]
    pub precision: Precision,
    /// Minimum detection score, 0..1.
    #[arg(long, default_value_t = veil_models::DEFAULT_CONFIDENCE)]
    pub confidence: f32,
    /// Boxes under 24 network pixels wide need at least this score (or --confidence if higher).
    #[arg(long, default_value_t = veil_models::DEFAULT_TINY_CONFIDENCE)]
    pub tiny_confidence: f32,
    /// IoU above which overlapping boxes are merged, 0..1.
    #[arg(long, default_value_t = 0.4)]
    pub nms_threshold: f32,
    /// Keep at most this many faces per image (0 = no limit).
    #[arg(long, default_value_t = 0)]
    pub max_faces: usize,
    /// Detection scale: `auto` (long side under 1024 px upscaled to it), `native`, a factor
    /// (2 = upscale twice, finds smaller faces) or WxH to fit.
    #[arg(long, default_value = "auto")]
    pub scale: DetectScale,
    /// Tiling of the scaled image: `auto` (tiles of at most 1280x1280 with a pyramid for big
    /// faces), `off` (one network input), or WxH (the largest tile).
    #[arg(long, default_value = "auto")]
    pub tile: Tiling,
    /// The plate detector's input long side (default 1600; the camera uses camera.plate_long_side).
    #[arg(long)]
    pub plate_long_side: Option<u32>,
    /// Work the plate detector's input in horizontal bands of at most this many network rows
    /// (less memory, some more time; default: one pass; the camera uses camera.plate_band_rows).
    #[arg(long)]
    pub plate_band_rows: Option<u32>,
    /// Also search the image turned by these quarter turns (e.g. `90,180,270` or `all`): faces
    /// lying on their side or upside down; each turn costs one more detection.
    #[arg(long, default_value = "0")]
    pub detect_rotations: veil_models::Rotations,
    /// Threads for inference and for processing files in parallel (0 = all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Extra directory to look for model files in.
    #[arg(long)]
    pub model_dir: Option<PathBuf>,
}

impl DetectorArgs {
    pub fn params(&self) -> DetectParams {
        DetectParams {
            confidence: self.confidence,
            nms_threshold: self.nms_threshold,
            max_faces: self.max_faces,
            scale: self.scale,
            tile: self.tile,
            tiny_confidence: self.tiny_confidence,
            plate_long_side: self.plate_long_side,
            plate_band_rows: self.plate_band_rows,
            rotations: self.detect_rotations,
            ..DetectParams::default()
        }
    }

    pub fn thread_count(&self) -> usize {
        if self.threads == 0 {
            crate::commands::cores()
        } else {
            self.threads
        }
    }
}

#[derive(Args, Debug, Default)]
pub struct ServeCmd {
    /// TOML config file (default: the embedded defaults; see README).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Address to listen on, ADDR:PORT (overrides server.listen).
    #[arg(long)]
    pub listen: Option<String>,
    /// State directory (overrides server.state_dir).
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Frame source: a directory or glob of images, an MJPEG file, /dev/videoN, v4l2:NAME or
    /// test-pattern (overrides camera.source).
    #[arg(long)]
    pub source: Option<String>,
    /// Detection backend, e.g. yunet (faces only) or yunet+plates (overrides
    /// detector.backend).
    #[arg(long)]
    pub backend: Option<String>,
    /// Directory for redacted frames (overrides spool.dir).
    #[arg(long)]
    pub spool: Option<PathBuf>,
    /// MQTT broker, mqtt://HOST:PORT or mqtts://HOST:PORT (overrides mqtt.url; enables MQTT).
    #[arg(long)]
    pub mqtt_url: Option<String>,
    /// Device id in MQTT topics and client id (overrides mqtt.device_id; default: host name).
    #[arg(long)]
    pub device_id: Option<String>,
}

#[derive(Args, Debug)]
pub struct ConfigCmd {
    #[command(subcommand)]
    pub action: ConfigAction,
}

#[derive(Subcommand, Debug)]
pub enum ConfigAction {
    /// Validate FILE as `veil serve` would (every key, and the files it names); exit 0 if
    /// it is good, else 2 with the bad key named.
    Check { file: PathBuf },
    /// Print every key with its default and a comment (a starting point for /etc/veil/veil.toml).
    Defaults,
}

#[derive(Args, Debug)]
pub struct KeysCmd {
    #[command(subcommand)]
    pub action: KeysAction,
    /// Config file whose state directory holds the keys.
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// State directory (overrides the config's).
    #[arg(long, global = true)]
    pub state_dir: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum KeysAction {
    /// Make a key; it is printed once, alone on the last line of stdout.
    Create {
        #[arg(long)]
        name: String,
        /// The key may also manage keys over HTTP (`/api/v1/admin/keys`).
        #[arg(long)]
        admin: bool,
    },
    /// List keys (never the keys themselves).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key by id or prefix.
    Revoke { key: String },
}

#[derive(Args, Debug)]
pub struct AdminCmd {
    #[command(subcommand)]
    pub action: AdminAction,
    /// Config file whose state directory holds the users.
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// State directory (overrides the config's).
    #[arg(long, global = true)]
    pub state_dir: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum AdminAction {
    /// Add an admin user. The password is read from the terminal (asked twice, not echoed) or,
    /// when stdin is not a terminal, from its first line; never from the command line.
    AddUser {
        name: String,
        /// Set a new password for an existing user (ends their sessions).
        #[arg(long)]
        reset: bool,
    },
    /// List admin users.
    ListUsers {
        #[arg(long)]
        json: bool,
    },
    /// Remove an admin user and end their sessions.
    RemoveUser { name: String },
}

#[derive(Args, Debug)]
pub struct DetectCmd {
    /// Image files (JPEG, PNG, WebP).
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
    #[command(flatten)]
    pub detector: DetectorArgs,
    /// Pretty-print the JSON.
    #[arg(long)]
    pub pretty: bool,
}

/// How regions are masked.
#[derive(Args, Debug, Clone)]
pub struct MaskArgs {
    /// gaussian, pixelate or solid.
    #[arg(long, default_value = "gaussian")]
    pub method: String,
    /// Blur strength 0..1 (the blur radius grows with the face; 1 = sigma of a third of its side).
    #[arg(long)]
    pub strength: Option<f32>,
    /// Pixelate block size in pixels (default: a tenth of the face's shorter side).
    #[arg(long)]
    pub block: Option<u32>,
    /// Fill colour for `solid`, #RRGGBB.
    #[arg(long, default_value = "#000000")]
    pub color: String,
    /// rect or ellipse.
    #[arg(long, default_value = "ellipse")]
    pub shape: Shape,
    /// Fraction of the box added on each side (0..2; 0.3 = deface's mask scale 1.3).
    #[arg(long, default_value_t = veil_redact::DEFAULT_PADDING)]
    pub padding: f32,
    /// Soft edge 0..1, fading outwards from the padded shape.
    #[arg(long, default_value_t = veil_redact::DEFAULT_FEATHER)]
    pub feather: f32,
}

impl MaskArgs {
    pub fn style(&self) -> Result<MaskStyle, String> {
        let color = veil_redact::parse_color(&self.color).map_err(|e| e.to_string())?;
        let mut method = Method::from_name(&self.method, self.strength, color).map_err(|e| e.to_string())?;
        if let (Method::Pixelate { block }, Some(b)) = (&mut method, self.block) {
            *block = Some(b);
        }
        let style = MaskStyle { method, shape: self.shape, padding: self.padding, feather: self.feather };
        style.validate().map_err(|e| e.to_string())?;
        Ok(style)
    }
}

#[derive(Args, Debug)]
pub struct RedactCmd {
    /// Input files or directories (walked recursively).
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Output directory (or a file name when there is exactly one input file).
    #[arg(short, long)]
    pub output: PathBuf,
    /// Output format: jpeg, png or webp (default: the input's own format).
    #[arg(long)]
    pub format: Option<String>,
    /// JPEG quality 1..100.
    #[arg(long, default_value_t = 90)]
    pub quality: u8,
    /// Keep EXIF (orientation reset, thumbnail, MakerNote and every GPS field still removed); for
    /// videos, the container's tags (geo-location still removed).
    #[arg(long)]
    pub keep_metadata: bool,
    /// Videos: encoding quality 1..100 (higher is better; 80 is x264 constant quality 18).
    #[arg(long, default_value_t = 80, value_parser = clap::value_parser!(u8).range(1..=100))]
    pub video_quality: u8,
    /// Videos: a GStreamer encoder element instead of x264enc (mp4, mov, mkv) or vp9enc (webm),
    /// e.g. v4l2h264enc on a Raspberry Pi 4 or nvv4l2h264enc on a Jetson.
    #[arg(long)]
    pub encoder: Option<String>,
    /// Videos: copy the audio as it is (never decoded), or drop it.
    #[arg(long, value_enum, default_value = "copy")]
    pub audio: crate::video::AudioMode,
    /// Videos: fail the file if one frame's detection takes longer than this many seconds.
    #[arg(long, default_value_t = 30)]
    pub frame_timeout: u64,
    #[command(flatten)]
    pub detector: DetectorArgs,
    #[command(flatten)]
    pub mask: MaskArgs,
}

#[derive(Args, Debug)]
pub struct ModelsCmd {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Also print the optimized tract graph's op names for this backend/precision at 640x480.
    #[arg(long)]
    pub ops: Option<Precision>,
    #[arg(long)]
    pub model_dir: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct BenchCmd {
    /// Frame sizes, WxH, comma separated.
    #[arg(long, default_value = "640x480,1280x720,1920x1080")]
    pub sizes: String,
    /// Timed iterations per case (after one warm-up).
    #[arg(long, default_value_t = 15)]
    pub iterations: usize,
    /// Photo to bench with (default: a synthetic frame with face-like content from the fixtures).
    #[arg(long)]
    pub image: Option<PathBuf>,
    /// Precisions to compare.
    #[arg(long, default_value = "fp32,int8")]
    pub precisions: String,
    /// Skip the onnxruntime reference (python3 with onnxruntime needed otherwise).
    #[arg(long)]
    pub no_reference: bool,
    /// Print JSON instead of tables.
    #[arg(long)]
    pub json: bool,
    #[arg(long)]
    pub model_dir: Option<PathBuf>,
    /// Instead of per-stage timings: run the whole camera pipeline at 640x480 and 1280x720
    /// (or --sizes) and report sustained fps and latency.
    #[arg(long)]
    pub pipeline: bool,
    /// Seconds of camera time per pipeline run (--pipeline), or of load (--http).
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// Instead of per-stage timings: start `veil serve` and load `/api/v1/detect` with a
    /// 640x480 JPEG from --clients concurrent clients, against a 1-client reference.
    #[arg(long)]
    pub http: bool,
    /// Instead of face timings: the plates backend's stages at long side 640, 1280 and 1600 on
    /// a plate photo (--image, default the Czech car of the fixtures), against onnxruntime.
    #[arg(long)]
    pub plates: bool,
    /// Concurrent clients for --http.
    #[arg(long, default_value_t = 8)]
    pub clients: usize,
    /// Instead of timings: measure tracker flicker on these image sequences (directories of
    /// frames, sorted by name).
    #[arg(long)]
    pub flicker: Vec<PathBuf>,
    /// Detection threshold for --pipeline, --flicker and --clip.
    #[arg(long, default_value_t = veil_models::DEFAULT_CONFIDENCE)]
    pub confidence: f32,
    /// Detection scale for --pipeline, --flicker and --clip (auto, native, a factor, or WxH).
    #[arg(long, default_value = "auto")]
    pub scale: DetectScale,
    /// Backends timed per stage (comma separated; default yunet,centerface,persons), or the backend of --pipeline,
    /// --flicker and --clip (default there: the daemon's, yunet+plates+codes+text+persons).
    #[arg(long)]
    pub backend: Option<String>,
    /// Instead of per-stage timings: the whole pipeline flat out over these frames (a
    /// directory of images or an MJPEG file) at the defaults, faces and plates and faces only,
    /// against onnxruntime on the same face model at the frames' size.
    #[arg(long)]
    pub clip: Option<PathBuf>,
    /// With --clip: also time deface (this executable) on the same frames. With --video: the
    /// deface to compare with (default: `deface` on PATH).
    #[arg(long)]
    pub deface: Option<PathBuf>,
    /// Instead of per-stage timings: `veil redact` on this video file against deface on the same
    /// file in the same run (fps of each, their ratio, and with labels the faces each masked).
    #[arg(long)]
    pub video: Option<PathBuf>,
    /// Face labels of --video (default: FILE's name with `.faces.txt` when it exists).
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// Detection workers for --pipeline and --clip (0 = one per core).
    #[arg(long, default_value_t = 0)]
    pub workers: usize,
    /// Plates in every Nth frame for --clip (camera.plates_every).
    #[arg(long, default_value_t = crate::config::DEFAULT_PLATES_EVERY)]
    pub plates_every: u32,
    /// The plate detector's band rows for --clip (camera.plate_band_rows; 0 = one pass).
    #[arg(long, default_value_t = 0)]
    pub plate_band_rows: u32,
    /// Inference threads for --pipeline and --flicker (0 = all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

/// Parse the command line, run the command, return the process exit code.
pub fn run() -> i32 {
    let cli = Cli::parse();
    crate::logging::init();
    let result = match cli.command {
        Command::Serve(c) => commands::serve::run(c),
        Command::Keys(c) => commands::keys::run(c),
        Command::Admin(c) => commands::admin::run(c),
        Command::Config(c) => commands::config::run(c),
        Command::Detect(c) => commands::detect::run(c),
        Command::Redact(c) => commands::redact::run(c),
        Command::Models(c) => commands::models::run(c),
        Command::Bench(c) => commands::bench::run(c),
        Command::Eval(c) => commands::eval::run(c),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("veil: {e:#}");
            2
        }
    }
}
