//! Impersonation: nobody registers, heartbeats or leaves as a live peer with another
//! certificate; a peer talks only to the tracker it pinned, and fetches only from holders whose
//! certificate the tracker reported.

mod common;

use std::sync::Arc;

use common::hostile::{self, FakeTracker, HolderAnswer, Hostile};
use common::{Proc, Swarm, bytes};
use p2pq::protocol::{Digest, FileInfo, FileMatch, PROTOCOL_VERSION, TrackerRequest, TrackerResponse};

fn listed(out: &[String], id: &str) -> bool {
    out.iter().any(|l| l.split_whitespace().next() == Some(id))
}

#[test]
fn nobody_registers_beats_or_leaves_for_a_live_peer() {
    let mut swarm = Swarm::start("600");
    let victim = swarm.peer("victim");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mallory = Hostile::new();
        // The victim's id with another certificate: refused, connection closed.
        let (conn, answer) = mallory.register(&swarm, "victim", vec![]).await.unwrap();
        assert!(matches!(&answer, TrackerResponse::Refused { retry: false, reason } if reason.contains("taken")), "{answer:?}");
        assert!(tokio::time::timeout(hostile::STEP, conn.closed()).await.is_ok());
        // Heartbeat or exit without registering first: refused, connection closed.
        for first in [
            TrackerRequest::Alive,
            TrackerRequest::Exit,
            TrackerRequest::Share(FileInfo { id: Digest([1; 32]), name: "x".into(), size: 1, folder: None }),
        ] {
            let addr = hostile::tracker_addr(&swarm);
            let conn = mallory.connect(addr, p2pq::protocol::TRACKER_ALPN, hostile::tracker_fp(swarm.path())).await.unwrap();
            let answer = hostile::request(&conn, &first).await.unwrap();
            assert!(
                matches!(&answer, TrackerResponse::Refused { retry: false, reason } if reason.contains("must be Register")),
                "{answer:?}"
            );
            assert!(tokio::time::timeout(hostile::STEP, conn.closed()).await.is_ok());
        }
        // Registered as itself, every request acts on itself only: its exit leaves the victim.
        let (conn, _) = mallory.register(&swarm, "mallory", vec![]).await.unwrap();
        let again = TrackerRequest::Register { version: PROTOCOL_VERSION, peer_id: "victim".into(), files: vec![] };
        let answer = hostile::request(&conn, &again).await.unwrap();
        assert!(matches!(&answer, TrackerResponse::Error(r) if r.contains("already registered")), "{answer:?}");
        assert_eq!(hostile::request(&conn, &TrackerRequest::Exit).await.unwrap(), TrackerResponse::Ok);
        let after = hostile::request(&conn, &TrackerRequest::Alive).await.unwrap();
        assert!(matches!(&after, TrackerResponse::Error(r) if r.contains("not registered")), "{after:?}");
    });
    let out = swarm.tracker.command("peers", "live peer");
    assert!(listed(&out, "victim") && !listed(&out, "mallory"), "{out:?}");
    let log = swarm.tracker.command("logs-all", " event");
    assert!(log.iter().any(|l| l.contains("refused") && l.contains("taken")), "{log:?}");
    assert!(!log.iter().any(|l| l.contains("exit") && l.contains("victim")), "{log:?}");
    drop(victim);
}

#[test]
fn a_fake_tracker_hears_no_registration_and_the_peer_says_why() {
    let swarm = Swarm::start("15");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _guard = rt.enter();
    // An impostor with its own certificate; the peer pins the real tracker's.
    let elsewhere = tempfile::tempdir().unwrap();
    let heard = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = heard.clone();
    let fake = FakeTracker::start(
        &elsewhere.path().join("certs"),
        Arc::new(move |_: &str| {
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Vec::new()
        }),
    );
    let addr = fake.addr.to_string();
    let args = ["peer", "1", "--tracker", &addr, "--listen", "127.0.0.1:0"];
    let mut peer = Proc::spawn("peer", swarm.path(), &args);
    let line = peer.expect("tracker unreachable");
    assert!(line.contains("not the pinned"), "{line}");
    peer.send("get anything");
    let err = peer.expect_err("error:");
    assert!(err.contains("unreachable"), "{err}");
    assert_eq!(heard.load(std::sync::atomic::Ordering::Relaxed), 0);
}

#[test]
fn a_holder_with_another_certificate_than_reported_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _guard = rt.enter();
    let content = Arc::new(bytes(100_000, "impostor holder"));
    let id = Digest::from(blake3::hash(&content));
    let (real, _ep, _d) = hostile::fake_holder(HolderAnswer::Serve(content.clone()));
    let (impostor, _ep2, _d2) = hostile::fake_holder(HolderAnswer::Serve(content.clone()));
    // The tracker reports the real holder's fingerprint at the impostor's address.
    let reported = p2pq::protocol::Holder { addr: impostor.addr, ..real };
    let size = content.len() as u64;
    let tracker = FakeTracker::start(
        &dir.path().join("certs"),
        Arc::new(move |_: &str| {
            vec![FileMatch { file: FileInfo { id, name: "i.bin".into(), size, folder: None }, holders: vec![reported.clone()] }]
        }),
    );
    let addr = tracker.addr.to_string();
    let args = ["peer", "2", "--tracker", &addr, "--listen", "127.0.0.1:0"];
    let mut peer = Proc::spawn("peer", dir.path(), &args);
    peer.expect("connected to tracker");
    peer.send("get i.bin");
    let err = peer.expect_err("error:");
    assert!(err.contains("not the pinned"), "{err}");
    assert!(!dir.path().join("data/peer-2/i.bin").exists());
}
