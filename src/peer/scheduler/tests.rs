//! The picker's behaviours, one test each, no network.

use super::*;

mod endgame;
mod random_events;

/// A plan over `count` chunks with `holders` complete holders taking `window` chunks each.
fn complete(count: u32, holders: usize, window: usize) -> Scheduler {
    let mut plan = Scheduler::new(count, 1, |_| false).with_seed(1);
    for _ in 0..holders {
        let h = plan.add_holder(window);
        plan.holder_has_all(h);
    }
    plan
}

/// The same, with [`RANDOM_FIRST`] more chunks held already, so picks are rarest first from
/// the start; the needed ones are `RANDOM_FIRST..RANDOM_FIRST + count`.
fn complete_past_random(count: u32, holders: usize, window: usize) -> Scheduler {
    let mut plan = Scheduler::new(count + RANDOM_FIRST as u32, 1, |i| i < RANDOM_FIRST as u32).with_seed(1);
    for _ in 0..holders {
        let h = plan.add_holder(window);
        plan.holder_has_all(h);
    }
    plan
}

fn drain(plan: &mut Scheduler, holder: usize) -> Vec<u32> {
    std::iter::from_fn(|| plan.next(holder)).collect()
}

#[test]
fn a_holder_found_later_takes_what_is_left() {
    let mut plan = complete(4, 1, 2);
    let first = drain(&mut plan, 0);
    assert_eq!(first.len(), 2, "the window bounds it: {first:?}");
    assert!(plan.failed(0, first[0], Penalty::Drop));
    plan.failed(0, first[1], Penalty::Drop);
    assert_eq!(plan.live_holders(), 0);
    let late = plan.add_holder(8);
    assert_eq!(plan.next(late), None, "a holder that said nothing has nothing");
    plan.holder_has_all(late);
    assert_eq!(plan.live_holders(), 1);
    let got = drain(&mut plan, late);
    assert_eq!(got.len(), 4, "the newcomer gets every missing chunk: {got:?}");
    got.iter().for_each(|&i| assert!(plan.done(late, i)));
    assert!(plan.is_complete() && plan.delivered(late) == 4);
}

#[test]
fn work_spreads_over_holders_within_the_window() {
    let mut s = complete(10, 2, 3);
    let a = drain(&mut s, 0);
    let b = drain(&mut s, 1);
    assert_eq!((a.len(), b.len()), (3, 3));
    assert!(a.iter().all(|i| !b.contains(i)), "{a:?} {b:?}");
    s.arrived(0);
    let more = s.next(0).expect("a chunk being verified leaves room on the link");
    assert!(!a.contains(&more) && !b.contains(&more));
    assert_eq!(s.next(0), None);
    assert!(s.done(0, a[0]));
    assert!(s.is_done(a[0]) && !s.is_done(a[1]));
}

#[test]
fn a_failed_chunk_goes_to_another_holder_first() {
    let mut s = complete_past_random(4, 2, 1);
    let x = s.next(0).unwrap();
    let y = s.next(1).unwrap();
    s.failed(0, x, Penalty::Strike);
    assert!(s.done(1, y));
    assert_eq!(s.next(1), Some(x));
}

#[test]
fn a_failed_chunk_does_not_go_straight_back_to_the_holder_that_failed_it() {
    let mut s = complete_past_random(4, 2, 1);
    let x = s.next(0).unwrap();
    s.failed(0, x, Penalty::Strike);
    assert_ne!(s.next(0), Some(x), "holder 0 skips the chunk it failed");
    assert_eq!(s.next(1), Some(x), "holder 1 picks it up");
    // Also while picking at random.
    let mut s = complete(4, 1, 1);
    let x = s.next(0).unwrap();
    s.failed(0, x, Penalty::Strike);
    assert_ne!(s.next(0), Some(x));
    // With nothing else left, a holder may retry what it failed.
    let mut s = complete(1, 1, 1);
    assert_eq!(s.next(0), Some(0));
    s.failed(0, 0, Penalty::Strike);
    assert_eq!(s.next(0), Some(0));
}

#[test]
fn strikes_and_drops_remove_a_holder() {
    let mut s = complete(8, 2, 8);
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
    assert_eq!(s.availability(0), 1, "the dropped holder no longer counts");
    let i = s.next(1).unwrap();
    assert!(s.failed(1, i, Penalty::Drop));
    assert_eq!(s.live_holders(), 0);
    assert_eq!(s.remaining(), 8);
    assert_eq!(s.availability(0), 0);
}

#[test]
fn each_holder_has_its_own_window() {
    let mut s = complete(10, 2, 1);
    s.set_window(0, 3);
    let mine = drain(&mut s, 0);
    assert_eq!(mine.len(), 3);
    assert_eq!(drain(&mut s, 1).len(), 1);
    s.set_window(0, 1);
    s.arrived(0);
    assert!(s.done(0, mine[0]));
    assert_eq!(s.next(0), None, "a shrunk window waits until fewer are in flight");
}

#[test]
fn chunks_we_have_are_skipped() {
    let mut s = Scheduler::new(4, 1, |i| i % 2 == 0);
    let h = s.add_holder(8);
    s.holder_has_all(h);
    assert_eq!(s.remaining(), 2);
    let mut got = drain(&mut s, h);
    got.sort();
    assert_eq!(got, [1, 3]);
}

#[test]
fn early_chunks_are_claimed_by_index() {
    let mut s = complete(8, 1, 1);
    s.set_window(0, 3);
    assert!(s.claim(0, 0) && s.claim(0, 1) && s.claim(0, 2));
    assert!(!s.claim(0, 3), "the window is full");
    s.arrived(0);
    assert!(!s.claim(0, 1), "in flight already");
    assert!(!s.claim(0, 99) && !s.claim(7, 3));
    let late = s.add_holder(4);
    assert!(!s.claim(late, 3), "a holder that has not said what it has");
    s.holder_has(late, 3);
    assert!(s.claim(late, 3));
}

#[test]
fn rarest_first_the_chunk_one_holder_has_goes_first() {
    // Chunks 4..12 (0..4 held, so past the random start): holders 1 and 2 have 4..11, holder 3
    // has them and 11 too, and holder 0 has everything. Chunk 11 is the rarest (2 holders).
    let mut s = Scheduler::new(12, 1, |i| i < 4).with_seed(9);
    let seed = s.add_holder(1);
    s.holder_has_all(seed);
    let partial: Vec<usize> = (0..3).map(|_| s.add_holder(1)).collect();
    for &h in &partial {
        s.holder_has_bitfield(h, 4..11);
    }
    s.holder_has(partial[2], 11);
    assert_eq!((s.availability(11), s.availability(4)), (2, 4));
    assert_eq!(s.next(partial[2]), Some(11), "the partial holder that has it takes it");
    let mut s2 = Scheduler::new(12, 1, |i| i < 4).with_seed(9);
    let seed = s2.add_holder(1);
    s2.holder_has_all(seed);
    let only = s2.add_holder(1);
    let others: Vec<usize> = (0..2).map(|_| s2.add_holder(1)).collect();
    others.iter().for_each(|&h| _ = s2.holder_has_bitfield(h, 4..11));
    s2.holder_has(only, 11);
    assert_eq!(s2.next(seed), Some(11), "a seeder's first pick is the rarest too");
}

#[test]
fn every_pick_is_among_the_rarest_the_holder_has() {
    let mut rng = Rng::seeded(11);
    let count = 300;
    let mut s = Scheduler::new(count, 1, |_| false).with_seed(12);
    let holders: Vec<usize> = (0..6).map(|_| s.add_holder(4)).collect();
    for &h in &holders {
        let density = 1 + rng.below(9);
        s.holder_has_bitfield(h, (0..count).filter(|_| rng.below(10) < density));
    }
    let mut picked = 0;
    while let Some((h, c)) = holders.iter().find_map(|&h| s.next(h).map(|c| (h, c))) {
        assert!(s.holder_might_have(h, c), "holder {h} got chunk {c} it does not have");
        if s.held() >= RANDOM_FIRST && s.phase() == Phase::Needed {
            let rarest = (0..count).filter(|&i| s.needed.contains(i) && s.holder_might_have(h, i)).map(|i| s.availability(i)).min();
            assert!(rarest.is_none_or(|r| s.availability(c) <= r), "chunk {c} ({}) over one at {rarest:?}", s.availability(c));
        }
        s.arrived(h);
        s.done(h, c);
        picked += 1;
    }
    let reachable = (0..count).filter(|&i| s.availability(i) > 0).count();
    assert_eq!(count as usize - s.remaining(), reachable, "every chunk some holder has is fetched");
    assert!(picked >= reachable);
}

#[test]
fn ties_are_broken_by_the_seed() {
    let first = |seed| complete(1000, 1, 1).with_seed(seed).next(0);
    assert_ne!(first(1), first(2), "two seeds, two first chunks");
    let picks = |seed| drain(&mut complete(1000, 1, 16).with_seed(seed), 0);
    assert_eq!(picks(7), picks(7), "one seed, the same picks");
    let past = |seed| drain(&mut complete_past_random(1000, 1, 16).with_seed(seed), 0);
    assert_eq!(past(7), past(7));
    assert_ne!(past(7), past(8), "rarest first breaks ties by the seed too");
}

/// 64 downloaders with the same seeder over 1024 chunks, each with its own seed: their first
/// chunks spread. Picks are uniform, so the chance that some chunk is picked by 4 or more is
/// at most C(64, 4) / 1024^3 ≈ 6e-4 (3 or more: C(64, 3) / 1024^2 ≈ 0.04; about two pairs
/// are expected to collide). Picking in index order, all 64 would fetch chunk 0.
#[test]
fn a_crowd_with_the_same_seeder_spreads_its_first_picks() {
    for past_random in [false, true] {
        let mut hits = vec![0u32; 1024 + RANDOM_FIRST];
        for seed in 0..64 {
            let plan = if past_random { complete_past_random(1024, 1, 1) } else { complete(1024, 1, 1) };
            let first = plan.with_seed(seed).next(0).unwrap();
            hits[first as usize] += 1;
        }
        let most = hits.iter().max().unwrap();
        assert!(*most <= 3, "one chunk was picked by {most} of 64 (rarest first: {past_random})");
    }
}

#[test]
fn a_holder_never_gets_a_chunk_it_does_not_have() {
    let mut s = Scheduler::new(64, 1, |_| false).with_seed(4);
    let h = s.add_holder(64);
    s.holder_has_bitfield(h, (0..64).filter(|i| i % 3 == 0));
    let got = drain(&mut s, h);
    assert_eq!(got.len(), 22);
    assert!(got.iter().all(|i| i % 3 == 0), "{got:?}");
}

#[test]
fn a_have_past_the_file_is_refused() {
    let mut s = Scheduler::new(8, 1, |_| false);
    let h = s.add_holder(1);
    assert!(!s.holder_has(h, 8) && !s.holder_has(h, u32::MAX));
    assert!(!s.holder_has(99, 0), "an unknown holder");
    assert_eq!(s.holder_has_bitfield(h, [3, 8, 3, 1 << 31]), 1);
    assert!(s.holder_has(h, 4) && !s.holder_has(h, 4), "a second have is no news");
    assert_eq!((s.availability(3), s.availability(8), s.availability(u32::MAX)), (1, 0, 0));
    assert!(s.holder_might_have(h, 3) && !s.holder_might_have(h, 8) && !s.holder_might_have(5, 3));
}

#[test]
fn a_holder_found_to_have_everything_counts_once() {
    let mut s = Scheduler::new(4, 1, |_| false);
    let h = s.add_holder(1);
    s.holder_has_bitfield(h, 0..3);
    assert_eq!(s.availability(0), 1);
    s.holder_has(h, 3);
    assert!(s.holders[h].holdings.is_all(), "a full bitfield makes a complete holder");
    s.holder_has_all(h);
    assert_eq!((0..4).map(|i| s.availability(i)).collect::<Vec<_>>(), [1; 4]);
    let other = s.add_holder(1);
    s.holder_has(other, 2);
    s.holder_has_all(other);
    s.holder_has_all(other);
    assert_eq!(s.availability(2), 2);
}

#[test]
fn a_dropped_holders_chunks_lose_their_availability() {
    let mut s = Scheduler::new(8, 1, |i| i < 4).with_seed(2);
    let (a, b) = (s.add_holder(8), s.add_holder(8));
    s.holder_has_bitfield(a, 4..7);
    s.holder_has_bitfield(b, 5..8);
    assert_eq!((s.availability(5), s.availability(7)), (2, 1));
    let x = s.next(b).unwrap();
    assert!(s.failed(b, x, Penalty::Drop));
    assert_eq!((s.availability(5), s.availability(7)), (1, 0));
    assert!(!s.holder_might_have(b, 7));
    let got = drain(&mut s, a);
    assert!(!got.contains(&7), "chunk 7 was only at the dropped holder: {got:?}");
    got.iter().for_each(|&i| _ = s.done(a, i));
    assert_eq!(s.next(a), None);
    s.holder_has(a, 7);
    assert_eq!(s.next(a), Some(7), "it is pickable again once another holder has it");
}

#[test]
fn a_starved_holder_costs_nothing_until_it_has_something_new() {
    // The partial holder has chunks 0..2048, all in flight at the seeder, whose window is full
    // with the rest still needed.
    let mut s = Scheduler::new(1 << 12, 1, |_| false).with_seed(6);
    let seed = s.add_holder(2048);
    s.holder_has_all(seed);
    let partial = s.add_holder(4);
    s.holder_has_bitfield(partial, 0..2048);
    assert!((0..2048).all(|i| s.claim(seed, i)));
    let looked = s.looked;
    assert_eq!(s.next(partial), None, "everything it has is in flight, and this is not the endgame");
    assert!(s.looked - looked <= 2 * 2048, "one look at its own chunks: {}", s.looked - looked);
    let looked = s.looked;
    for _ in 0..10_000 {
        assert_eq!(s.next(partial), None);
    }
    assert_eq!(s.looked, looked, "asking a starved holder again looks at nothing");
    s.holder_has(partial, 3000);
    assert_eq!(s.next(partial), Some(3000), "a new have gives it work");
    assert_eq!(s.next(partial), None);
    s.failed(seed, 7, Penalty::Strike);
    assert_eq!(s.next(partial), Some(7), "so does a chunk it has going back to needed");
}

#[test]
fn a_holder_that_said_nothing_costs_nothing() {
    let mut s = Scheduler::new(1 << 16, 1, |_| false).with_seed(6);
    let (seed, partial) = (s.add_holder(1), s.add_holder(4));
    s.holder_has_all(seed);
    let taken = s.next(seed).unwrap();
    let looked = s.looked;
    assert_eq!(s.next(partial), None);
    assert_eq!(s.next(partial), None);
    assert_eq!(s.looked, looked);
    let c = if taken == 9 { 10 } else { 9 };
    s.holder_has(partial, c);
    assert_eq!(s.next(partial), Some(c));
}

#[test]
fn the_first_picks_are_random_then_the_rarest() {
    // Chunk 99 is the rarest: only the seeder has it, a partial holder has the rest.
    let setup = |seed| {
        let mut s = Scheduler::new(100, 1, |_| false).with_seed(seed);
        let (seeder, partial) = (s.add_holder(1), s.add_holder(1));
        s.holder_has_all(seeder);
        s.holder_has_bitfield(partial, 0..99);
        (s, seeder)
    };
    // Uniform first picks find chunk 99 once in 100: over 32 seeds, 0.32 expected, and more
    // than 3 has odds of about 1 in 3000. Rarest first would find it every time.
    let rare = (0..32).filter(|&seed| setup(seed).0.next(0) == Some(99)).count();
    assert!(rare <= 3, "chunk 99 came first {rare} times in 32");
    let (mut s, seeder) = setup(1);
    for _ in 0..RANDOM_FIRST {
        let i = s.next(seeder).unwrap();
        s.arrived(seeder);
        s.done(seeder, i);
    }
    assert!(!s.is_done(99));
    assert_eq!(s.next(seeder), Some(99), "after {RANDOM_FIRST} chunks, the rarest");
}
