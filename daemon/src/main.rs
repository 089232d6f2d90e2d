//! The `veil` binary: one command-line entry point over the veil crates.

/// TCMalloc (gperftools) as the allocator: why, and what the others cost, in `allocator.rs`.
#[global_allocator]
static ALLOCATOR: veil::allocator::TcMalloc = veil::allocator::TcMalloc;

fn main() {
    std::process::exit(veil::cli::run());
}
