//! Text regions of a probability map: threshold, 2x2 dilation, 8-connected components, each
//! scored by its mean probability and grown by DBNet's unclip distance.

use crate::detection::BBox;
use crate::text_map::ProbabilityMap;

/// How a probability map becomes regions.
#[derive(Debug, Clone, Copy)]
pub struct RegionRule {
    /// A pixel is text above this probability.
    pub pixel_threshold: f32,
    /// A region is kept when its mean probability reaches this.
    pub region_threshold: f32,
    /// DBNet's unclip ratio: a region grows by `area * ratio / perimeter` on every side.
    pub unclip_ratio: f32,
    /// At most this many regions are considered (a map full of noise cannot run away).
    pub max_regions: usize,
}

impl Default for RegionRule {
    fn default() -> Self {
        Self { pixel_threshold: 0.3, region_threshold: 0.8, unclip_ratio: 1.6, max_regions: 1000 }
    }
}

/// One text region in map pixels, after unclipping.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TextRegion {
    pub bbox: BBox,
    pub score: f32,
}

/// The regions of `map` under `rule`, in map pixel coordinates.
pub fn text_regions(map: &ProbabilityMap, rule: &RegionRule) -> Vec<TextRegion> {
    let (w, h) = (map.w, map.h);
    if w == 0 || h == 0 {
        return Vec::new();
    }
    // Threshold, then dilate with a 2x2 kernel anchored bottom-right: a pixel is set when it or
    // its left, upper or upper-left neighbour is above the threshold.
    let above: Vec<bool> = map.values.iter().map(|&p| p > rule.pixel_threshold).collect();
    let mut mask = vec![false; w * h];
    for y in 0..h {
        for x in 0..w {
            let i = y * w + x;
            mask[i] = above[i]
                || (x > 0 && above[i - 1])
                || (y > 0 && above[i - w])
                || (x > 0 && y > 0 && above[i - w - 1]);
        }
    }
    let components = label_components(&mask, &map.values, w, h);
    let mut out = Vec::new();
    for c in components.into_iter().take(rule.max_regions) {
        // Box side lengths as OpenCV's rect of the pixel centres: extent - 1.
        let (rw, rh) = ((c.x2 - c.x1) as f32, (c.y2 - c.y1) as f32);
        if rw.min(rh) < 3.0 {
            continue;
        }
        let score = (c.sum / c.pixels as f64) as f32;
        if score < rule.region_threshold {
            continue;
        }
        let d = rw * rh * rule.unclip_ratio / (2.0 * (rw + rh));
        if rw.min(rh) + 2.0 * d < 5.0 {
            continue;
        }
        let (cx, cy) = ((c.x1 + c.x2) as f32 / 2.0, (c.y1 + c.y2) as f32 / 2.0);
        let (hw, hh) = (rw / 2.0 + d, rh / 2.0 + d);
        out.push(TextRegion {
            bbox: BBox {
                x1: (cx - hw).max(0.0),
                y1: (cy - hh).max(0.0),
                x2: (cx + hw).min(w as f32),
                y2: (cy + hh).min(h as f32),
            },
            score,
        });
    }
    out
}

/// An 8-connected component: inclusive pixel extents, pixel count and probability sum.
struct Component {
    x1: usize,
    y1: usize,
    x2: usize,
    y2: usize,
    pixels: usize,
    sum: f64,
}

/// The 8-connected components of the set pixels of `mask`, in raster order of their first pixel,
/// each with its extent and the sum of `values` over its pixels.
fn label_components(mask: &[bool], values: &[f32], w: usize, h: usize) -> Vec<Component> {
    let mut seen = vec![false; w * h];
    let mut out = Vec::new();
    let mut stack = Vec::new();
    for start in 0..w * h {
        if !mask[start] || seen[start] {
            continue;
        }
        seen[start] = true;
        stack.push(start);
        let (sx, sy) = (start % w, start / w);
        let mut c = Component { x1: sx, y1: sy, x2: sx, y2: sy, pixels: 0, sum: 0.0 };
        while let Some(i) = stack.pop() {
            let (x, y) = (i % w, i / w);
            c.x1 = c.x1.min(x);
            c.x2 = c.x2.max(x);
            c.y1 = c.y1.min(y);
            c.y2 = c.y2.max(y);
            c.pixels += 1;
            c.sum += values[i] as f64;
            for ny in y.saturating_sub(1)..=(y + 1).min(h - 1) {
                for nx in x.saturating_sub(1)..=(x + 1).min(w - 1) {
                    let j = ny * w + nx;
                    if mask[j] && !seen[j] {
                        seen[j] = true;
                        stack.push(j);
                    }
                }
            }
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map_with(w: usize, h: usize, blobs: &[(usize, usize, usize, usize, f32)]) -> ProbabilityMap {
        let mut values = vec![0.0; w * h];
        for &(x1, y1, x2, y2, p) in blobs {
            for y in y1..y2 {
                for x in x1..x2 {
                    values[y * w + x] = p;
                }
            }
        }
        ProbabilityMap { values, w, h }
    }

    #[test]
    fn a_confident_blob_becomes_one_unclipped_region() {
        // 40x10 px of text at probability 0.95.
        let map = map_with(100, 60, &[(20, 20, 60, 30, 0.95)]);
        let regions = text_regions(&map, &RegionRule::default());
        assert_eq!(regions.len(), 1);
        let r = regions[0];
        // Dilated extent 20..=60 x 20..=30 -> rect 40 x 10; d = 400 * 1.6 / 100 = 6.4.
        assert!((r.bbox.x1 - 13.6).abs() < 1e-3 && (r.bbox.x2 - 66.4).abs() < 1e-3, "{r:?}");
        assert!((r.bbox.y1 - 13.6).abs() < 1e-3 && (r.bbox.y2 - 36.4).abs() < 1e-3, "{r:?}");
        // The dilated ring has the ring's probability 0: mean = 400 * 0.95 / 451.
        assert!((r.score - 400.0 * 0.95 / 451.0).abs() < 1e-4, "{}", r.score);
    }

    #[test]
    fn weak_tiny_and_separate_blobs() {
        let map = map_with(
            200,
            100,
            &[
                (10, 10, 50, 20, 0.95),   // kept
                (100, 10, 140, 20, 0.5),  // mean below 0.8: dropped
                (10, 60, 12, 90, 0.99),   // 2 px wide: dropped
                (100, 60, 160, 80, 0.99), // kept
            ],
        );
        let regions = text_regions(&map, &RegionRule::default());
        assert_eq!(regions.len(), 2, "{regions:?}");
        assert!(regions[0].bbox.x1 < 10.0 && regions[1].bbox.x1 > 85.0);
        let none = text_regions(&map_with(50, 50, &[]), &RegionRule::default());
        assert!(none.is_empty());
    }
}
