//! The backend registry: every detector veil can build, with its facts, and the one place that
//! turns a (name, precision) request into a running [`Detector`].

use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;

use serde::Serialize;

use crate::artifacts::{ModelArtifact, ModelStore};
use crate::centerface::CenterFace;
use crate::codes::Codes;
use crate::detection::Category;
use crate::ensemble::Ensemble;
use crate::error::DetectError;
use crate::params::DetectParams;
use crate::persons::Persons;
use crate::plates::Plates;
use crate::precision::Precision;
use crate::preprocess::RgbImage;
use crate::text::Text;
use crate::yunet::YuNet;
use crate::Detector;

/// Facts about one backend at one precision (what `veil models` and `/v1/backends` list).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BackendInfo {
    pub name: String,
    pub version: String,
    pub categories: Vec<Category>,
    pub precision: Precision,
    pub sha256: String,
    /// Accepted network input: any size, padded to a multiple of this many pixels.
    pub input_multiple: u32,
    pub input_layout: String,
    /// Whether the model file is present (listing only).
    pub available: bool,
    /// At `--precision auto` with both files present: what was timed at load, and so why this
    /// precision was kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_probe: Option<PrecisionProbe>,
}

/// The load-time measurement behind an `auto` precision choice: the fastest of three 640x480 inferences of each
/// model on this machine, after a warm-up; the faster is kept.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct PrecisionProbe {
    pub int8_ms: f64,
    pub fp32_ms: f64,
}

/// A detector whose facts carry the precision probe that chose it.
struct Probed {
    inner: Arc<dyn Detector>,
    info: BackendInfo,
}

impl Detector for Probed {
    fn info(&self) -> &BackendInfo {
        &self.info
    }

    fn detect(&self, image: &RgbImage<'_>, params: &DetectParams) -> Result<crate::DetectOutput, DetectError> {
        self.inner.detect(image, params)
    }
}

/// A backend's model file, read when the backend asks for it: at build for the networks built at
/// once, at the first call for those built on first use (`text`, `persons`), so a daemon holds
/// no bytes of a network it has not run.
#[derive(Clone)]
pub struct ModelFile {
    registry: Registry,
    /// `None` for a backend without weights (`codes`).
    artifact: Option<ModelArtifact>,
}

impl ModelFile {
    /// The file's bytes, its sha256 checked (shared with any live detector holding them already;
    /// empty for a backend without weights).
    pub fn bytes(&self) -> Result<Arc<[u8]>, DetectError> {
        match &self.artifact {
            Some(a) => self.registry.file(a),
            None => Ok(Arc::from(&[][..])),
        }
    }

    /// Fails as [`Self::bytes`] would (a missing or altered file) without keeping the bytes.
    pub fn check(&self) -> Result<(), DetectError> {
        match &self.artifact {
            Some(a) => self.registry.store.check(a),
            None => Ok(()),
        }
    }
}

/// Builds a detector from its model file, its facts and a thread count.
type BuildFn = fn(&ModelFile, BackendInfo, usize) -> Result<Arc<dyn Detector>, DetectError>;

/// A backend family veil knows how to build.
struct BackendKind {
    name: &'static str,
    categories: &'static [Category],
    input_multiple: u32,
    input_layout: &'static str,
    /// The manifest entry of the model it runs (its own name, or another backend's: `text`
    /// runs the plate detector's file); `None` for code alone (`codes`), always available.
    model: Option<&'static str>,
    build: BuildFn,
}

/// The version a backend without a model reports: the reader library's.
const CODES_VERSION: &str = "rxing 0.9";

const KINDS: &[BackendKind] = &[
    BackendKind {
        name: "yunet",
        categories: &[Category::Face],
        input_multiple: 32,
        input_layout: "NCHW float32 BGR 0..255",
        model: Some("yunet"),
        build: |file, info, threads| Ok(Arc::new(YuNet::from_bytes(&file.bytes()?, info, threads)?)),
    },
    BackendKind {
        name: "centerface",
        categories: &[Category::Face],
        input_multiple: 32,
        input_layout: "NCHW float32 RGB 0..255",
        model: Some("centerface"),
        build: |file, info, threads| Ok(Arc::new(CenterFace::from_bytes(&file.bytes()?, info, threads)?)),
    },
    BackendKind {
        name: "plates",
        categories: &[Category::LicensePlate],
        input_multiple: 32,
        input_layout: "NCHW float32 BGR (x/255-0.5)/0.5 after CLAHE on L; long side 1600 at native scale",
        model: Some("plates"),
        build: |file, info, threads| Ok(Arc::new(Plates::from_bytes(&file.bytes()?, info, threads)?)),
    },
    BackendKind {
        name: "text",
        categories: &[Category::Text],
        input_multiple: 32,
        input_layout: "the plates model: NCHW float32 BGR (x/255-0.5)/0.5 after CLAHE on L; long side 1600 at native scale",
        model: Some("plates"),
        build: |file, info, threads| Ok(Arc::new(Text::new(file, info, threads)?)),
    },
    BackendKind {
        name: "persons",
        categories: &[Category::Person],
        input_multiple: 416,
        input_layout: "NCHW float32 BGR (x-mean)/std (NanoDet's), the image letterboxed into 416x416",
        model: Some("persons"),
        build: |file, info, threads| Ok(Arc::new(Persons::new(file, info, threads)?)),
    },
    BackendKind {
        name: "codes",
        categories: &[Category::QrCode, Category::Barcode],
        input_multiple: 1,
        input_layout: "luma of the whole image at its own size (decoded by ZXing's readers, no network)",
        model: None,
        build: |_, info, _| Ok(Arc::new(Codes::new(info))),
    },
];

/// Separates the members of an ensemble name, e.g. `centerface+plates`.
pub const ENSEMBLE_SEPARATOR: char = '+';

/// Builds detectors from the model store.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    store: ModelStore,
    /// Model files read (and checked) and possibly still held, by sha256: two detectors reading
    /// the same file while one holds it (a backend's plan cache, the plates and text networks
    /// built together) share one copy.
    files: Arc<Mutex<Vec<(String, Weak<[u8]>)>>>,
}

impl Registry {
    pub fn new(store: ModelStore) -> Self {
        Self { store, files: Arc::default() }
    }

    /// The checked bytes of `artifact`, shared with any live detector already built from it.
    fn file(&self, artifact: &crate::artifacts::ModelArtifact) -> Result<Arc<[u8]>, DetectError> {
        let mut files = self.files.lock().unwrap_or_else(|p| p.into_inner());
        files.retain(|(_, f)| f.strong_count() > 0);
        if let Some(bytes) = files.iter().find(|(sha, _)| *sha == artifact.sha256).and_then(|(_, f)| f.upgrade()) {
            return Ok(bytes);
        }
        let bytes: Arc<[u8]> = self.store.read(artifact)?.into();
        files.push((artifact.sha256.clone(), Arc::downgrade(&bytes)));
        Ok(bytes)
    }

    /// The names of every backend kind (members of an ensemble name).
    pub fn backend_names() -> Vec<&'static str> {
        KINDS.iter().map(|k| k.name).collect()
    }

    pub fn store(&self) -> &ModelStore {
        &self.store
    }

    /// Every backend and precision the manifest knows, marking those whose file is present.
    pub fn list(&self) -> Vec<BackendInfo> {
        let mut out = Vec::new();
        for kind in KINDS {
            let Some(model) = kind.model else {
                out.push(self.info_for(kind, Precision::Auto, CODES_VERSION.into(), String::new()));
                continue;
            };
            for precision in [Precision::Int8, Precision::Fp32] {
                if let Some(a) = self.store.artifact(model, precision) {
                    let mut info = self.info_for(kind, precision, a.version.clone(), a.sha256.clone());
                    info.available = self.store.locate(&a.file).is_some();
                    out.push(info);
                }
            }
        }
        out
    }

    fn info_for(&self, kind: &BackendKind, precision: Precision, version: String, sha256: String) -> BackendInfo {
        BackendInfo {
            name: kind.name.to_string(),
            version,
            categories: kind.categories.to_vec(),
            precision,
            sha256,
            input_multiple: kind.input_multiple,
            input_layout: kind.input_layout.to_string(),
            available: true,
            auto_probe: None,
        }
    }

    /// Build backend `name` at `precision`. `Auto` builds int8 and fp32 (whichever exist), times
    /// 640x480 inferences of each after a warm-up, and keeps the faster.
    ///
    /// A backend the manifest has no model of the requested precision for is built at `Auto`
    /// (plates are fp32 only). `a+b` builds an [`Ensemble`] of backends `a` and `b`.
    pub fn create(&self, name: &str, precision: Precision, threads: usize) -> Result<Arc<dyn Detector>, DetectError> {
        if name.contains(ENSEMBLE_SEPARATOR) {
            let mut members = Vec::new();
            for member in name.split(ENSEMBLE_SEPARATOR).map(str::trim) {
                if members.iter().any(|m: &Arc<dyn Detector>| m.info().name == member) {
                    return Err(DetectError::UnknownBackend(format!("{name} (names {member} twice)")));
                }
                members.push(self.create(member, precision, threads)?);
            }
            return Ok(Arc::new(Ensemble::new(members)?));
        }
        let kind =
            KINDS.iter().find(|k| k.name == name).ok_or_else(|| DetectError::UnknownBackend(name.to_string()))?;
        let Some(model) = kind.model else {
            let file = ModelFile { registry: self.clone(), artifact: None };
            return (kind.build)(&file, self.info_for(kind, Precision::Auto, CODES_VERSION.into(), String::new()), threads);
        };
        let present: Vec<Precision> = [Precision::Int8, Precision::Fp32]
            .into_iter()
            .filter(|p| self.store.artifact(model, *p).is_some_and(|a| self.store.locate(&a.file).is_some()))
            .collect();
        let precision = if precision != Precision::Auto && self.store.artifact(model, precision).is_none() {
            tracing::info!(backend = name, asked = %precision, "no model at this precision; choosing among the others");
            Precision::Auto
        } else {
            precision
        };
        match precision {
            // One candidate: nothing to compare.
            Precision::Auto if present.len() == 1 => self.create_exact(kind, present[0], threads),
            Precision::Auto => {
                let mut timed: Vec<(Precision, f64, Arc<dyn Detector>)> = Vec::new();
                let mut last_err = None;
                for p in [Precision::Int8, Precision::Fp32] {
                    match self.create_exact(kind, p, threads) {
                        Ok(det) => {
                            let t = time_one(det.as_ref())?;
                            tracing::info!(backend = name, precision = %p, ms = t, "auto precision probe");
                            timed.push((p, t, det));
                        }
                        Err(e) => last_err = Some(e),
                    }
                }
                let ms = |p: Precision| timed.iter().find(|t| t.0 == p).map(|t| t.1);
                let probe = ms(Precision::Int8).zip(ms(Precision::Fp32)).map(|(int8_ms, fp32_ms)| PrecisionProbe { int8_ms, fp32_ms });
                let Some((chosen, t, det)) = timed.into_iter().min_by(|a, b| a.1.total_cmp(&b.1)) else {
                    return Err(last_err.unwrap_or_else(|| DetectError::UnknownBackend(name.to_string())));
                };
                tracing::info!(backend = name, precision = %chosen, ms = t, "auto precision: kept the faster");
                let info = BackendInfo { auto_probe: probe, ..det.info().clone() };
                Ok(Arc::new(Probed { inner: det, info }))
            }
            p => self.create_exact(kind, p, threads),
        }
    }

    fn create_exact(
        &self,
        kind: &BackendKind,
        precision: Precision,
        threads: usize,
    ) -> Result<Arc<dyn Detector>, DetectError> {
        let model = kind.model.unwrap_or(kind.name);
        let artifact = self.store.artifact(model, precision).ok_or_else(|| DetectError::ModelUnavailable {
            path: format!("{}-{}", model, precision),
            reason: "the manifest lists no such model".into(),
        })?;
        // The sha256 reported is the manifest's: every read of the file is checked against it.
        let info = self.info_for(kind, precision, artifact.version.clone(), artifact.sha256.clone());
        (kind.build)(&ModelFile { registry: self.clone(), artifact: Some(artifact.clone()) }, info, threads)
    }
}

/// The fastest of three 640x480 inferences, after one warm-up run (which also builds the plan
/// for that shape): the least disturbed by whatever else the machine does at load.
fn time_one(det: &dyn Detector) -> Result<f64, DetectError> {
    let frame = vec![96u8; 640 * 480 * 3];
    let img = RgbImage::new(&frame, 640, 480)?;
    // One network input of exactly that size, whatever the default scale and tiling.
    let params = DetectParams {
        scale: crate::params::DetectScale::Native,
        tile: crate::params::Tiling::Off,
        ..DetectParams::default()
    };
    det.detect(&img, &params)?;
    let mut best = f64::INFINITY;
    for _ in 0..3 {
        let t = Instant::now();
        det.detect(&img, &params)?;
        best = best.min(t.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(best)
}
