//! What a job asks for (detection thresholds, mask style, output format), as stored with the job
//! in JSON, and its resolution against the daemon's defaults into checked parameters.

use serde::{Deserialize, Serialize};
use veil_models::DetectParams;
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
}

/// The weakest blur a request may ask for: below it a face stays recognisable.
pub const MIN_STRENGTH: f32 = 0.3;

/// The daemon-wide defaults a job's options are resolved against.
#[derive(Debug, Clone, Copy)]
pub struct JobDefaults {
    pub params: DetectParams,
    pub style: MaskStyle,
    pub quality: u8,
}

/// Checked parameters of one redaction.
#[derive(Debug, Clone, Copy)]
pub struct ResolvedOptions {
    pub params: DetectParams,
    pub style: MaskStyle,
    /// `None`: the upload's own format (JPEG at `quality` for anything else).
    pub format: Option<OutputFormat>,
    pub quality: u8,
    pub require_face: bool,
    /// Stop after detection: no masking, no encoding (the detect routes).
    pub detect_only: bool,
}

impl JobOptions {
    /// Apply the options over `defaults`; the error names the bad field. A request may ask for
    /// more masking than the device's configuration, never less: its confidence threshold is
    /// capped at the configured one and its blur strength floored at [`MIN_STRENGTH`].
    pub fn resolve(&self, defaults: &JobDefaults) -> Result<ResolvedOptions, String> {
        let mut params = defaults.params;
        if let Some(c) = self.confidence {
            params.confidence = c;
        }
        if let Some(n) = self.nms_threshold {
            params.nms_threshold = n;
        }
        if let Some(m) = self.max_faces {
            params.max_faces = m;
        }
        params.validate().map_err(|e| e.to_string())?;
        params.categories = Some(crate::categories::category_set(&self.categories)?);
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
        params.confidence = params.confidence.min(defaults.params.confidence);
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
        Ok(ResolvedOptions { params, style, format, quality, require_face: self.require_face, detect_only: false })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> JobDefaults {
        JobDefaults { params: DetectParams::default(), style: MaskStyle::default(), quality: 90 }
    }

    #[test]
    fn options_override_defaults_and_bad_values_name_the_field() {
        let o = JobOptions {
            confidence: Some(0.3),
            method: Some("pixelation".into()),
            shape: Some("Rectangle".into()),
            format: Some("png".into()),
            ..Default::default()
        };
        let r = o.resolve(&defaults()).unwrap();
        assert_eq!(r.params.confidence, 0.3);
        // Less masking than configured is not granted.
        let weak = JobOptions { confidence: Some(0.99), strength: Some(0.0), ..Default::default() };
        let w = weak.resolve(&defaults()).unwrap();
        assert_eq!(w.params.confidence, 0.5);
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
