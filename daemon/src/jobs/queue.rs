//! The work queue the job workers share: synchronous requests first (a client is waiting on the
//! connection), then stored photo jobs in arrival order. Video jobs wait in their own line, taken
//! only by the video worker, so a ten-minute clip never holds up a photo.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex};

use bytes::Bytes;
use tokio::sync::oneshot;

use super::options::ResolvedOptions;
use super::process::{ProcessError, Processed};

/// A photo a client is waiting for on an open connection; nothing of it is stored.
pub struct InlineTask {
    pub bytes: Bytes,
    pub options: ResolvedOptions,
    pub reply: oneshot::Sender<Result<Processed, ProcessError>>,
}

pub enum Task {
    Inline(InlineTask),
    /// The id of a queued job in the store.
    Stored(String),
}

#[derive(Default)]
struct State {
    inline: VecDeque<InlineTask>,
    stored: VecDeque<String>,
    videos: VecDeque<String>,
    closed: bool,
}

#[derive(Default)]
pub struct WorkQueue {
    state: Mutex<State>,
    ready: Condvar,
}

/// The queue refused a synchronous request: too many already wait.
#[derive(Debug)]
pub struct Busy;

impl WorkQueue {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn push_stored(&self, id: String) {
        let mut s = self.lock();
        if !s.closed {
            s.stored.push_back(id);
            self.ready.notify_all();
        }
    }

    pub fn push_video(&self, id: String) {
        let mut s = self.lock();
        if !s.closed {
            s.videos.push_back(id);
            self.ready.notify_all();
        }
    }

    /// The next video job, blocking; `None` once closed.
    pub fn pop_video(&self) -> Option<String> {
        let mut s = self.lock();
        loop {
            if s.closed {
                return None;
            }
            if let Some(id) = s.videos.pop_front() {
                return Some(id);
            }
            s = self.ready.wait(s).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Queue a synchronous request unless `max_waiting` already wait.
    pub fn push_inline(&self, task: InlineTask, max_waiting: usize) -> Result<(), Busy> {
        let mut s = self.lock();
        if s.closed || s.inline.len() >= max_waiting {
            return Err(Busy);
        }
        s.inline.push_back(task);
        self.ready.notify_all();
        Ok(())
    }

    /// The next task, blocking; `None` once closed.
    pub fn pop(&self) -> Option<Task> {
        let mut s = self.lock();
        loop {
            if s.closed {
                return None;
            }
            if let Some(t) = s.inline.pop_front() {
                return Some(Task::Inline(t));
            }
            if let Some(id) = s.stored.pop_front() {
                return Some(Task::Stored(id));
            }
            s = self.ready.wait(s).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Stored jobs (photos and videos) not yet taken by a worker.
    pub fn stored_waiting(&self) -> usize {
        let s = self.lock();
        s.stored.len() + s.videos.len()
    }

    /// Wake every worker and make them stop; waiting inline requests get no reply (their
    /// clients see an error), stored jobs stay queued in the store for the next start.
    pub fn close(&self) {
        let mut s = self.lock();
        s.closed = true;
        s.inline.clear();
        self.ready.notify_all();
    }
}
