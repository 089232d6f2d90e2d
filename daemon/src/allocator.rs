//! The process's memory allocator: TCMalloc from gperftools (Debian's `libtcmalloc-minimal4`),
//! linked as a shared library, and the call that hands its free pages back to the system.
//!
//! Why not the others, measured (README "Camera rate", memory): every detection allocates tens
//! of megabytes of tensors afresh and frees them. glibc kept them fragmented in per-thread arenas
//! (peak RSS of a 720p camera, faces only, one worker: 221 MiB), mimalloc kept about five times
//! the live heap (261 MiB for a 53 MiB peak heap), jemalloc returned pages to the kernel and paid
//! for it in page faults (132 MiB, but 40 % fewer frames); TCMalloc reuses its spans across
//! sizes: 149 MiB at the same frame rate or better.

use std::alloc::{GlobalAlloc, Layout};
use std::os::raw::c_void;

#[link(name = "tcmalloc_minimal")]
extern "C" {
    fn tc_malloc(size: usize) -> *mut c_void;
    fn tc_calloc(count: usize, size: usize) -> *mut c_void;
    fn tc_realloc(ptr: *mut c_void, size: usize) -> *mut c_void;
    fn tc_memalign(align: usize, size: usize) -> *mut c_void;
    fn tc_free(ptr: *mut c_void);
    fn MallocExtension_ReleaseFreeMemory();
}

/// The alignment `tc_malloc` guarantees for a block at least this big (as malloc's on x86_64
/// and aarch64); anything stricter goes through `tc_memalign`.
const MIN_ALIGN: usize = 16;

/// Whether plain `tc_malloc`/`tc_realloc` already give `layout`'s alignment.
fn plain(layout: &Layout) -> bool {
    layout.align() <= MIN_ALIGN && layout.align() <= layout.size()
}

/// TCMalloc as Rust's global allocator (`#[global_allocator]` in `main.rs`).
pub struct TcMalloc;

// SAFETY: each method returns a block of at least the layout's size and alignment or null, and
// frees only blocks TCMalloc handed out (tc_free takes blocks from tc_memalign too).
unsafe impl GlobalAlloc for TcMalloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if plain(&layout) {
            tc_malloc(layout.size()) as *mut u8
        } else {
            tc_memalign(layout.align(), layout.size()) as *mut u8
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if plain(&layout) {
            return tc_calloc(1, layout.size()) as *mut u8;
        }
        let p = self.alloc(layout);
        if !p.is_null() {
            std::ptr::write_bytes(p, 0, layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        tc_free(ptr as *mut c_void)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new = Layout::from_size_align_unchecked(new_size, layout.align());
        if plain(&layout) && plain(&new) {
            return tc_realloc(ptr as *mut c_void, new_size) as *mut u8;
        }
        let p = self.alloc(new);
        if !p.is_null() {
            std::ptr::copy_nonoverlapping(ptr, p, layout.size().min(new_size));
            self.dealloc(ptr, layout);
        }
        p
    }
}

/// Hand the allocator's free pages back to the system (after a burst of big photos, so the
/// resident set falls back once nothing holds them).
pub fn release_free_memory() {
    // SAFETY: takes no arguments; TCMalloc releases only pages on its own free lists.
    unsafe { MallocExtension_ReleaseFreeMemory() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_have_their_alignment_and_keep_their_bytes_through_realloc() {
        let a = TcMalloc;
        for (size, align) in [(1, 1), (8, 8), (24, 16), (100, 64), (4096, 4096), (3 << 20, 128)] {
            let layout = Layout::from_size_align(size, align).unwrap();
            // SAFETY: non-zero sizes; each block is written within its size and freed once.
            unsafe {
                let p = a.alloc_zeroed(layout);
                assert!(!p.is_null() && p as usize % align == 0, "{size} bytes at {align}");
                assert!((0..size).all(|i| *p.add(i) == 0));
                for i in 0..size {
                    *p.add(i) = (i % 251) as u8;
                }
                let q = a.realloc(p, layout, size * 3);
                assert!(!q.is_null() && q as usize % align == 0);
                assert!((0..size).all(|i| *q.add(i) == (i % 251) as u8), "{size} bytes at {align} moved");
                a.dealloc(q, Layout::from_size_align(size * 3, align).unwrap());
            }
        }
        release_free_memory();
    }
}
