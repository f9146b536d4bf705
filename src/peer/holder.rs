//! One connection to one holder: ask for a manifest, ask for chunks, route the chunk streams.
//!
//! Chunk requests go out on unidirectional streams; the holder answers each on a new
//! unidirectional stream that starts with a [`ChunkHeader`]. A router task reads each incoming
//! stream's header and hands the stream to the fetch waiting for that (file, chunk); streams
//! nobody asked for are stopped.
//!
//! A holder is judged by its link, not by one request. It sends a downloader's chunks one
//! after another, so a request may rightly wait behind many others; what counts is whether
//! anything at all arrives from the holder while we wait for it. Only silence on the whole
//! link for [`HolderLink::stall_timeout`] (derived from the round trip and the measured rate,
//! never under [`STALL_FLOOR`]) fails the requests waiting on it, and then the holder is
//! dropped for the download. A slow holder that keeps delivering keeps its work, and how much
//! work it gets follows its link ([`Window`]).

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use quinn::{Connection, Endpoint, RecvStream};
use tokio::sync::{Notify, oneshot};

mod files;
mod route;

use super::liveness::{Heard, LinkState, Waiting, state};
pub use super::pieces::Pieces;
use super::pieces::read_whole;
use super::scheduler::Penalty;
use super::throttle::Throttle;
use super::window::Window;
use crate::content::manifest::Manifest;
use crate::net::tls::{self, Identity};
use crate::protocol::{
    self, ChunkHeader, Description, FileId, FileInfo, Fingerprint, Holder, MAX_FRAME, MAX_MANIFEST_FRAME, ManifestReply, PEER_ALPN,
    PROTOCOL_VERSION, PeerRequest, close,
};
use crate::store::StoreError;
use route::{forget_closed, lock, route};

/// Least silence, with requests waiting, after which a holder counts as gone: long enough for
/// a busy holder's disk and a few lost packets, short enough that a dead one is left quickly.
pub const STALL_FLOOR: Duration = Duration::from_secs(5);
/// Round trips of silence after which a holder counts as gone: QUIC's loss recovery backs off
/// over a few probe timeouts of about one round trip each before it gives up on a burst.
const STALL_RTTS: u32 = 8;
/// Bytes a holder pacing its uploads may send in one go (`throttle::SLICE`); silence of a few
/// such slices at the measured rate is still a holder at work.
const STALL_BYTES: f64 = 4.0 * super::throttle::SLICE as f64;
/// Time for a chunk stream's header once the stream has arrived (the header comes first).
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Why one chunk did not arrive from one holder.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The connection is gone.
    #[error("connection lost: {0}")]
    Gone(String),
    /// The holder said no.
    #[error("refused: {0}")]
    Refused(String),
    /// Nothing at all arrived from the holder for too long while we waited for it.
    #[error("silent for {0:.1?} while chunks were due")]
    Stalled(Duration),
    /// Wrong length, cut short, or failed verification.
    #[error("{0}")]
    Corrupt(String),
    /// Our own disk failed: fatal for the download.
    #[error(transparent)]
    Disk(#[from] StoreError),
    /// Our own verifier failed (a bug here, not the holder's doing): fatal for the download,
    /// and no strike against the holder.
    #[error("internal error while verifying: {0}")]
    Internal(String),
}

impl FetchError {
    /// How the scheduler should treat the holder for it: real silence, a refusal or a lost
    /// connection drop it; wrong bytes are a strike.
    pub fn penalty(&self) -> Penalty {
        match self {
            FetchError::Gone(_) | FetchError::Refused(_) | FetchError::Stalled(_) => Penalty::Drop,
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
    slots: Mutex<HashMap<(SocketAddr, Fingerprint), PoolSlot>>,
    /// Chunks in flight per holder if fixed; `None` follows each link.
    window: Option<usize>,
    /// The download limit, shared by every holder link (so by every download).
    limit: Option<Arc<Throttle>>,
    /// Introductions to holders behind NATs, if a tracker can make them ([`super::punch`]).
    pub(super) rendezvous: Option<super::punch::Rendezvous>,
}

/// The link to one holder; the async lock makes concurrent downloads wait for one handshake.
type PoolSlot = Arc<tokio::sync::Mutex<Weak<HolderLink>>>;

impl HolderPool {
    /// A pool whose links keep `window` chunks in flight, or follow the link if `None`.
    pub fn new(window: Option<usize>, limit: Option<Arc<Throttle>>) -> HolderPool {
        HolderPool { slots: Mutex::default(), window, limit, rendezvous: None }
    }

    /// A live connection to `holder`: the one in use if there is one, else a new one as
    /// `identity` (its TLS configuration is only built then: that parses the key, which costs
    /// more than fetching a small file).
    pub async fn link(&self, endpoint: Endpoint, identity: &Identity, holder: &Holder) -> Result<Arc<HolderLink>> {
        let slot = self.slot(holder);
        let mut current = slot.lock().await;
        if let Some(link) = current.upgrade().filter(|l| l.conn.close_reason().is_none()) {
            return Ok(link);
        }
        let config = match holder.vouched() {
            true => tls::client_config(identity, PEER_ALPN, holder.fingerprint)?,
            false => tls::client_config_unpinned(identity, PEER_ALPN)?,
        };
        let mut link = HolderLink::connect(endpoint, config, holder, self.window, self.rendezvous.as_ref()).await?;
        if link.fingerprint == identity.fingerprint {
            bail!("{} is this peer itself", holder.addr);
        }
        link.limit = self.limit.clone();
        let link = Arc::new(link);
        *current = Arc::downgrade(&link);
        Ok(link)
    }

    /// The slot for `holder`, forgetting slots nobody uses any more.
    fn slot(&self, holder: &Holder) -> PoolSlot {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let in_use = |slot: &PoolSlot| Arc::strong_count(slot) > 1 || slot.try_lock().map_or(true, |w| w.strong_count() > 0);
        slots.retain(|_, slot| in_use(slot));
        slots.entry((holder.addr, holder.fingerprint)).or_default().clone()
    }
}

/// A connection to one holder, with the task that routes its incoming chunk streams.
pub struct HolderLink {
    /// The holder's peer id.
    pub peer_id: String,
    /// The holder's certificate fingerprint (pinned on connecting).
    pub fingerprint: crate::protocol::Fingerprint,
    /// Whether it was found on the DHT (no source vouched for its certificate).
    pub from_dht: bool,
    conn: Connection,
    pending: Pending,
    router: tokio::task::JoinHandle<()>,
    state: Arc<Mutex<LinkState>>,
    /// Woken when a chunk request ends, for fetches waiting for room in the window.
    turns: Notify,
    /// The peer's download limit: each request waits for its chunk's bytes before it goes.
    limit: Option<Arc<Throttle>>,
    /// Set once the holder showed it does not know [`PeerRequest::Files`].
    no_files: std::sync::atomic::AtomicBool,
}

impl Drop for HolderLink {
    fn drop(&mut self) {
        self.router.abort();
        self.conn.close(close::DONE, b"done");
    }
}

/// A chunk request's place in the window, given back on drop.
struct Turn<'a>(&'a HolderLink);

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        state(&self.0.state).in_flight -= 1;
        self.0.turns.notify_waiters();
    }
}

impl HolderLink {
    /// Connects to `holder`, pinning its fingerprint through `config` (or learning it, for a
    /// holder nobody vouched for).
    /// Behind a NAT, through an introduction by the tracker when `rendezvous` can ask for one.
    async fn connect(
        endpoint: Endpoint,
        config: quinn::ClientConfig,
        holder: &Holder,
        window: Option<usize>,
        rendezvous: Option<&super::punch::Rendezvous>,
    ) -> Result<HolderLink> {
        let conn = super::punch::connect(&endpoint, config, holder, rendezvous).await?;
        let fingerprint = if holder.vouched() { holder.fingerprint } else { tls::remote_fingerprint(&conn)? };
        let pending = Pending::default();
        let now = Instant::now();
        let state = Arc::new(Mutex::new(LinkState { window: Window::new(window, now), in_flight: 0, waiting: 0, heard: now }));
        let span = tracing::debug_span!("holder", peer = %holder.peer_id, addr = %holder.addr);
        let router = crate::net::task::spawn(span, route(conn.clone(), pending.clone(), state.clone()));
        Ok(HolderLink {
            peer_id: holder.peer_id.clone(),
            fingerprint,
            from_dht: !holder.vouched(),
            conn,
            pending,
            router,
            state,
            turns: Notify::new(),
            limit: None,
            no_files: Default::default(),
        })
    }

    /// The holder's address.
    pub fn addr(&self) -> SocketAddr {
        crate::net::addrs::canonical(self.conn.remote_address())
    }

    fn lock(&self) -> MutexGuard<'_, PendingMap> {
        lock(&self.pending)
    }

    /// Chunks of `chunk_len` bytes to keep in flight at this holder now.
    pub fn window(&self, chunk_len: u64) -> usize {
        let mut s = state(&self.state);
        s.window.observe(Instant::now(), self.conn.rtt());
        s.window.chunks(chunk_len)
    }

    /// Silence after which the holder counts as gone: [`STALL_RTTS`] round trips, or a few
    /// pacing slices at the rate it has been delivering, and never under [`STALL_FLOOR`].
    pub fn stall_timeout(&self) -> Duration {
        let rate = state(&self.state).window.rate();
        let paced = if rate > 0.0 { Duration::from_secs_f64((STALL_BYTES / rate).min(3600.0)) } else { Duration::ZERO };
        STALL_FLOOR.max(self.conn.rtt() * STALL_RTTS).max(paced)
    }

    /// Runs `work` (a request to the holder) until it ends, or until the link has been silent
    /// for [`HolderLink::stall_timeout`] while requests wait on it.
    async fn heard_within<F: Future>(&self, work: F) -> Result<F::Output, FetchError> {
        let _waiting = Waiting::new(&self.state);
        let mut work = std::pin::pin!(work);
        loop {
            let (limit, silent) = (self.stall_timeout(), state(&self.state).silent_for());
            if silent >= limit {
                // Silence is the link's, not one request's: close it, so no download (this one
                // finding the holder again included) is handed the dead connection.
                self.conn.close(close::DONE, b"silent");
                return Err(FetchError::Stalled(silent));
            }
            if let Ok(done) = tokio::time::timeout(limit - silent, &mut work).await {
                return Ok(done);
            }
        }
    }

    /// Waits for room in the window for a chunk of `len` bytes.
    async fn turn(&self, len: u64) -> Turn<'_> {
        loop {
            let notified = self.turns.notified();
            let room = self.window(len);
            {
                let mut s = state(&self.state);
                if s.in_flight < room {
                    s.in_flight += 1;
                    return Turn(self);
                }
            }
            notified.await;
        }
    }

    /// Fetches the manifest of `id` and checks that it hashes to `id`.
    pub async fn manifest(&self, id: FileId) -> Result<Manifest> {
        let reply = self.heard_within(async {
            let (mut send, recv) = self.conn.open_bi().await?;
            protocol::write_frame(&mut send, &PeerRequest::Manifest { version: PROTOCOL_VERSION, id }).await?;
            send.finish()?;
            let mut heard = Heard { stream: recv, state: &self.state };
            anyhow::Ok(protocol::read_frame(&mut heard, MAX_MANIFEST_FRAME).await?)
        });
        let manifest = match reply.await?? {
            ManifestReply::Manifest(manifest) => manifest,
            ManifestReply::Error(reason) => bail!("{reason}"),
        };
        manifest.validate(&id)?;
        Ok(manifest)
    }

    /// Asks the holder what `id` is (`Describe`): the name it is shared under, checked like
    /// any name, its size, whether it is a folder.
    pub async fn describe(&self, id: FileId) -> Result<FileInfo> {
        let reply = self.heard_within(async {
            let (mut send, recv) = self.conn.open_bi().await?;
            protocol::write_frame(&mut send, &PeerRequest::Describe { id }).await?;
            send.finish()?;
            let mut heard = Heard { stream: recv, state: &self.state };
            anyhow::Ok(protocol::read_frame(&mut heard, MAX_FRAME).await?)
        });
        let info = match reply.await?? {
            Description::File(info) if info.id == id => info,
            Description::File(info) => bail!("described {} when asked for {}", info.id.short(), id.short()),
            Description::Error(reason) => bail!("{reason}"),
        };
        crate::content::names::check_name(&info.name).map_err(|why| anyhow::anyhow!("bad name for {}: {why}", id.short()))?;
        Ok(info)
    }

    /// Asks the holder what it has of `id` (`Observe`): the stream its [`Availability`]
    /// frames arrive on, for [`super::download::availability`] to read.
    ///
    /// [`Availability`]: crate::protocol::Availability
    pub async fn observe(&self, id: FileId) -> Result<RecvStream> {
        let (mut send, recv) = self.conn.open_bi().await?;
        protocol::write_frame(&mut send, &PeerRequest::Observe { id }).await?;
        send.finish()?;
        Ok(recv)
    }

    /// Fetches chunk `index` of `id`, which must be `len` bytes (unverified), as the pieces
    /// quinn received it in.
    pub async fn chunk(&self, id: FileId, index: u32, len: u64) -> Result<Pieces, FetchError> {
        // Past the window, a request would only queue at the holder; it waits here instead,
        // where waiting is not a fault.
        let _turn = self.turn(len).await;
        // A download limit paces requests, not reads: the holder sends only what is asked,
        // so the network carries no more than the limit (reading slowly would let a window's
        // worth arrive at full speed). Waiting here is not the holder's silence.
        if let Some(limit) = &self.limit {
            limit.take(len as usize).await;
        }
        let (tx, rx) = oneshot::channel();
        self.lock().entry((id, index)).or_default().push_back(tx);
        let result = self.heard_within(self.receive(id, index, len, rx)).await;
        forget_closed(&mut self.lock(), (id, index));
        result?
    }

    async fn receive(
        &self,
        id: FileId,
        index: u32,
        want: u64,
        rx: oneshot::Receiver<(ChunkHeader, RecvStream)>,
    ) -> Result<Pieces, FetchError> {
        let gone = |e: &dyn std::fmt::Display| FetchError::Gone(e.to_string());
        let mut request = self.conn.open_uni().await.map_err(|e| gone(&e))?;
        protocol::write_frame(&mut request, &PeerRequest::Chunk { id, index }).await.map_err(|e| gone(&e))?;
        let _ = request.finish();
        let (header, mut stream) = rx.await.map_err(|_| FetchError::Gone("connection closed".into()))?;
        let len = header.result.map_err(FetchError::Refused)? as u64;
        if len != want {
            return Err(FetchError::Corrupt(format!("chunk {index} announced as {len} bytes, expected {want}")));
        }
        read_whole(&mut stream, len as usize, &self.state).await.map_err(|why| FetchError::Corrupt(format!("chunk {index}: {why}")))
    }
}
