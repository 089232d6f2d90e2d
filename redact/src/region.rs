//! Box geometry: detection boxes in float source pixels and their clipped integer pixel areas.

/// An axis-aligned box in source pixel coordinates (`x2 > x1`, `y2 > y1` for a non-empty box).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Region {
    pub x1: f32,
    pub y1: f32,
    pub x2: f32,
    pub y2: f32,
}

/// An integer pixel rectangle inside a frame: columns `x..x+w`, rows `y..y+h`, never empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PixelRect {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
}

impl Region {
    pub fn new(x1: f32, y1: f32, x2: f32, y2: f32) -> Self {
        Self { x1, y1, x2, y2 }
    }

    pub fn width(&self) -> f32 {
        (self.x2 - self.x1).max(0.0)
    }

    pub fn height(&self) -> f32 {
        (self.y2 - self.y1).max(0.0)
    }

    /// Grow each side by `fraction` of the box's own width (left/right) or height (top/bottom),
    /// the way deface's `--mask-scale 1.3` grows boxes (fraction 0.3).
    pub fn padded(&self, fraction: f32) -> Region {
        let dx = self.width() * fraction;
        let dy = self.height() * fraction;
        Region::new(self.x1 - dx, self.y1 - dy, self.x2 + dx, self.y2 + dy)
    }

    /// Grow each side by `pixels`.
    pub fn grown(&self, pixels: f32) -> Region {
        Region::new(self.x1 - pixels, self.y1 - pixels, self.x2 + pixels, self.y2 + pixels)
    }

    /// The pixels this box touches inside a `width` x `height` frame (any partly covered pixel
    /// counts, so a box never loses its fractional edge), or `None` when nothing is inside.
    pub fn clip_to(&self, width: u32, height: u32) -> Option<PixelRect> {
        if !(self.x1.is_finite() && self.y1.is_finite() && self.x2.is_finite() && self.y2.is_finite()) {
            return None;
        }
        if self.x2 <= self.x1 || self.y2 <= self.y1 {
            return None;
        }
        let x0 = self.x1.floor().max(0.0);
        let y0 = self.y1.floor().max(0.0);
        let x1 = self.x2.ceil().min(width as f32);
        let y1 = self.y2.ceil().min(height as f32);
        if x1 <= x0 || y1 <= y0 {
            return None;
        }
        Some(PixelRect { x: x0 as u32, y: y0 as u32, w: (x1 - x0) as u32, h: (y1 - y0) as u32 })
    }
}
