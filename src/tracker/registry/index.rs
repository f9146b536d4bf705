//! The file index: every listed file by id, and by name, kept up to date on every change so
//! that no request scans the whole.
//!
//! Files sit in an ordered map by id, so the files whose id starts with a hex prefix are one
//! range of it ([`prefix_range`]). Two ordered sets of `(name, id)` pairs serve names, each
//! pair in exactly one: the name each file is listed under (the first of its holders' names
//! in order), which orders `Files` pages, and every other name some holder shares it under.
//! A lookup by name is a range of each; a page is a range of the first. Most files have one
//! name, so they cost one pair, not two (about 75 bytes a file). A lookup or a page costs
//! O(log n + what it returns).

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::sync::Arc;

use super::holders::{Holders, Removal};
use crate::protocol::{Digest, FileId, FileInfo, FolderSize};

/// A file and its holders, each with the name it shares the file under. Peer ids and names
/// are shared (`Arc<str>`): a name is kept once per file however many holders use it, and a
/// peer id once for the whole registry.
#[derive(Clone, Debug)]
pub(super) struct FileEntry {
    /// Size in bytes, the same for every holder.
    pub size: u64,
    /// Holder peer id → the name it shares the file under.
    pub holders: Holders,
}

impl FileEntry {
    /// The name the file is listed under: the first, in order, of its holders' names.
    pub fn shown(&self) -> &str {
        self.holders.shown()
    }

    /// The shown name as kept (no copy).
    fn shown_name(&self) -> Option<Arc<str>> {
        self.holders.known(self.shown()).cloned()
    }

    /// Whether some holder shares the file under `name`.
    pub fn has_name(&self, name: &str) -> bool {
        self.holders.known(name).is_some()
    }

    /// `peer` now shares the file under `name` (kept once per file: an earlier holder's copy
    /// if it uses the same); returns the name it used before, if it held the file already.
    fn insert(&mut self, peer: &Arc<str>, name: &str) -> Option<Arc<str>> {
        let name = self.holders.known(name).cloned().unwrap_or_else(|| Arc::from(name));
        self.holders.insert(peer, name)
    }
}

/// Files by id and by name.
#[derive(Default)]
pub(super) struct FileIndex {
    by_id: BTreeMap<FileId, FileEntry>,
    /// Every (name, file) pair some holder uses, but the file's shown name.
    by_name: BTreeSet<(Arc<str>, FileId)>,
    /// (shown name, file), one pair per file: the order of `Files` pages.
    listed: BTreeSet<(Arc<str>, FileId)>,
    /// What each folder listing holds (few files are folders, so not a field of every entry).
    folders: BTreeMap<FileId, FolderSize>,
}

impl FileIndex {
    /// The file with this id, if some live peer holds it.
    pub fn get(&self, id: &FileId) -> Option<&FileEntry> {
        self.by_id.get(id)
    }

    /// What the folder `id` holds, if it is a folder's listing.
    pub fn folder(&self, id: &FileId) -> Option<FolderSize> {
        self.folders.get(id).copied()
    }

    /// Files known, each once.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Records that `peer` holds `file` under its name; returns whether that is news (a new
    /// holder, or a new name for it).
    pub fn add_holder(&mut self, peer: &Arc<str>, file: &FileInfo) -> bool {
        if let Some(folder) = file.folder {
            self.folders.insert(file.id, folder);
        }
        let Some(entry) = self.by_id.get_mut(&file.id) else {
            let name: Arc<str> = Arc::from(&*file.name);
            self.by_id.insert(file.id, FileEntry { size: file.size, holders: Holders::new(peer.clone(), name.clone()) });
            self.listed.insert((name, file.id));
            return true;
        };
        if entry.holders.get(peer).is_some_and(|name| **name == *file.name) {
            return false;
        }
        let shown_before = entry.shown_name();
        let new_name = !entry.has_name(&file.name);
        let old = entry.insert(peer, &file.name);
        if new_name && let Some(name) = entry.holders.known(&file.name) {
            self.by_name.insert((name.clone(), file.id));
        }
        if let Some(old) = old {
            self.name_dropped(&file.id, &old);
        }
        self.relist(&file.id, shown_before);
        true
    }

    /// Stops listing `peer` as a holder of `id`; returns the name it shared it under. A file
    /// nobody holds any more is dropped.
    pub fn remove_holder(&mut self, peer: &str, id: &FileId) -> Option<Arc<str>> {
        let entry = self.by_id.get_mut(id)?;
        let shown_before = entry.shown_name();
        let name = match entry.holders.remove(peer)? {
            Removal::Name(name) => name,
            Removal::Only => {
                self.folders.remove(id);
                self.by_id.remove(id)?.holders.only_name()?
            }
        };
        self.name_dropped(id, &name);
        self.relist(id, shown_before);
        Some(name)
    }

    /// A holder of `id` stopped using `name`: the name leaves the name index if nobody else
    /// uses it for that file (as the shown name, [`Self::relist`] moves it).
    fn name_dropped(&mut self, id: &FileId, name: &Arc<str>) {
        if !self.by_id.get(id).is_some_and(|entry| entry.has_name(name)) {
            self.by_name.remove(&(name.clone(), *id));
        }
    }

    /// Moves `id` in the listing order if its shown name changed from `before`: the name it
    /// had goes back among its other names while some holder still uses it, and the new one
    /// leaves them. A file nobody holds any more leaves the listing.
    fn relist(&mut self, id: &FileId, before: Option<Arc<str>>) {
        let entry = self.by_id.get(id);
        let now = entry.and_then(FileEntry::shown_name);
        if before == now {
            return;
        }
        if let Some(before) = before {
            self.listed.remove(&(before.clone(), *id));
            if entry.is_some_and(|e| e.has_name(&before)) {
                self.by_name.insert((before, *id));
            }
        }
        if let Some(now) = now {
            self.by_name.remove(&(now.clone(), *id));
            self.listed.insert((now, *id));
        }
    }

    /// Ids of the files some holder shares under `name`, those listed under it first.
    pub fn named(&self, name: &str) -> impl Iterator<Item = FileId> + '_ {
        let name: Arc<str> = Arc::from(name);
        let range = (name.clone(), Digest([0; 32]))..=(name, Digest([0xff; 32]));
        let shown = self.listed.range(range.clone());
        shown.chain(self.by_name.range(range)).map(|(_, id)| *id)
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
            Some((name, id)) => Bound::Excluded((Arc::from(name), *id)),
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
        assert!(index.add_holder(&"p1".into(), &file("b.txt")));
        assert!(index.add_holder(&"p2".into(), &file("a.txt")));
        assert!(!index.add_holder(&"p2".into(), &file("a.txt")), "a repeat is no news");
        let shown = |index: &FileIndex| index.page(None, 10).0.iter().map(|(_, e)| e.shown().to_string()).collect::<Vec<_>>();
        assert_eq!(shown(&index), ["a.txt"]);
        assert_eq!((index.listed.len(), index.by_name.len()), (1, 1), "each name in one set");
        assert_eq!(index.named("b.txt").count(), 1);
        assert_eq!(index.named("a.txt").count(), 1);
        assert_eq!(index.remove_holder("p2", &Digest([1; 32])), Some("a.txt".into()));
        assert_eq!(shown(&index), ["b.txt"]);
        assert_eq!(index.named("a.txt").count(), 0);
        assert_eq!(index.remove_holder("p1", &Digest([1; 32])), Some("b.txt".into()));
        assert_eq!((index.len(), index.page(None, 10).0.len(), index.by_name.len()), (0, 0, 0));
    }

    #[test]
    fn a_file_with_many_holders_keeps_its_names_counted_past_the_small_vector() {
        let mut index = FileIndex::default();
        let id = Digest([2; 32]);
        let file = |name: &str| FileInfo { id, name: name.into(), size: 3, folder: None };
        for p in 0..20 {
            let name = if p % 2 == 0 { "even.txt" } else { "odd.txt" };
            assert!(index.add_holder(&format!("p{p:02}").into(), &file(name)));
        }
        assert!(matches!(index.get(&id).map(|e| &e.holders), Some(Holders::Many(_))));
        assert_eq!((index.named("even.txt").count(), index.named("odd.txt").count()), (1, 1));
        assert_eq!(index.page(None, 10).0[0].1.shown(), "even.txt");
        for p in (0..20).step_by(2) {
            assert_eq!(index.remove_holder(&format!("p{p:02}"), &id).as_deref(), Some("even.txt"));
        }
        assert_eq!(index.named("even.txt").count(), 0, "no holder uses the name any more");
        assert_eq!(index.page(None, 10).0[0].1.shown(), "odd.txt");
        assert!(index.add_holder(&"p01".into(), &file("even.txt")), "a holder renames its copy");
        assert_eq!((index.named("even.txt").count(), index.named("odd.txt").count()), (1, 1));
        for p in (1..20).step_by(2) {
            assert!(index.remove_holder(&format!("p{p:02}"), &id).is_some());
        }
        assert_eq!((index.len(), index.by_name.len(), index.listed.len()), (0, 0, 0));
    }
}
