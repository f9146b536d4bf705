//! Super-seeding (after BEP 16): a complete holder facing a crowd offers each downloader a few
//! chunks at a time, those offered least so far, instead of saying it has everything.
//!
//! Told "all", every member of a crowd that arrives at once asks the seeder for chunks before
//! anyone knows what the others fetch; their picks overlap, and the seeder's uplink, the one
//! thing the crowd waits on, carries the same chunks several times. Offered distinct chunks,
//! each downloader fetches its own from the seeder and the rest from the others. The first
//! downloader of a file still hears `All` (a lone downloader is not held back); the ones that
//! observe while another does get `Offer`s: a first batch of [`FIRST_OFFER`], then every
//! [`OFFER_EVERY`] twice as many as the seeder sent it meanwhile (so a fast link is not held
//! back either), and at least one (a downloader that got its offers elsewhere is not left with
//! nothing to ask for).
//!
//! [`Crowds`] is plain state: which chunks of each file were offered how often, and how many
//! downloaders observe it now.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::protocol::FileId;
use crate::store::partial::Bitfield;

/// Chunks in the first offer to a downloader (2 MiB at the default chunk size): enough to fill
/// a slow link's window while the next offer comes.
pub const FIRST_OFFER: usize = 8;
/// Between two offers to one downloader (the protocol's `Have` rate).
pub const OFFER_EVERY: Duration = Duration::from_millis(1000 / crate::protocol::HAVES_PER_SEC as u64);

/// Offers per file, shared by every observer of it on this peer.
#[derive(Default)]
pub struct Crowds {
    files: Mutex<HashMap<FileId, Crowd>>,
}

/// One file's offers.
struct Crowd {
    /// How many downloaders each chunk was offered to.
    offered: Vec<u32>,
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
        let crowd = files.entry(id).or_insert_with(|| Crowd { offered: vec![0; count as usize], observers: 0, seed });
        crowd.observers += 1;
        Observer { crowds: self.clone(), id, crowded: crowd.observers > 1 }
    }

    /// Up to `n` chunks not in `mine`, those offered least so far (ties at random); they are
    /// added to `mine` and counted as offered.
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
        while picked.len() < n {
            let Some(least) = (0..count).filter(|&i| !mine.has(i)).map(|i| self.offered[i as usize]).min() else { break };
            let start = (self.next_random() % u64::from(count.max(1))) as u32;
            for step in 0..count {
                let i = (start + step) % count;
                if picked.len() < n && !mine.has(i) && self.offered[i as usize] == least {
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
        // Every chunk is out once; the next offers are second copies, never one already offered.
        let three = crowds.offer(&id, &mut a, 8);
        assert!(three.iter().all(|i| two.contains(i)), "{three:?}");
        assert!(crowds.offer(&id, &mut a, 8).is_empty(), "nothing is left to offer the first");
        drop((first, second));
        assert!(crowds.lock().is_empty(), "a file nobody observes is forgotten");
    }
}
