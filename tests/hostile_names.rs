//! Names from the network: paths, NUL, empty, 4 KiB, terminal escapes and bidi overrides are
//! refused by the tracker, and a peer told such a name by a (fake) tracker writes nothing
//! outside its download folder and prints nothing raw.

mod common;

use std::sync::Arc;

use common::hostile::{self, FakeTracker, HolderAnswer, Hostile};
use common::{Proc, Swarm, bytes};
use p2pq::protocol::{Digest, FileInfo, FileMatch, TrackerRequest, TrackerResponse};

/// Names nobody may share or get, each a different attack.
fn evil_names() -> Vec<String> {
    let outside = std::env::temp_dir().join(format!("p2pq-hostile-{}", std::process::id()));
    vec![
        "../../x".into(),
        "/etc/passwd".into(),
        outside.display().to_string(),
        "a/../../b".into(),
        "..\\x".into(),
        "..".into(),
        "nul\0byte".into(),
        String::new(),
        "n".repeat(4096),
        "\x1b[2J\x1b[31mred".into(),
        "\x1b]0;pwned\x07title".into(),
        "line\nbreak".into(),
        "report\u{202e}fdp.exe".into(),
    ]
}

fn no_raw_controls(text: &str) -> bool {
    !text.chars().any(|c| c.is_control() || ('\u{202a}'..='\u{202e}').contains(&c))
}

#[test]
fn the_tracker_refuses_names_that_are_paths_controls_or_too_long() {
    let mut swarm = Swarm::start("15");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let evil = evil_names();
    let _session = rt.block_on(async {
        let h = Hostile::new();
        let mut files: Vec<FileInfo> = evil
            .iter()
            .enumerate()
            .map(|(i, name)| FileInfo { id: Digest([i as u8 + 1; 32]), name: name.clone(), size: 10, folder: None })
            .collect();
        files.push(FileInfo { id: Digest([0xee; 32]), name: "fine.txt".into(), size: 10, folder: None });
        let (conn, answer) = h.register(&swarm, "namer", files).await.unwrap();
        assert!(matches!(answer, TrackerResponse::Registered { .. }), "{answer:?}");
        for (i, name) in evil.iter().enumerate() {
            let share = TrackerRequest::Share(FileInfo { id: Digest([0x80 + i as u8; 32]), name: name.clone(), size: 5, folder: None });
            // Refused by the name check, or (4 KiB) by the request size limit before it.
            let short = &name[..name.len().min(40)];
            let answer = hostile::request(&conn, &share).await.unwrap();
            assert!(
                matches!(&answer, TrackerResponse::Error(r) if r.contains("file name") || r.contains("limit")),
                "{short:?} shared: {answer:?}"
            );
            let lookup = hostile::request(&conn, &TrackerRequest::Lookup { query: name.clone() }).await.unwrap();
            assert!(
                matches!(&lookup, TrackerResponse::Error(r) if r.contains("bad lookup") || r.contains("limit")),
                "{short:?} looked up: {lookup:?}"
            );
        }
        let all = hostile::request(&conn, &TrackerRequest::Files).await.unwrap();
        let TrackerResponse::Matches(all) = all else { panic!("{all:?}") };
        let names: Vec<&str> = all.iter().map(|m| m.file.name.as_str()).collect();
        assert_eq!(names, ["fine.txt"], "only the usable name is known");
        (h, conn)
    });
    // The operator's screen: nothing raw, and the refusals are on record.
    let files = swarm.tracker.command("files", " file");
    assert!(files.last().unwrap().starts_with("1 file"), "{files:?}");
    let log = swarm.tracker.command("logs-all", " event");
    assert!(log.iter().any(|l| l.contains("refused") && l.contains(&format!("{} of {}", evil.len(), evil.len() + 1))), "{log:?}");
    assert!(swarm.tracker.seen.iter().all(|(_, l)| no_raw_controls(l)), "{}", swarm.tracker.transcript());
}

#[test]
fn a_peer_told_a_hostile_name_writes_nothing_outside_its_download_folder() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("data")).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _guard = rt.enter();
    let content = Arc::new(bytes(300_000, "hostile name"));
    let id = Digest::from(blake3::hash(&content));
    // A holder that really serves the content, so only the name stands between it and the disk.
    let (holder, _holder_ep, _holder_dir) = hostile::fake_holder(HolderAnswer::Serve(content.clone()));
    let (liar, _liar_ep, _liar_dir) = hostile::fake_holder(HolderAnswer::Refuse("\x1b]0;owned\x07\x1b[2Jgone".into()));
    let evil = evil_names();
    let table = evil.clone();
    let answer = Arc::new(move |query: &str| -> Vec<FileMatch> {
        if query == "escape-reason" {
            let file = FileInfo { id, name: "ok.bin".into(), size: content.len() as u64, folder: None };
            return vec![FileMatch { file, holders: vec![liar.clone()] }];
        }
        let n: usize = query.strip_prefix("evil-").and_then(|n| n.parse().ok()).unwrap_or(0);
        let file = FileInfo { id, name: table[n].clone(), size: content.len() as u64, folder: None };
        vec![FileMatch { file, holders: vec![holder.clone()] }]
    });
    let tracker = FakeTracker::start(&root.join("certs"), answer);
    let skip = [root.join("data/peer-victim"), root.join(".p2pq"), root.join("certs")];
    let files_before = common::paths_under(root, &skip);
    let addr = tracker.addr.to_string();
    let args = ["peer", "victim", "--tracker", &addr, "--listen", "127.0.0.1:0", "--heartbeat", "0.5"];
    let mut peer = Proc::spawn("victim", root, &args);
    peer.expect("connected to tracker");
    for n in 0..evil.len() {
        peer.send(&format!("get evil-{n}"));
        let err = peer.expect_err("error:");
        assert!(no_raw_controls(&err), "raw control characters reached the terminal: {err:?}");
    }
    // A holder's refusal carrying escape sequences is shown escaped.
    peer.send("get escape-reason");
    let err = peer.expect_err("error:");
    assert!(err.contains("\\u{1b}"), "{err:?}");
    peer.send("exit");
    peer.wait_exit(common::TIMEOUT);
    assert!(peer.seen.iter().all(|(_, l)| no_raw_controls(l)), "{}", peer.transcript());
    assert_eq!(common::paths_under(root, &skip), files_before, "files appeared outside the download folder");
    let outside = std::env::temp_dir().join(format!("p2pq-hostile-{}", std::process::id()));
    assert!(!outside.exists(), "{} was created", outside.display());
    // Inside the download folder: nothing but (at most) partial state.
    let inside = common::paths_under(&root.join("data/peer-victim"), &[root.join("data/peer-victim/.p2pq-partial")]);
    assert!(inside.iter().all(|p| p.ends_with(".p2pq-partial")), "{inside:?}");
}
