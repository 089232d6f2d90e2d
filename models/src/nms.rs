//! Greedy non-maximum suppression over scored boxes.

use crate::detection::Detection;

/// Keep the highest-scoring detections, dropping any whose IoU with an already kept one is
/// `>= threshold`. Output is sorted by descending score.
pub fn suppress(dets: Vec<Detection>, threshold: f32) -> Vec<Detection> {
    suppress_by(dets, |d| d, threshold)
}

/// [`suppress`] over items that each carry a detection (`detection` finds it), keeping the
/// rest of each kept item with it.
pub fn suppress_by<T>(mut items: Vec<T>, detection: impl Fn(&T) -> &Detection, threshold: f32) -> Vec<T> {
    items.sort_by(|a, b| detection(b).score.total_cmp(&detection(a).score));
    let mut kept: Vec<T> = Vec::with_capacity(items.len());
    for item in items {
        let d = detection(&item);
        if kept.iter().all(|k| detection(k).bbox.iou(&d.bbox) < threshold) {
            kept.push(item);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detection::{BBox, Category};

    fn det(x1: f32, score: f32) -> Detection {
        Detection {
            category: Category::Face,
            bbox: BBox { x1, y1: 0.0, x2: x1 + 10.0, y2: 10.0 },
            score,
            landmarks: None,
        }
    }

    #[test]
    fn overlapping_lower_scores_are_dropped() {
        let out = suppress(vec![det(0.0, 0.6), det(1.0, 0.9), det(30.0, 0.5)], 0.4);
        let xs: Vec<f32> = out.iter().map(|d| d.bbox.x1).collect();
        assert_eq!(xs, vec![1.0, 30.0]);
    }

    #[test]
    fn threshold_one_keeps_everything_but_exact_duplicates() {
        let out = suppress(vec![det(0.0, 0.6), det(1.0, 0.9), det(1.0, 0.2)], 1.0);
        assert_eq!(out.len(), 2);
    }
}
