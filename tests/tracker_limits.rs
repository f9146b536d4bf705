//! A tracker at its limits: a newcomer to a full tracker hears why, once, and gets in as soon
//! as someone leaves; a listing longer than one reply is complete across pages.

mod common;

use common::hostile::{self, Hostile};
use common::{Proc, Swarm, TIMEOUT};
use p2pq::protocol::{Digest, FileInfo, PageAfter, TrackerRequest, TrackerResponse};

/// Refusals in a `logs-all --json` answer.
fn refusals(json: &[String]) -> usize {
    let records: serde_json::Value = serde_json::from_str(json.last().unwrap()).unwrap();
    records.as_array().unwrap().iter().filter(|r| r["kind"] == "refused").count()
}

#[test]
fn a_newcomer_to_a_full_tracker_is_told_why_once_and_gets_in_when_someone_leaves() {
    let mut swarm = Swarm::start_with(&["--max-peers", "2", "--busy-retry", "0.3"]);
    let mut one = swarm.peer("1");
    let _two = swarm.peer("2");
    let args = ["peer", "3", "--tracker", &swarm.addr, "--heartbeat", "0.2", "--listen", "127.0.0.1:0"];
    let mut three = Proc::spawn("peer 3", swarm.path(), &args);
    let told = three.expect_any("turned us away");
    assert!(told.contains("tracker full (2 peers); retry later") && told.contains("trying again every"), "{told}");
    // It keeps trying (the tracker logs each refusal), and says so only the once.
    swarm.tracker.poll("logs-all --json --peer 3", "[", TIMEOUT, |json| refusals(json) >= 3);
    assert!(!three.saw("connected to tracker"), "{}", three.transcript());
    one.send("exit");
    three.expect_any("connected to tracker");
    let told = three.said().iter().filter(|l| l.contains("turned us away")).count();
    assert_eq!(told, 1, "{}", three.transcript());
    let peers = swarm.tracker.poll("peers", " peer", TIMEOUT, |out| out.iter().any(|l| l.starts_with("3 ")));
    assert!(!peers.iter().any(|l| l.starts_with("1 ")), "{peers:?}");
}

#[test]
fn a_long_listing_is_complete_across_pages_and_files_still_answers_one_frame() {
    let mut swarm = Swarm::start("15");
    let files: Vec<FileInfo> = (0..2500u32)
        .map(|n| {
            let mut id = [7u8; 32];
            id[..4].copy_from_slice(&n.to_be_bytes());
            FileInfo { id: Digest(id), name: format!("file-{n:05}.bin"), size: 1, folder: None }
        })
        .collect();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _kept = rt.block_on(async {
        let h = Hostile::new();
        let (conn, answer) = h.register(&swarm, "lister", files.clone()).await.unwrap();
        assert!(matches!(answer, TrackerResponse::Registered { .. }), "{answer:?}");
        let mut listed: Vec<String> = Vec::new();
        let mut after = None;
        for _ in 0..10 {
            let request = TrackerRequest::FilesPage { after: after.clone(), limit: 1000 };
            let TrackerResponse::FilesPage { files, more } = hostile::request(&conn, &request).await.unwrap() else { panic!() };
            assert!(!files.is_empty() && files.len() <= 1000, "{} files in a page", files.len());
            after = files.last().map(|m| PageAfter { name: m.file.name.clone(), id: m.file.id });
            listed.extend(files.into_iter().map(|m| m.file.name));
            if !more {
                break;
            }
        }
        let want: Vec<String> = files.iter().map(|f| f.name.clone()).collect();
        assert_eq!(listed, want, "every file once, in name order");
        let TrackerResponse::Matches(first) = hostile::request(&conn, &TrackerRequest::Files).await.unwrap() else { panic!() };
        assert_eq!(first.first().map(|m| m.file.name.as_str()), Some("file-00000.bin"));
        assert_eq!(first.len(), 2500, "Files still answers all that fits one frame");
        (h, conn)
    });
    // The operator's `files` reads every page too.
    let table = swarm.tracker.command("files", " file");
    assert!(table.last().unwrap().starts_with("2500 files"), "{:?}", table.last());
}
