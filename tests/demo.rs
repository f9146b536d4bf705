//! `p2pq demo` on a fresh machine: it stops at once on Ctrl-C or SIGTERM and removes what it
//! wrote, refuses a size it cannot hold before writing anything, and never wraps a huge size.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Proc, TIMEOUT};

/// How long the demo may take to leave after a signal.
const STOP_WITHIN: Duration = Duration::from_secs(5);

/// Starts `p2pq demo --size-mib SIZE` with `tmp` as its temp folder.
fn demo(tmp: &Path, size_mib: &str) -> Proc {
    Proc::spawn_with_env("demo", tmp, &["demo", "--size-mib", size_mib], &[("TMPDIR", tmp)])
}

/// What is left in the demo's temp folder.
fn leftovers(tmp: &Path) -> Vec<String> {
    std::fs::read_dir(tmp).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect()
}

#[cfg(unix)]
#[test]
fn sigterm_and_ctrl_c_stop_the_demo_at_once_and_remove_its_files() {
    for (signal, code, says) in [("TERM", 143, "stopped by SIGTERM"), ("INT", 130, "interrupted")] {
        let tmp = tempfile::tempdir().unwrap();
        // Big enough that the demo is still at work when the signal comes; it stops long
        // before writing much of it.
        let mut demo = demo(tmp.path(), "256");
        demo.expect_any("tracker on");
        demo.signal(signal);
        let status = demo.wait_exit(STOP_WITHIN);
        assert_eq!(status.code(), Some(code), "after SIG{signal}; saw:\n{}", demo.transcript());
        assert!(demo.said().iter().any(|l| l.contains(says) && l.contains("removed the demo folder")), "{}", demo.transcript());
        assert!(leftovers(tmp.path()).is_empty(), "left behind after SIG{signal}: {:?}", leftovers(tmp.path()));
    }
}

#[test]
fn a_size_whose_bytes_overflow_is_refused_in_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    // 2^44 MiB is 2^64 bytes: shifted into bytes it wraps to an empty file.
    let mut demo = demo(tmp.path(), "17592186044416");
    assert_eq!(demo.wait_exit(TIMEOUT).code(), Some(1));
    assert_eq!(demo.said(), ["error: --size-mib 17592186044416 is too large: the demo's file can be at most 1048576 MiB (1 TiB)"]);
    assert!(leftovers(tmp.path()).is_empty());
}

#[cfg(target_os = "linux")]
#[test]
fn a_demo_too_big_for_the_disk_says_so_before_writing_anything() {
    let tmp = tempfile::tempdir().unwrap();
    let small = tmp.path().join("small");
    let Some(mount) = common::Tmpfs::mount(&small, "4m") else {
        eprintln!("skipped: cannot mount a small tmpfs here (needs root)");
        return;
    };
    let mut demo = demo(&small, "3");
    let status = demo.wait_exit(TIMEOUT);
    let left = leftovers(&small);
    drop(mount);
    assert_eq!(status.code(), Some(1), "{}", demo.transcript());
    let want =
        format!("error: not enough free space in {} for the demo's file and bob's copy: needs 6.0 MiB, 4.0 MiB free", small.display());
    let said = demo.said();
    assert_eq!(said.len(), 1, "{}", demo.transcript());
    assert!(said[0].starts_with(&want), "{}", said[0]);
    assert!(left.is_empty(), "written before the check: {left:?}");
}
