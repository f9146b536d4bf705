//! Caps that keep one hostile client from taking what everyone shares: a [`Quota`] of live
//! things per key (connections per IP address, per certificate) and a [`RateLimit`] token bucket
//! (requests per second on one tracker session). Plain synchronous types, no I/O.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// At most `max` live holders of a slot per key; a slot is given back when its guard drops.
pub struct Quota<K: Hash + Eq + Clone> {
    max: usize,
    used: Arc<Mutex<HashMap<K, usize>>>,
}

/// One slot of a [`Quota`], released on drop.
pub struct Slot<K: Hash + Eq + Clone> {
    key: K,
    used: Arc<Mutex<HashMap<K, usize>>>,
}

impl<K: Hash + Eq + Clone> Quota<K> {
    /// A quota of `max` slots per key.
    pub fn new(max: usize) -> Quota<K> {
        Quota { max, used: Arc::default() }
    }

    /// Takes a slot for `key`, or `None` if it already holds `max`.
    pub fn take(&self, key: K) -> Option<Slot<K>> {
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        let count = used.entry(key.clone()).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(Slot { key, used: self.used.clone() })
    }
}

impl<K: Hash + Eq + Clone> Drop for Slot<K> {
    fn drop(&mut self) {
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = used.get_mut(&self.key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                used.remove(&self.key);
            }
        }
    }
}

/// A token bucket: `burst` requests at once, then `per_second` on average.
#[derive(Debug, Clone)]
pub struct RateLimit {
    per_second: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl RateLimit {
    /// A full bucket.
    pub fn new(per_second: u32, burst: u32, now: Instant) -> RateLimit {
        let burst = f64::from(burst.max(1));
        RateLimit { per_second: f64::from(per_second.max(1)), burst, tokens: burst, last: now }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.burst);
        self.last = now;
    }

    /// How long until a request may go: zero if one may go now.
    pub fn wait(&mut self, now: Instant) -> Duration {
        self.refill(now);
        if self.tokens >= 1.0 { Duration::ZERO } else { Duration::from_secs_f64((1.0 - self.tokens) / self.per_second) }
    }

    /// Spends one token (call when [`RateLimit::wait`] said zero).
    pub fn take(&mut self, now: Instant) {
        self.refill(now);
        self.tokens = (self.tokens - 1.0).max(0.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quota_gives_slots_back_on_drop() {
        let quota = Quota::new(2);
        let a = quota.take("ip").unwrap();
        let _b = quota.take("ip").unwrap();
        assert!(quota.take("ip").is_none());
        assert!(quota.take("other").is_some());
        drop(a);
        let again = quota.take("ip");
        assert!(again.is_some());
        assert!(quota.take("ip").is_none(), "one slot came back, not more");
    }

    #[test]
    fn a_bucket_allows_a_burst_then_the_rate() {
        let t = Instant::now();
        let mut bucket = RateLimit::new(10, 3, t);
        for _ in 0..3 {
            assert_eq!(bucket.wait(t), Duration::ZERO);
            bucket.take(t);
        }
        let wait = bucket.wait(t);
        assert!(wait > Duration::from_millis(90) && wait <= Duration::from_millis(100), "{wait:?}");
        assert_eq!(bucket.wait(t + Duration::from_millis(100)), Duration::ZERO);
        // Idle time refills only up to the burst.
        bucket.take(t + Duration::from_millis(100));
        let later = t + Duration::from_secs(60);
        for _ in 0..3 {
            assert_eq!(bucket.wait(later), Duration::ZERO);
            bucket.take(later);
        }
        assert!(bucket.wait(later) > Duration::ZERO);
    }
}
