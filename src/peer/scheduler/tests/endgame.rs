//! The endgame: when it starts, what is raced, and how many races run at once.

use super::*;

#[test]
fn the_endgame_races_the_last_chunk_and_the_first_copy_wins() {
    let mut s = complete(1, 2, 4);
    assert_eq!(s.next(0), Some(0));
    assert_eq!(s.next(1), Some(0));
    assert_eq!(s.next(1), None);
    assert!(s.done(1, 0));
    assert!(!s.done(0, 0));
    assert!(s.is_complete());
    assert_eq!((s.delivered(0), s.delivered(1)), (0, 1), "only the winner's copy counts");
}

#[test]
fn a_download_races_at_most_a_couple_of_chunks_at_once_whatever_its_holders() {
    // Eight holders, each with a chunk in flight and nothing needed: the endgame.
    let mut s = Scheduler::new(8, 1, |_| false).with_seed(9);
    let holders: Vec<usize> = (0..8).map(|_| s.add_holder(1)).collect();
    holders.iter().for_each(|&h| s.holder_has_all(h));
    let first: Vec<u32> = holders.iter().filter_map(|&h| s.next(h)).collect();
    assert_eq!(first.len(), 8);
    // Each holder's chunk arrives and waits to be verified: every link is idle.
    holders.iter().for_each(|&h| s.arrived(h));
    let races: Vec<u32> = holders.iter().filter_map(|&h| s.next(h)).collect();
    assert_eq!(races.len(), super::MAX_RACES, "raced: {races:?}");
    // The first copy of a raced chunk is verified: that race is over, and one more may start.
    let owner = holders[first.iter().position(|&c| c == races[0]).expect("a raced chunk was in flight")];
    assert!(s.done(owner, races[0]));
    let more: Vec<u32> = holders.iter().filter_map(|&h| s.next(h)).collect();
    assert_eq!(more.len(), 1, "raced now: {more:?}");
}

#[test]
fn a_holder_never_races_itself() {
    let mut s = complete(1, 2, 4);
    assert_eq!(s.next(0), Some(0));
    assert_eq!(s.next(0), None);
    assert_eq!(s.next(1), Some(0));
    s.failed(0, 0, Penalty::Strike);
    assert_eq!(s.next(1), None);
    assert_eq!(s.next(0), Some(0));
}

#[test]
fn the_endgame_races_only_chunks_the_holder_has() {
    let mut s = Scheduler::new(2, 1, |_| false).with_seed(3);
    let (a, b) = (s.add_holder(4), s.add_holder(4));
    s.holder_has_all(a);
    s.holder_has(b, 1);
    assert_eq!(drain(&mut s, a).len(), 2);
    assert_eq!(s.next(b), Some(1), "it races chunk 1, which it has");
    assert_eq!(s.next(b), None, "not chunk 0, which it does not");
}

#[test]
fn the_endgame_waits_while_a_chunk_is_needed_and_some_holder_has_it() {
    // b has only chunk 4, in flight at a. While 5 is needed (a has it, its window is full),
    // b does not race for 4: it is not the endgame yet.
    let mut s = Scheduler::new(6, 1, |i| i < 4).with_seed(5);
    let (a, b) = (s.add_holder(1), s.add_holder(4));
    s.holder_has_all(a);
    s.holder_has(b, 4);
    assert!(s.claim(a, 4));
    assert_eq!(s.next(b), None, "chunk 5 is still needed and a has it");
    s.arrived(a);
    assert_eq!(s.next(a), Some(5));
    assert_eq!(s.next(b), Some(4), "now nothing is needed: b races a for chunk 4");
}

#[test]
fn the_endgame_looks_only_at_the_chunks_in_flight() {
    let mut s = complete(1 << 14, 2, 1 << 14);
    for i in 0..(1 << 14) - 8 {
        assert!(s.claim(0, i));
        s.done(0, i);
    }
    let last: Vec<u32> = drain(&mut s, 0);
    assert_eq!(last.len(), 8);
    let looked = s.looked;
    assert!(s.next(1).is_some_and(|i| last.contains(&i)), "holder 1 races one of the last 8");
    assert!(s.looked - looked <= 8, "it looked at {} chunks", s.looked - looked);
}
