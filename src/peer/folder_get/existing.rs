//! Getting a folder into one that is already there (a second `--only`, or a folder got before
//! and partly deleted): what is there and identical is kept and counted as had, what is
//! missing is fetched into the hidden folder as usual and then moved in file by file; anything
//! there that differs, or is in the way, stops the get before a byte is fetched. Nothing is
//! ever overwritten, and no symlink on the way is followed.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context as _, Result, bail};

use super::Fetched;
use super::disk::make_dir;
use crate::content::folder::{Kind, Listing};
use crate::content::manifest::Manifest;
use crate::protocol::FileInfo;

/// Whether `dest` is a folder already there; refuses anything else in its place.
pub(super) fn is_there(dest: &Path) -> Result<bool> {
    match std::fs::symlink_metadata(dest) {
        Ok(meta) if meta.is_dir() => Ok(true),
        Ok(_) => bail!("{} already exists and is not a folder; not overwritten", dest.display()),
        Err(_) => Ok(false),
    }
}

/// Compares `listing` with the folder `dest`: the part still to fetch (`None` if every path is
/// there), and the files there already, identical (blocking: hashes them).
pub(super) fn compare(dest: &Path, listing: &Listing) -> Result<(Option<Listing>, Vec<Fetched>)> {
    let (mut todo, mut present) = (Vec::new(), Vec::new());
    for entry in listing.entries() {
        let path = dest.join(&entry.path);
        let Some(meta) = real_path(dest, &entry.path)? else {
            todo.push(entry.clone());
            continue;
        };
        match entry.kind {
            Kind::EmptyFolder if meta.is_dir() => {}
            Kind::File { id, size } if meta.is_file() => {
                let (have, manifest) = Manifest::from_file(&path).with_context(|| format!("cannot read {}", path.display()))?;
                if have != id {
                    bail!("{} is there already and differs from the folder's; not overwritten", path.display());
                }
                let name = entry.path.rsplit('/').next().unwrap_or(&entry.path).to_string();
                let info = FileInfo { id, name, size, folder: None };
                // Counted as resumed: had before this get, not moved by it.
                let resumed = manifest.count();
                let manifest = Arc::new(manifest);
                present.push(Fetched { path: entry.path.clone(), info, manifest, from: Vec::new(), resumed, resumed_bytes: size });
            }
            _ => bail!("{} is in the way (not what the folder has there); not overwritten", path.display()),
        }
    }
    let todo = if todo.is_empty() { None } else { Some(Listing::new(todo)?) };
    Ok((todo, present))
}

/// What is at `rel` under `dest` (`None` if nothing), refusing a symlink or a file where a
/// folder on the way should be.
fn real_path(dest: &Path, rel: &str) -> Result<Option<std::fs::Metadata>> {
    let mut at = dest.to_path_buf();
    let components: Vec<&str> = rel.split('/').collect();
    for (i, component) in components.iter().enumerate() {
        at.push(component);
        let meta = match std::fs::symlink_metadata(&at) {
            Ok(meta) => meta,
            Err(_) => return Ok(None),
        };
        if meta.file_type().is_symlink() {
            bail!("{} is a symlink; not followed", at.display());
        }
        if i + 1 == components.len() {
            return Ok(Some(meta));
        }
        if !meta.is_dir() {
            bail!("{} is in the way (not a folder); not overwritten", at.display());
        }
    }
    Ok(None)
}

/// Moves what was fetched into `root` (the paths of `todo`) into the folder `dest`, each
/// folder on the way made one component at a time; refuses a path taken meanwhile.
pub(super) fn merge(root: &Path, dest: &Path, todo: &Listing) -> Result<()> {
    for entry in todo.entries() {
        let components: Vec<&str> = entry.path.split('/').collect();
        let mut dir = dest.to_path_buf();
        let folders = if entry.kind == Kind::EmptyFolder { &components[..] } else { &components[..components.len() - 1] };
        for folder in folders {
            dir.push(folder);
            make_dir(&dir)?;
        }
        if entry.kind == Kind::EmptyFolder {
            continue;
        }
        let target = dest.join(&entry.path);
        if std::fs::symlink_metadata(&target).is_ok() {
            bail!("{} appeared while the folder downloaded; not overwritten", target.display());
        }
        std::fs::rename(root.join(&entry.path), &target).with_context(|| format!("cannot move {} into place", target.display()))?;
    }
    let _ = std::fs::remove_dir_all(root);
    Ok(())
}
