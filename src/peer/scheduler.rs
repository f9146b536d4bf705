//! Which chunk to ask which holder for: plain state, no I/O.
//!
//! Each chunk is needed, in flight at one holder, or done. Each holder gets up to its window
//! of chunks in flight (set from its link as the download goes, see [`Scheduler::set_window`]). A chunk that fails goes back to the front of the queue so another holder
//! picks it up next; a holder is struck for each failure and dropped for this download after
//! [`MAX_STRIKES`], or at once when its connection is gone. In the endgame, when nothing is
//! left to hand out, an idle holder may race a slow one for a chunk still in flight: whichever
//! verifies first wins and the other copy is ignored.

use std::collections::VecDeque;

/// How far past the queue's front a holder looks for a chunk it did not just fail.
const RETRY_LOOKAHEAD: usize = 64;
/// An empty slot in [`Scheduler::slots`].
const FREE: u32 = u32::MAX;

/// Failures after which a holder gets no more work in this download.
pub const MAX_STRIKES: u32 = 3;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Chunk {
    Needed,
    InFlight,
    Done,
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
    queue: VecDeque<u32>,
    /// The holder that last failed each chunk, which should not get it straight back.
    failed_by: Vec<u32>,
    holders: Vec<HolderState>,
    remaining: usize,
}

impl Scheduler {
    /// A plan for `count` chunks over `holders` holders, `window` chunks in flight per holder
    /// to begin with; chunks already `have` are not fetched.
    pub fn new(count: u32, holders: usize, window: usize, have: impl Fn(u32) -> bool) -> Scheduler {
        let chunks: Vec<Chunk> = (0..count).map(|i| if have(i) { Chunk::Done } else { Chunk::Needed }).collect();
        let queue: VecDeque<u32> = (0..count).filter(|&i| chunks[i as usize] == Chunk::Needed).collect();
        let remaining = queue.len();
        let slots = vec![[FREE; 2]; count as usize];
        let failed_by = vec![FREE; count as usize];
        let holders = vec![HolderState { window, ..HolderState::default() }; holders];
        Scheduler { chunks, slots, queue, failed_by, holders, remaining }
    }

    /// A holder found after the plan began, taking up to `window` chunks at once; returns its
    /// index.
    pub fn add_holder(&mut self, window: usize) -> usize {
        self.holders.push(HolderState { window: window.max(1), ..HolderState::default() });
        self.holders.len() - 1
    }

    /// From now on `holder` gets up to `window` chunks in flight (what it has stays).
    pub fn set_window(&mut self, holder: usize, window: usize) {
        if let Some(h) = self.holders.get_mut(holder) {
            h.window = window.max(1);
        }
    }

    /// The next chunk for `holder`, if it may take one.
    pub fn next(&mut self, holder: usize) -> Option<u32> {
        let h = self.holders.get(holder)?;
        if h.dropped || h.receiving >= h.window {
            return None;
        }
        let index = self.take_queued(holder).or_else(|| self.endgame_pick(holder))?;
        self.chunks[index as usize] = Chunk::InFlight;
        let slots = &mut self.slots[index as usize];
        slots[usize::from(slots[0] != FREE)] = holder as u32;
        self.holders[holder].in_flight += 1;
        self.holders[holder].receiving += 1;
        Some(index)
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

    /// The first queued chunk `holder` did not just fail; failed chunks sit at the front, so
    /// the look past them is short. If it failed them all, it may retry one (it is the only
    /// holder left to try, or the others are busy).
    fn take_queued(&mut self, holder: usize) -> Option<u32> {
        let mine = holder as u32;
        let pos = self.queue.iter().take(RETRY_LOOKAHEAD).position(|&i| self.failed_by[i as usize] != mine).unwrap_or(0);
        self.queue.remove(pos)
    }

    /// A chunk in flight at exactly one other holder, to race when there is nothing else to do.
    fn endgame_pick(&self, holder: usize) -> Option<u32> {
        let racing = |s: &[u32; 2]| s[0] != FREE && s[0] != holder as u32 && s[1] == FREE;
        let pos = self.chunks.iter().zip(&self.slots).position(|(c, s)| *c == Chunk::InFlight && racing(s))?;
        Some(pos as u32)
    }

    /// `holder` delivered `index`, verified. Returns false if another racer was first.
    pub fn done(&mut self, holder: usize, index: u32) -> bool {
        self.release(holder, index);
        if self.chunks[index as usize] == Chunk::Done {
            return false;
        }
        self.holders[holder].delivered += 1;
        self.chunks[index as usize] = Chunk::Done;
        self.queue.retain(|&i| i != index);
        self.remaining -= 1;
        true
    }

    /// `holder` failed to deliver `index`; the chunk goes back to the front of the queue.
    /// Returns true if this failure is the one that dropped the holder.
    pub fn failed(&mut self, holder: usize, index: u32, penalty: Penalty) -> bool {
        self.release(holder, index);
        let h = &mut self.holders[holder];
        h.strikes += 1;
        let newly_dropped = !h.dropped && (penalty == Penalty::Drop || h.strikes >= MAX_STRIKES);
        h.dropped |= newly_dropped;
        let i = index as usize;
        if self.chunks[i] != Chunk::Done && self.slots[i][0] == FREE {
            self.chunks[i] = Chunk::Needed;
            self.queue.push_front(index);
            self.failed_by[i] = holder as u32;
        }
        newly_dropped
    }

    fn release(&mut self, holder: usize, index: u32) {
        let h = &mut self.holders[holder];
        h.in_flight -= 1;
        // A chunk settled without `arrived` (a caller that skips it) leaves the link too.
        h.receiving = h.receiving.min(h.in_flight);
        let slots = &mut self.slots[index as usize];
        if slots[0] == holder as u32 {
            *slots = [slots[1], FREE];
        } else if slots[1] == holder as u32 {
            slots[1] = FREE;
        }
    }

    /// Whether `holder` has been dropped.
    pub fn is_dropped(&self, holder: usize) -> bool {
        self.holders[holder].dropped
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
        self.holders[holder].delivered
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_holder_found_later_takes_what_is_left() {
        let mut plan = Scheduler::new(4, 1, 2, |_| false);
        assert_eq!((plan.next(0), plan.next(0), plan.next(0)), (Some(0), Some(1), None));
        assert!(plan.failed(0, 0, Penalty::Drop));
        plan.failed(0, 1, Penalty::Drop);
        assert_eq!(plan.live_holders(), 0);
        let late = plan.add_holder(8);
        assert_eq!(plan.live_holders(), 1);
        let got: Vec<u32> = std::iter::from_fn(|| plan.next(late)).collect();
        assert_eq!(got.len(), 4, "the newcomer gets every missing chunk: {got:?}");
        got.iter().for_each(|&i| assert!(plan.done(late, i)));
        assert!(plan.is_complete() && plan.delivered(late) == 4);
    }

    #[test]
    fn work_spreads_over_holders_within_the_window() {
        let mut s = Scheduler::new(10, 2, 3, |_| false);
        let a: Vec<u32> = std::iter::from_fn(|| s.next(0)).collect();
        let b: Vec<u32> = std::iter::from_fn(|| s.next(1)).collect();
        assert_eq!(a, [0, 1, 2]);
        assert_eq!(b, [3, 4, 5]);
        s.arrived(0);
        assert_eq!(s.next(0), Some(6), "a chunk being verified leaves room on the link");
        assert_eq!(s.next(0), None);
        assert!(s.done(0, 0));
        assert!(s.is_done(0) && !s.is_done(1));
    }

    #[test]
    fn a_failed_chunk_goes_to_another_holder_first() {
        let mut s = Scheduler::new(4, 2, 1, |_| false);
        assert_eq!(s.next(0), Some(0));
        assert_eq!(s.next(1), Some(1));
        s.failed(0, 0, Penalty::Strike);
        assert!(s.done(1, 1));
        assert_eq!(s.next(1), Some(0));
    }

    #[test]
    fn a_failed_chunk_does_not_go_straight_back_to_the_holder_that_failed_it() {
        let mut s = Scheduler::new(4, 2, 1, |_| false);
        assert_eq!(s.next(0), Some(0));
        s.failed(0, 0, Penalty::Strike);
        assert_eq!(s.next(0), Some(1), "holder 0 skips the chunk it failed");
        assert_eq!(s.next(1), Some(0), "holder 1 picks it up");
        // With nothing else left, a holder may retry what it failed.
        let mut s = Scheduler::new(1, 1, 1, |_| false);
        assert_eq!(s.next(0), Some(0));
        s.failed(0, 0, Penalty::Strike);
        assert_eq!(s.next(0), Some(0));
    }

    #[test]
    fn strikes_and_drops_remove_a_holder() {
        let mut s = Scheduler::new(8, 2, 8, |_| false);
        let dropped: Vec<bool> = (0..MAX_STRIKES)
            .map(|_| {
                let i = s.next(0).unwrap();
                s.failed(0, i, Penalty::Strike)
            })
            .collect();
        assert_eq!(dropped.iter().filter(|d| **d).count(), 1, "reported once");
        assert!(dropped[MAX_STRIKES as usize - 1]);
        assert!(s.is_dropped(0));
        assert_eq!(s.next(0), None);
        let i = s.next(1).unwrap();
        assert!(s.failed(1, i, Penalty::Drop));
        assert_eq!(s.live_holders(), 0);
        assert_eq!(s.remaining(), 8);
    }

    #[test]
    fn each_holder_has_its_own_window() {
        let mut s = Scheduler::new(10, 2, 1, |_| false);
        s.set_window(0, 3);
        assert_eq!(std::iter::from_fn(|| s.next(0)).count(), 3);
        assert_eq!(std::iter::from_fn(|| s.next(1)).count(), 1);
        s.set_window(0, 1);
        s.arrived(0);
        assert!(s.done(0, 0));
        assert_eq!(s.next(0), None, "a shrunk window waits until fewer are in flight");
    }

    #[test]
    fn chunks_we_have_are_skipped() {
        let mut s = Scheduler::new(4, 1, 8, |i| i % 2 == 0);
        assert_eq!(s.remaining(), 2);
        assert_eq!(s.next(0), Some(1));
        assert_eq!(s.next(0), Some(3));
    }

    #[test]
    fn the_endgame_races_the_last_chunk_and_the_first_copy_wins() {
        let mut s = Scheduler::new(1, 2, 4, |_| false);
        assert_eq!(s.next(0), Some(0));
        assert_eq!(s.next(1), Some(0));
        assert_eq!(s.next(1), None);
        assert!(s.done(1, 0));
        assert!(!s.done(0, 0));
        assert!(s.is_complete());
        assert_eq!((s.delivered(0), s.delivered(1)), (0, 1), "only the winner's copy counts");
    }

    #[test]
    fn a_holder_never_races_itself() {
        let mut s = Scheduler::new(1, 2, 4, |_| false);
        assert_eq!(s.next(0), Some(0));
        assert_eq!(s.next(0), None);
        assert_eq!(s.next(1), Some(0));
        s.failed(0, 0, Penalty::Strike);
        assert_eq!(s.next(1), None);
        assert_eq!(s.next(0), Some(0));
    }
}
