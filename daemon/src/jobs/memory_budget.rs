//! The memory budget of photos in flight (`api.max_decode_megabytes`): a photo reserves its
//! working set, estimated from the header's dimensions, before a byte of it is decoded, and
//! gives it back when its processing ends (even one abandoned past its deadline gives it back
//! only when it really ends). Work beyond the budget waits; a photo bigger than the whole budget
//! is refused.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Bytes a photo of one pixel needs while it is processed: its RGB8 copy (3), the decoder's
/// widest transient buffer (4: an interlaced PNG or a WebP with alpha, at 8 bits), and the
/// encoded result and the masking's scratch (1).
pub const BYTES_PER_PIXEL: u64 = 8;
/// And per photo, whatever its size: the detection inputs (tiles of at most 1280x1280 and the
/// network's activations), the upload itself and the encoder's buffers.
pub const BYTES_PER_PHOTO: u64 = 96 << 20;

/// The working set of a `width` x `height` photo, in bytes.
pub fn working_set(width: u32, height: u32) -> u64 {
    (width as u64 * height as u64).saturating_mul(BYTES_PER_PIXEL).saturating_add(BYTES_PER_PHOTO)
}

/// Why a photo could not have its memory.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BudgetError {
    #[error("this photo needs about {needed_mb} MB to process; the device's memory budget for photos is {limit_mb} MB (api.max_decode_megabytes)")]
    TooBig { needed_mb: u64, limit_mb: u64 },
    #[error("the memory budget for photos ({limit_mb} MB) is in use by other photos; try again shortly")]
    Busy { limit_mb: u64 },
}

pub struct MemoryBudget {
    limit: u64,
    used: Mutex<u64>,
    freed: Condvar,
    /// Bytes released since the allocator was last asked to return free memory.
    released: AtomicU64,
}

impl std::fmt::Debug for MemoryBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryBudget").field("limit", &self.limit).field("in_use", &self.in_use()).finish()
    }
}

/// Memory held for one photo; given back on drop.
pub struct Reservation {
    budget: Arc<MemoryBudget>,
    bytes: u64,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let idle = {
            let mut used = self.budget.used.lock().unwrap_or_else(|p| p.into_inner());
            *used = used.saturating_sub(self.bytes);
            self.budget.freed.notify_all();
            *used == 0
        };
        let released = self.budget.released.fetch_add(self.bytes, Ordering::Relaxed) + self.bytes;
        if idle && released >= TRIM_AFTER_BYTES {
            self.budget.released.store(0, Ordering::Relaxed);
            // A moment later and again after a while, so that what requests free after their
            // photo (the upload, the encoded answer, on a loaded machine seconds later) goes
            // back too; stopped as soon as work starts again.
            let budget = self.budget.clone();
            let spawned = std::thread::Builder::new().name("veil-trim".into()).spawn(move || {
                for delay in TRIM_DELAYS {
                    std::thread::sleep(delay);
                    if budget.in_use() != 0 {
                        return;
                    }
                    return_free_memory();
                }
            });
            if spawned.is_err() {
                return_free_memory();
            }
        }
    }
}

/// When no photo is in flight and at least this much was released since the last time, free
/// heap pages go back to the system.
const TRIM_AFTER_BYTES: u64 = 256 << 20;
const TRIM_DELAYS: [Duration; 3] = [Duration::from_millis(500), Duration::from_millis(1500), Duration::from_secs(3)];

/// Give the allocator's free pages back to the system: allocators keep freed memory for reuse,
/// so after a burst of big photos the daemon's resident set stayed at its peak (about 520 MB
/// after bursts that started from 220 MB) although nothing held it.
fn return_free_memory() {
    crate::allocator::release_free_memory();
}

impl MemoryBudget {
    pub fn new(limit_bytes: u64) -> Arc<Self> {
        Arc::new(Self { limit: limit_bytes.max(1), used: Mutex::new(0), freed: Condvar::new(), released: AtomicU64::new(0) })
    }

    pub fn limit(&self) -> u64 {
        self.limit
    }

    pub fn in_use(&self) -> u64 {
        *self.used.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reserve `bytes`, waiting at most `wait` for other photos to give memory back.
    pub fn reserve(self: &Arc<Self>, bytes: u64, wait: Duration) -> Result<Reservation, BudgetError> {
        let mb = |b: u64| b.div_ceil(1 << 20);
        if bytes > self.limit {
            return Err(BudgetError::TooBig { needed_mb: mb(bytes), limit_mb: mb(self.limit) });
        }
        let deadline = Instant::now() + wait;
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        while *used + bytes > self.limit {
            let now = Instant::now();
            if now >= deadline {
                return Err(BudgetError::Busy { limit_mb: mb(self.limit) });
            }
            used = self.freed.wait_timeout(used, deadline - now).unwrap_or_else(|p| p.into_inner()).0;
        }
        *used += bytes;
        Ok(Reservation { budget: self.clone(), bytes })
    }
}

/// The default budget: a quarter of the machine's memory (`MemTotal`), or 1 GiB when unknown.
pub fn default_limit() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map(|kb| kb * 1024 / 4)
        .unwrap_or(1 << 30)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_wait_for_room_and_the_oversized_are_refused() {
        let b = MemoryBudget::new(100);
        let first = b.reserve(60, Duration::ZERO).unwrap();
        assert_eq!(b.in_use(), 60);
        assert_eq!(b.reserve(50, Duration::from_millis(20)).err(), Some(BudgetError::Busy { limit_mb: 1 }));
        assert!(matches!(b.reserve(101, Duration::ZERO), Err(BudgetError::TooBig { .. })));
        // Freed from another thread while waiting.
        let b2 = b.clone();
        let waiter = std::thread::spawn(move || b2.reserve(50, Duration::from_secs(5)).map(|r| r.bytes));
        std::thread::sleep(Duration::from_millis(50));
        drop(first);
        assert_eq!(waiter.join().unwrap(), Ok(50));
        assert_eq!(b.in_use(), 0, "the waiter's reservation was dropped with its thread's result");
        assert_eq!(working_set(1000, 1000), 8_000_000 + (96 << 20));
    }
}
