//! Downloads as holders: a file being downloaded is served from its partial file, chunk by
//! verified chunk, and the tracker lists this peer as a holder of it from its first verified
//! chunk on. Unfinished downloads that an earlier run left are served again at start (their
//! chunks re-checked first), so a restarted peer goes on serving what it had.

use std::sync::Arc;

use tokio::sync::oneshot;

use super::Peer;
use crate::content::manifest::Manifest;
use crate::net::task;
use crate::protocol::FileInfo;
use crate::store::partial::Partial;
use crate::store::shares::SharedFile;
use crate::store::unfinished;

impl Peer {
    /// Serves a download under way from `partial` (unless the file is shared already) and
    /// tells the tracker; returns whether it is served now.
    fn serve_partial(&self, info: &FileInfo, partial: Arc<Partial>, manifest: Arc<Manifest>) -> bool {
        let file = match SharedFile::partial(info.clone(), partial, manifest) {
            Ok(file) => file,
            Err(err) => {
                tracing::debug!("cannot serve {} while it downloads: {err}", info.name);
                return false;
            }
        };
        if !self.inner.shares.insert_partial(file) {
            return false;
        }
        let (ready, has_chunk) = oneshot::channel();
        let _ = ready.send(());
        self.announce_when(info, has_chunk);
        true
    }

    /// Once `has_chunk` says so (a download's first chunk is verified and served), tells the
    /// tracker this peer holds part of `info`, in the background, if it still does; a download
    /// that ends with no chunk drops its sender, and nothing is said.
    pub(super) fn announce_when(&self, info: &FileInfo, has_chunk: oneshot::Receiver<()>) {
        let (peer, info) = (self.clone(), info.clone());
        let span = tracing::info_span!("announce partial", me = %self.inner.config.id, file = %info.id.short());
        task::spawn_until(&self.inner.shutdown, span, async move {
            if has_chunk.await.is_ok() && peer.inner.shares.get(&info.id).is_some() {
                peer.inner.link.wait_up().await;
                if let Some(reason) = peer.announce_one(info).await {
                    tracing::debug!("serving part of a download, the tracker hears at the next registration: {reason}");
                }
            }
        });
    }

    /// Serves again, in the background, the unfinished downloads the download folder holds.
    pub(super) fn restore_partials(&self) {
        let peer = self.clone();
        let span = tracing::info_span!("restore partials", me = %self.inner.config.id);
        task::spawn_until(&self.inner.shutdown, span, async move { peer.reopen_partials().await });
    }

    /// Reopens each unfinished download, re-checks the chunks its resume state claims, and
    /// serves those that verify.
    async fn reopen_partials(&self) {
        let dir = self.inner.config.download_dir.clone();
        let listed = tokio::task::spawn_blocking(move || unfinished::list(&dir)).await.unwrap_or_default();
        for found in listed {
            let dir = self.inner.config.download_dir.clone();
            let reopened = tokio::task::spawn_blocking(move || {
                let (partial, manifest, claimed) = Partial::reopen(&dir, &found.id)?;
                let kept = claimed.into_iter().filter(|&i| partial.recheck(&manifest, i)).count();
                Some((partial, manifest, kept))
            });
            let Ok(Some((partial, manifest, kept))) = reopened.await else { continue };
            if kept == 0 {
                continue;
            }
            let info = FileInfo { id: manifest.root(), name: partial.name().to_string(), size: manifest.size, folder: None };
            self.serve_partial(&info, Arc::new(partial), Arc::new(manifest));
        }
    }
}
