//! `share` takes only regular files inside the data folder; every refusal is one line.

mod common;

use common::Swarm;

#[test]
fn paths_leading_outside_the_data_folder_are_refused() {
    let swarm = Swarm::start("15");
    std::fs::write(swarm.path().join("secret.txt"), b"do not share").unwrap();
    std::fs::create_dir_all(swarm.path().join("data/sub")).unwrap();
    swarm.write_data("fine.txt", b"fine");
    #[cfg(unix)]
    std::os::unix::fs::symlink(swarm.path().join("secret.txt"), swarm.path().join("data/link.txt")).unwrap();
    let mut peer = swarm.peer("1");
    let cases = [
        ("../secret.txt", "outside the data folder"),
        ("/etc/passwd", "outside the data folder"),
        ("sub/../../secret.txt", "outside the data folder"),
        ("link.txt", "outside the data folder"),
        ("missing.txt", "no file \"missing.txt\""),
        ("sub", "not a regular file"),
    ];
    for (path, why) in cases {
        peer.send(&format!("share {path}"));
        let err = peer.expect_err("error:");
        assert!(err.contains(why), "share {path}: {err}");
    }
    // Nothing but the good file reaches the tracker, and the peer still works.
    peer.command("share fine.txt", "shared fine.txt");
    let mut tracker = swarm.tracker;
    let files = tracker.command("files", " file");
    assert_eq!(files.last().unwrap(), "1 file", "{files:?}");
    assert!(files.iter().all(|l| !l.contains("secret") && !l.contains("passwd")));
}
