//! The needed chunks, ordered by how many partial holders have them: libtorrent's piece-picker
//! layout ("writing a fast piece picker").
//!
//! One array holds every needed chunk, bucket 0 first, then bucket 1, and so on; `starts` says
//! where each bucket begins and `pos` where each chunk sits. A chunk changes bucket by one
//! swap with the bucket's edge and one boundary move, so a have costs O(1); inserting or
//! removing a chunk shifts one element per higher bucket, O(buckets) with at most one bucket per
//! partial holder. Within a bucket the order is random: every chunk lands at a random place
//! in its new bucket, so the first entry is a fair draw among equally rare chunks and a crowd
//! of downloaders with the same holders does not all start at chunk 0.
//!
//! [`Listed`] is the same array-and-positions trick without the buckets: the chunks in flight,
//! which the endgame walks instead of every chunk.

use super::rng::Rng;

/// `pos` of a chunk that is not in the array.
const OUT: u32 = u32::MAX;

/// Needed chunks bucketed by availability; the caller keeps each chunk's bucket (its count of
/// partial holders) and passes it in.
#[derive(Clone, Debug)]
pub(super) struct Buckets {
    order: Vec<u32>,
    pos: Vec<u32>,
    starts: Vec<u32>,
}

impl Buckets {
    /// Room for chunks `0..count`, with `needed` in bucket 0 in random order.
    pub(super) fn new(count: u32, needed: impl Iterator<Item = u32>, rng: &mut Rng) -> Buckets {
        let mut buckets = Buckets { order: Vec::new(), pos: vec![OUT; count as usize], starts: vec![0] };
        for chunk in needed {
            buckets.pos[chunk as usize] = buckets.order.len() as u32;
            buckets.order.push(chunk);
        }
        buckets.shuffle(rng);
        buckets
    }

    /// How many chunks are in.
    pub(super) fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether `chunk` is in.
    pub(super) fn contains(&self, chunk: u32) -> bool {
        self.pos[chunk as usize] != OUT
    }

    /// The needed chunks, rarest first.
    pub(super) fn order(&self) -> &[u32] {
        &self.order
    }

    /// Where bucket `k` begins in [`Buckets::order`] (the end, if no chunk is that common).
    pub(super) fn start(&self, k: usize) -> usize {
        match self.starts.get(k) {
            Some(&start) => start as usize,
            None => self.order.len(),
        }
    }

    /// Where bucket `k` ends (exclusive).
    fn end(&self, k: usize) -> usize {
        self.start(k + 1)
    }

    /// How many chunks bucket `k` holds.
    pub(super) fn bucket_len(&self, k: usize) -> usize {
        self.end(k) - self.start(k)
    }

    /// Makes buckets up to `k` exist (empty ones sit at the end).
    fn ensure(&mut self, k: usize) {
        while self.starts.len() <= k {
            self.starts.push(self.order.len() as u32);
        }
    }

    fn set(&mut self, at: usize, chunk: u32) {
        self.order[at] = chunk;
        self.pos[chunk as usize] = at as u32;
    }

    fn swap(&mut self, a: usize, b: usize) {
        let (x, y) = (self.order[a], self.order[b]);
        self.set(a, y);
        self.set(b, x);
    }

    /// Swaps the chunk at `at` with a random one of bucket `k`.
    fn scatter(&mut self, at: usize, k: usize, rng: &mut Rng) {
        let (start, len) = (self.start(k), self.bucket_len(k));
        self.swap(at, start + rng.below(len));
    }

    /// Puts `chunk` (not in) first in bucket `k`, ahead of its equals: only a retry is
    /// inserted, and it has waited already. Each higher bucket passes its first element to its
    /// end, which opens a slot at the end of bucket `k`. (Later moves may shuffle it back among
    /// its equals: the place is a preference, not a promise.)
    pub(super) fn insert(&mut self, chunk: u32, k: usize) {
        debug_assert!(!self.contains(chunk));
        self.ensure(k);
        self.order.push(chunk);
        let mut free = self.order.len() - 1;
        for j in (k + 1..self.starts.len()).rev() {
            let first = self.starts[j] as usize;
            if first != free {
                self.set(free, self.order[first]);
            }
            self.starts[j] += 1;
            free = first;
        }
        self.set(free, chunk);
        self.swap(free, self.start(k));
    }

    /// Takes `chunk` (in bucket `k`) out: the last of its bucket fills its slot, and each
    /// higher bucket passes its last element to the slot before its start.
    pub(super) fn remove(&mut self, chunk: u32, k: usize) {
        debug_assert!(self.start(k) <= self.pos[chunk as usize] as usize && (self.pos[chunk as usize] as usize) < self.end(k));
        let mut free = self.pos[chunk as usize] as usize;
        let last = self.end(k) - 1;
        if last != free {
            self.set(free, self.order[last]);
        }
        free = last;
        for j in k + 1..self.starts.len() {
            let last = self.end(j) - 1;
            self.starts[j] -= 1;
            // An empty bucket's start just moves onto the free slot; a full one fills it.
            if last != free {
                self.set(free, self.order[last]);
                free = last;
            }
        }
        debug_assert_eq!(free, self.order.len() - 1);
        self.order.pop();
        self.pos[chunk as usize] = OUT;
    }

    /// Moves `chunk` from bucket `k` to `k + 1` (one more holder has it).
    pub(super) fn raise(&mut self, chunk: u32, k: usize, rng: &mut Rng) {
        self.ensure(k + 1);
        let edge = self.end(k) - 1;
        self.swap(self.pos[chunk as usize] as usize, edge);
        self.starts[k + 1] -= 1;
        self.scatter(edge, k + 1, rng);
    }

    /// Moves `chunk` from bucket `k` (> 0) to `k - 1` (a holder that had it is gone).
    pub(super) fn lower(&mut self, chunk: u32, k: usize, rng: &mut Rng) {
        debug_assert!(k > 0);
        let edge = self.start(k);
        self.swap(self.pos[chunk as usize] as usize, edge);
        self.starts[k] += 1;
        self.scatter(edge, k - 1, rng);
    }

    /// Shuffles every bucket afresh (Fisher–Yates within each) from index order, so that the
    /// order depends only on what is in each bucket and on `rng`.
    pub(super) fn shuffle(&mut self, rng: &mut Rng) {
        for k in 0..self.starts.len() {
            let (start, end) = (self.start(k), self.end(k));
            self.order[start..end].sort_unstable();
            for i in (1..end - start).rev() {
                self.order.swap(start + i, start + rng.below(i + 1));
            }
            for at in start..end {
                self.pos[self.order[at] as usize] = at as u32;
            }
        }
    }
}

/// A set of chunks in no particular order, with O(1) insert and remove (the chunks in flight,
/// which the endgame walks instead of every chunk).
#[derive(Clone, Debug)]
pub(super) struct Listed {
    items: Vec<u32>,
    pos: Vec<u32>,
}

impl Listed {
    /// An empty set with room for chunks `0..count`.
    pub(super) fn new(count: u32) -> Listed {
        Listed { items: Vec::new(), pos: vec![OUT; count as usize] }
    }

    /// Adds `chunk` if it is not in yet.
    pub(super) fn insert(&mut self, chunk: u32) {
        if self.pos[chunk as usize] == OUT {
            self.pos[chunk as usize] = self.items.len() as u32;
            self.items.push(chunk);
        }
    }

    /// Takes `chunk` out if it is in.
    pub(super) fn remove(&mut self, chunk: u32) {
        let at = std::mem::replace(&mut self.pos[chunk as usize], OUT);
        if at == OUT {
            return;
        }
        self.items.swap_remove(at as usize);
        if let Some(&moved) = self.items.get(at as usize) {
            self.pos[moved as usize] = at;
        }
    }

    /// The chunks in.
    pub(super) fn items(&self) -> &[u32] {
        &self.items
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every chunk in is where `pos` says, in the bucket `keys` says, and no other is in.
    fn check(b: &Buckets, keys: &[usize], inside: &[bool]) {
        assert_eq!(b.len(), inside.iter().filter(|i| **i).count());
        for (chunk, &k) in keys.iter().enumerate() {
            assert_eq!(b.contains(chunk as u32), inside[chunk], "chunk {chunk}");
            if inside[chunk] {
                let at = b.pos[chunk] as usize;
                assert_eq!(b.order[at], chunk as u32);
                assert!(b.start(k) <= at && at < b.end(k), "chunk {chunk} at {at}, not in bucket {k}: {:?}", b.starts);
            }
        }
    }

    #[test]
    fn random_moves_keep_every_chunk_in_its_bucket() {
        let mut rng = Rng::seeded(7);
        let count = 200;
        let mut b = Buckets::new(count, 0..count, &mut rng);
        let mut keys = vec![0usize; count as usize];
        let mut inside = vec![true; count as usize];
        for step in 0..20_000 {
            let chunk = rng.below(count as usize);
            let k = keys[chunk];
            match rng.below(4) {
                0 if keys[chunk] < 12 => {
                    if inside[chunk] {
                        b.raise(chunk as u32, k, &mut rng);
                    }
                    keys[chunk] += 1;
                }
                1 if keys[chunk] > 0 => {
                    if inside[chunk] {
                        b.lower(chunk as u32, k, &mut rng);
                    }
                    keys[chunk] -= 1;
                }
                2 if inside[chunk] => {
                    b.remove(chunk as u32, k);
                    inside[chunk] = false;
                }
                3 if !inside[chunk] => {
                    b.insert(chunk as u32, k);
                    inside[chunk] = true;
                    assert_eq!(b.order[b.start(k)], chunk as u32, "a retry goes first among its equals");
                }
                _ => {}
            }
            if step % 97 == 0 {
                check(&b, &keys, &inside);
            }
        }
        check(&b, &keys, &inside);
        let order: Vec<usize> = b.order().iter().map(|&c| keys[c as usize]).collect();
        assert!(order.is_sorted(), "rarest first: {order:?}");
    }

    #[test]
    fn a_listed_set_keeps_what_is_in() {
        let mut set = Listed::new(10);
        [3, 5, 7, 5].into_iter().for_each(|c| set.insert(c));
        set.remove(3);
        set.remove(9);
        let mut items = set.items().to_vec();
        items.sort();
        assert_eq!(items, [5, 7]);
        set.remove(7);
        assert_eq!(set.items(), [5]);
    }

    #[test]
    fn the_order_within_a_bucket_depends_on_the_seed() {
        let a = Buckets::new(1000, 0..1000, &mut Rng::seeded(1));
        let b = Buckets::new(1000, 0..1000, &mut Rng::seeded(2));
        let again = Buckets::new(1000, 0..1000, &mut Rng::seeded(1));
        assert_ne!(a.order(), b.order());
        assert_eq!(a.order(), again.order());
    }
}
