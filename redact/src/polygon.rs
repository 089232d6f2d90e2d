//! Polygon outlines for fixed privacy zones: bounds and a conservative pixel-inside test.

use crate::region::Region;

pub(crate) struct Polygon {
    points: Vec<(f32, f32)>,
    bounds: Region,
}

impl Polygon {
    /// `None` for fewer than 3 points or non-finite coordinates.
    pub(crate) fn new(points: &[(f32, f32)]) -> Option<Self> {
        if points.len() < 3 || points.iter().any(|(x, y)| !x.is_finite() || !y.is_finite()) {
            return None;
        }
        let (mut x1, mut y1, mut x2, mut y2) = (f32::MAX, f32::MAX, f32::MIN, f32::MIN);
        for &(x, y) in points {
            x1 = x1.min(x);
            y1 = y1.min(y);
            x2 = x2.max(x);
            y2 = y2.max(y);
        }
        Some(Self { points: points.to_vec(), bounds: Region::new(x1, y1, x2, y2) })
    }

    pub(crate) fn bounds(&self) -> &Region {
        &self.bounds
    }

    /// Nonzero winding rule at one point: parts of a self-crossing outline, or an outline traced
    /// twice, count as inside (the even-odd rule would leave them unmasked).
    fn contains(&self, px: f32, py: f32) -> bool {
        let mut winding = 0i32;
        let n = self.points.len();
        for i in 0..n {
            let (xa, ya) = self.points[i];
            let (xb, yb) = self.points[(i + 1) % n];
            // Which side of the edge a-b the point lies on (> 0: left).
            let side = (xb - xa) * (py - ya) - (px - xa) * (yb - ya);
            if ya <= py && yb > py && side > 0.0 {
                winding += 1;
            } else if ya > py && yb <= py && side < 0.0 {
                winding -= 1;
            }
        }
        winding != 0
    }

    /// Whether the pixel at column `x`, row `y` (frame coordinates) overlaps the polygon: its
    /// centre is inside, or an edge of the polygon crosses the pixel's square (so slivers thinner
    /// than a pixel are still masked).
    pub(crate) fn touches_pixel(&self, x: u32, y: u32) -> bool {
        let (fx, fy) = (x as f32, y as f32);
        if self.contains(fx + 0.5, fy + 0.5) {
            return true;
        }
        let n = self.points.len();
        (0..n).any(|i| segment_hits_square(self.points[i], self.points[(i + 1) % n], fx, fy))
    }
}

/// Liang-Barsky: does the segment a-b meet the unit square with top-left corner (sx, sy)?
fn segment_hits_square(a: (f32, f32), b: (f32, f32), sx: f32, sy: f32) -> bool {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let (mut t0, mut t1) = (0.0f32, 1.0f32);
    for (p, q) in [(-dx, a.0 - sx), (dx, sx + 1.0 - a.0), (-dy, a.1 - sy), (dy, sy + 1.0 - a.1)] {
        if p == 0.0 {
            if q < 0.0 {
                return false;
            }
        } else {
            let r = q / p;
            if p < 0.0 {
                t0 = t0.max(r);
            } else {
                t1 = t1.min(r);
            }
            if t0 > t1 {
                return false;
            }
        }
    }
    true
}
