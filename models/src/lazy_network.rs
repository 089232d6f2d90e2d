//! A network built from its model file on first use: the backends a daemon may offer but seldom
//! run (`text`, `persons`) hold only the file's shared bytes until a call asks for them.

use std::sync::{Arc, OnceLock};

use crate::error::DetectError;

/// A network of type `T`, built once from the model file's bytes by the first [`Self::get`].
pub struct LazyNetwork<T> {
    /// The model file (its sha256 checked when it was read), until the network is built.
    bytes: Arc<[u8]>,
    threads: usize,
    built: OnceLock<Result<T, String>>,
}

impl<T> LazyNetwork<T> {
    pub fn new(bytes: &Arc<[u8]>, threads: usize) -> Self {
        Self { bytes: bytes.clone(), threads, built: OnceLock::new() }
    }

    /// The network, built by `build(bytes, threads)` on the first call; a build that failed
    /// fails every call with its reason, naming `what`.
    pub fn get(&self, what: &str, build: impl FnOnce(&[u8], usize) -> Result<T, DetectError>) -> Result<&T, DetectError> {
        self.built
            .get_or_init(|| build(&self.bytes, self.threads).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| DetectError::Inference(format!("{what} could not be built: {e}")))
    }
}
