//! Frames from image files: a directory (sorted by name), a glob or a list, optionally looped,
//! so a rig can replay a recorded run and tests can run without a camera.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::frame::{Frame, SourceError};
use crate::FrameSource;

const EXTENSIONS: &[&str] = &["jpg", "jpeg", "png", "webp"];

pub struct ImageFiles {
    label: String,
    files: Vec<PathBuf>,
    next: usize,
    looped: bool,
    sequence: u64,
}

impl ImageFiles {
    /// Every image directly inside `dir`, sorted by file name.
    pub fn from_dir(dir: &Path, looped: bool) -> Result<Self, SourceError> {
        let io = |e: std::io::Error| SourceError::Io { path: dir.display().to_string(), reason: e.to_string() };
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(io)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.is_file()
                    && p.extension()
                        .and_then(|e| e.to_str())
                        .is_some_and(|e| EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
            })
            .collect();
        files.sort();
        Self::from_list(files, dir.display().to_string(), looped)
    }

    /// Images matching a glob pattern (`/data/run1/*.jpg`), sorted by path.
    pub fn from_glob(pattern: &str, looped: bool) -> Result<Self, SourceError> {
        let bad = |reason: String| SourceError::Io { path: pattern.to_string(), reason };
        let mut files: Vec<PathBuf> = glob::glob(pattern)
            .map_err(|e| bad(e.to_string()))?
            .filter_map(|p| p.ok())
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        Self::from_list(files, pattern.to_string(), looped)
    }

    /// These files, in this order.
    pub fn from_list(files: Vec<PathBuf>, label: String, looped: bool) -> Result<Self, SourceError> {
        if files.is_empty() {
            return Err(SourceError::Empty(label));
        }
        Ok(Self { label, files, next: 0, looped, sequence: 0 })
    }
}

impl FrameSource for ImageFiles {
    fn describe(&self) -> String {
        format!("files:{} ({} images{})", self.label, self.files.len(), if self.looped { ", looped" } else { "" })
    }

    fn next_frame(&mut self) -> Result<Option<Frame>, SourceError> {
        if self.next == self.files.len() {
            if !self.looped {
                return Ok(None);
            }
            self.next = 0;
        }
        let path = &self.files[self.next];
        self.next += 1;
        let img = image::open(path)
            .map_err(|e| SourceError::Decode { what: path.display().to_string(), reason: e.to_string() })?
            .into_rgb8();
        let (width, height) = img.dimensions();
        let frame = Frame { rgb: img.into_raw(), width, height, sequence: self.sequence, timestamp: SystemTime::now() };
        self.sequence += 1;
        Ok(Some(frame))
    }
}
