//! How [`Scheduler::next`] chooses, and the bookkeeping that keeps its buckets and counts true
//! as chunks and holders come and go.

use super::holdings::Draw;
use super::{Chunk, FREE, Phase, RANDOM_FIRST, RANDOM_PROBES, Scheduler};

/// Picking.
impl Scheduler {
    /// The endgame once every missing chunk is in flight. Not while some are at no holder
    /// yet: in a crowd, where most of a leecher's missing chunks are at nobody for most of
    /// the download, idle holders raced the chunks in flight all along, and 16 leechers sent
    /// 18.6 copies of the file among themselves for the 14.9 they needed (in process, 64 MiB
    /// at 20 Mbit/s); a chunk that appears comes with a have, which wakes its holders.
    pub(super) fn phase(&self) -> Phase {
        if self.needed.len() > 0 { Phase::Needed } else { Phase::Endgame }
    }

    /// Chunks verified or kept from before: what this peer can already trade.
    pub(super) fn held(&self) -> usize {
        self.chunks.len() - self.remaining
    }

    /// A needed chunk for `holder`: at random while this peer has little to trade, else the
    /// rarest.
    pub(super) fn pick_needed(&mut self, holder: usize) -> Option<u32> {
        let random = if self.held() < RANDOM_FIRST { self.pick_random(holder) } else { None };
        random.or_else(|| if self.holders[holder].holdings.is_all() { self.pick_first(holder) } else { self.pick_rarest(holder) })
    }

    /// A needed chunk `holder` has, drawn uniformly.
    fn pick_random(&mut self, holder: usize) -> Option<u32> {
        if self.holders[holder].holdings.is_partial() {
            return self.pick_random_partial(holder);
        }
        let span = self.reach(holder);
        if span == 0 {
            return None;
        }
        let mut looked = 0;
        let pick = (0..RANDOM_PROBES).find_map(|_| {
            looked += 1;
            let chunk = self.needed.order()[self.rng.below(span)];
            (self.failed_by[chunk as usize] != holder as u32).then_some(chunk)
        });
        self.count_looked(looked);
        pick
    }

    /// How far into the needed chunks (rarest first) a complete holder may pick: all of them,
    /// or for a spare one (a seeder steering a crowd) only those no partial holder has
    /// (bucket 0; a spare holder still being offered chunks is a partial one, see
    /// [`Scheduler::pick_rarest`]).
    fn reach(&self, holder: usize) -> usize {
        if self.holders[holder].spare { self.needed.bucket_len(0) } else { self.needed.len() }
    }

    /// A partial holder's random pick: a bucket in proportion to the needed chunks it has
    /// there, then one of those.
    fn pick_random_partial(&mut self, holder: usize) -> Option<u32> {
        let holdings = &self.holders[holder].holdings;
        if holdings.wanted() == 0 {
            return None;
        }
        let k = if self.holders[holder].spare {
            1
        } else {
            let mut left = self.rng.below(holdings.wanted() as usize) as u32;
            let mut k = 1;
            while left >= holdings.in_bucket(k) {
                left -= holdings.in_bucket(k);
                k += 1;
            }
            k
        };
        if self.holders[holder].holdings.in_bucket(k) == 0 {
            return None;
        }
        let draw = self.draw(holder, k);
        self.count_looked(draw.looked);
        draw.fresh
    }

    /// A complete holder's pick: the first needed chunk, i.e. one of the rarest, past the few
    /// it failed (a live holder failed fewer than [`MAX_STRIKES`](super::MAX_STRIKES)), or
    /// one of those if that is all there is.
    fn pick_first(&mut self, holder: usize) -> Option<u32> {
        let order = &self.needed.order()[..self.reach(holder)];
        let fresh = order.iter().position(|&chunk| self.failed_by[chunk as usize] != holder as u32);
        let (pick, looked) = match fresh {
            Some(at) => (order[at], at + 1),
            None => (*order.first()?, order.len()),
        };
        self.count_looked(looked);
        Some(pick)
    }

    /// A partial holder's pick: one of the chunks it has in the lowest bucket holding any
    /// (its counts say which), at random, past those it failed unless they are all it has.
    fn pick_rarest(&mut self, holder: usize) -> Option<u32> {
        let (mut retry, mut looked) = (None, 0);
        // A spare holder (a seeder offering chunks to a crowd) only for chunks no other
        // partial holder has: bucket 1 counts the holder itself.
        let top = if self.holders[holder].spare {
            2.min(self.holders[holder].holdings.buckets())
        } else {
            self.holders[holder].holdings.buckets()
        };
        for k in 1..top {
            if self.holders[holder].holdings.in_bucket(k) == 0 {
                continue;
            }
            let draw = self.draw(holder, k);
            looked += draw.looked;
            if draw.fresh.is_some() {
                self.count_looked(looked);
                return draw.fresh;
            }
            retry = retry.or(draw.retry);
        }
        self.count_looked(looked);
        retry
    }

    /// A draw among the needed chunks `holder` has in bucket `k`.
    fn draw(&mut self, holder: usize, k: usize) -> Draw {
        let Scheduler { holders, needed, partial, failed_by, rng, .. } = self;
        let valid = |c: u32| needed.contains(c) && partial[c as usize] as usize == k;
        holders[holder].holdings.draw(k, rng, valid, |c| failed_by[c as usize] != holder as u32)
    }

    /// A chunk in flight at exactly one other holder, that `holder` has, to race; only the
    /// chunks in flight are looked at.
    pub(super) fn pick_race(&mut self, holder: usize) -> Option<u32> {
        let (mine, holdings) = (holder as u32, &self.holders[holder].holdings);
        let racing = |s: &[u32; 2]| s[0] != FREE && s[0] != mine && s[1] == FREE;
        let flying = self.flying.items();
        let at = flying.iter().position(|&chunk| racing(&self.slots[chunk as usize]) && holdings.has(chunk));
        self.count_looked(at.map_or(flying.len(), |at| at + 1));
        at.map(|at| self.flying.items()[at])
    }

    /// Chunks looked at while picking, counted for the tests.
    fn count_looked(&mut self, n: usize) {
        #[cfg(test)]
        {
            self.looked += n as u64;
        }
        let _ = n;
    }
}

/// Bookkeeping.
impl Scheduler {
    /// Puts `index` in flight at `holder`.
    pub(super) fn assign(&mut self, holder: usize, index: u32) {
        self.take_needed(index);
        self.chunks[index as usize] = Chunk::InFlight;
        self.flying.insert(index);
        let slots = &mut self.slots[index as usize];
        slots[usize::from(slots[0] != FREE)] = holder as u32;
        let h = &mut self.holders[holder];
        h.in_flight += 1;
        h.receiving += 1;
    }

    /// Takes `index` off `holder`'s chunks in flight.
    pub(super) fn release(&mut self, holder: usize, index: u32) {
        let Some(h) = self.holders.get_mut(holder) else { return };
        h.in_flight = h.in_flight.saturating_sub(1);
        // A chunk settled without `arrived` (a caller that skips it) leaves the link too.
        h.receiving = h.receiving.min(h.in_flight);
        let Some(slots) = self.slots.get_mut(index as usize) else { return };
        if slots[0] == holder as u32 {
            *slots = [slots[1], FREE];
        } else if slots[1] == holder as u32 {
            slots[1] = FREE;
        }
    }

    /// `chunk` is no longer needed (in flight, or done), if it was.
    pub(super) fn take_needed(&mut self, chunk: u32) {
        if self.needed.contains(chunk) {
            let k = self.partial[chunk as usize] as usize;
            self.needed.remove(chunk, k);
            self.rebin(chunk, Some(k), None);
        }
    }

    /// `chunk` is needed again: it goes ahead of its equals.
    pub(super) fn put_needed(&mut self, chunk: u32) {
        let k = self.partial[chunk as usize] as usize;
        self.needed.insert(chunk, k);
        self.rebin(chunk, None, Some(k));
    }

    /// Partial `holder`, not known to have `chunk` yet, has it.
    pub(super) fn gain(&mut self, holder: usize, chunk: u32) {
        let k = self.partial[chunk as usize] as usize;
        let needed = self.needed.contains(chunk);
        if needed {
            self.needed.raise(chunk, k, &mut self.rng);
        }
        self.partial[chunk as usize] += 1;
        if needed {
            self.rebin(chunk, Some(k), Some(k + 1));
        }
        let count = self.chunks.len() as u32;
        let Scheduler { holders, needed: buckets, partial, .. } = self;
        let holdings = &mut holders[holder].holdings;
        holdings.add(chunk, count);
        if needed {
            holdings.shift(chunk, None, Some(k + 1), |c| buckets.contains(c) && partial[c as usize] as usize == k + 1);
        }
    }

    /// A partial holder that had `chunk` no longer counts (it left, or has everything now).
    pub(super) fn lose(&mut self, chunk: u32) {
        let k = self.partial[chunk as usize] as usize;
        let needed = self.needed.contains(chunk);
        if needed {
            self.needed.lower(chunk, k, &mut self.rng);
        }
        self.partial[chunk as usize] -= 1;
        if needed {
            self.rebin(chunk, Some(k), Some(k - 1));
        }
    }

    /// A needed `chunk` moved between buckets (or in or out of them), so it does in the
    /// holdings of the partial holders that have it.
    fn rebin(&mut self, chunk: u32, from: Option<usize>, to: Option<usize>) {
        let Scheduler { holders, needed, partial, .. } = self;
        let valid = |c: u32| needed.contains(c) && Some(partial[c as usize] as usize) == to;
        for h in holders {
            if h.holdings.is_partial() && h.holdings.has(chunk) {
                h.holdings.shift(chunk, from, to, valid);
            }
        }
    }

    /// A dropped holder's chunks no longer count.
    pub(super) fn forget(&mut self, holder: usize) {
        let gone = std::mem::take(&mut self.holders[holder].holdings);
        if gone.is_all() {
            self.seeds -= 1;
        }
        gone.partial_chunks().for_each(|chunk| self.lose(chunk));
    }

    /// Holders that have `chunk` may find work again.
    pub(super) fn wake(&mut self, chunk: u32) {
        self.holders.iter_mut().filter(|h| h.holdings.has(chunk)).for_each(|h| h.starved = None);
    }
}
