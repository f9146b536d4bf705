//! Restoring shares at start: what the last run's share list holds is served again in the
//! background, unchanged files at once from their saved manifests, changed ones after hashing
//! them again; files that are gone are dropped, with a notice (a few by name, then a count).

use std::sync::Arc;

use super::Peer;
use super::sharing::Reporter;
use crate::content::folder::Listing;
use crate::net::task;
use crate::protocol::{FileId, FileInfo};
use crate::store::catalog::{Check, Entry};
use crate::store::shares::SharedFile;
use std::collections::HashSet;
use tokio::task::JoinSet;

/// Files of the last run's list no longer there named one by one at start; the rest are
/// counted in one line.
const DROPPED_SHOWN: usize = 5;

impl Peer {
    /// Serves again, in the background, what the share list of the last run holds.
    pub(super) fn restore_shares(&self) {
        let (peer, shutdown) = (self.clone(), self.inner.shutdown.clone());
        let restoring = task::spawn(tracing::info_span!("restore shares", me = %self.inner.config.id), async move {
            tokio::select! {
                _ = shutdown.cancelled() => {}
                () = peer.restore() => {}
            }
        });
        self.inner.tasks.lock().unwrap_or_else(|p| p.into_inner()).push(restoring);
    }

    async fn restore(&self) {
        let sharing = &self.inner.sharing;
        if let Some(err) = &sharing.load_error {
            sharing.notify(format!("{err}; nothing is shared from the last run"));
        }
        let entries = sharing.catalog.entries();
        if entries.is_empty() {
            return;
        }
        let peer = self.clone();
        let looked = match tokio::task::spawn_blocking(move || peer.look_again_all(entries)).await {
            Ok(looked) => looked,
            Err(err) => return tracing::warn!("restoring the shares failed: {err}"),
        };
        let (mut served, mut changed, mut dropped, mut dropped_quietly) = (Vec::new(), Vec::new(), 0usize, 0usize);
        for again in looked {
            match again {
                Again::Served(info) => served.push(info),
                Again::Changed(entry) => changed.push(entry),
                // One line each for a few; a deleted folder of thousands is one line in all.
                Again::DroppedWithFolder => dropped_quietly += 1,
                Again::Dropped(line) if dropped < DROPPED_SHOWN => {
                    dropped += 1;
                    sharing.notify(line);
                }
                Again::Dropped(_) => dropped += 1,
                Again::FolderDropped(line) => sharing.notify(line),
            }
        }
        if dropped > DROPPED_SHOWN {
            sharing.notify(format!("{} more from the last run are gone or changed; no longer shared", dropped - DROPPED_SHOWN));
        }
        tracing::debug!("{dropped_quietly} files of folders no longer shared were dropped from the share list");
        let mut line = format!("sharing {} from the last run", plural(served.len(), "file"));
        if !changed.is_empty() {
            line.push_str(&format!("; hashing {} again (changed since)", plural(changed.len(), "file")));
        }
        sharing.notify(line);
        let mut hashing = JoinSet::new();
        for entry in changed {
            let peer = self.clone();
            hashing.spawn(async move { peer.hash_again(entry).await });
        }
        self.announce(served).await;
        while hashing.join_next().await.is_some() {}
    }

    /// Looks at every file of the last run's list, serves those unchanged and drops those
    /// gone from the list (written once) (blocking).
    fn look_again_all(&self, entries: Vec<Entry>) -> Vec<Again> {
        let mut gone = Vec::new();
        let mut looked: Vec<(Entry, Again)> = entries
            .into_iter()
            .map(|entry| {
                let again = self.look_again(&entry, &mut gone);
                (entry, again)
            })
            .collect();
        self.drop_incomplete_folders(&mut looked, &mut gone);
        let looked = looked.into_iter().map(|(_, again)| again).collect();
        let ids: Vec<&str> = gone.iter().map(String::as_str).collect();
        if let Err(err) = self.inner.sharing.catalog.forget_all(&ids) {
            tracing::warn!("files gone since the last run stay in the share list: {err:#}");
        }
        looked
    }

    /// Serves a folder again only if every file in it is, as it was: drops the others (adding
    /// them to `gone`), and counts, not names, their files that are gone (the folder's line
    /// says it).
    fn drop_incomplete_folders(&self, looked: &mut [(Entry, Again)], gone: &mut Vec<String>) {
        let mut in_dropped_folders = HashSet::new();
        for (entry, again) in looked.iter_mut().filter(|(entry, _)| entry.folder.is_some()) {
            let Again::Served(info) = &*again else { continue };
            if let Some((line, missing)) = self.folder_incomplete(entry) {
                self.inner.shares.remove(&info.id);
                gone.push(entry.id.clone());
                in_dropped_folders.extend(missing);
                *again = Again::FolderDropped(line);
            }
        }
        for (entry, again) in looked.iter_mut() {
            if matches!(again, Again::Dropped(_)) && entry.file_id().is_some_and(|id| in_dropped_folders.contains(&id)) {
                *again = Again::DroppedWithFolder;
            }
        }
    }

    /// Looks at one file of the last run's list and serves it if unchanged; adds its id to
    /// `gone` if it is to be dropped.
    fn look_again(&self, entry: &Entry, gone: &mut Vec<String>) -> Again {
        let check = entry.check();
        let manifest = if check == Check::Unchanged { self.inner.sharing.catalog.manifest(entry) } else { None };
        let Some(id) = entry.file_id() else { return drop_entry(entry, "has a damaged entry in the share list", gone) };
        match (check, manifest) {
            (Check::Gone, _) => drop_entry(entry, "is gone since the last run", gone),
            (Check::Unchanged, Some(manifest)) => {
                let info = FileInfo { id, name: entry.name.clone(), size: entry.size, folder: entry.folder };
                match SharedFile::open(info.clone(), entry.path.clone(), Arc::new(manifest)) {
                    Ok(file) => {
                        self.inner.shares.insert(file.with_origin(entry.origin, true));
                        Again::Served(info)
                    }
                    Err(err) => drop_entry(entry, &format!("cannot be opened ({err})"), gone),
                }
            }
            _ => Again::Changed(entry.clone()),
        }
    }

    /// Hashes a file that changed since the last run and serves it under its new id.
    async fn hash_again(&self, entry: Entry) {
        let hashed = self.hash(entry.path.clone(), &entry.name, Reporter::none(), &self.inner.shutdown).await;
        let _ = self.inner.sharing.catalog.forget(&entry.id);
        let line = match hashed {
            Err(_) if self.inner.shutdown.is_cancelled() => return,
            Err(err) => format!(
                "{} ({}) changed since the last run and cannot be read: {err:#}; no longer shared",
                entry.name,
                entry.path.display()
            ),
            Ok(manifest) => {
                // A listing that changed is no longer that folder's: shared again as a file.
                let info = FileInfo { id: manifest.root(), name: entry.name.clone(), size: manifest.size, folder: None };
                let short = info.id.short();
                match self.serve_as(info.clone(), entry.path.clone(), Arc::new(manifest), entry.origin, true).await {
                    Ok(pending) => {
                        self.inner.sharing.notify(format!("{} changed since the last run; hashed again, now id {short}", entry.name));
                        if pending.is_some() {
                            self.announce(vec![info]).await;
                        }
                        return;
                    }
                    Err(err) => format!("{} changed since the last run and cannot be served: {err:#}", entry.name),
                }
            }
        };
        self.inner.sharing.notify(line);
    }

    /// Tells the tracker of files served again, once registered: a registration whose file
    /// list was made just before they were served, and whose connection came up just after
    /// their announcement failed, does not list them.
    async fn announce(&self, files: Vec<FileInfo>) {
        if files.is_empty() {
            return;
        }
        self.inner.link.wait_up().await;
        if let Some(err) = self.announce_many(files).await {
            tracing::debug!("files restored; the tracker hears of them at the next registration: {err}");
        }
    }
}

impl Peer {
    /// Why the folder whose listing `entry` is cannot be served again, if it cannot (as a line
    /// to show, with the ids of its files not served): a file of it is gone or changed since
    /// the last run (and served under another id, if at all).
    fn folder_incomplete(&self, entry: &Entry) -> Option<(String, HashSet<FileId>)> {
        let listing = match std::fs::read(&entry.path).map(|bytes| Listing::parse(&bytes)) {
            Ok(Ok(listing)) => listing,
            Ok(Err(err)) => {
                return Some((format!("folder {}: its saved listing is damaged ({err}); no longer shared", entry.name), HashSet::new()));
            }
            Err(err) => {
                return Some((
                    format!("folder {}: its saved listing cannot be read ({err}); no longer shared", entry.name),
                    HashSet::new(),
                ));
            }
        };
        let missing: HashSet<FileId> = listing.files().map(|(_, _, id)| id).filter(|id| self.inner.shares.complete(id).is_none()).collect();
        (!missing.is_empty()).then(|| {
            let line = format!(
                "folder {}: {} of its {} files are gone or changed since the last run; no longer shared as a folder (share it again)",
                entry.name,
                missing.len(),
                listing.file_count()
            );
            (line, missing)
        })
    }
}

/// `entry`, to be dropped from the list because of `why`.
fn drop_entry(entry: &Entry, why: &str, gone: &mut Vec<String>) -> Again {
    gone.push(entry.id.clone());
    Again::Dropped(format!("{} ({}) {why}; no longer shared", entry.name, entry.path.display()))
}

/// What became of one file of the last run's list.
enum Again {
    Served(FileInfo),
    Changed(Entry),
    Dropped(String),
    /// A folder some of whose files are gone or changed: always said.
    FolderDropped(String),
    /// A file gone with the folder it was in (counted, not said).
    DroppedWithFolder,
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 { format!("1 {word}") } else { format!("{n} {word}s") }
}
