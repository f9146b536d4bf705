//! The file index: every listed file by id, and by name, kept up to date on every change so
//! that no request scans the whole.
//!
//! Files sit in an ordered map by id, so the files whose id starts with a hex prefix are one
//! range of it ([`prefix_range`]). Two ordered sets of `(name, id)` pairs serve names: every
//! name some holder shares a file under (a lookup by name is a range of it), and the one name
//! each file is listed under (the first of its holders' names in order), which orders `Files`
//! pages. A lookup or a page costs O(log n + what it returns).

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use super::small_map::SmallMap;
use crate::protocol::{Digest, FileId, FileInfo, FolderSize};

/// A file and its holders, each with the name it shares the file under.
#[derive(Clone, Debug)]
pub(super) struct FileEntry {
    /// Size in bytes, the same for every holder.
    pub size: u64,
    /// What the folder holds, when the file is a folder's listing.
    pub folder: Option<FolderSize>,
    /// Holder peer id → the name it shares the file under.
    pub holders: SmallMap<String, String>,
    /// Each of the holders' names, with how many holders use it.
    names: SmallMap<String, u32>,
}

impl FileEntry {
    fn new(file: &FileInfo) -> FileEntry {
        FileEntry { size: file.size, folder: file.folder, holders: SmallMap::default(), names: SmallMap::default() }
    }

    /// The name the file is listed under: the first, in order, of its holders' names.
    pub fn shown(&self) -> &str {
        self.names.keys().next().map_or("", String::as_str)
    }

    /// Whether some holder shares the file under `name`.
    pub fn has_name(&self, name: &str) -> bool {
        self.names.contains_key(name)
    }
}

/// Files by id and by name.
#[derive(Default)]
pub(super) struct FileIndex {
    by_id: BTreeMap<FileId, FileEntry>,
    /// Every (name, file) pair some holder uses.
    by_name: BTreeSet<(String, FileId)>,
    /// (shown name, file), one pair per file: the order of `Files` pages.
    listed: BTreeSet<(String, FileId)>,
}

impl FileIndex {
    /// The file with this id, if some live peer holds it.
    pub fn get(&self, id: &FileId) -> Option<&FileEntry> {
        self.by_id.get(id)
    }

    /// Files known, each once.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Records that `peer` holds `file` under its name; returns whether that is news (a new
    /// holder, or a new name for it).
    pub fn add_holder(&mut self, peer: &str, file: &FileInfo) -> bool {
        let entry = self.by_id.entry(file.id).or_insert_with(|| FileEntry::new(file));
        let shown_before = (!entry.holders.is_empty()).then(|| entry.shown().to_string());
        let old = entry.holders.insert(peer.to_string(), file.name.clone());
        if old.as_deref() == Some(file.name.as_str()) {
            return false;
        }
        if let Some(old) = old {
            self.forget_name(&file.id, &old);
        }
        self.count_name(&file.id, &file.name);
        self.relist(&file.id, shown_before);
        true
    }

    /// Stops listing `peer` as a holder of `id`; returns the name it shared it under. A file
    /// nobody holds any more is dropped.
    pub fn remove_holder(&mut self, peer: &str, id: &FileId) -> Option<String> {
        let entry = self.by_id.get_mut(id)?;
        let shown_before = entry.shown().to_string();
        let name = entry.holders.remove(peer)?;
        self.forget_name(id, &name);
        if self.by_id.get(id).is_some_and(|e| e.holders.is_empty()) {
            self.by_id.remove(id);
            self.listed.remove(&(shown_before, *id));
        } else {
            self.relist(id, Some(shown_before));
        }
        Some(name)
    }

    /// One more holder of `id` uses `name`.
    fn count_name(&mut self, id: &FileId, name: &str) {
        let Some(entry) = self.by_id.get_mut(id) else { return };
        match entry.names.get_mut(name) {
            Some(count) => *count += 1,
            None => {
                entry.names.insert(name.to_string(), 1);
                self.by_name.insert((name.to_string(), *id));
            }
        }
    }

    /// One holder of `id` fewer uses `name`.
    fn forget_name(&mut self, id: &FileId, name: &str) {
        let Some(entry) = self.by_id.get_mut(id) else { return };
        let Some(count) = entry.names.get_mut(name) else { return };
        *count -= 1;
        if *count == 0 {
            entry.names.remove(name);
            self.by_name.remove(&(name.to_string(), *id));
        }
    }

    /// Moves `id` in the listing order if its shown name changed from `before`.
    fn relist(&mut self, id: &FileId, before: Option<String>) {
        let Some(entry) = self.by_id.get(id) else { return };
        if before.as_deref() == Some(entry.shown()) {
            return;
        }
        let now = entry.shown().to_string();
        if let Some(before) = before {
            self.listed.remove(&(before, *id));
        }
        self.listed.insert((now, *id));
    }

    /// Ids of the files some holder shares under `name`, in order.
    pub fn named(&self, name: &str) -> impl Iterator<Item = FileId> + '_ {
        let range = (name.to_string(), Digest([0; 32]))..=(name.to_string(), Digest([0xff; 32]));
        self.by_name.range(range).map(|(_, id)| *id)
    }

    /// Ids of the files whose id starts with the hex digits `prefix` (any case), in order;
    /// none if `prefix` is not hex or longer than an id.
    pub fn with_prefix(&self, prefix: &str) -> impl Iterator<Item = FileId> + '_ {
        let range = prefix_range(prefix).map(|(low, high)| self.by_id.range(low..=high));
        range.into_iter().flatten().map(|(id, _)| *id)
    }

    /// Up to `limit` files in listing order (by shown name, then id) after `after`, and
    /// whether more follow.
    pub fn page(&self, after: Option<(&str, &FileId)>, limit: usize) -> (Vec<(FileId, &FileEntry)>, bool) {
        let start = match after {
            Some((name, id)) => Bound::Excluded((name.to_string(), *id)),
            None => Bound::Unbounded,
        };
        let mut ids = self.listed.range((start, Bound::Unbounded)).map(|(_, id)| *id);
        let page: Vec<_> = ids.by_ref().take(limit).filter_map(|id| self.by_id.get(&id).map(|e| (id, e))).collect();
        (page, ids.next().is_some())
    }
}

/// The ids whose hex starts with `prefix`, as an inclusive range: the prefix's digits then
/// all zero bits, up to its digits then all one bits. An odd digit count fixes the high
/// nibble of its last byte only. `None` if `prefix` is empty, not hex, or over 64 digits.
pub fn prefix_range(prefix: &str) -> Option<(Digest, Digest)> {
    if prefix.is_empty() || prefix.len() > 64 {
        return None;
    }
    let (mut low, mut high) = ([0u8; 32], [0xffu8; 32]);
    for (i, c) in prefix.bytes().enumerate() {
        let nibble = char::from(c).to_digit(16)? as u8;
        if i % 2 == 0 {
            low[i / 2] = nibble << 4;
            high[i / 2] = nibble << 4 | 0x0f;
        } else {
            low[i / 2] |= nibble;
            high[i / 2] = (high[i / 2] & 0xf0) | nibble;
        }
    }
    Some((Digest(low), Digest(high)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(hex: &str) -> Digest {
        let mut bytes = [0u8; 32];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
        }
        Digest(bytes)
    }

    #[test]
    fn a_prefix_is_the_range_of_ids_that_start_with_it() {
        let (low, high) = prefix_range("aBc").unwrap();
        assert_eq!(low, id(&format!("abc0{}", "0".repeat(60))));
        assert_eq!(high, id(&format!("abcf{}", "f".repeat(60))));
        let (low, high) = prefix_range("abcd").unwrap();
        assert_eq!((low.0[..3].to_vec(), high.0[..3].to_vec()), (vec![0xab, 0xcd, 0], vec![0xab, 0xcd, 0xff]));
        let full = "0123456789abcdef".repeat(4);
        assert_eq!(prefix_range(&full), Some((id(&full), id(&full))));
        for bad in ["", "abcg", "ab cd", "é", &format!("{full}0")] {
            assert_eq!(prefix_range(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_file_is_listed_under_the_first_of_its_names_and_moves_when_that_holder_leaves() {
        let mut index = FileIndex::default();
        let file = |name: &str| FileInfo { id: Digest([1; 32]), name: name.into(), size: 3, folder: None };
        assert!(index.add_holder("p1", &file("b.txt")));
        assert!(index.add_holder("p2", &file("a.txt")));
        assert!(!index.add_holder("p2", &file("a.txt")), "a repeat is no news");
        let shown = |index: &FileIndex| index.page(None, 10).0.iter().map(|(_, e)| e.shown().to_string()).collect::<Vec<_>>();
        assert_eq!(shown(&index), ["a.txt"]);
        assert_eq!(index.named("b.txt").count(), 1);
        assert_eq!(index.remove_holder("p2", &Digest([1; 32])), Some("a.txt".into()));
        assert_eq!(shown(&index), ["b.txt"]);
        assert_eq!(index.named("a.txt").count(), 0);
        assert_eq!(index.remove_holder("p1", &Digest([1; 32])), Some("b.txt".into()));
        assert_eq!((index.len(), index.page(None, 10).0.len(), index.by_name.len()), (0, 0, 0));
    }
}
