//! The one-shot subcommands of `veil`.

pub mod admin;
pub mod bench;
pub mod bench_clip;
pub mod bench_flicker;
pub mod bench_http;
pub mod bench_pipeline;
pub mod bench_plates;
pub mod bench_video;
pub mod config;
pub mod detect;
pub mod eval;
pub mod keys;
pub mod models;
pub mod redact;
pub mod serve;

use std::path::PathBuf;
use std::sync::Arc;

use veil_models::{Detector, ModelStore, Registry};

use crate::cli::DetectorArgs;

/// The cores this process may use.
pub fn cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// The database of the state directory a one-shot command names: `--state-dir`, else the one of
/// `--config` (or of the embedded defaults).
pub fn open_store(config: &Option<PathBuf>, state_dir: &Option<PathBuf>) -> anyhow::Result<crate::store::Store> {
    let mut config = match config {
        Some(path) => crate::config::Config::load(path)?,
        None => crate::config::Config::default(),
    };
    if let Some(dir) = state_dir {
        config.server.state_dir = Some(dir.clone());
    }
    Ok(crate::store::Store::open(&config.state_dir())?)
}

/// The registry over the default model directories plus `extra`.
pub fn registry(extra: &Option<PathBuf>) -> Registry {
    Registry::new(ModelStore::new(extra.iter().cloned().collect()))
}

/// Build the detector the flags ask for, with `threads` inference threads.
pub fn build_detector(args: &DetectorArgs, threads: usize) -> anyhow::Result<Arc<dyn Detector>> {
    args.params().validate()?;
    Ok(registry(&args.model_dir).create(&args.backend, args.precision, threads)?)
}

/// Write `bytes` to `path` atomically and durably: a temporary file in the same directory,
/// fsynced, then a rename and an fsync of the directory, so a reader (or a crash) never sees
/// half a file.
pub fn write_atomic(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("out");
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        // The rename itself must reach the disk too, or a power cut can undo it.
        #[cfg(unix)]
        std::fs::File::open(dir)?.sync_all()?;
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
