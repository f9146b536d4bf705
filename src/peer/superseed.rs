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
//! A chunk is offered a second time only when nobody it was offered to is still to ask for it
//! (for up to [`OFFER_HOLD`]), no copy of it is on its way from here, and the last one left at
//! least [`RESEND_AFTER`] ago (acknowledged, not merely handed to quinn): time for its
//! downloader to verify it and tell the crowd (a `Have`), after which the others fetch it
//! there. On a shared uplink a downloader asks for an offered chunk only when its earlier ones
//! are through, seconds later, and a chunk asked for waits seconds more in line; offered again
//! meanwhile, as when offers ranked chunks only by how often they were asked for, a 16-way
//! crowd fetched half the file from the seeder twice (128 to 147 of 256 chunks, in process at
//! 20 Mbit/s).
//!
//! [`Crowds`] is plain state: which chunks of each file were offered how often, and how many
//! downloaders observe it now.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::protocol::FileId;
use crate::store::partial::Bitfield;

/// Chunks in the first offer to a downloader (1 MiB at the default chunk size): enough to fill
/// a slow link's window while the next offer comes.
pub const FIRST_OFFER: usize = 4;
/// Between two offers to one downloader (the protocol's `Have` rate).
pub const OFFER_EVERY: Duration = Duration::from_millis(1000 / crate::protocol::HAVES_PER_SEC as u64);

/// Time without a request after which a downloader with offers outstanding is offered one more.
pub const IDLE_OFFER: Duration = Duration::from_secs(2);

/// How long after a chunk's last copy reached its downloader (all its bytes acknowledged) it
/// may be offered again: the downloader's verifying and its next `Have` batch reaching the
/// crowd take well under this on a home link.
pub const RESEND_AFTER: Duration = Duration::from_secs(2);

/// How long an offer not yet asked for keeps its chunk from being offered to another: a
/// downloader in a 16-way crowd on a 20 Mbit/s seeder asked for its offers up to 9 s after
/// they came. One that got the chunk elsewhere never asks, and one that left never will; past
/// this, the chunk is offered again.
pub const OFFER_HOLD: Duration = Duration::from_secs(20);

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
    /// Each chunk's offers and copies.
    chunks: Vec<Copies>,
    /// Downloaders observing it now.
    observers: usize,
    /// Picks ties at random (SplitMix64).
    seed: u64,
}

/// One chunk's offers and copies since the crowd formed.
#[derive(Clone, Copy, Default)]
struct Copies {
    /// Downloaders it was offered to.
    offered: u32,
    /// When it was last offered.
    offered_at: Option<Instant>,
    /// Times it was asked for.
    asked: u32,
    /// Copies asked for and not yet sent (waiting their turn, or on their way).
    sending: u32,
    /// When its last copy arrived.
    left: Option<Instant>,
}

/// A chunk of a crowded file asked for: counted as on its way until [`Asked::sent`] (its bytes
/// arrived), or until dropped (the send failed or was abandoned).
pub struct Asked {
    crowds: Arc<Crowds>,
    id: FileId,
    index: u32,
    sent: Option<Instant>,
}

impl Asked {
    /// The chunk's bytes arrived whole.
    pub fn sent(mut self) {
        self.sent = Some(Instant::now());
    }
}

impl Drop for Asked {
    fn drop(&mut self) {
        if let Some(crowd) = self.crowds.lock().get_mut(&self.id) {
            crowd.ended(self.index, self.sent);
        }
    }
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
        let fresh = || Crowd::new(count as usize, seed);
        let crowd = files.entry(id).or_insert_with(fresh);
        crowd.observers += 1;
        Observer { crowds: self.clone(), id, crowded: crowd.observers > 1 }
    }

    /// Chunk `index` of `id` was asked for by a downloader: it is on its way there until the
    /// guard says it was sent or is dropped. `None` for a file no crowd observes.
    pub fn ask(self: &Arc<Self>, id: &FileId, index: u32) -> Option<Asked> {
        self.lock().get_mut(id)?.asked(index)?;
        Some(Asked { crowds: self.clone(), id: *id, index, sent: None })
    }

    /// Up to `n` chunks not in `mine`, those asked for least so far, and of those the ones offered
    /// least (ties at random), leaving out any offered and not yet asked for, on its way, or
    /// sent just now (see the module's text); they are added to `mine` and counted as offered.
    pub fn offer(&self, id: &FileId, mine: &mut Bitfield, n: usize) -> Vec<u32> {
        let mut files = self.lock();
        let Some(crowd) = files.get_mut(id) else { return Vec::new() };
        crowd.pick(mine, n, Instant::now())
    }
}

impl Crowd {
    fn new(count: usize, seed: u64) -> Crowd {
        Crowd { chunks: vec![Copies::default(); count], observers: 0, seed }
    }

    /// Chunk `index` was asked for; `None` past the file.
    fn asked(&mut self, index: u32) -> Option<()> {
        let chunk = self.chunks.get_mut(index as usize)?;
        chunk.asked += 1;
        chunk.sending += 1;
        Some(())
    }

    /// A copy of chunk `index` asked for is no longer on its way: sent whole at `sent`, or not.
    fn ended(&mut self, index: u32, sent: Option<Instant>) {
        if let Some(chunk) = self.chunks.get_mut(index as usize) {
            chunk.sending = chunk.sending.saturating_sub(1);
            chunk.left = sent.or(chunk.left);
        }
    }

    /// Whether chunk `i` may be offered at `now`: no recent offer still to be asked for, no
    /// copy on its way, none sent just now.
    fn may_offer(&self, i: usize, now: Instant) -> bool {
        let c = &self.chunks[i];
        let since = |at: Option<Instant>, wait: Duration| at.is_none_or(|at| now.saturating_duration_since(at) >= wait);
        let promised = c.offered > c.asked && !since(c.offered_at, OFFER_HOLD);
        !promised && c.sending == 0 && since(c.left, RESEND_AFTER)
    }

    fn pick(&mut self, mine: &mut Bitfield, n: usize, now: Instant) -> Vec<u32> {
        let count = self.chunks.len() as u32;
        let mut picked = Vec::with_capacity(n);
        let rank = |crowd: &Crowd, i: u32| (crowd.chunks[i as usize].asked, crowd.chunks[i as usize].offered);
        let open = |crowd: &Crowd, mine: &Bitfield, i: u32| !mine.has(i) && crowd.may_offer(i as usize, now);
        while picked.len() < n {
            let Some(least) = (0..count).filter(|&i| open(self, mine, i)).map(|i| rank(self, i)).min() else { break };
            let start = (self.next_random() % u64::from(count.max(1))) as u32;
            for step in 0..count {
                let i = (start + step) % count;
                if picked.len() < n && open(self, mine, i) && rank(self, i) == least {
                    mine.set(i);
                    let chunk = &mut self.chunks[i as usize];
                    chunk.offered += 1;
                    chunk.offered_at = Some(now);
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
        // Every chunk is promised to one downloader: nothing more is offered while they are
        // to ask for it, on its way, or just sent.
        assert!(crowds.offer(&id, &mut a, 8).is_empty(), "a chunk offered to the second is offered to the first");
        let asked = crowds.ask(&id, two[0]).expect("a crowded file");
        assert!(crowds.offer(&id, &mut a, 8).is_empty(), "the one on its way is offered again");
        asked.sent();
        assert!(crowds.offer(&id, &mut a, 8).is_empty(), "a chunk just sent is offered before it had time to spread");
        drop((first, second));
        assert!(crowds.lock().is_empty(), "a file nobody observes is forgotten");
        assert!(crowds.ask(&id, 0).is_none(), "a file nobody observes is not counted");
    }

    #[test]
    fn an_offer_not_asked_for_holds_its_chunk_for_a_while() {
        let mut crowd = Crowd::new(2, 1);
        let (t0, mut first) = (Instant::now(), Bitfield::empty(2 << 10, 2));
        assert_eq!(crowd.pick(&mut first, 1, t0).len(), 1);
        let mut second = Bitfield::empty(2 << 10, 2);
        let other = crowd.pick(&mut second, 2, t0);
        assert_eq!(other.len(), 1, "the chunk offered to the first is held for it: {other:?}");
        let mut third = Bitfield::empty(2 << 10, 2);
        assert!(crowd.pick(&mut third.clone(), 2, t0 + OFFER_HOLD / 2).is_empty(), "both offers are held");
        assert_eq!(crowd.pick(&mut third, 2, t0 + OFFER_HOLD).len(), 2, "offers nobody asked for are let go");
    }

    #[test]
    fn a_chunk_is_offered_again_once_its_copies_are_sent_and_had_time_to_spread() {
        let mut crowd = Crowd::new(2, 1);
        let (t0, wait) = (Instant::now(), RESEND_AFTER);
        let fresh = || Bitfield::empty(2 << 10, 2);
        for i in [0, 0, 1] {
            crowd.asked(i).expect("in the file");
        }
        assert!(crowd.pick(&mut fresh(), 2, t0).is_empty(), "both have copies on their way");
        crowd.ended(1, None);
        crowd.ended(0, Some(t0));
        let mut mine = fresh();
        assert_eq!(crowd.pick(&mut mine, 2, t0 + wait * 2), vec![1], "a copy of 0 is on its way; 1's send failed");
        crowd.ended(0, Some(t0 + wait));
        assert!(crowd.pick(&mut mine, 2, t0 + wait * 3 / 2).is_empty(), "chunk 0 left just now");
        assert_eq!(crowd.pick(&mut fresh(), 2, t0 + wait * 2), vec![1, 0], "asked for once before twice");
        assert!(crowd.asked(2).is_none(), "past the file");
        crowd.ended(9, None);
    }
}
