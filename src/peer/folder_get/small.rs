//! A folder's small files, one chunk each: asked for whole and checked against their id
//! directly (a file of one chunk hashes, as a whole, to its id), so each is one file written in
//! place: no manifest round trip, no partial file or resume state beside it (the hidden folder
//! is the resume state: a file there that hashes to its id is done). They go in batches of up
//! to [`MAX_FILES_PER_REQUEST`] files or [`BATCH_BYTES`], one `Files` request each, to a holder
//! picked by the batch's first file; what a batch does not bring is fetched alone, from each
//! holder in turn.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Result, anyhow, bail};
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinSet;

use super::disk::parent_in;
use super::{Fetched, Wanted};
use crate::content::manifest::{Manifest, chunk_count, chunk_size_for};
use crate::logbook::{ChunkRecord, now_ms};
use crate::peer::Peer;
use crate::peer::events::Progress;
use crate::peer::holder::{FetchError, Pieces};
use crate::protocol::{FileId, FileInfo, Holder, MAX_FILES_PER_REQUEST};

/// Most bytes of small files asked of one holder in one request: a chunk's worth, so a batch
/// weighs in the link's window as a chunk does and as many are in flight (at 1 MiB a loopback
/// link's window let only two at a time).
const BATCH_BYTES: u64 = 256 << 10;

/// Whether a file of `size` bytes is one chunk (and so fetched whole).
pub(super) fn is_small(size: u64) -> bool {
    size > 0 && chunk_count(size, chunk_size_for(size)) == 1
}

/// What one task of a folder's get fetches.
pub(super) enum Job {
    /// A file of more than one chunk, with the swarm download.
    One(Wanted),
    /// Small files, in one request.
    Batch(Vec<Wanted>),
}

/// The wanted files as jobs, in their order: small files gathered into batches.
pub(super) fn jobs(wanted: Vec<Wanted>) -> Vec<Job> {
    let (mut jobs, mut batch, mut bytes) = (Vec::new(), Vec::new(), 0);
    for file in wanted {
        if !is_small(file.info.size) {
            jobs.push(Job::One(file));
            continue;
        }
        if !batch.is_empty() && (batch.len() == MAX_FILES_PER_REQUEST || bytes + file.info.size > BATCH_BYTES) {
            jobs.push(Job::Batch(std::mem::take(&mut batch)));
            bytes = 0;
        }
        bytes += file.info.size;
        batch.push(file);
    }
    if !batch.is_empty() {
        jobs.push(Job::Batch(batch));
    }
    jobs
}

impl Peer {
    /// Fetches the small files `files` into their places under `root`: in one request to a
    /// holder picked by the first file's id, then each file it did not bring alone.
    pub(super) async fn fetch_batch(
        &self,
        files: Vec<Wanted>,
        holders: Arc<[Holder]>,
        root: &Path,
        events: &UnboundedSender<Progress>,
    ) -> Result<Vec<Fetched>> {
        let Some(first) = files.first() else { return Ok(Vec::new()) };
        let Some(holder) = holders.get(picked(&first.info.id, holders.len())).cloned() else {
            bail!("no holder to ask for {}", first.path)
        };
        let started = Instant::now();
        let seek = &self.inner.seek;
        let answers = match seek.pool.link(seek.endpoint.clone(), &seek.identity, &holder).await {
            Ok(link) => link.files(&files.iter().map(|f| (f.info.id, f.info.size)).collect::<Vec<_>>()).await,
            Err(_) => Vec::new(),
        };
        let (files, written) = write_all(files, answers, root).await?;
        let mut fetched = Vec::with_capacity(files.len());
        let mut again = JoinSet::new();
        for (file, manifest) in files.into_iter().zip(written) {
            match manifest {
                Some(manifest) => fetched.push(self.got_small(file, manifest, &holder, started, events)),
                None => {
                    let (peer, holders, events, path) = (self.clone(), holders.clone(), events.clone(), place(root, &file));
                    again.spawn(async move { peer.fetch_small(file, &holders, &path, &events).await });
                }
            }
        }
        while let Some(done) = again.join_next().await {
            fetched.push(done??);
        }
        Ok(fetched)
    }

    /// Fetches the one-chunk file `file` into `path` alone, from the first of `holders`
    /// (starting at one picked by its id, so many files spread over the holders) that sends
    /// the right bytes.
    async fn fetch_small(&self, file: Wanted, holders: &[Holder], path: &Path, events: &UnboundedSender<Progress>) -> Result<Fetched> {
        let mut failures = Vec::new();
        for holder in holders.iter().cycle().skip(picked(&file.info.id, holders.len())).take(holders.len()) {
            let started = Instant::now();
            match self.small_from(&file.info, holder, path).await {
                Ok(manifest) => return Ok(self.got_small(file, manifest, holder, started, events)),
                Err(err) => failures.push(format!("peer {}: {err:#}", holder.peer_id)),
            }
        }
        bail!("{}: no holder sent it ({})", file.path, failures.join("; "))
    }

    /// One holder's copy, asked for alone: fetched, checked against the id, written.
    async fn small_from(&self, info: &FileInfo, holder: &Holder, path: &Path) -> Result<Arc<Manifest>> {
        let seek = &self.inner.seek;
        let link = seek.pool.link(seek.endpoint.clone(), &seek.identity, holder).await?;
        let pieces = link.chunk(info.id, 0, info.size).await?;
        let (id, size, target) = (info.id, info.size, path.to_path_buf());
        let manifest = tokio::task::spawn_blocking(move || write_checked((id, size), &pieces, &target)).await??;
        Ok(Arc::new(manifest))
    }

    /// A small file is in place: counted, reported, logged.
    fn got_small(
        &self,
        file: Wanted,
        manifest: Arc<Manifest>,
        holder: &Holder,
        started: Instant,
        events: &UnboundedSender<Progress>,
    ) -> Fetched {
        self.inner.shares.traffic().received(file.info.size);
        let _ = events.send(Progress::Chunk { bytes: file.info.size });
        self.inner.log.append(&ChunkRecord {
            ts_ms: now_ms(),
            file: file.info.name.clone(),
            id: file.info.id.to_hex(),
            chunk: 0,
            from: holder.peer_id.clone(),
            bytes: file.info.size,
            ms: started.elapsed().as_millis() as u64,
            partial: false,
        });
        Fetched { path: file.path, info: file.info, manifest, from: vec![(holder.peer_id.clone(), 1)], resumed: 0, resumed_bytes: 0 }
    }
}

/// Which of `holders` to ask first for `id`: spread by id, so many files spread over
/// them.
fn picked(id: &FileId, holders: usize) -> usize {
    id.0[0] as usize % holders.max(1)
}

/// Where the small file `file` goes under `root`.
pub(super) fn place(root: &Path, file: &Wanted) -> PathBuf {
    parent_in(root, &file.path).join(&file.info.name)
}

/// Checks and writes each answered file of a batch, on a blocking thread: gives the files
/// back with, for each, its manifest where the bytes were the file's and are now in place
/// under `root`, `None` where it must be fetched again. Only our own disk failing is an error.
async fn write_all(
    files: Vec<Wanted>,
    answers: Vec<Result<Pieces, FetchError>>,
    root: &Path,
) -> Result<(Vec<Wanted>, Vec<Option<Arc<Manifest>>>)> {
    let root = root.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let mut written = Vec::with_capacity(files.len());
        for (i, file) in files.iter().enumerate() {
            let Some(Ok(pieces)) = answers.get(i) else {
                written.push(None);
                continue;
            };
            match write_checked((file.info.id, file.info.size), pieces, &place(&root, file)) {
                Ok(manifest) => written.push(Some(Arc::new(manifest))),
                Err(WriteError::NotTheFile) => written.push(None),
                Err(WriteError::Disk(err)) => return Err(err),
            }
        }
        Ok((files, written))
    })
    .await?
}

/// Why a small file's bytes did not become the file.
#[derive(Debug, thiserror::Error)]
enum WriteError {
    /// The holder sent other bytes.
    #[error("sent bytes that are not the file")]
    NotTheFile,
    /// Our disk failed.
    #[error(transparent)]
    Disk(anyhow::Error),
}

/// Checks `pieces` against the file `(id, size)` and writes them to `target`.
fn write_checked((id, size): (FileId, u64), pieces: &Pieces, target: &Path) -> Result<Manifest, WriteError> {
    let mut data = vec![0u8; size as usize];
    pieces.copy_to(&mut data);
    let (got, manifest) = Manifest::from_bytes(&data);
    if got != id {
        return Err(WriteError::NotTheFile);
    }
    std::fs::write(target, &data).map_err(|e| WriteError::Disk(anyhow!("cannot write {}: {e}", target.display())))?;
    Ok(manifest)
}
