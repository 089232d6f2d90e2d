//! Mosaic: each block of the patch becomes the mean colour of its pixels.

/// Block edge in pixels: `block` when given (>= 1), else a tenth of the shape's shorter side
/// (at least 2 px), which leaves about ten blocks across a face.
pub(crate) fn block_for(block: Option<u32>, side: f32) -> usize {
    match block {
        Some(b) => b.max(1) as usize,
        None => ((side / 10.0).round() as usize).max(2),
    }
}

/// Replace each `block` x `block` tile of a packed RGB `w` x `h` patch by its mean colour.
pub(crate) fn pixelate(patch: &mut [u8], w: usize, h: usize, block: usize) {
    let block = block.max(1);
    for by in (0..h).step_by(block) {
        for bx in (0..w).step_by(block) {
            let ye = (by + block).min(h);
            let xe = (bx + block).min(w);
            let mut sum = [0u64; 3];
            for y in by..ye {
                for x in bx..xe {
                    let i = (y * w + x) * 3;
                    for c in 0..3 {
                        sum[c] += patch[i + c] as u64;
                    }
                }
            }
            let n = ((ye - by) * (xe - bx)) as u64;
            let mean = [(sum[0] + n / 2) / n, (sum[1] + n / 2) / n, (sum[2] + n / 2) / n];
            for y in by..ye {
                for x in bx..xe {
                    let i = (y * w + x) * 3;
                    for c in 0..3 {
                        patch[i + c] = mean[c] as u8;
                    }
                }
            }
        }
    }
}
