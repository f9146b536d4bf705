//! Heartbeats keep peers listed; silence drops them; every way of leaving drops them at once.

mod common;

use std::time::Duration;

use common::hostile::{self, Hostile};
use common::{Swarm, TIMEOUT};
use p2pq::protocol::{self, Heartbeat, PROTOCOL_VERSION, PeerDatagram, TrackerRequest, TrackerResponse, close};

fn live(out: &[String]) -> usize {
    out.last().and_then(|l| l.split_whitespace().next()).and_then(|n| n.parse().ok()).unwrap_or(usize::MAX)
}

fn listed(out: &[String], id: &str) -> bool {
    out.iter().skip(1).any(|l| l.split_whitespace().next() == Some(id))
}

/// Heartbeats of `id` in the tracker's event table (which folds a run into `alive ×N`).
fn beats(log: &[String], id: &str) -> usize {
    let rows = log.iter().filter(|l| l.contains("alive") && l.contains(id));
    rows.map(|l| l.split_once('×').and_then(|(_, n)| n.split_whitespace().next()?.parse().ok()).unwrap_or(1)).sum()
}

fn datagram(version: u16, seq: u32) -> bytes::Bytes {
    protocol::encode(&PeerDatagram::Alive(Heartbeat { version, seq, uploaded: 0, downloaded: 0 })).unwrap().into()
}

#[test]
fn heartbeat_datagrams_keep_a_peer_listed_and_a_flood_of_them_or_of_junk_costs_one_look_each() {
    let mut swarm = Swarm::start("1");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let hostile = rt.block_on(async { Hostile::new() });
    let (conn, answer) = rt.block_on(hostile.register(&swarm, "flooder", vec![])).unwrap();
    assert!(matches!(answer, TrackerResponse::Registered { .. }), "{answer:?}");
    // Every 100 ms: one heartbeat, then 50 more at once and junk (too short, too long, of
    // another version). Over 3 s that is ~1,500 heartbeats against a 1 s timeout.
    let sender = conn.clone();
    let flood = rt.spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        for seq in 0..30u32 {
            tick.tick().await;
            for extra in 0..50 {
                let _ = sender.send_datagram(datagram(PROTOCOL_VERSION, seq * 100 + extra));
            }
            let _ = sender.send_datagram(bytes::Bytes::from_static(&[0, 0, 0, 9, 1]));
            let _ = sender.send_datagram(bytes::Bytes::from(vec![0u8; 600]));
            let _ = sender.send_datagram(datagram(PROTOCOL_VERSION + 1, seq));
        }
    });
    rt.block_on(flood).unwrap();
    let log = swarm.tracker.command("logs-all", " events");
    let taken = beats(&log, "flooder");
    // One heartbeat at most every 250 ms is looked at: ~12 in 3 s, not 1,500.
    assert!((6..=20).contains(&taken), "{taken} heartbeats taken of ~1,500 sent: {log:?}");
    assert!(!log.iter().any(|l| l.contains("expire") && l.contains("flooder")), "{log:?}");
    // The connection still serves requests, and the peer is listed.
    let answer = rt.block_on(hostile::request(&conn, &TrackerRequest::Files)).unwrap();
    assert!(matches!(answer, TrackerResponse::Matches(_)), "{answer:?}");
    assert!(listed(&swarm.tracker.command("peers", "live peer"), "flooder"));
    // Silent now: the tracker expires it and closes its connection, saying why.
    let closed = rt.block_on(async { tokio::time::timeout(TIMEOUT, conn.closed()).await }).expect("expired peer's connection not closed");
    let quinn::ConnectionError::ApplicationClosed(reason) = closed else { panic!("closed for another reason: {closed}") };
    assert_eq!(reason.error_code, close::EXPIRED, "{reason:?}");
}

#[test]
fn a_peer_frozen_past_the_timeout_is_forgotten_then_registers_again_by_itself() {
    let mut swarm = Swarm::start("1");
    let mut sleeper = swarm.peer("sleeper");
    swarm.tracker.command("peers", "live peer");
    sleeper.signal("STOP");
    let out = swarm.tracker.poll("peers", "live peer", TIMEOUT, |out| !listed(out, "sleeper"));
    assert_eq!(live(&out), 0, "{out:?}");
    sleeper.signal("CONT");
    // It hears it was forgotten (the tracker closed its connection) or that its heartbeats
    // went unanswered, and is back on the list without anyone doing anything.
    sleeper.expect("reconnecting");
    let out = swarm.tracker.poll("peers", "live peer", TIMEOUT, |out| listed(out, "sleeper"));
    assert_eq!(live(&out), 1, "{out:?}");
    assert!(sleeper.is_running());
}

#[test]
fn a_silent_peer_expires_and_a_beating_one_stays() {
    let mut swarm = Swarm::start("1");
    let silent = swarm.peer("silent");
    let _beating = swarm.peer("beating");
    let out = swarm.tracker.command("peers", "live peer");
    assert_eq!(live(&out), 2, "{out:?}");
    silent.signal("KILL");
    let out = swarm.tracker.poll("peers", "live peer", TIMEOUT, |out| !listed(out, "silent"));
    assert!(listed(&out, "beating"), "a peer that sends heartbeats was dropped: {out:?}");
    let log = swarm.tracker.command("logs-all", " events");
    assert!(log.iter().any(|l| l.contains("expire") && l.contains("silent")), "{log:?}");
    assert!(log.iter().any(|l| l.contains("alive") && l.contains("beating")), "{log:?}");
    // Expiry keeps going: once the beating peer has sent heartbeats over several more
    // timeouts (5 at 0.2 s make a 1 s timeout), it is still there and was never expired.
    let before = beats(&log, "beating");
    let log = swarm.tracker.poll("logs-all", " events", TIMEOUT, |log| beats(log, "beating") >= before + 15);
    assert!(!log.iter().any(|l| l.contains("expire") && l.contains("beating")), "{log:?}");
    let out = swarm.tracker.command("peers", "live peer");
    assert!(listed(&out, "beating"), "{out:?}");
}

/// Starts a swarm whose timeout is far longer than the test, so only a graceful leave can
/// remove the peer in time.
fn leaves_at_once(leave: impl FnOnce(&mut common::Proc)) {
    let mut swarm = Swarm::start("600");
    let mut peer = swarm.peer("leaver");
    let out = swarm.tracker.command("peers", "live peer");
    assert!(listed(&out, "leaver"));
    leave(&mut peer);
    let status = peer.wait_exit(TIMEOUT);
    assert!(status.success(), "peer exited with {status}: {}", peer.transcript());
    let out = swarm.tracker.poll("peers", "live peer", Duration::from_secs(10), |out| !listed(out, "leaver"));
    assert_eq!(live(&out), 0);
    let log = swarm.tracker.command("logs-all", " events");
    assert!(log.iter().any(|l| l.contains("exit") && l.contains("leaver")), "{log:?}");
}

#[test]
fn exit_command_leaves_gracefully() {
    leaves_at_once(|peer| {
        peer.send("exit");
        peer.expect("bye");
    });
}

#[test]
fn end_of_input_leaves_gracefully() {
    leaves_at_once(|peer| peer.close_stdin());
}

#[test]
fn sigterm_leaves_gracefully() {
    leaves_at_once(|peer| peer.signal("TERM"));
}

#[test]
fn sigint_leaves_gracefully() {
    leaves_at_once(|peer| peer.signal("INT"));
}

#[test]
fn tracker_keeps_serving_at_end_of_input_and_stops_on_exit_or_signal() {
    let mut swarm = Swarm::start("15");
    swarm.tracker.close_stdin();
    let _peer = swarm.peer("late");
    assert!(swarm.tracker.is_running());
    swarm.tracker.signal("TERM");
    assert!(swarm.tracker.wait_exit(TIMEOUT).success());

    let mut swarm = Swarm::start("15");
    swarm.tracker.send("exit");
    assert!(swarm.tracker.wait_exit(TIMEOUT).success());
}

#[test]
fn a_tracker_past_its_heartbeat_budget_asks_every_peer_for_a_slower_pace_with_a_longer_expiry() {
    // A budget of 1 heartbeat a second: six peers at the base 5 s are past it.
    let mut swarm = Swarm::start_with(&["--peer-timeout", "1", "--heartbeat-budget", "1"]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let crowd: Vec<Hostile> = (0..6).map(|_| Hostile::new()).collect();
        let mut conns = Vec::new();
        for (i, peer) in crowd.iter().enumerate() {
            conns.push(peer.register(&swarm, &format!("crowd{i}"), vec![]).await.unwrap().0);
        }
        // Every peer registered hears the new pace; so does one that comes later.
        let late = Hostile::new();
        let (late_conn, _) = late.register(&swarm, "late", vec![]).await.unwrap();
        conns.push(late_conn);
        for conn in &conns {
            let mut push = tokio::time::timeout(TIMEOUT, conn.accept_uni()).await.expect("no pace push").unwrap();
            let push: protocol::TrackerPush = protocol::read_frame(&mut push, protocol::MAX_PUSH_FRAME).await.unwrap();
            let protocol::TrackerPush::Pace { heartbeat_ms, expiry_ms } = push else { panic!("not a pace: {push:?}") };
            assert_eq!((heartbeat_ms, expiry_ms), (10_000, 30_000), "10 s, and three of them before expiry");
        }
    });
    let log = swarm.tracker.command("logs-all", " events");
    assert!(log.iter().any(|l| l.contains("pace") && l.contains("every 10 s")), "{log:?}");
}

#[test]
fn two_hundred_peers_closing_at_once_are_all_seen_leaving_not_left_to_the_sweep() {
    // A 600 s timeout: only a seen exit can take a peer off the list within the test.
    let mut swarm = Swarm::start("600");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let crowd: Vec<Hostile> = rt.block_on(async { (0..200).map(|_| Hostile::new()).collect() });
    let conns: Vec<quinn::Connection> = rt.block_on(async {
        let mut conns = Vec::new();
        for (i, peer) in crowd.iter().enumerate() {
            conns.push(peer.register(&swarm, &format!("crowd{i}"), vec![]).await.unwrap().0);
        }
        conns
    });
    assert_eq!(live(&swarm.tracker.command("peers", "live peer")), 200);
    // The harder half of a clean exit: the close alone, no Exit request before it.
    for conn in &conns {
        conn.close(close::DONE, b"bye");
    }
    let out = swarm.tracker.poll("peers", "live peer", TIMEOUT, |out| live(out) == 0);
    assert_eq!(live(&out), 0, "exits missed: {out:?}");
}
