//! Unfinished downloads are visible and tidy: `status` lists what an interrupted `get` left
//! and how much of it is verified, `discard` drops one (never while it runs), a download that
//! cannot fit fails before fetching anything, and nothing is left behind that holds nothing.

mod common;

use std::path::Path;

use common::inproc::{self, Net};
use common::{Proc, Stream, Swarm, TIMEOUT, Tmpfs, b3sum, bytes};
use p2pq::net::linksim::Link;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

const CHUNK: u64 = 256 << 10;

/// What is in `dir`.
fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir).map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect()).unwrap_or_default()
}

#[test]
fn status_lists_an_unfinished_download_and_discard_drops_it() {
    let swarm = Swarm::start("15");
    let data = bytes(4 << 20, "unfinished");
    let holder = swarm.slow_holder("h", "r.bin", &data, "1M");
    let mut getter = swarm.peer_with("g", &["--stall-timeout", "1"]);
    getter.send("get r.bin");
    // Once a checkpoint has recorded chunks, the holder goes away: the get stops after its (short)
    // stall timeout, keeping them.
    let partial = swarm.path().join("data/peer-g/.p2pq-partial");
    common::wait_until(TIMEOUT, || partial.join(format!("{}.bits", b3sum(&data))).exists());
    holder.signal("KILL");
    let err = getter.expect_err("error:");
    assert!(err.contains("chunks verified and kept"), "{err}");

    let status = getter.command("status", "shared file");
    let row = status.iter().find(|l| l.starts_with("r.bin ")).unwrap_or_else(|| panic!("no unfinished r.bin in:\n{}", status.join("\n")));
    assert!(status.iter().any(|l| l.starts_with("UNFINISHED")) && row.contains(&b3sum(&data)[..12]), "{}", status.join("\n"));
    assert!(row.contains("/16") && row.contains("4.0 MiB"), "{row}");

    let json = getter.command("status --json", "\"unfinished\"").pop().unwrap();
    let json: Value = serde_json::from_str(&json).unwrap_or_else(|e| panic!("not JSON ({e}): {json}"));
    let u = &json["unfinished"][0];
    assert_eq!((u["name"].as_str(), u["id"].as_str(), u["chunks"].as_u64()), (Some("r.bin"), Some(b3sum(&data).as_str()), Some(16)));
    let verified = u["verified_chunks"].as_u64().unwrap();
    assert!(verified > 0 && verified < 16, "{u}");
    assert_eq!(u["verified_bytes"].as_u64(), Some(verified * CHUNK));
    assert_eq!(u["percent"].as_u64(), Some(verified * 100 / 16));
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let saved = u["saved_ms"].as_i64().unwrap();
    assert!(now_ms - saved < 60_000 && saved <= now_ms + 1000, "saved {saved}, now {now_ms}");

    let line = getter.command("discard r.bin", "discarded")[0].clone();
    assert!(
        line.starts_with(&format!("discarded unfinished r.bin ({}% verified, {verified} of 16 chunks)", verified * 100 / 16)),
        "{line}"
    );
    assert!(!partial.exists(), "left behind: {:?}", leftovers(&partial));
    let status = getter.command("status", "shared file");
    assert!(!status.iter().any(|l| l.contains("UNFINISHED")), "{}", status.join("\n"));
    getter.send("discard r.bin");
    let err = getter.expect_on(Stream::Err, |l| l.starts_with("error:"), TIMEOUT);
    assert_eq!(err, "error: no unfinished download \"r.bin\" (status lists them)");
}

#[test]
fn discard_is_refused_while_the_download_runs() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut net = Net::start().await.unwrap();
        let data = bytes(4 << 20, "discard while running");
        let (_holder, _) = net.seeder("h", Link::default().rate_mbit(8.0), "r.bin", &data).await.unwrap();
        let (getter, _) = net.add_peer("g", Link::default()).await.unwrap();
        let cancel = CancellationToken::new();
        let get = tokio::spawn({
            let (getter, cancel) = (getter.clone(), cancel.clone());
            async move { getter.get_with("r.bin", None, &cancel).await }
        });
        inproc::wait_for(inproc::GET_TIMEOUT, || getter.transfers().first().is_some_and(|t| t.bytes > 0)).await.unwrap();
        let prefix = &b3sum(&data)[..8];
        let refused = getter.discard(prefix).expect_err("discarded a download that runs");
        assert_eq!(refused.to_string().lines().count(), 1);
        assert!(refused.to_string().contains("is downloading now"), "{refused}");
        assert!(getter.unfinished().is_empty(), "a running download is listed as unfinished");

        cancel.cancel();
        assert!(tokio::time::timeout(TIMEOUT, get).await.unwrap().unwrap().is_err());
        let left = getter.unfinished();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].name.as_deref(), Some("r.bin"));
        assert!(left[0].verified_chunks > 0);
        let gone = getter.discard("r.bin").unwrap();
        assert_eq!(gone.id, left[0].id);
        assert!(getter.unfinished().is_empty());
        let partial = getter.state_dir().parent().unwrap().join("downloads/.p2pq-partial");
        assert!(!partial.exists(), "left behind: {:?}", leftovers(&partial));
        net.stop().await;
    });
}

#[test]
fn a_one_shot_get_leaves_no_hidden_folder_behind() {
    let swarm = Swarm::start("15");
    let data = bytes(600_000, "tidy");
    swarm.write_data("a.bin", &data);
    let mut seed = Proc::spawn("seed", swarm.path(), &["seed", "a.bin", "--data-dir", "data", "--tracker", &swarm.addr]);
    seed.expect("shared a.bin");
    let mut get = Proc::spawn("get", swarm.path(), &["get", "a.bin", "--download-dir", "out", "--tracker", &swarm.addr]);
    assert!(get.wait_exit(TIMEOUT).success(), "{}", get.transcript());
    assert!(std::fs::read(swarm.path().join("out/a.bin")).unwrap() == data);
    assert_eq!(leftovers(&swarm.path().join("out")), ["a.bin"]);
    seed.signal("TERM");
    assert!(seed.wait_exit(TIMEOUT).success());
}

#[cfg(target_os = "linux")]
#[test]
fn a_download_too_big_for_the_disk_fails_before_fetching_anything() {
    let swarm = Swarm::start("15");
    let data = bytes(3 << 20, "too big");
    let mut holder = swarm.slow_holder("h", "d.bin", &data, "1G");
    let small = swarm.path().join("small-disk");
    let Some(_mount) = Tmpfs::mount(&small, "1m") else {
        eprintln!("skipped: cannot mount a small tmpfs here (needs root)");
        return;
    };
    let mut get = Proc::spawn("get", swarm.path(), &["get", "d.bin", "--download-dir", "small-disk", "--tracker", &swarm.addr]);
    let line = get.expect_on(Stream::Err, |l| l.starts_with("error:"), TIMEOUT);
    assert_eq!(get.wait_exit(TIMEOUT).code(), Some(1));
    assert!(line.ends_with("not enough free space in small-disk for d.bin: needs 3.0 MiB, 1.0 MiB free (2.0 MiB missing)"), "{line}");
    assert!(leftovers(&small).is_empty(), "written before the check: {:?}", leftovers(&small));
    // Not one chunk was asked for.
    let status = holder.command("status", "shared file");
    let row = status.iter().find(|l| l.starts_with("d.bin ")).expect("the holder's row");
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert!(cells.ends_with(&["0", "B", "0"]), "the holder sent chunks: {row}");
}

#[cfg(target_os = "linux")]
#[test]
fn a_partial_file_reserves_its_size_or_fails_leaving_nothing() {
    use p2pq::content::manifest::Manifest;
    use p2pq::store::{StoreError, partial::Partial};
    let top = tempfile::tempdir().unwrap();
    let small = top.path().join("small");
    let Some(_mount) = Tmpfs::mount(&small, "1m") else {
        eprintln!("skipped: cannot mount a small tmpfs here (needs root)");
        return;
    };
    let (id, manifest) = Manifest::from_bytes(&bytes(3 << 20, "reserve"));
    let opened = Partial::open(&small, &id, "big.bin", &manifest);
    assert!(matches!(opened, Err(StoreError::NoSpace { need: 3145728, .. })), "{:?}", opened.err());
    assert!(leftovers(&small).is_empty(), "left behind: {:?}", leftovers(&small));
    // One that fits takes its space now, not chunk by chunk.
    let (id, manifest) = Manifest::from_bytes(&bytes(600 << 10, "fits"));
    let before = p2pq::store::space::free_bytes(&small).unwrap();
    let (_partial, _) = Partial::open(&small, &id, "fits.bin", &manifest).unwrap();
    let after = p2pq::store::space::free_bytes(&small).unwrap();
    assert!(before - after >= 600 << 10, "reserved only {} bytes", before - after);
}
