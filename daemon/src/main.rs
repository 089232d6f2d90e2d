//! The `veil` binary: one command-line entry point over the veil crates.

fn main() {
    std::process::exit(veil::cli::run());
}
