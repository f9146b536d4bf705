//! Which listings are allowed: checked before anything of a folder is created on disk.
//!
//! Each path is relative UTF-8, made of components that are valid file names on every system
//! p2pq runs on ([`check_name`]: not empty, `.` or `..`, no `/` or `\`, no control or bidi
//! character, at most 255 bytes) and not a reserved Windows device name (`CON`, `NUL`, `COM1`,
//! …, with or without an extension); a whole path is at most [`MAX_PATH_BYTES`]. No path is
//! both a file and a folder, a folder listed as empty holds nothing, and the totals stay under
//! the limits in [`super`]. Where the target file system folds case, no two paths may differ
//! only in case ([`check_case`]).

use std::collections::{HashMap, HashSet};

use super::{Entry, Kind, MAX_ENTRIES, MAX_TOTAL_BYTES};
use crate::content::names::{check_name, is_windows_device, printable};

/// Longest path in a listing, in bytes.
pub const MAX_PATH_BYTES: usize = 4096;

/// Why a listing is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ListingError {
    /// Over [`super::MAX_LISTING_BYTES`].
    #[error("the folder listing is {0} bytes, over the limit")]
    TooLarge(usize),
    /// Not UTF-8.
    #[error("the folder listing is not UTF-8 (from byte {0})")]
    NotUtf8(usize),
    /// Does not start with [`super::HEADER`].
    #[error("not a p2pq folder listing (no \"{}\" line)", super::HEADER)]
    Header,
    /// A line that is not an entry.
    #[error("line {line} of the folder listing {reason}")]
    Line {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// Over [`MAX_ENTRIES`].
    #[error("the folder lists more than {MAX_ENTRIES} entries")]
    TooManyEntries,
    /// Over [`MAX_TOTAL_BYTES`].
    #[error("the folder's files add up to more than {MAX_TOTAL_BYTES} bytes")]
    TooBig,
    /// The same path twice.
    #[error("the folder lists {} twice", show(.0))]
    Duplicate(String),
    /// Not in canonical order.
    #[error("the folder listing is not in order at {}", show(.0))]
    Unsorted(String),
    /// A path that is not allowed.
    #[error("the folder holds a path that is not allowed, {}: {reason}", show(.path))]
    Path {
        /// The path.
        path: String,
        /// Why.
        reason: String,
    },
    /// A file that is also a folder.
    #[error("the folder lists {} as a file and as a folder", show(.0))]
    FileAndFolder(String),
    /// An empty folder with something in it.
    #[error("the folder lists {} as empty, and things in it", show(.0))]
    NotEmpty(String),
    /// Two paths that differ only in case, on a file system that folds case.
    #[error("the folder holds {} and {}, which are one name on this file system", show(.0), show(.1))]
    CaseClash(String, String),
}

/// A path in quotes, safe to print.
fn show(path: &str) -> String {
    format!("\"{}\"", printable(&path.escape_debug().to_string()))
}

/// Checks every rule that holds on every file system (see the module doc).
pub(super) fn check(entries: &[Entry]) -> Result<(), ListingError> {
    if entries.len() > MAX_ENTRIES {
        return Err(ListingError::TooManyEntries);
    }
    let mut total = 0u64;
    for entry in entries {
        check_path(&entry.path).map_err(|reason| ListingError::Path { path: entry.path.clone(), reason })?;
        if let Kind::File { size, .. } = entry.kind {
            total = total.checked_add(size).filter(|&t| t <= MAX_TOTAL_BYTES).ok_or(ListingError::TooBig)?;
        }
    }
    check_nesting(entries)
}

/// Checks that entries are in canonical order, each path once.
pub(super) fn check_order(entries: &[Entry]) -> Result<(), ListingError> {
    for pair in entries.windows(2) {
        match pair[0].path.as_bytes().cmp(pair[1].path.as_bytes()) {
            std::cmp::Ordering::Less => {}
            std::cmp::Ordering::Equal => return Err(ListingError::Duplicate(pair[1].path.clone())),
            std::cmp::Ordering::Greater => return Err(ListingError::Unsorted(pair[1].path.clone())),
        }
    }
    Ok(())
}

/// Why `path` cannot be a relative path in a folder, if it cannot.
pub fn check_path(path: &str) -> Result<(), String> {
    if path.len() > MAX_PATH_BYTES {
        return Err(format!("{} bytes long, over the {MAX_PATH_BYTES}-byte limit", path.len()));
    }
    if path.starts_with('/') {
        return Err("an absolute path".into());
    }
    for component in path.split('/') {
        check_name(component)?;
        if is_windows_device(component) {
            return Err(format!("{} is a device name on Windows", show(component)));
        }
    }
    Ok(())
}

/// No file is also a folder, and no folder listed as empty holds anything.
fn check_nesting(entries: &[Entry]) -> Result<(), ListingError> {
    let files: HashSet<&str> = entries.iter().filter(|e| matches!(e.kind, Kind::File { .. })).map(|e| e.path.as_str()).collect();
    let empty: HashSet<&str> = entries.iter().filter(|e| e.kind == Kind::EmptyFolder).map(|e| e.path.as_str()).collect();
    for entry in entries {
        for folder in ancestors(&entry.path) {
            if files.contains(folder) {
                return Err(ListingError::FileAndFolder(folder.to_string()));
            }
            if empty.contains(folder) {
                return Err(ListingError::NotEmpty(folder.to_string()));
            }
        }
    }
    Ok(())
}

/// The folders a path is in: `a/b/c` is in `a` and `a/b`.
fn ancestors(path: &str) -> impl Iterator<Item = &str> {
    path.match_indices('/').map(move |(at, _)| &path[..at])
}

/// On a file system that folds case: no two paths (folders included) that differ only in case.
pub fn check_case(entries: &[Entry]) -> Result<(), ListingError> {
    let mut seen: HashMap<String, &str> = HashMap::new();
    for entry in entries {
        for path in ancestors(&entry.path).chain([entry.path.as_str()]) {
            let folded = path.to_lowercase();
            match seen.get(&folded) {
                Some(&other) if other != path => return Err(ListingError::CaseClash(other.to_string(), path.to_string())),
                Some(_) => {}
                None => {
                    seen.insert(folded, path);
                }
            }
        }
    }
    Ok(())
}
