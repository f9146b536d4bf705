//! `p2pq demo` on a fresh machine: it stops at once on Ctrl-C or SIGTERM and removes what it
//! wrote, refuses a size it cannot hold before writing anything, and never wraps a huge size.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

/// How long the demo may take to leave after a signal.
const STOP_WITHIN: Duration = Duration::from_secs(5);
/// How long any other expected event may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// A `p2pq demo` whose temp folder is `tmp`, with its output lines (stdout and stderr).
struct Demo {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Demo {
    fn start(tmp: &Path, size_mib: &str) -> Demo {
        let mut child = Command::new(env!("CARGO_BIN_EXE_p2pq"))
            .args(["demo", "--size-mib", size_mib])
            .env("TMPDIR", tmp)
            .env("NO_COLOR", "1")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start p2pq demo");
        let (tx, lines) = mpsc::channel();
        let pipes: [Box<dyn std::io::Read + Send>; 2] =
            [Box::new(child.stdout.take().expect("stdout")), Box::new(child.stderr.take().expect("stderr"))];
        for pipe in pipes {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        Demo { child, lines, seen: Vec::new() }
    }

    fn expect(&mut self, text: &str) {
        let deadline = Instant::now() + TIMEOUT;
        while !self.seen.iter().any(|l| l.contains(text)) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(_) => panic!("no line with {text:?}; saw:\n{}", self.seen.join("\n")),
            }
        }
    }

    /// Waits (polling, bounded) for the demo to exit; fails after `within`.
    fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                // The pipes close with the process: collect what it printed last.
                let tail = Instant::now() + Duration::from_secs(2);
                while let Ok(line) = self.lines.recv_timeout(tail.saturating_duration_since(Instant::now())) {
                    self.seen.push(line);
                }
                return status;
            }
            assert!(Instant::now() < deadline, "the demo did not exit within {within:?}; saw:\n{}", self.seen.join("\n"));
            std::thread::sleep(Duration::from_millis(20)); // poll: a child's exit has no other signal here
        }
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill").arg(format!("-{name}")).arg(self.child.id().to_string()).status().expect("kill");
        assert!(status.success());
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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
        let mut demo = Demo::start(tmp.path(), "256");
        demo.expect("tracker on");
        demo.signal(signal);
        let status = demo.wait_exit(STOP_WITHIN);
        assert_eq!(status.code(), Some(code), "after SIG{signal}; saw:\n{}", demo.seen.join("\n"));
        assert!(demo.seen.iter().any(|l| l.contains(says) && l.contains("removed the demo folder")), "{}", demo.seen.join("\n"));
        assert!(leftovers(tmp.path()).is_empty(), "left behind after SIG{signal}: {:?}", leftovers(tmp.path()));
    }
}

#[test]
fn a_size_whose_bytes_overflow_is_refused_in_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    // 2^44 MiB is 2^64 bytes: shifted into bytes it wraps to an empty file.
    let mut demo = Demo::start(tmp.path(), "17592186044416");
    assert_eq!(demo.wait_exit(TIMEOUT).code(), Some(1));
    assert_eq!(demo.seen, ["error: --size-mib 17592186044416 is too large: the demo's file can be at most 1048576 MiB (1 TiB)"]);
    assert!(leftovers(tmp.path()).is_empty());
}

#[cfg(target_os = "linux")]
#[test]
fn a_demo_too_big_for_the_disk_says_so_before_writing_anything() {
    let tmp = tempfile::tempdir().unwrap();
    let small = tmp.path().join("small");
    std::fs::create_dir(&small).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
        .arg(&small)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("skipped: cannot mount a small tmpfs here (needs root)");
        return;
    }
    let mut demo = Demo::start(&small, "3");
    let status = demo.wait_exit(TIMEOUT);
    let left = leftovers(&small);
    let _ = Command::new("umount").arg("-l").arg(&small).status();
    assert_eq!(status.code(), Some(1), "{}", demo.seen.join("\n"));
    let want =
        format!("error: not enough free space in {} for the demo's file and bob's copy: needs 6.0 MiB, 4.0 MiB free", small.display());
    assert_eq!(demo.seen.len(), 1, "{}", demo.seen.join("\n"));
    assert!(demo.seen[0].starts_with(&want), "{}", demo.seen[0]);
    assert!(left.is_empty(), "written before the check: {left:?}");
}
