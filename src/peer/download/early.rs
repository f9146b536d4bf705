//! Early chunks: on a fresh download, the first holder's first window of chunks is asked for
//! together with the manifest, so data starts a round trip sooner.

use std::sync::Arc;
use std::time::Instant;

use tokio::task::JoinSet;
use tracing::Span;

use super::{ChunkResult, Step};
use crate::content::manifest::Manifest;
use crate::net::task;
use crate::peer::holder::{FetchError, HolderLink, Pieces};
use crate::peer::scheduler::Scheduler;
use crate::protocol::FileInfo;

/// Chunks asked of the first holder together with the manifest on a fresh download, so the
/// first bytes arrive a round trip sooner. Their lengths come from the size the tracker
/// reported; they are kept only if the manifest (checked against the file id) agrees, and go
/// through the same verification as every other chunk.
#[derive(Default)]
pub(super) struct Early {
    chunk_size: u32,
    size: u64,
    fetches: Vec<EarlyFetch>,
}

/// One early chunk: its index, when it was asked for, and the fetch under way.
type EarlyFetch = (u32, Instant, tokio::task::JoinHandle<Result<Pieces, FetchError>>);

impl Early {
    /// Asks `link` for the first window of chunks of `file`.
    pub(super) fn start(link: &Arc<HolderLink>, file: &FileInfo) -> Early {
        let chunk_size = crate::content::manifest::chunk_size_for(file.size);
        let count = crate::content::manifest::chunk_count(file.size, chunk_size);
        let first = (link.window(chunk_size.into()) as u64).min(count) as u32;
        let fetches = (0..first)
            .map(|index| {
                let offset = u64::from(index) * u64::from(chunk_size);
                let len = (file.size - offset).min(chunk_size.into());
                let (link, id) = (link.clone(), file.id);
                (index, Instant::now(), task::spawn(Span::current(), async move { link.chunk(id, index, len).await }))
            })
            .collect();
        Early { chunk_size, size: file.size, fetches }
    }

    /// These fetches if `manifest` cuts the file as they assumed; otherwise none (cancelled).
    pub(super) fn keep_if(mut self, manifest: &Manifest) -> Early {
        if manifest.chunk_size != self.chunk_size || manifest.size != self.size {
            self.fetches.drain(..).for_each(|(_, _, fetch)| fetch.abort());
        }
        self
    }

    /// Hands the fetches to the download as holder 0's first chunks: the plan picks at random,
    /// so each is claimed by index.
    pub(super) fn adopt(mut self, plan: &mut Scheduler, tasks: &mut JoinSet<ChunkResult>) {
        plan.set_window(0, self.fetches.len());
        for (index, started, fetch) in self.fetches.drain(..) {
            if !plan.claim(0, index) {
                fetch.abort();
                continue;
            }
            task::spawn_in(tasks, Span::current(), async move {
                let fetched = fetch.await.unwrap_or_else(|e| Err(FetchError::Gone(format!("fetch ended: {e}"))));
                (0, index, started, Step::Fetched(fetched))
            });
        }
    }
}

impl Drop for Early {
    fn drop(&mut self) {
        self.fetches.iter().for_each(|(_, _, fetch)| fetch.abort());
    }
}
