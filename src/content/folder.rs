//! Folder listings: one id for a tree of files.
//!
//! A folder is shared as its *listing*, a short UTF-8 text that names every file with its
//! size and file id, and every empty folder. The folder's id is the BLAKE3 hash of the listing,
//! so `b3sum` of a saved listing prints it, and the same tree gives the same id on any machine.
//! Each file keeps its own id (`b3sum FILE`), and its chunks are fetched as those of any file.
//!
//! The encoding, exactly (anything else is refused, so a tree has one listing and one id):
//! ```text
//! p2pq folder v1\n
//! f <size> <id> <path>\n     a file: size in decimal, no leading zeros; id as 64 lowercase hex
//! d <path>\n                 an empty folder
//! ```
//! Paths are relative, with `/` between components; lines are sorted by the bytes of their
//! path, and no path appears twice. [`rules`] says which paths are allowed.

use std::collections::BTreeMap;

use crate::content::id::{Digest, FileId};

pub mod only;
pub mod rules;

pub use rules::ListingError;

/// First line of every listing.
pub const HEADER: &str = "p2pq folder v1";
/// Most entries (files and empty folders) a listing may name.
pub const MAX_ENTRIES: usize = 200_000;
/// Longest listing, in bytes (200,000 entries of a few long paths fit).
pub const MAX_LISTING_BYTES: usize = 64 << 20;
/// Largest total size of the files of one folder (16 TiB).
pub const MAX_TOTAL_BYTES: u64 = 16 << 40;

/// What a path in a listing is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A regular file of `size` bytes whose content hashes to `id`.
    File {
        /// Its size in bytes.
        size: u64,
        /// BLAKE3 of its content (`b3sum`).
        id: FileId,
    },
    /// A folder with nothing in it.
    EmptyFolder,
}

/// One entry of a listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Relative path, components joined by `/`.
    pub path: String,
    /// File or empty folder.
    pub kind: Kind,
}

/// A checked listing: entries in canonical order, every path allowed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listing {
    entries: Vec<Entry>,
}

impl Listing {
    /// A listing of `entries` (any order), checked by the same rules as one received.
    pub fn new(entries: Vec<Entry>) -> Result<Listing, ListingError> {
        let mut by_path = BTreeMap::new();
        for entry in entries {
            let path = entry.path.clone();
            if by_path.insert(path.clone(), entry).is_some() {
                return Err(ListingError::Duplicate(path));
            }
        }
        let listing = Listing { entries: by_path.into_values().collect() };
        rules::check(&listing.entries)?;
        Ok(listing)
    }

    /// Reads a listing received from a holder (or a file), refusing anything not canonical.
    pub fn parse(bytes: &[u8]) -> Result<Listing, ListingError> {
        if bytes.len() > MAX_LISTING_BYTES {
            return Err(ListingError::TooLarge(bytes.len()));
        }
        let text = std::str::from_utf8(bytes).map_err(|e| ListingError::NotUtf8(e.valid_up_to()))?;
        let body = text.strip_prefix(HEADER).and_then(|rest| rest.strip_prefix('\n')).ok_or(ListingError::Header)?;
        if !body.is_empty() && !body.ends_with('\n') {
            return Err(ListingError::Line { line: body.lines().count() + 1, reason: "does not end with a newline".into() });
        }
        let mut entries = Vec::new();
        for (at, line) in body.split_terminator('\n').enumerate() {
            if entries.len() == MAX_ENTRIES {
                return Err(ListingError::TooManyEntries);
            }
            entries.push(parse_line(line).map_err(|reason| ListingError::Line { line: at + 2, reason })?);
        }
        rules::check_order(&entries)?;
        rules::check(&entries)?;
        Ok(Listing { entries })
    }

    /// The canonical bytes: what is hashed for the id and sent to downloaders.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = format!("{HEADER}\n");
        for entry in &self.entries {
            match entry.kind {
                Kind::File { size, id } => out.push_str(&format!("f {size} {} {}\n", id.to_hex(), entry.path)),
                Kind::EmptyFolder => out.push_str(&format!("d {}\n", entry.path)),
            }
        }
        out.into_bytes()
    }

    /// The folder's id: BLAKE3 of [`Listing::encode`].
    pub fn id(&self) -> FileId {
        Digest::from(blake3::hash(&self.encode()))
    }

    /// Checks that no two paths differ only in case (for a target file system that folds case).
    pub fn check_case(&self) -> Result<(), ListingError> {
        rules::check_case(&self.entries)
    }

    /// The part of the folder under `sub` (a folder's path in it), its paths relative to
    /// `sub`; `None` if nothing is under it. A part is a folder of its own, with its own id.
    pub fn part(&self, sub: &str) -> Option<Listing> {
        let prefix = format!("{}/", sub.trim_end_matches('/'));
        let entries: Vec<Entry> = self
            .entries
            .iter()
            .filter_map(|e| e.path.strip_prefix(&prefix).map(|rest| Entry { path: rest.to_string(), kind: e.kind }))
            .collect();
        (!entries.is_empty()).then_some(Listing { entries })
    }

    /// The files and empty folders whose paths `keep` says to keep, at the same paths; `None`
    /// if that is nothing.
    pub fn keep(&self, keep: impl Fn(&str) -> bool) -> Option<Listing> {
        let entries: Vec<Entry> = self.entries.iter().filter(|e| keep(&e.path)).cloned().collect();
        (!entries.is_empty()).then_some(Listing { entries })
    }

    /// The file at `path`, if the listing has one there.
    pub fn file(&self, path: &str) -> Option<(u64, FileId)> {
        self.files().find(|(p, _, _)| *p == path).map(|(_, size, id)| (size, id))
    }

    /// The entries, in canonical order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The files: path, size and id.
    pub fn files(&self) -> impl Iterator<Item = (&str, u64, FileId)> {
        self.entries.iter().filter_map(|e| match e.kind {
            Kind::File { size, id } => Some((e.path.as_str(), size, id)),
            Kind::EmptyFolder => None,
        })
    }

    /// How many files the folder holds.
    pub fn file_count(&self) -> usize {
        self.files().count()
    }

    /// The total size of its files.
    pub fn total_size(&self) -> u64 {
        self.files().map(|(_, size, _)| size).sum()
    }
}

/// One line of a listing, as an entry (the path not yet checked).
fn parse_line(line: &str) -> Result<Entry, String> {
    if let Some(path) = line.strip_prefix("d ") {
        return Ok(Entry { path: path.to_string(), kind: Kind::EmptyFolder });
    }
    let rest = line.strip_prefix("f ").ok_or("is neither a file (f) nor an empty folder (d)")?;
    let (size, rest) = rest.split_once(' ').ok_or("has no id")?;
    let (id, path) = rest.split_once(' ').ok_or("has no path")?;
    Ok(Entry { path: path.to_string(), kind: Kind::File { size: parse_size(size)?, id: parse_id(id)? } })
}

/// A size in canonical decimal: digits only, no leading zero (but `0`).
fn parse_size(text: &str) -> Result<u64, String> {
    let canonical = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) && (text == "0" || !text.starts_with('0'));
    if !canonical {
        return Err(format!("has a size that is not a plain decimal number: {:?}", crate::content::names::printable(text)));
    }
    text.parse().map_err(|_| format!("has a size too large: {text}"))
}

/// A file id as 64 lowercase hex digits.
fn parse_id(text: &str) -> Result<FileId, String> {
    let canonical = text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if !canonical {
        return Err("has an id that is not 64 lowercase hex digits".into());
    }
    blake3::Hash::from_hex(text).map(Digest::from).map_err(|e| format!("has a bad id: {e}"))
}

#[cfg(test)]
mod tests;
