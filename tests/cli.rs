//! The command line: bad arguments exit non-zero with clap's message; errors are one line.

mod common;

use std::process::Command;

fn p2pq(args: &[&str], dir: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_p2pq")).args(common::offline(args)).current_dir(dir).output().expect("run p2pq")
}

#[test]
fn bad_arguments_exit_non_zero_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["peer", "bad id!"][..],
        &["peer", "1", "--heartbeat", "soon"],
        &["peer", "1", "--heartbeat", "-1"],
        &["tracker", "--listen", "nowhere"],
        &["peer", "1", "--no-tracker", "--no-dht"],
        &["get", "x", "--no-dht", "--dht-bootstrap", "127.0.0.1:9"],
        &["teleport"],
    ] {
        let out = p2pq(args, dir.path());
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("error"), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn a_peer_without_the_tracker_certificate_says_how_to_get_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = p2pq(&["peer", "1", "--tracker", "127.0.0.1:9"], dir.path());
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.starts_with("error: cannot read the tracker certificate"), "{err}");
}

#[test]
fn dht_and_tracker_flags_that_cannot_work_are_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&[&str], &str); 2] = [
        (
            &["peer", "1", "--tracker", "127.0.0.1:9", "--tracker", "127.0.0.1:10"],
            "error: --tracker 127.0.0.1:10: a further tracker needs its certificate pinned",
        ),
        (
            &["peer", "1", "--tracker", "127.0.0.1:9", "--tracker", "127.0.0.1:10@nothere.crt"],
            "error: --tracker 127.0.0.1:10@nothere.crt: cannot read the certificate nothere.crt",
        ),
    ];
    for (args, want) in cases {
        let out = p2pq(args, dir.path());
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with(want), "{args:?}: {err}");
    }
}

#[test]
fn a_peer_whose_id_is_taken_by_another_certificate_is_refused() {
    let swarm = common::Swarm::start("15");
    let _first = swarm.peer("dup");
    // Same id, other certificate folder (so another certificate), same pinned tracker.
    let other = swarm.path().join("other-certs");
    std::fs::create_dir_all(&other).unwrap();
    let tracker_cert = swarm.path().join("certs/tracker.crt");
    let args = [
        "peer",
        "dup",
        "--tracker",
        &swarm.addr,
        "--certs",
        other.to_str().unwrap(),
        "--tracker-cert",
        tracker_cert.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        // Its own state folder: the same one would be refused before the tracker is asked.
        "--state-dir",
        "other-state",
    ];
    let mut second = common::Proc::spawn("second dup", swarm.path(), &args);
    let err = second.expect_err("error:");
    assert!(err.contains("taken"), "{err}");
    assert!(!second.wait_exit(common::TIMEOUT).success());
}

#[test]
fn a_tracker_with_another_certificate_is_refused() {
    let swarm = common::Swarm::start("15");
    // A peer pinning some other certificate must not talk to this tracker.
    let elsewhere = tempfile::tempdir().unwrap();
    let mut impostor = common::Proc::spawn("other tracker", elsewhere.path(), &["tracker", "--listen", "127.0.0.1:0"]);
    impostor.expect("tracker listening");
    let wrong = elsewhere.path().join("certs/tracker.crt");
    let args = ["peer", "1", "--tracker", &swarm.addr, "--tracker-cert", wrong.to_str().unwrap(), "--listen", "127.0.0.1:0"];
    let mut peer = common::Proc::spawn("peer", swarm.path(), &args);
    let line = peer.expect("tracker unreachable");
    assert!(line.contains("not the pinned"), "{line}");
}

#[test]
fn a_second_peer_with_the_same_id_in_the_same_folder_refuses_to_start() {
    let swarm = common::Swarm::start("15");
    let mut first = swarm.peer("same");
    let args = ["peer", "same", "--tracker", &swarm.addr, "--listen", "127.0.0.1:0"];
    let mut second = common::Proc::spawn("second same", swarm.path(), &args);
    let err = second.expect_err("error:");
    assert_eq!(err, format!("error: peer same is already running here (pid {}); its state folder is .p2pq/peer-same", first.pid()));
    assert!(!second.wait_exit(common::TIMEOUT).success());
    // The first goes on serving as if nothing happened.
    assert!(first.is_running());
    first.command("status", "tracker");
    assert!(!first.saw("lost the tracker"), "{}", first.transcript());
}

#[test]
fn a_damaged_or_mismatched_identity_names_its_files_and_how_to_recover() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    // A first start makes peer a's and peer b's certificates (then stops: no tracker certificate).
    for id in ["a", "b"] {
        let out = p2pq(&["peer", id, "--tracker", "127.0.0.1:9"], dir.path());
        assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read the tracker certificate"));
    }
    let one_line = |args: &[&str]| {
        let out = p2pq(args, dir.path());
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
        assert_eq!(err.lines().count(), 1, "{err}");
        err
    };
    // A key that belongs to another certificate.
    std::fs::copy(certs.join("peer-b.key"), certs.join("peer-a.key")).unwrap();
    let err = one_line(&["peer", "a", "--tracker", "127.0.0.1:9"]);
    assert!(err.starts_with("error: certs/peer-a.key does not belong to certs/peer-a.crt"), "{err}");
    assert!(err.contains("move certs/peer-a.crt and certs/peer-a.key away and start again"), "{err}");
    // A damaged certificate.
    std::fs::write(certs.join("peer-b.crt"), b"-----BEGIN CERTIFICATE-----\nnot base64\n").unwrap();
    let err = one_line(&["peer", "b", "--tracker", "127.0.0.1:9"]);
    assert!(err.starts_with("error: certs/peer-b.crt is damaged"), "{err}");
    // A key without its certificate is not replaced by a new pair.
    std::fs::remove_file(certs.join("peer-a.crt")).unwrap();
    let key = std::fs::read(certs.join("peer-a.key")).unwrap();
    let err = one_line(&["peer", "a", "--tracker", "127.0.0.1:9"]);
    assert!(err.starts_with("error: found certs/peer-a.key but not certs/peer-a.crt: restore it, or move"), "{err}");
    assert_eq!(std::fs::read(certs.join("peer-a.key")).unwrap(), key, "the key was kept");
}
