//! The `plates` backend: PP-OCRv4 text regions shaped into licence-plate masks by the measured
//! recipe (models/tool/plates_research/README.md): plate-like boxes only, grown to the plate's rim.

use crate::detection::{BBox, Category, Detection};
use crate::error::DetectError;
use crate::params::DetectParams;
use crate::preprocess::RgbImage;
use crate::registry::BackendInfo;
use crate::text_map::TextMapNetwork;
use crate::text_regions::RegionRule;
use crate::{DetectOutput, Detector};

/// The geometry that turns text boxes into plate masks.
#[derive(Debug, Clone, Copy)]
pub struct PlateShape {
    /// Boxes overlapping by this share of the smaller one are united first.
    pub merge_overlap: f32,
    /// Plate text lines are this wide for their height (EU 1.5..6 after unclip, US alike).
    pub min_aspect: f32,
    pub max_aspect: f32,
    /// Shorter boxes (source pixels) are not plates a person could read.
    pub min_height: f32,
    /// Each kept box grows by this share of its height left and right (country band, state name)...
    pub grow_x: f32,
    /// ...and top and bottom.
    pub grow_y: f32,
}

impl Default for PlateShape {
    fn default() -> Self {
        Self { merge_overlap: 0.5, min_aspect: 1.5, max_aspect: 6.0, min_height: 14.0, grow_x: 0.5, grow_y: 0.3 }
    }
}

/// Licence plates from the PP-OCRv4 text detector.
pub struct Plates {
    info: BackendInfo,
    network: TextMapNetwork,
    regions: RegionRule,
    shape: PlateShape,
}

impl Plates {
    pub fn from_bytes(bytes: &[u8], info: BackendInfo, threads: usize) -> Result<Self, DetectError> {
        let network = TextMapNetwork::from_bytes(bytes, &info.name, threads)?;
        Ok(Self { info, network, regions: RegionRule::default(), shape: PlateShape::default() })
    }
}

impl Detector for Plates {
    fn info(&self) -> &BackendInfo {
        &self.info
    }

    fn detect(&self, image: &RgbImage<'_>, params: &DetectParams) -> Result<DetectOutput, DetectError> {
        params.validate()?;
        params.wanted(&self.info.categories)?;
        let mut found = self.network.text_boxes(image, params, &self.regions)?;
        let detections = plate_boxes(std::mem::take(&mut found.boxes), &self.shape, image.width as f32, image.height as f32)
            .into_iter()
            .map(|(bbox, score)| Detection { category: Category::LicensePlate, bbox, score, landmarks: None })
            .collect();
        Ok(found.output(detections))
    }
}

/// Text boxes (source pixels, with scores) to plate masks: unite overlapping boxes, keep the
/// plate-shaped, grow them, clip to the `w` x `h` image. Best score first.
pub fn plate_boxes(boxes: Vec<(BBox, f32)>, shape: &PlateShape, w: f32, h: f32) -> Vec<(BBox, f32)> {
    let mut boxes = unite_overlapping(boxes, shape.merge_overlap);
    boxes.retain(|(b, _)| {
        let (bw, bh) = (b.width(), b.height());
        bh >= shape.min_height && bh > 0.0 && (shape.min_aspect..=shape.max_aspect).contains(&(bw / bh))
    });
    for (b, _) in boxes.iter_mut() {
        let bh = b.height();
        *b = BBox {
            x1: (b.x1 - shape.grow_x * bh).max(0.0),
            y1: (b.y1 - shape.grow_y * bh).max(0.0),
            x2: (b.x2 + shape.grow_x * bh).min(w),
            y2: (b.y2 + shape.grow_y * bh).min(h),
        };
    }
    boxes.sort_by(|a, b| b.1.total_cmp(&a.1));
    boxes
}

/// Repeatedly unite two boxes whose intersection covers `share` of the smaller one (the same
/// text found twice); the union keeps the higher score.
fn unite_overlapping(mut boxes: Vec<(BBox, f32)>, share: f32) -> Vec<(BBox, f32)> {
    if share <= 0.0 {
        return boxes;
    }
    'again: loop {
        for i in 0..boxes.len() {
            for j in i + 1..boxes.len() {
                let (a, b) = (boxes[i].0, boxes[j].0);
                let iw = a.x2.min(b.x2) - a.x1.max(b.x1);
                let ih = a.y2.min(b.y2) - a.y1.max(b.y1);
                if iw <= 0.0 || ih <= 0.0 || iw * ih < share * a.area().min(b.area()) {
                    continue;
                }
                let united = BBox { x1: a.x1.min(b.x1), y1: a.y1.min(b.y1), x2: a.x2.max(b.x2), y2: a.y2.max(b.y2) };
                boxes[i] = (united, boxes[i].1.max(boxes[j].1));
                boxes.remove(j);
                continue 'again;
            }
        }
        return boxes;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bx(x1: f32, y1: f32, x2: f32, y2: f32) -> BBox {
        BBox { x1, y1, x2, y2 }
    }

    #[test]
    fn plate_shaped_boxes_are_kept_and_grown() {
        let shape = PlateShape::default();
        let out = plate_boxes(
            vec![
                (bx(100.0, 100.0, 200.0, 130.0), 0.9), // 100x30, aspect 3.3: a plate
                (bx(300.0, 100.0, 310.0, 160.0), 0.9), // tall: no
                (bx(400.0, 100.0, 420.0, 110.0), 0.9), // 10 px high: no
                (bx(0.0, 0.0, 800.0, 40.0), 0.9),      // aspect 20: a banner, no
            ],
            &shape,
            1000.0,
            1000.0,
        );
        assert_eq!(out.len(), 1, "{out:?}");
        // Grown by 0.5 x 30 left/right and 0.3 x 30 top/bottom.
        assert_eq!(out[0].0, bx(85.0, 91.0, 215.0, 139.0));
    }

    #[test]
    fn duplicates_unite_and_growth_stops_at_the_image_edge() {
        let out = plate_boxes(
            vec![(bx(0.0, 0.0, 60.0, 20.0), 0.85), (bx(5.0, 2.0, 62.0, 21.0), 0.95)],
            &PlateShape::default(),
            70.0,
            40.0,
        );
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].1, 0.95);
        assert_eq!(out[0].0.x1, 0.0);
        assert_eq!(out[0].0.x2, 70.0);
    }
}
