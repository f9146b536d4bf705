//! The summary of a `get` measures the transfer: not the tracker's business after it, not the
//! bytes an earlier attempt left.

mod common;

use common::{Proc, Stream, Swarm, TIMEOUT, bytes};
use serde_json::Value;

#[test]
fn a_download_whose_tracker_just_died_reports_at_once() {
    let swarm = Swarm::start("15");
    let data = bytes(3 << 20, "tracker dies");
    swarm.write_data("late.bin", &data);
    // Paced so the tracker can die while chunks still flow.
    let mut holder = swarm.peer_with("1", &["--upload-limit", "2M"]);
    holder.command("share late.bin", "shared late.bin");
    let mut get = Proc::spawn("get", swarm.path(), &["get", "late.bin", "--json", "--download-dir", "out", "--tracker", &swarm.addr]);
    let first = get.expect_on(Stream::Out, |l| l.contains("\"event\":\"progress\""), TIMEOUT);
    assert!(!first.contains(&format!("\"bytes\":{}", data.len())), "the tracker must die mid-transfer: {first}");
    swarm.tracker.signal("KILL");
    let events = get.json_until(|e| e["event"] == "done");
    let (done_at, done) = events.last().unwrap();
    assert_eq!(done["event"], "done", "{}", get.transcript());
    let (last_chunk_at, _) = events.iter().rev().find(|(_, e)| e["event"] == "progress").expect("progress events");
    let gap = done_at.duration_since(*last_chunk_at);
    // Announcing to a dead tracker waits up to its request timeout (10 s); it must not come
    // between the last chunk and the summary.
    assert!(gap.as_secs_f64() < 3.0, "summary came {gap:?} after the last chunk");
    assert!(get.wait_exit(TIMEOUT).success());
    assert!(std::fs::read(swarm.path().join("out/late.bin")).unwrap() == data);
}

#[test]
fn a_resumed_download_rates_only_the_bytes_moved_this_time() {
    let swarm = Swarm::start("15");
    let data = bytes(6 << 20, "resume rate");
    swarm.write_data("half.bin", &data);
    let mut holder = swarm.peer_with("1", &["--upload-limit", "1M"]);
    holder.command("share half.bin", "shared half.bin");
    let args = ["get", "half.bin", "--json", "--download-dir", "out", "--tracker", &swarm.addr];
    let mut first = Proc::spawn("first get", swarm.path(), &args);
    // Stop it once about a third has landed and been checkpointed.
    first.expect_on(Stream::Out, |l| l.contains("\"event\":\"progress\"") && progress_bytes(l) >= (1 << 20), TIMEOUT);
    first.signal("INT");
    assert!(!first.wait_exit(TIMEOUT).success());
    let mut again = Proc::spawn("second get", swarm.path(), &args);
    let events = again.json_until(|e| e["event"] == "done");
    let done = &events.last().unwrap().1;
    assert_eq!(done["event"], "done", "{}", again.transcript());
    let resumed = done["resumed_chunks"].as_u64().unwrap();
    assert!(resumed > 0, "{done}");
    let moved = done["bytes_moved"].as_u64().unwrap();
    assert_eq!(moved, data.len() as u64 - resumed * (256 << 10), "{done}");
    let expected = moved as f64 / (done["elapsed_ms"].as_u64().unwrap().max(1) as f64 / 1000.0);
    let rate = done["bytes_per_sec"].as_f64().unwrap();
    assert!((rate - expected).abs() <= expected * 0.05 + 1.0, "rate {rate} vs moved/elapsed {expected}: {done}");
    assert!(std::fs::read(swarm.path().join("out/half.bin")).unwrap() == data);
}

fn progress_bytes(line: &str) -> u64 {
    serde_json::from_str::<Value>(line).ok().and_then(|v| v["bytes"].as_u64()).unwrap_or(0)
}
