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
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::events::Progress;
use super::finder::{Finder, Seek};
use super::holder::{FetchError, HolderLink, Pieces};
use super::scheduler::Penalty;
use super::scheduler::Scheduler;
use crate::content::manifest::Manifest;
use crate::logbook::{ChunkRecord, Logbook, now_ms};
use crate::net::task;
use crate::net::tls;
use crate::protocol::{FileId, FileMatch, Holder, PEER_ALPN};
use crate::store::partial::Partial;
use crate::store::{StoreError, buffers};
use crate::units;
use tracing::Span;

mod checkpoints;
mod early;
use checkpoints::Checkpoints;
use early::Early;

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

    /// Re-checks the chunks a previous attempt left on disk; returns those that verify.
    async fn resume(&self, claimed: Vec<u32>) -> Result<Vec<bool>> {
        let job = self.clone();
        Ok(tokio::task::spawn_blocking(move || {
            let mut have = vec![false; job.manifest.count() as usize];
            for index in claimed {
                have[index as usize] = job.partial.recheck(&job.manifest, index);
            }
            have
        })
        .await?)
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
    let (links, manifest, early) = tokio::select! {
        prepared = prepare(ctx, target) => prepared?,
        _ = ctx.cancel.cancelled() => bail!("cancelled"),
    };
    let manifest = Arc::new(manifest);
    let (dir, id, name, m) = (ctx.download_dir.to_path_buf(), file.id, file.name.clone(), manifest.clone());
    let (partial, claimed) = tokio::task::spawn_blocking(move || Partial::open(&dir, &id, &name, &m)).await??;
    let job = Job { id: file.id, name: file.name.clone(), manifest: manifest.clone(), partial: Arc::new(partial) };
    let have = job.resume(claimed).await?;
    let _ = ctx.events.send(Progress::Start { name: job.name.clone(), size: manifest.size, holders: links.len() });
    let (resumed, resumed_bytes) = announce_resumed(ctx, &job, &have);
    let early = early.keep_if(&manifest);
    let swarmed = swarm(ctx, links, &job, &have, early).await;
    let from = match swarmed {
        Ok(from) => from,
        Err(err) => {
            let _ = job.checkpoint().await;
            let partial = job.partial.clone();
            let _ = tokio::task::spawn_blocking(move || partial.remove_if_empty()).await;
            return Err(err);
        }
    };
    let partial = job.partial.clone();
    let path = tokio::task::spawn_blocking(move || partial.finish()).await??;
    Ok(Outcome { path, manifest, from, resumed, resumed_bytes })
}

/// Connects to the holders and fetches the manifest; on a fresh download, the first chunks are
/// asked for at the same time.
async fn prepare(ctx: &Context<'_>, target: &FileMatch) -> Result<(Vec<Arc<HolderLink>>, Manifest, Early)> {
    let links = connect_all(ctx, &target.holders).await?;
    let fresh = !Partial::exists(ctx.download_dir, &target.file.id);
    let early = if fresh { Early::start(&links[0], &target.file) } else { Early::default() };
    let manifest = first_manifest(&links, target.file.id).await?;
    Ok((links, manifest, early))
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
        let config = tls::client_config(&ctx.seek.identity, PEER_ALPN, holder.fingerprint)?;
        let (endpoint, holder, pool) = (ctx.seek.endpoint.clone(), holder.clone(), ctx.seek.pool.clone());
        task::spawn_in(&mut attempts, Span::current(), async move { (order, pool.link(endpoint, config, &holder).await, holder) });
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
    Ok(links.into_iter().map(|(_, link)| link).collect())
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

/// Pulls every missing chunk, refilling each holder's window as chunks arrive and keeping the
/// resume state current; holders found meanwhile join in, and with none left it waits up to
/// the stall timeout for one. Returns chunks per holder.
async fn swarm(ctx: &Context<'_>, links: Vec<Arc<HolderLink>>, job: &Job, have: &[bool], early: Early) -> Result<Vec<(String, u32)>> {
    let mut plan = Scheduler::new(job.manifest.count(), 1, |i| have[i as usize]);
    for _ in &links {
        let h = plan.add_holder(1);
        plan.holder_has_all(h);
    }
    let mut finder = Finder::new(ctx.seek.clone(), job.id, links.iter().map(|l| l.fingerprint));
    let mut links = links;
    let mut tasks = JoinSet::new();
    let mut checkpoints = Checkpoints::default();
    let mut stalled: Option<Instant> = None;
    early.adopt(&mut plan, &mut tasks);
    refill(&mut plan, &links, job, &mut tasks);
    while !plan.is_complete() {
        if tasks.is_empty() && stalled.is_none() {
            stalled = Some(Instant::now());
            finder.hurry();
            waiting(ctx, job, &plan);
        }
        if let Some(since) = stalled.filter(|s| s.elapsed() >= ctx.stall_timeout) {
            let kept = job.manifest.count() as usize - plan.remaining();
            let waited = units::span(since.elapsed());
            bail!("no holder answered for {waited}; {kept} of {} chunks verified and kept, get it again to resume", job.manifest.count());
        }
        let give_up = tokio::time::Instant::from_std(stalled.map_or_else(Instant::now, |s| s + ctx.stall_timeout));
        let next = tokio::select! {
            next = tasks.join_next(), if !tasks.is_empty() => next,
            link = finder.next(stalled.is_some()) => {
                joined(ctx, job, &mut plan, &mut links, link, stalled.take().is_some());
                refill(&mut plan, &links, job, &mut tasks);
                continue;
            }
            _ = tokio::time::sleep_until(give_up), if stalled.is_some() => continue,
            _ = ctx.cancel.cancelled() => bail!("cancelled; what was verified is kept, get it again to resume"),
        };
        let Some(joined) = next else { continue };
        let (holder, index, started, step) = joined.context("chunk task failed")?;
        let landed = match step {
            Step::Fetched(fetched) => {
                plan.arrived(holder);
                match fetched {
                    Ok(data) => verify_later(&mut plan, job, &mut tasks, (holder, index, started), data),
                    Err(err) => failed(ctx, &mut plan, job, (holder, &links[holder]), index, err, &mut finder)?,
                }
                0
            }
            Step::Stored(Ok(())) if plan.done(holder, index) => chunk_landed(ctx, job, &links[holder].peer_id, index, started),
            Step::Stored(Ok(())) => 0,
            Step::Stored(Err(err)) => {
                failed(ctx, &mut plan, job, (holder, &links[holder]), index, err, &mut finder)?;
                0
            }
        };
        checkpoints.maybe(job, landed);
        refill(&mut plan, &links, job, &mut tasks);
    }
    checkpoints.settle().await;
    let _ = ctx.events.send(Progress::Done);
    Ok(links.iter().enumerate().map(|(i, l)| (l.peer_id.clone(), plan.delivered(i))).collect())
}

/// Says that no holder is left and the download waits for one.
fn waiting(ctx: &Context<'_>, job: &Job, plan: &Scheduler) {
    let kept = job.manifest.count() as usize - plan.remaining();
    let wait = units::span(ctx.stall_timeout);
    let note = format!(
        "no holder left for {}; waiting up to {wait} for one, asking again ({kept} of {} chunks kept)",
        job.name,
        job.manifest.count()
    );
    let _ = ctx.events.send(Progress::Note(note));
    let _ = ctx.events.send(Progress::Holders(0));
}

/// A holder found during the download joins the plan.
fn joined(ctx: &Context<'_>, job: &Job, plan: &mut Scheduler, links: &mut Vec<Arc<HolderLink>>, link: Arc<HolderLink>, was_waiting: bool) {
    if was_waiting {
        let _ = ctx.events.send(Progress::Note(format!("found peer {} for {}; going on", link.peer_id, job.name)));
    }
    let h = plan.add_holder(link.window(job.manifest.chunk_size.into()));
    plan.holder_has_all(h);
    links.push(link);
    let _ = ctx.events.send(Progress::Holders(plan.live_holders()));
}

/// Verifies and stores a chunk that arrived, in the background; an endgame racer's late copy
/// of a chunk already verified is not checked again.
fn verify_later(plan: &mut Scheduler, job: &Job, tasks: &mut JoinSet<ChunkResult>, at: (usize, u32, Instant), data: Pieces) {
    let (holder, index, started) = at;
    if plan.is_done(index) {
        plan.done(holder, index);
        return;
    }
    let job = job.clone();
    task::spawn_in(tasks, Span::current(), async move { (holder, index, started, Step::Stored(job.verify_and_store(index, data).await)) });
}

/// Hands a failed chunk back to the plan; tells the user when that dropped the holder (one
/// that left or went silent may be found again; one that sent bad data stays out). Our own
/// disk failing ends the download.
fn failed(
    ctx: &Context<'_>,
    plan: &mut Scheduler,
    job: &Job,
    (holder, link): (usize, &HolderLink),
    index: u32,
    err: FetchError,
    finder: &mut Finder,
) -> Result<()> {
    let err = match err {
        FetchError::Disk(err) => return Err(err).context("cannot write the download"),
        FetchError::Internal(why) => bail!("chunk {index}: internal error while verifying ({why}); what was verified is kept"),
        err => err,
    };
    if plan.failed(holder, index, err.penalty()) {
        let note = format!("stopped using peer {} for {}: {err}", link.peer_id, job.name);
        let _ = ctx.events.send(Progress::Note(note));
        let _ = ctx.events.send(Progress::Holders(plan.live_holders()));
        if err.penalty() == Penalty::Drop {
            finder.forget(&link.fingerprint);
        }
    }
    Ok(())
}

/// Where one chunk's fetch is: its bytes arrived (or not), then it was verified and stored.
enum Step {
    Fetched(Result<Pieces, FetchError>),
    Stored(Result<(), FetchError>),
}

type ChunkResult = (usize, u32, Instant, Step);

/// Gives every holder work up to its window, as its link measures it now.
fn refill(plan: &mut Scheduler, links: &[Arc<HolderLink>], job: &Job, tasks: &mut JoinSet<ChunkResult>) {
    for (holder, link) in links.iter().enumerate() {
        plan.set_window(holder, link.window(job.manifest.chunk_size.into()));
        while let Some(index) = plan.next(holder) {
            let (link, job) = (link.clone(), job.clone());
            task::spawn_in(tasks, Span::current(), async move {
                let started = Instant::now();
                let fetched = link.chunk(job.id, index, job.manifest.len_of(index)).await;
                (holder, index, started, Step::Fetched(fetched))
            });
        }
    }
}

/// Records a newly verified chunk; returns its length.
fn chunk_landed(ctx: &Context<'_>, job: &Job, from: &str, index: u32, started: Instant) -> u64 {
    let bytes = job.manifest.len_of(index);
    let ms = started.elapsed().as_millis() as u64;
    let record =
        ChunkRecord { ts_ms: now_ms(), file: job.name.clone(), id: job.id.to_hex(), chunk: index, from: from.to_string(), bytes, ms };
    ctx.log.append(&record);
    let _ = ctx.events.send(Progress::Chunk { bytes });
    bytes
}
