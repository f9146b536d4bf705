//! Which chunk to ask which holder for: plain state, no I/O.
//!
//! Each chunk is needed, in flight at one holder, or done. A holder says what it has (every
//! chunk, or a bitfield and then one have at a time, as in BEP 3) and only ever gets chunks it
//! has, up to its window in flight (set from its link as the download goes, see
//! [`Scheduler::set_window`]). Which one is BitTorrent's choice: the first [`RANDOM_FIRST`]
//! chunks at random, then the rarest first, counting the live holders known to have each, with
//! ties broken at random so a crowd of downloaders with the same seeder spreads over the file
//! instead of all fetching chunk 0.
//!
//! The needed chunks sit in availability buckets, libtorrent's piece-picker layout
//! (`scheduler/buckets.rs`): a complete holder takes the first entry, and a have moves a chunk
//! one bucket in O(1). A partial holder files the needed chunks it has by the same buckets
//! (`scheduler/holdings.rs`) and draws from its lowest, so its pick does not walk past the
//! rarer chunks it lacks; the price is a step per partial holder having the chunk on each have,
//! pick and done. A holder for which nothing was found is "starved" and costs nothing until a
//! have or a chunk going back to needed may give it something: the download asks every holder
//! after every chunk event.
//!
//! A chunk that fails goes back ahead of its equals so another holder picks it up; a holder is
//! struck for each failure and dropped for this download after [`MAX_STRIKES`], or at once
//! when its connection is gone, and what it had no longer counts. In the endgame, when every
//! missing chunk is in flight, an idle holder may race a slow one for a chunk still in flight
//! (looking only at those): whichever verifies first wins and the download calls the other
//! copy off.

mod buckets;
mod holdings;
mod pick;
mod rng;

use buckets::{Buckets, Listed};
use holdings::Holdings;
use rng::Rng;

/// An empty slot in [`Scheduler::slots`], and "nobody" in [`Scheduler::failed_by`].
const FREE: u32 = u32::MAX;

/// Second copies a holder may be fetching at once in the endgame.
const ENDGAME_RACES: usize = 1;

/// Second copies one download may be fetching at once in the endgame, from all its holders. One
/// race per idle holder let a leecher in a crowd of 16 race each of its last chunks at another
/// leecher; on uplinks shared 15 ways both copies move at the same pace, so the loser, called
/// off when the winner lands, had sent most of its chunk: about one copy of the file in all
/// (in process, 64 MiB at 20 Mbit/s). Two races still rescue chunks from a holder that slowed
/// down.
const MAX_RACES: usize = 2;

/// Failures after which a holder gets no more work in this download.
pub const MAX_STRIKES: u32 = 3;

/// Chunks held (verified, or kept from an earlier attempt) below which picks are random rather
/// than rarest first. A newcomer needs something to trade quickly, and the rarest chunk may
/// sit at a single slow holder; any chunk will do, so take one at random, which also spreads
/// a crowd that starts together. libtorrent uses the same handful; past it, random picks
/// would fetch common chunks while rare ones wait at holders that may leave.
pub const RANDOM_FIRST: usize = 4;

/// Draws a complete holder gets among the needed chunks for a random pick before it takes its
/// rarest instead (random among equals anyway): a draw misses only on a chunk the holder
/// failed, and a live holder failed fewer than [`MAX_STRIKES`].
const RANDOM_PROBES: usize = 4;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Chunk {
    Needed,
    InFlight,
    Done,
}

/// What the picker is handing out: needed chunks, or (every missing chunk being in flight)
/// second copies of chunks in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Needed,
    Endgame,
}

#[derive(Clone, Debug, Default)]
struct HolderState {
    /// Chunks handed to the holder and not yet verified or failed.
    in_flight: usize,
    /// Of those, the ones whose bytes have not arrived yet: what the window bounds, since a
    /// chunk being verified no longer occupies the link.
    receiving: usize,
    window: usize,
    strikes: u32,
    dropped: bool,
    delivered: u32,
    holdings: Holdings,
    /// A complete holder to be spared: it gets only chunks no partial holder has.
    spare: bool,
    /// Set when a pick in this phase found nothing; cleared when the holder might get
    /// something (a have, a chunk it has going back to needed), so that asking again costs
    /// nothing until then.
    starved: Option<Phase>,
}

/// How bad a failure was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Penalty {
    /// A strike (timeout, bad bytes); [`MAX_STRIKES`] of them drop the holder.
    Strike,
    /// The holder is gone or refuses the file: drop it now.
    Drop,
}

/// The download plan of one file across its holders.
#[derive(Debug)]
pub struct Scheduler {
    chunks: Vec<Chunk>,
    /// The (at most two) holders each chunk is in flight at; two only in the endgame.
    slots: Vec<[u32; 2]>,
    /// The holder that last failed each chunk, which should not get it straight back.
    failed_by: Vec<u32>,
    /// Live partial holders known to have each chunk (its bucket). Complete holders have every
    /// chunk, so they are counted once in `seeds` instead: a constant added to every count
    /// does not change which is rarest, and a seeder joining or leaving costs O(1).
    partial: Vec<u32>,
    seeds: u32,
    needed: Buckets,
    flying: Listed,
    holders: Vec<HolderState>,
    remaining: usize,
    min_window: usize,
    rng: Rng,
    /// Chunks looked at while picking: what the tests hold against the size of the file.
    #[cfg(test)]
    looked: u64,
}

impl Scheduler {
    /// A plan for `count` chunks, no holders yet; chunks already `have` are not fetched. Every
    /// holder takes at least `window` chunks at once (1 is the usual floor), whatever
    /// [`Scheduler::add_holder`] and [`Scheduler::set_window`] say.
    pub fn new(count: u32, window: usize, have: impl Fn(u32) -> bool) -> Scheduler {
        let chunks: Vec<Chunk> = (0..count).map(|i| if have(i) { Chunk::Done } else { Chunk::Needed }).collect();
        let mut rng = Rng::varying();
        let needed = Buckets::new(count, (0..count).filter(|&i| chunks[i as usize] == Chunk::Needed), &mut rng);
        Scheduler {
            remaining: needed.len(),
            chunks,
            slots: vec![[FREE; 2]; count as usize],
            failed_by: vec![FREE; count as usize],
            partial: vec![0; count as usize],
            seeds: 0,
            needed,
            flying: Listed::new(count),
            holders: Vec::new(),
            min_window: window.max(1),
            rng,
            #[cfg(test)]
            looked: 0,
        }
    }

    /// The same plan with its ties broken by `seed`, so that the same calls give the same picks
    /// (for tests; by default every plan draws differently).
    pub fn with_seed(mut self, seed: u64) -> Scheduler {
        self.rng = Rng::seeded(seed);
        self.needed.shuffle(&mut self.rng);
        self
    }

    /// A holder taking up to `window` chunks at once, whose chunks are not known yet: it gets
    /// no work until [`Scheduler::holder_has_all`], [`Scheduler::holder_has`] or
    /// [`Scheduler::holder_has_bitfield`] say what it has. Returns its index.
    pub fn add_holder(&mut self, window: usize) -> usize {
        self.holders.push(HolderState { window: window.max(self.min_window), ..HolderState::default() });
        self.holders.len() - 1
    }

    /// `holder` has every chunk (a seeder). Idempotent; nothing for a dropped holder.
    pub fn holder_has_all(&mut self, holder: usize) {
        let Some(state) = self.holders.get_mut(holder).filter(|h| !h.dropped && h.holdings.is_partial()) else { return };
        let before = state.holdings.make_all();
        state.starved = None;
        before.partial_chunks().for_each(|chunk| self.lose(chunk));
        self.seeds += 1;
    }

    /// `holder` has chunk `index` (a have). Returns whether that is news: false for one it was
    /// known to have, a dropped holder, or an index past the file (it comes from the network).
    /// A holder found to have every chunk becomes a complete one.
    pub fn holder_has(&mut self, holder: usize, index: u32) -> bool {
        let Some(&chunk) = self.chunks.get(index as usize) else { return false };
        let Some(state) = self.holders.get_mut(holder).filter(|h| !h.dropped && !h.holdings.has(index)) else { return false };
        if chunk != Chunk::Done {
            state.starved = None;
        }
        self.gain(holder, index);
        let count = self.chunks.len() as u32;
        if self.holders[holder].holdings.count(count) == count {
            self.holder_has_all(holder);
        }
        true
    }

    /// `holder` has each chunk of `indices` (a bitfield, given as the indices of its set bits,
    /// e.g. `(0..n).filter(|&i| bits[i])`). Indices past the file are ignored. Returns how many
    /// were news.
    pub fn holder_has_bitfield(&mut self, holder: usize, indices: impl IntoIterator<Item = u32>) -> usize {
        indices.into_iter().filter(|&index| self.holder_has(holder, index)).count()
    }

    /// From now on `holder` (a complete one) gets only chunks no partial holder is known to
    /// have, and in the endgame races: a seeder steering a crowd (it offers chunks rather than
    /// saying "all") has one uplink for the whole crowd, and a chunk another leecher holds is
    /// better fetched there.
    pub fn spare(&mut self, holder: usize) {
        if let Some(h) = self.holders.get_mut(holder) {
            h.spare = true;
            h.starved = None;
        }
    }

    /// `holder` is no longer spared (see [`Scheduler::spare`]): the download needs it for
    /// chunks it did not offer. Returns whether it was spared until now.
    pub fn unspare(&mut self, holder: usize) -> bool {
        let Some(h) = self.holders.get_mut(holder).filter(|h| h.spare && !h.dropped) else { return false };
        h.spare = false;
        h.starved = None;
        true
    }

    /// Whether `holder` is known to have chunk `index` (false once it is dropped).
    pub fn holder_might_have(&self, holder: usize, index: u32) -> bool {
        (index as usize) < self.chunks.len() && self.holders.get(holder).is_some_and(|h| h.holdings.has(index))
    }

    /// How many live holders are known to have chunk `index`.
    pub fn availability(&self, index: u32) -> u32 {
        self.partial.get(index as usize).map_or(0, |partial| partial + self.seeds)
    }

    /// From now on `holder` gets up to `window` chunks in flight (what it has stays).
    pub fn set_window(&mut self, holder: usize, window: usize) {
        if let Some(h) = self.holders.get_mut(holder) {
            h.window = window.max(self.min_window);
        }
    }

    /// The next chunk for `holder`, if it may take one: one it has, needed, and not the one it
    /// just failed unless nothing else is left; at random for the first [`RANDOM_FIRST`], then
    /// the rarest. With no needed chunk left at any holder, a chunk in flight at one other
    /// holder, to race it.
    pub fn next(&mut self, holder: usize) -> Option<u32> {
        let h = self.holders.get(holder)?;
        if h.dropped || h.receiving >= h.window {
            return None;
        }
        let phase = self.phase();
        // In the endgame a holder races one chunk at a time: a whole window of second copies
        // would send a small file twice (4 holders, 8 MiB, 4 MiB windows: it did).
        let no_race = phase == Phase::Endgame && (h.receiving >= ENDGAME_RACES || self.races() >= MAX_RACES);
        if h.starved == Some(phase) || no_race {
            return None;
        }
        let pick = match phase {
            Phase::Needed => self.pick_needed(holder),
            Phase::Endgame => self.pick_race(holder),
        };
        match pick {
            Some(index) => self.assign(holder, index),
            None => self.holders[holder].starved = Some(phase),
        }
        pick
    }

    /// Chunks being raced now (in flight at two holders); only the chunks in flight are looked at.
    fn races(&self) -> usize {
        self.flying.items().iter().filter(|&&chunk| self.slots[chunk as usize][1] != FREE).count()
    }

    /// Hands `holder` chunk `index` if it could have picked it: needed, one it has, and room
    /// in its window (the first holder's chunks asked for before the plan existed). Returns
    /// whether it did.
    pub fn claim(&mut self, holder: usize, index: u32) -> bool {
        let fits = self.holders.get(holder).is_some_and(|h| !h.dropped && h.receiving < h.window && h.holdings.has(index));
        let needed = self.chunks.get(index as usize) == Some(&Chunk::Needed);
        if fits && needed {
            self.assign(holder, index);
        }
        fits && needed
    }

    /// The fetch of a chunk from `holder` is over on the link (its bytes are here, or it
    /// failed): the link has room for another, whatever the verification says.
    pub fn arrived(&mut self, holder: usize) {
        if let Some(h) = self.holders.get_mut(holder) {
            h.receiving = h.receiving.saturating_sub(1);
        }
    }

    /// Whether chunk `index` is verified already (a racer's late copy need not be checked).
    pub fn is_done(&self, index: u32) -> bool {
        self.chunks.get(index as usize) == Some(&Chunk::Done)
    }

    /// `holder` delivered `index`, verified. Returns false if another racer was first.
    pub fn done(&mut self, holder: usize, index: u32) -> bool {
        self.release(holder, index);
        let i = index as usize;
        if self.chunks.get(i).is_none_or(|c| *c == Chunk::Done) {
            return false;
        }
        self.take_needed(index);
        self.flying.remove(index);
        if let Some(h) = self.holders.get_mut(holder) {
            h.delivered += 1;
        }
        self.chunks[i] = Chunk::Done;
        self.remaining -= 1;
        true
    }

    /// `holder` failed to deliver `index`; the chunk goes back among the needed ones, ahead of
    /// those as rare (or, raced, stays with the other racer). Returns true if this failure is
    /// the one that dropped the holder.
    pub fn failed(&mut self, holder: usize, index: u32, penalty: Penalty) -> bool {
        self.release(holder, index);
        let Some(h) = self.holders.get_mut(holder) else { return false };
        h.strikes += 1;
        let newly_dropped = !h.dropped && (penalty == Penalty::Drop || h.strikes >= MAX_STRIKES);
        h.dropped |= newly_dropped;
        if newly_dropped {
            self.forget(holder);
        }
        let i = index as usize;
        if self.chunks.get(i) != Some(&Chunk::InFlight) {
            return newly_dropped;
        }
        if self.slots[i][0] == FREE {
            self.chunks[i] = Chunk::Needed;
            self.flying.remove(index);
            self.failed_by[i] = holder as u32;
            self.put_needed(index);
        }
        // Needed again, or raced by one holder only: either way others may take it now.
        self.wake(index);
        newly_dropped
    }

    /// Stops giving `holder` work and stops counting what it has (it broke the protocol, or
    /// does not share the file); its chunks in flight still end through `done` or `failed`.
    /// Returns whether it was live until now.
    pub fn drop_holder(&mut self, holder: usize) -> bool {
        let Some(h) = self.holders.get_mut(holder).filter(|h| !h.dropped) else { return false };
        h.dropped = true;
        self.forget(holder);
        true
    }

    /// Whether `holder` has been dropped (an unknown one counts as dropped: it takes no work).
    pub fn is_dropped(&self, holder: usize) -> bool {
        self.holders.get(holder).is_none_or(|h| h.dropped)
    }

    /// Every chunk verified.
    pub fn is_complete(&self) -> bool {
        self.remaining == 0
    }

    /// Chunks still missing.
    pub fn remaining(&self) -> usize {
        self.remaining
    }

    /// Holders still taking work.
    pub fn live_holders(&self) -> usize {
        self.holders.iter().filter(|h| !h.dropped).count()
    }

    /// Chunks each holder delivered first (an endgame racer's late copy does not count), so
    /// the counts add up to the chunks fetched.
    pub fn delivered(&self, holder: usize) -> u32 {
        self.holders.get(holder).map_or(0, |h| h.delivered)
    }
}

#[cfg(test)]
mod simulations;
#[cfg(test)]
mod tests;
