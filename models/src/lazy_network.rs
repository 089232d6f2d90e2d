//! A network built from its model file on first use: the backends a daemon may offer but seldom
//! run (`text`, `persons`) check their file at load and read it only when a call asks for them.

use std::sync::OnceLock;

use crate::error::DetectError;
use crate::registry::ModelFile;

/// A network of type `T`, built once from the model file by the first [`Self::get`].
pub struct LazyNetwork<T> {
    file: ModelFile,
    threads: usize,
    built: OnceLock<Result<T, String>>,
}

impl<T> LazyNetwork<T> {
    /// Checks the file now (a missing or altered file fails the backend at load, not at its first
    /// call) and keeps none of its bytes.
    pub fn new(file: &ModelFile, threads: usize) -> Result<Self, DetectError> {
        file.check()?;
        Ok(Self { file: file.clone(), threads, built: OnceLock::new() })
    }

    /// The network, built by `build(bytes, threads)` on the first call (the file read and checked
    /// again; the bytes dropped once built); a build that failed fails every call with its
    /// reason, naming `what`.
    pub fn get(&self, what: &str, build: impl FnOnce(&[u8], usize) -> Result<T, DetectError>) -> Result<&T, DetectError> {
        self.built
            .get_or_init(|| {
                let bytes = self.file.bytes().map_err(|e| e.to_string())?;
                build(&bytes, self.threads).map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(|e| DetectError::Inference(format!("{what} could not be built: {e}")))
    }
}
