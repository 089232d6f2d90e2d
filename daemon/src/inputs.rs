//! Expanding command-line inputs (files and directories, recursively) into image and video
//! files, and mapping each to its output path.

use std::path::{Path, PathBuf};

/// Extensions treated as images when walking a directory (explicitly named files are always tried).
const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png", "webp"];

/// One input file and the path relative to the output root it maps to (without extension change).
#[derive(Debug, Clone, PartialEq)]
pub struct InputFile {
    pub path: PathBuf,
    pub relative: PathBuf,
}

fn is_image(p: &Path) -> bool {
    p.extension().and_then(|e| e.to_str()).is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
        || crate::video::is_video(p)
}

/// Expand `args`: files as given (relative path = file name), directories walked recursively
/// in sorted order (relative path below the directory). Returns the files and the arguments that
/// do not exist.
pub fn expand(args: &[PathBuf]) -> (Vec<InputFile>, Vec<PathBuf>) {
    let mut files = Vec::new();
    let mut missing = Vec::new();
    for arg in args {
        if arg.is_dir() {
            let walker = walkdir::WalkDir::new(arg).follow_links(false).sort_by_file_name();
            for entry in walker.into_iter().filter_map(Result::ok) {
                let p = entry.path();
                if entry.file_type().is_file() && is_image(p) {
                    let relative = p.strip_prefix(arg).unwrap_or(p).to_path_buf();
                    files.push(InputFile { path: p.to_path_buf(), relative });
                }
            }
        } else if arg.exists() {
            let name = arg.file_name().map(PathBuf::from).unwrap_or_else(|| arg.clone());
            files.push(InputFile { path: arg.clone(), relative: name });
        } else {
            missing.push(arg.clone());
        }
    }
    (files, missing)
}
