//! Tickets: `share` prints one line; pasted on "another machine" (a folder with no certificate
//! of the tracker's) it is all `get` needs, and a damaged one is one clear error.

mod common;

use common::{Proc, Stream, Swarm, TIMEOUT, bytes};

/// Starts `p2pq seed NAME` in the swarm's folder and returns it with the ticket it printed.
fn seed_with_ticket(swarm: &Swarm, name: &str) -> (Proc, String) {
    let args = ["seed", name, "--data-dir", "data", "--tracker", &swarm.addr];
    let mut seed = Proc::spawn("seed", swarm.path(), &args);
    seed.expect(&format!("shared {name}"));
    let line = seed.expect("ticket p2pq1");
    let ticket = line.strip_prefix("ticket ").expect("ticket line").to_string();
    assert!(ticket.bytes().all(|b| b.is_ascii_alphanumeric()), "one word to paste: {line}");
    (seed, ticket)
}

/// A folder standing for another machine: nothing of the swarm's in it.
fn elsewhere() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    assert!(!dir.path().join("certs").exists());
    dir
}

#[test]
fn a_pasted_ticket_downloads_the_file_with_no_certificate_copied() {
    let swarm = Swarm::start("15");
    let data = bytes(1_500_000, "ticket");
    swarm.write_data("holiday photos.zip", &data);
    let (_seed, ticket) = seed_with_ticket(&swarm, "holiday photos.zip");

    let other = elsewhere();
    let mut get = Proc::spawn("get", other.path(), &["get", &ticket]);
    let line = get.expect("downloaded holiday photos.zip");
    assert!(get.wait_exit(TIMEOUT).success(), "{}", get.transcript());
    assert!(line.contains("saved to ./holiday photos.zip"), "{line}");
    assert!(std::fs::read(other.path().join("holiday photos.zip")).unwrap() == data, "bytes on disk equal the original");
}

#[test]
fn a_peer_started_with_a_ticket_as_its_tracker_gets_tickets_at_its_prompt() {
    let swarm = Swarm::start("15");
    let data = bytes(300_000, "prompt ticket");
    swarm.write_data("notes.txt", &data);
    let (_seed, ticket) = seed_with_ticket(&swarm, "notes.txt");

    let other = elsewhere();
    let args = ["peer", "2", "--tracker", &ticket, "--listen", "127.0.0.1:0", "--heartbeat", "0.2"];
    let mut peer = Proc::spawn("peer 2", other.path(), &args);
    peer.expect("connected to tracker");
    peer.send(&format!("get {ticket}"));
    peer.expect("downloaded notes.txt");
    assert!(std::fs::read(other.path().join("data/peer-2/notes.txt")).unwrap() == data);
    // A peer's own shares print a ticket too, for the same tracker.
    std::fs::write(other.path().join("data/mine.txt"), b"mine").unwrap();
    peer.send("share mine.txt");
    let line = peer.expect("ticket p2pq1");
    let back = p2pq::discovery::ticket::Ticket::parse(line.strip_prefix("ticket ").unwrap()).unwrap();
    let first = p2pq::discovery::ticket::Ticket::parse(&ticket).unwrap();
    assert_eq!(back.tracker_fingerprint, first.tracker_fingerprint);
    assert_eq!(back.file.name, "mine.txt");
}

#[test]
fn a_damaged_ticket_or_one_for_another_tracker_is_one_clear_line() {
    let swarm = Swarm::start("15");
    swarm.write_data("x.bin", b"x");
    let (_seed, ticket) = seed_with_ticket(&swarm, "x.bin");

    let cut = &ticket[..ticket.len() - 4];
    let mut get = Proc::spawn("get cut", elsewhere().path(), &["get", cut]);
    let err = get.expect_on(Stream::Err, |l| l.starts_with("error:"), TIMEOUT);
    assert_eq!(err, "error: the ticket is damaged (checksum mismatch); copy the whole line again");
    assert!(!get.wait_exit(TIMEOUT).success());

    // A peer of another tracker is told what to do instead.
    let other = Swarm::start("15");
    let mut peer = other.peer("3");
    peer.send(&format!("get {ticket}"));
    let err = peer.expect_err("error:");
    assert!(err.contains("this ticket is for another tracker") && err.contains("p2pq get TICKET"), "{err}");
    assert!(peer.is_running());
}

#[test]
fn tracker_accepts_a_host_name_and_a_default_port() {
    let swarm = Swarm::start("15");
    let port = swarm.addr.rsplit_once(':').unwrap().1.to_string();
    let mut peer = Proc::spawn("peer", swarm.path(), &["peer", "h", "--tracker", &format!("localhost:{port}"), "--listen", "127.0.0.1:0"]);
    peer.expect("connected to tracker");
    // No port: 6771, which nothing listens on here; the error names it.
    let mut lost = Proc::spawn("peer", swarm.path(), &["peer", "i", "--tracker", "localhost", "--listen", "127.0.0.1:0"]);
    let line = lost.expect("tracker unreachable at");
    assert!(line.contains(":6771"), "{line}");
}

#[test]
fn get_json_with_the_tracker_down_ends_with_one_error_event_per_file() {
    // A "tracker" that never answers: a socket we hold and never read.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let ticket = p2pq::discovery::ticket::Ticket {
        trackers: vec![silent.local_addr().unwrap().to_string()],
        tracker_fingerprint: blake3::hash(b"some tracker").into(),
        file: p2pq::protocol::FileInfo { id: blake3::hash(b"f").into(), name: "f.bin".into(), size: 1, folder: None },
    };
    let dir = elsewhere();
    let mut get = Proc::spawn("get", dir.path(), &["get", &ticket.to_string(), "--json"]);
    // It says at once what it is doing, on stderr, while it waits.
    get.expect_on(Stream::Err, |l| l.starts_with("connecting to the tracker at 127.0.0.1:"), TIMEOUT);
    let line = get.expect_on(Stream::Out, |_| true, TIMEOUT);
    let event: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    assert_eq!(event["event"], "error", "{line}");
    assert!(event["message"].as_str().unwrap().starts_with("cannot register with the tracker at 127.0.0.1:"), "{line}");
    assert!(!get.wait_exit(TIMEOUT).success());
    let out: Vec<&String> = get.seen.iter().filter(|(s, _)| *s == Stream::Out).map(|(_, l)| l).collect();
    assert_eq!(out.len(), 1, "{}", get.transcript());
    assert!(!get.transcript().contains("retrying"), "no 'retrying' right before giving up: {}", get.transcript());
}

#[test]
fn seed_with_its_own_tracker_sends_a_file_in_one_command() {
    let here = tempfile::tempdir().unwrap();
    let data = bytes(800_000, "one command");
    std::fs::write(here.path().join("notes.txt"), &data).unwrap();
    let mut seed = Proc::spawn("seed", here.path(), &["seed", "notes.txt", "--with-tracker=127.0.0.1:0"]);
    seed.expect_on(Stream::Err, |l| l.starts_with("tracker for this seed listening on 127.0.0.1:"), TIMEOUT);
    let ticket = seed.expect("ticket p2pq1").strip_prefix("ticket ").unwrap().to_string();
    let other = elsewhere();
    let mut get = Proc::spawn("get", other.path(), &["get", &ticket]);
    get.expect("downloaded notes.txt");
    assert!(get.wait_exit(TIMEOUT).success(), "{}", get.transcript());
    assert!(std::fs::read(other.path().join("notes.txt")).unwrap() == data);
    // Nothing of the seed's tracker is left in the folder it ran in.
    assert!(!here.path().join("certs").exists() && !here.path().join(".p2pq").exists());
    seed.signal("TERM");
    assert!(seed.wait_exit(TIMEOUT).success(), "{}", seed.transcript());
}
