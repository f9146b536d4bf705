//! A running download uses holders that appear after it began, and one whose every holder
//! left waits for a new one (saying so) instead of failing at once.

mod common;

use common::{Proc, Stream, Swarm, TIMEOUT, bytes};
use serde_json::Value;

/// The events of `get` until one satisfies `stop`.
fn events_until(get: &mut Proc, stop: impl Fn(&Value) -> bool) -> Vec<Value> {
    get.json_until(stop).into_iter().map(|(_, e)| e).collect()
}

fn is(kind: &'static str) -> impl Fn(&Value) -> bool {
    move |e| e["event"] == kind
}

#[test]
fn a_holder_that_starts_sharing_during_a_download_is_used() {
    let mut swarm = Swarm::start("15");
    let data = bytes(4 << 20, "late holder");
    swarm.write_data("late.bin", &data);
    let mut slow = swarm.peer_with("slow", &["--upload-limit", "200K"]);
    slow.command("share late.bin", "shared late.bin");
    let args = ["get", "late.bin", "--json", "--download-dir", "out", "--tracker", &swarm.addr];
    let mut get = Proc::spawn("get", swarm.path(), &args);
    events_until(&mut get, is("progress"));
    let mut fast = swarm.peer("fast");
    fast.command("share late.bin", "shared late.bin");
    let events = events_until(&mut get, is("done"));
    let done = events.last().unwrap();
    assert_eq!(done["event"], "done", "{}", get.transcript());
    let from = done["chunks_from"].as_object().unwrap();
    assert!(from.get("fast").and_then(Value::as_u64).unwrap_or(0) > 0, "the late holder sent chunks: {done}");
    assert!(std::fs::read(swarm.path().join("out/late.bin")).unwrap() == data);
    // Asking again for holders is not a new get in the tracker's log: one get, one download.
    let log = swarm.tracker.command("logs request --json", "]").pop().unwrap();
    let events: Vec<Value> = serde_json::from_str(&log).unwrap();
    let gets = events.iter().filter(|e| e["kind"] == "get" && e["file"] == "late.bin").count();
    assert_eq!(gets, 1, "{log}");
}

#[test]
fn with_every_holder_gone_a_download_waits_and_goes_on_with_a_new_one() {
    let swarm = Swarm::start("15");
    let data = bytes(3 << 20, "wait for holders");
    swarm.write_data("wait.bin", &data);
    let mut first = swarm.peer_with("first", &["--upload-limit", "500K"]);
    first.command("share wait.bin", "shared wait.bin");
    let args = ["get", "wait.bin", "--json", "--download-dir", "out", "--tracker", &swarm.addr, "--stall-timeout", "120"];
    let mut get = Proc::spawn("get", swarm.path(), &args);
    events_until(&mut get, is("progress"));
    first.signal("KILL");
    let waits = |e: &Value| e["event"] == "warning" && e["message"].as_str().is_some_and(|m| m.contains("waiting up to 2 min"));
    let events = events_until(&mut get, waits);
    assert!(events.iter().any(waits), "it says it waits: {}", get.transcript());
    assert!(events.iter().any(|e| e["event"] == "holders" && e["holders"] == 0), "the bar says so too: {}", get.transcript());
    let mut second = swarm.peer("second");
    second.command("share wait.bin", "shared wait.bin");
    let events = events_until(&mut get, is("done"));
    assert!(events.iter().any(|e| e["message"].as_str().is_some_and(|m| m.starts_with("found peer second"))), "{}", get.transcript());
    assert_eq!(events.last().unwrap()["event"], "done", "{}", get.transcript());
    assert!(get.wait_exit(TIMEOUT).success());
    assert!(std::fs::read(swarm.path().join("out/wait.bin")).unwrap() == data);
}

#[test]
fn a_download_gives_up_after_its_stall_timeout_and_keeps_what_it_verified() {
    let swarm = Swarm::start("15");
    let data = bytes(3 << 20, "give up");
    swarm.write_data("gone.bin", &data);
    let mut only = swarm.peer_with("only", &["--upload-limit", "500K"]);
    only.command("share gone.bin", "shared gone.bin");
    let args = ["get", "gone.bin", "--download-dir", "out", "--tracker", &swarm.addr, "--stall-timeout", "1"];
    let mut get = Proc::spawn("get", swarm.path(), &args);
    get.expect_on(Stream::Err, |l| l.starts_with("connecting to the tracker"), TIMEOUT);
    common::wait_until(TIMEOUT, || std::fs::read_dir(swarm.path().join("out")).is_ok_and(|mut d| d.next().is_some()));
    only.signal("KILL");
    let err = get.expect_on(Stream::Err, |l| l.starts_with("error:"), TIMEOUT);
    assert!(err.contains("no holder answered for") && err.contains("chunks verified and kept, get it again to resume"), "{err}");
    assert!(!get.wait_exit(TIMEOUT).success());
}
