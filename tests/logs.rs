//! The tracker's three log views, and logs that survive a restart.

mod common;

use common::{Proc, Swarm};

fn events(tracker: &mut Proc, command: &str) -> Vec<String> {
    let out = tracker.command(command, " event");
    out[..out.len() - 1].iter().skip(1).cloned().collect()
}

fn kind(line: &str) -> &str {
    line.split_whitespace().nth(2).unwrap_or("")
}

#[test]
fn request_all_and_file_views_show_the_right_events() {
    let mut swarm = Swarm::start("15");
    swarm.write_data("a.txt", b"alpha");
    swarm.write_data("b.txt", b"beta");
    let mut one = swarm.peer("1");
    let mut two = swarm.peer("2");
    one.command("share a.txt", "shared ");
    one.command("share b.txt", "shared ");
    two.command("get a.txt", "downloaded ");
    // Heartbeats are flowing (0.2 s); wait for one so logs-all has something to show.
    swarm.tracker.poll("logs-all", " event", common::TIMEOUT, |out| out.iter().any(|l| kind(l) == "alive"));

    let requests = events(&mut swarm.tracker, "logs request");
    assert!(requests.iter().all(|l| matches!(kind(l), "share" | "get")), "{requests:?}");
    assert_eq!(requests.iter().filter(|l| kind(l) == "share").count(), 3, "two shares and the auto-share: {requests:?}");
    assert_eq!(requests.iter().filter(|l| kind(l) == "get").count(), 1);

    let all = events(&mut swarm.tracker, "logs-all");
    for k in ["register", "alive", "share", "get"] {
        assert!(all.iter().any(|l| kind(l) == k), "no {k} in {all:?}");
    }

    let about_a = events(&mut swarm.tracker, "logs_file a.txt");
    assert_eq!(about_a.len(), 3, "share, get, auto-share of a.txt: {about_a:?}");
    assert!(about_a.iter().all(|l| l.contains("a.txt")));
    let none = swarm.tracker.command("logs_file nothing.txt", " event");
    assert_eq!(none, vec!["0 events".to_string()]);
}

#[test]
fn logs_survive_a_tracker_restart() {
    let mut swarm = Swarm::start("15");
    swarm.write_data("keep.txt", b"keep");
    let mut peer = swarm.peer("1");
    peer.command("share keep.txt", "shared ");
    swarm.tracker.send("exit");
    assert!(swarm.tracker.wait_exit(common::TIMEOUT).success());
    let mut again = Proc::spawn("tracker again", swarm.path(), &["tracker", "--listen", "127.0.0.1:0"]);
    again.expect("tracker listening on ");
    let requests = events(&mut again, "logs request");
    assert!(requests.iter().any(|l| kind(l) == "share" && l.contains("keep.txt")), "{requests:?}");
}

#[test]
fn peer_logs_list_downloaded_chunks_with_source_and_size() {
    let mut swarm = Swarm::start("15");
    let data = common::bytes(600 * 1024, "chunks");
    swarm.write_data("c.bin", &data);
    let mut one = swarm.peer("1");
    let mut two = swarm.peer("2");
    one.command("share c.bin", "shared ");
    two.command("get c.bin", "downloaded ");
    let log = two.command("logs request", " chunks");
    assert_eq!(log.last().unwrap(), "3 chunks");
    let rows = &log[1..log.len() - 1];
    let total: u64 = rows.iter().map(|l| l.split_whitespace().nth(5).unwrap().parse::<u64>().unwrap()).sum();
    assert_eq!(total, data.len() as u64);
    assert!(rows.iter().all(|l| l.contains("c.bin") && l.split_whitespace().nth(4) == Some("1")));
    let _ = swarm.tracker.command("peers", "live peer");
}
