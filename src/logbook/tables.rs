//! The logs as the prompts show them: plain-text tables, local times, escaped cells.

use super::{ChunkRecord, Event};

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

/// The one rule for text on a terminal (`protocol::printable`): tables and lines use it too.
pub use crate::protocol::printable;

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
    fn tables_escape_terminal_sequences() {
        let mut t = Table::new(&["NAME"]);
        t.row(vec!["\x1b[2Jevil".into()]);
        let out = t.render("file");
        assert!(!out.contains('\x1b') && out.ends_with("1 file\n"));
    }
}
