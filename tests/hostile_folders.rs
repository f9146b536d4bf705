//! Hostile folder listings from a (fake) tracker and holder: each is refused with one clear
//! line before anything is created, nothing is written outside the download folder, and no
//! debris stays inside it.

mod common;

use std::sync::Arc;

use common::Proc;
use common::hostile::{self, FakeTracker, HolderAnswer};
use p2pq::protocol::{Digest, FileInfo, FileMatch, FolderSize};

/// A listing of `lines` (each a whole line but its newline).
fn listing(lines: &[String]) -> Vec<u8> {
    let mut text = String::from("p2pq folder v1\n");
    for line in lines {
        text.push_str(line);
        text.push('\n');
    }
    text.into_bytes()
}

/// Hostile listings, each breaking one rule, with words its error must hold.
fn hostile_listings() -> Vec<(Vec<u8>, &'static str)> {
    let id = Digest::from(blake3::hash(b"payload")).to_hex();
    let f = |path: &str| format!("f 7 {id} {path}");
    let outside = std::env::temp_dir().join(format!("p2pq-hostile-folder-{}", std::process::id()));
    vec![
        (listing(&[f("../escape.txt")]), "not a file"),
        (listing(&[f("a/../../escape.txt")]), "not a file"),
        (listing(&[f(&outside.display().to_string())]), "absolute"),
        (listing(&[f("..\\escape.txt")]), "separator"),
        (listing(&[f("CON")]), "device name"),
        (listing(&[f("a\x1b[2Jb")]), "control character"),
        (listing(&[f("nul\0byte")]), "control character"),
        (listing(&[f("a"), f("a/b")]), "as a file and as a folder"),
        (listing(&[f("b"), f("a")]), "not in order"),
        (listing(&[f(&"n".repeat(256))]), "255-byte limit"),
        (b"not a listing at all\n".to_vec(), "not a p2pq folder listing"),
    ]
}

#[test]
fn a_peer_given_a_hostile_listing_refuses_it_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("data")).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _guard = rt.enter();
    let cases = hostile_listings();
    let mut matches = Vec::new();
    let mut holders = Vec::new();
    for (bytes, _) in &cases {
        let (holder, endpoint, home) = hostile::fake_holder(HolderAnswer::Serve(Arc::new(bytes.clone())));
        let folder = Some(FolderSize { files: 1, bytes: 7 });
        let file = FileInfo { id: Digest::from(blake3::hash(bytes)), name: "photos".into(), size: bytes.len() as u64, folder };
        matches.push(FileMatch { file, holders: vec![holder] });
        holders.push((endpoint, home));
    }
    let answer = Arc::new(move |query: &str| {
        let n: usize = query.strip_prefix("evil-").and_then(|n| n.parse().ok()).unwrap_or(usize::MAX);
        matches.get(n).cloned().into_iter().collect()
    });
    let tracker = FakeTracker::start(&root.join("certs"), answer);
    let downloads = root.join("data/peer-victim");
    let skip = [downloads.clone(), root.join(".p2pq"), root.join("certs")];
    let before = common::paths_under(root, &skip);
    let addr = tracker.addr.to_string();
    let mut peer = Proc::spawn("victim", root, &["peer", "victim", "--tracker", &addr, "--listen", "127.0.0.1:0", "--heartbeat", "0.5"]);
    peer.expect("connected to tracker");
    for (n, (_, words)) in cases.iter().enumerate() {
        peer.send(&format!("get evil-{n}"));
        let err = peer.expect_err("error:");
        assert!(err.contains(words), "listing {n}: {err:?} should say {words:?}");
        assert!(!err.contains('\x1b') && !err.contains('\0'), "listing {n}: raw control characters shown: {err:?}");
        let left = common::paths_under(&downloads, &[]);
        assert!(left.iter().all(|p| p.ends_with(".p2pq-partial")), "listing {n} left {left:?}");
    }
    peer.send("exit");
    peer.wait_exit(common::TIMEOUT);
    assert_eq!(common::paths_under(root, &skip), before, "files appeared outside the download folder");
    let outside = std::env::temp_dir().join(format!("p2pq-hostile-folder-{}", std::process::id()));
    assert!(!outside.exists(), "{} was created", outside.display());
}
