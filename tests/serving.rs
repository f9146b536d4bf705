//! `status` says how many peers each shared file is being served to right now.

mod common;

use common::{Swarm, TIMEOUT, bytes};
use serde_json::Value;

fn serving(status: &[String]) -> Option<u64> {
    let json: Value = serde_json::from_str(status.last()?).ok()?;
    json["shared"][0]["serving_peers"].as_u64()
}

#[test]
fn a_holder_counts_the_peers_it_is_serving_now() {
    let swarm = Swarm::start("15");
    let data = bytes(4 << 20, "serving");
    let mut holder = swarm.slow_holder("1", "s.bin", &data, "1M");
    assert_eq!(serving(&holder.command("status --json", "\"shared\"")), Some(0), "nobody yet");
    let mut getter = swarm.peer("2");
    getter.send("get s.bin");
    // While chunks flow (about four seconds at 1 MiB/s), the holder counts one downloader.
    let during = holder.poll("status --json", "\"shared\"", TIMEOUT, |out| serving(out) == Some(1));
    assert_eq!(serving(&during), Some(1));
    getter.expect("downloaded s.bin");
    assert!(std::fs::read(swarm.downloaded("2", "s.bin")).unwrap() == data);
    // The downloader now shares it too, and serves nobody.
    assert_eq!(serving(&getter.command("status --json", "\"shared\"")), Some(0));
}
