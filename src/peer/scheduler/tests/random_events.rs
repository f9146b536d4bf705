//! Random sequences of events against the picker: every count stays true, and a holder told
//! "nothing" really had nothing it could take.

use super::*;

/// Every count the picker keeps agrees with what it was told, after each of many random
/// events: haves, bitfields, seeders, picks, arrivals, dones, failures and drops.
#[test]
fn random_events_keep_every_count_true() {
    let mut rng = Rng::seeded(31);
    for round in 0..20 {
        let count = 1 + rng.below(80) as u32;
        let kept: Vec<bool> = (0..count).map(|_| rng.below(5) == 0).collect();
        let mut s = Scheduler::new(count, 1, |i| kept[i as usize]).with_seed(round);
        let mut flying: Vec<(usize, u32)> = Vec::new();
        for _ in 0..600 {
            match rng.below(10) {
                0 if s.holders.len() < 8 => _ = s.add_holder(1 + rng.below(4)),
                1 if !s.holders.is_empty() && rng.below(8) == 0 => s.holder_has_all(rng.below(s.holders.len())),
                1..=3 if !s.holders.is_empty() => _ = s.holder_has(rng.below(s.holders.len()), rng.below(count as usize + 2) as u32),
                4..=6 if !s.holders.is_empty() => {
                    let h = rng.below(s.holders.len());
                    match s.next(h) {
                        Some(c) => {
                            assert!(s.holder_might_have(h, c));
                            flying.push((h, c));
                        }
                        None => check_nothing_for(&s, h),
                    }
                }
                _ if !flying.is_empty() => {
                    let (h, c) = flying.swap_remove(rng.below(flying.len()));
                    s.arrived(h);
                    match rng.below(6) {
                        0 => _ = s.failed(h, c, Penalty::Strike),
                        1 if rng.below(3) == 0 => _ = s.failed(h, c, Penalty::Drop),
                        _ => _ = s.done(h, c),
                    }
                }
                _ => {}
            }
            check_counts(&s);
        }
    }
}

/// `next(h)` said None: with room in its window, nothing was there for it (so a starved
/// holder was rightly left alone).
fn check_nothing_for(s: &Scheduler, h: usize) {
    let state = &s.holders[h];
    if state.dropped || state.receiving >= state.window {
        return;
    }
    let has = |c: u32| state.holdings.has(c);
    let needed = (0..s.chunks.len() as u32).any(|c| s.chunks[c as usize] == Chunk::Needed && has(c));
    assert!(!needed, "holder {h} got nothing, but has a needed chunk");
    let missing = (0..s.chunks.len() as u32).any(|c| s.chunks[c as usize] == Chunk::Needed);
    let raceable = |c: u32| {
        let slots = s.slots[c as usize];
        s.chunks[c as usize] == Chunk::InFlight && slots[0] != h as u32 && slots[1] == FREE && has(c)
    };
    let races = (0..s.chunks.len() as u32).filter(|&c| s.slots[c as usize][1] != FREE).count();
    assert!(
        missing || races >= super::MAX_RACES || !(0..s.chunks.len() as u32).any(raceable),
        "holder {h} got nothing in the endgame, but could race"
    );
}

fn check_counts(s: &Scheduler) {
    let live = |h: &&HolderState| !h.dropped;
    assert_eq!(s.seeds as usize, s.holders.iter().filter(live).filter(|h| h.holdings.is_all()).count());
    for c in 0..s.chunks.len() as u32 {
        let partial = s.holders.iter().filter(live).filter(|h| h.holdings.is_partial() && h.holdings.has(c)).count();
        assert_eq!(s.partial[c as usize] as usize, partial, "chunk {c}");
        assert_eq!(s.needed.contains(c), s.chunks[c as usize] == Chunk::Needed, "chunk {c}");
    }
    for (i, h) in s.holders.iter().enumerate().filter(|(_, h)| !h.dropped && h.holdings.is_partial()) {
        for k in 0..h.holdings.buckets().max(1) {
            let truth = (0..s.chunks.len() as u32)
                .filter(|&c| s.needed.contains(c) && s.partial[c as usize] as usize == k && h.holdings.has(c))
                .count();
            assert_eq!(h.holdings.in_bucket(k) as usize, truth, "holder {i}, bucket {k}");
        }
    }
}
