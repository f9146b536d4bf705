//! Test harness: real `p2pq` processes on loopback, in a temp folder, driven through their
//! prompts. Every wait is on a line of output with a timeout; every process is killed on drop.
#![allow(dead_code)]

pub mod hostile;
pub mod inproc;
pub mod nat;
pub mod netns;
pub mod upnp;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// How long any single expected event may take before the test fails.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// Between two looks at a state that announces its change with no output line.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// `args` of a `p2pq` command, with `--no-dht` added to a peer, get or seed that names no DHT
/// of its own: a test never reaches the public DHT (whose node runs by default).
pub fn offline<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let mut out = args.to_vec();
    let starts_peer = matches!(args.iter().find(|a| !a.starts_with('-')), Some(&("peer" | "get" | "seed")));
    if starts_peer && !args.iter().any(|a| a.starts_with("--dht") || *a == "--no-dht" || *a == "--help") {
        out.push("--no-dht");
    }
    out
}

/// Which stream a line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Out,
    Err,
}

/// A running `p2pq` process.
pub struct Proc {
    pub name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<(Stream, String)>,
    /// Every line read so far, for failure messages.
    pub seen: Vec<(Stream, String)>,
}

impl Proc {
    /// Starts `p2pq ARGS` in `dir`.
    pub fn spawn(name: &str, dir: &Path, args: &[&str]) -> Proc {
        Proc::spawn_with_env(name, dir, args, &[])
    }

    /// Starts `p2pq ARGS` in `dir` with these environment variables set too.
    pub fn spawn_with_env(name: &str, dir: &Path, args: &[&str], envs: &[(&str, &Path)]) -> Proc {
        let mut command = Command::new(env!("CARGO_BIN_EXE_p2pq"));
        command.args(offline(args)).current_dir(dir).envs(envs.iter().copied()).env("NO_COLOR", "1").env_remove("RUST_LOG");
        Proc::spawn_command(name, command)
    }

    /// Starts `command` (`p2pq` inside a wrapper such as `ip netns exec`) with its standard
    /// streams piped to the test.
    pub fn spawn_command(name: &str, mut command: Command) -> Proc {
        let mut child = command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("start p2pq");
        let (tx, lines) = mpsc::channel();
        let out = child.stdout.take().expect("stdout");
        let err = child.stderr.take().expect("stderr");
        for (stream, pipe) in [(Stream::Out, Box::new(out) as Box<dyn std::io::Read + Send>), (Stream::Err, Box::new(err))] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    if tx.send((stream, line)).is_err() {
                        break;
                    }
                }
            });
        }
        let stdin = child.stdin.take();
        Proc { name: name.to_string(), child, stdin, lines, seen: Vec::new() }
    }

    /// Types a line at the prompt.
    pub fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}").expect("write to p2pq");
        stdin.flush().expect("flush");
    }

    /// Closes stdin (end of input).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Waits for a line on `stream` that satisfies `want`; returns it.
    pub fn expect_on(&mut self, stream: Stream, want: impl Fn(&str) -> bool, timeout: Duration) -> String {
        self.wait_line(stream, want, timeout).unwrap_or_else(|why| panic!("{}: {why}; saw:\n{}", self.name, self.transcript()))
    }

    /// Like [`Proc::expect_on`], but says why no such line came (timed out, or the process
    /// exited) instead of panicking.
    pub fn wait_line(&mut self, stream: Stream, want: impl Fn(&str) -> bool, timeout: Duration) -> Result<String, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok((s, line)) => {
                    self.seen.push((s, line.clone()));
                    if s == stream && want(&line) {
                        return Ok(line);
                    }
                }
                Err(RecvTimeoutError::Timeout) => return Err("timed out waiting".into()),
                Err(RecvTimeoutError::Disconnected) => return Err("exited while waiting".into()),
            }
        }
    }

    /// Waits for a stdout line containing `text`.
    pub fn expect(&mut self, text: &str) -> String {
        self.expect_on(Stream::Out, |l| l.contains(text), TIMEOUT)
    }

    /// Waits for a stderr line containing `text`.
    pub fn expect_err(&mut self, text: &str) -> String {
        self.expect_on(Stream::Err, |l| l.contains(text), TIMEOUT)
    }

    /// Sends a command and collects stdout lines up to and including the one containing `end`.
    pub fn command(&mut self, line: &str, end: &str) -> Vec<String> {
        self.send(line);
        let mut out = Vec::new();
        loop {
            let l = self.expect_on(Stream::Out, |_| true, TIMEOUT);
            let done = l.contains(end);
            out.push(l);
            if done {
                return out;
            }
        }
    }

    /// Repeats `command` until its output satisfies `ok`, for at most `timeout`.
    pub fn poll(&mut self, line: &str, end: &str, timeout: Duration, ok: impl Fn(&[String]) -> bool) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let out = self.command(line, end);
            if ok(&out) {
                return out;
            }
            assert!(Instant::now() < deadline, "{}: `{line}` never satisfied; last:\n{}", self.name, out.join("\n"));
            // Polling a state that changes on its own (expiry); the interval bounds the load.
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Reads `--json` events from stdout until one satisfies `stop` (or an `error` or `done`
    /// event comes); returns them all, each with when it arrived.
    pub fn json_until(&mut self, stop: impl Fn(&serde_json::Value) -> bool) -> Vec<(Instant, serde_json::Value)> {
        let mut seen = Vec::new();
        loop {
            let line = self.expect_on(Stream::Out, |_| true, TIMEOUT);
            let event: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
            let end = stop(&event) || event["event"] == "error" || event["event"] == "done";
            seen.push((Instant::now(), event));
            if end {
                return seen;
            }
        }
    }

    /// Waits for the process to exit by itself: its output pipes close when it does, which
    /// ends the readers' channel; every line it printed is in `seen` afterwards.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            match self.lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) => self.seen.push(line),
                Err(RecvTimeoutError::Disconnected) => return self.child.wait().expect("wait"),
                Err(RecvTimeoutError::Timeout) => panic!("{}: did not exit; saw:\n{}", self.name, self.transcript()),
            }
        }
    }

    /// Waits for a line containing `text` on stdout or stderr (one already read counts).
    pub fn expect_any(&mut self, text: &str) -> String {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some((_, line)) = self.seen.iter().find(|(_, l)| l.contains(text)) {
                return line.clone();
            }
            match self.lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) => self.seen.push(line),
                Err(_) => panic!("{}: no line with {text:?}; saw:\n{}", self.name, self.transcript()),
            }
        }
    }

    /// Every line printed so far, stdout and stderr, in the order read.
    pub fn said(&self) -> Vec<String> {
        self.seen.iter().map(|(_, l)| l.clone()).collect()
    }

    /// Sends a signal (by name, e.g. "TERM", "KILL") to the process.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill").arg(format!("-{name}")).arg(self.child.id().to_string()).status().expect("kill");
        assert!(status.success());
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    /// Whether any line seen so far contains `text`.
    pub fn saw(&self, text: &str) -> bool {
        self.seen.iter().any(|(_, l)| l.contains(text))
    }

    /// Everything seen so far, for assertion messages.
    pub fn transcript(&self) -> String {
        self.seen.iter().map(|(s, l)| format!("{s:?}: {l}")).collect::<Vec<_>>().join("\n")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A tracker in a temp folder, and helpers to start peers against it.
pub struct Swarm {
    pub dir: tempfile::TempDir,
    pub tracker: Proc,
    pub addr: String,
}

impl Swarm {
    /// Starts a tracker on an OS-chosen port with the given `--peer-timeout`.
    pub fn start(peer_timeout: &str) -> Swarm {
        Swarm::start_with(&["--peer-timeout", peer_timeout])
    }

    /// Starts a tracker on an OS-chosen port with these flags too.
    pub fn start_with(flags: &[&str]) -> Swarm {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join("data")).expect("data dir");
        let mut args = vec!["tracker", "--listen", "127.0.0.1:0"];
        args.extend_from_slice(flags);
        let mut tracker = Proc::spawn("tracker", dir.path(), &args);
        let line = tracker.expect("tracker listening on ");
        let addr = line.split_whitespace().nth(3).expect("address").to_string();
        Swarm { dir, tracker, addr }
    }

    /// The swarm's folder.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Starts peer `id` with extra args and waits until it is registered.
    pub fn peer_with(&self, id: &str, extra: &[&str]) -> Proc {
        let mut args = vec!["peer", id, "--tracker", &self.addr, "--heartbeat", "0.2", "--listen", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        let mut peer = Proc::spawn(&format!("peer {id}"), self.path(), &args);
        peer.expect("connected to tracker");
        peer
    }

    /// Starts peer `id` and waits until it is registered.
    pub fn peer(&self, id: &str) -> Proc {
        self.peer_with(id, &[])
    }

    /// Starts peer `id` with its own data folder holding `data` as `name` and an upload limit
    /// (so a transfer lasts long enough to interrupt), and shares it.
    pub fn slow_holder(&self, id: &str, name: &str, data: &[u8], limit: &str) -> Proc {
        let dir = self.path().join(format!("{id}-data"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), data).unwrap();
        let dir = dir.to_string_lossy().into_owned();
        let mut peer = self.peer_with(id, &["--data-dir", &dir, "--upload-limit", limit]);
        peer.command(&format!("share {name}"), "shared ");
        peer
    }

    /// Writes a file into the shared data folder.
    pub fn write_data(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.path().join("data").join(name);
        if let Some(folder) = path.parent() {
            std::fs::create_dir_all(folder).expect("make the data file's folder");
        }
        std::fs::write(&path, bytes).expect("write data file");
        path
    }

    /// Where peer `id` downloads `name` by default.
    pub fn downloaded(&self, id: &str, name: &str) -> PathBuf {
        self.path().join("data").join(format!("peer-{id}")).join(name)
    }
}

/// A tmpfs mounted for one test (at `at`, made if missing), unmounted on drop; `None` when
/// mounting is not allowed here (not root).
pub struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `size` (e.g. `2m`) at `at`.
    pub fn mount(at: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(at).ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(at.to_path_buf()))
    }

    /// Grows or shrinks the tmpfs mounted at `at`.
    pub fn resize(at: &Path, size: &str) -> bool {
        let opts = format!("remount,size={size}");
        Command::new("mount").args(["-o", &opts]).arg(at).status().is_ok_and(|s| s.success())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Reproducible incompressible bytes.
pub fn bytes(len: usize, seed: &str) -> Vec<u8> {
    let mut out = vec![0u8; len];
    blake3::Hasher::new().update(seed.as_bytes()).finalize_xof().fill(&mut out);
    out
}

/// BLAKE3 of `data` in hex, as `b3sum` prints it.
pub fn b3sum(data: &[u8]) -> String {
    blake3::hash(data).to_hex().to_string()
}

/// Polls `ready` until it holds, for at most `timeout` (for conditions with no output line,
/// such as a file appearing).
pub fn wait_until(timeout: Duration, ready: impl Fn() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ready() {
        assert!(Instant::now() < deadline, "condition not met within {timeout:?}");
        std::thread::sleep(POLL_INTERVAL / 5); // poll: no output line announces this
    }
}

/// Every path under `root` (files and folders, never following a symlink), but those under
/// `skip`: what a test compares before and after to see that nothing was written.
pub fn paths_under(root: &std::path::Path, skip: &[PathBuf]) -> std::collections::BTreeSet<PathBuf> {
    let mut out = std::collections::BTreeSet::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if skip.iter().any(|s| path.starts_with(s)) {
                continue;
            }
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                todo.push(path.clone());
            }
            out.insert(path);
        }
    }
    out
}
