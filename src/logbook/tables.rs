//! The logs as the prompts show them: plain-text tables, local times, escaped cells, sizes in
//! units, long names cut, and a peer's run of heartbeats folded into one row.

use std::collections::HashMap;
use std::time::Duration;

use super::{ChunkRecord, Event, EventKind};
use crate::units;

/// Characters a cell may take before it is cut with `…` (every column but the last, which may
/// run on); `--json` keeps the full text.
pub const MAX_CELL: usize = 40;
/// Hex digits of an id in tables and summaries (`--json` has all 64).
pub const SHORT_ID: usize = 12;

/// Local time of a Unix millisecond stamp, for tables.
pub fn local_time(ts_ms: i64) -> String {
    local(ts_ms, "%Y-%m-%d %H:%M:%S%.3f")
}

fn local(ts_ms: i64, format: &str) -> String {
    use chrono::TimeZone;
    match chrono::Local.timestamp_millis_opt(ts_ms) {
        chrono::LocalResult::Single(t) => t.format(format).to_string(),
        _ => ts_ms.to_string(),
    }
}

/// The first [`SHORT_ID`] hex digits of an id.
pub fn short_id(hex: &str) -> String {
    hex.chars().take(SHORT_ID).collect()
}

/// `n noun` with the noun in the plural unless `n` is 1: `1 chunk`, `2 chunks`.
pub fn count(n: usize, noun: &str) -> String {
    format!("{n} {noun}{}", if n == 1 { "" } else { "s" })
}

/// `text` cut to `max` characters, the last being `…`.
pub fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
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

    /// Adds a row; cells are shown escaped so names from the network cannot drive the terminal,
    /// and cut at [`MAX_CELL`] characters (but the last column's).
    pub fn row(&mut self, cells: Vec<String>) {
        let last = self.headers.len().saturating_sub(1);
        let cells = cells.into_iter().enumerate().map(|(i, c)| if i < last { cut(&printable(&c), MAX_CELL) } else { printable(&c) });
        self.rows.push(cells.collect());
    }

    /// Renders the table followed by a line counting the rows as `noun`.
    pub fn render(&self, noun: &str) -> String {
        self.render_with(&count(self.rows.len(), noun))
    }

    /// Renders the table followed by `footer`.
    pub fn render_with(&self, footer: &str) -> String {
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
        out.push_str(footer);
        out.push('\n');
        out
    }
}

fn push_line(out: &mut String, cells: &[String], widths: &[usize]) {
    let mut line = String::new();
    for (cell, width) in cells.iter().zip(widths) {
        let pad = width.saturating_sub(cell.chars().count());
        line.push_str(&format!("{cell}{:pad$}  ", ""));
    }
    out.push_str(line.trim_end());
    out.push('\n');
}

/// The one rule for text on a terminal (`protocol::printable`): tables and lines use it too.
pub use crate::protocol::printable;

/// One row of the events table: an event, or a peer's run of heartbeats.
struct Row<'a> {
    event: &'a Event,
    /// Events the row stands for (more than one only for heartbeats).
    count: usize,
    /// Stamp of the last of them.
    last_ms: i64,
}

/// Folds each peer's heartbeats into one row per run: a run goes on until that peer does
/// something else (register, share, exit…); other peers' events do not break it.
fn fold(events: &[Event]) -> Vec<Row<'_>> {
    let mut rows: Vec<Row> = Vec::new();
    let mut open: HashMap<&str, usize> = HashMap::new();
    for e in events {
        if e.kind != EventKind::Alive {
            open.remove(e.peer.as_str());
        } else if let Some(&i) = open.get(e.peer.as_str()) {
            rows[i].count += 1;
            rows[i].last_ms = e.ts_ms;
            continue;
        } else {
            open.insert(&e.peer, rows.len());
        }
        rows.push(Row { event: e, count: 1, last_ms: e.ts_ms });
    }
    rows
}

/// Renders tracker events as a table, each peer's runs of heartbeats folded into one row
/// (`alive ×12`, with the time span); the last line counts the events.
pub fn events_table(events: &[Event]) -> String {
    let mut table = Table::new(&["TIME", "EVENT", "PEER", "FILE", "ID", "DETAIL"]);
    let rows = fold(events);
    for row in &rows {
        let e = row.event;
        let id = e.id.as_deref().map(short_id).unwrap_or_default();
        let file = e.file.clone().unwrap_or_default();
        let (label, detail) = if row.count > 1 {
            let span = Duration::from_millis(row.last_ms.saturating_sub(e.ts_ms).max(0) as u64);
            let until = format!("until {} ({})", local(row.last_ms, "%H:%M:%S%.3f"), units::duration(span));
            (format!("{} ×{}", e.kind.label(), row.count), until)
        } else {
            (e.kind.label().to_string(), readable_detail(&e.detail))
        };
        table.row(vec![local_time(e.ts_ms), label, e.peer.clone(), file, id, detail]);
    }
    let mut footer = count(events.len(), "event");
    if rows.len() < events.len() {
        footer.push_str(&format!(" ({}: heartbeats folded; --json lists each)", count(rows.len(), "row")));
    }
    table.render_with(&footer)
}

/// An event's detail as a person reads it: a size in units (`5.0 KiB`, not `5120 bytes`), and
/// each `word(s)` the tracker writes in the plural that the number before it takes
/// (`1 match(es), 2 holder(s)` reads `1 match, 2 holders`). Done here rather than when the
/// tracker writes, so logs kept from before read the same.
fn readable_detail(detail: &str) -> String {
    if let Some(n) = detail.strip_suffix(" bytes").and_then(|n| n.parse::<u64>().ok()) {
        return units::bytes(n);
    }
    let mut last_number = None;
    let words = detail.split(' ').map(|word| {
        if let Ok(n) = word.trim_end_matches([',', ';', ':']).parse::<u64>() {
            last_number = Some(n);
        }
        let plural = |suffix: &str| {
            let (stem, rest) = word.split_once(suffix)?;
            let ending = if last_number == Some(1) { "" } else { suffix.trim_matches(['(', ')']) };
            Some(format!("{stem}{ending}{rest}"))
        };
        plural("(es)").or_else(|| plural("(s)")).unwrap_or_else(|| word.to_string())
    });
    words.collect::<Vec<_>>().join(" ")
}

/// Renders downloaded chunks as a table.
pub fn chunks_table(records: &[ChunkRecord]) -> String {
    let mut table = Table::new(&["TIME", "FILE", "CHUNK", "FROM", "HOLDER", "SIZE", "TIME TAKEN"]);
    for r in records {
        let holder = if r.partial { "partial" } else { "complete" }.to_string();
        let cells = [r.chunk.to_string(), r.from.clone(), holder, units::bytes(r.bytes), units::duration(Duration::from_millis(r.ms))];
        table.row([vec![local_time(r.ts_ms), r.file.clone()], cells.to_vec()].concat());
    }
    table.render("chunk")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_escape_terminal_sequences() {
        let mut t = Table::new(&["NAME"]);
        t.row(vec!["\x1b[2Jevil".into()]);
        let out = t.render("file");
        assert!(!out.contains('\x1b') && out.ends_with("1 file\n"));
    }

    #[test]
    fn long_cells_are_cut_and_counts_take_the_right_plural() {
        let mut t = Table::new(&["NAME", "SIZE"]);
        t.row(vec!["n".repeat(100), "1 B".into()]);
        let out = t.render("file");
        let row = out.lines().nth(1).unwrap();
        assert!(row.starts_with(&format!("{}…  1 B", "n".repeat(MAX_CELL - 1))), "{row}");
        assert_eq!(count(1, "chunk"), "1 chunk");
        assert_eq!(count(2, "chunk"), "2 chunks");
        assert_eq!(count(0, "event"), "0 events");
    }

    #[test]
    fn each_peers_heartbeats_fold_into_one_row_with_a_count() {
        let at = |kind, peer: &str, ts_ms| Event { ts_ms, kind, peer: peer.into(), file: None, id: None, detail: String::new() };
        let mut events = vec![at(EventKind::Register, "1", 0)];
        events.extend((1..=12).flat_map(|i| [at(EventKind::Alive, "1", i * 1000), at(EventKind::Alive, "2", i * 1000 + 1)]));
        events.push(at(EventKind::Exit, "1", 13_000));
        events.push(at(EventKind::Alive, "1", 14_000));
        let out = events_table(&events);
        let rows: Vec<&str> = out.lines().skip(1).collect();
        assert_eq!(rows.len(), 6, "{out}");
        assert!(rows[1].contains("alive ×12") && rows[1].contains("(11.00 s)"), "{out}");
        assert!(rows[2].contains("alive ×12") && rows[2].split_whitespace().nth(4) == Some("2"), "{out}");
        assert!(rows[3].contains("exit") && rows[4].contains("alive ") && !rows[4].contains('×'), "{out}");
        assert_eq!(rows[5], "27 events (5 rows: heartbeats folded; --json lists each)");
    }

    #[test]
    fn details_read_with_units_and_the_right_plurals() {
        assert_eq!(readable_detail("5120 bytes"), "5.0 KiB");
        assert_eq!(readable_detail("1 match(es), 1 holder(s)"), "1 match, 1 holder");
        assert_eq!(readable_detail("2 match(es), 3 holder(s)"), "2 matches, 3 holders");
        assert_eq!(readable_detail("1 of 3 announced file(s) refused (bad)"), "1 of 3 announced files refused (bad)");
        assert_eq!(readable_detail("from 127.0.0.1:5000"), "from 127.0.0.1:5000");
    }

    #[test]
    fn chunk_sizes_read_in_units() {
        let r = ChunkRecord {
            ts_ms: 0,
            file: "f".into(),
            id: "ab".repeat(32),
            chunk: 3,
            from: "1".into(),
            bytes: 256 * 1024,
            ms: 1500,
            partial: true,
        };
        let out = chunks_table(&[r]);
        assert!(out.contains("256.0 KiB") && out.contains("1.50 s") && out.ends_with("1 chunk\n"), "{out}");
        assert!(out.contains("partial"), "the table says whether the source was a partial holder: {out}");
    }
}
