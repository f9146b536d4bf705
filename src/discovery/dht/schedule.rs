//! When each public file is announced on the DHT next: plain state, no I/O, tested alone.
//!
//! A file appears due at once, is due again `every` after an announce that worked and `retry`
//! after one that failed; a file no longer public is forgotten.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::protocol::FileId;

/// The next announce time of every public file.
pub struct Schedule {
    every: Duration,
    retry: Duration,
    next: BTreeMap<FileId, Instant>,
}

impl Schedule {
    /// Announces every `every`, retrying failures after `retry`.
    pub fn new(every: Duration, retry: Duration) -> Schedule {
        Schedule { every, retry, next: BTreeMap::new() }
    }

    /// Follows the public set: new files are due at `now`, files gone from it are dropped.
    pub fn track(&mut self, public: &BTreeSet<FileId>, now: Instant) {
        self.next.retain(|id, _| public.contains(id));
        for id in public {
            self.next.entry(*id).or_insert(now);
        }
    }

    /// A file due at `now`, the one waiting longest first.
    pub fn due(&self, now: Instant) -> Option<FileId> {
        self.next.iter().filter(|(_, at)| **at <= now).min_by_key(|(_, at)| **at).map(|(id, _)| *id)
    }

    /// When the next file is due, if any is tracked.
    pub fn next_at(&self) -> Option<Instant> {
        self.next.values().min().copied()
    }

    /// `id` was announced at `now`.
    pub fn announced(&mut self, id: &FileId, now: Instant) {
        if let Some(at) = self.next.get_mut(id) {
            *at = now + self.every;
        }
    }

    /// Announcing `id` failed at `now`.
    pub fn failed(&mut self, id: &FileId, now: Instant) {
        if let Some(at) = self.next.get_mut(id) {
            *at = now + self.retry;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content::id::Digest;

    const EVERY: Duration = Duration::from_secs(900);
    const RETRY: Duration = Duration::from_secs(30);

    #[test]
    fn a_public_file_is_announced_at_once_then_again_before_it_expires() {
        let (t, a) = (Instant::now(), Digest([1; 32]));
        let mut s = Schedule::new(EVERY, RETRY);
        s.track(&BTreeSet::from([a]), t);
        assert_eq!(s.due(t), Some(a));
        s.announced(&a, t);
        assert_eq!(s.due(t + EVERY - Duration::from_secs(1)), None);
        assert_eq!(s.next_at(), Some(t + EVERY));
        assert_eq!(s.due(t + EVERY), Some(a));
    }

    #[test]
    fn a_failed_announce_is_retried_soon_and_a_withdrawn_file_never_again() {
        let (t, a, b) = (Instant::now(), Digest([1; 32]), Digest([2; 32]));
        let mut s = Schedule::new(EVERY, RETRY);
        s.track(&BTreeSet::from([a, b]), t);
        s.failed(&a, t);
        s.announced(&b, t);
        assert_eq!(s.due(t + RETRY), Some(a));
        s.track(&BTreeSet::from([b]), t + RETRY);
        assert_eq!(s.due(t + RETRY), None);
        assert_eq!(s.next_at(), Some(t + EVERY));
        s.track(&BTreeSet::new(), t);
        assert_eq!(s.next_at(), None);
    }

    #[test]
    fn the_longest_waiting_file_goes_first() {
        let (t, a, b) = (Instant::now(), Digest([1; 32]), Digest([2; 32]));
        let mut s = Schedule::new(EVERY, RETRY);
        s.track(&BTreeSet::from([a]), t);
        s.track(&BTreeSet::from([a, b]), t + Duration::from_secs(1));
        s.announced(&a, t);
        s.failed(&a, t - EVERY);
        assert_eq!(s.due(t + Duration::from_secs(5)), Some(a));
    }
}
