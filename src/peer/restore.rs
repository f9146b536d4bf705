//! Restoring shares at start: what the last run's share list holds is served again in the
//! background, unchanged files at once from their saved manifests, changed ones after hashing
//! them again; files that are gone are dropped, with a notice (a few by name, then a count).

use std::sync::Arc;

use super::Peer;
use super::sharing::Reporter;
use crate::net::task;
use crate::protocol::FileInfo;
use crate::store::catalog::{Check, Entry};
use crate::store::shares::SharedFile;
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
        let (mut served, mut changed, mut dropped) = (Vec::new(), Vec::new(), 0usize);
        for entry in entries {
            let peer = self.clone();
            match tokio::task::spawn_blocking(move || peer.look_again(entry)).await {
                Ok(Again::Served(info)) => served.push(info),
                Ok(Again::Changed(entry)) => changed.push(entry),
                // One line each for a few; a deleted folder of thousands is one line in all.
                Ok(Again::Dropped(line)) if dropped < DROPPED_SHOWN => {
                    dropped += 1;
                    sharing.notify(line);
                }
                Ok(Again::Dropped(_)) => dropped += 1,
                Err(err) => tracing::warn!("restoring a share failed: {err}"),
            }
        }
        if dropped > DROPPED_SHOWN {
            sharing.notify(format!("{} more from the last run are gone or changed; no longer shared", dropped - DROPPED_SHOWN));
        }
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

    /// Looks at one file of the last run's list and serves it if unchanged (blocking).
    fn look_again(&self, entry: Entry) -> Again {
        let check = entry.check();
        let manifest = if check == Check::Unchanged { self.inner.sharing.catalog.manifest(&entry) } else { None };
        let Some(id) = entry.file_id() else { return self.drop_entry(&entry, "has a damaged entry in the share list") };
        match (check, manifest) {
            (Check::Gone, _) => self.drop_entry(&entry, "is gone since the last run"),
            (Check::Unchanged, Some(manifest)) => {
                let info = FileInfo { id, name: entry.name.clone(), size: entry.size, folder: entry.folder };
                match SharedFile::open(info.clone(), entry.path.clone(), Arc::new(manifest)) {
                    Ok(file) => {
                        self.inner.shares.insert(file.with_origin(entry.origin, true));
                        Again::Served(info)
                    }
                    Err(err) => self.drop_entry(&entry, &format!("cannot be opened ({err})")),
                }
            }
            _ => Again::Changed(entry),
        }
    }

    fn drop_entry(&self, entry: &Entry, why: &str) -> Again {
        let _ = self.inner.sharing.catalog.forget(&entry.id);
        Again::Dropped(format!("{} ({}) {why}; no longer shared", entry.name, entry.path.display()))
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

/// What became of one file of the last run's list.
enum Again {
    Served(FileInfo),
    Changed(Entry),
    Dropped(String),
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 { format!("1 {word}") } else { format!("{n} {word}s") }
}
