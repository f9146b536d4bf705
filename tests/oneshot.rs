//! `p2pq seed` and `p2pq get`: one command each, no prompt; `get` exits 0 only on a verified
//! file, and `--json` gives progress and a result a script can check.

mod common;

use common::{Proc, Stream, Swarm, TIMEOUT, b3sum, bytes};
use serde_json::Value;

#[test]
fn seed_serves_until_sigterm_and_get_downloads_verified_files_and_reports_json() {
    let swarm = Swarm::start("15");
    let (a, b) = (bytes(2 << 20, "seed a"), bytes(700_000, "seed b"));
    swarm.write_data("a.bin", &a);
    swarm.write_data("b.bin", &b);
    let tracker = ["--tracker", &swarm.addr];
    let mut seed = Proc::spawn("seed", swarm.path(), &[&["seed", "a.bin", "b.bin", "--data-dir", "data"][..], &tracker].concat());
    seed.expect("shared a.bin");
    seed.expect("shared b.bin");
    let seeding = |l: &str| l.starts_with("seeding 2 files as peer seed-");
    if !seed.seen.iter().any(|(s, l)| *s == Stream::Err && seeding(l)) {
        seed.expect_on(Stream::Err, seeding, TIMEOUT);
    }

    // Two files at once, as JSON lines on stdout.
    let args = [&["get", "a.bin", "b.bin", "--download-dir", "out", "--json"][..], &tracker].concat();
    let mut get = Proc::spawn("get", swarm.path(), &args);
    let mut done = Vec::new();
    while done.len() < 2 {
        let line = get.expect_on(Stream::Out, |_| true, TIMEOUT);
        let event: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        if event["event"] == "done" {
            done.push(event);
        }
    }
    assert!(get.wait_exit(TIMEOUT).success(), "{}", get.transcript());
    let starts = get.seen.iter().filter(|(s, l)| *s == Stream::Out && l.contains("\"event\":\"start\"")).count();
    assert_eq!(starts, 2, "{}", get.transcript());
    for (name, data) in [("a.bin", &a), ("b.bin", &b)] {
        let event = done.iter().find(|e| e["name"] == name).expect("a done event per file");
        assert_eq!(event["id"], b3sum(data).as_str());
        assert_eq!(event["size"].as_u64(), Some(data.len() as u64));
        assert_eq!(event["verified"], true);
        let chunks: u64 = event["chunks_from"].as_object().unwrap().values().map(|n| n.as_u64().unwrap()).sum();
        assert_eq!(chunks, (data.len() as u64).div_ceil(256 << 10), "{event}");
        assert!(std::fs::read(swarm.path().join("out").join(name)).unwrap() == *data);
    }

    // Human output: the same summary line as the prompt's; an unknown file fails with status 1.
    let args = [&["get", "a.bin", "--download-dir", "again"][..], &tracker].concat();
    let mut get = Proc::spawn("get again", swarm.path(), &args);
    let line = get.expect("downloaded a.bin");
    assert!(line.contains(&format!("verified id {}", b3sum(&a))) && line.contains("saved to again/a.bin"), "{line}");
    assert!(get.wait_exit(TIMEOUT).success());
    let args = [&["get", "ghost.bin", "--json"][..], &tracker].concat();
    let mut ghost = Proc::spawn("ghost", swarm.path(), &args);
    let line = ghost.expect_on(Stream::Out, |l| l.contains("\"event\":\"error\""), TIMEOUT);
    let event: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(event["query"], "ghost.bin");
    let no_peer = |l: &str| l == "error: no live peer shares \"ghost.bin\"";
    if !ghost.seen.iter().any(|(s, l)| *s == Stream::Err && no_peer(l)) {
        ghost.expect_on(Stream::Err, no_peer, TIMEOUT);
    }
    assert_eq!(ghost.wait_exit(TIMEOUT).code(), Some(1));
    let errors: Vec<&String> = ghost.seen.iter().filter(|(s, l)| *s == Stream::Err && l.starts_with("error:")).map(|(_, l)| l).collect();
    assert_eq!(errors, [&"error: no live peer shares \"ghost.bin\"".to_string()], "{}", ghost.transcript());

    seed.signal("TERM");
    assert!(seed.wait_exit(TIMEOUT).success(), "{}", seed.transcript());
}

#[test]
fn get_from_a_tracker_that_is_not_the_pinned_one_fails_at_once() {
    let swarm = Swarm::start("15");
    let elsewhere = tempfile::tempdir().unwrap();
    let mut impostor = Proc::spawn("other tracker", elsewhere.path(), &["tracker", "--listen", "127.0.0.1:0"]);
    impostor.expect("tracker listening");
    let wrong = elsewhere.path().join("certs/tracker.crt");
    let args = ["get", "x.bin", "--tracker", &swarm.addr, "--tracker-cert", wrong.to_str().unwrap()];
    let mut get = Proc::spawn("get", swarm.path(), &args);
    let line = get.expect_err("error: cannot register with the tracker");
    assert!(line.contains(&swarm.addr), "{line}");
    assert_eq!(get.wait_exit(TIMEOUT).code(), Some(1));
}
