//! Walking a folder to share it: its regular files and empty folders, nothing followed.
//!
//! The walk never follows a symlink (it is reported and skipped, like sockets and devices),
//! leaves out p2pq's own files (a download's hidden `.p2pq-partial` folder silently, the
//! leftovers of one with a word) and every name that could not be a path in a listing on another
//! machine (see [`crate::content::folder::rules`]), saying which and why.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::content::folder::{MAX_ENTRIES, rules};
use crate::store::partial::PARTIAL_DIR;

/// A file found in the tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    /// Path relative to the folder, `/` between components.
    pub path: String,
    /// Where it is on disk.
    pub real: PathBuf,
    /// Its size and modification time when found: a file that differs after hashing changed
    /// while it was read.
    pub stamp: Stamp,
}

/// Size and modification time of a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    /// Size in bytes.
    pub size: u64,
    /// Last modification, if the system keeps it.
    pub modified: Option<SystemTime>,
}

impl Stamp {
    /// The stamp of the file at `path` now (never following a symlink).
    pub fn of(path: &Path) -> std::io::Result<Stamp> {
        let meta = fs::symlink_metadata(path)?;
        Ok(Stamp { size: meta.len(), modified: meta.modified().ok() })
    }
}

/// What a walk found.
#[derive(Debug, Default)]
pub struct Tree {
    /// Regular files, in no particular order.
    pub files: Vec<Found>,
    /// Folders with nothing shareable in them.
    pub empty_folders: Vec<String>,
    /// What was left out, with why (paths relative to the folder).
    pub skipped: Vec<(String, String)>,
}

impl Tree {
    /// Bytes in all its files.
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.stamp.size).sum()
    }
}

/// Why a walk stopped.
#[derive(Debug, thiserror::Error)]
pub enum WalkError {
    /// More entries than a listing may hold.
    #[error("the folder holds more than {MAX_ENTRIES} files and folders")]
    TooMany,
    /// The folder itself could not be read.
    #[error("cannot read {0}: {1}")]
    Io(String, std::io::Error),
}

/// Walks the folder at `root` (depth first, iteratively: a deep tree cannot overflow a stack).
pub fn walk(root: &Path) -> Result<Tree, WalkError> {
    let mut tree = Tree::default();
    let mut pending = vec![(root.to_path_buf(), String::new())];
    let mut entries = 0usize;
    while let Some((dir, prefix)) = pending.pop() {
        let listed = match fs::read_dir(&dir) {
            Ok(listed) => listed,
            Err(err) if prefix.is_empty() => return Err(WalkError::Io(dir.display().to_string(), err)),
            Err(err) => {
                tree.skipped.push((prefix.trim_end_matches('/').to_string(), format!("cannot be read: {err}")));
                continue;
            }
        };
        let mut holds = false;
        for entry in listed.flatten() {
            let Some(path) = visit(&mut tree, &prefix, &entry, &mut pending) else { continue };
            holds |= path;
            entries += 1;
            if entries > MAX_ENTRIES {
                return Err(WalkError::TooMany);
            }
        }
        if !holds && !prefix.is_empty() {
            tree.empty_folders.push(prefix.trim_end_matches('/').to_string());
        }
    }
    // A folder that held only skipped things is listed as empty: nothing in it is shared.
    Ok(tree)
}

/// Looks at one entry of a folder: a file is kept, a folder is walked later, anything else is
/// skipped with its reason. Returns whether the entry counts as content of its folder (`None`:
/// left out).
fn visit(tree: &mut Tree, prefix: &str, entry: &fs::DirEntry, pending: &mut Vec<(PathBuf, String)>) -> Option<bool> {
    let Some(name) = entry.file_name().to_str().map(str::to_string) else {
        tree.skipped.push((format!("{prefix}{}", entry.file_name().to_string_lossy()), "its name is not UTF-8".into()));
        return None;
    };
    if name == PARTIAL_DIR {
        return None;
    }
    let path = format!("{prefix}{name}");
    if let Err(reason) = rules::check_path(&path) {
        tree.skipped.push((path, reason));
        return None;
    }
    if is_leftover(&name) {
        tree.skipped.push((path, "left by an unfinished download".into()));
        return None;
    }
    let skip = |tree: &mut Tree, reason: &str| tree.skipped.push((path.clone(), reason.to_string()));
    match entry.file_type() {
        Ok(kind) if kind.is_symlink() => skip(tree, "a symlink (not followed)"),
        Ok(kind) if kind.is_dir() => {
            pending.push((entry.path(), format!("{path}/")));
            return Some(true);
        }
        Ok(kind) if kind.is_file() => match Stamp::of(&entry.path()) {
            Ok(stamp) => {
                tree.files.push(Found { path, real: entry.path(), stamp });
                return Some(true);
            }
            Err(err) => skip(tree, &format!("cannot be read: {err}")),
        },
        Ok(_) => skip(tree, "not a regular file"),
        Err(err) => skip(tree, &format!("cannot be read: {err}")),
    }
    None
}

/// What an unfinished download leaves beside its data (see [`crate::store::partial`]).
fn is_leftover(name: &str) -> bool {
    [".part", ".bits", ".bits.tmp"].iter().any(|end| name.ends_with(end))
}

#[cfg(test)]
mod tests;
