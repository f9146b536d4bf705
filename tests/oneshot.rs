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
    assert!(line.contains(&format!("verified id {}", &b3sum(&a)[..12])) && line.contains("saved to again/a.bin"), "{line}");
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

#[test]
fn an_interrupted_get_keeps_what_it_verified_and_the_next_one_resumes() {
    let swarm = Swarm::start("15");
    let data = bytes(6 << 20, "interrupted");
    let dir = swarm.path().join("slow");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("i.bin"), &data).unwrap();
    let dir = dir.to_string_lossy().into_owned();
    let mut holder = swarm.peer_with("h", &["--data-dir", &dir, "--upload-limit", "2M"]);
    holder.command("share i.bin", "shared ");
    let tracker = ["--tracker", &swarm.addr];
    let args = [&["get", "i.bin", "--download-dir", "dl", "--json"][..], &tracker].concat();
    let mut get = Proc::spawn("get", swarm.path(), &args);
    // Interrupt once 1 MiB is in: four chunks, well within the first second (2 MiB/s), so no
    // periodic checkpoint after the first chunk's has recorded them; only the one taken on
    // cancelling can.
    let progress = |l: &str| -> u64 {
        let v: Value = serde_json::from_str(l).unwrap_or(Value::Null);
        if v["event"] == "progress" { v["bytes"].as_u64().unwrap_or(0) } else { 0 }
    };
    let line = get.expect_on(Stream::Out, |l| progress(l) >= 1 << 20, TIMEOUT);
    let had = progress(&line) / (256 << 10);
    get.signal("INT");
    assert_eq!(get.wait_exit(TIMEOUT).code(), Some(130), "{}", get.transcript());
    assert!(!swarm.path().join("dl/i.bin").exists());
    // The next get fetches only what is missing.
    let args = [&["get", "i.bin", "--download-dir", "dl", "--json"][..], &tracker].concat();
    let mut again = Proc::spawn("get again", swarm.path(), &args);
    let line = again.expect_on(Stream::Out, |l| l.contains("\"event\":\"done\""), TIMEOUT);
    let done: Value = serde_json::from_str(&line).unwrap();
    assert!(done["resumed_chunks"].as_u64().unwrap_or(0) >= had, "had {had} chunks: {done}");
    assert!(std::fs::read(swarm.path().join("dl/i.bin")).unwrap() == data);
}
