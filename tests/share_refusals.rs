//! `share` takes only regular files and folders inside the data folder; every refusal is one line that
//! says what to do, and paths that wander but end inside (`adir/../x`, a link to a file
//! inside) are taken under the name typed.

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
        ("../nowhere.txt", "outside the data folder"),
        ("missing.txt", "no file \"missing.txt\""),
        ("\"\"", "a file name is missing"),
    ];
    for (path, why) in cases {
        peer.send(&format!("share {path}"));
        let err = peer.expect_err("error:");
        assert!(err.contains(why), "share {path}: {err}");
    }
    // Nothing but the good file reaches the tracker, and the peer still works.
    peer.command("share sub/../fine.txt", "shared fine.txt");
    let mut tracker = swarm.tracker;
    let files = tracker.command("files", " file");
    assert_eq!(files.last().unwrap(), "1 file", "{files:?}");
    assert!(files.iter().all(|l| !l.contains("secret") && !l.contains("passwd")));
}

#[cfg(unix)]
#[test]
fn a_link_to_a_file_inside_is_shared_under_the_name_typed() {
    let swarm = Swarm::start("15");
    std::fs::create_dir_all(swarm.path().join("data/store")).unwrap();
    std::fs::write(swarm.path().join("data/store/blob-17"), b"the real bytes").unwrap();
    std::os::unix::fs::symlink("store/blob-17", swarm.path().join("data/report.pdf")).unwrap();
    let mut peer = swarm.peer("1");
    let out = peer.command("share report.pdf", "shared ");
    assert!(out.last().unwrap().starts_with("shared report.pdf (14 B"), "{out:?}");
    let mut tracker = swarm.tracker;
    let files = tracker.command("files", " file");
    assert!(files.iter().any(|l| l.contains("report.pdf")) && !files.iter().any(|l| l.contains("blob-17")), "{files:?}");
}
