//! The swarm download: one file pulled from every live holder at once.
//!
//! The downloader connects to each holder (pinning the fingerprint the tracker reported),
//! fetches the manifest from the first that gives one matching the file id, then keeps each
//! holder's window of chunk requests in flight (it follows that holder's link: see
//! [`super::window`]). Each chunk arrives on its own unidirectional
//! stream, is verified against the manifest off the async runtime, and only then written at its
//! offset in the partial file. Failures go back to the [`Scheduler`], which hands the chunk to
//! another holder and strikes or drops the one that failed. Chunks an interrupted attempt left
//! on disk are re-checked and kept, so a `get` run again resumes.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, bail};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::events::Progress;
use super::finder::Seek;
use super::holder::{FetchError, HolderLink, Pieces};
use crate::content::manifest::Manifest;
use crate::logbook::{ChunkRecord, Logbook};
use crate::net::task;
use crate::protocol::{FileId, FileMatch, Holder};
use crate::store::partial::Partial;
use crate::store::shares::{SharedFile, Shares};
use crate::store::{StoreError, buffers};
use quinn::RecvStream;
use tracing::Span;

mod availability;
mod checkpoints;
mod fetches;
mod swarm;

/// How often the resume state is brought up to date while chunks land.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);
/// Verified bytes after which the resume state is brought up to date anyway. Syncing as the
/// data lands, in the background, leaves the final sync little to do: on a 256 MiB download it
/// took the time after the last chunk from ~70 ms to ~10 ms (benches/chunk_throughput.rs).
const CHECKPOINT_BYTES: u64 = 16 << 20;

/// What a download needs from its peer.
pub struct Context<'a> {
    /// How to find and connect to holders (the peer's endpoint, certificate, discovery, pool).
    pub seek: Arc<Seek>,
    /// How long to wait for a holder when none is left before giving up.
    pub stall_timeout: Duration,
    /// Where the file goes.
    pub download_dir: &'a Path,
    /// Where each verified chunk is recorded.
    pub log: &'a Logbook<ChunkRecord>,
    /// Progress events for the UI.
    pub events: mpsc::UnboundedSender<Progress>,
    /// Stops the download; what was verified is checkpointed first, so a later get resumes.
    pub cancel: tokio_util::sync::CancellationToken,
    /// The peer's shares: the download is served from there, chunk by verified chunk.
    pub shares: Shares,
    /// Told when the first chunk is verified (the peer then tells the tracker it holds part).
    pub has_chunk: std::sync::Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
}

impl Context<'_> {
    /// The download has a chunk to serve: say so, once.
    fn got_a_chunk(&self) {
        if let Some(tell) = self.has_chunk.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = tell.send(());
        }
    }
}

/// A finished download.
pub struct Outcome {
    /// Where the file now is.
    pub path: PathBuf,
    /// Its manifest (kept to serve it without hashing again).
    pub manifest: Arc<Manifest>,
    /// Chunks delivered by each holder, by peer id.
    pub from: Vec<(String, u32)>,
    /// Chunks an earlier attempt had already verified.
    pub resumed: u32,
    /// Their bytes: the rest moved this time.
    pub resumed_bytes: u64,
}

/// The file being downloaded: what it must be and where its chunks go.
#[derive(Clone)]
struct Job {
    id: FileId,
    name: String,
    manifest: Arc<Manifest>,
    partial: Arc<Partial>,
}

impl Job {
    /// Gathers a chunk into one buffer, verifies it and writes it (blocking: copying, hashing
    /// and disk).
    fn store(&self, index: u32, pieces: &Pieces) -> Result<(), FetchError> {
        let mut buffer = buffers::take(self.manifest.len_of(index) as usize);
        pieces.copy_to(buffer.as_mut_slice());
        let data = buffer.as_slice();
        self.manifest.verify(index, data).map_err(|e| FetchError::Corrupt(e.to_string()))?;
        self.partial.write_chunk(index, self.manifest.offset(index), data)?;
        Ok(())
    }

    /// Verifies and writes chunk `index` off the runtime.
    async fn verify_and_store(&self, index: u32, data: Pieces) -> Result<(), FetchError> {
        let job = self.clone();
        tokio::task::spawn_blocking(move || job.store(index, &data)).await.map_err(|e| FetchError::Internal(e.to_string()))?
    }

    /// Brings the resume state up to date (blocking work on a blocking thread).
    async fn checkpoint(&self) -> Result<(), StoreError> {
        let partial = self.partial.clone();
        tokio::task::spawn_blocking(move || partial.checkpoint()).await.unwrap_or(Ok(()))
    }
}

/// Downloads `target` from its holders into the download folder, resuming what an earlier
/// attempt left.
pub async fn download(ctx: &Context<'_>, target: &FileMatch) -> Result<Outcome> {
    let file = &target.file;
    // Before anything is fetched: is there room for what is still missing?
    let (dir, id, name, size) = (ctx.download_dir.to_path_buf(), file.id, file.name.clone(), file.size);
    tokio::task::spawn_blocking(move || Partial::check_space(&dir, &id, &name, size)).await??;
    let (links, manifest, observing) = tokio::select! {
        prepared = prepare(ctx, target) => prepared?,
        _ = ctx.cancel.cancelled() => bail!("cancelled"),
    };
    let manifest = Arc::new(manifest);
    let (partial, have) = open_partial(ctx, file, &manifest).await?;
    let job = Job { id: file.id, name: file.name.clone(), manifest: manifest.clone(), partial };
    if have.contains(&true) {
        ctx.got_a_chunk();
    }
    let _ = ctx.events.send(Progress::Start { name: job.name.clone(), size: manifest.size, holders: links.len() });
    let (resumed, resumed_bytes) = announce_resumed(ctx, &job, &have);
    let swarmed = swarm::Swarm::new(ctx, &job, links.into_iter().zip(observing).collect(), &have).run().await;
    let from = match swarmed {
        Ok(from) => from,
        Err(err) => {
            let _ = job.checkpoint().await;
            let partial = job.partial.clone();
            let _ = tokio::task::spawn_blocking(move || partial.remove_if_empty()).await;
            // What was verified stays served; a download with nothing leaves no share.
            if job.partial.verified() == 0 {
                ctx.shares.remove_partial(&job.id);
            }
            return Err(err);
        }
    };
    let partial = job.partial.clone();
    let path = tokio::task::spawn_blocking(move || partial.finish()).await??;
    Ok(Outcome { path, manifest, from, resumed, resumed_bytes })
}

/// The partial file of this download and the chunks it has: the one this peer serves already
/// (left by an earlier attempt, or by the last run, its chunks checked then), or one opened
/// now, its claimed chunks re-checked, and then served.
async fn open_partial(ctx: &Context<'_>, file: &crate::protocol::FileInfo, manifest: &Arc<Manifest>) -> Result<(Arc<Partial>, Vec<bool>)> {
    let served = ctx.shares.get(&file.id);
    if let Some(partial) = served.as_ref().and_then(|f| f.download()).filter(|p| p.name() == file.name) {
        let bits = partial.bitfield();
        return Ok((partial.clone(), (0..manifest.count()).map(|i| bits.has(i)).collect()));
    }
    let (dir, id, name, m) = (ctx.download_dir.to_path_buf(), file.id, file.name.clone(), manifest.clone());
    let (partial, claimed) = tokio::task::spawn_blocking(move || Partial::open(&dir, &id, &name, &m)).await??;
    let partial = Arc::new(partial);
    let have = resume(&partial, manifest, claimed).await?;
    match SharedFile::partial(file.clone(), partial.clone(), manifest.clone()) {
        Ok(shared) => {
            ctx.shares.insert_partial(shared);
        }
        Err(err) => tracing::debug!("cannot serve {} while it downloads: {err}", file.name),
    }
    Ok((partial, have))
}

/// Re-checks the chunks a previous attempt left on disk; returns those that verify.
async fn resume(partial: &Arc<Partial>, manifest: &Arc<Manifest>, claimed: Vec<u32>) -> Result<Vec<bool>> {
    let (partial, manifest) = (partial.clone(), manifest.clone());
    Ok(tokio::task::spawn_blocking(move || {
        let mut have = vec![false; manifest.count() as usize];
        for index in claimed {
            have[index as usize] = partial.recheck(&manifest, index);
        }
        have
    })
    .await?)
}

/// Connects to the holders, fetches the manifest, and asks each holder what it has (in the
/// same round trip): the links, the manifest and each link's `Observe` stream.
async fn prepare(ctx: &Context<'_>, target: &FileMatch) -> Result<(Vec<Arc<HolderLink>>, Manifest, Vec<Option<RecvStream>>)> {
    let links = connect_all(ctx, &target.holders).await?;
    let mut asking = JoinSet::new();
    for (at, link) in links.iter().enumerate() {
        let (link, id) = (link.clone(), target.file.id);
        task::spawn_in(&mut asking, Span::current(), async move { (at, link.observe(id).await) });
    }
    let manifest = first_manifest(&links, target.file.id).await?;
    let mut observing: Vec<Option<RecvStream>> = links.iter().map(|_| None).collect();
    while let Some(asked) = asking.join_next().await {
        if let Ok((at, Ok(stream))) = asked {
            observing[at] = Some(stream);
        }
    }
    Ok((links, manifest, observing))
}

/// Reports the chunks already on disk to the progress bar; returns how many there are and
/// their bytes.
fn announce_resumed(ctx: &Context<'_>, job: &Job, have: &[bool]) -> (u32, u64) {
    let indices = (0..have.len() as u32).filter(|&i| have[i as usize]);
    let (count, bytes) = indices.fold((0u32, 0u64), |(n, b), i| (n + 1, b + job.manifest.len_of(i)));
    if count > 0 {
        let _ = ctx.events.send(Progress::Resumed { bytes });
    }
    (count, bytes)
}

/// Connects to every holder at once; fails only if none answers.
async fn connect_all(ctx: &Context<'_>, holders: &[Holder]) -> Result<Vec<Arc<HolderLink>>> {
    let mut attempts = JoinSet::new();
    for (order, holder) in holders.iter().enumerate() {
        let (endpoint, holder, seek) = (ctx.seek.endpoint.clone(), holder.clone(), ctx.seek.clone());
        task::spawn_in(
            &mut attempts,
            Span::current(),
            async move { (order, seek.pool.link(endpoint, &seek.identity, &holder).await, holder) },
        );
    }
    let mut links = Vec::new();
    let mut failures = Vec::new();
    while let Some(joined) = attempts.join_next().await {
        match joined? {
            (order, Ok(link), _) => links.push((order, link)),
            (_, Err(err), holder) => failures.push(format!("peer {} at {}: {err:#}", holder.peer_id, holder.addr)),
        }
    }
    if links.is_empty() {
        bail!("no holder could be reached ({})", failures.join("; "));
    }
    for failure in failures {
        let _ = ctx.events.send(Progress::Note(format!("cannot reach {failure}")));
    }
    links.sort_by_key(|(order, _)| *order);
    // Two sources may name one holder at two addresses; its certificate tells.
    let mut seen = std::collections::HashSet::new();
    Ok(links.into_iter().map(|(_, link)| link).filter(|link| seen.insert(link.fingerprint)).collect())
}

/// The manifest from the first holder that gives one matching the id.
async fn first_manifest(links: &[Arc<HolderLink>], id: FileId) -> Result<Manifest> {
    let mut failures = Vec::new();
    for link in links {
        match link.manifest(id).await {
            Ok(manifest) => return Ok(manifest),
            Err(err) => failures.push(format!("peer {}: {err:#}", link.peer_id)),
        }
    }
    bail!("no holder sent a valid manifest ({})", failures.join("; "))
}
