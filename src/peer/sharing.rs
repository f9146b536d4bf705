//! Sharing: hashing files for `share` (cancellable, reported through [`Hashing`] events, as
//! many at once as there are cores), `unshare`, and the share list kept across runs.
//!
//! Every file served is recorded in the peer's [`Catalog`] (state folder), whether `share`
//! named it or a download brought it; at start `restore` serves again what the list holds,
//! and `announce` tells the tracker. What they do reaches a person as notices.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, bail};
use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, broadcast};
use tokio_util::sync::CancellationToken;

use super::events::Hashing;
use super::{Peer, Shared};
use crate::content::manifest::Manifest;
use crate::net::task;
use crate::protocol::{FileInfo, TrackerRequest};
use crate::store;
use crate::store::catalog::{Catalog, Entry, Origin};
use crate::store::shares::SharedFile;

/// Bytes hashed between two [`Hashing::Hashed`] events: often enough for a smooth bar, rare
/// enough that a fast disk does not flood the channel.
pub(super) const REPORT_EVERY: u64 = 4 << 20;
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
    pub(super) hashings: super::events::Hashings,
    notices: broadcast::Sender<String>,
    /// The first listener, made at start so nothing said before the front end listens is lost.
    first: Mutex<Option<broadcast::Receiver<String>>>,
    /// Why the last run's list could not be read, if it could not.
    pub(super) load_error: Option<String>,
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

    pub(super) fn notify(&self, text: String) {
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
}

impl Reporter {
    pub(super) fn send(&self, event: Hashing) {
        if let Some(events) = &self.to {
            let _ = events.send(event);
        }
    }

    /// Nobody listening.
    pub(super) fn none() -> Reporter {
        Reporter { to: None }
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
        let report = Reporter { to: events };
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
        let permits = self.hashers(1, label, size, &report, cancel).await?;
        let stop = cancel.child_token();
        let _stop_if_dropped = stop.clone().drop_guard();
        let (name, file) = (label.to_string(), path.clone());
        let hashed = tokio::task::spawn_blocking(move || {
            let _permits = permits;
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

    /// Up to `want` hashers (at least one, waited for, saying so, unless cancelled first; the
    /// rest only if free now).
    pub(super) async fn hashers(
        &self,
        want: usize,
        label: &str,
        size: u64,
        report: &Reporter,
        cancel: &CancellationToken,
    ) -> Result<Vec<OwnedSemaphorePermit>> {
        let hashers = self.inner.sharing.hashers.clone();
        let first = match hashers.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                report.send(Hashing::Queued { name: label.to_string(), size });
                tokio::select! {
                    permit = hashers.clone().acquire_owned() => permit?,
                    _ = cancel.cancelled() => {
                        report.send(Hashing::Done);
                        bail!("share {label} cancelled");
                    }
                }
            }
        };
        let mut permits = vec![first];
        while permits.len() < want {
            match hashers.clone().try_acquire_owned() {
                Ok(permit) => permits.push(permit),
                Err(_) => break,
            }
        }
        Ok(permits)
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
        if let Err(err) = self.inner.public.remove(&[info.id]) {
            tracing::warn!("{} is not shared now, but is still listed as public: {err:#}", info.name);
        }
        self.tell_others(TrackerRequest::Unshare(info.id));
        let pending = self.inner.link.request(&TrackerRequest::Unshare(info.id)).await.err().map(|e| format!("{e:#}"));
        Ok(Unshared { info, pending })
    }

    /// Makes what `shared` shared public: served to anyone who knows its id, not only to the
    /// tracker's peers, and announced on the DHT if this peer runs a node; kept across runs.
    pub fn make_public(&self, shared: &Shared) -> Result<()> {
        let files = shared.folder.iter().flat_map(|f| f.file_ids.iter().copied());
        self.inner.public.add(std::iter::once(shared.info.id).chain(files))?;
        Ok(())
    }

    /// Whether this peer runs a DHT node (public files are announced on it).
    pub fn runs_dht(&self) -> bool {
        self.inner.dht.is_some()
    }

    /// The public files announced on the DHT at least once, now and as it changes.
    pub fn on_dht(&self) -> tokio::sync::watch::Receiver<std::collections::BTreeSet<crate::protocol::FileId>> {
        self.inner.on_dht.subscribe()
    }
}
