//! veil-redact: masking operations that work in place on RGB frame buffers.
//!
//! A caller hands [`redact`] a mutable [`RgbFrame`], the boxes to hide (in source pixels) and a
//! [`MaskStyle`]. Each box is grown by `padding`, clipped to the frame, and its pixels are replaced
//! by a blurred, pixelated or solid version inside a rectangle or ellipse, optionally with a soft
//! edge that fades *outwards* (feathering never weakens the mask inside the padded shape).

mod blur;
mod coverage;
mod frame;
mod pixelate;
mod polygon;
mod region;
mod style;

pub use frame::{FrameError, RgbFrame};
pub use region::{PixelRect, Region};
pub use style::{
    parse_color, MaskStyle, Method, Shape, StyleError, DEFAULT_FEATHER, DEFAULT_PADDING, DEFAULT_STRENGTH,
};

/// Hide every region of `regions` in `frame` according to `style`.
///
/// Regions are processed independently; overlapping regions are each masked (the second
/// one sees the first one's output, which is already masked). Empty or fully off-frame regions are
/// skipped. Returns the number of regions that touched the frame.
pub fn redact(frame: &mut RgbFrame<'_>, regions: &[Region], style: &MaskStyle) -> usize {
    let mut touched = 0;
    for region in regions {
        if redact_one(frame, region, style) {
            touched += 1;
        }
    }
    touched
}

fn redact_one(frame: &mut RgbFrame<'_>, region: &Region, style: &MaskStyle) -> bool {
    let padded = region.padded(style.padding);
    // The soft edge fades outwards over a band proportional to the padded shape's shorter side.
    let band = style.feather_band(padded.width().min(padded.height()));
    let outer = padded.grown(band);
    let Some(area) = outer.clip_to(frame.width(), frame.height()) else {
        return false;
    };
    let cov = coverage::Coverage::new(&padded, band, style.shape, &area);
    let mut patch = frame.copy_rect(&area);
    let core_side = padded.width().min(padded.height()).max(1.0);
    obscure_patch(&mut patch, &area, core_side, style.method);
    frame.blend_rect(&area, &patch, |x, y| cov.alpha(x, y));
    true
}

/// Hide everything inside `polygon` (source pixel coordinates, any winding, at least 3 points)
/// with `style`'s method. Padding and feather do not apply: a zone is masked exactly, and any
/// pixel the outline touches counts as inside. Returns whether the polygon touched the frame.
pub fn redact_polygon(frame: &mut RgbFrame<'_>, polygon: &[(f32, f32)], style: &MaskStyle) -> bool {
    let Some(poly) = polygon::Polygon::new(polygon) else {
        return false;
    };
    let Some(area) = poly.bounds().clip_to(frame.width(), frame.height()) else {
        return false;
    };
    let mut patch = frame.copy_rect(&area);
    let side = poly.bounds().width().min(poly.bounds().height()).max(1.0);
    obscure_patch(&mut patch, &area, side, style.method);
    frame.blend_rect(&area, &patch, |x, y| if poly.touches_pixel(x, y) { 255 } else { 0 });
    true
}

/// Replace a copied patch's pixels by their blurred, pixelated or solid version; `side` is the
/// shorter side of the shape being hidden, which sizes the blur and the mosaic.
fn obscure_patch(patch: &mut [u8], area: &PixelRect, side: f32, method: Method) {
    let core_side = side;
    match method {
        Method::Gaussian { strength } => {
            let radius = blur::radius_for(strength, core_side);
            blur::box_blur_3pass(patch, area.w as usize, area.h as usize, radius);
        }
        Method::Pixelate { block } => {
            let block = pixelate::block_for(block, core_side);
            pixelate::pixelate(patch, area.w as usize, area.h as usize, block);
        }
        Method::Solid { color } => {
            for px in patch.chunks_exact_mut(3) {
                px.copy_from_slice(&color);
            }
        }
    }
}

#[cfg(test)]
mod tests;
