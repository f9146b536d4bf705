//! The disk side of getting a folder: the hidden folder, the tree laid out in it one folder
//! at a time and never through a symlink, and what an earlier attempt already finished.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};

use super::Wanted;
use crate::content::folder::{Kind, Listing};
use crate::content::manifest::Manifest;
use crate::protocol::{FileId, FileInfo};

/// Makes the hidden folder (or finds the one an earlier attempt left); refuses anything there
/// that is not a real folder.
pub(super) fn make_staging(staging: &Path) -> Result<()> {
    if let Some(parent) = staging.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("cannot make {}", parent.display()))?;
    }
    match std::fs::symlink_metadata(staging) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => bail!("{} is in the way (not a folder); not touched", staging.display()),
        Err(_) => std::fs::create_dir(staging).with_context(|| format!("cannot make {}", staging.display())),
    }
}

/// Makes the tree's folders and empty files under `root`, each folder one component at a time
/// and never through a symlink; returns the files still to fetch (those an earlier attempt
/// finished are kept when they still hash to their id).
pub(super) fn lay_out(root: &Path, listing: &Listing) -> Result<Vec<Wanted>> {
    make_dir(root)?;
    let mut wanted = Vec::new();
    for entry in listing.entries() {
        let components: Vec<&str> = entry.path.split('/').collect();
        let (folders, name) = match entry.kind {
            Kind::EmptyFolder => (&components[..], None),
            Kind::File { .. } => (&components[..components.len() - 1], components.last().copied()),
        };
        let mut dir = root.to_path_buf();
        for folder in folders {
            dir.push(folder);
            make_dir(&dir)?;
        }
        let (Kind::File { size, id }, Some(name)) = (entry.kind, name) else { continue };
        let path = dir.join(name);
        if has_file(&path, &id) {
            continue;
        }
        if size == 0 {
            if id != FileId::from(blake3::hash(b"")) {
                bail!("the listing gives the empty file {} an id that is not the empty file's", entry.path);
            }
            std::fs::File::create_new(&path).with_context(|| format!("cannot create {}", path.display()))?;
            continue;
        }
        wanted.push(Wanted { path: entry.path.clone(), info: FileInfo { id, name: name.to_string(), size, folder: None } });
    }
    Ok(wanted)
}

/// Makes the folder `dir` if it is not there; refuses a symlink or a file in its place.
pub(super) fn make_dir(dir: &Path) -> Result<()> {
    match std::fs::symlink_metadata(dir) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => bail!("{} is in the way (not a folder); not followed", dir.display()),
        Err(_) => std::fs::create_dir(dir).with_context(|| format!("cannot make {}", dir.display())),
    }
}

/// Whether a regular file at `path` has the content `id` (never following a symlink).
pub(super) fn has_file(path: &Path, id: &FileId) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.is_file()) && Manifest::from_file(path).is_ok_and(|(have, _)| have == *id)
}

/// The folder `path` (relative, checked) goes in, under `root`.
pub(super) fn parent_in(root: &Path, path: &str) -> PathBuf {
    match path.rsplit_once('/') {
        Some((dir, _)) => root.join(dir),
        None => root.to_path_buf(),
    }
}

/// Whether the file system under `dir` folds case (a name written in lower case is found in
/// upper case).
pub(super) fn folds_case(dir: &Path) -> bool {
    let probe = dir.join(".p2pq-case-probe");
    let folded = std::fs::write(&probe, b"").is_ok() && std::fs::symlink_metadata(dir.join(".P2PQ-CASE-PROBE")).is_ok();
    let _ = std::fs::remove_file(&probe);
    folded
}
