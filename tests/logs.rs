//! The tracker's three log views (both spellings, filters, folded heartbeats), the peer's
//! chunk log (sizes in units, filters), and logs that survive a restart.

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
    // Peer 2 announces what it downloaded in the background: wait for that share too.
    swarm.tracker.poll("logs request", " event", common::TIMEOUT, |out| out.iter().filter(|l| kind(l) == "share").count() == 3);

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
    swarm.write_data("d.bin", b"small");
    let mut one = swarm.peer("1");
    let mut two = swarm.peer("2");
    one.command("share c.bin", "shared ");
    one.command("share d.bin", "shared ");
    two.command("get c.bin", "downloaded ");
    two.command("get d.bin", "downloaded ");
    let log = two.command("logs request", " chunk");
    assert_eq!(log.last().unwrap(), "4 chunks");
    let rows = &log[1..log.len() - 1];
    assert!(rows.iter().all(|l| l.split_whitespace().nth(4) == Some("1")), "all from peer 1: {rows:?}");
    // Sizes read like people write them: three chunks of c.bin (256 KiB, 256 KiB, 88 KiB), 5 B.
    let c_rows: Vec<&String> = rows.iter().filter(|l| l.contains("c.bin")).collect();
    assert_eq!(c_rows.iter().filter(|l| l.contains("256.0 KiB")).count(), 2, "{rows:?}");
    assert!(c_rows.iter().any(|l| l.contains("88.0 KiB")) && rows.iter().any(|l| l.contains("d.bin") && l.contains(" 5 B")), "{rows:?}");
    // --json keeps exact byte counts, which add up to the file.
    let json = two.command("logs request --json --file c.bin", "[");
    let records: serde_json::Value = serde_json::from_str(json.last().unwrap()).unwrap();
    let total: u64 = records.as_array().unwrap().iter().map(|r| r["bytes"].as_u64().unwrap()).sum();
    assert_eq!(total, data.len() as u64);
    let _ = swarm.tracker.command("peers", "live peer");
}

#[test]
fn peer_logs_filter_by_file_and_peer_and_keep_the_tail() {
    let swarm = Swarm::start("15");
    swarm.write_data("c.bin", &common::bytes(600 * 1024, "tail"));
    swarm.write_data("d.bin", b"small");
    let mut one = swarm.peer("1");
    let mut two = swarm.peer("2");
    one.command("share c.bin", "shared ");
    let d_id = one.command("share d.bin", "shared ").last().unwrap().rsplit(' ').next().unwrap().to_string();
    two.command("get c.bin", "downloaded ");
    two.command("get d.bin", "downloaded ");
    assert_eq!(two.command("logs request --file c.bin", " chunk").last().unwrap(), "3 chunks");
    let by_id = two.command(&format!("logs request --file {}", &d_id[..8]), " chunk");
    assert_eq!(by_id.last().unwrap(), "1 chunk");
    assert!(by_id[1].contains("d.bin"), "{by_id:?}");
    let tail = two.command("logs request --tail 1", " chunk");
    assert_eq!(tail.len(), 3, "header, the newest chunk, the count: {tail:?}");
    assert!(tail[1].contains("d.bin"), "{tail:?}");
    assert_eq!(two.command("logs request --peer 1", " chunk").last().unwrap(), "4 chunks");
    assert_eq!(two.command("logs request --peer 3", " chunk").last().unwrap(), "0 chunks");
    two.send("logs request --tail lots");
    let err = two.expect_err("error:");
    assert!(err.contains("--tail takes a number"), "{err}");
}

#[test]
fn tracker_logs_fold_heartbeats_and_take_filters_and_both_spellings() {
    let mut swarm = Swarm::start("15");
    swarm.write_data("a.txt", b"alpha");
    swarm.write_data("b.txt", b"beta");
    let mut one = swarm.peer("1");
    let mut two = swarm.peer("2");
    one.command("share a.txt", "shared ");
    two.command("share b.txt", "shared ");
    two.command("get a.txt", "downloaded ");
    // Sizes and counts read like people write them.
    let requests = events(&mut swarm.tracker, "logs request");
    assert!(requests.iter().any(|l| kind(l) == "share" && l.contains("a.txt") && l.ends_with(" 5 B")), "{requests:?}");
    assert!(requests.iter().any(|l| kind(l) == "get" && l.ends_with("1 match, 1 holder")), "{requests:?}");
    // Heartbeats every 0.2 s: wait until peer 1 has a run of several, shown as one row.
    let all = swarm.tracker.poll("logs-all", " event", common::TIMEOUT, |out| out.iter().any(|l| l.contains("alive ×")));
    let folded: Vec<&String> = all.iter().filter(|l| kind(l) == "alive").collect();
    assert!(folded.iter().all(|l| !l.contains("alive ×") || l.contains("until ")), "a run shows its span: {folded:?}");
    assert!(all.last().unwrap().contains("heartbeats folded"), "{all:?}");
    // --json keeps every heartbeat; the table has fewer alive rows than there are heartbeats.
    let json = swarm.tracker.command("logs-all --json", "[");
    let records: serde_json::Value = serde_json::from_str(json.last().unwrap()).unwrap();
    let alive = records.as_array().unwrap().iter().filter(|r| r["kind"] == "alive").count();
    assert!(alive > folded.len(), "{alive} heartbeats in JSON, {} rows: {all:?}", folded.len());

    // The consistent spellings read the same as the seed's.
    let strip = |lines: Vec<String>| -> Vec<String> { lines.into_iter().filter(|l| kind(l) != "alive").collect() };
    assert_eq!(strip(events(&mut swarm.tracker, "logs file a.txt")), strip(events(&mut swarm.tracker, "logs_file a.txt")));
    let mut spelled = events(&mut swarm.tracker, "logs all --tail 1");
    assert_eq!(spelled.len(), 1, "{spelled:?}");
    spelled = events(&mut swarm.tracker, "logs request --peer 2");
    assert!(!spelled.is_empty() && spelled.iter().all(|l| l.split_whitespace().nth(3) == Some("2")), "{spelled:?}");
    spelled = events(&mut swarm.tracker, "logs all --file b.txt");
    assert!(!spelled.is_empty() && spelled.iter().all(|l| l.contains("b.txt")), "{spelled:?}");
    let tail = events(&mut swarm.tracker, "logs_file a.txt --tail 1");
    assert_eq!(tail.len(), 1, "{tail:?}");
}
