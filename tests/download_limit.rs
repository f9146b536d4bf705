//! `--download-limit` holds across every file a command downloads at once.

mod common;

use common::{Proc, Swarm, bytes};

#[test]
fn two_files_at_once_share_one_download_limit() {
    let swarm = Swarm::start("15");
    let (a, b) = (bytes(1 << 20, "limit a"), bytes(1 << 20, "limit b"));
    swarm.write_data("a.bin", &a);
    swarm.write_data("b.bin", &b);
    let mut holder = swarm.peer("1");
    holder.command("share a.bin b.bin", "shared b.bin");
    let args = ["get", "a.bin", "b.bin", "--json", "--download-dir", "out", "--tracker", &swarm.addr, "--download-limit", "1M"];
    let mut get = Proc::spawn("get", swarm.path(), &args);
    let mut done = Vec::new();
    while done.len() < 2 {
        let events = get.json_until(|e| e["event"] == "done");
        let (_, last) = events.last().unwrap();
        assert_eq!(last["event"], "done", "{}", get.transcript());
        done.push(last["elapsed_ms"].as_u64().unwrap());
    }
    assert!(get.wait_exit(common::TIMEOUT).success());
    // 2 MiB at 1 MiB/s, less the quarter second the limit may burst: not before 1.5 s. (On
    // loopback without a limit this takes a few tens of milliseconds.)
    let last = done.iter().max().unwrap();
    assert!(*last >= 1500, "both files were in after {last} ms: the limit did not hold across them");
    for (name, data) in [("a.bin", &a), ("b.bin", &b)] {
        assert!(std::fs::read(swarm.path().join("out").join(name)).unwrap() == *data);
    }
}
