//! Scoring detections against labelled photo sets, for `veil eval`: faces in the WIDER FACE
//! format ([`faces`]), licence plates as `file x y w h text` lines ([`plates`]).

pub mod faces;
pub mod plates;

/// A box as `[x1, y1, x2, y2]` in pixels.
pub type Box4 = [f32; 4];

pub fn area(b: Box4) -> f32 {
    (b[2] - b[0]).max(0.0) * (b[3] - b[1]).max(0.0)
}

pub fn intersection(a: Box4, b: Box4) -> f32 {
    area([a[0].max(b[0]), a[1].max(b[1]), a[2].min(b[2]), a[3].min(b[3])])
}

pub fn iou(a: Box4, b: Box4) -> f32 {
    let inter = intersection(a, b);
    let union = area(a) + area(b) - inter;
    if union > 0.0 {
        inter / union
    } else {
        0.0
    }
}

/// Average precision over a ranked list of `(score, true positive)` against `positives`
/// labelled objects: the area under the precision-recall curve with precision made monotone
/// (every-point interpolation, as PASCAL VOC since 2010).
pub fn average_precision(ranked: &[(f32, bool)], positives: usize) -> f64 {
    if positives == 0 {
        return 0.0;
    }
    let mut ranked = ranked.to_vec();
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
    let (mut tp, mut fp) = (0usize, 0usize);
    let mut curve = Vec::with_capacity(ranked.len()); // (recall, precision)
    for (_, hit) in &ranked {
        if *hit {
            tp += 1;
        } else {
            fp += 1;
        }
        curve.push((tp as f64 / positives as f64, tp as f64 / (tp + fp) as f64));
    }
    // Precision at recall r becomes the best precision at any recall >= r.
    for i in (0..curve.len().saturating_sub(1)).rev() {
        curve[i].1 = curve[i].1.max(curve[i + 1].1);
    }
    let mut ap = 0.0;
    let mut last_recall = 0.0;
    for (recall, precision) in curve {
        ap += (recall - last_recall) * precision;
        last_recall = recall;
    }
    ap
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iou_and_average_precision_by_hand() {
        assert_eq!(iou([0.0, 0.0, 10.0, 10.0], [5.0, 0.0, 15.0, 10.0]), 50.0 / 150.0);
        assert_eq!(iou([0.0, 0.0, 1.0, 1.0], [2.0, 2.0, 3.0, 3.0]), 0.0);
        // Two of three objects found; ranks: hit, miss, hit.
        let ap = average_precision(&[(0.9, true), (0.8, false), (0.7, true)], 3);
        // recall 1/3 at precision 1, then 2/3 at precision 2/3.
        assert!((ap - (1.0 / 3.0 + (1.0 / 3.0) * (2.0 / 3.0))).abs() < 1e-9, "{ap}");
        assert_eq!(average_precision(&[(0.5, true)], 1), 1.0);
        assert_eq!(average_precision(&[], 0), 0.0);
        assert_eq!(average_precision(&[(0.5, false)], 2), 0.0);
    }
}
