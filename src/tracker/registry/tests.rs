//! The registry's unit tests: one behaviour each.

use super::*;

fn fp(n: u8) -> Fingerprint {
    crate::protocol::Digest([n; 32])
}

fn file(n: u8, name: &str) -> FileInfo {
    FileInfo { id: crate::protocol::Digest([n; 32]), name: name.into(), size: 10, folder: None }
}

fn addr() -> SocketAddr {
    "127.0.0.1:9".parse().unwrap()
}

/// A registry with peers "1" to `n`, peer `i` on session `i` with certificate `fp(i)`.
fn with_peers(n: u8) -> (Registry, Instant) {
    let (mut r, t) = (Registry::default(), Instant::now());
    for i in 1..=n {
        r.register(&i.to_string(), fp(i), addr(), u64::from(i), t).unwrap();
    }
    (r, t)
}

#[test]
fn a_taken_id_is_refused_and_a_reconnect_replaces() {
    let (mut r, t) = with_peers(1);
    assert_eq!(r.register("1", fp(2), addr(), 2, t), Err(RegistryError::Taken("1".into())));
    r.register("1", fp(1), addr(), 3, t).unwrap();
    assert_eq!(r.alive("1", 1, t), Err(RegistryError::NotRegistered));
    assert!(r.alive("1", 3, t).is_ok());
}

#[test]
fn one_certificate_holds_a_few_ids_and_a_reconnect_still_works() {
    let mut r = Registry::default();
    let t = Instant::now();
    for n in 0..Limits::default().max_ids_per_cert {
        r.register(&n.to_string(), fp(1), addr(), n as u64, t).unwrap();
    }
    assert_eq!(r.register("one-more", fp(1), addr(), 99, t), Err(RegistryError::TooManyIds(8)));
    r.register("0", fp(1), addr(), 100, t).unwrap();
    r.register("other", fp(2), addr(), 101, t).unwrap();
}

#[test]
fn holders_are_found_by_name_and_id_prefix_and_vanish_with_their_peer() {
    let (mut r, t) = with_peers(2);
    r.share("1", 1, &file(0xab, "a.txt"), t).unwrap();
    r.share("2", 2, &file(0xab, "copy.txt"), t).unwrap();
    assert_eq!(r.lookup("a.txt", Listed::All)[0].holders.len(), 2);
    assert_eq!(r.lookup("copy.txt", Listed::All)[0].file.name, "copy.txt");
    assert_eq!(r.lookup("abab", Listed::All).len(), 1);
    assert!(r.lookup("ab", Listed::All).is_empty());
    assert!(r.leave("1", 1));
    assert_eq!(r.lookup("a.txt", Listed::All).len(), 0);
    assert_eq!(r.lookup("copy.txt", Listed::All)[0].holders[0].peer_id, "2");
}

#[test]
fn an_unshared_file_loses_only_that_holder() {
    let (mut r, t) = with_peers(2);
    r.share("1", 1, &file(5, "f"), t).unwrap();
    r.share("2", 2, &file(5, "f"), t).unwrap();
    assert_eq!(r.unshare("1", 1, &file(5, "f").id), Ok(Some("f".into())));
    assert_eq!(r.lookup("f", Listed::All)[0].holders.len(), 1);
    assert!(r.unshare("2", 1, &file(5, "f").id).is_err(), "only on one's own session");
    assert_eq!(r.unshare("2", 2, &file(5, "f").id), Ok(Some("f".into())));
    assert!(r.lookup("f", Listed::All).is_empty());
}

#[test]
fn silent_peers_expire() {
    let (mut r, t) = with_peers(2);
    r.alive("2", 2, t + Duration::from_secs(10)).unwrap();
    assert_eq!(r.expire(t + Duration::from_secs(16), Duration::from_secs(15)), vec!["1".to_string()]);
    assert_eq!(r.peers().len(), 1);
}

#[test]
fn a_fingerprint_is_known_only_while_its_peer_is_live() {
    let (mut r, _) = with_peers(1);
    assert_eq!(r.peer_with(&fp(1)), Some("1".to_string()));
    assert_eq!(r.peer_with(&fp(2)), None);
    assert!(r.leave("1", 1));
    assert_eq!(r.peer_with(&fp(1)), None);
}

#[test]
fn a_peer_cannot_announce_more_than_its_share_of_files() {
    let (mut r, t) = with_peers(1);
    for n in 0..MAX_FILES_PER_PEER as u32 {
        let mut id = [0u8; 32];
        id[..4].copy_from_slice(&n.to_be_bytes());
        r.share("1", 1, &FileInfo { id: crate::protocol::Digest(id), name: "f".into(), size: 1, folder: None }, t).unwrap();
    }
    assert_eq!(r.share("1", 1, &file(0xff, "one more"), t), Err(RegistryError::TooManyFiles));
}

#[test]
fn no_peer_acts_for_another() {
    let (mut r, t) = with_peers(2);
    assert!(!r.leave("1", 2));
    assert!(r.share("1", 2, &file(1, "x"), t).is_err());
    assert_eq!(r.peers().len(), 2);
}

#[test]
fn only_a_full_tracker_is_worth_retrying() {
    assert!(RegistryError::Full.retry_can_help());
    assert!(!RegistryError::Taken("a".into()).retry_can_help());
    assert!(!RegistryError::TooManyIds(8).retry_can_help());
    assert!(!RegistryError::TooManyFiles.retry_can_help());
}

#[test]
fn a_full_tracker_or_address_refuses_for_now_and_admits_once_someone_leaves() {
    let mut r = Registry::new(Limits { max_peers: 2, max_peers_per_ip: 1, ..Limits::default() });
    let t = Instant::now();
    let at = |ip: u8| SocketAddr::from(([10, 0, 0, ip], 9));
    r.register("1", fp(1), at(1), 1, t).unwrap();
    let crowded = r.register("2", fp(2), at(1), 2, t).unwrap_err();
    assert_eq!(crowded.to_string(), "too many peers from 10.0.0.1 (1); retry later");
    r.register("2", fp(2), at(2), 2, t).unwrap();
    let full = r.register("3", fp(3), at(3), 3, t).unwrap_err();
    assert_eq!(full.to_string(), "tracker full (2 peers); retry later");
    assert!(full.retry_can_help() && crowded.retry_can_help());
    r.register("1", fp(1), at(1), 4, t).unwrap();
    assert!(r.leave("2", 2));
    r.register("3", fp(3), at(3), 5, t).unwrap();
    assert_eq!(r.counts().0, 2);
}

#[test]
fn counts_follow_every_change_and_the_sweep_takes_only_the_silent() {
    let (mut r, t) = with_peers(2);
    for n in 1..=3 {
        r.share("1", 1, &file(n, "f"), t).unwrap();
    }
    r.share("2", 2, &file(1, "g"), t).unwrap();
    assert_eq!(r.counts(), (2, 3, 4));
    r.unshare("1", 1, &file(2, "f").id).unwrap();
    assert_eq!(r.counts(), (2, 2, 3));
    r.alive("2", 2, t + Duration::from_secs(20)).unwrap();
    assert_eq!(r.expire(t + Duration::from_secs(20), Duration::from_secs(15)), ["1"]);
    assert_eq!(r.counts(), (1, 1, 1));
    assert_eq!(r.lookup("f", Listed::All).len(), 0);
    assert_eq!(r.lookup("g", Listed::All)[0].holders[0].peer_id, "2");
}

#[test]
fn a_long_listing_is_complete_across_pages() {
    let (mut r, t) = with_peers(1);
    for n in 0..=255u8 {
        r.share("1", 1, &file(n, &format!("{:03}", 255 - n)), t).unwrap();
    }
    let (first, more) = r.files_page(None, 100, Listed::All);
    assert_eq!((first.len(), more, first[0].file.name.as_str()), (100, true, "000"));
    let last = first.last().unwrap();
    let (second, _) = r.files_page(Some((&last.file.name, &last.file.id)), MAX_PAGE * 2, Listed::All);
    assert_eq!((second.len(), second[0].file.name.as_str()), (156, "100"));
    assert_eq!(r.files_page(None, 0, Listed::All).0.len(), 1, "a page holds at least one file");
}

#[test]
fn holders_of_one_id_are_found_without_a_lookup() {
    let (mut r, t) = with_peers(1);
    r.share("1", 1, &file(7, "seven"), t).unwrap();
    assert_eq!(r.holders(&file(7, "").id, Listed::All).map(|m| m.file.name), Some("seven".into()));
    assert!(r.holders(&file(8, "").id, Listed::All).is_none());
}

#[test]
fn a_mapped_port_on_the_observed_ip_is_listed_and_one_elsewhere_refused() {
    let (mut r, t) = with_peers(1);
    r.share("1", 1, &file(1, "a"), t).unwrap();
    let elsewhere: SocketAddr = "198.51.100.7:4000".parse().unwrap();
    assert_eq!(r.map("1", 1, elsewhere), Err(RegistryError::MappedElsewhere(elsewhere, addr().ip())));
    assert_eq!(r.map("1", 2, elsewhere), Err(RegistryError::NotRegistered));
    let mapped: SocketAddr = "127.0.0.1:4000".parse().unwrap();
    r.map("1", 1, mapped).unwrap();
    let holders = r.holders(&file(1, "a").id, Listed::All).unwrap().holders;
    assert_eq!(holders.iter().map(|h| h.addr).collect::<Vec<_>>(), [mapped]);
    r.introduced("1");
    assert_eq!(r.peers()[0].1.reach(), "mapped 127.0.0.1:4000");
}

#[test]
fn further_addresses_are_checked_kept_and_named_beside_the_holder() {
    let (mut r, t) = with_peers(2);
    r.share("1", 1, &file(1, "a"), t).unwrap();
    assert!(!r.reads_addresses("1"), "a peer that told nothing is an older one");
    let home: SocketAddr = "192.168.1.5:4000".parse().unwrap();
    let v6: SocketAddr = "[2001:db8::5]:4000".parse().unwrap();
    let public: SocketAddr = "198.51.100.7:4000".parse().unwrap();
    r.tell_addresses("1", 1, &[home, public, v6, home]).unwrap();
    assert!(r.reads_addresses("1"));
    let holders = r.holders(&file(1, "a").id, Listed::All).unwrap().holders;
    assert_eq!(holders[0].also, [home, v6], "a public IPv4 address only the observation vouches for is left out");
    assert_eq!(r.tell_addresses("1", 2, &[home]), Err(RegistryError::NotRegistered));
    let many = [home; 9];
    assert!(matches!(r.tell_addresses("2", 2, &many), Err(RegistryError::BadAddresses(_))));
    assert!(!r.reads_addresses("2"), "a refused list changes nothing");
    r.tell_addresses("1", 1, &[]).unwrap();
    assert!(r.holders(&file(1, "a").id, Listed::All).unwrap().holders[0].also.is_empty(), "told again, the new list holds");
    assert!(r.reads_addresses("1"));
}

#[test]
fn a_peer_is_shown_direct_until_someone_needs_an_introduction() {
    let (mut r, _) = with_peers(1);
    assert_eq!(r.peers()[0].1.reach(), "direct");
    r.introduced("1");
    r.introduced("1");
    assert_eq!(r.peers()[0].1.reach(), "punched (introduced 2 times)");
}

#[test]
fn peer_rows_are_the_first_by_id_with_their_file_counts() {
    let (mut r, t) = with_peers(9);
    r.share("3", 3, &file(1, "a"), t).unwrap();
    r.share("3", 3, &file(2, "b"), t).unwrap();
    let rows = r.peer_rows(3);
    let ids: Vec<&str> = rows.iter().map(|row| row.id.as_str()).collect();
    assert_eq!(ids, ["1", "2", "3"]);
    assert_eq!(rows[2].files, 2);
    assert_eq!(r.peer_rows(100).len(), 9);
    assert!(r.peer_rows(0).is_empty());
}

#[test]
fn swarm_rates_are_the_sum_of_live_peers_reports_and_a_peer_that_leaves_takes_its_share() {
    let (mut r, t) = with_peers(2);
    let later = t + Duration::from_secs(1);
    for (id, session) in [("1", 1), ("2", 2)] {
        r.beat(id, session, t, 0, 0).unwrap();
    }
    r.beat("1", 1, later, 1_000, 3_000).unwrap();
    r.beat("2", 2, later, 500, 0).unwrap();
    assert_eq!(r.rates(), (1_500, 3_000));
    assert_eq!(r.peer_rows(10).iter().map(|p| p.rates).collect::<Vec<_>>(), [(1_000, 3_000), (500, 0)]);
    assert_eq!(r.beat("2", 1, later, 0, 0), Err(RegistryError::NotRegistered), "a beat counts for its own session only");
    assert!(r.leave("1", 1));
    assert_eq!(r.rates(), (500, 0));
    assert_eq!(r.expire(t + Duration::from_secs(60), Duration::from_secs(15)), ["2"]);
    assert_eq!(r.rates(), (0, 0));
}

#[test]
fn a_reply_names_one_run_of_a_popular_files_holders_and_the_next_reply_the_next() {
    let mut r = Registry::default();
    let t = Instant::now();
    for i in 0..300u16 {
        let id = format!("{i:03}");
        let from: SocketAddr = ([10, 0, (i / 200) as u8, 1], 9).into();
        r.register(&id, crate::protocol::Digest([(i % 250) as u8; 32]), from, u64::from(i), t).unwrap();
        r.share(&id, u64::from(i), &file(1, "popular"), t).unwrap();
    }
    let run = |turn| r.holders(&file(1, "").id, Listed::Turn(turn, 50)).unwrap().holders;
    assert_eq!(run(0).len(), 50);
    assert_eq!((run(0)[0].peer_id.as_str(), run(1)[0].peer_id.as_str()), ("000", "050"));
    let named: BTreeSet<String> = (0..6).flat_map(run).map(|h| h.peer_id).collect();
    assert_eq!(named.len(), 300, "six replies name every holder once");
    let row = FileRow { info: FileInfo { name: "popular".into(), ..file(1, "") }, holders: 300, partial: 0, bar: vec![] };
    assert_eq!(r.file_rows(10), [row]);
}

/// The bar and partial count of the only file, as a view shows them.
fn bar_of(r: &Registry) -> (usize, Vec<u32>) {
    let row = &r.file_rows(1)[0];
    (row.partial, row.bar.clone())
}

#[test]
fn partial_holders_make_an_availability_bar_that_follows_their_reports() {
    let (mut r, t) = with_peers(3);
    let f = file(7, "f");
    for i in 1..=3u8 {
        r.share(&i.to_string(), u64::from(i), &f, t).unwrap();
    }
    assert_eq!(bar_of(&r), (0, vec![]), "holders that say nothing hold it whole");
    // A 10-byte file has 10 segments: peer 2 has the first 8, peer 3 the last 2.
    r.progress("2", 2, &f.id, &[0xff, 0x00]).unwrap();
    r.progress("3", 3, &f.id, &[0x00, 0x03]).unwrap();
    assert_eq!(bar_of(&r), (2, vec![2, 2, 2, 2, 2, 2, 2, 2, 2, 2]));
    let mut partial = r.partial_holders(&f.id);
    partial.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(partial, [("2".to_string(), 0.8), ("3".to_string(), 0.2)]);
    // A newer report replaces the older; a complete one makes the holder whole again.
    r.progress("2", 2, &f.id, &[0x0f, 0x00]).unwrap();
    assert_eq!(bar_of(&r).1, [2, 2, 2, 2, 1, 1, 1, 1, 2, 2]);
    r.progress("3", 3, &f.id, &[0xff, 0x03]).unwrap();
    assert_eq!(bar_of(&r), (1, vec![3, 3, 3, 3, 2, 2, 2, 2, 2, 2]));
    assert_eq!(r.availability.reports(), 1);
    // Unsharing, leaving and expiring take the report with the holder.
    r.unshare("2", 2, &f.id).unwrap();
    assert_eq!(bar_of(&r), (0, vec![]));
    r.progress("3", 3, &f.id, &[0x01, 0x00]).unwrap();
    assert!(r.leave("3", 3));
    assert_eq!((bar_of(&r), r.availability.reports()), ((0, vec![]), 0));
    r.progress("1", 1, &f.id, &[0x01, 0x00]).unwrap();
    r.expire(t + Duration::from_secs(16), Duration::from_secs(15));
    assert_eq!(r.availability.reports(), 0);
}

#[test]
fn a_report_that_does_not_fit_or_comes_from_a_non_holder_is_refused() {
    let (mut r, t) = with_peers(2);
    let f = file(7, "f");
    r.share("1", 1, &f, t).unwrap();
    let refused = |r: &mut Registry, id: &str, session: u64, have: &[u8]| match r.progress(id, session, &f.id, have) {
        Err(RegistryError::BadProgress(why)) => why,
        other => panic!("{other:?}"),
    };
    assert!(refused(&mut r, "1", 1, &[0xff]).contains("has 2 bytes, not 1"));
    assert!(refused(&mut r, "1", 1, &[0; 33]).contains("not 33"));
    assert!(refused(&mut r, "2", 2, &[0, 0]).contains("not listed as shared by you"));
    assert_eq!(r.progress("1", 2, &f.id, &[0, 0]), Err(RegistryError::NotRegistered));
    assert_eq!(r.progress("9", 9, &f.id, &[0, 0]), Err(RegistryError::NotRegistered));
    assert_eq!(r.availability.reports(), 0);
}
