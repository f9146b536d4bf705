//! A download finishes with exactly the right bytes or stops with a clear reason and loses
//! nothing: killed holders, lying holders, edited files, killed downloaders, a restarted tracker,
//! a full disk, and two files under one name.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use common::{Proc, Swarm, TIMEOUT, Tmpfs, b3sum, bytes};
use p2pq::content::manifest::Manifest;
use p2pq::net::tls::{self, Identity};
use p2pq::protocol::{self, ChunkHeader, FileInfo, ManifestReply, PeerRequest, TrackerRequest, TrackerResponse};

/// The `N` in a `downloaded` line's `chunks from peer(s) ... ID: N` for `peer`.
fn chunks_from(line: &str, peer: &str) -> u32 {
    let from = line.split("chunks from peer").nth(1).unwrap_or("");
    let from = from.strip_prefix("s ").or_else(|| from.strip_prefix(' ')).unwrap_or("");
    let from = from.split(';').next().unwrap_or("");
    from.split(", ").find_map(|p| p.strip_prefix(&format!("{peer}: "))).and_then(|n| n.trim().parse().ok()).unwrap_or(0)
}

#[test]
fn a_holder_killed_mid_transfer_leaves_the_rest_to_the_others() {
    let swarm = Swarm::start("15");
    let data = bytes(12 << 20, "killed holder");
    let doomed = swarm.slow_holder("doomed", "f.bin", &data, "2M");
    let _steady = swarm.slow_holder("steady", "f.bin", &data, "2M");
    let mut getter = swarm.peer("getter");
    getter.send("get f.bin");
    // Both holders are in the download once its first checkpoint has recorded chunks.
    wait_for_checkpoint(&swarm, "getter", &data);
    doomed.signal("KILL");
    let line = getter.expect("downloaded f.bin");
    assert!(chunks_from(&line, "steady") > 0, "{line}");
    assert!(std::fs::read(swarm.downloaded("getter", "f.bin")).unwrap() == data);
}

/// A paced holder serving `name` and a getter downloading it, returned once chunks are
/// flowing and a checkpoint has recorded some of them.
fn get_under_way(swarm: &Swarm, holder: &str, getter: &str, name: &str, data: &[u8]) -> (Proc, Proc) {
    get_under_way_with(swarm, holder, (getter, &[]), name, data)
}

/// [`get_under_way`], the getter started with `getter_args`.
fn get_under_way_with(swarm: &Swarm, holder: &str, (getter, getter_args): (&str, &[&str]), name: &str, data: &[u8]) -> (Proc, Proc) {
    let serving = swarm.slow_holder(holder, name, data, "2M");
    let mut getting = swarm.peer_with(getter, getter_args);
    getting.send(&format!("get {name}"));
    wait_for_checkpoint(swarm, getter, data);
    (serving, getting)
}

/// Waits until `getter`'s download of `data` has checkpointed verified chunks (its resume
/// bitfield exists): chunks are flowing from its holders.
fn wait_for_checkpoint(swarm: &Swarm, getter: &str, data: &[u8]) {
    let partial = swarm.path().join(format!("data/peer-{getter}/.p2pq-partial"));
    let bits = partial.join(format!("{}.bits", b3sum(data)));
    common::wait_until(TIMEOUT, || bits.exists());
}

#[test]
fn with_no_holder_left_for_its_stall_timeout_get_stops_keeps_what_it_has_and_resumes_later() {
    let swarm = Swarm::start("15");
    let data = bytes(8 << 20, "resume after holder loss");
    let (only, mut getter) = get_under_way_with(&swarm, "only", ("getter", &["--stall-timeout", "1"]), "r.bin", &data);
    only.signal("KILL");
    let err = getter.expect_err("error:");
    assert!(err.contains("chunks verified and kept"), "{err}");
    assert!(!swarm.downloaded("getter", "r.bin").exists(), "an incomplete file appeared under its name");
    // The holder comes back (same id and certificate); get again resumes.
    let _again = swarm.slow_holder("only", "r.bin", &data, "64M");
    let line = getter.command("get r.bin", "downloaded r.bin").pop().unwrap();
    assert!(line.contains("already here from an earlier attempt"), "{line}");
    assert!(std::fs::read(swarm.downloaded("getter", "r.bin")).unwrap() == data);
}

#[test]
fn a_downloader_killed_mid_download_resumes_where_it_was() {
    let swarm = Swarm::start("15");
    let data = bytes(8 << 20, "killed downloader");
    let (_holder, mut getter) = get_under_way(&swarm, "h", "g", "k.bin", &data);
    getter.signal("KILL");
    getter.wait_exit(TIMEOUT);
    assert!(!swarm.downloaded("g", "k.bin").exists());
    let mut again = swarm.peer("g");
    let line = again.command("get k.bin", "downloaded k.bin").pop().unwrap();
    let resumed: u32 = line
        .split(';')
        .flat_map(|part| part.split(", "))
        .find_map(|p| p.strip_suffix(" already here from an earlier attempt"))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(resumed > 0, "{line}");
    assert!(chunks_from(&line, "h") + resumed <= 32 + 1, "chunks fetched twice: {line}");
    assert!(std::fs::read(swarm.downloaded("g", "k.bin")).unwrap() == data);
}

#[test]
fn a_holder_whose_file_changed_stops_serving_it_and_the_others_finish() {
    let swarm = Swarm::start("15");
    let data = bytes(3 << 20, "edited");
    let mut editor = swarm.slow_holder("editor", "e.bin", &data, "1G");
    let _honest = swarm.slow_holder("honest", "e.bin", &data, "1G");
    let mut edited = data.clone();
    edited[100] ^= 0xff;
    std::fs::write(swarm.path().join("editor-data/e.bin"), &edited).unwrap();
    let mut getter = swarm.peer("getter");
    let line = getter.command("get e.bin", "downloaded e.bin").pop().unwrap();
    assert!(std::fs::read(swarm.downloaded("getter", "e.bin")).unwrap() == data);
    assert_eq!(chunks_from(&line, "editor"), 0, "{line}");
    editor.expect_err("changed on disk since it was shared");
    // The tracker hears of it: the editor is no longer listed as a holder.
    let mut tracker = swarm.tracker;
    let files = tracker.poll("files", " file", TIMEOUT, |out| out.iter().any(|l| l.contains("e.bin") && !l.contains("editor")));
    assert!(files.iter().any(|l| l.contains("e.bin") && l.contains("honest")), "{files:?}");
}

#[test]
fn a_lying_holder_is_dropped_and_nothing_unverified_is_written() {
    lies_are_caught(Lie::FlipBits);
}

#[test]
fn a_holder_that_sends_more_than_it_announced_is_dropped() {
    lies_are_caught(Lie::Overlong);
}

/// The liar's every chunk is refused; the honest holder delivers them all, and the file is right.
fn lies_are_caught(how: Lie) {
    let swarm = Swarm::start("15");
    let data = bytes(4 << 20, "liar");
    let _liar = start_liar(&swarm, "l.bin", &data, how);
    // The honest holder is slowed so the liar's bad chunks surely come back before the end.
    let _honest = swarm.slow_holder("honest", "l.bin", &data, "4M");
    let mut getter = swarm.peer("getter");
    let line = getter.command("get l.bin", "downloaded l.bin").pop().unwrap();
    assert!(std::fs::read(swarm.downloaded("getter", "l.bin")).unwrap() == data);
    // stderr and stdout are read apart: the warning may come in after the summary line.
    let why = "stopped using peer liar for l.bin: chunk";
    if !getter.saw(why) {
        getter.expect_err(why);
    }
    let log = getter.command("logs request", " chunks");
    assert!(log.iter().skip(1).all(|l| l.split_whitespace().nth(4) != Some("liar")), "{log:?}");
    assert_eq!(chunks_from(&line, "honest"), 16, "{line}");
}

/// Writes `data` as `name` in the swarm's data folder and starts a liar holding it; the liar
/// runs as long as the returned endpoint and runtime live (dropped in that order).
fn start_liar(swarm: &Swarm, name: &str, data: &[u8], how: Lie) -> (quinn::Endpoint, tokio::runtime::Runtime) {
    swarm.write_data(name, data);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let tracker: SocketAddr = swarm.addr.parse().unwrap();
    let endpoint = rt.block_on(liar(swarm.path(), tracker, Arc::new(data.to_vec()), name, how)).unwrap();
    (endpoint, rt)
}

/// A holder that never answers, or trickles, costs time but not the download.
fn outlasts(how: Lie) {
    let swarm = Swarm::start("15");
    let data = bytes(2 << 20, "outlast");
    let _liar = start_liar(&swarm, "o.bin", &data, how);
    let mut honest = swarm.peer("honest");
    honest.command("share o.bin", "shared ");
    let mut getter = swarm.peer("getter");
    let line = getter.command("get o.bin", "downloaded o.bin").pop().unwrap();
    assert!(std::fs::read(swarm.downloaded("getter", "o.bin")).unwrap() == data);
    assert_eq!(chunks_from(&line, "honest"), 8, "{line}");
}

#[test]
fn a_holder_that_never_answers_costs_a_timeout_not_the_download() {
    outlasts(Lie::Silence);
}

#[test]
fn a_holder_that_trickles_is_outrun() {
    outlasts(Lie::Trickle);
}

#[test]
fn a_holder_that_claims_chunks_it_does_not_have_is_dropped() {
    outlasts(Lie::Disown);
}

#[test]
fn a_restarted_tracker_hears_from_its_peers_again_and_get_works() {
    let mut swarm = Swarm::start("15");
    let data = bytes(300_000, "tracker restart");
    swarm.write_data("t.bin", &data);
    let mut holder = swarm.peer("holder");
    let mut getter = swarm.peer("getter");
    holder.command("share t.bin", "shared ");
    swarm.tracker.signal("KILL");
    swarm.tracker.wait_exit(TIMEOUT);
    getter.expect("lost the tracker");
    getter.send("get t.bin");
    let err = getter.expect_err("error:");
    assert!(err.contains("tracker"), "{err}");
    // Same port, same certificate: the peers come back by themselves and re-register.
    let mut tracker = Proc::spawn("tracker again", swarm.path(), &["tracker", "--listen", &swarm.addr]);
    tracker.expect("tracker listening");
    holder.expect("connected to tracker");
    getter.expect("connected to tracker");
    getter.command("get t.bin", "downloaded t.bin");
    assert!(std::fs::read(swarm.downloaded("getter", "t.bin")).unwrap() == data);
}

#[test]
fn two_files_with_one_name_are_never_mixed() {
    let swarm = Swarm::start("15");
    let a = bytes(5000, "first");
    let b = bytes(7000, "second");
    let mut one = swarm.slow_holder("one", "same.txt", &a, "1G");
    let mut two = swarm.slow_holder("two", "same.txt", &b, "1G");
    let mut getter = swarm.peer("getter");
    getter.send("get same.txt");
    let err = getter.expect_err("error:");
    assert!(err.contains("matches 2 different files"), "{err}");
    assert!(err.contains(&b3sum(&a)[..12]) && err.contains(&b3sum(&b)[..12]), "{err}");
    getter.command(&format!("get {}", &b3sum(&b)[..8]), "downloaded same.txt");
    assert!(std::fs::read(swarm.downloaded("getter", "same.txt")).unwrap() == b);
    let _ = (one.is_running(), two.is_running());
}

#[cfg(target_os = "linux")]
#[test]
fn a_full_disk_is_a_clear_error_and_the_download_resumes_once_space_is_freed() {
    let swarm = Swarm::start("15");
    let data = bytes(6 << 20, "disk full");
    let _holder = swarm.slow_holder("h", "d.bin", &data, "1G");
    let small = swarm.path().join("small-disk");
    std::fs::create_dir_all(&small).unwrap();
    let Some(_mount) = Tmpfs::mount(&small, "2m") else {
        eprintln!("skipped: cannot mount a small tmpfs here (needs root)");
        return;
    };
    let dir = small.to_string_lossy().into_owned();
    let mut getter = swarm.peer_with("g", &["--download-dir", &dir]);
    getter.send("get d.bin");
    let err = getter.expect_err("error:");
    assert!(err.to_lowercase().contains("space"), "{err}");
    assert!(!small.join("d.bin").exists());
    // The peer keeps serving (and answering) while the disk is full.
    getter.command("status", "shared file");
    assert!(Tmpfs::resize(&small, "64m"));
    getter.command("get d.bin", "downloaded d.bin");
    assert!(std::fs::read(small.join("d.bin")).unwrap() == data);
}

/// How a hostile holder misbehaves once it has sent the true manifest.
#[derive(Clone, Copy)]
enum Lie {
    /// Every chunk arrives whole, with one bit flipped.
    FlipBits,
    /// Chunk requests are read and never answered.
    Silence,
    /// Chunks come a byte every half second.
    Trickle,
    /// It claimed the file, but says it has no chunk of it.
    Disown,
    /// Every chunk arrives true, then goes on past the length its header announced.
    Overlong,
}

/// A holder that registers with the tracker like any peer, sends the true manifest, and then
/// misbehaves as `how` says. Returns its endpoint (dropping it stops the liar).
async fn liar(dir: &Path, tracker: SocketAddr, data: Arc<Vec<u8>>, name: &str, how: Lie) -> anyhow::Result<quinn::Endpoint> {
    let id = Identity::load_or_create(&dir.join("liar-certs"), "peer-liar")?;
    let pinned = tls::pinned_fingerprint(&dir.join("certs/tracker.crt"))?;
    let endpoint = tls::endpoint(&id, tls::server_config(&id, protocol::PEER_ALPN)?, "127.0.0.1:0".parse()?)?;
    let conn = endpoint.connect_with(tls::client_config(&id, protocol::TRACKER_ALPN, pinned)?, tracker, tls::SERVER_NAME)?.await?;
    let (file_id, manifest) = Manifest::from_bytes(&data);
    let file = FileInfo { id: file_id, name: name.into(), size: data.len() as u64, folder: None };
    let register = TrackerRequest::Register { version: protocol::PROTOCOL_VERSION, peer_id: "liar".into(), files: vec![file] };
    let (mut send, mut recv) = conn.open_bi().await?;
    protocol::write_frame(&mut send, &register).await?;
    send.finish()?;
    let answer: TrackerResponse = protocol::read_frame(&mut recv, protocol::MAX_FRAME).await?;
    anyhow::ensure!(matches!(answer, TrackerResponse::Registered { .. }), "liar not registered: {answer:?}");
    let server = endpoint.clone();
    let manifest = Arc::new(manifest);
    tokio::spawn(async move {
        let _tracker = conn;
        while let Some(incoming) = server.accept().await {
            let (data, manifest) = (data.clone(), manifest.clone());
            tokio::spawn(async move {
                let Ok(conn) = incoming.await else { return };
                let _ = serve_lies(conn, data, manifest, how).await;
            });
        }
    });
    Ok(endpoint)
}

async fn serve_lies(conn: quinn::Connection, data: Arc<Vec<u8>>, manifest: Arc<Manifest>, how: Lie) -> anyhow::Result<()> {
    let mut held = Vec::new();
    loop {
        tokio::select! {
            bi = conn.accept_bi() => {
                let (mut send, mut recv) = bi?;
                let request: PeerRequest = protocol::read_frame(&mut recv, protocol::MAX_FRAME).await?;
                // It claims every chunk, and lies about their bytes.
                if let PeerRequest::Observe { .. } = request {
                    protocol::write_frame(&mut send, &protocol::Availability::All).await?;
                } else {
                    protocol::write_frame(&mut send, &ManifestReply::Manifest((*manifest).clone())).await?;
                }
                send.finish()?;
            }
            uni = conn.accept_uni() => {
                let mut recv = uni?;
                let PeerRequest::Chunk { id, index } = protocol::read_frame(&mut recv, protocol::MAX_FRAME).await? else { continue };
                let start = manifest.offset(index) as usize;
                let mut chunk = data[start..start + manifest.len_of(index) as usize].to_vec();
                let middle = chunk.len() / 2;
                chunk[middle] ^= 0x10;
                let header = ChunkHeader { id, index, result: Ok(chunk.len() as u32) };
                match how {
                    Lie::FlipBits => {
                        let mut out = conn.open_uni().await?;
                        protocol::write_frame(&mut out, &header).await?;
                        out.write_all(&chunk).await?;
                        out.finish()?;
                    }
                    Lie::Silence => held.push(recv),
                    Lie::Overlong => {
                        chunk[middle] ^= 0x10;
                        chunk.extend_from_slice(b"and then some");
                        let mut out = conn.open_uni().await?;
                        protocol::write_frame(&mut out, &header).await?;
                        out.write_all(&chunk).await?;
                        out.finish()?;
                    }
                    Lie::Disown => {
                        let mut out = conn.open_uni().await?;
                        let header = ChunkHeader { id, index, result: Err("no such chunk here".into()) };
                        protocol::write_frame(&mut out, &header).await?;
                        out.finish()?;
                    }
                    Lie::Trickle => {
                        let mut out = conn.open_uni().await?;
                        protocol::write_frame(&mut out, &header).await?;
                        tokio::spawn(async move {
                            let mut pace = tokio::time::interval(std::time::Duration::from_millis(500));
                            for byte in chunk.chunks(1) {
                                pace.tick().await;
                                if out.write_all(byte).await.is_err() {
                                    return;
                                }
                            }
                        });
                    }
                }
            }
        }
    }
}
