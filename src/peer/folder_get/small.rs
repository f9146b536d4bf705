//! A folder's small files, one chunk each: asked for whole from one holder and checked
//! against their id directly (a file of one chunk hashes, as a whole, to its id), so each
//! costs one request and one file written in place: no manifest round trip, no partial file
//! or resume state beside it (the hidden folder is the resume state: a file there that hashes
//! to its id is done).

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Result, bail};
use tokio::sync::mpsc::UnboundedSender;

use super::{Fetched, Wanted};
use crate::content::manifest::{Manifest, chunk_count, chunk_size_for};
use crate::logbook::{ChunkRecord, now_ms};
use crate::peer::Peer;
use crate::peer::events::Progress;
use crate::protocol::Holder;

/// Whether a file of `size` bytes is one chunk (and so fetched whole).
pub(super) fn is_small(size: u64) -> bool {
    size > 0 && chunk_count(size, chunk_size_for(size)) == 1
}

impl Peer {
    /// Fetches the one-chunk file `file` into `path`, from the first of `holders` (starting at
    /// one picked by its id, so many files spread over the holders) that sends the right bytes.
    pub(super) async fn fetch_small(
        &self,
        file: &Wanted,
        holders: &[Holder],
        path: &Path,
        events: &UnboundedSender<Progress>,
    ) -> Result<Fetched> {
        let start = file.info.id.0[0] as usize % holders.len().max(1);
        let mut failures = Vec::new();
        for holder in holders.iter().cycle().skip(start).take(holders.len()) {
            match self.small_from(file, holder, path).await {
                Ok(manifest) => {
                    self.inner.shares.traffic().received(file.info.size);
                    let _ = events.send(Progress::Chunk { bytes: file.info.size });
                    let (info, path) = (file.info.clone(), file.path.clone());
                    return Ok(Fetched { path, info, manifest, from: vec![(holder.peer_id.clone(), 1)], resumed: 0, resumed_bytes: 0 });
                }
                Err(err) => failures.push(format!("peer {}: {err:#}", holder.peer_id)),
            }
        }
        bail!("no holder sent it ({})", failures.join("; "))
    }

    /// One holder's copy: fetched, checked against the id, written, logged.
    async fn small_from(&self, file: &Wanted, holder: &Holder, path: &Path) -> Result<Arc<Manifest>> {
        let started = Instant::now();
        let seek = &self.inner.seek;
        let link = seek.pool.link(seek.endpoint.clone(), &seek.identity, holder).await?;
        let pieces = link.chunk(file.info.id, 0, file.info.size).await?;
        let (id, size, target) = (file.info.id, file.info.size as usize, path.to_path_buf());
        let manifest = tokio::task::spawn_blocking(move || -> Result<Manifest> {
            let mut data = vec![0u8; size];
            pieces.copy_to(&mut data);
            let (got, manifest) = Manifest::from_bytes(&data);
            if got != id {
                bail!("sent bytes that are not the file");
            }
            std::fs::write(&target, &data).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", target.display()))?;
            Ok(manifest)
        })
        .await??;
        let record = ChunkRecord {
            ts_ms: now_ms(),
            file: file.info.name.clone(),
            id: file.info.id.to_hex(),
            chunk: 0,
            from: holder.peer_id.clone(),
            bytes: file.info.size,
            ms: started.elapsed().as_millis() as u64,
            partial: false,
        };
        self.inner.log.append(&record);
        Ok(Arc::new(manifest))
    }
}
