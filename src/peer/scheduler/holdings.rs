//! What one holder is known to have: everything, or a bitfield grown by haves.
//!
//! A partial holder also files the needed chunks it has by availability bucket, so its pick
//! is a draw from its lowest bucket rather than a walk past every rarer chunk it does not have
//! (for a holder with few chunks, most of them). Each bucket keeps an exact count and a list
//! that may hold stale entries: a chunk that changes bucket is added to the new list and left
//! in the old one, which is cheaper than finding it there. Draws drop the stale entries they
//! meet, and a list grown past twice what it kept is swept, so the lists stay within a small
//! factor of the chunks the holder has.

use super::rng::Rng;

/// Slack a bucket's list may carry before it is swept, on top of twice its count.
const SWEEP_SLACK: usize = 32;
/// Random draws that may meet a chunk the holder failed before its list is walked instead
/// (a live holder failed fewer than [`super::MAX_STRIKES`] chunks).
const RETRY_DRAWS: usize = 4;

/// The chunks one holder has.
#[derive(Clone, Debug, Default)]
pub(super) struct Holdings {
    all: bool,
    bits: Vec<u64>,
    /// How many bits are set.
    known: u32,
    /// Needed chunks it has, per bucket (partial holders only).
    bins: Vec<Bin>,
    /// How many needed chunks it has.
    wanted: u32,
}

/// The needed chunks a partial holder has in one bucket.
#[derive(Clone, Debug, Default)]
struct Bin {
    count: u32,
    /// Every chunk counted, in no order, and maybe some that left since (or twice, one that
    /// left and came back: a draw then favours it a little, which no test could tell).
    chunks: Vec<u32>,
    /// The list length at which it is swept next: twice what the last sweep kept, plus
    /// slack, so that sweeps cost O(1) a push whatever the list keeps.
    sweep_at: usize,
}

/// What a draw from a bucket found.
pub(super) struct Draw {
    /// A chunk it may take.
    pub(super) fresh: Option<u32>,
    /// Failing that, one it failed last, to retry if nothing else is left.
    pub(super) retry: Option<u32>,
    /// Entries looked at.
    pub(super) looked: usize,
}

impl Holdings {
    /// Whether it has `chunk`.
    pub(super) fn has(&self, chunk: u32) -> bool {
        match self.bits.get(chunk as usize / 64) {
            _ if self.all => true,
            Some(word) => word >> (chunk % 64) & 1 == 1,
            None => false,
        }
    }

    /// Whether it has every chunk.
    pub(super) fn is_all(&self) -> bool {
        self.all
    }

    /// Whether it has only some chunks (so its buckets are kept).
    pub(super) fn is_partial(&self) -> bool {
        !self.all
    }

    /// Records `chunk` of `count`; returns whether it is new.
    pub(super) fn add(&mut self, chunk: u32, count: u32) -> bool {
        if self.has(chunk) {
            return false;
        }
        if self.bits.is_empty() {
            self.bits = vec![0; count.div_ceil(64) as usize];
        }
        self.bits[chunk as usize / 64] |= 1 << (chunk % 64);
        self.known += 1;
        true
    }

    /// How many chunks it is known to have (of `count`).
    pub(super) fn count(&self, count: u32) -> u32 {
        if self.all { count } else { self.known }
    }

    /// Makes it a holder of everything; returns what it had before.
    pub(super) fn make_all(&mut self) -> Holdings {
        std::mem::replace(self, Holdings { all: true, ..Holdings::default() })
    }

    /// The chunks of a partial holder, in index order (none for a complete one).
    pub(super) fn partial_chunks(&self) -> impl Iterator<Item = u32> + '_ {
        let words = if self.all { &[][..] } else { &self.bits[..] };
        words.iter().enumerate().flat_map(|(w, &word)| (0..64).filter(move |b| word >> b & 1 == 1).map(move |b| (w * 64 + b) as u32))
    }

    /// Needed `chunk`, which it has, leaves bucket `from` and/or enters bucket `to`; `valid`
    /// tells whether an entry of bucket `to` is still there (for a sweep).
    pub(super) fn shift(&mut self, chunk: u32, from: Option<usize>, to: Option<usize>, valid: impl Fn(u32) -> bool) {
        if let Some(k) = from {
            self.bins[k].count -= 1;
            self.wanted -= 1;
        }
        let Some(k) = to else { return };
        if self.bins.len() <= k {
            self.bins.resize_with(k + 1, Bin::default);
        }
        let bin = &mut self.bins[k];
        bin.count += 1;
        bin.chunks.push(chunk);
        self.wanted += 1;
        if bin.chunks.len() > bin.sweep_at.max(2 * bin.count as usize + SWEEP_SLACK) {
            bin.chunks.retain(|&c| valid(c));
            bin.sweep_at = 2 * bin.chunks.len() + SWEEP_SLACK;
        }
    }

    /// How many needed chunks it has in bucket `k`.
    pub(super) fn in_bucket(&self, k: usize) -> u32 {
        self.bins.get(k).map_or(0, |bin| bin.count)
    }

    /// How many buckets it files chunks in (those past it hold none of its chunks).
    pub(super) fn buckets(&self) -> usize {
        self.bins.len()
    }

    /// How many needed chunks it has.
    pub(super) fn wanted(&self) -> u32 {
        self.wanted
    }

    /// A chunk of bucket `k` at random (`valid`: still in that bucket), one it may take
    /// (`fresh`) if there is one; drops the stale entries it meets.
    pub(super) fn draw(&mut self, k: usize, rng: &mut Rng, valid: impl Fn(u32) -> bool, fresh: impl Fn(u32) -> bool) -> Draw {
        let mut draw = Draw { fresh: None, retry: None, looked: 0 };
        let Some(bin) = self.bins.get_mut(k).filter(|bin| bin.count > 0) else { return draw };
        let mut retries = 0;
        while !bin.chunks.is_empty() && retries < RETRY_DRAWS {
            draw.looked += 1;
            let at = rng.below(bin.chunks.len());
            let chunk = bin.chunks[at];
            if !valid(chunk) {
                bin.chunks.swap_remove(at);
            } else if fresh(chunk) {
                draw.fresh = Some(chunk);
                return draw;
            } else {
                draw.retry = Some(chunk);
                retries += 1;
            }
        }
        // The draws kept meeting chunks it failed: walk the list once.
        draw.looked += bin.chunks.len();
        draw.fresh = bin.chunks.iter().copied().find(|&c| valid(c) && fresh(c));
        draw
    }
}
