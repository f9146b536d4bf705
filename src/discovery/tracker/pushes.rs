//! What the tracker pushes to us on our connection to it: [`TrackerPush::Punch`], an
//! introduction to a downloader that cannot reach us directly (see `tracker::rendezvous`), and
//! [`TrackerPush::Pace`], a slower heartbeat while the tracker is busy.
//!
//! Each push arrives on a unidirectional stream the tracker opens, one message a stream, read
//! through the codec with [`MAX_PUSH_FRAME`] as its limit. For a punch we wait as told, then
//! start a QUIC connection attempt towards the downloader's observed address from our one
//! endpoint, the one the tracker and the downloader see us at. Why a connection attempt and
//! not a bare datagram: quinn owns the socket and has no way to send raw bytes, and an attempt
//! sends exactly what we need, a datagram from our port to the downloader's, resent every few
//! tens of milliseconds while the downloader's NAT may still drop it. That opens our NAT for
//! the downloader's own connection, which quinn's accept loop then serves like any other,
//! pinning and admission included. The attempt itself speaks [`crate::protocol::PUNCH_ALPN`],
//! which no server accepts, so where it lands it is refused at once; quinn gives it up after
//! [`PUNCH_LIFETIME`] in any case.
//!
//! Punches are bounded here too ([`PUNCHES_AT_ONCE`]), whatever the tracker asks.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use quinn::{Connection, Endpoint, RecvStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::protocol::{self, MAX_PUSH_FRAME, MAX_START_IN_MS, PROTOCOL_VERSION, TrackerPush};

/// How long one punch keeps sending: longer than the downloader's attempts
/// (`peer::punch`), short enough that a holder never sends for long towards anyone.
const PUNCH_LIFETIME: Duration = Duration::from_secs(3);
/// Punches under way at once; pushes beyond are ignored.
const PUNCHES_AT_ONCE: usize = 32;
/// How long the tracker may take to send one push once it opened its stream.
const PUSH_READ_TIMEOUT: Duration = Duration::from_secs(2);

/// Serves the tracker's pushes on `conn` until it closes; a pace it asks for goes to `pace`.
pub(super) async fn serve(conn: &Connection, endpoint: &Endpoint, pace: watch::Sender<Option<Duration>>) {
    let pace = Arc::new(pace);
    let config = match crate::net::tls::punch_config(PUNCH_LIFETIME) {
        Ok(config) => config,
        Err(err) => {
            tracing::warn!("cannot punch holes for downloaders: {err:#}");
            return std::future::pending().await;
        }
    };
    let room = Arc::new(Semaphore::new(PUNCHES_AT_ONCE));
    let mut work = JoinSet::new();
    while let Ok(stream) = conn.accept_uni().await {
        while work.try_join_next().is_some() {}
        let Ok(permit) = room.clone().try_acquire_owned() else {
            tracing::debug!("too many punches under way; a push is ignored");
            continue;
        };
        let (endpoint, config, pace) = (endpoint.clone(), config.clone(), pace.clone());
        crate::net::task::spawn_in(&mut work, tracing::debug_span!("push"), async move {
            let _permit = permit;
            handle(stream, &endpoint, config, &pace).await;
        });
    }
}

/// Reads one push and acts on it.
async fn handle(mut stream: RecvStream, endpoint: &Endpoint, config: quinn::ClientConfig, pace: &watch::Sender<Option<Duration>>) {
    let push = tokio::time::timeout(PUSH_READ_TIMEOUT, protocol::read_frame::<_, TrackerPush>(&mut stream, MAX_PUSH_FRAME)).await;
    match push {
        Ok(Ok(TrackerPush::Punch { version: PROTOCOL_VERSION, peer_id, addr, start_in_ms })) => {
            punch_all(endpoint, config, &peer_id, vec![addr], start_in_ms).await
        }
        Ok(Ok(TrackerPush::PunchAll { version: PROTOCOL_VERSION, peer_id, addrs, start_in_ms })) => {
            punch_all(endpoint, config, &peer_id, addrs, start_in_ms).await
        }
        Ok(Ok(TrackerPush::Punch { version, .. } | TrackerPush::PunchAll { version, .. })) => {
            tracing::debug!(version, "a punch of another protocol version is ignored")
        }
        Ok(Ok(TrackerPush::Pace { heartbeat_ms, expiry_ms })) => {
            tracing::debug!(heartbeat_ms, expiry_ms, "the tracker asks for a heartbeat pace");
            pace.send_replace(Some(Duration::from_millis(heartbeat_ms.into())));
        }
        Ok(Err(err)) => tracing::debug!("bad push from the tracker: {err}"),
        Err(_) => tracing::debug!("the tracker's push timed out"),
    }
}

/// After `start_in_ms`, sends towards each of `addrs` (the downloader `peer_id`'s, at most
/// 1 + `MAX_PEER_ADDRESSES` of them) at once.
async fn punch_all(endpoint: &Endpoint, config: quinn::ClientConfig, peer_id: &str, addrs: Vec<SocketAddr>, start_in_ms: u32) {
    let wait = Duration::from_millis(start_in_ms.min(MAX_START_IN_MS).into());
    tracing::debug!(downloader = %peer_id, ?addrs, ?wait, "punching towards a downloader");
    tokio::time::sleep(wait).await;
    let mut all = tokio::task::JoinSet::new();
    for addr in addrs.into_iter().take(1 + crate::net::addrs::MAX_PEER_ADDRESSES) {
        let (endpoint, config) = (endpoint.clone(), config.clone());
        all.spawn(async move { punch(&endpoint, config, addr).await });
    }
    while all.join_next().await.is_some() {}
}

/// Sends towards `addr` from our endpoint until the attempt is refused or gives up.
async fn punch(endpoint: &Endpoint, config: quinn::ClientConfig, addr: SocketAddr) {
    match endpoint.connect_with(config, addr, crate::net::tls::SERVER_NAME) {
        // It never succeeds (no server speaks its ALPN); its end only says whether it landed.
        Ok(connecting) => match tokio::time::timeout(PUNCH_LIFETIME, connecting).await {
            Ok(Ok(_)) | Err(_) => {}
            Ok(Err(err)) => tracing::debug!(%addr, "punch ended: {err}"),
        },
        Err(err) => tracing::debug!(%addr, "cannot punch: {err}"),
    }
}
