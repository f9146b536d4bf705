//! What the tracker sends a peer unasked: [`TrackerPush`], one a unidirectional stream the
//! tracker opens on the peer's connection (the only stream of the tracker protocol that goes
//! that way): hole punching's introductions and their limits, and the heartbeat pace.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// A message the tracker pushes to a peer, unasked, on a unidirectional stream it opens on
/// the peer's tracker connection (one message a stream, at most [`MAX_PUSH_FRAME`] bytes).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TrackerPush {
    /// A registered downloader wants to connect to us and cannot directly: send towards its
    /// observed address `addr` after `start_in_ms`, from our one endpoint, so our NAT lets
    /// its connection in (see `discovery::tracker::pushes`).
    Punch {
        /// Must equal [`super::PROTOCOL_VERSION`]; a peer ignores a push of another version.
        version: u16,
        /// The downloader's peer id, for logs.
        peer_id: String,
        /// The downloader's address as the tracker observes it.
        addr: SocketAddr,
        /// How long to wait from receiving this before sending.
        start_in_ms: u32,
    },
    /// Heartbeat every `heartbeat_ms` (or at the peer's own interval, if longer): the tracker
    /// is busy, and will expire a peer only after `expiry_ms` of silence. Pushed when a peer
    /// registers with a tracker that is pacing, and when the pace changes; a peer caps what
    /// it is told at [`MAX_HEARTBEAT_MS`]. (Second.)
    Pace {
        /// The interval the tracker asks for.
        heartbeat_ms: u32,
        /// The silence after which the tracker expires a peer, for the peer to show.
        expiry_ms: u32,
    },
    /// `Punch` towards several addresses at once: the downloader's observed one first, then
    /// its global IPv6 ones, so a holder behind a stateful IPv6 firewall opens it for the
    /// downloader too. Pushed only to a holder that told its own further addresses (older
    /// peers get `Punch`); a peer punches towards at most
    /// 1 + [`MAX_PEER_ADDRESSES`](crate::net::addrs::MAX_PEER_ADDRESSES) of them. (Third.)
    PunchAll {
        /// Must equal [`super::PROTOCOL_VERSION`]; a peer ignores a push of another version.
        version: u16,
        /// The downloader's peer id, for logs.
        peer_id: String,
        /// Where to send: the observed address, then the further ones.
        addrs: Vec<SocketAddr>,
        /// How long to wait from receiving this before sending.
        start_in_ms: u32,
    },
}

/// Longest heartbeat interval a peer takes from a `Pace` push: a heartbeat is also what keeps
/// the peer's NAT mapping towards the tracker open, and home routers close idle UDP mappings
/// after 30 s or more.
pub const MAX_HEARTBEAT_MS: u32 = 25_000;

/// Limit of a [`TrackerPush`] frame: a peer id, an address and a few numbers.
pub const MAX_PUSH_FRAME: usize = 1 << 10;
/// ALPN of the connection attempt a holder makes towards a downloader to open its NAT: no
/// server speaks it, so the attempt is refused at once wherever it lands and never becomes a
/// connection; only its packets matter.
pub const PUNCH_ALPN: &[u8] = b"p2pq-punch/1";
/// Longest start delay a peer accepts in `Introduced` or `Punch`, whatever it is told.
pub const MAX_START_IN_MS: u32 = 2_000;
