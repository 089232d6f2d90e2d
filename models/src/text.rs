//! The `text` backend: every line of writing PP-OCRv4's detector finds (signs, documents, name
//! badges, plates too), boxed and grown a little, with its own confidence and minimum height.
//! It runs the plate backend's model file; its network is built on first use, so a daemon that
//! offers text to uploads carries no second text network until one asks.

use crate::detection::{BBox, Category, Detection};
use crate::error::DetectError;
use crate::lazy_network::LazyNetwork;
use crate::params::DetectParams;
use crate::preprocess::RgbImage;
use crate::registry::{BackendInfo, ModelFile};
use crate::text_map::TextMapNetwork;
use crate::text_regions::RegionRule;
use crate::{DetectOutput, Detector};

/// Each box grows by this share of its height on every side: DBNet's boxes hug the strokes.
const GROW: f32 = 0.15;

/// Lines of text from the PP-OCRv4 text detector.
pub struct Text {
    info: BackendInfo,
    network: LazyNetwork<TextMapNetwork>,
}

impl Text {
    pub fn new(file: &ModelFile, info: BackendInfo, threads: usize) -> Result<Self, DetectError> {
        Ok(Self { info, network: LazyNetwork::new(file, threads)? })
    }

    fn network(&self) -> Result<&TextMapNetwork, DetectError> {
        self.network.get("the text detector", |bytes, threads| TextMapNetwork::from_bytes(bytes, &self.info.name, threads))
    }
}

impl Detector for Text {
    fn info(&self) -> &BackendInfo {
        &self.info
    }

    fn detect(&self, image: &RgbImage<'_>, params: &DetectParams) -> Result<DetectOutput, DetectError> {
        params.validate()?;
        params.wanted(&self.info.categories)?;
        let rule = RegionRule { region_threshold: params.text_confidence, ..RegionRule::default() };
        let mut found = self.network()?.text_boxes(image, params, &rule)?;
        let detections = text_boxes(std::mem::take(&mut found.boxes), params.text_min_height, image.width as f32, image.height as f32)
            .into_iter()
            .map(|(bbox, score)| Detection { category: Category::Text, bbox, score, landmarks: None })
            .collect();
        Ok(found.output(detections))
    }
}

/// Boxes at least `min_height` tall, grown by [`GROW`] and clipped to the `w` x `h` image.
fn text_boxes(boxes: Vec<(BBox, f32)>, min_height: f32, w: f32, h: f32) -> Vec<(BBox, f32)> {
    boxes
        .into_iter()
        .filter(|(b, _)| b.height() >= min_height && b.width() > 0.0)
        .map(|(b, score)| {
            let g = GROW * b.height();
            let grown = BBox { x1: (b.x1 - g).max(0.0), y1: (b.y1 - g).max(0.0), x2: (b.x2 + g).min(w), y2: (b.y2 + g).min(h) };
            (grown, score)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_boxes_are_dropped_and_the_rest_grow_within_the_image() {
        let out = text_boxes(
            vec![
                (BBox { x1: 10.0, y1: 10.0, x2: 110.0, y2: 30.0 }, 0.9),
                (BBox { x1: 10.0, y1: 50.0, x2: 110.0, y2: 55.0 }, 0.9),
                (BBox { x1: 0.0, y1: 80.0, x2: 50.0, y2: 100.0 }, 0.7),
            ],
            8.0,
            120.0,
            100.0,
        );
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].0, BBox { x1: 7.0, y1: 7.0, x2: 113.0, y2: 33.0 });
        assert_eq!(out[1].0, BBox { x1: 0.0, y1: 77.0, x2: 53.0, y2: 100.0 });
    }
}
