//! Sharing: hashing files for `share` (cancellable, reported through [`Hashing`] events, as
//! many at once as there are cores), `unshare`, and the share list kept across runs.
//!
//! Every file served is recorded in the peer's [`Catalog`] (state folder), whether `share`
//! named it or a download brought it. At start, [`Peer::restore_shares`] serves again in the
//! background what the list holds: unchanged files at once from their saved manifests, changed
//! ones after hashing them again; files that are gone are dropped. What it did reaches a person
//! as notices (one line per changed or dropped file, one summary line).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, bail};
use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::{Semaphore, broadcast};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::events::Hashing;
use super::{Peer, Shared};
use crate::content::manifest::Manifest;
use crate::net::task;
use crate::protocol::{FileInfo, TrackerRequest};
use crate::store;
use crate::store::catalog::{Catalog, Check, Entry, Origin};
use crate::store::shares::SharedFile;

/// Bytes hashed between two [`Hashing::Hashed`] events: often enough for a smooth bar, rare
/// enough that a fast disk does not flood the channel.
const REPORT_EVERY: u64 = 4 << 20;
/// Files of the last run's list no longer there named one by one at start; the rest are
/// counted in one line.
const DROPPED_SHOWN: usize = 5;
/// Notices kept for a slow listener before the oldest are dropped; a restart with many changed
/// files says one line each before the prompt may be listening.
const NOTICES: usize = 1024;

/// A file no longer shared.
pub struct Unshared {
    /// What was withdrawn.
    pub info: FileInfo,
    /// Why the tracker has not heard of it yet, if it has not.
    pub pending: Option<String>,
}

/// The peer's sharing state: its share list, its hashers, its notices.
pub(super) struct Sharing {
    pub(super) catalog: Arc<Catalog>,
    /// One permit per file hashing at once.
    hashers: Arc<Semaphore>,
    /// The files hashing or waiting to, for `status`.
    hashings: super::events::Hashings,
    notices: broadcast::Sender<String>,
    /// The first listener, made at start so nothing said before the front end listens is lost.
    first: Mutex<Option<broadcast::Receiver<String>>>,
    /// Why the last run's list could not be read, if it could not.
    load_error: Option<String>,
}

impl Sharing {
    /// The sharing state of a peer whose records are in `state_dir`.
    pub(super) fn open(state_dir: &std::path::Path) -> Sharing {
        let (catalog, error) = Catalog::open(state_dir);
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        let (notices, first) = broadcast::channel(NOTICES);
        Sharing {
            catalog: Arc::new(catalog),
            hashers: Arc::new(Semaphore::new(cores)),
            hashings: Default::default(),
            notices,
            first: Mutex::new(Some(first)),
            load_error: error.map(|e| format!("{e:#}")),
        }
    }

    fn notify(&self, text: String) {
        // Nobody listening (a library user, a test) is fine: the notice is just dropped.
        let _ = self.notices.send(text);
    }

    /// `link`'s notices and these, as one stream.
    pub(super) fn merge_notices(&self, mut link: broadcast::Receiver<String>) -> broadcast::Receiver<String> {
        let Some(mut mine) = self.first.lock().unwrap_or_else(|p| p.into_inner()).take() else { return link };
        let (merged, out) = broadcast::channel(NOTICES);
        task::spawn(tracing::debug_span!("notices"), async move {
            use broadcast::error::RecvError;
            let (mut link_open, mut mine_open) = (true, true);
            while link_open || mine_open {
                let got = tokio::select! {
                    got = link.recv(), if link_open => (got, &mut link_open),
                    got = mine.recv(), if mine_open => (got, &mut mine_open),
                };
                match got {
                    (Ok(text), _) => {
                        let _ = merged.send(text);
                    }
                    (Err(RecvError::Lagged(_)), _) => {}
                    (Err(RecvError::Closed), open) => *open = false,
                }
            }
        });
        out
    }
}

/// Sends hashing events to the caller, if it listens.
#[derive(Clone)]
pub(super) struct Reporter {
    to: Option<UnboundedSender<Hashing>>,
    /// Only [`Hashing::Hashed`]: one file of a folder, whose bar is the folder's.
    bytes_only: bool,
}

impl Reporter {
    pub(super) fn send(&self, event: Hashing) {
        if self.bytes_only && !matches!(event, Hashing::Hashed { .. }) {
            return;
        }
        if let Some(events) = &self.to {
            let _ = events.send(event);
        }
    }

    /// The same listener, told only of bytes hashed.
    pub(super) fn bytes_only(&self) -> Reporter {
        Reporter { to: self.to.clone(), bytes_only: true }
    }
}

impl Peer {
    /// Shares `name` from the data folder: hashes it and tells the tracker.
    pub async fn share(&self, name: &str) -> Result<Shared> {
        self.share_with(name, None, &CancellationToken::new()).await
    }

    /// Like [`Peer::share`], sending [`Hashing`] events to `events` if given; stops hashing
    /// within a chunk when `cancel` fires or the returned future is dropped. Waits for a free
    /// hasher first (as many files hash at once as there are cores).
    pub async fn share_with(&self, name: &str, events: Option<UnboundedSender<Hashing>>, cancel: &CancellationToken) -> Result<Shared> {
        let (data_dir, typed) = (self.inner.config.data_dir.clone(), name.to_string());
        let resolved = tokio::task::spawn_blocking(move || match store::resolve_share(&data_dir, &typed) {
            Err(store::StoreError::Folder(_)) => store::resolve_folder(&data_dir, &typed).map(|(path, label)| (path, label, true)),
            other => other.map(|(path, label)| (path, label, false)),
        });
        let (path, label, folder) = resolved.await??;
        let report = Reporter { to: events, bytes_only: false };
        if folder {
            return self.share_folder(path, label, report, cancel).await;
        }
        let manifest = self.hash(path.clone(), &label, report, cancel).await?;
        let info = FileInfo { id: manifest.root(), name: label, size: manifest.size, folder: None };
        let chunks = manifest.count();
        let pending = self.serve_as(info.clone(), path, Arc::new(manifest), Origin::Shared, false).await?;
        Ok(Shared { info, chunks, pending, folder: None })
    }

    /// Hashes the file at `path` on a blocking thread once a hasher is free, reporting to
    /// `report`; stops when `cancel` fires or this future is dropped.
    pub(super) async fn hash(&self, path: PathBuf, label: &str, report: Reporter, cancel: &CancellationToken) -> Result<Manifest> {
        let size = tokio::fs::metadata(&path).await.with_context(|| format!("cannot read {}", path.display()))?.len();
        let entry = self.inner.sharing.hashings.add(label, size);
        let hashers = self.inner.sharing.hashers.clone();
        let permit = match hashers.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                report.send(Hashing::Queued { name: label.to_string(), size });
                tokio::select! {
                    permit = hashers.acquire_owned() => permit?,
                    _ = cancel.cancelled() => {
                        report.send(Hashing::Done);
                        bail!("share {label} cancelled");
                    }
                }
            }
        };
        let stop = cancel.child_token();
        let _stop_if_dropped = stop.clone().drop_guard();
        let (name, file) = (label.to_string(), path.clone());
        let hashed = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            report.send(Hashing::Start { name, size });
            entry.started();
            let mut unsent = 0;
            let hashed = Manifest::from_file_watched(&file, &mut |bytes| {
                unsent += bytes;
                if unsent >= REPORT_EVERY {
                    entry.hashed(unsent);
                    report.send(Hashing::Hashed { bytes: std::mem::take(&mut unsent) });
                }
                !stop.is_cancelled()
            });
            if hashed.is_ok() && unsent > 0 {
                report.send(Hashing::Hashed { bytes: unsent });
            }
            report.send(Hashing::Done);
            hashed.map_err(|e| (e, stop.is_cancelled()))
        })
        .await?;
        match hashed {
            Ok((_, manifest)) => Ok(manifest),
            Err((_, true)) => bail!("share {label} cancelled"),
            Err((err, false)) => Err(err).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// Starts serving a file, records it in the share list and announces it; returns why the
    /// tracker did not hear, if it did not.
    pub(super) async fn serve_as(
        &self,
        info: FileInfo,
        path: PathBuf,
        manifest: Arc<Manifest>,
        origin: Origin,
        restored: bool,
    ) -> Result<Option<String>> {
        self.serve_now(info.clone(), path.clone(), manifest.clone(), origin, restored)?;
        Ok(self.record_and_announce(info, path, manifest, origin).await)
    }

    /// Starts serving a file at once (the share list and the tracker come after).
    pub(super) fn serve_now(&self, info: FileInfo, path: PathBuf, manifest: Arc<Manifest>, origin: Origin, restored: bool) -> Result<()> {
        let file = SharedFile::open(info, path, manifest)?.with_origin(origin, restored);
        self.inner.shares.insert(file);
        Ok(())
    }

    /// Keeps a served file in the share list for the next start and tells the tracker;
    /// returns why the tracker did not hear of it, if it did not.
    pub(super) async fn record_and_announce(
        &self,
        info: FileInfo,
        path: PathBuf,
        manifest: Arc<Manifest>,
        origin: Origin,
    ) -> Option<String> {
        self.record(&info, path, manifest, origin).await;
        self.announce_one(info).await
    }

    /// Keeps a served file in the share list for the next start (a failure is a warning: it
    /// is served now, just not after a restart).
    pub(super) async fn record(&self, info: &FileInfo, path: PathBuf, manifest: Arc<Manifest>, origin: Origin) {
        let catalog = self.inner.sharing.catalog.clone();
        let recorded = tokio::task::spawn_blocking({
            let info = info.clone();
            move || match Entry::new(&info, &path, &manifest, origin) {
                Some(entry) => catalog.record(entry, &manifest),
                None => Ok(()),
            }
        })
        .await;
        match recorded {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::warn!("{} is shared now but will not be after a restart: {err:#}", info.name),
            Err(err) => tracing::warn!("{} is shared now but will not be after a restart: {err}", info.name),
        }
    }

    /// Tells the tracker this peer shares `info`; returns why it did not hear, if it did not.
    pub(super) async fn announce_one(&self, info: FileInfo) -> Option<String> {
        match self.inner.link.request(&TrackerRequest::Share(info)).await {
            Ok(_) => None,
            Err(err) => Some(format!("{err:#}")),
        }
    }

    /// Files being hashed for `share` now (or waiting for a hasher), oldest first.
    pub fn hashing(&self) -> Vec<super::events::HashingNow> {
        self.inner.sharing.hashings.list()
    }

    /// Stops sharing the file called `query` (or whose id starts with it): no longer served,
    /// dropped from the share list, withdrawn at the tracker.
    pub async fn unshare(&self, query: &str) -> Result<Unshared> {
        let mut found = self.inner.shares.find(query);
        let file = match found.len() {
            0 => bail!("not sharing {query:?} (status lists the shared files)"),
            1 => found.remove(0),
            n => {
                let list: Vec<String> = found.iter().map(|f| format!("{} {}", f.info.id.short(), f.info.name)).collect();
                bail!("{query:?} matches {n} shared files: {}; pick one with unshare ID-PREFIX", list.join(", "))
            }
        };
        let info = file.info.clone();
        self.inner.shares.remove(&info.id);
        let (catalog, id) = (self.inner.sharing.catalog.clone(), info.id.to_hex());
        if let Err(err) = tokio::task::spawn_blocking(move || catalog.forget(&id)).await? {
            tracing::warn!("{} is not shared now but may be again after a restart: {err:#}", info.name);
        }
        let pending = self.inner.link.request(&TrackerRequest::Unshare(info.id)).await.err().map(|e| format!("{e:#}"));
        Ok(Unshared { info, pending })
    }

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
        let hashed = self.hash(entry.path.clone(), &entry.name, Reporter { to: None, bytes_only: false }, &self.inner.shutdown).await;
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

    /// Tells the tracker of many files in as few requests as fit (the tracker takes a hundred
    /// requests a second from a peer: one each, 10,000 files would take 100 s); returns why it
    /// did not hear of some, if it did not.
    pub(super) async fn announce_many(&self, files: Vec<FileInfo>) -> Option<String> {
        let mut failed = None;
        for batch in batches(files) {
            let request = if batch.len() == 1 { TrackerRequest::Share(batch[0].clone()) } else { TrackerRequest::ShareMany(batch) };
            if let Err(err) = self.inner.link.request(&request).await {
                failed.get_or_insert(format!("{err:#}"));
            }
        }
        failed
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

/// `files` cut into runs that each fit one request frame.
fn batches(files: Vec<FileInfo>) -> Vec<Vec<FileInfo>> {
    crate::protocol::fitting(files, crate::protocol::SHARE_MANY_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_fit_a_request_frame_and_keep_every_file_in_order() {
        let files: Vec<FileInfo> = (0..1000u32)
            .map(|i| FileInfo {
                id: crate::protocol::Digest([i as u8; 32]),
                name: format!("{}{i}", "n".repeat(i as usize % 200)),
                size: 1,
                folder: None,
            })
            .collect();
        let cut = batches(files.clone());
        assert!(cut.len() > 10, "{}", cut.len());
        for batch in &cut {
            let frame = crate::protocol::encode(&TrackerRequest::ShareMany(batch.clone())).unwrap();
            assert!(frame.len() <= crate::protocol::MAX_REQUEST_FRAME, "{} bytes", frame.len());
        }
        assert_eq!(cut.concat(), files);
    }
}
