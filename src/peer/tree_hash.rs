//! Hashing a folder's files for `share DIR`: one worker per free hasher (at most one per
//! core), each taking the next file from one queue and reading it through a buffer it keeps,
//! so a tree of thousands of small files costs little more than reading its bytes (no task,
//! thread hop or allocation per file). The folder is one `status` line and one bar.
//!
//! Each file is opened without following a symlink, and its size and modification time are
//! read from the open file before and after hashing: a file that differs from what the walk
//! found changed while it was shared, and is left out.

use std::fs::File;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Result, bail};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::Peer;
use super::events::{Hashing, HashingEntry};
use super::sharing::{REPORT_EVERY, Reporter};
use crate::content::manifest::Manifest;
use crate::store::tree::{Found, Stamp, Tree};

/// A file of the folder, hashed.
pub(super) struct Hashed {
    /// Where it is, in the folder and on disk.
    pub(super) found: Found,
    /// Its chunk hashes.
    pub(super) manifest: Manifest,
}

/// The files of a folder that hashed, and what was left out with why.
pub(super) type TreeHashed = (Vec<Hashed>, Vec<(String, String)>);

/// The files still to hash, taken in order by the workers.
struct Queue {
    files: Vec<Found>,
    next: AtomicUsize,
    /// Files hashed (or left out) so far, by every worker.
    done: AtomicUsize,
}

impl Queue {
    fn take(&self) -> Option<&Found> {
        self.files.get(self.next.fetch_add(1, Ordering::Relaxed))
    }

    /// How far the folder is, as an event.
    fn progress(&self) -> Hashing {
        Hashing::Files { done: self.done.load(Ordering::Relaxed) as u64, total: self.files.len() as u64 }
    }
}

impl Peer {
    /// Hashes every file of `tree` (shared as `label`); returns those that hashed and did not
    /// change meanwhile, and what was left out. Fails only when cancelled.
    pub(super) async fn hash_tree(&self, label: &str, tree: &Tree, report: &Reporter, cancel: &CancellationToken) -> Result<TreeHashed> {
        let entry = Arc::new(self.inner.sharing.hashings.add(label, tree.bytes()));
        let permits = self.hashers(tree.files.len(), label, tree.bytes(), report, cancel).await?;
        entry.started();
        let queue = Arc::new(Queue { files: tree.files.clone(), next: AtomicUsize::new(0), done: AtomicUsize::new(0) });
        report.send(queue.progress());
        let stop = cancel.child_token();
        let _stop_if_dropped = stop.clone().drop_guard();
        let mut workers = JoinSet::new();
        for permit in permits {
            let (queue, report, entry, stop) = (queue.clone(), report.clone(), entry.clone(), stop.clone());
            workers.spawn_blocking(move || {
                let _permit = permit;
                work(&queue, &report, &entry, &stop)
            });
        }
        let (mut hashed, mut skipped) = (Vec::new(), Vec::new());
        while let Some(done) = workers.join_next().await {
            for (found, result) in done? {
                match result {
                    Ok(manifest) => hashed.push(Hashed { found, manifest }),
                    Err(why) => skipped.push((found.path, why)),
                }
            }
        }
        if cancel.is_cancelled() {
            bail!("share {label} cancelled");
        }
        // Last, after every worker: the count ends at the total, whichever worker said last.
        report.send(queue.progress());
        Ok((hashed, skipped))
    }
}

/// One worker: hashes files from `queue` until it is empty or `stop` fires.
fn work(queue: &Queue, report: &Reporter, entry: &HashingEntry, stop: &CancellationToken) -> Vec<(Found, Result<Manifest, String>)> {
    let (mut buf, mut done, mut unsent) = (Vec::new(), Vec::new(), 0);
    while let Some(found) = queue.take() {
        if stop.is_cancelled() {
            break;
        }
        let result = hash_one(found, &mut buf, &mut |bytes| {
            unsent += bytes;
            if unsent >= REPORT_EVERY {
                entry.hashed(unsent);
                report.send(Hashing::Hashed { bytes: std::mem::take(&mut unsent) });
                report.send(queue.progress());
            }
            !stop.is_cancelled()
        });
        queue.done.fetch_add(1, Ordering::Relaxed);
        done.push((found.clone(), result));
    }
    if unsent > 0 {
        entry.hashed(unsent);
        report.send(Hashing::Hashed { bytes: unsent });
    }
    report.send(queue.progress());
    done
}

/// Hashes one file, if it is still what the walk found (before and after).
fn hash_one(found: &Found, buf: &mut Vec<u8>, watch: &mut dyn FnMut(u64) -> bool) -> Result<Manifest, String> {
    let mut file = open_no_follow(&found.real).map_err(|e| format!("cannot read it: {e}"))?;
    let unchanged = |file: &File| stamp(file).is_ok_and(|now| now == found.stamp);
    if !unchanged(&file) {
        return Err("changed while it was hashed".into());
    }
    let (_, manifest) = Manifest::from_open(&mut file, found.stamp.size, buf, watch).map_err(|e| format!("cannot read it: {e}"))?;
    if !unchanged(&file) {
        return Err("changed while it was hashed".into());
    }
    Ok(manifest)
}

/// Opens `path` to read, refusing a symlink put in its place since the walk.
fn open_no_follow(path: &std::path::Path) -> std::io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, libc::O_NOFOLLOW);
    options.open(path)
}

/// Size and modification time of an open file.
fn stamp(file: &File) -> std::io::Result<Stamp> {
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    Ok(Stamp { size: meta.len(), modified: meta.modified().ok() })
}
