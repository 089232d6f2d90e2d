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
        // Rows (h lines of w samples, stride 3), then columns (w lines of h samples, stride 3w).
        blur_lines(&mut plane, h, w, w * 3, 3, radius, &mut line_in, &mut line_out);
        blur_lines(&mut plane, w, h, 3, w * 3, radius, &mut line_in, &mut line_out);
    }
    for (dst, src) in patch.iter_mut().zip(plane) {
        *dst = src.min(255) as u8;
    }
}

/// Box-filter `lines` lines of `len` samples per colour channel: line `i` starts at
/// `i * line_step` and its samples are `sample_step` apart.
#[allow(clippy::too_many_arguments)]
fn blur_lines(
    plane: &mut [u16],
    lines: usize,
    len: usize,
    line_step: usize,
    sample_step: usize,
    radius: usize,
    line_in: &mut Vec<u32>,
    line_out: &mut Vec<u32>,
) {
    for i in 0..lines {
        for c in 0..3 {
            let base = i * line_step + c;
            line_in.clear();
            line_in.extend((0..len).map(|k| plane[base + k * sample_step] as u32));
            box_line(line_in, line_out, radius);
            for (k, &v) in line_out.iter().enumerate() {
                plane[base + k * sample_step] = v as u16;
            }
        }
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
