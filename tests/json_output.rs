//! `--json` at the prompts: each such command prints exactly one line of JSON, and its numbers
//! are the transfer's.

mod common;

use common::{Swarm, b3sum, bytes};
use serde_json::Value;

fn json(line: &str) -> Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
}

#[test]
fn logs_status_peers_and_files_print_one_json_line_with_the_right_numbers() {
    let swarm = Swarm::start("15");
    let data = bytes(3 << 20 | 1000, "json");
    swarm.write_data("j.bin", &data);
    let id = b3sum(&data);
    let mut one = swarm.peer("1");
    let mut two = swarm.peer("2");
    one.command("share j.bin", "shared j.bin");
    two.command("get j.bin", "downloaded j.bin");

    // The chunk log: 13 chunks (12 of 256 KiB and the rest), all from peer 1, adding up to the file.
    let log = json(&two.command("logs request --json", "]").pop().unwrap());
    let chunks = log.as_array().expect("an array");
    assert_eq!(chunks.len(), 13, "{log}");
    assert_eq!(chunks.iter().map(|c| c["bytes"].as_u64().unwrap()).sum::<u64>(), data.len() as u64);
    assert!(chunks.iter().all(|c| c["from"] == "1" && c["id"] == id.as_str() && c["file"] == "j.bin"));
    let mut indices: Vec<u64> = chunks.iter().map(|c| c["chunk"].as_u64().unwrap()).collect();
    indices.sort();
    assert_eq!(indices, (0..13).collect::<Vec<u64>>());

    let status = json(&two.command("status --json", "}").pop().unwrap());
    assert_eq!(status["peer"], "2");
    assert_eq!(status["tracker"]["connected"], true);
    assert_eq!(status["downloads"].as_array().unwrap().len(), 0);
    let shared = &status["shared"][0];
    assert_eq!(
        (shared["name"].as_str(), shared["id"].as_str(), shared["size"].as_u64()),
        (Some("j.bin"), Some(id.as_str()), Some(data.len() as u64))
    );
    assert_eq!(shared["uploaded_chunks"].as_u64(), Some(0), "peer 2 only downloaded: {status}");
    // The holder counts what it sent: every chunk, every byte, once.
    let sender = json(&one.command("status --json", "}").pop().unwrap());
    let sent = &sender["shared"][0];
    assert_eq!((sent["uploaded_chunks"].as_u64(), sent["uploaded_bytes"].as_u64()), (Some(13), Some(data.len() as u64)), "{sender}");

    let mut tracker = swarm.tracker;
    let events = json(&tracker.command("logs request --json", "]").pop().unwrap());
    let kinds: Vec<(&str, &str)> =
        events.as_array().unwrap().iter().map(|e| (e["kind"].as_str().unwrap(), e["peer"].as_str().unwrap())).collect();
    assert!(kinds.contains(&("share", "1")) && kinds.contains(&("get", "2")), "{events}");
    let about = json(&tracker.command("logs_file j.bin --json", "]").pop().unwrap());
    assert!(about.as_array().unwrap().iter().all(|e| e["file"] == "j.bin"), "{about}");
    // Peer 2 announces what it downloaded in the background: wait until the tracker lists it.
    let both = |out: &[String]| out.iter().any(|l| l.contains(r#""holders":["1","2"]"#) || l.contains(r#""holders":["2","1"]"#));
    let files = json(&tracker.poll("files --json", "]", common::TIMEOUT, both).pop().unwrap());
    assert_eq!(files[0]["id"], id.as_str());
    assert_eq!(files[0]["size"].as_u64(), Some(data.len() as u64));
    let mut holders: Vec<&str> = files[0]["holders"].as_array().unwrap().iter().map(|h| h.as_str().unwrap()).collect();
    holders.sort();
    assert_eq!(holders, ["1", "2"]);
    let peers = json(&tracker.command("peers --json", "]").pop().unwrap());
    assert_eq!(peers.as_array().unwrap().len(), 2, "{peers}");
}
