//! Whole downloads played step by step against the picker: a swarm trading chunks, and a file
//! of 2^17 chunks. No network, no clock in the logic (the large file only measures itself).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::*;

/// Chunks of the spreading simulation's file.
const CHUNKS: u32 = 64;
/// Leechers downloading it from one seeder and from each other.
const LEECHERS: usize = 6;

/// What one spreading run saw.
#[derive(Debug)]
struct Spread {
    rounds: u32,
    from_seeder: u32,
    from_leechers: u32,
    /// Copies the seeder sent of a chunk it had sent already, in rounds that began with at
    /// least [`LEECHERS`] chunks not yet sent (so each leecher could have drawn a new one).
    repeats: u32,
    /// The most copies of one chunk the seeder sent in such rounds.
    most_copies: u32,
}

/// One seeder (node 0) and [`LEECHERS`] leechers (nodes 1..): each leecher runs its own plan
/// in which holder `j` is node `j` (its own entry never hears of anything, so it starves at
/// once and costs nothing). In each round every leecher fills each holder's window; every
/// request of the round is then served, and each chunk verified is announced as a have to the
/// other leechers, whose next round sees it.
fn spread(seed: u64, seeder_window: usize, leecher_window: usize) -> Spread {
    let mut plans: Vec<Scheduler> = (0..LEECHERS)
        .map(|l| {
            let mut plan = Scheduler::new(CHUNKS, 1, |_| false).with_seed(seed * 100 + l as u64);
            let seeder = plan.add_holder(seeder_window);
            plan.holder_has_all(seeder);
            (0..LEECHERS).for_each(|_| _ = plan.add_holder(leecher_window));
            plan
        })
        .collect();
    let mut has = vec![vec![false; CHUNKS as usize]; LEECHERS];
    let mut sent = vec![0u32; CHUNKS as usize];
    let mut out = Spread { rounds: 0, from_seeder: 0, from_leechers: 0, repeats: 0, most_copies: 0 };
    while plans.iter().any(|p| !p.is_complete()) {
        out.rounds += 1;
        assert!(out.rounds < 1000, "the swarm stalled: {out:?}");
        let spreading = sent.iter().filter(|&&n| n == 0).count() >= LEECHERS;
        let mut requests = Vec::new();
        for (l, plan) in plans.iter_mut().enumerate() {
            for node in 0..=LEECHERS {
                while let Some(c) = plan.next(node) {
                    assert!(node == 0 || has[node - 1][c as usize], "leecher {l} asked node {node} for chunk {c} it does not have");
                    requests.push((l, node, c));
                }
            }
        }
        for (l, node, c) in requests {
            if node == 0 {
                sent[c as usize] += 1;
                if spreading {
                    out.repeats += u32::from(sent[c as usize] > 1);
                    out.most_copies = out.most_copies.max(sent[c as usize]);
                }
            }
            plans[l].arrived(node);
            if !plans[l].done(node, c) {
                continue;
            }
            has[l][c as usize] = true;
            *if node == 0 { &mut out.from_seeder } else { &mut out.from_leechers } += 1;
            for (m, plan) in plans.iter_mut().enumerate().filter(|(m, _)| *m != l) {
                assert!(plan.holder_has(l + 1, c), "leecher {m} heard twice that {l} has {c}");
            }
        }
    }
    out
}

/// One seeder taking one request per leecher at a time, six leechers taking two from each
/// other. A chunk enters the swarm only from the seeder, at most 6 a round, while one that
/// entered reaches all six leechers a round later; so "every chunk somewhere before any chunk
/// everywhere" is out of reach for any picker here, and what rarest first promises is the
/// seeder's side of it: the seeder sends each chunk once before it sends any twice, and the
/// leechers copy among themselves.
/// - Repeats while at least 6 chunks are unsent: the leechers cannot see each other's
///   requests, so two drawing the same unsent chunk in one round collide, C(6, 2) / k ≈ 15 / k
///   expected with k unsent: about 6 over the rounds k = 64, 58, … 10, plus a few in the first
///   random rounds. Allow 16, and no chunk sent more than 3 times (4 of 6 on one of k ≥ 6
///   chunks: C(6, 4) / k³ a round, about 0.02 a run). In index order every chunk would go out
///   6 times, 5 repeats a round.
/// - Rounds: 64 chunks at 6 a round take 11, and the last needs one more to spread: 12 at
///   best. Allow 16.
/// - From the seeder: about one copy of each chunk (64 + repeats of 384 fetches). Demand that
///   leechers fetch two thirds from each other.
#[test]
fn a_swarm_spreads_chunks_before_it_copies_them_and_trades_among_leechers() {
    for seed in 0..8 {
        let run = spread(seed, 1, 2);
        let total = run.from_seeder + run.from_leechers;
        assert_eq!(total, CHUNKS * LEECHERS as u32, "{run:?}");
        assert!(run.repeats <= 16 && run.most_copies <= 3, "the seeder repeated itself: {run:?}");
        assert!(run.rounds <= 16, "the swarm spread slowly: {run:?}");
        assert!(run.from_leechers * 3 >= total * 2, "leechers fetched too much from the seeder: {run:?}");
        eprintln!("seed {seed}: {run:?}");
    }
}

/// 2^17 chunks (twice [`crate::content::manifest::MAX_CHUNKS`]), one seeder and 15 partial
/// holders having from 1/64 to 15/64 of the chunks (downloaders part-way, the sparse ones
/// being the costly kind to pick for), each hearing of one more chunk after every chunk event,
/// with a failure now and then. It must finish, never hand out a chunk a holder lacks, and
/// look at few chunks per pick: a guard against O(n²), which at this size would take minutes.
/// The bitfields and haves are drawn before the clock starts.
#[test]
fn a_large_file_runs_to_completion_in_linear_time() {
    const COUNT: u32 = 1 << 17;
    const PARTIAL: usize = 15;
    let mut rng = Rng::seeded(21);
    let bitfields: Vec<Vec<u32>> = (0..PARTIAL).map(|k| (0..COUNT).filter(|_| rng.below(64) <= k).collect()).collect();
    let later: Vec<(usize, u32)> = (0..COUNT + 64).map(|_| (1 + rng.below(PARTIAL), rng.below(COUNT as usize) as u32)).collect();
    let started = Instant::now();
    let mut s = Scheduler::new(COUNT, 1, |_| false).with_seed(22);
    let seeder = s.add_holder(32);
    s.holder_has_all(seeder);
    for bits in &bitfields {
        let h = s.add_holder(8);
        s.holder_has_bitfield(h, bits.iter().copied());
    }
    let setup = started.elapsed();
    let mut flying = VecDeque::new();
    let (mut events, mut picks) = (0usize, 0u64);
    while !s.is_complete() {
        for h in 0..=PARTIAL {
            while let Some(c) = s.next(h) {
                assert!(s.holder_might_have(h, c), "holder {h} got chunk {c} it does not have");
                flying.push_back((h, c));
                picks += 1;
            }
        }
        let (h, c) = flying.pop_front().expect("the seeder always has work");
        s.arrived(h);
        if events % 10_000 == 9_999 && h != seeder {
            s.failed(h, c, Penalty::Strike);
        } else {
            s.done(h, c);
        }
        let (other, have) = later[events % later.len()];
        s.holder_has(other, have);
        events += 1;
    }
    let took = started.elapsed();
    let per_pick = s.looked as f64 / picks as f64;
    let from: Vec<u32> = (0..=PARTIAL).map(|h| s.delivered(h)).collect();
    let haves: usize = bitfields.iter().map(Vec::len).sum();
    eprintln!(
        "{COUNT} chunks: {haves} haves in bitfields taken in {setup:?}, all done in {took:?}; {events} chunk events, {picks} picks, \
         {per_pick:.2} chunks looked at a pick; delivered by the seeder {}, by the partial holders {:?}; {} holders live",
        from[0],
        &from[1..],
        s.live_holders()
    );
    assert_eq!(from.iter().sum::<u32>(), COUNT);
    assert!(per_pick < 64.0, "{per_pick:.1} chunks looked at a pick");
    assert!(took < Duration::from_secs(10), "took {took:?}");
}
