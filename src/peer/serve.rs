//! The holder side: answer manifest and chunk requests for the files this peer shares.
//!
//! A request names a file by id; only files in [`Shares`] are ever opened, and only chunks
//! within their size (and, for a download under way, only verified ones) are read. A manifest
//! request is answered on its own bidirectional stream, an `Observe` too (see [`observe`]);
//! a chunk request (a unidirectional stream) is answered on a new unidirectional stream: a
//! [`ChunkHeader`] then the chunk's bytes. A bad request ends its stream only.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use quinn::{Connection, RecvStream, SendStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

mod files;

use super::gate::{Gate, SENDS_PER_PEER};
use super::observe;
use super::superseed::Crowds;
use super::throttle::{Sending, Throttle};
use crate::net::task;
use crate::protocol::{
    self, Availability, ChunkHeader, Description, FileId, MAX_FRAME, ManifestReply, PROTOCOL_VERSION, PeerRequest, close,
};
use crate::store::buffers::Buffer;
use crate::store::shares::Shares;

/// How long a downloader may take to send one request frame.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Downloaders served at once.
const MAX_CONNECTIONS: usize = 512;
/// Send priority of manifest replies; other control answers (`Observe` news) keep quinn's
/// default, 0, and chunk streams go below that, in the order they were asked for (see
/// [`chunk_priority`]).
const MANIFEST_PRIORITY: i32 = 1;
/// Longest one answer may take to send once it is its turn (a manifest from its stream
/// opening): a downloader that stops reading cannot pin a chunk buffer or a send slot longer
/// than this. With an upload limit, chunk answers get longer: the time the limit takes to send
/// a peer's share of chunks.
const STREAM_TIMEOUT: Duration = Duration::from_secs(60);

/// What serving needs: the files, and the upload limit they share.
#[derive(Clone)]
pub struct Serving {
    /// The files this peer shares.
    pub shares: Shares,
    /// The upload limit, if any.
    pub throttle: Option<Arc<Throttle>>,
    /// Which chunks of each complete file were offered to how many downloaders.
    pub crowds: Arc<Crowds>,
}

impl Serving {
    /// Longest a chunk answer may take: [`STREAM_TIMEOUT`], plus, with an upload limit, the
    /// time one peer's share of the limit needs to send all the chunks it may have at once.
    fn chunk_timeout(&self) -> Duration {
        let share = (SENDS_PER_PEER * crate::content::manifest::DEFAULT_CHUNK_SIZE as usize) as u64;
        STREAM_TIMEOUT + self.throttle.as_ref().map_or(Duration::ZERO, |t| t.time_for_share(share))
    }
}

/// Serves downloaders on `endpoint` until `shutdown` is cancelled; `gate` admits only live
/// registered peers, a few connections each.
pub async fn run(endpoint: quinn::Endpoint, serving: Serving, gate: Arc<Gate>, shutdown: CancellationToken) {
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
                let (serving, gate, shutdown) = (serving.clone(), gate.clone(), shutdown.clone());
                let span = tracing::debug_span!("downloader", addr = %crate::net::addrs::canonical(incoming.remote_address()), peer = tracing::field::Empty);
                task::spawn_in(&mut conns, span, async move {
                    let _permit = permit;
                    let Ok(conn) = incoming.await else { return };
                    if let Ok(fp) = crate::net::tls::remote_fingerprint(&conn) {
                        tracing::Span::current().record("peer", tracing::field::display(fp.short()));
                    }
                    if let Some(admitted) = gate.admit(&conn).await {
                        let serving = match &admitted.public_only {
                            Some(public) => Serving { shares: serving.shares.public_view(public.clone()), ..serving },
                            None => serving,
                        };
                        serve_connection(conn, serving, admitted.sends.clone(), shutdown).await;
                    }
                });
            }
        }
    }
    conns.shutdown().await;
}

/// Answers one downloader's requests until it goes away; `sends` bounds the chunks being sent
/// to this downloader at once, over all its connections.
async fn serve_connection(conn: Connection, serving: Serving, sends: Arc<Semaphore>, shutdown: CancellationToken) {
    let mut streams = JoinSet::new();
    let observes = Arc::new(Semaphore::new(observe::MAX_OBSERVES_PER_CONNECTION));
    let served = Arc::new(AtomicU64::new(0));
    let mut asked = 0u32;
    // The crowds this downloader is in, while it is connected.
    let joined = Arc::new(std::sync::Mutex::new(Vec::new()));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => {
                conn.close(close::SHUTDOWN, b"peer shutting down");
                break;
            }
            Some(_) = streams.join_next() => {}
            bi = conn.accept_bi() => match bi {
                Ok((send, recv)) => {
                    let (serving, sends, observes, shutdown) = (serving.clone(), sends.clone(), observes.clone(), shutdown.clone());
                    let (conn, served, joined) = (conn.clone(), served.clone(), joined.clone());
                    task::spawn_in(&mut streams, tracing::debug_span!("control request"), async move {
                        answer_control(&conn, (send, recv), (serving, served, joined), sends, observes, shutdown).await;
                    });
                }
                Err(_) => break,
            },
            uni = conn.accept_uni() => match uni {
                Ok(recv) => {
                    let (conn, serving, sends, served) = (conn.clone(), serving.clone(), sends.clone(), served.clone());
                    let priority = chunk_priority(asked);
                    asked = asked.wrapping_add(1);
                    task::spawn_in(&mut streams, tracing::debug_span!("chunk request"), async move {
                        if let Err(err) = answer_chunk(conn, (recv, priority), serving, sends).await {
                            tracing::debug!("chunk request failed: {err:#}");
                        } else {
                            served.fetch_add(1, Ordering::Relaxed);
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

/// Answers a request on a bidirectional stream: a manifest (within [`STREAM_TIMEOUT`]), an
/// `Observe` (for as long as the downloader watches, at most
/// [`observe::MAX_OBSERVES_PER_CONNECTION`] at once), a `Describe`, or whole small `Files`.
async fn answer_control(
    conn: &Connection,
    (send, mut recv): (SendStream, RecvStream),
    (serving, served, keep): (Serving, Arc<AtomicU64>, Arc<std::sync::Mutex<Vec<super::superseed::Observer>>>),
    sends: Arc<Semaphore>,
    observes: Arc<Semaphore>,
    shutdown: CancellationToken,
) {
    let shares = serving.shares.clone();
    let request = read_request(&mut recv).await;
    if let Ok(PeerRequest::Observe { id }) = request {
        // Like a manifest, news of what we have goes ahead of chunks queued on the connection:
        // behind them it would arrive after they did, too late to steer the picking.
        let mut send = send;
        let _ = send.set_priority(MANIFEST_PRIORITY);
        let Ok(_watching) = observes.try_acquire_owned() else {
            if let Ok(frame) = protocol::encode(&Availability::Error("too many observe streams on this connection".into())) {
                send_frame(&mut send, Bytes::from(frame)).await;
            }
            return;
        };
        let watched = observe::Watched { shares: &shares, crowds: &serving.crowds, served: &served, keep: &keep };
        if let Err(err) = observe::answer(send, id, &watched, &shutdown).await {
            tracing::debug!("observe stream ended: {err:#}");
        }
        return;
    }
    if let Ok(PeerRequest::Describe { id }) = request {
        let _ = tokio::time::timeout(REQUEST_TIMEOUT, describe(send, &shares, &id)).await;
        return;
    }
    if let Ok(PeerRequest::Files { ids }) = request {
        if let Err(err) = files::answer(conn, send, &ids, &serving, &sends).await {
            tracing::debug!("files request failed: {err:#}");
        }
        return;
    }
    let _ = tokio::time::timeout(STREAM_TIMEOUT, answer_manifest(send, request, shares, sends)).await;
}

/// Answers a `Describe`: the file as shared here, if this downloader may see it.
async fn describe(mut send: SendStream, shares: &Shares, id: &FileId) {
    let reply = match shares.get(id) {
        Some(file) => Description::File(file.info.clone()),
        None => Description::Error(shares.refusal(id)),
    };
    if let Ok(frame) = protocol::encode(&reply) {
        send_frame(&mut send, Bytes::from(frame)).await;
    }
}

/// Answers a manifest request. A manifest can be 2 MiB, so sending it takes one of the
/// downloader's send permits, like a chunk: it cannot pin more by asking repeatedly. The
/// reply is encoded once per shared file and sent without copying.
async fn answer_manifest(mut send: SendStream, request: Result<PeerRequest>, shares: Shares, sends: Arc<Semaphore>) {
    // Chunks go out in order (see tls::server_transport); a manifest goes ahead of them, so a
    // second download on a busy connection starts at once.
    let _ = send.set_priority(MANIFEST_PRIORITY);
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
            None => shares.refusal(&id),
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
/// sending it must finish within [`Serving::chunk_timeout`], so a downloader that stops reading
/// cannot pin a buffer and a permit.
async fn answer_chunk(conn: Connection, (mut recv, priority): (RecvStream, i32), serving: Serving, sends: Arc<Semaphore>) -> Result<()> {
    let (id, index) = match read_request(&mut recv).await? {
        PeerRequest::Chunk { id, index } => (id, index),
        PeerRequest::Manifest { .. } | PeerRequest::Observe { .. } | PeerRequest::Describe { .. } | PeerRequest::Files { .. } => {
            bail!("control request on a chunk stream")
        }
    };
    // Counted as taken when asked for, not when sent: a crowd's offers then pass over a chunk
    // already on its way to someone, and offer it again only once it had time to spread.
    let asked = serving.crowds.ask(&id, index);
    let permit = sends.acquire().await?;
    // In the upload limit's lane, in the order the permits admit the downloader's requests.
    let lane = match serving.throttle.as_deref() {
        Some(throttle) => Some(throttle.sending(crate::net::tls::remote_fingerprint(&conn)?)),
        None => None,
    };
    let limit = serving.chunk_timeout();
    let sending = tokio::time::timeout(limit, send_chunk(&conn, &serving, (id, index), priority, lane.as_ref()));
    let out = sending.await.context("downloader too slow to take the chunk")??;
    drop((lane, permit));
    if let Some(asked) = asked {
        // Sent means there, acknowledged, not handed to quinn: on an uplink shared by a crowd a
        // chunk's bytes wait seconds in the connection's buffer, and offered again meanwhile
        // it went out twice.
        if let Ok(Ok(None)) = tokio::time::timeout(limit, out.stopped()).await {
            asked.sent();
        }
    }
    Ok(())
}

/// Reads chunk `index` of `id` and sends it (or why not) on a new unidirectional stream, which
/// it returns finished; with an upload limit, through the downloader's `lane`.
async fn send_chunk(
    conn: &Connection,
    serving: &Serving,
    (id, index): (FileId, u32),
    priority: i32,
    lane: Option<&Sending<'_>>,
) -> Result<SendStream> {
    let result = read_chunk(&serving.shares, &id, index).await;
    let mut out = conn.open_uni().await?;
    let _ = out.set_priority(priority);
    let header = ChunkHeader { id, index, result: result.as_ref().map(|d| d.len() as u32).map_err(|e| format!("{e:#}")) };
    protocol::write_frame(&mut out, &header).await?;
    let sent = result.as_ref().map(Buffer::len).ok();
    if let Ok(data) = result {
        send_paced(&mut out, data, lane).await?;
    }
    out.finish()?;
    if let Some(bytes) = sent {
        serving.shares.count_sent(&id, bytes, crate::net::addrs::canonical(conn.remote_address()));
    }
    Ok(out)
}

/// The send priority of a downloader's chunk request number `asked`: below every control
/// answer, and each below the ones asked for before it. Sent side by side (quinn's default for
/// equal priorities), a downloader's chunks all arrive late together: one asking a seeder shared
/// by a crowd of 16 for 4 at once has nothing verified to trade until 4 of its shares of the
/// uplink have passed. One after another, the first lands after one share, and is served on.
fn chunk_priority(asked: u32) -> i32 {
    -1 - (asked % (1 << 30)) as i32
}

/// Reads chunk `index` of shared file `id` off the disk.
async fn read_chunk(shares: &Shares, id: &FileId, index: u32) -> Result<Buffer> {
    let file = shares.get(id).ok_or_else(|| anyhow!("{}", shares.refusal(id)))?;
    if index >= file.manifest.count() {
        bail!("chunk {index} is past the end of the file ({} chunks)", file.manifest.count());
    }
    if !file.has(index) {
        bail!("chunk {index} of {} is not verified here yet", file.info.name);
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
        shares.withdraw(&file);
        tracing::warn!("stopped sharing {}: {:#}", file.info.name, data.as_ref().err().map(|e| e.to_string()).unwrap_or_default());
    }
    data
}

/// Writes `data` to the downloader, pacing it through its `lane` of the upload limit if there
/// is one; the limit is shared equally by the downloaders (by certificate, as the gate
/// admitted them), whatever their number of streams.
/// Unpaced, the buffer is handed to quinn as it is, with no copy, and returns to the pool once
/// the downloader has acknowledged it.
async fn send_paced(out: &mut quinn::SendStream, data: Buffer, lane: Option<&Sending<'_>>) -> Result<()> {
    let Some(lane) = lane else {
        out.write_chunk(data.into_bytes()).await?;
        return Ok(());
    };
    let mut rest = data.as_slice();
    while !rest.is_empty() {
        let (slice, after) = rest.split_at(lane.take(rest.len()).await);
        out.write_all(slice).await?;
        rest = after;
    }
    Ok(())
}
