//! Super-seeding (after BEP 16): a complete holder facing a crowd offers each downloader a few
//! chunks at a time, those offered least so far, instead of saying it has everything.
//!
//! Told "all", every member of a crowd that arrives at once asks the seeder for chunks before
//! anyone knows what the others fetch; their picks overlap, and the seeder's uplink, the one
//! thing the crowd waits on, carries the same chunks several times. Offered distinct chunks,
//! each downloader fetches its own from the seeder and the rest from the others. The first
//! downloader of a file still hears `All` (a lone downloader is not held back); the ones that
//! observe while another does get `Offer`s: a first batch of [`FIRST_OFFER`], then every
//! [`OFFER_EVERY`] as many as the seeder sent it meanwhile, twice that when it had taken every
//! offer (so a fast link is not held back), and one after [`IDLE_OFFER`] without a request
//! (a downloader that got its offers elsewhere is not left with nothing to ask for). See
//! [`Pace`]. Offering more than a downloader takes would hand it chunks others already
//! fetched, and it would fetch them from the seeder again: that is what this avoids.
//!
//! [`Crowds`] is plain state: which chunks of each file were offered how often, and how many
//! downloaders observe it now.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::protocol::FileId;
use crate::store::partial::Bitfield;

/// Chunks in the first offer to a downloader (1 MiB at the default chunk size): enough to fill
/// a slow link's window while the next offer comes.
pub const FIRST_OFFER: usize = 4;
/// Between two offers to one downloader (the protocol's `Have` rate).
pub const OFFER_EVERY: Duration = Duration::from_millis(1000 / crate::protocol::HAVES_PER_SEC as u64);

/// Time without a request after which a downloader with offers outstanding is offered one more.
pub const IDLE_OFFER: Duration = Duration::from_secs(2);

/// How many chunks to offer one downloader next, from what it took of the offers so far.
#[derive(Debug)]
pub struct Pace {
    /// Chunks offered so far.
    pub offered: u64,
    /// Chunks sent to it so far (the connection's count when offering began is the zero).
    served: u64,
    start: u64,
    idle: Duration,
}

impl Pace {
    /// Pacing from the connection's chunk count `served` now.
    pub fn new(served: u64) -> Pace {
        Pace { offered: 0, served: 0, start: served, idle: Duration::ZERO }
    }

    /// The next offer's size, [`OFFER_EVERY`] after the last, the connection's count now `served`.
    pub fn next(&mut self, served: u64) -> usize {
        let now = served.saturating_sub(self.start);
        let took = now.saturating_sub(self.served) as usize;
        self.served = now;
        self.idle = if took == 0 { self.idle + OFFER_EVERY } else { Duration::ZERO };
        if self.served >= self.offered {
            // It took every offer: the offers are what limit it.
            return (2 * took).max(FIRST_OFFER);
        }
        if self.idle >= IDLE_OFFER {
            self.idle = Duration::ZERO;
            return took.max(1);
        }
        took
    }
}

/// Offers per file, shared by every observer of it on this peer.
#[derive(Default)]
pub struct Crowds {
    files: Mutex<HashMap<FileId, Crowd>>,
}

/// One file's offers.
struct Crowd {
    /// How many downloaders each chunk was offered to.
    offered: Vec<u32>,
    /// How many times each chunk was asked for since the crowd formed.
    sent: Vec<u32>,
    /// Downloaders observing it now.
    observers: usize,
    /// Picks ties at random (SplitMix64).
    seed: u64,
}

/// A downloader observing a file, counted while it lives.
pub struct Observer {
    crowds: Arc<Crowds>,
    id: FileId,
    /// Whether another downloader observed the file when this one came.
    pub crowded: bool,
}

impl Drop for Observer {
    fn drop(&mut self) {
        let mut files = self.crowds.lock();
        if let Some(crowd) = files.get_mut(&self.id) {
            crowd.observers -= 1;
            if crowd.observers == 0 {
                files.remove(&self.id);
            }
        }
    }
}

impl Crowds {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<FileId, Crowd>> {
        self.files.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A downloader starts observing file `id` of `count` chunks.
    pub fn join(self: &Arc<Self>, id: FileId, count: u32) -> Observer {
        let mut files = self.lock();
        let seed = id.0.iter().fold(0x9e37_79b9_7f4a_7c15u64, |s, b| s.rotate_left(8) ^ u64::from(*b)) ^ clock_seed();
        let fresh = || Crowd { offered: vec![0; count as usize], sent: vec![0; count as usize], observers: 0, seed };
        let crowd = files.entry(id).or_insert_with(fresh);
        crowd.observers += 1;
        Observer { crowds: self.clone(), id, crowded: crowd.observers > 1 }
    }

    /// Chunk `index` of `id` was asked for by a downloader (it is on its way there).
    pub fn sent(&self, id: &FileId, index: u32) {
        if let Some(count) = self.lock().get_mut(id).and_then(|c| c.sent.get_mut(index as usize)) {
            *count += 1;
        }
    }

    /// Up to `n` chunks not in `mine`, those asked for least so far, and of those the ones offered
    /// least (ties at random); they are added to `mine` and counted as offered.
    pub fn offer(&self, id: &FileId, mine: &mut Bitfield, n: usize) -> Vec<u32> {
        let mut files = self.lock();
        let Some(crowd) = files.get_mut(id) else { return Vec::new() };
        crowd.pick(mine, n)
    }
}

impl Crowd {
    fn pick(&mut self, mine: &mut Bitfield, n: usize) -> Vec<u32> {
        let count = self.offered.len() as u32;
        let mut picked = Vec::with_capacity(n);
        let rank = |crowd: &Crowd, i: u32| (crowd.sent[i as usize], crowd.offered[i as usize]);
        while picked.len() < n {
            let Some(least) = (0..count).filter(|&i| !mine.has(i)).map(|i| rank(self, i)).min() else { break };
            let start = (self.next_random() % u64::from(count.max(1))) as u32;
            for step in 0..count {
                let i = (start + step) % count;
                if picked.len() < n && !mine.has(i) && rank(self, i) == least {
                    mine.set(i);
                    self.offered[i as usize] += 1;
                    picked.push(i);
                }
            }
        }
        picked
    }

    fn next_random(&mut self) -> u64 {
        self.seed = self.seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.seed;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// Something that differs between runs, to seed tie-breaking.
fn clock_seed() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content::id::Digest;

    #[test]
    fn offers_replace_what_was_taken_and_grow_only_when_all_were_taken() {
        let mut pace = Pace::new(100);
        pace.offered = 8;
        assert_eq!(pace.next(103), 3, "took 3 of 8: offer 3 more");
        pace.offered += 3;
        assert_eq!(pace.next(103), 0, "took none, offers outstanding: nothing yet");
        let idle_ticks = (IDLE_OFFER.as_millis() / OFFER_EVERY.as_millis()) as usize;
        let after: Vec<usize> = (2..idle_ticks).map(|_| pace.next(103)).collect();
        assert!(after.iter().all(|&n| n == 0), "{after:?}");
        assert_eq!(pace.next(103), 1, "idle for {IDLE_OFFER:?}: one more, in case it got the offers elsewhere");
        pace.offered += 1;
        assert_eq!(pace.next(112), 18, "took all 12: twice what it took this time");
    }

    #[test]
    fn a_crowd_is_offered_distinct_chunks_until_every_chunk_is_out() {
        let crowds = Arc::new(Crowds::default());
        let id = Digest([7; 32]);
        let first = crowds.join(id, 16);
        let second = crowds.join(id, 16);
        assert!(!first.crowded && second.crowded, "the first observer is alone, the second is not");
        let mut a = Bitfield::empty(16 << 10, 16);
        let mut b = Bitfield::empty(16 << 10, 16);
        let one = crowds.offer(&id, &mut a, 8);
        let two = crowds.offer(&id, &mut b, 8);
        assert_eq!((one.len(), two.len()), (8, 8));
        assert!(one.iter().all(|i| !two.contains(i)), "{one:?} and {two:?} overlap");
        // Every chunk is out once; the next offers are second copies, never one already offered,
        // and the ones not sent yet before those sent.
        crowds.sent(&id, two[0]);
        let three = crowds.offer(&id, &mut a, 7);
        assert!(three.iter().all(|i| two.contains(i)), "{three:?}");
        assert!(!three.contains(&two[0]), "a chunk already sent is offered before the unsent: {three:?}");
        assert_eq!(crowds.offer(&id, &mut a, 8), vec![two[0]]);
        assert!(crowds.offer(&id, &mut a, 8).is_empty(), "nothing is left to offer the first");
        drop((first, second));
        assert!(crowds.lock().is_empty(), "a file nobody observes is forgotten");
    }
}
