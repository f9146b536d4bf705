//! One simulated peer: its own certificate, a real QUIC connection to the tracker from one of
//! many 127.x source addresses, a registration with its files, heartbeats in datagrams at the
//! interval the tracker asks for, and lookups on demand. It speaks the protocol through the
//! crate's own codec, as a real peer does, but holds no files and serves nothing.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use p2pq::protocol::{
    self, FileInfo, Heartbeat, MAX_FRAME, MAX_PUSH_FRAME, PROTOCOL_VERSION, PeerDatagram, TrackerPush, TrackerRequest, TrackerResponse,
    close,
};
use quinn::{Connection, Endpoint};
use tokio_util::sync::CancellationToken;

/// What all simulated peers saw, counted as it happens.
#[derive(Default)]
pub struct Seen {
    /// Connections the tracker closed because it expired their peer: false expiries, since
    /// every simulated peer heartbeats.
    pub expired: AtomicU64,
    /// Connections lost for any other reason before the bench closed them.
    pub lost: AtomicU64,
    /// Heartbeats sent.
    pub beats: AtomicU64,
    /// The last heartbeat interval the tracker pushed, in ms (0: none).
    pub paced_ms: AtomicU64,
    /// Pace pushes received.
    pub paces: AtomicU64,
}

/// Connects from `endpoint` with `client` and registers as `id` with `files`; returns the
/// connection and how long the handshake and the registration each took.
pub async fn join(
    endpoint: &Endpoint,
    client: quinn::ClientConfig,
    tracker: SocketAddr,
    id: String,
    files: Vec<FileInfo>,
) -> Result<(Connection, Duration, Duration)> {
    let started = Instant::now();
    let conn = endpoint.connect_with(client, tracker, p2pq::net::tls::SERVER_NAME)?.await.context("handshake")?;
    let handshake = started.elapsed();
    let started = Instant::now();
    let answer = exchange(&conn, &TrackerRequest::Register { version: PROTOCOL_VERSION, peer_id: id, files }).await?;
    match answer {
        TrackerResponse::Registered { .. } => Ok((conn, handshake, started.elapsed())),
        other => bail!("not registered: {other:?}"),
    }
}

/// One request on its own stream, its answer back.
pub async fn exchange(conn: &Connection, request: &TrackerRequest) -> Result<TrackerResponse> {
    let (mut send, mut recv) = conn.open_bi().await?;
    protocol::write_frame(&mut send, request).await?;
    send.finish()?;
    Ok(protocol::read_frame(&mut recv, MAX_FRAME).await?)
}

/// Heartbeats on `conn` every `period` (or as the tracker paces us), first after `phase`,
/// until `stop`; counts what happens in `seen`.
pub async fn beat(conn: Connection, mut period: Duration, phase: Duration, seen: std::sync::Arc<Seen>, stop: CancellationToken) {
    let mut next = tokio::time::Instant::now() + phase;
    let mut seq = 0u32;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            reason = conn.closed() => return lost(&reason, &seen),
            push = conn.accept_uni() => match push {
                Ok(mut stream) => {
                    if let Ok(Ok(TrackerPush::Pace { heartbeat_ms, .. })) =
                        tokio::time::timeout(Duration::from_secs(5), protocol::read_frame::<_, TrackerPush>(&mut stream, MAX_PUSH_FRAME)).await
                    {
                        period = Duration::from_millis(heartbeat_ms.min(protocol::MAX_HEARTBEAT_MS).into()).max(period);
                        seen.paced_ms.store(period.as_millis() as u64, Ordering::Relaxed);
                        seen.paces.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Err(reason) => return lost(&reason, &seen),
            },
            () = tokio::time::sleep_until(next) => {
                next += period;
                let beat = PeerDatagram::Alive(Heartbeat { version: PROTOCOL_VERSION, seq, uploaded: 0, downloaded: 0 });
                seq = seq.wrapping_add(1);
                if let Ok(frame) = protocol::encode(&beat) && conn.send_datagram(frame.into()).is_ok() {
                    seen.beats.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

fn lost(reason: &quinn::ConnectionError, seen: &Seen) {
    match reason {
        quinn::ConnectionError::ApplicationClosed(c) if c.error_code == close::EXPIRED => seen.expired.fetch_add(1, Ordering::Relaxed),
        _ => seen.lost.fetch_add(1, Ordering::Relaxed),
    };
}

/// `n` made-up files of peer `peer`: ids from a counter, so every peer's files are its own.
pub fn files_of(peer: usize, n: usize) -> Vec<FileInfo> {
    (0..n)
        .map(|k| {
            let id = blake3::hash(format!("{peer}/{k}").as_bytes()).into();
            FileInfo { id, name: name_of(peer, k), size: 1 << 20, folder: None }
        })
        .collect()
}

/// The name of peer `peer`'s `k`th file.
pub fn name_of(peer: usize, k: usize) -> String {
    format!("p{peer}-f{k}.bin")
}
