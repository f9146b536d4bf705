//! The picker's dice: SplitMix64, small and fast, enough to break ties between chunks (nothing
//! here needs to be unpredictable to an attacker, only different between downloaders).

use std::hash::{BuildHasher, Hasher};

/// A SplitMix64 generator (Steele, Lea and Flood's, as in `java.util.SplittableRandom`).
#[derive(Clone, Debug)]
pub(super) struct Rng(u64);

impl Rng {
    /// A generator that replays the same numbers for the same seed.
    pub(super) fn seeded(seed: u64) -> Rng {
        Rng(seed)
    }

    /// A generator seeded differently in every scheduler: the standard library keys each
    /// `RandomState` afresh (random per thread, then stepped), which costs nothing to read.
    pub(super) fn varying() -> Rng {
        Rng(std::collections::hash_map::RandomState::new().build_hasher().finish())
    }

    pub(super) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`), by Lemire's multiply-shift: the bias, at most n / 2^64,
    /// is far below anything a tie-break could notice.
    pub(super) fn below(&mut self, n: usize) -> usize {
        debug_assert!(n > 0);
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_is_splitmix64() {
        // The first outputs for seed 0 of the reference implementation (Vigna's splitmix64.c).
        let mut rng = Rng::seeded(0);
        assert_eq!([rng.next_u64(), rng.next_u64()], [0xE220_A839_7B1D_CDAF, 0x6E78_9E6A_A1B9_65F4]);
        assert!((0..1000).all(|_| rng.below(7) < 7));
    }
}
