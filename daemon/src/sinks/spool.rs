//! Redacted frames as JPEG files in a spool directory, written atomically (a temporary file in
//! `.partial/`, fsync, rename: a reader or a crash never sees half a file) and rotated by count,
//! total size and age, oldest first. Writing happens on its own thread behind a short queue.

use std::collections::VecDeque;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, SystemTime};

use super::writer::{Failures, WriterThread};
use super::{Sink, SinkError};
use crate::pipeline::output::RedactedFrame;

#[derive(Debug, Clone)]
pub struct SpoolLimits {
    pub max_files: usize,
    pub max_bytes: u64,
    /// `None`: no age limit.
    pub max_age: Option<Duration>,
    pub fsync: bool,
}

struct Entry {
    path: PathBuf,
    bytes: u64,
    modified: SystemTime,
}

/// The directory and its rotation bookkeeping (used by the writer thread; public for tests).
/// The recording sink keeps its video segments in one too.
pub struct Spool {
    dir: PathBuf,
    partial: PathBuf,
    limits: SpoolLimits,
    entries: VecDeque<Entry>,
    total_bytes: u64,
}

impl Spool {
    /// Open (create) the directory, remove leftovers of interrupted writes and index what is there.
    pub fn open(dir: &Path, limits: SpoolLimits) -> std::io::Result<Self> {
        Self::open_with(dir, limits, "jpg", |leftover| {
            let _ = std::fs::remove_file(leftover);
        })
    }

    /// Open a directory of `*.extension` files; `leftover` is called on each file an interrupted
    /// write left in `.partial/` (before the directory is indexed).
    pub fn open_with(
        dir: &Path,
        limits: SpoolLimits,
        extension: &'static str,
        mut leftover: impl FnMut(&Path),
    ) -> std::io::Result<Self> {
        let partial = dir.join(".partial");
        std::fs::create_dir_all(&partial)?;
        for entry in std::fs::read_dir(&partial)?.flatten() {
            leftover(&entry.path());
        }
        let mut entries: Vec<Entry> = std::fs::read_dir(dir)?
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == extension))
            .filter_map(|e| {
                let meta = e.metadata().ok()?;
                meta.is_file().then(|| Entry {
                    path: e.path(),
                    bytes: meta.len(),
                    modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                })
            })
            .collect();
        // Names start with the capture time, so name order is age order.
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        let total_bytes = entries.iter().map(|e| e.bytes).sum();
        let mut spool =
            Self { dir: dir.to_path_buf(), partial, limits, entries: entries.into(), total_bytes };
        spool.rotate();
        Ok(spool)
    }

    pub fn file_name(timestamp_ms: u64, frame_id: u64) -> String {
        format!("{timestamp_ms:013}-{frame_id:010}.jpg")
    }

    /// Write one file atomically, then rotate.
    pub fn write(&mut self, name: &str, bytes: &[u8]) -> std::io::Result<PathBuf> {
        let tmp = self.partial.join(name);
        let target = self.dir.join(name);
        let result = (|| {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(bytes)?;
            if self.limits.fsync {
                f.sync_all()?;
            }
            std::fs::rename(&tmp, &target)
        })();
        if let Err(e) = result {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        self.entries.push_back(Entry { path: target.clone(), bytes: bytes.len() as u64, modified: SystemTime::now() });
        self.total_bytes += bytes.len() as u64;
        self.rotate();
        Ok(target)
    }

    /// Where files are written before they are complete.
    pub fn partial_dir(&self) -> &Path {
        &self.partial
    }

    /// Move a complete file from `.partial/` into the directory (after fsync), index it, rotate.
    pub fn adopt(&mut self, written: &Path) -> std::io::Result<PathBuf> {
        let name = written.file_name().ok_or_else(|| std::io::Error::other("no file name"))?;
        let target = self.dir.join(name);
        if self.limits.fsync {
            std::fs::File::open(written)?.sync_all()?;
        }
        std::fs::rename(written, &target)?;
        if self.limits.fsync {
            if let Ok(d) = std::fs::File::open(&self.dir) {
                let _ = d.sync_all();
            }
        }
        let bytes = std::fs::metadata(&target).map(|m| m.len()).unwrap_or(0);
        self.entries.push_back(Entry { path: target.clone(), bytes, modified: SystemTime::now() });
        self.total_bytes += bytes;
        self.rotate();
        Ok(target)
    }

    /// Delete the oldest files until every limit holds.
    pub fn rotate(&mut self) {
        let now = SystemTime::now();
        while let Some(oldest) = self.entries.front() {
            let too_old = self
                .limits
                .max_age
                .is_some_and(|max| now.duration_since(oldest.modified).unwrap_or_default() > max);
            let over = self.entries.len() > self.limits.max_files || self.total_bytes > self.limits.max_bytes;
            if !(too_old || over) {
                break;
            }
            let oldest = self.entries.pop_front().expect("front exists");
            self.total_bytes -= oldest.bytes;
            if let Err(e) = std::fs::remove_file(&oldest.path) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!("spool: cannot delete {}: {e}", oldest.path.display());
                }
            }
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn total_bytes(&self) -> u64 {
        self.total_bytes
    }
}

/// Sink side: hands frames to the writer thread; a full backlog skips the frame (counted).
pub struct SpoolSink(WriterThread);

impl SpoolSink {
    pub fn start(dir: &Path, limits: SpoolLimits) -> std::io::Result<Self> {
        let spool = Spool::open(dir, limits)?;
        WriterThread::start("spool", "veil-spool", 16, move |rx, failures| writer_loop(spool, rx, failures)).map(Self)
    }
}

fn writer_loop(mut spool: Spool, rx: Receiver<RedactedFrame>, failures: Failures) {
    loop {
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(frame) => {
                let ev = frame.event();
                let name = Spool::file_name(ev.timestamp_ms, ev.frame_id);
                if let Err(e) = spool.write(&name, frame.jpeg()) {
                    failures.add();
                    tracing::error!("spool: cannot write {name}: {e}");
                }
            }
            Err(RecvTimeoutError::Timeout) => spool.rotate(), // age limit while idle
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
}

impl Sink for SpoolSink {
    fn name(&self) -> &'static str {
        "spool"
    }

    fn publish(&mut self, frame: &RedactedFrame) -> Result<(), SinkError> {
        self.0.publish(frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max_files: usize, max_bytes: u64) -> SpoolLimits {
        SpoolLimits { max_files, max_bytes, max_age: None, fsync: false }
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn rotates_by_count_and_bytes_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(dir.path(), limits(3, 1_000)).unwrap();
        for i in 0..5u64 {
            spool.write(&Spool::file_name(1000 + i, i), &[7u8; 100]).unwrap();
        }
        assert_eq!(names(dir.path()), vec![Spool::file_name(1002, 2), Spool::file_name(1003, 3), Spool::file_name(1004, 4)]);
        let mut spool = Spool::open(dir.path(), limits(10, 250)).unwrap();
        assert_eq!(spool.len(), 2, "reopening indexes the files and applies the new limits");
        spool.write(&Spool::file_name(1005, 5), &[7u8; 200]).unwrap();
        assert_eq!(names(dir.path()), vec![Spool::file_name(1005, 5)]);
        assert_eq!(spool.total_bytes(), 200);
    }

    #[test]
    fn rotates_by_age_and_clears_partial_leftovers() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(".partial")).unwrap();
        std::fs::write(dir.path().join(".partial/0000000000001-0000000001.jpg"), b"half").unwrap();
        std::fs::write(dir.path().join("0000000000001-0000000000.jpg"), b"old").unwrap();
        let old = SystemTime::now() - Duration::from_secs(7200);
        std::fs::File::options()
            .write(true)
            .open(dir.path().join("0000000000001-0000000000.jpg"))
            .unwrap()
            .set_modified(old)
            .unwrap();
        let spool = Spool::open(
            dir.path(),
            SpoolLimits { max_age: Some(Duration::from_secs(3600)), ..limits(10, 1 << 20) },
        )
        .unwrap();
        assert!(spool.is_empty());
        assert!(names(dir.path()).is_empty());
        assert_eq!(std::fs::read_dir(dir.path().join(".partial")).unwrap().count(), 0);
    }
}
