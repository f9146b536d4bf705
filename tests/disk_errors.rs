//! A disk error is one line that says what failed, on which path, and the OS error once.

mod common;

use common::{Proc, Stream, Swarm, TIMEOUT, bytes};

/// The first `error:` line on stderr.
fn first_error(proc: &mut Proc) -> String {
    proc.expect_on(Stream::Err, |l| l.starts_with("error:"), TIMEOUT)
}

fn assert_os_error_once(line: &str, path: &str) {
    assert_eq!(line.matches("os error").count(), 1, "the OS error should show exactly once: {line}");
    assert!(line.contains(path), "the path should be named: {line}");
}

#[test]
fn seed_from_a_missing_data_folder_names_it_and_the_os_error_once() {
    let swarm = Swarm::start("15");
    let args = ["seed", "notes.txt", "--data-dir", "no-such-folder", "--tracker", &swarm.addr];
    let mut seed = Proc::spawn("seed", swarm.path(), &args);
    let line = first_error(&mut seed);
    assert_os_error_once(&line, "no-such-folder");
    assert_eq!(seed.wait_exit(TIMEOUT).code(), Some(1));
}

#[test]
fn get_into_a_bad_download_folder_names_it_and_the_os_error_once() {
    let swarm = Swarm::start("15");
    swarm.write_data("a.bin", &bytes(300_000, "disk errors"));
    let mut seed = Proc::spawn("seed", swarm.path(), &["seed", "a.bin", "--data-dir", "data", "--tracker", &swarm.addr]);
    seed.expect("shared a.bin");
    // A file where the download folder should be.
    std::fs::write(swarm.path().join("a-file"), b"x").unwrap();
    // A file where the download's hidden folder of unfinished downloads should be.
    std::fs::create_dir(swarm.path().join("blocked")).unwrap();
    std::fs::write(swarm.path().join("blocked/.p2pq-partial"), b"x").unwrap();
    for (dir, named) in [("a-file", "a-file/a.bin"), ("blocked", "blocked/.p2pq-partial")] {
        let mut get = Proc::spawn("get", swarm.path(), &["get", "a.bin", "--download-dir", dir, "--tracker", &swarm.addr]);
        let line = first_error(&mut get);
        assert_os_error_once(&line, named);
        assert_eq!(get.wait_exit(TIMEOUT).code(), Some(1), "{}", get.transcript());
    }
    seed.signal("TERM");
    assert!(seed.wait_exit(TIMEOUT).success());
}
