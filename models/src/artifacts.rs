//! Model files: the manifest (what each file is, where it came from, its sha256) and the store
//! that finds a file on disk, checks its hash and hands out its bytes.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::error::DetectError;
use crate::precision::Precision;

/// The manifest written by `models/tool/make_models.py`, compiled into the binary.
pub const MANIFEST_JSON: &str = include_str!("../artifacts/manifest.json");

#[derive(Debug, Clone, Deserialize)]
struct Manifest {
    artifacts: Vec<ModelArtifact>,
}

/// One model file named by the manifest.
#[derive(Debug, Clone, Deserialize)]
pub struct ModelArtifact {
    /// Backend name, e.g. `centerface`.
    pub backend: String,
    /// Version of the model (upstream package version plus our conversion revision).
    pub version: String,
    pub precision: String,
    /// File name, looked up in the store's directories.
    pub file: String,
    pub sha256: String,
    /// Where the source tree puts it and the make target that does, e.g. `models/cache (make persons)`.
    #[serde(default)]
    pub location: String,
}

/// Where model files are looked up, in order.
#[derive(Debug, Clone)]
pub struct ModelStore {
    dirs: Vec<PathBuf>,
    artifacts: Vec<ModelArtifact>,
}

impl Default for ModelStore {
    fn default() -> Self {
        Self::new(Vec::new())
    }
}

impl ModelStore {
    /// A store searching `extra` first, then `$VEIL_MODEL_DIR`, `/usr/share/veil/models`, the
    /// directory beside the executable, and the source tree's `models/artifacts` and
    /// `models/cache` (so a checkout runs without installing).
    pub fn new(extra: Vec<PathBuf>) -> Self {
        let mut dirs = extra;
        if let Some(d) = std::env::var_os("VEIL_MODEL_DIR") {
            dirs.push(PathBuf::from(d));
        }
        dirs.push(PathBuf::from("/usr/share/veil/models"));
        if let Some(exe_dir) = std::env::current_exe().ok().and_then(|p| p.parent().map(Path::to_path_buf)) {
            dirs.push(exe_dir.join("models"));
        }
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        dirs.push(root.join("artifacts"));
        dirs.push(root.join("cache"));
        let manifest: Manifest = serde_json::from_str(MANIFEST_JSON).expect("embedded manifest is valid JSON");
        Self { dirs, artifacts: manifest.artifacts }
    }

    pub fn artifacts(&self) -> &[ModelArtifact] {
        &self.artifacts
    }

    /// The manifest entry for a backend at a concrete precision.
    pub fn artifact(&self, backend: &str, precision: Precision) -> Option<&ModelArtifact> {
        self.artifacts.iter().find(|a| a.backend == backend && a.precision == precision.as_str())
    }

    /// Path of the first existing copy of `file`.
    pub fn locate(&self, file: &str) -> Option<PathBuf> {
        self.dirs.iter().map(|d| d.join(file)).find(|p| p.is_file())
    }

    /// Check an artifact's file against the manifest's sha256 without holding it: read through a
    /// small buffer, for a backend that keeps no bytes until its first call.
    pub fn check(&self, artifact: &ModelArtifact) -> Result<(), DetectError> {
        use std::io::Read;
        let path = self.path_of(artifact)?;
        let unavailable = |e: std::io::Error| DetectError::ModelUnavailable { path: path.display().to_string(), reason: e.to_string() };
        let mut file = std::fs::File::open(&path).map_err(unavailable)?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            match file.read(&mut buf).map_err(unavailable)? {
                0 => break,
                n => hasher.update(&buf[..n]),
            }
        }
        let actual = hex::encode(hasher.finalize());
        if actual != artifact.sha256 {
            return Err(DetectError::ChecksumMismatch { name: path.display().to_string(), expected: artifact.sha256.clone(), actual });
        }
        Ok(())
    }

    fn path_of(&self, artifact: &ModelArtifact) -> Result<PathBuf, DetectError> {
        self.locate(&artifact.file).ok_or_else(|| DetectError::ModelUnavailable {
            path: artifact.file.clone(),
            reason: format!(
                "not found in {} (in a checkout it goes to {}; on a board, install it into /usr/share/veil/models)",
                self.dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", "),
                if artifact.location.is_empty() { "models/cache (make models)" } else { &artifact.location },
            ),
        })
    }

    /// Read an artifact's bytes, refusing a file whose sha256 differs from the manifest.
    pub fn read(&self, artifact: &ModelArtifact) -> Result<Vec<u8>, DetectError> {
        let path = self.path_of(artifact)?;
        let bytes = std::fs::read(&path)
            .map_err(|e| DetectError::ModelUnavailable { path: path.display().to_string(), reason: e.to_string() })?;
        let actual = sha256_hex(&bytes);
        if actual != artifact.sha256 {
            return Err(DetectError::ChecksumMismatch {
                name: path.display().to_string(),
                expected: artifact.sha256.clone(),
                actual,
            });
        }
        Ok(bytes)
    }
}

/// Lower-case hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}
