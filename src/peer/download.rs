//! The swarm download: one file pulled from every live holder at once.
//!
//! The downloader connects to each holder (pinning the fingerprint the tracker reported),
//! fetches the manifest from the first that gives one matching the file id, then keeps
//! [`WINDOW`] chunk requests in flight per holder. Each chunk arrives on its own unidirectional
//! stream, is verified against the manifest off the async runtime, and only then written at its
//! offset in the partial file. Failures go back to the [`Scheduler`], which hands the chunk to
//! another holder and strikes or drops the one that failed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use quinn::{Connection, Endpoint, RecvStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

use super::progress::Progress;
use super::scheduler::{Penalty, Scheduler};
use crate::logbook::{ChunkRecord, Logbook, now_ms};
use crate::manifest::Manifest;
use crate::store::{Partial, StoreError};
use crate::tls::{self, Identity};
use crate::wire::{self, ChunkHeader, FileId, FileMatch, Holder, MAX_FRAME, MAX_MANIFEST_FRAME, ManifestReply, PEER_ALPN, PROTOCOL_VERSION, PeerRequest, close};

/// Chunk requests in flight per holder. Eight 256 KiB chunks (2 MiB) cover the bandwidth-delay
/// product of a fast LAN and keep a loopback link busy while the verifier works.
pub const WINDOW: usize = 8;
/// Time for one chunk from request to last byte; past it the chunk goes to another holder.
const CHUNK_TIMEOUT: Duration = Duration::from_secs(30);
/// Time to connect to a holder.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Time for a holder to send the manifest.
const MANIFEST_TIMEOUT: Duration = Duration::from_secs(15);
/// Time for a holder to start a chunk stream's header once the stream is open.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// What a download needs from its peer.
pub struct Context<'a> {
    /// The peer's endpoint (also serving).
    pub endpoint: &'a Endpoint,
    /// The peer's certificate, presented to holders.
    pub identity: &'a Identity,
    /// Where the file goes.
    pub download_dir: &'a Path,
    /// Where each verified chunk is recorded.
    pub log: &'a Logbook<ChunkRecord>,
    /// Progress events for the UI.
    pub events: mpsc::UnboundedSender<Progress>,
}

/// A finished download.
pub struct Outcome {
    /// Where the file now is.
    pub path: PathBuf,
    /// Its manifest (kept to serve it without hashing again).
    pub manifest: Arc<Manifest>,
    /// Chunks delivered by each holder, by peer id.
    pub from: Vec<(String, u32)>,
}

/// Why one chunk did not arrive from one holder.
#[derive(Debug, thiserror::Error)]
enum FetchError {
    #[error("connection lost: {0}")]
    Gone(String),
    #[error("refused: {0}")]
    Refused(String),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Corrupt(String),
    #[error(transparent)]
    Disk(#[from] StoreError),
}

impl FetchError {
    fn penalty(&self) -> Penalty {
        match self {
            FetchError::Gone(_) | FetchError::Refused(_) => Penalty::Drop,
            _ => Penalty::Strike,
        }
    }
}

/// Chunk streams awaited on one connection, by file and chunk.
type PendingMap = HashMap<(FileId, u32), oneshot::Sender<(ChunkHeader, RecvStream)>>;
type Pending = Arc<Mutex<PendingMap>>;

/// A connection to one holder, with the task that routes its incoming chunk streams.
struct HolderLink {
    peer_id: String,
    conn: Connection,
    pending: Pending,
    router: tokio::task::JoinHandle<()>,
}

impl Drop for HolderLink {
    fn drop(&mut self) {
        self.router.abort();
        self.conn.close(close::DONE, b"done");
    }
}

impl HolderLink {
    async fn connect(endpoint: Endpoint, config: quinn::ClientConfig, holder: &Holder) -> Result<HolderLink> {
        let connecting = endpoint.connect_with(config, holder.addr, tls::SERVER_NAME)?;
        let conn = tokio::time::timeout(CONNECT_TIMEOUT, connecting).await.context("timed out")??;
        let pending = Pending::default();
        let router = tokio::spawn(route(conn.clone(), pending.clone()));
        Ok(HolderLink { peer_id: holder.peer_id.clone(), conn, pending, router })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PendingMap> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn manifest(&self, id: FileId) -> Result<Manifest> {
        let (mut send, mut recv) = self.conn.open_bi().await?;
        wire::write_frame(&mut send, &PeerRequest::Manifest { version: PROTOCOL_VERSION, id }).await?;
        send.finish()?;
        let reply = tokio::time::timeout(MANIFEST_TIMEOUT, wire::read_frame(&mut recv, MAX_MANIFEST_FRAME));
        let manifest = match reply.await.context("timed out")?? {
            ManifestReply::Manifest(manifest) => manifest,
            ManifestReply::Error(reason) => bail!("{reason}"),
        };
        manifest.validate(&id)?;
        Ok(manifest)
    }

    /// Asks for one chunk, then verifies it and writes it into `job`.
    async fn fetch(&self, job: &Job, index: u32) -> Result<(), FetchError> {
        let (tx, rx) = oneshot::channel();
        self.lock().insert((job.id, index), tx);
        let result = tokio::time::timeout(CHUNK_TIMEOUT, self.receive(job, index, rx)).await;
        self.lock().remove(&(job.id, index));
        let data = result.map_err(|_| FetchError::Timeout(CHUNK_TIMEOUT))??;
        let job = job.clone();
        tokio::task::spawn_blocking(move || job.store(index, &data))
            .await
            .map_err(|e| FetchError::Corrupt(format!("verifier failed: {e}")))?
    }

    async fn receive(&self, job: &Job, index: u32, rx: oneshot::Receiver<(ChunkHeader, RecvStream)>) -> Result<Vec<u8>, FetchError> {
        let gone = |e: &dyn std::fmt::Display| FetchError::Gone(e.to_string());
        let mut request = self.conn.open_uni().await.map_err(|e| gone(&e))?;
        wire::write_frame(&mut request, &PeerRequest::Chunk { id: job.id, index }).await.map_err(|e| gone(&e))?;
        let _ = request.finish();
        let (header, mut stream) = rx.await.map_err(|_| FetchError::Gone("connection closed".into()))?;
        let len = header.result.map_err(FetchError::Refused)? as u64;
        let want = job.manifest.len_of(index);
        if len != want {
            return Err(FetchError::Corrupt(format!("chunk {index} announced as {len} bytes, expected {want}")));
        }
        let mut data = vec![0u8; len as usize];
        stream.read_exact(&mut data).await.map_err(|e| FetchError::Corrupt(format!("chunk {index} cut short: {e}")))?;
        Ok(data)
    }
}

/// Hands each incoming chunk stream to the fetch waiting for it; unsolicited streams are stopped.
async fn route(conn: Connection, pending: Pending) {
    let mut headers = JoinSet::new();
    while let Ok(mut stream) = conn.accept_uni().await {
        while headers.try_join_next().is_some() {}
        let pending = pending.clone();
        headers.spawn(async move {
            let header = tokio::time::timeout(HEADER_TIMEOUT, wire::read_frame::<_, ChunkHeader>(&mut stream, MAX_FRAME)).await;
            let Ok(Ok(header)) = header else {
                let _ = stream.stop(close::PROTOCOL);
                return;
            };
            let waiter = pending.lock().unwrap_or_else(|p| p.into_inner()).remove(&(header.id, header.index));
            match waiter {
                Some(waiter) => {
                    let _ = waiter.send((header, stream));
                }
                None => {
                    let _ = stream.stop(close::PROTOCOL);
                }
            }
        });
    }
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
    /// Verifies a chunk and writes it (blocking: hashing and disk).
    fn store(&self, index: u32, data: &[u8]) -> Result<(), FetchError> {
        self.manifest.verify(index, data).map_err(|e| FetchError::Corrupt(e.to_string()))?;
        self.partial.write_at(self.manifest.offset(index), data)?;
        Ok(())
    }
}

/// Downloads `target` from its holders into the download folder.
pub async fn download(ctx: &Context<'_>, target: &FileMatch) -> Result<Outcome> {
    let file = &target.file;
    let links = connect_all(ctx, &target.holders).await?;
    let manifest = Arc::new(first_manifest(&links, file.id).await?);
    let dir = ctx.download_dir.to_path_buf();
    let (id, name, size) = (file.id, file.name.clone(), file.size);
    let partial = tokio::task::spawn_blocking(move || Partial::create(&dir, &id, &name, size)).await??;
    let job = Job { id: file.id, name: file.name.clone(), manifest: manifest.clone(), partial: Arc::new(partial) };
    let _ = ctx.events.send(Progress::Start { name: job.name.clone(), size: manifest.size, holders: links.len() });
    let from = swarm(ctx, &links, &job).await?;
    drop(links);
    let partial = job.partial.clone();
    let path = tokio::task::spawn_blocking(move || partial.finish()).await??;
    Ok(Outcome { path, manifest, from })
}

/// Connects to every holder at once; fails only if none answers.
async fn connect_all(ctx: &Context<'_>, holders: &[Holder]) -> Result<Vec<Arc<HolderLink>>> {
    let mut attempts = JoinSet::new();
    for (order, holder) in holders.iter().enumerate() {
        let config = tls::client_config(ctx.identity, PEER_ALPN, holder.fingerprint)?;
        let (endpoint, holder) = (ctx.endpoint.clone(), holder.clone());
        attempts.spawn(async move { (order, HolderLink::connect(endpoint, config, &holder).await, holder) });
    }
    let mut links = Vec::new();
    let mut failures = Vec::new();
    while let Some(joined) = attempts.join_next().await {
        match joined? {
            (order, Ok(link), _) => links.push((order, Arc::new(link))),
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

/// Pulls every chunk, refilling each holder's window as chunks land. Returns chunks per holder.
async fn swarm(ctx: &Context<'_>, links: &[Arc<HolderLink>], job: &Job) -> Result<Vec<(String, u32)>> {
    let mut plan = Scheduler::new(job.manifest.count(), links.len(), WINDOW, |_| false);
    let mut tasks = JoinSet::new();
    refill(&mut plan, links, job, &mut tasks);
    while !plan.is_complete() {
        let Some(joined) = tasks.join_next().await else {
            let have = job.manifest.count() as usize - plan.remaining();
            bail!("every holder failed or left; {have} of {} chunks verified", job.manifest.count());
        };
        let (holder, index, started, result) = joined.context("chunk task failed")?;
        match result {
            Ok(()) => {
                if plan.done(holder, index) {
                    chunk_landed(ctx, job, &links[holder].peer_id, index, started);
                }
            }
            Err(FetchError::Disk(err)) => return Err(err).context("cannot write the download"),
            Err(err) => {
                plan.failed(holder, index, err.penalty());
                if plan.is_dropped(holder) {
                    let note = format!("stopped using peer {} for {}: {err}", links[holder].peer_id, job.name);
                    let _ = ctx.events.send(Progress::Note(note));
                }
            }
        }
        refill(&mut plan, links, job, &mut tasks);
    }
    ctx.log.flush();
    let _ = ctx.events.send(Progress::Done);
    Ok(links.iter().enumerate().map(|(i, l)| (l.peer_id.clone(), plan.delivered(i))).collect())
}

type ChunkResult = (usize, u32, Instant, Result<(), FetchError>);

/// Gives every holder work up to its window.
fn refill(plan: &mut Scheduler, links: &[Arc<HolderLink>], job: &Job, tasks: &mut JoinSet<ChunkResult>) {
    for (holder, link) in links.iter().enumerate() {
        while let Some(index) = plan.next(holder) {
            let (link, job) = (link.clone(), job.clone());
            tasks.spawn(async move {
                let started = Instant::now();
                let result = link.fetch(&job, index).await;
                (holder, index, started, result)
            });
        }
    }
}

fn chunk_landed(ctx: &Context<'_>, job: &Job, from: &str, index: u32, started: Instant) {
    let bytes = job.manifest.len_of(index);
    let ms = started.elapsed().as_millis() as u64;
    let record = ChunkRecord { ts_ms: now_ms(), file: job.name.clone(), id: job.id.to_hex(), chunk: index, from: from.to_string(), bytes, ms };
    ctx.log.append(&record);
    let _ = ctx.events.send(Progress::Chunk { bytes });
}
