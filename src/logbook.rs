//! Logs a user asked for: tracker events and downloaded chunks, kept as JSON lines on disk.
//!
//! One JSON object per line, appended, so a log survives restarts and a torn last line (a crash
//! mid-write) costs only that line. The prompts read the file back, filter it and render a
//! table. These are records for the user, kept apart from `tracing` diagnostics.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

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
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// An append-only JSON-lines file of `T` records.
pub struct Logbook<T> {
    path: PathBuf,
    out: Mutex<BufWriter<File>>,
    _records: PhantomData<fn(T)>,
}

impl<T: Serialize + DeserializeOwned> Logbook<T> {
    /// Opens (creating) the log at `path`.
    pub fn open(path: &Path) -> io::Result<Logbook<T>> {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir)?;
        }
        let mut file = OpenOptions::new().create(true).append(true).read(true).open(path)?;
        end_with_newline(&mut file)?;
        Ok(Logbook { path: path.to_path_buf(), out: Mutex::new(BufWriter::new(file)), _records: PhantomData })
    }

    /// Appends a record (buffered; see [`Logbook::flush`]).
    pub fn append(&self, record: &T) {
        let Ok(mut out) = self.out.lock() else { return };
        let line = serde_json::to_string(record).unwrap_or_default();
        if writeln!(out, "{line}").is_err() {
            tracing::warn!(path = %self.path.display(), "cannot write the log");
        }
    }

    /// Writes buffered records to the file.
    pub fn flush(&self) {
        if let Ok(mut out) = self.out.lock() {
            let _ = out.flush();
        }
    }

    /// Appends and flushes at once.
    pub fn record(&self, record: &T) {
        self.append(record);
        self.flush();
    }

    /// Reads every record back; lines that do not parse (a torn write) are skipped.
    pub fn read_all(&self) -> io::Result<Vec<T>> {
        self.flush();
        let file = File::open(&self.path)?;
        let mut records = Vec::new();
        for line in BufReader::new(file).lines() {
            if let Ok(record) = serde_json::from_str(&line?) {
                records.push(record);
            }
        }
        Ok(records)
    }
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

/// Local time of a Unix millisecond stamp, for tables.
pub fn local_time(ts_ms: i64) -> String {
    use chrono::TimeZone;
    match chrono::Local.timestamp_millis_opt(ts_ms) {
        chrono::LocalResult::Single(t) => t.format("%Y-%m-%d %H:%M:%S%.3f").to_string(),
        _ => ts_ms.to_string(),
    }
}

/// A plain text table with aligned columns.
pub struct Table {
    headers: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers.
    pub fn new(headers: &[&'static str]) -> Table {
        Table { headers: headers.to_vec(), rows: Vec::new() }
    }

    /// Adds a row; cells are shown escaped so names from the network cannot drive the terminal.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells.into_iter().map(|c| printable(&c)).collect());
    }

    /// Renders the table followed by a line counting the rows as `noun`.
    pub fn render(&self, noun: &str) -> String {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.len()).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        if !self.rows.is_empty() {
            let headers: Vec<String> = self.headers.iter().map(|h| h.to_string()).collect();
            push_line(&mut out, &headers, &widths);
            for row in &self.rows {
                push_line(&mut out, row, &widths);
            }
        }
        let n = self.rows.len();
        out.push_str(&format!("{n} {noun}{}\n", if n == 1 { "" } else { "s" }));
        out
    }
}

fn push_line(out: &mut String, cells: &[String], widths: &[usize]) {
    let mut line = String::new();
    for (cell, width) in cells.iter().zip(widths) {
        line.push_str(&format!("{cell:<width$}  "));
    }
    out.push_str(line.trim_end());
    out.push('\n');
}

/// `text` with control characters escaped, safe to print on a terminal.
pub fn printable(text: &str) -> String {
    if text.chars().any(char::is_control) { text.escape_default().to_string() } else { text.to_string() }
}

/// Renders tracker events as a table.
pub fn events_table(events: &[Event]) -> String {
    let mut table = Table::new(&["TIME", "EVENT", "PEER", "FILE", "ID", "DETAIL"]);
    for e in events {
        let id = e.id.as_deref().map(|id| id.chars().take(12).collect()).unwrap_or_default();
        let file = e.file.clone().unwrap_or_default();
        table.row(vec![local_time(e.ts_ms), e.kind.label().into(), e.peer.clone(), file, id, e.detail.clone()]);
    }
    table.render("event")
}

/// Renders downloaded chunks as a table.
pub fn chunks_table(records: &[ChunkRecord]) -> String {
    let mut table = Table::new(&["TIME", "FILE", "CHUNK", "FROM", "BYTES", "MS"]);
    for r in records {
        let cells = [r.chunk.to_string(), r.from.clone(), r.bytes.to_string(), r.ms.to_string()];
        table.row([vec![local_time(r.ts_ms), r.file.clone()], cells.to_vec()].concat());
    }
    table.render("chunk")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_survive_reopening_and_torn_lines_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.jsonl");
        let log = Logbook::<Event>::open(&path).unwrap();
        log.record(&Event::now(EventKind::Share, "1", "").with_file("a.txt", Some("ab".repeat(32))));
        drop(log);
        fs::write(&path, [fs::read(&path).unwrap(), b"{\"ts_ms\":1,\"ki".to_vec()].concat()).unwrap();
        let log = Logbook::<Event>::open(&path).unwrap();
        let events = log.read_all().unwrap();
        assert_eq!(events.len(), 1);
        assert!(events[0].is_about("a.txt") && events[0].is_about("abab"));
    }

    #[test]
    fn tables_escape_terminal_sequences() {
        let mut t = Table::new(&["NAME"]);
        t.row(vec!["\x1b[2Jevil".into()]);
        let out = t.render("file");
        assert!(!out.contains('\x1b') && out.ends_with("1 file\n"));
    }
}
