//! The `veil` binary: one command-line entry point over the veil crates.

/// mimalloc instead of glibc's malloc: each detection worker allocates tens of megabytes of
/// tensors per frame, and glibc kept a fragmented arena of them per thread (peak RSS grew by
/// about 200 MiB per worker at 720p); mimalloc reuses those pages without returning them to
/// the kernel between frames (which would cost a page fault per page each time).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    std::process::exit(veil::cli::run());
}
