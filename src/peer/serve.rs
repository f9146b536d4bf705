//! The holder side: answer manifest and chunk requests for the files this peer shares.
//!
//! A request names a file by id; only files in [`Shares`] are ever opened, and only chunks
//! within their size are read. A manifest request is answered on its own bidirectional stream;
//! a chunk request (a unidirectional stream) is answered on a new unidirectional stream: a
//! [`ChunkHeader`] then the chunk's bytes. A bad request ends its stream only.

use std::collections::HashMap;
use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use quinn::{Connection, RecvStream, SendStream};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::buffers::{self, Buffer};
use super::gate::{Gate, SENDS_PER_PEER};
use super::throttle::Throttle;
use crate::content::manifest::Manifest;
use crate::protocol::{self, ChunkHeader, FileId, FileInfo, MAX_FRAME, ManifestReply, PROTOCOL_VERSION, PeerRequest, close};

/// How long a downloader may take to send one request frame.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Downloaders served at once.
const MAX_CONNECTIONS: usize = 512;
/// Send priority of manifest replies; chunk streams keep quinn's default, 0.
const MANIFEST_PRIORITY: i32 = 1;
/// Longest one answer may take to send once it is its turn (a manifest from its stream
/// opening): a downloader that stops reading cannot pin a chunk buffer or a send slot longer
/// than this. With an upload limit, chunk answers get longer: the time the limit takes to send
/// a peer's share of chunks.
const STREAM_TIMEOUT: Duration = Duration::from_secs(60);

/// A file this peer serves.
pub struct SharedFile {
    /// What the tracker knows of it.
    pub info: FileInfo,
    /// Where it is.
    pub path: PathBuf,
    /// Its chunks' hashes.
    pub manifest: Arc<Manifest>,
    file: Arc<File>,
    stamp: Stamp,
    /// Chunks and bytes sent to downloaders since it was shared.
    sent: (AtomicU64, AtomicU64),
    /// The encoded manifest reply, once asked for.
    manifest_frame: OnceLock<Bytes>,
}

/// A shared file and how much of it went out.
#[derive(Clone, Debug)]
pub struct Uploads {
    /// The file.
    pub info: FileInfo,
    /// Chunks sent to downloaders.
    pub chunks: u64,
    /// Bytes sent to downloaders.
    pub bytes: u64,
}

/// Size and modification time: a change means the file is no longer what was shared.
type Stamp = (u64, Option<std::time::SystemTime>);

fn stamp(file: &File) -> std::io::Result<Stamp> {
    let meta = file.metadata()?;
    Ok((meta.len(), meta.modified().ok()))
}

impl SharedFile {
    /// Opens `path` to serve it under `info`, with a manifest already computed from it.
    pub fn open(info: FileInfo, path: PathBuf, manifest: Arc<Manifest>) -> std::io::Result<SharedFile> {
        let file = File::open(&path)?;
        let stamp = stamp(&file)?;
        Ok(SharedFile { info, path, manifest, file: Arc::new(file), stamp, sent: Default::default(), manifest_frame: OnceLock::new() })
    }

    /// Reads `len` bytes at `offset` into a pooled buffer, refusing if the file changed since
    /// it was shared (blocking).
    fn read(&self, offset: u64, len: usize) -> Result<Buffer> {
        self.check_unchanged()?;
        let mut buffer = buffers::take(len);
        crate::store::read_exact_at(&self.file, buffer.as_mut_slice(), offset)
            .with_context(|| format!("cannot read {}", self.path.display()))?;
        Ok(buffer)
    }

    /// Like [`SharedFile::read`], but only if the bytes are in the page cache, so it never
    /// waits for the disk; `None` if they are not (read on a blocking thread instead).
    fn read_cached(&self, offset: u64, len: usize) -> Option<Result<Buffer>> {
        let mut buffer = buffers::take(len);
        match crate::store::read_cached(&self.file, buffer.as_mut_slice(), offset)? {
            Ok(()) => Some(self.check_unchanged().map(|()| buffer)),
            Err(err) => Some(Err(err).with_context(|| format!("cannot read {}", self.path.display()))),
        }
    }

    /// The manifest reply frame, encoded at the first request and kept.
    fn manifest_frame(&self) -> Result<Bytes, protocol::WireError> {
        if let Some(frame) = self.manifest_frame.get() {
            return Ok(frame.clone());
        }
        let frame = Bytes::from(protocol::encode(&ManifestReply::Manifest((*self.manifest).clone()))?);
        Ok(self.manifest_frame.get_or_init(|| frame).clone())
    }

    /// Fails if the file's size or modification time changed since it was shared.
    fn check_unchanged(&self) -> Result<()> {
        if stamp(&self.file).ok() != Some(self.stamp) {
            bail!("{} changed on disk since it was shared; no longer serving it", self.info.name);
        }
        Ok(())
    }
}

/// The files this peer shares, by id.
#[derive(Clone)]
pub struct Shares {
    files: Arc<Mutex<HashMap<FileId, Arc<SharedFile>>>>,
    throttle: Option<Arc<Throttle>>,
    /// Files withdrawn because our copy went bad, for the tracker to hear of.
    withdrawn: mpsc::UnboundedSender<FileInfo>,
}

impl Shares {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<FileId, Arc<SharedFile>>> {
        self.files.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Shares whose uploads are limited to `bytes_per_sec`, if given.
    /// Returns the files withdrawn from now on, as they are (one at most per shared file).
    pub fn with_upload_limit(bytes_per_sec: Option<u64>) -> (Shares, mpsc::UnboundedReceiver<FileInfo>) {
        let (withdrawn, gone) = mpsc::unbounded_channel();
        let throttle = bytes_per_sec.map(|r| Arc::new(Throttle::new(r)));
        (Shares { files: Arc::default(), throttle, withdrawn }, gone)
    }

    /// Stops serving a file.
    pub fn remove(&self, id: &FileId) {
        self.lock().remove(id);
    }

    /// Adds (or replaces) a shared file.
    pub fn insert(&self, file: SharedFile) {
        self.lock().insert(file.info.id, Arc::new(file));
    }

    /// The shared file with this id.
    pub fn get(&self, id: &FileId) -> Option<Arc<SharedFile>> {
        self.lock().get(id).cloned()
    }

    /// Every shared file with what it uploaded, by name.
    pub fn uploads(&self) -> Vec<Uploads> {
        let mut all: Vec<Uploads> = self
            .lock()
            .values()
            .map(|f| Uploads { info: f.info.clone(), chunks: f.sent.0.load(Ordering::Relaxed), bytes: f.sent.1.load(Ordering::Relaxed) })
            .collect();
        all.sort_by(|a, b| a.info.name.cmp(&b.info.name));
        all
    }

    /// Longest a chunk answer may take: [`STREAM_TIMEOUT`], plus, with an upload limit, the
    /// time the limit needs to send all the chunks one peer may have at once (they share it).
    fn chunk_timeout(&self) -> Duration {
        let share = (SENDS_PER_PEER * crate::content::manifest::DEFAULT_CHUNK_SIZE as usize) as u64;
        STREAM_TIMEOUT + self.throttle.as_ref().map_or(Duration::ZERO, |t| t.time_for(share))
    }

    /// Counts a chunk of `bytes` sent from file `id`.
    fn count_sent(&self, id: &FileId, bytes: usize) {
        if let Some(file) = self.get(id) {
            file.sent.0.fetch_add(1, Ordering::Relaxed);
            file.sent.1.fetch_add(bytes as u64, Ordering::Relaxed);
        }
    }

    /// Every shared file, by name.
    pub fn list(&self) -> Vec<FileInfo> {
        let mut all: Vec<FileInfo> = self.lock().values().map(|f| f.info.clone()).collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }
}

/// Serves downloaders on `endpoint` until `shutdown` is cancelled; `gate` admits only live
/// registered peers, a few connections each.
pub async fn run(endpoint: quinn::Endpoint, shares: Shares, gate: Arc<Gate>, shutdown: CancellationToken) {
    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            Some(_) = conns.join_next() => {}
            incoming = endpoint.accept() => {
                let Some(incoming) = incoming else { break };
                let Ok(permit) = limit.clone().try_acquire_owned() else {
                    incoming.refuse();
                    continue;
                };
                let (shares, gate, shutdown) = (shares.clone(), gate.clone(), shutdown.clone());
                conns.spawn(async move {
                    let _permit = permit;
                    let Ok(conn) = incoming.await else { return };
                    if let Some(admitted) = gate.admit(&conn).await {
                        serve_connection(conn, shares, admitted.sends.clone(), shutdown).await;
                    }
                });
            }
        }
    }
    conns.shutdown().await;
}

/// Answers one downloader's requests until it goes away; `sends` bounds the chunks being sent
/// to this downloader at once, over all its connections.
async fn serve_connection(conn: Connection, shares: Shares, sends: Arc<Semaphore>, shutdown: CancellationToken) {
    let mut streams = JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => {
                conn.close(close::SHUTDOWN, b"peer shutting down");
                break;
            }
            Some(_) = streams.join_next() => {}
            bi = conn.accept_bi() => match bi {
                Ok((send, recv)) => {
                    let answer = answer_manifest(send, recv, shares.clone(), sends.clone());
                    streams.spawn(async move {
                        let _ = tokio::time::timeout(STREAM_TIMEOUT, answer).await;
                    });
                }
                Err(_) => break,
            },
            uni = conn.accept_uni() => match uni {
                Ok(recv) => {
                    let (conn, shares, sends) = (conn.clone(), shares.clone(), sends.clone());
                    streams.spawn(async move {
                        if let Err(err) = answer_chunk(conn, recv, shares, sends).await {
                            tracing::debug!("chunk request failed: {err:#}");
                        }
                    });
                }
                Err(_) => break,
            },
        }
    }
    streams.shutdown().await;
}

async fn read_request(recv: &mut RecvStream) -> Result<PeerRequest> {
    let request = tokio::time::timeout(REQUEST_TIMEOUT, protocol::read_frame(recv, MAX_FRAME)).await;
    Ok(request.context("request timed out")??)
}

/// Answers a manifest request. A manifest can be 2 MiB, so sending it takes one of the
/// downloader's send permits, like a chunk: it cannot pin more by asking repeatedly. The
/// reply is encoded once per shared file and sent without copying.
async fn answer_manifest(mut send: SendStream, mut recv: RecvStream, shares: Shares, sends: Arc<Semaphore>) {
    // Chunks go out in order (see tls::server_transport); a manifest goes ahead of them, so a
    // second download on a busy connection starts at once.
    let _ = send.set_priority(MANIFEST_PRIORITY);
    let request = read_request(&mut recv).await;
    let Ok(_permit) = sends.acquire().await else { return };
    let refusal = match request {
        Ok(PeerRequest::Manifest { version, id }) if version == PROTOCOL_VERSION => match shares.get(&id) {
            Some(file) => {
                tracing::info!("serving chunks of {}", crate::logbook::printable(&file.info.name));
                if let Ok(frame) = file.manifest_frame() {
                    send_frame(&mut send, frame).await;
                    return;
                }
                "cannot encode the manifest".to_string()
            }
            None => format!("file {} is not shared here", id.short()),
        },
        Ok(PeerRequest::Manifest { version, .. }) => {
            format!("protocol version {version} is not supported (this peer speaks {PROTOCOL_VERSION})")
        }
        Ok(_) => "expected a manifest request".into(),
        Err(err) => format!("bad request: {err:#}"),
    };
    if let Ok(frame) = protocol::encode(&ManifestReply::Error(refusal)) {
        send_frame(&mut send, Bytes::from(frame)).await;
    }
}

/// Sends one encoded frame and ends the stream.
async fn send_frame(send: &mut SendStream, frame: Bytes) {
    if send.write_chunk(frame).await.is_ok() {
        let _ = send.finish();
    }
}

/// Reads a chunk request and sends the chunk on a new unidirectional stream.
///
/// The request waits its turn among the downloader's others (its send permits) for as long as
/// it takes: chunks go out one after another, and on a slow link the last of a downloader's
/// requests rightly waits for the ones before it. Once it is this chunk's turn, reading and
/// sending it must finish within [`Shares::chunk_timeout`], so a downloader that stops reading
/// cannot pin a buffer and a permit.
async fn answer_chunk(conn: Connection, mut recv: RecvStream, shares: Shares, sends: Arc<Semaphore>) -> Result<()> {
    let (id, index) = match read_request(&mut recv).await? {
        PeerRequest::Chunk { id, index } => (id, index),
        PeerRequest::Manifest { .. } => bail!("manifest request on a chunk stream"),
    };
    let _permit = sends.acquire().await?;
    let limit = shares.chunk_timeout();
    tokio::time::timeout(limit, send_chunk(conn, shares, id, index)).await.context("downloader too slow to take the chunk")?
}

/// Reads chunk `index` of `id` and sends it (or why not) on a new unidirectional stream.
async fn send_chunk(conn: Connection, shares: Shares, id: FileId, index: u32) -> Result<()> {
    let result = read_chunk(&shares, &id, index).await;
    let mut out = conn.open_uni().await?;
    let header = ChunkHeader { id, index, result: result.as_ref().map(|d| d.len() as u32).map_err(|e| format!("{e:#}")) };
    protocol::write_frame(&mut out, &header).await?;
    let sent = result.as_ref().map(Buffer::len).ok();
    if let Ok(data) = result {
        send_paced(&mut out, data, shares.throttle.as_deref()).await?;
    }
    out.finish()?;
    if let Some(bytes) = sent {
        shares.count_sent(&id, bytes);
    }
    Ok(())
}

/// Reads chunk `index` of shared file `id` off the disk.
async fn read_chunk(shares: &Shares, id: &FileId, index: u32) -> Result<Buffer> {
    let file = shares.get(id).ok_or_else(|| anyhow!("file {} is not shared here", id.short()))?;
    if index >= file.manifest.count() {
        bail!("chunk {index} is past the end of the file ({} chunks)", file.manifest.count());
    }
    let (offset, len) = (file.manifest.offset(index), file.manifest.len_of(index) as usize);
    // A chunk in the page cache (the usual case for a file being served) is copied here: going
    // through a blocking thread cost more than the copy (chunk_throughput: ratio +0.03-0.04).
    let data = match file.read_cached(offset, len) {
        Some(read) => read,
        None => {
            let reader = file.clone();
            tokio::task::spawn_blocking(move || reader.read(offset, len)).await?
        }
    };
    if data.is_err() {
        // Whatever went wrong with our copy, serving it on would only waste downloaders' time.
        shares.remove(id);
        let _ = shares.withdrawn.send(file.info.clone());
        tracing::warn!("stopped sharing {}: {:#}", file.info.name, data.as_ref().err().map(|e| e.to_string()).unwrap_or_default());
    }
    data
}

/// Writes `data`, pacing it through the upload limit if there is one.
/// Unpaced, the buffer is handed to quinn as it is, with no copy, and returns to the pool once
/// the downloader has acknowledged it.
async fn send_paced(out: &mut quinn::SendStream, data: Buffer, throttle: Option<&Throttle>) -> Result<()> {
    let Some(throttle) = throttle else {
        out.write_chunk(data.into_bytes()).await?;
        return Ok(());
    };
    let _sending = throttle.sending();
    let mut rest = data.as_slice();
    while !rest.is_empty() {
        let (slice, after) = rest.split_at(throttle.slice().min(rest.len()));
        throttle.take(slice.len()).await;
        out.write_all(slice).await?;
        rest = after;
    }
    Ok(())
}
