//! Logs a user asked for: tracker events and downloaded chunks, kept as JSON lines on disk.
//!
//! One JSON object per line, appended, so a log survives restarts and a torn last line (a crash
//! mid-write) costs only that line. The prompts read the file back, filter it and render a
//! table. These are records for the user, kept apart from `tracing` diagnostics.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

mod filter;
mod tables;

pub use filter::{FLAGS as FILTER_FLAGS, Filter};
pub use tables::{MAX_CELL, SHORT_ID, Table, chunks_table, count, cut, events_table, local_time, printable, short_id};

/// What happened at the tracker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    /// A peer connected and registered.
    Register,
    /// A heartbeat.
    Alive,
    /// A peer started sharing a file.
    Share,
    /// A peer looked a file up to download it.
    Get,
    /// A peer left.
    Exit,
    /// A silent peer was dropped.
    Expire,
    /// A request was refused.
    Refused,
    /// A holder withdrew a file (its copy changed on disk).
    Unshare,
    /// The tracker changed the heartbeat interval it asks peers for (its swarm grew or shrank).
    Pace,
}

impl EventKind {
    /// Whether `logs request` shows it (share and get only).
    pub fn is_request(self) -> bool {
        matches!(self, EventKind::Share | EventKind::Get)
    }

    fn label(self) -> &'static str {
        match self {
            EventKind::Register => "register",
            EventKind::Alive => "alive",
            EventKind::Pace => "pace",
            EventKind::Share => "share",
            EventKind::Get => "get",
            EventKind::Exit => "exit",
            EventKind::Expire => "expire",
            EventKind::Refused => "refused",
            EventKind::Unshare => "unshare",
        }
    }
}

/// One tracker event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Unix time in milliseconds.
    pub ts_ms: i64,
    /// What happened.
    pub kind: EventKind,
    /// The peer it concerns.
    pub peer: String,
    /// The file name, when a file is involved.
    pub file: Option<String>,
    /// The file id (hex), when a file is involved.
    pub id: Option<String>,
    /// Free text: address, reason, match count.
    pub detail: String,
}

impl Event {
    /// A new event stamped now.
    pub fn now(kind: EventKind, peer: &str, detail: impl Into<String>) -> Event {
        Event { ts_ms: now_ms(), kind, peer: peer.to_string(), file: None, id: None, detail: detail.into() }
    }

    /// The same event about a file.
    pub fn with_file(mut self, name: &str, id: Option<String>) -> Event {
        self.file = Some(name.to_string());
        self.id = id;
        self
    }

    /// Whether it concerns the file called `name` (or whose id starts with `name`).
    pub fn is_about(&self, name: &str) -> bool {
        self.file.as_deref() == Some(name)
            || (name.len() >= 4 && self.id.as_deref().is_some_and(|id| id.starts_with(&name.to_ascii_lowercase())))
    }
}

/// One chunk a peer downloaded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRecord {
    /// Unix time in milliseconds when it was verified.
    pub ts_ms: i64,
    /// The file name.
    pub file: String,
    /// The file id (hex).
    pub id: String,
    /// Chunk index.
    pub chunk: u32,
    /// The peer it came from.
    pub from: String,
    /// Its length.
    pub bytes: u64,
    /// Milliseconds from request to verified.
    pub ms: u64,
    /// Whether the peer it came from was itself still downloading the file (a partial holder)
    /// rather than holding all of it. (Absent in logs written before partial seeding: false.)
    #[serde(default)]
    pub partial: bool,
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Bytes a log file may reach before it is rotated: the current file becomes `NAME.1`
/// (replacing the one before), so a log never takes more than twice this on disk, and reading
/// it back never more than twice this in memory. A tracker logs each peer's heartbeat; 16 MiB
/// is about 100,000 events, days of a busy swarm.
pub const ROTATE_AT: u64 = 16 << 20;
/// Records waiting for the writer thread at most; past this (a writer stuck on a full or
/// failing disk) new records are dropped, with a warning, rather than queued without bound.
const QUEUE: usize = 4096;

/// What the writer thread is asked to do.
enum Job {
    /// Append this line (no newline).
    Line(String),
    /// Flush, then answer.
    Sync(mpsc::SyncSender<()>),
}

/// An append-only JSON-lines file of `T` records, written by a thread of its own: appending
/// never waits for the disk, so it is safe on an async runtime's threads.
pub struct Logbook<T> {
    path: PathBuf,
    jobs: Option<mpsc::SyncSender<Job>>,
    writer: Option<std::thread::JoinHandle<()>>,
    dropped: AtomicU64,
    _records: PhantomData<fn(T)>,
}

impl<T: Serialize + DeserializeOwned> Logbook<T> {
    /// Opens (creating) the log at `path`.
    pub fn open(path: &Path) -> io::Result<Logbook<T>> {
        Logbook::open_rotating_at(path, ROTATE_AT)
    }

    /// Opens the log at `path`, rotated at `rotate_at` bytes.
    pub fn open_rotating_at(path: &Path, rotate_at: u64) -> io::Result<Logbook<T>> {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir)?;
        }
        let file = open_for_append(path)?;
        let size = file.metadata()?.len();
        let (jobs, queue) = mpsc::sync_channel(QUEUE);
        let writer = Writer { path: path.to_path_buf(), out: BufWriter::new(file), size, rotate_at };
        let writer = std::thread::Builder::new().name("p2pq-log".into()).spawn(move || writer.run(queue))?;
        Ok(Logbook { path: path.to_path_buf(), jobs: Some(jobs), writer: Some(writer), dropped: AtomicU64::new(0), _records: PhantomData })
    }

    /// Appends a record; it reaches the file within moments (the writer flushes whenever it
    /// has nothing more to write).
    pub fn append(&self, record: &T) {
        let line = serde_json::to_string(record).unwrap_or_default();
        let sent = self.jobs.as_ref().is_some_and(|jobs| jobs.try_send(Job::Line(line)).is_ok());
        if !sent && self.dropped.fetch_add(1, Ordering::Relaxed) == 0 {
            tracing::warn!(path = %self.path.display(), "the log cannot keep up; records are being dropped");
        }
    }

    /// Waits until every record appended so far is in the file (blocking, briefly).
    pub fn flush(&self) {
        let (done, wait) = mpsc::sync_channel(1);
        if self.jobs.as_ref().is_some_and(|jobs| jobs.send(Job::Sync(done)).is_ok()) {
            let _ = wait.recv();
        }
    }

    /// Reads every record back, the rotated file's first; lines that do not parse (a torn
    /// write) are skipped (blocking).
    pub fn read_all(&self) -> io::Result<Vec<T>> {
        self.flush();
        let mut records = Vec::new();
        let older = rotated(&self.path);
        if older.exists() {
            read_lines(&older, &mut records)?;
        }
        read_lines(&self.path, &mut records)?;
        Ok(records)
    }

    /// The records in the last `window` bytes of the log (reaching into the rotated file when
    /// the current one is shorter), oldest first: what a live view shows, at a cost bounded by
    /// `window` however long the log. It does not wait for records still queued (blocking).
    pub fn read_tail(&self, window: u64) -> io::Result<Vec<T>> {
        let (current, len) = tail(&self.path, window)?;
        let mut text = match window.saturating_sub(len) {
            0 => Vec::new(),
            rest => tail(&rotated(&self.path), rest)?.0,
        };
        text.extend(current);
        Ok(text.split(|b| *b == b'\n').filter_map(|line| serde_json::from_slice(line).ok()).collect())
    }
}

impl<T> Drop for Logbook<T> {
    fn drop(&mut self) {
        // Closing the queue ends the writer once it has written and flushed what is queued.
        self.jobs.take();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

/// The log's writer thread.
struct Writer {
    path: PathBuf,
    out: BufWriter<File>,
    /// Bytes in the current file, written or buffered.
    size: u64,
    rotate_at: u64,
}

impl Writer {
    fn run(mut self, queue: mpsc::Receiver<Job>) {
        while let Ok(job) = queue.recv() {
            self.handle(job);
            // Take whatever else is waiting before flushing, so a burst costs one write.
            while let Ok(job) = queue.try_recv() {
                self.handle(job);
            }
            self.flush();
        }
        self.flush();
    }

    fn handle(&mut self, job: Job) {
        match job {
            Job::Line(line) => {
                if writeln!(self.out, "{line}").is_err() {
                    tracing::warn!(path = %self.path.display(), "cannot write the log");
                }
                self.size += line.len() as u64 + 1;
                self.rotate_if_full();
            }
            Job::Sync(done) => {
                self.flush();
                let _ = done.send(());
            }
        }
    }

    fn flush(&mut self) {
        if self.out.flush().is_err() {
            tracing::warn!(path = %self.path.display(), "cannot write the log");
        }
    }

    /// Moves a full log aside to `NAME.1` and starts a new one.
    fn rotate_if_full(&mut self) {
        if self.size < self.rotate_at {
            return;
        }
        self.flush();
        let reopened = fs::rename(&self.path, rotated(&self.path)).and_then(|()| open_for_append(&self.path));
        match reopened {
            Ok(file) => {
                self.out = BufWriter::new(file);
                self.size = 0;
            }
            Err(err) => tracing::warn!(path = %self.path.display(), "cannot rotate the log: {err}"),
        }
    }
}

/// Where a log's previous file goes: `NAME.1`.
fn rotated(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".1");
    path.with_file_name(name)
}

fn open_for_append(path: &Path) -> io::Result<File> {
    let mut file = OpenOptions::new().create(true).append(true).read(true).open(path)?;
    end_with_newline(&mut file)?;
    Ok(file)
}

/// Appends the records of one file that parse.
fn read_lines<T: DeserializeOwned>(path: &Path, records: &mut Vec<T>) -> io::Result<()> {
    for line in BufReader::new(File::open(path)?).lines() {
        if let Ok(record) = serde_json::from_str(&line?) {
            records.push(record);
        }
    }
    Ok(())
}

/// The whole lines in the last `window` bytes of the file at `path` (none if there is no file),
/// and the file's length.
fn tail(path: &Path, window: u64) -> io::Result<(Vec<u8>, u64)> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(err) => return Err(err),
    };
    let len = file.metadata()?.len();
    // One byte before the window too: whether it is a newline tells if the window starts a line.
    let start = len.saturating_sub(window.saturating_add(1));
    file.seek(SeekFrom::Start(start))?;
    let mut text = Vec::new();
    file.take(len - start).read_to_end(&mut text)?;
    if start > 0 || len > window {
        let first = text.iter().position(|b| *b == b'\n').map_or(text.len(), |at| at + 1);
        text.drain(..first);
    }
    Ok((text, len))
}

/// Ends a torn last line (a crash mid-write) so the next record starts on a line of its own.
fn end_with_newline(file: &mut File) -> io::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    if file.metadata()?.len() == 0 {
        return Ok(());
    }
    let mut last = [0u8; 1];
    file.seek(SeekFrom::End(-1))?;
    file.read_exact(&mut last)?;
    if last[0] != b'\n' {
        file.write_all(b"\n")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_survive_reopening_and_torn_lines_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.jsonl");
        let log = Logbook::<Event>::open(&path).unwrap();
        log.append(&Event::now(EventKind::Share, "1", "").with_file("a.txt", Some("ab".repeat(32))));
        drop(log);
        fs::write(&path, [fs::read(&path).unwrap(), b"{\"ts_ms\":1,\"ki".to_vec()].concat()).unwrap();
        let log = Logbook::<Event>::open(&path).unwrap();
        let events = log.read_all().unwrap();
        assert_eq!(events.len(), 1);
        assert!(events[0].is_about("a.txt") && events[0].is_about("abab"));
    }

    /// A log in `dir` rotated at 4 KiB, with heartbeats of peers "0" to `n - 1` appended.
    fn rotating_log(dir: &Path, n: u32) -> (PathBuf, Logbook<Event>) {
        let path = dir.join("events.jsonl");
        let log = Logbook::<Event>::open_rotating_at(&path, 4096).unwrap();
        for i in 0..n {
            log.append(&Event::now(EventKind::Alive, &i.to_string(), ""));
        }
        (path, log)
    }

    #[test]
    fn a_full_log_is_rotated_and_both_files_are_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let (path, log) = rotating_log(dir.path(), 200);
        let events = log.read_all().unwrap();
        let on_disk = fs::metadata(&path).unwrap().len() + fs::metadata(dir.path().join("events.jsonl.1")).unwrap().len();
        assert!(on_disk <= 2 * 4096 + 200, "{on_disk} bytes kept for a 4 KiB log");
        assert!(!events.is_empty() && events.len() < 200, "{} of 200 events kept", events.len());
        assert_eq!(events.last().map(|e| e.peer.as_str()), Some("199"), "the newest are kept, in order");
        let peers: Vec<u32> = events.iter().filter_map(|e| e.peer.parse().ok()).collect();
        assert!(peers.windows(2).all(|w| w[0] + 1 == w[1]), "the rotated file is read first");
    }

    #[test]
    fn the_tail_reads_only_the_last_whole_lines_and_reaches_into_the_rotated_file() {
        let dir = tempfile::tempdir().unwrap();
        let (path, log) = rotating_log(dir.path(), 100);
        log.flush();
        let line = fs::read_to_string(&path).unwrap().lines().last().unwrap().len() as u64 + 1;
        let peers = |events: Vec<Event>| events.iter().map(|e| e.peer.parse::<u32>().unwrap()).collect::<Vec<_>>();
        assert_eq!(peers(log.read_tail(3 * line).unwrap()), [97, 98, 99], "three lines exactly");
        assert_eq!(peers(log.read_tail(3 * line - 1).unwrap()), [98, 99], "a line cut by the window is left out");
        assert!(fs::metadata(dir.path().join("events.jsonl.1")).is_ok(), "100 events rotated a 4 KiB log");
        let current = fs::metadata(&path).unwrap().len();
        let across = peers(log.read_tail(current + 2 * line).unwrap());
        assert!(across.len() > 2 && across.windows(2).all(|w| w[0] + 1 == w[1]), "the rotated file's last lines first: {across:?}");
        assert_eq!(across.last(), Some(&99));
        let all = log.read_all().unwrap().len();
        assert_eq!(log.read_tail(1 << 20).unwrap().len(), all, "a window past both files reads them whole");
        let empty = Logbook::<Event>::open(&dir.path().join("new.jsonl")).unwrap();
        assert!(empty.read_tail(1024).unwrap().is_empty());
    }
}
