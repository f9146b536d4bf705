//! Which holders are partial, and how much of a file each has: the segment reports
//! ([`crate::protocol::progress`]) of holders still downloading, by file. A holder with no
//! report here holds the file whole (a seeder, a finished download, or an older peer that
//! never reports). A file's availability bar is its complete holders plus, segment by
//! segment, the partial holders that have the segment.

use std::collections::HashMap;
use std::sync::Arc;

use super::small_map::SmallMap;
use crate::protocol::FileId;
use crate::protocol::progress;

/// The partial holders of each file that has some, with their last reports.
#[derive(Default)]
pub(super) struct Availability {
    by_file: HashMap<FileId, Partial>,
}

/// One file's partial holders: each one's last report, and how many of them have each
/// segment, kept as reports come and go (a bar costs a copy, not a pass over every report).
#[derive(Default)]
struct Partial {
    reports: SmallMap<Arc<str>, Box<[u8]>>,
    counts: Vec<u32>,
}

impl Partial {
    /// Adds (`up`) or takes away one report's segments from the counts.
    fn count(&mut self, bits: &[u8], up: bool) {
        for (k, count) in self.counts.iter_mut().enumerate() {
            if progress::has_segment(bits, k) {
                *count = if up { *count + 1 } else { count.saturating_sub(1) };
            }
        }
    }
}

impl Availability {
    /// Records `peer`'s report on `file` (checked: [`progress::report_len`] bytes for its
    /// `size`): a report with every segment set makes it a complete holder again.
    pub fn report(&mut self, file: FileId, size: u64, peer: &Arc<str>, have: &[u8]) -> Result<(), String> {
        let len = progress::report_len(size);
        if have.len() != len {
            return Err(format!("a progress report on a file of {size} bytes has {len} bytes, not {}", have.len()));
        }
        if progress::complete(have, size) {
            self.forget(&file, peer);
            return Ok(());
        }
        let partial = self.by_file.entry(file).or_default();
        partial.counts.resize(progress::segment_count(size), 0);
        if let Some(old) = partial.reports.insert(peer.clone(), have.into()) {
            partial.count(&old, false);
        }
        partial.count(have, true);
        Ok(())
    }

    /// `peer` no longer holds `file` (or left): its report goes.
    pub fn forget(&mut self, file: &FileId, peer: &str) {
        let Some(partial) = self.by_file.get_mut(file) else { return };
        if let Some(old) = partial.reports.remove(peer) {
            partial.count(&old, false);
        }
        if partial.reports.is_empty() {
            self.by_file.remove(file);
        }
    }

    /// `file`'s partial holders with the share of its segments each has (0.0–1.0), by peer id.
    pub fn partial_holders(&self, file: &FileId, size: u64) -> Vec<(Arc<str>, f64)> {
        let n = progress::segment_count(size).max(1) as f64;
        let reports = self.by_file.get(file).into_iter().flat_map(|p| p.reports.iter());
        reports.map(|(peer, bits)| (peer.clone(), progress::segments_set(bits, size) as f64 / n)).collect()
    }

    /// How many of `file`'s holders are partial.
    pub fn partial_count(&self, file: &FileId) -> usize {
        self.by_file.get(file).map_or(0, |p| p.reports.len())
    }

    /// How many holders have each segment of `file`, given its `holders` in all; empty when
    /// no holder is partial (then every segment is at every holder).
    pub fn bar(&self, file: &FileId, holders: usize) -> Vec<u32> {
        let Some(partial) = self.by_file.get(file) else { return Vec::new() };
        let complete = holders.saturating_sub(partial.reports.len()) as u32;
        partial.counts.iter().map(|n| complete + n).collect()
    }

    /// Partial (holder, file) reports kept in all.
    #[cfg(test)]
    pub fn reports(&self) -> usize {
        self.by_file.values().map(|p| p.reports.len()).sum()
    }
}
