//! The bounded queue between capture and detection. Live sources drop the *oldest* waiting
//! frame when it is full (latency stays bounded; drops are counted); file replays block instead,
//! so every recorded frame is processed. Each frame taken out gets the next ticket (0, 1, 2, ...
//! with no gaps), the order in which the detection workers' results are put back together.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use veil_camera::Frame;

/// A captured frame and when it entered the pipeline.
pub struct Queued {
    pub frame: Frame,
    pub captured: Instant,
}

struct State {
    items: VecDeque<Queued>,
    closed: bool,
    /// Frames taken out so far: the next frame's ticket.
    taken: u64,
}

pub struct FrameQueue {
    capacity: usize,
    state: Mutex<State>,
    changed: Condvar,
}

impl FrameQueue {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            state: Mutex::new(State { items: VecDeque::new(), closed: false, taken: 0 }),
            changed: Condvar::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Add a frame; if full, drop the oldest waiting one and return it (to be counted). Once
    /// closed, the frame itself is handed back as `Err`.
    pub fn push_dropping_oldest(&self, item: Queued) -> Result<Option<Queued>, Queued> {
        let mut s = self.lock();
        if s.closed {
            return Err(item);
        }
        let dropped = if s.items.len() >= self.capacity { s.items.pop_front() } else { None };
        s.items.push_back(item);
        self.changed.notify_all();
        Ok(dropped)
    }

    /// Add a frame, waiting while the queue is full. Returns the frame back if the queue closed.
    pub fn push_blocking(&self, item: Queued) -> Result<(), Queued> {
        let mut s = self.lock();
        while s.items.len() >= self.capacity && !s.closed {
            s = self.changed.wait(s).unwrap_or_else(|p| p.into_inner());
        }
        if s.closed {
            return Err(item);
        }
        s.items.push_back(item);
        self.changed.notify_all();
        Ok(())
    }

    /// The next frame; `None` once the queue is closed and empty. Waits at most `timeout`
    /// (then `Err(())`, so the caller can check for shutdown).
    pub fn pop(&self, timeout: Duration) -> Result<Option<Queued>, ()> {
        self.pop_ticketed(timeout).map(|o| o.map(|(_, item)| item))
    }

    /// [`FrameQueue::pop`] with the frame's ticket: frames are ticketed in the order they leave
    /// the queue, which is capture order.
    pub fn pop_ticketed(&self, timeout: Duration) -> Result<Option<(u64, Queued)>, ()> {
        let deadline = Instant::now() + timeout;
        let mut s = self.lock();
        loop {
            if let Some(item) = s.items.pop_front() {
                let ticket = s.taken;
                s.taken += 1;
                self.changed.notify_all();
                return Ok(Some((ticket, item)));
            }
            if s.closed {
                return Ok(None);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(());
            }
            s = self.changed.wait_timeout(s, deadline - now).unwrap_or_else(|p| p.into_inner()).0;
        }
    }

    /// No more frames will come; waiting consumers drain what is left.
    pub fn close(&self) {
        self.lock().closed = true;
        self.changed.notify_all();
    }

    /// Discard everything waiting (shutdown); returns how many frames were discarded.
    pub fn close_and_clear(&self) -> usize {
        let mut s = self.lock();
        s.closed = true;
        let n = s.items.len();
        s.items.clear();
        self.changed.notify_all();
        n
    }

    pub fn depth(&self) -> usize {
        self.lock().items.len()
    }

    /// Tickets handed out so far.
    pub fn taken(&self) -> u64 {
        self.lock().taken
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::SystemTime;

    use super::*;

    fn item(sequence: u64) -> Queued {
        Queued {
            frame: Frame { rgb: vec![0; 3], width: 1, height: 1, sequence, timestamp: SystemTime::now() },
            captured: Instant::now(),
        }
    }

    #[test]
    fn full_queue_drops_the_oldest_frame() {
        let q = FrameQueue::new(2);
        assert!(q.push_dropping_oldest(item(0)).ok().unwrap().is_none());
        assert!(q.push_dropping_oldest(item(1)).ok().unwrap().is_none());
        assert_eq!(q.push_dropping_oldest(item(2)).ok().unwrap().unwrap().frame.sequence, 0);
        assert_eq!(q.depth(), 2);
        assert_eq!(q.pop(Duration::ZERO).unwrap().unwrap().frame.sequence, 1);
        q.close();
        assert_eq!(q.pop(Duration::ZERO).unwrap().unwrap().frame.sequence, 2);
        assert!(q.pop(Duration::ZERO).unwrap().is_none());
        assert!(q.push_dropping_oldest(item(3)).is_err(), "a closed queue refuses frames");
    }

    #[test]
    fn tickets_follow_the_order_frames_leave_in_without_gaps() {
        let q = FrameQueue::new(2);
        for i in 0..3 {
            let _ = q.push_dropping_oldest(item(i)); // frame 0 is dropped: no ticket
        }
        let (t1, f1) = q.pop_ticketed(Duration::ZERO).unwrap().unwrap();
        let (t2, f2) = q.pop_ticketed(Duration::ZERO).unwrap().unwrap();
        assert_eq!((t1, f1.frame.sequence, t2, f2.frame.sequence), (0, 1, 1, 2));
        assert_eq!(q.taken(), 2);
    }

    #[test]
    fn blocking_push_waits_for_room_and_pop_times_out() {
        let q = Arc::new(FrameQueue::new(1));
        q.push_blocking(item(0)).unwrap_or_else(|_| panic!("open"));
        let q2 = q.clone();
        let producer = std::thread::spawn(move || q2.push_blocking(item(1)).is_ok());
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(q.depth(), 1, "the producer must wait");
        assert_eq!(q.pop(Duration::from_secs(1)).unwrap().unwrap().frame.sequence, 0);
        assert!(producer.join().unwrap());
        assert_eq!(q.pop(Duration::from_secs(1)).unwrap().unwrap().frame.sequence, 1);
        assert!(q.pop(Duration::from_millis(10)).is_err());
        assert_eq!(q.close_and_clear(), 0);
        assert!(q.push_blocking(item(2)).is_err());
    }
}
