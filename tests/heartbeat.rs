//! Heartbeats keep peers listed; silence drops them; every way of leaving drops them at once.

mod common;

use std::time::Duration;

use common::{Swarm, TIMEOUT};

fn live(out: &[String]) -> usize {
    out.last().and_then(|l| l.split_whitespace().next()).and_then(|n| n.parse().ok()).unwrap_or(usize::MAX)
}

fn listed(out: &[String], id: &str) -> bool {
    out.iter().skip(1).any(|l| l.split_whitespace().next() == Some(id))
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
    // The table folds a run of one peer's heartbeats into one row, `alive ×N`.
    let beats = |log: &[String]| -> usize {
        let rows = log.iter().filter(|l| l.contains("alive") && l.contains("beating"));
        rows.map(|l| l.split_once('×').and_then(|(_, n)| n.split_whitespace().next()?.parse().ok()).unwrap_or(1)).sum()
    };
    let before = beats(&log);
    let log = swarm.tracker.poll("logs-all", " events", TIMEOUT, |log| beats(log) >= before + 15);
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
