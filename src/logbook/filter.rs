//! Which records a `logs` command shows: `--tail N`, `--file NAME|ID-PREFIX`, `--peer ID`.
//! Plain state, used the same way by the tracker's and the peer's prompts.

use anyhow::{Context, Result, bail};

use super::{ChunkRecord, Event};

/// The flags [`Filter::take`] reads, for help texts and Tab completion.
pub const FLAGS: [&str; 3] = ["--tail", "--file", "--peer"];

/// A selection of log records; the default keeps everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only the last this many records (after the other filters).
    pub tail: Option<usize>,
    /// Only records about this file: its name, or 4 or more hex digits of its id.
    pub file: Option<String>,
    /// Only records about this peer (the tracker) or from it (a peer's downloads).
    pub peer: Option<String>,
}

impl Filter {
    /// Takes `--tail N`, `--file NAME` and `--peer ID` (also `--flag=value`) out of `words`,
    /// leaving the rest in order; fails on a flag without its value or a bad count.
    pub fn take(words: &mut Vec<String>) -> Result<Filter> {
        let mut filter = Filter::default();
        let mut rest = Vec::with_capacity(words.len());
        let mut iter = std::mem::take(words).into_iter();
        while let Some(word) = iter.next() {
            let (flag, inline) = match word.split_once('=') {
                Some((flag, value)) if FLAGS.contains(&flag) => (flag.to_string(), Some(value.to_string())),
                _ if FLAGS.contains(&word.as_str()) => (word.clone(), None),
                _ => {
                    rest.push(word);
                    continue;
                }
            };
            let Some(value) = inline.or_else(|| iter.next()).filter(|v| !v.is_empty()) else {
                bail!("{flag} needs a value ({})", usage(&flag));
            };
            match flag.as_str() {
                "--tail" => filter.tail = Some(value.parse().with_context(|| format!("--tail takes a number of records, not {value:?}"))?),
                "--file" => filter.file = Some(value),
                _ => filter.peer = Some(value),
            }
        }
        *words = rest;
        Ok(filter)
    }

    /// Whether it keeps everything.
    pub fn is_empty(&self) -> bool {
        *self == Filter::default()
    }

    /// The tracker events it keeps, oldest first.
    pub fn events(&self, events: Vec<Event>) -> Vec<Event> {
        let kept = events
            .into_iter()
            .filter(|e| self.file.as_deref().is_none_or(|f| e.is_about(f)) && self.peer.as_deref().is_none_or(|p| e.peer == p));
        self.tail(kept.collect())
    }

    /// The downloaded chunks it keeps, oldest first.
    pub fn chunks(&self, records: Vec<ChunkRecord>) -> Vec<ChunkRecord> {
        let kept = records.into_iter().filter(|r| {
            self.file.as_deref().is_none_or(|f| r.file == f || id_prefix(&r.id, f)) && self.peer.as_deref().is_none_or(|p| r.from == p)
        });
        self.tail(kept.collect())
    }

    fn tail<T>(&self, mut records: Vec<T>) -> Vec<T> {
        if let Some(n) = self.tail {
            records.drain(..records.len().saturating_sub(n));
        }
        records
    }
}

/// Whether `query` (4 hex digits or more) starts the hex id `id`.
fn id_prefix(id: &str, query: &str) -> bool {
    query.len() >= 4 && id.starts_with(&query.to_ascii_lowercase())
}

fn usage(flag: &str) -> &'static str {
    match flag {
        "--tail" => "--tail N",
        "--file" => "--file NAME|ID-PREFIX",
        _ => "--peer ID",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logbook::EventKind;

    fn words(line: &str) -> Vec<String> {
        line.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn flags_are_taken_out_and_the_rest_stays() {
        let mut w = words("request --tail 5 --file=a.txt --json --peer 2");
        let filter = Filter::take(&mut w).unwrap();
        assert_eq!(filter, Filter { tail: Some(5), file: Some("a.txt".into()), peer: Some("2".into()) });
        assert_eq!(w, ["request", "--json"]);
        assert!(Filter::take(&mut words("request --tail")).unwrap_err().to_string().contains("--tail N"));
        assert!(Filter::take(&mut words("request --tail many")).unwrap_err().to_string().contains("number"));
        assert!(Filter::take(&mut words("all")).unwrap().is_empty());
    }

    #[test]
    fn filters_by_file_and_peer_then_keeps_the_tail() {
        let id = "ab".repeat(32);
        let events: Vec<Event> = (0..6)
            .map(|i| {
                let e = Event::now(EventKind::Share, &(i % 2).to_string(), "");
                if i < 4 { e.with_file("a.txt", Some(id.clone())) } else { e.with_file("b.txt", None) }
            })
            .collect();
        let by_file = Filter { file: Some("ABAB".into()), ..Filter::default() }.events(events.clone());
        assert_eq!(by_file.len(), 4);
        let by_peer = Filter { peer: Some("1".into()), tail: Some(2), ..Filter::default() }.events(events);
        assert_eq!(by_peer.iter().map(|e| e.file.as_deref().unwrap()).collect::<Vec<_>>(), ["a.txt", "b.txt"]);
        let chunk = |file: &str, from: &str| ChunkRecord {
            ts_ms: 0,
            file: file.into(),
            id: id.clone(),
            chunk: 0,
            from: from.into(),
            bytes: 1,
            ms: 1,
            partial: false,
        };
        let chunks = vec![chunk("a.txt", "1"), chunk("a.txt", "2"), chunk("c.txt", "2")];
        assert_eq!(Filter { peer: Some("2".into()), file: Some("a.txt".into()), ..Filter::default() }.chunks(chunks).len(), 1);
    }
}
