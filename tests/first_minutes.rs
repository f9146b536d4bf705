//! What a new user does in the first minutes, from a pipe: commands sent before the tracker
//! link is up still run in order, the ones that need the tracker wait for it, and `clear`
//! leaves a script's output alone.

mod common;

use common::{Proc, Stream, Swarm, TIMEOUT};

#[test]
fn piped_commands_sent_at_once_wait_for_the_link_and_run_in_order() {
    let swarm = Swarm::start("15");
    swarm.write_data("a.txt", b"alpha");
    let mut one = swarm.peer("1");
    one.command("share a.txt", "shared a.txt");
    // Sent before the peer could have reached the tracker.
    let args = ["peer", "2", "--tracker", &swarm.addr, "--heartbeat", "0.2", "--listen", "127.0.0.1:0"];
    let mut two = Proc::spawn("peer 2", swarm.path(), &args);
    for line in ["get a.txt", "clear", "status", "exit"] {
        two.send(line);
    }
    two.expect("downloaded a.txt");
    let status = two.expect("peer 2 — tracker");
    assert!(status.contains("connected"), "{status}");
    assert!(two.wait_exit(TIMEOUT).success(), "{}", two.transcript());
    assert_eq!(std::fs::read(swarm.downloaded("2", "a.txt")).unwrap(), b"alpha");
    assert!(!two.seen.iter().any(|(s, l)| *s == Stream::Err || l.contains('\x1b')), "{}", two.transcript());
}

#[test]
fn clear_from_a_pipe_prints_nothing_at_the_tracker() {
    let mut swarm = Swarm::start("15");
    swarm.tracker.send("clear");
    let out = swarm.tracker.command("files", " file");
    assert_eq!(out, ["0 files"], "{}", swarm.tracker.transcript());
    assert!(!swarm.tracker.seen.iter().any(|(s, l)| *s == Stream::Err || l.contains('\x1b')), "{}", swarm.tracker.transcript());
}
