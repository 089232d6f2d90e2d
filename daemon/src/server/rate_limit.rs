//! Per-key request limits: a fixed one-minute window kept in memory, and a UTC-day count kept in
//! SQLite (so a restart does not hand out a fresh day).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::store::{now_s, Store, StoreError};

/// The `X-RateLimit-*` values of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateInfo {
    pub limit: u32,
    pub remaining: u32,
    /// When the binding window resets, Unix seconds.
    pub reset: i64,
}

/// The outcome of counting one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateDecision {
    Allowed(Option<RateInfo>),
    /// Over a limit; retry after `RateInfo::reset`.
    Limited(RateInfo),
}

pub struct RateLimiter {
    per_minute: u32,
    per_day: u32,
    store: Arc<Store>,
    minutes: Mutex<HashMap<i64, (i64, u32)>>,
}

impl RateLimiter {
    pub fn new(store: Arc<Store>, per_minute: u32, per_day: u32) -> Self {
        Self { per_minute, per_day, store, minutes: Mutex::new(HashMap::new()) }
    }

    /// Count a request of `key_id` now (blocking: it writes the day's count).
    pub fn check(&self, key_id: i64) -> Result<RateDecision, StoreError> {
        self.check_at(key_id, now_s())
    }

    fn check_at(&self, key_id: i64, now: i64) -> Result<RateDecision, StoreError> {
        let minute = now.div_euclid(60);
        let day = now.div_euclid(86_400);
        let minute_reset = (minute + 1) * 60;
        let day_reset = (day + 1) * 86_400;
        let minute_info = if self.per_minute > 0 {
            let mut windows = self.minutes.lock().unwrap_or_else(|p| p.into_inner());
            let entry = windows.entry(key_id).or_insert((minute, 0));
            if entry.0 != minute {
                *entry = (minute, 0);
            }
            if entry.1 >= self.per_minute {
                return Ok(RateDecision::Limited(RateInfo { limit: self.per_minute, remaining: 0, reset: minute_reset }));
            }
            entry.1 += 1;
            Some(RateInfo { limit: self.per_minute, remaining: self.per_minute - entry.1, reset: minute_reset })
        } else {
            None
        };
        // Every request is counted for the day (usage), limited only when per_day is set.
        let day_info = match self.store.count_request(key_id, day, self.per_day as i64)? {
            Some(used) if self.per_day > 0 => Some(RateInfo {
                limit: self.per_day,
                remaining: (self.per_day as i64 - used).max(0) as u32,
                reset: day_reset,
            }),
            Some(_) => None,
            None => {
                // Over the day's limit: give back the minute slot this request took.
                if self.per_minute > 0 {
                    let mut windows = self.minutes.lock().unwrap_or_else(|p| p.into_inner());
                    if let Some(entry) = windows.get_mut(&key_id) {
                        entry.1 = entry.1.saturating_sub(1);
                    }
                }
                return Ok(RateDecision::Limited(RateInfo { limit: self.per_day, remaining: 0, reset: day_reset }));
            }
        };
        // Report the window closest to running out.
        Ok(RateDecision::Allowed(match (minute_info, day_info) {
            (Some(m), Some(d)) => Some(if d.remaining < m.remaining { d } else { m }),
            (m, d) => m.or(d),
        }))
    }

    /// Where `key_id`'s minute window stands now, without counting a request (for the
    /// headers of an answer that did not reach the key check).
    pub fn peek(&self, key_id: i64) -> Option<RateInfo> {
        if self.per_minute == 0 {
            return None;
        }
        let minute = now_s().div_euclid(60);
        let windows = self.minutes.lock().unwrap_or_else(|p| p.into_inner());
        let used = windows.get(&key_id).filter(|e| e.0 == minute).map(|e| e.1).unwrap_or(0);
        Some(RateInfo { limit: self.per_minute, remaining: self.per_minute.saturating_sub(used), reset: (minute + 1) * 60 })
    }

    pub fn per_minute(&self) -> u32 {
        self.per_minute
    }

    pub fn per_day(&self) -> u32 {
        self.per_day
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minute_then_day_limits() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let limiter = RateLimiter::new(store.clone(), 2, 3);
        let t = 1_800_000_000; // a minute boundary
        assert!(matches!(limiter.check_at(1, t).unwrap(), RateDecision::Allowed(Some(RateInfo { remaining: 1, .. }))));
        assert!(matches!(limiter.check_at(1, t + 1).unwrap(), RateDecision::Allowed(_)));
        let RateDecision::Limited(info) = limiter.check_at(1, t + 2).unwrap() else { panic!("minute limit") };
        assert_eq!((info.limit, info.reset), (2, t + 60));
        // Another key has its own window.
        assert!(matches!(limiter.check_at(2, t + 2).unwrap(), RateDecision::Allowed(_)));
        // Next minute: one more allowed, then the day's 3 are used up, and a restart keeps them.
        assert!(matches!(limiter.check_at(1, t + 60).unwrap(), RateDecision::Allowed(_)));
        let fresh = RateLimiter::new(store, 2, 3);
        let RateDecision::Limited(info) = fresh.check_at(1, t + 61).unwrap() else { panic!("day limit") };
        assert_eq!(info.limit, 3);
        assert_eq!(info.reset % 86_400, 0);
    }
}
