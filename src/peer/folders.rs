//! Sharing a folder: walk it, hash each file (as many at once as there are cores), serve each
//! as a file of its own (so it can be fetched alone, and serves anyone who wants that file),
//! then serve the folder's listing under the folder's name: its id is the folder's id.
//!
//! A file that changes while it is hashed (its size or modification time differ after) is left
//! out and reported, as are symlinks and names no listing may hold (see [`store::tree`]).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use tokio_util::sync::CancellationToken;

use super::events::Hashing;
use super::sharing::Reporter;
use super::{Peer, Shared};
use crate::content::folder::{Entry, Kind, Listing};
use crate::content::manifest::Manifest;
use crate::protocol::{FileInfo, FolderSize};
use crate::store;
use crate::store::catalog::{self, Origin};

/// Folder in the state folder where the listings of shared folders are kept.
const LISTINGS: &str = "folders";

/// What sharing a folder found, beside the listing itself.
#[derive(Clone, Debug, Default)]
pub struct FolderShared {
    /// Files in the listing.
    pub files: usize,
    /// Their bytes.
    pub bytes: u64,
    /// What was left out, and why (paths relative to the folder).
    pub skipped: Vec<(String, String)>,
    /// The ids of its files.
    pub file_ids: Vec<crate::protocol::FileId>,
}

impl Peer {
    /// Shares the folder at `root` under `label`: every file in it, and its listing.
    pub(super) async fn share_folder(&self, root: PathBuf, label: String, report: Reporter, cancel: &CancellationToken) -> Result<Shared> {
        let walked = root.clone();
        let tree = tokio::task::spawn_blocking(move || store::tree::walk(&walked)).await??;
        report.send(Hashing::Start { name: label.clone(), size: tree.bytes() });
        let hashed = self.hash_tree(&label, &tree, &report, cancel).await;
        report.send(Hashing::Done);
        let (hashed, mut skipped) = hashed?;
        skipped.extend(tree.skipped);
        let mut entries: Vec<Entry> = tree.empty_folders.into_iter().map(|path| Entry { path, kind: Kind::EmptyFolder }).collect();
        entries.extend(
            hashed.iter().map(|h| Entry { path: h.found.path.clone(), kind: Kind::File { size: h.manifest.size, id: h.manifest.root() } }),
        );
        let listing = Listing::new(entries).with_context(|| format!("cannot share {label}"))?;
        let file_ids = hashed.iter().map(|h| h.manifest.root()).collect();
        let summary = FolderShared { files: listing.file_count(), bytes: listing.total_size(), skipped, file_ids };
        let mut files: Vec<_> =
            hashed.into_iter().map(|h| (h.found.real, file_info(&h.found.path, &h.manifest), Arc::new(h.manifest))).collect();
        let kept = self.keep_listing(&listing, label, &summary).await?;
        let (info, chunks) = (kept.1.clone(), kept.2.count());
        files.push(kept);
        let infos = self.serve_files(files, Origin::Shared).await?;
        // Awaited: "shared" means the tracker can name the folder, and each file to whoever
        // wants one alone.
        let pending = self.announce_many(infos).await;
        Ok(Shared { info, chunks, pending, folder: Some(summary) })
    }

    /// Serves each file of a folder (where it is, what it is) at once and keeps them in the
    /// share list (written once); returns them, for the tracker.
    pub(super) async fn serve_files(&self, files: Vec<(PathBuf, FileInfo, Arc<Manifest>)>, origin: Origin) -> Result<Vec<FileInfo>> {
        let mut batch = Vec::new();
        let mut infos = Vec::new();
        for (path, info, manifest) in files {
            self.serve_now(info.clone(), path.clone(), manifest.clone(), origin, false)?;
            if let Some(entry) = catalog::Entry::new(&info, &path, &manifest, origin) {
                batch.push((entry, manifest));
            }
            infos.push(info);
        }
        let catalog = self.inner.sharing.catalog.clone();
        match tokio::task::spawn_blocking(move || catalog.record_all(&batch)).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::warn!("the folder is shared now but will not be after a restart: {err:#}"),
            Err(err) => tracing::warn!("the folder is shared now but will not be after a restart: {err}"),
        }
        Ok(infos)
    }

    /// Tells the tracker of a downloaded folder's files in the background: they are served
    /// already, and a slow or absent tracker must not hold up the summary (downloaders of the
    /// folder ask its holders for them directly; the tracker matters to those who want one
    /// file alone).
    pub(super) fn announce_in_background(&self, infos: Vec<FileInfo>, folder: &str) {
        let peer = self.clone();
        let span = tracing::info_span!("announce folder", me = %self.inner.config.id, folder = %crate::content::names::printable(folder));
        crate::net::task::spawn_until(&self.inner.shutdown, span, async move {
            if let Some(reason) = peer.announce_many(infos).await {
                tracing::debug!("a folder's files are served; the tracker hears of them at the next registration: {reason}");
            }
        });
    }

    /// Writes the listing to the state folder, to be served as the folder `label`; returns it
    /// as [`Peer::serve_files`] takes it.
    async fn keep_listing(&self, listing: &Listing, label: String, summary: &FolderShared) -> Result<(PathBuf, FileInfo, Arc<Manifest>)> {
        let (id, bytes) = (listing.id(), listing.encode());
        let path = self.inner.config.state_dir.join(LISTINGS).join(id.to_hex());
        let written = path.clone();
        let manifest = tokio::task::spawn_blocking(move || {
            catalog::write_atomically(&written, &bytes)?;
            anyhow::Ok(Manifest::from_bytes(&bytes).1)
        })
        .await??;
        let folder = Some(FolderSize { files: summary.files as u64, bytes: summary.bytes });
        let info = FileInfo { id, name: label, size: manifest.size, folder };
        Ok((path, info, Arc::new(manifest)))
    }
}

/// A folder's file as the tracker hears of it: under its own name (the last component).
fn file_info(path: &str, manifest: &Manifest) -> FileInfo {
    let name = path.rsplit('/').next().unwrap_or(path).to_string();
    FileInfo { id: manifest.root(), name, size: manifest.size, folder: None }
}
