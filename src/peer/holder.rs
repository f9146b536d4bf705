//! One connection to one holder: ask for a manifest, ask for chunks, route the chunk streams.
//!
//! Chunk requests go out on unidirectional streams; the holder answers each on a new
//! unidirectional stream that starts with a [`ChunkHeader`]. A router task reads each incoming
//! stream's header and hands the stream to the fetch waiting for that (file, chunk); streams
//! nobody asked for are stopped. A fetch gives up when the holder goes quiet for
//! [`STALL_TIMEOUT`], so a killed or stalled holder costs seconds, not minutes.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use bytes::Bytes;
use quinn::{Connection, Endpoint, RecvStream};
use tokio::sync::oneshot;
use tokio::task::JoinSet;

use super::scheduler::Penalty;
use crate::manifest::Manifest;
use crate::store::StoreError;
use crate::tls;
use crate::wire::{self, ChunkHeader, FileId, Fingerprint, Holder, MAX_FRAME, MAX_MANIFEST_FRAME, ManifestReply, PROTOCOL_VERSION, PeerRequest, close};

/// Time to connect to a holder.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Time for a holder to send the manifest.
const MANIFEST_TIMEOUT: Duration = Duration::from_secs(15);
/// Longest a requested chunk may go without a single byte arriving (its header included).
/// Long enough for a busy holder on a slow link, short enough that a dead one is left quickly.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Chunk requests outstanding at once on one holder connection, however many downloads share
/// it: what a holder sends to one peer at once (`gate::SENDS_PER_PEER`).
const IN_FLIGHT_PER_HOLDER: usize = super::gate::SENDS_PER_PEER;
/// Longest one chunk may take in all, however slowly it trickles in.
/// A holder pacing uploads to 15 KB/s takes ~280 s for 16 chunks of 256 KiB at once; a holder
/// that merely trickles is outrun long before by the others (endgame racing).
pub const CHUNK_TIMEOUT: Duration = Duration::from_secs(300);

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
/// Several waiters for one chunk only when two downloads of one file share the connection.
type PendingMap = HashMap<(FileId, u32), VecDeque<oneshot::Sender<(ChunkHeader, RecvStream)>>>;
type Pending = Arc<Mutex<PendingMap>>;

/// One connection per holder, shared by every download that needs it at the same time: a
/// holder admits only a few connections per peer, and a warm connection skips a handshake.
/// The connection closes when the last download using it ends.
#[derive(Default)]
pub struct HolderPool {
    slots: Mutex<HashMap<(SocketAddr, Fingerprint), Slot>>,
}

/// The link to one holder; the async lock makes concurrent downloads wait for one handshake.
type Slot = Arc<tokio::sync::Mutex<Weak<HolderLink>>>;

impl HolderPool {
    /// A live connection to `holder`: the one in use if there is one, else a new one.
    pub async fn link(&self, endpoint: Endpoint, config: quinn::ClientConfig, holder: &Holder) -> Result<Arc<HolderLink>> {
        let slot = self.slot(holder);
        let mut current = slot.lock().await;
        if let Some(link) = current.upgrade().filter(|l| l.conn.close_reason().is_none()) {
            return Ok(link);
        }
        let link = Arc::new(HolderLink::connect(endpoint, config, holder).await?);
        *current = Arc::downgrade(&link);
        Ok(link)
    }

    /// The slot for `holder`, forgetting slots nobody uses any more.
    fn slot(&self, holder: &Holder) -> Slot {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let in_use = |slot: &Slot| Arc::strong_count(slot) > 1 || slot.try_lock().map_or(true, |w| w.strong_count() > 0);
        slots.retain(|_, slot| in_use(slot));
        slots.entry((holder.addr, holder.fingerprint)).or_default().clone()
    }
}

/// A connection to one holder, with the task that routes its incoming chunk streams.
pub struct HolderLink {
    /// The holder's peer id.
    pub peer_id: String,
    conn: Connection,
    pending: Pending,
    router: tokio::task::JoinHandle<()>,
    /// Chunk requests outstanding on this connection, across the downloads sharing it.
    in_flight: tokio::sync::Semaphore,
}

impl Drop for HolderLink {
    fn drop(&mut self) {
        self.router.abort();
        self.conn.close(close::DONE, b"done");
    }
}

impl HolderLink {
    /// Connects to `holder`, pinning its fingerprint through `config`.
    async fn connect(endpoint: Endpoint, config: quinn::ClientConfig, holder: &Holder) -> Result<HolderLink> {
        let connecting = endpoint.connect_with(config, holder.addr, tls::SERVER_NAME)?;
        let conn = tokio::time::timeout(CONNECT_TIMEOUT, connecting).await.context("timed out")??;
        let pending = Pending::default();
        let router = tokio::spawn(route(conn.clone(), pending.clone()));
        let in_flight = tokio::sync::Semaphore::new(IN_FLIGHT_PER_HOLDER);
        Ok(HolderLink { peer_id: holder.peer_id.clone(), conn, pending, router, in_flight })
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

    /// Fetches chunk `index` of `id`, which must be `len` bytes (unverified), as the pieces
    /// quinn received it in.
    pub async fn chunk(&self, id: FileId, index: u32, len: u64) -> Result<Pieces, FetchError> {
        // Past what the holder sends at once, a request would only queue there and run down its
        // stall timer; it waits here instead, where waiting is not a fault.
        let _turn = self.in_flight.acquire().await.map_err(|_| FetchError::Gone("link closed".into()))?;
        let (tx, rx) = oneshot::channel();
        self.lock().entry((id, index)).or_default().push_back(tx);
        let result = tokio::time::timeout(CHUNK_TIMEOUT, self.receive(id, index, len, rx)).await;
        forget_closed(&mut self.lock(), (id, index));
        result.map_err(|_| FetchError::Stalled(CHUNK_TIMEOUT))?
    }

    async fn receive(&self, id: FileId, index: u32, want: u64, rx: oneshot::Receiver<(ChunkHeader, RecvStream)>) -> Result<Pieces, FetchError> {
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

/// Quinn buffers taken from a stream per read: one lock of the connection hands over this
/// many received frames.
const PIECES_PER_READ: usize = 32;

/// A chunk as received: quinn's own buffers, in order, exactly the chunk's length in all.
pub struct Pieces(Vec<Bytes>);

impl Pieces {
    /// Copies the chunk into `out`, which should be exactly its length (what does not fit is
    /// left out, and then the chunk fails verification).
    pub fn copy_to(&self, out: &mut [u8]) {
        let mut at = 0;
        for piece in &self.0 {
            let Some(place) = out.get_mut(at..at + piece.len()) else { return };
            place.copy_from_slice(piece);
            at += piece.len();
        }
    }
}

/// Reads exactly `len` bytes from `stream`, failing if it goes quiet for [`STALL_TIMEOUT`].
/// Takes quinn's buffers as they are, many per lock of the connection (one at a time, every
/// ~1 KiB frame contended with the connection driver), and copies nothing: the copy into one
/// contiguous buffer happens on a blocking thread, off the thread that drives the connection.
async fn read_steadily(stream: &mut RecvStream, len: usize) -> Result<Pieces, FetchError> {
    let mut pieces = Vec::with_capacity(len / 1024 + 1);
    let mut batch: [Bytes; PIECES_PER_READ] = Default::default();
    let mut got = 0;
    while got < len {
        let count = match tokio::time::timeout(STALL_TIMEOUT, stream.read_chunks(&mut batch)).await {
            Err(_) => return Err(FetchError::Stalled(STALL_TIMEOUT)),
            Ok(Ok(Some(count))) => count,
            Ok(Ok(None)) => return Err(FetchError::Corrupt(format!("cut short at {got} of {len} bytes"))),
            Ok(Err(e)) => return Err(FetchError::Corrupt(format!("stream failed: {e}"))),
        };
        for piece in &mut batch[..count] {
            got += piece.len();
            if got > len {
                return Err(FetchError::Corrupt(format!("longer than the {len} bytes announced")));
            }
            pieces.push(std::mem::take(piece));
        }
    }
    // The stream must end there: a holder that goes on is not sending what it announced.
    match tokio::time::timeout(STALL_TIMEOUT, stream.read_chunk(1, true)).await {
        Ok(Ok(None)) => Ok(Pieces(pieces)),
        Ok(Ok(Some(_))) => Err(FetchError::Corrupt(format!("longer than the {len} bytes announced"))),
        Ok(Err(e)) => Err(FetchError::Corrupt(format!("stream failed: {e}"))),
        Err(_) => Err(FetchError::Stalled(STALL_TIMEOUT)),
    }
}

/// The oldest fetch still waiting for this chunk.
fn next_waiter(map: &mut PendingMap, key: (FileId, u32)) -> Option<oneshot::Sender<(ChunkHeader, RecvStream)>> {
    forget_closed(map, key);
    let waiters = map.get_mut(&key)?;
    let waiter = waiters.pop_front();
    if waiters.is_empty() {
        map.remove(&key);
    }
    waiter
}

/// Drops waiters that gave up (timed out) on this chunk.
fn forget_closed(map: &mut PendingMap, key: (FileId, u32)) {
    if let Some(waiters) = map.get_mut(&key) {
        waiters.retain(|w| !w.is_closed());
        if waiters.is_empty() {
            map.remove(&key);
        }
    }
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
            let waiter = next_waiter(&mut lock(&pending), (header.id, header.index));
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
    lock(&pending).clear();
}
