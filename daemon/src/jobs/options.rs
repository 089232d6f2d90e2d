//! What a job asks for (detection thresholds, mask style, output format), as stored with the job
//! in JSON, and its resolution against the daemon's defaults into checked parameters.

use serde::{Deserialize, Serialize};
use veil_models::{CategorySet, DetectParams, Detection};
use veil_redact::{MaskStyle, Method, Shape};

use crate::photo::OutputFormat;

/// A job's request, every field optional (the config's defaults fill the gaps).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct JobOptions {
    pub confidence: Option<f32>,
    pub nms_threshold: Option<f32>,
    pub max_faces: Option<usize>,
    /// gaussian | pixelate | solid (and the cloud APIs' names for them).
    pub method: Option<String>,
    pub strength: Option<f32>,
    /// Pixelate block size in pixels.
    pub block: Option<u32>,
    pub shape: Option<String>,
    pub padding: Option<f32>,
    pub feather: Option<f32>,
    pub color: Option<String>,
    /// jpeg | png | webp; `None` keeps the upload's own format.
    pub format: Option<String>,
    pub quality: Option<u8>,
    /// Fail the job with "No face detected" when nothing is found (CloakBioGuard style).
    pub require_face: bool,
    /// What the caller asked to hide, in its API's words (`faces`, `license_plates`, ...; see
    /// `crate::categories`); empty means faces.
    pub categories: Vec<String>,
    /// Free text echoed back in webhooks (MaskIt style).
    pub metadata: Option<String>,
    /// The result may be downloaded once, then it is deleted (MaskIt style).
    pub download_once: bool,
    /// Quarter turns to search as well (veil's `detect_rotations`): faces lying on their side
    /// or upside down in the pixels. Adds to the device's own setting, never removes from it.
    /// `90,180,270`, `all`, ... (see `veil_models::Rotations`); checked when resolved.
    pub detect_rotations: Option<String>,
}

/// The weakest blur a request may ask for: below it a face stays recognisable.
pub const MIN_STRENGTH: f32 = 0.3;

/// The daemon-wide defaults a job's options are resolved against.
#[derive(Debug, Clone, Copy)]
pub struct JobDefaults {
    pub params: DetectParams,
    pub style: MaskStyle,
    pub quality: u8,
    /// The masking floor's categories (`api.always_mask` that the backend finds): masked in
    /// every upload whatever the request names.
    pub always_mask: CategorySet,
}

/// What a client asked to *see*: the detections reported back are narrowed by these, while the
/// image is masked with the device's floor merged in (see [`JobOptions::resolve`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReportFilter {
    pub confidence: f32,
    pub nms_threshold: f32,
    pub max_faces: usize,
    pub categories: CategorySet,
}

impl ReportFilter {
    /// The detections of `masked` the client asked about: its categories, at or above its
    /// threshold, suppressed at its NMS threshold, at most `max_faces` of them.
    pub fn apply(&self, masked: &[Detection]) -> Vec<Detection> {
        let mut kept: Vec<Detection> = masked
            .iter()
            .filter(|d| self.categories.contains(d.category) && d.score >= self.confidence)
            .cloned()
            .collect();
        kept.sort_by(|a, b| b.score.total_cmp(&a.score));
        let mut out: Vec<Detection> = Vec::with_capacity(kept.len());
        for d in kept {
            if out.iter().all(|k| k.category != d.category || k.bbox.iou(&d.bbox) < self.nms_threshold) {
                out.push(d);
            }
        }
        if self.max_faces > 0 {
            out.truncate(self.max_faces);
        }
        out
    }
}

/// Checked parameters of one redaction.
#[derive(Debug, Clone, Copy)]
pub struct ResolvedOptions {
    /// What the detector runs with: the request merged with the device's floor, so it never
    /// finds (and masks) less than the configuration would.
    pub params: DetectParams,
    /// What the request asked to have reported.
    pub report: ReportFilter,
    pub style: MaskStyle,
    /// `None`: the upload's own format (JPEG at `quality` for anything else).
    pub format: Option<OutputFormat>,
    pub quality: u8,
    pub require_face: bool,
    /// Stop after detection: no masking, no encoding (the detect routes).
    pub detect_only: bool,
}

impl JobOptions {
    /// Apply the options over `defaults`; the error names the bad field.
    ///
    /// The masking floor: a request may ask for more masking than the device's configuration,
    /// never less. Its detection parameters narrow only what is *reported*: the detector runs at
    /// the lower of the two confidence thresholds, the higher NMS threshold (fewer overlapping
    /// faces suppressed), the configured face limit, and the requested categories plus
    /// `always_mask`; every detection it returns is masked. The blur strength is floored at
    /// [`MIN_STRENGTH`].
    pub fn resolve(&self, defaults: &JobDefaults) -> Result<ResolvedOptions, String> {
        let floor = defaults.params;
        let asked = DetectParams {
            confidence: self.confidence.unwrap_or(floor.confidence),
            nms_threshold: self.nms_threshold.unwrap_or(floor.nms_threshold),
            max_faces: self.max_faces.unwrap_or(floor.max_faces),
            ..floor
        };
        asked.validate().map_err(|e| e.to_string())?;
        let categories = crate::categories::category_set(&self.categories)?;
        let rotations = match &self.detect_rotations {
            Some(r) => r.parse::<veil_models::Rotations>().map_err(|e| e.to_string())?,
            None => veil_models::Rotations::NONE,
        };
        let report = ReportFilter {
            confidence: asked.confidence,
            nms_threshold: asked.nms_threshold,
            max_faces: asked.max_faces,
            categories,
        };
        let mut masked = categories;
        for c in defaults.always_mask.iter() {
            masked.insert(c);
        }
        let params = DetectParams {
            confidence: asked.confidence.min(floor.confidence),
            nms_threshold: asked.nms_threshold.max(floor.nms_threshold),
            max_faces: floor.max_faces,
            categories: Some(masked),
            rotations: floor.rotations.union(rotations),
            ..floor
        };
        let mut style = defaults.style;
        let color = match &self.color {
            Some(c) => veil_redact::parse_color(c).map_err(|e| e.to_string())?,
            None => match defaults.style.method {
                Method::Solid { color } => color,
                _ => [0, 0, 0],
            },
        };
        if self.method.is_some() || self.strength.is_some() {
            let name = match (&self.method, defaults.style.method) {
                (Some(m), _) => m.as_str(),
                (None, Method::Gaussian { .. }) => "gaussian",
                (None, Method::Pixelate { .. }) => "pixelate",
                (None, Method::Solid { .. }) => "solid",
            };
            style.method = Method::from_name(name, self.strength, color).map_err(|e| e.to_string())?;
        }
        if let (Method::Pixelate { block }, Some(b)) = (&mut style.method, self.block) {
            *block = Some(b);
        }
        if let Some(shape) = &self.shape {
            style.shape = shape.parse::<Shape>().map_err(|e| e.to_string())?;
        }
        if let Some(p) = self.padding {
            style.padding = p;
        }
        if let Some(f) = self.feather {
            style.feather = f;
        }
        style.validate().map_err(|e| e.to_string())?;
        if let Method::Gaussian { strength } = &mut style.method {
            *strength = strength.max(MIN_STRENGTH.min(match defaults.style.method {
                Method::Gaussian { strength } => strength,
                _ => MIN_STRENGTH,
            }));
        }
        let quality = self.quality.unwrap_or(defaults.quality);
        if !(1..=100).contains(&quality) {
            return Err(format!("quality must be within 1..100, got {quality}"));
        }
        let format = match &self.format {
            Some(f) => Some(
                OutputFormat::from_name(f, quality)
                    .ok_or_else(|| format!("unknown format '{f}' (expected jpeg, png or webp)"))?,
            ),
            None => None,
        };
        Ok(ResolvedOptions {
            params,
            report,
            style,
            format,
            quality,
            require_face: self.require_face,
            detect_only: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use veil_models::{BBox, Category};

    fn defaults() -> JobDefaults {
        JobDefaults {
            params: DetectParams::default(),
            style: MaskStyle::default(),
            quality: 90,
            always_mask: [Category::Face].into_iter().collect(),
        }
    }

    fn face(x: f32, score: f32) -> Detection {
        Detection { category: Category::Face, bbox: BBox { x1: x, y1: 0.0, x2: x + 10.0, y2: 10.0 }, score, landmarks: None }
    }

    #[test]
    fn request_parameters_narrow_the_report_never_the_masking() {
        let narrow = JobOptions {
            confidence: Some(0.9),
            nms_threshold: Some(0.1),
            max_faces: Some(1),
            categories: vec!["license_plates".into()],
            ..Default::default()
        };
        let r = narrow.resolve(&defaults()).unwrap();
        // The detector runs at the device's floor, with faces added back.
        let floor = DetectParams::default();
        assert_eq!((r.params.confidence, r.params.nms_threshold, r.params.max_faces), (floor.confidence, 0.4, 0));
        let run = r.params.categories.unwrap();
        assert!(run.contains(Category::Face) && run.contains(Category::LicensePlate));
        // ... and the report is what was asked: plates only.
        assert!(r.report.apply(&[face(0.0, 0.95)]).is_empty());
        // Wider than the floor is granted for both.
        let wide = JobOptions { confidence: Some(0.2), nms_threshold: Some(0.7), ..Default::default() };
        let w = wide.resolve(&defaults()).unwrap();
        assert_eq!((w.params.confidence, w.params.nms_threshold), (0.2, 0.7));
        // Without the face floor a client may turn faces off.
        let open = JobDefaults { always_mask: CategorySet::default(), ..defaults() };
        let plates_only = narrow.resolve(&open).unwrap().params.categories.unwrap();
        assert!(!plates_only.contains(Category::Face));
    }

    #[test]
    fn the_report_filter_applies_threshold_nms_and_limit() {
        let f = ReportFilter {
            confidence: 0.6,
            nms_threshold: 0.3,
            max_faces: 2,
            categories: [Category::Face].into_iter().collect(),
        };
        let dets = [face(0.0, 0.7), face(3.0, 0.8), face(40.0, 0.65), face(80.0, 0.9), face(120.0, 0.5)];
        let xs: Vec<f32> = f.apply(&dets).iter().map(|d| d.bbox.x1).collect();
        // 0.5 is under the threshold, x=0 overlaps x=3 (IoU 0.54), then the best two.
        assert_eq!(xs, [80.0, 3.0]);
    }

    #[test]
    fn options_override_defaults_and_bad_values_name_the_field() {
        let o = JobOptions {
            confidence: Some(0.2),
            method: Some("pixelation".into()),
            shape: Some("Rectangle".into()),
            format: Some("png".into()),
            ..Default::default()
        };
        let r = o.resolve(&defaults()).unwrap();
        assert_eq!(r.params.confidence, 0.2);
        // Less masking than configured is not granted.
        let weak = JobOptions { confidence: Some(0.99), strength: Some(0.0), ..Default::default() };
        let w = weak.resolve(&defaults()).unwrap();
        assert_eq!(w.params.confidence, DetectParams::default().confidence);
        assert_eq!(w.style.method, Method::Gaussian { strength: MIN_STRENGTH });
        assert!(matches!(r.style.method, Method::Pixelate { .. }));
        assert_eq!(r.style.shape, Shape::Rect);
        assert_eq!(r.format, Some(OutputFormat::Png));
        let bad = |o: JobOptions, needle: &str| {
            let e = o.resolve(&defaults()).unwrap_err();
            assert!(e.contains(needle), "{e}");
        };
        bad(JobOptions { confidence: Some(1.5), ..Default::default() }, "confidence");
        bad(JobOptions { method: Some("smudge".into()), ..Default::default() }, "smudge");
        bad(JobOptions { strength: Some(3.0), ..Default::default() }, "strength");
        bad(JobOptions { format: Some("gif".into()), ..Default::default() }, "gif");
        bad(JobOptions { quality: Some(0), ..Default::default() }, "quality");
        // Stored JSON round-trips.
        let json = serde_json::to_string(&o).unwrap();
        assert_eq!(serde_json::from_str::<JobOptions>(&json).unwrap(), o);
    }
}
