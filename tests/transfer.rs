//! Share and get, byte for byte, from one holder and from two at once.

mod common;

use common::{Swarm, b3sum, bytes};

/// Shares `data` as `name` from peer 1, gets it on peer 2, and checks the bytes on disk.
fn roundtrip(name: &str, data: &[u8]) {
    let swarm = Swarm::start("15");
    swarm.write_data(name, data);
    let mut holder = swarm.peer("1");
    let mut getter = swarm.peer("2");
    let shared = holder.command(&format!("share {name}"), "shared ");
    assert!(shared[0].contains(&b3sum(data)[..12]), "share line shows the id: {shared:?}");
    let got = getter.command(&format!("get {name}"), "downloaded ");
    assert!(got[0].contains(&format!("verified id {}", &b3sum(data)[..12])), "{got:?}");
    let copy = std::fs::read(swarm.downloaded("2", name)).expect("downloaded file");
    assert_eq!(copy.len(), data.len());
    assert!(copy == data, "downloaded bytes differ from the original");
}

#[test]
fn empty_file_arrives_intact() {
    roundtrip("empty.bin", &[]);
}

#[test]
fn one_kib_file_arrives_intact() {
    roundtrip("small.txt", &bytes(1024, "1k"));
}

#[test]
fn ten_mib_and_17_bytes_arrive_intact() {
    roundtrip("big.bin", &bytes(10 * 1024 * 1024 + 17, "10m"));
}

#[test]
fn two_holders_both_contribute_chunks() {
    let mut swarm = Swarm::start("15");
    let data = bytes(10 * 1024 * 1024 + 17, "two holders");
    swarm.write_data("shared.bin", &data);
    let mut first = swarm.peer("1");
    let mut second = swarm.peer("2");
    let mut third = swarm.peer("3");
    first.command("share shared.bin", "shared ");
    second.command("get shared.bin", "downloaded ");
    // Peer 2 now holds it too (a finished download is shared automatically, announced in
    // the background): once the tracker lists it.
    let two_holders = |out: &[String]| out.iter().any(|l| l.contains(r#""holders":["1","2"]"#) || l.contains(r#""holders":["2","1"]"#));
    swarm.tracker.poll("files --json", "]", common::TIMEOUT, two_holders);
    let got = third.command("get shared.bin", "downloaded ").pop().unwrap();
    assert!(std::fs::read(swarm.downloaded("3", "shared.bin")).unwrap() == data);
    let from = got.split("chunks from peers ").nth(1).expect("per-peer counts (two holders: peers)");
    for peer in ["1", "2"] {
        let count: u32 = from
            .split(';')
            .next()
            .unwrap()
            .split(", ")
            .find_map(|part| part.strip_prefix(&format!("{peer}: ")))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0);
        assert!(count > 0, "peer {peer} sent no chunk: {got}");
    }
    // The chunk log names both sources too.
    let log = third.command("logs request", " chunks");
    let sources: std::collections::BTreeSet<String> =
        log.iter().skip(1).filter_map(|l| l.split_whitespace().nth(4).map(str::to_string)).collect();
    assert!(sources.contains("1") && sources.contains("2"), "{log:?}");
}

#[test]
fn an_existing_different_file_is_never_overwritten() {
    let swarm = Swarm::start("15");
    swarm.write_data("doc.txt", b"the shared version");
    let target = swarm.downloaded("2", "doc.txt");
    std::fs::create_dir_all(target.parent().unwrap()).unwrap();
    std::fs::write(&target, b"my own precious edits").unwrap();
    let mut holder = swarm.peer("1");
    let mut getter = swarm.peer("2");
    holder.command("share doc.txt", "shared ");
    getter.send("get doc.txt");
    let err = getter.expect_err("error:");
    assert!(err.contains("not overwritten"), "{err}");
    assert_eq!(std::fs::read(&target).unwrap(), b"my own precious edits");
    // The prompt goes on.
    getter.command("status", "shared file");
}

#[test]
fn getting_what_nobody_shares_is_one_clear_line_and_the_peer_goes_on() {
    let swarm = Swarm::start("15");
    swarm.write_data("real.txt", b"real");
    let mut peer = swarm.peer("1");
    peer.send("get ghost.txt");
    let err = peer.expect_err("error:");
    assert!(err.contains("no live peer shares \"ghost.txt\""), "{err}");
    peer.send("frobnicate");
    assert!(peer.expect_err("error:").contains("unknown command"));
    peer.command("share real.txt", "shared real.txt");
    assert!(peer.is_running());
}

#[test]
fn get_by_id_prefix_works() {
    let swarm = Swarm::start("15");
    let data = bytes(3000, "prefix");
    swarm.write_data("p.bin", &data);
    let mut holder = swarm.peer("1");
    let mut getter = swarm.peer("2");
    holder.command("share p.bin", "shared ");
    getter.command(&format!("get {}", &b3sum(&data)[..10]), "downloaded p.bin");
    assert!(std::fs::read(swarm.downloaded("2", "p.bin")).unwrap() == data);
}

#[test]
fn many_files_from_one_holder_at_once_all_arrive() {
    // More concurrent downloads than a holder admits connections from one peer: they share one.
    let swarm = Swarm::start("15");
    let names: Vec<String> = (1..=6).map(|i| format!("f{i}.bin")).collect();
    let files: Vec<Vec<u8>> = names.iter().map(|n| bytes(700_000, n)).collect();
    for (name, data) in names.iter().zip(&files) {
        swarm.write_data(name, data);
    }
    let mut holder = swarm.peer("1");
    let mut getter = swarm.peer("2");
    holder.command(&format!("share {}", names.join(" ")), "shared f6.bin");
    getter.send(&format!("get {}", names.join(" ")));
    for _ in &names {
        getter.expect("downloaded ");
    }
    for (name, data) in names.iter().zip(&files) {
        assert!(std::fs::read(swarm.downloaded("2", name)).unwrap() == *data, "{name} differs");
    }
}

#[test]
fn one_file_named_two_ways_at_once_is_downloaded_once() {
    let swarm = Swarm::start("15");
    let data = bytes(2 << 20, "twice");
    swarm.write_data("twice.bin", &data);
    let mut holder = swarm.peer_with("1", &["--upload-limit", "2M"]);
    let mut getter = swarm.peer("2");
    holder.command("share twice.bin", "shared ");
    getter.send(&format!("get twice.bin {}", &b3sum(&data)[..10]));
    let err = getter.expect_err("error:");
    assert!(err.contains("already being downloaded"), "{err}");
    getter.expect("downloaded twice.bin");
    assert!(std::fs::read(swarm.downloaded("2", "twice.bin")).unwrap() == data);
}
