//! Detect-then-mask on one decoded image, failing closed: if detection fails the caller gets an
//! error and no pixels, never the unmasked image.

use std::sync::Arc;
use std::time::Instant;

use image::RgbImage;
use veil_models::{BBox, Category, DetectError, DetectParams, Detection, Detector, RgbImage as ModelImage, StageTimings};
use veil_redact::{MaskStyle, Region, RgbFrame, Shape};

/// Timings of one redaction, in milliseconds.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct RedactionTimings {
    #[serde(flatten)]
    pub detect: StageTimings,
    pub mask_ms: f64,
}

/// What a redaction found and did.
#[derive(Debug, Clone)]
pub struct RedactionReport {
    pub detections: Vec<Detection>,
    pub timings: RedactionTimings,
    pub network_input: (u32, u32),
}

/// A detector plus the parameters and mask style applied to every image.
#[derive(Clone)]
pub struct Redactor {
    pub detector: Arc<dyn Detector>,
    pub params: DetectParams,
    pub style: MaskStyle,
}

impl Redactor {
    /// Detect objects in `img` and mask them in place. On error `img` may be partly masked but
    /// must be discarded; callers never output it.
    pub fn redact_in_place(&self, img: &mut RgbImage) -> Result<RedactionReport, DetectError> {
        let (w, h) = img.dimensions();
        let out = {
            let view = ModelImage::new(img.as_raw(), w, h)?;
            veil_models::rotations::detect(&*self.detector, &view, &self.params)?
        };
        // A box that is not a number would mask nothing: fail instead.
        if let Some(bad) = out.detections.iter().find(|d| {
            let b = d.bbox;
            ![b.x1, b.y1, b.x2, b.y2, d.score].iter().all(|v| v.is_finite())
        }) {
            return Err(DetectError::Inference(format!("detector returned a non-finite box {:?}", bad.bbox)));
        }
        let t = Instant::now();
        let mut frame =
            RgbFrame::new(img.as_mut(), w, h).map_err(|e| DetectError::Inference(format!("frame buffer: {e}")))?;
        mask_boxes(&mut frame, out.detections.iter().map(|d| (d.category, d.bbox)), &self.style);
        let mask_ms = t.elapsed().as_secs_f64() * 1000.0;
        Ok(RedactionReport {
            detections: out.detections,
            timings: RedactionTimings { detect: out.timings, mask_ms },
            network_input: out.network_input,
        })
    }
}

/// Mask each box in `frame` with `style`, except that licence plates, text, QR codes, barcodes
/// and people are always masked as rectangles: an ellipse inside a long plate's or line's box
/// would leave the characters at its ends, one inside a code's box its corners, one inside a
/// person's box the hands and feet.
pub fn mask_boxes(frame: &mut RgbFrame<'_>, boxes: impl Iterator<Item = (Category, BBox)>, style: &MaskStyle) {
    let (mut faces, mut rects) = (Vec::new(), Vec::new());
    for (category, b) in boxes {
        let region = Region::new(b.x1, b.y1, b.x2, b.y2);
        match category {
            Category::Face => faces.push(region),
            Category::LicensePlate | Category::Text | Category::QrCode | Category::Barcode | Category::Person => {
                rects.push(region)
            }
        }
    }
    veil_redact::redact(frame, &faces, style);
    veil_redact::redact(frame, &rects, &MaskStyle { shape: Shape::Rect, ..*style });
}
