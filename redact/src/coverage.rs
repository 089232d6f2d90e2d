//! Per-pixel mask opacity for a padded box: 255 inside the shape, a smooth fall-off across the
//! feather band outside it, 0 beyond.

use crate::region::{PixelRect, Region};
use crate::style::Shape;

pub(crate) struct Coverage {
    shape: Shape,
    // Shape grown by half a pixel, so any pixel the box overlaps counts as inside.
    x1: f32,
    y1: f32,
    x2: f32,
    y2: f32,
    band: f32,
}

impl Coverage {
    pub(crate) fn new(region: &Region, band: f32, shape: Shape, _area: &PixelRect) -> Self {
        let g = region.grown(0.5);
        Self { shape, x1: g.x1, y1: g.y1, x2: g.x2, y2: g.y2, band: band.max(0.0) }
    }

    /// Distance in pixels from the pixel centre `(x + 0.5, y + 0.5)` to the shape (0 inside).
    fn outside_distance(&self, x: u32, y: u32) -> f32 {
        let px = x as f32 + 0.5;
        let py = y as f32 + 0.5;
        match self.shape {
            Shape::Rect => {
                let dx = (self.x1 - px).max(px - self.x2).max(0.0);
                let dy = (self.y1 - py).max(py - self.y2).max(0.0);
                (dx * dx + dy * dy).sqrt()
            }
            Shape::Ellipse => {
                let a = ((self.x2 - self.x1) * 0.5).max(0.5);
                let b = ((self.y2 - self.y1) * 0.5).max(0.5);
                let dx = (px - (self.x1 + self.x2) * 0.5) / a;
                let dy = (py - (self.y1 + self.y2) * 0.5) / b;
                let r = (dx * dx + dy * dy).sqrt();
                // (r - 1) * min(a, b) never overstates the true distance, so the fall-off errs
                // on the side of more masking.
                ((r - 1.0) * a.min(b)).max(0.0)
            }
        }
    }

    pub(crate) fn alpha(&self, x: u32, y: u32) -> u8 {
        let d = self.outside_distance(x, y);
        if d <= 0.0 {
            return 255;
        }
        if self.band <= 0.0 || d >= self.band {
            return 0;
        }
        // Smoothstep from 1 at the shape's edge to 0 at the band's end.
        let t = 1.0 - d / self.band;
        let s = t * t * (3.0 - 2.0 * t);
        (s * 255.0).round() as u8
    }
}
