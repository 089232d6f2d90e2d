//! Gaussian-like blur from three passes of a running-sum box filter per axis: the cost per pixel
//! is the same for any radius.

/// Box radius for a blur of `strength` (0..=1) over a shape whose shorter side is `side` px.
/// Three box passes of radius r approximate a Gaussian with sigma close to r; at strength 1 the
/// sigma is a third of the shape's shorter side, which leaves only a smooth colour blob.
pub(crate) fn radius_for(strength: f32, side: f32) -> usize {
    let s = strength.clamp(0.0, 1.0);
    ((s * side / 3.0).round() as usize).max(1)
}

/// Blur a packed RGB `w` x `h` patch in place, edges clamped (no pixel from outside the patch
/// enters it).
pub(crate) fn box_blur_3pass(patch: &mut [u8], w: usize, h: usize, radius: usize) {
    if w == 0 || h == 0 {
        return;
    }
    let mut plane: Vec<u16> = patch.iter().map(|&v| v as u16).collect();
    let mut line_in: Vec<u32> = Vec::new();
    let mut line_out: Vec<u32> = Vec::new();
    for _ in 0..3 {
        // Horizontal pass, row by row.
        for y in 0..h {
            for c in 0..3 {
                line_in.clear();
                line_in.extend((0..w).map(|x| plane[(y * w + x) * 3 + c] as u32));
                box_line(&line_in, &mut line_out, radius);
                for x in 0..w {
                    plane[(y * w + x) * 3 + c] = line_out[x] as u16;
                }
            }
        }
        // Vertical pass, column by column.
        for x in 0..w {
            for c in 0..3 {
                line_in.clear();
                line_in.extend((0..h).map(|y| plane[(y * w + x) * 3 + c] as u32));
                box_line(&line_in, &mut line_out, radius);
                for y in 0..h {
                    plane[(y * w + x) * 3 + c] = line_out[y] as u16;
                }
            }
        }
    }
    for (dst, src) in patch.iter_mut().zip(plane) {
        *dst = src.min(255) as u8;
    }
}

/// Moving average of `src` with window `2r+1`, samples beyond either end clamped to the end value.
fn box_line(src: &[u32], dst: &mut Vec<u32>, r: usize) {
    let n = src.len();
    dst.clear();
    dst.resize(n, 0);
    let win = (2 * r + 1) as u32;
    let at = |i: isize| -> u32 { src[i.clamp(0, n as isize - 1) as usize] };
    let mut sum: u32 = 0;
    for i in -(r as isize)..=(r as isize) {
        sum += at(i);
    }
    for (i, out) in dst.iter_mut().enumerate() {
        *out = (sum + win / 2) / win;
        let i = i as isize;
        sum += at(i + r as isize + 1);
        sum -= at(i - r as isize);
    }
}
