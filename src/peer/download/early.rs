//! Early chunks: on a fresh download, a first window of chunks is asked of the first holder
//! together with the manifest, so data starts a round trip sooner. They are picked at random,
//! so a crowd that starts together does not all ask the seeder for the same chunks, and kept
//! only for the chunks the holder then says it has (a partial holder may not).

use std::sync::Arc;
use std::time::Instant;

use tokio::task::JoinSet;
use tracing::Span;

use super::swarm::{ChunkResult, Step};
use crate::content::manifest::Manifest;
use crate::net::task;
use crate::peer::holder::{FetchError, HolderLink, Pieces};
use crate::peer::scheduler::Scheduler;
use crate::protocol::FileInfo;

/// Most chunks asked for before the manifest is in (1 MiB at the default chunk size).
const EARLY_CHUNKS: u64 = 4;

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
        // A few chunks fill the pipe for the round trip the manifest takes; a whole window of
        // them, asked of one seeder by every member of a crowd before anyone knows what the
        // others fetch, would be the duplicates rarest-first is there to avoid.
        let first = (link.window(chunk_size.into()) as u64).min(count).min(EARLY_CHUNKS) as u32;
        let fetches = random_chunks(count as u32, first)
            .into_iter()
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

    /// Hands the fetches to the download as holder 0's, for the chunks it says it has and the
    /// plan still needs; the others are dropped (so never held against the holder).
    pub(super) fn adopt(mut self, plan: &mut Scheduler, tasks: &mut JoinSet<ChunkResult>) {
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

/// `n` distinct chunk indices below `count`, at random (a seed from the clock is enough: it
/// only has to differ between peers starting together).
fn random_chunks(count: u32, n: u32) -> Vec<u32> {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    let mut state = nanos ^ u64::from(std::process::id()).rotate_left(32) ^ (&nanos as *const u64 as u64);
    let mut picked = Vec::with_capacity(n as usize);
    while picked.len() < n.min(count) as usize {
        // SplitMix64.
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        let index = ((z ^ (z >> 31)) % u64::from(count)) as u32;
        if !picked.contains(&index) {
            picked.push(index);
        }
    }
    picked
}

impl Drop for Early {
    fn drop(&mut self) {
        self.fetches.iter().for_each(|(_, _, fetch)| fetch.abort());
    }
}
