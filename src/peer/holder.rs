//! One connection to one holder: ask for a manifest, ask for chunks, route the chunk streams.
//!
//! Chunk requests go out on unidirectional streams; the holder answers each on a new
//! unidirectional stream that starts with a [`ChunkHeader`]. A router task reads each incoming
//! stream's header and hands the stream to the fetch waiting for that (file, chunk); streams
//! nobody asked for are stopped. A fetch gives up when the holder goes quiet for
//! [`STALL_TIMEOUT`], so a killed or stalled holder costs seconds, not minutes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use quinn::{Connection, Endpoint, RecvStream};
use tokio::sync::oneshot;
use tokio::task::JoinSet;

use super::scheduler::Penalty;
use crate::manifest::Manifest;
use crate::store::StoreError;
use crate::tls;
use crate::wire::{self, ChunkHeader, FileId, Holder, MAX_FRAME, MAX_MANIFEST_FRAME, ManifestReply, PROTOCOL_VERSION, PeerRequest, close};

/// Time to connect to a holder.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Time for a holder to send the manifest.
const MANIFEST_TIMEOUT: Duration = Duration::from_secs(15);
/// Longest a requested chunk may go without a single byte arriving (its header included).
/// Long enough for a busy holder on a slow link, short enough that a dead one is left quickly.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest one chunk may take in all, however slowly it trickles in.
const CHUNK_TIMEOUT: Duration = Duration::from_secs(120);

/// Why one chunk did not arrive from one holder.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The connection is gone.
    #[error("connection lost: {0}")]
    Gone(String),
    /// The holder said no.
    #[error("refused: {0}")]
    Refused(String),
    /// Nothing arrived for too long.
    #[error("stalled: nothing for {0:?}")]
    Stalled(Duration),
    /// Wrong length, cut short, or failed verification.
    #[error("{0}")]
    Corrupt(String),
    /// Our own disk failed: fatal for the download.
    #[error(transparent)]
    Disk(#[from] StoreError),
}

impl FetchError {
    /// How the scheduler should treat the holder for it.
    pub fn penalty(&self) -> Penalty {
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
pub struct HolderLink {
    /// The holder's peer id.
    pub peer_id: String,
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
    /// Connects to `holder`, pinning its fingerprint through `config`.
    pub async fn connect(endpoint: Endpoint, config: quinn::ClientConfig, holder: &Holder) -> Result<HolderLink> {
        let connecting = endpoint.connect_with(config, holder.addr, tls::SERVER_NAME)?;
        let conn = tokio::time::timeout(CONNECT_TIMEOUT, connecting).await.context("timed out")??;
        let pending = Pending::default();
        let router = tokio::spawn(route(conn.clone(), pending.clone()));
        Ok(HolderLink { peer_id: holder.peer_id.clone(), conn, pending, router })
    }

    fn lock(&self) -> MutexGuard<'_, PendingMap> {
        lock(&self.pending)
    }

    /// Fetches the manifest of `id` and checks that it hashes to `id`.
    pub async fn manifest(&self, id: FileId) -> Result<Manifest> {
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

    /// Fetches chunk `index` of `id`, which must be `len` bytes (unverified).
    pub async fn chunk(&self, id: FileId, index: u32, len: u64) -> Result<Vec<u8>, FetchError> {
        let (tx, rx) = oneshot::channel();
        self.lock().insert((id, index), tx);
        let result = tokio::time::timeout(CHUNK_TIMEOUT, self.receive(id, index, len, rx)).await;
        self.lock().remove(&(id, index));
        result.map_err(|_| FetchError::Stalled(CHUNK_TIMEOUT))?
    }

    async fn receive(&self, id: FileId, index: u32, want: u64, rx: oneshot::Receiver<(ChunkHeader, RecvStream)>) -> Result<Vec<u8>, FetchError> {
        let gone = |e: &dyn std::fmt::Display| FetchError::Gone(e.to_string());
        let mut request = self.conn.open_uni().await.map_err(|e| gone(&e))?;
        wire::write_frame(&mut request, &PeerRequest::Chunk { id, index }).await.map_err(|e| gone(&e))?;
        let _ = request.finish();
        let answer = tokio::time::timeout(STALL_TIMEOUT, rx).await.map_err(|_| FetchError::Stalled(STALL_TIMEOUT))?;
        let (header, mut stream) = answer.map_err(|_| FetchError::Gone("connection closed".into()))?;
        let len = header.result.map_err(FetchError::Refused)? as u64;
        if len != want {
            return Err(FetchError::Corrupt(format!("chunk {index} announced as {len} bytes, expected {want}")));
        }
        read_steadily(&mut stream, len as usize).await.map_err(|e| match e {
            FetchError::Corrupt(why) => FetchError::Corrupt(format!("chunk {index}: {why}")),
            other => other,
        })
    }
}

/// Reads exactly `len` bytes from `stream`, failing if it goes quiet for [`STALL_TIMEOUT`].
/// Takes quinn's own buffers and copies each once, into a buffer that is never zero-filled.
async fn read_steadily(stream: &mut RecvStream, len: usize) -> Result<Vec<u8>, FetchError> {
    let mut data = Vec::with_capacity(len);
    while data.len() < len {
        let want = len - data.len();
        match tokio::time::timeout(STALL_TIMEOUT, stream.read_chunk(want, true)).await {
            Err(_) => return Err(FetchError::Stalled(STALL_TIMEOUT)),
            Ok(Ok(Some(chunk))) => data.extend_from_slice(&chunk.bytes),
            Ok(Ok(None)) => return Err(FetchError::Corrupt(format!("cut short at {} of {len} bytes", data.len()))),
            Ok(Err(e)) => return Err(FetchError::Corrupt(format!("stream failed: {e}"))),
        }
    }
    Ok(data)
}

fn lock(pending: &Pending) -> MutexGuard<'_, PendingMap> {
    pending.lock().unwrap_or_else(|p| p.into_inner())
}

/// Hands each incoming chunk stream to the fetch waiting for it; unsolicited streams are
/// stopped. When the connection ends, every waiting fetch learns at once.
async fn route(conn: Connection, pending: Pending) {
    let mut headers = JoinSet::new();
    while let Ok(mut stream) = conn.accept_uni().await {
        while headers.try_join_next().is_some() {}
        let pending = pending.clone();
        headers.spawn(async move {
            let header = tokio::time::timeout(STALL_TIMEOUT, wire::read_frame::<_, ChunkHeader>(&mut stream, MAX_FRAME)).await;
            let Ok(Ok(header)) = header else {
                let _ = stream.stop(close::PROTOCOL);
                return;
            };
            match lock(&pending).remove(&(header.id, header.index)) {
                Some(waiter) => {
                    let _ = waiter.send((header, stream));
                }
                None => {
                    let _ = stream.stop(close::PROTOCOL);
                }
            }
        });
    }
    lock(&pending).clear();
}
