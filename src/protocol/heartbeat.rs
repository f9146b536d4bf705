//! The heartbeat a peer sends the tracker: one QUIC datagram, not a stream.
//!
//! A request on its own bidirectional stream costs the tracker a stream's set-up and teardown,
//! about seven UDP datagrams with their acknowledgements, and 150–300 µs of CPU; a heartbeat
//! needs none of it. [`PeerDatagram::Alive`] is one frame (through the one codec, so it has
//! its length prefix and at most [`MAX_DATAGRAM_FRAME`] bytes) in one unreliable datagram,
//! which the tracker acknowledges at the QUIC level only. A lost heartbeat costs nothing: the
//! tracker expires a peer only after several intervals of silence. A peer learns that the
//! tracker is gone from the acknowledgements stopping, and that the tracker forgot it from
//! the connection being closed with [`super::close::EXPIRED`]. A tracker that takes no
//! datagrams (an older one) gets [`super::TrackerRequest::Alive`] on a stream, as before.

use serde::{Deserialize, Serialize};

/// A message a peer sends the tracker in one QUIC datagram.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeerDatagram {
    /// I am alive; and what I have moved so far, for the tracker's swarm rates.
    Alive(Heartbeat),
}

/// One heartbeat.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// Must equal [`super::PROTOCOL_VERSION`]; a tracker ignores a heartbeat of another version.
    pub version: u16,
    /// Counts up from 0 on each connection, so the tracker can tell lost heartbeats.
    pub seq: u32,
    /// Chunk bytes this peer has sent to downloaders since it started.
    pub uploaded: u64,
    /// Chunk bytes this peer has received and verified since it started.
    pub downloaded: u64,
}

/// Limit of a [`PeerDatagram`] frame: a few numbers (bincode's varints take at most 9 bytes
/// each), far under the smallest datagram QUIC carries (about 1,200 bytes).
pub const MAX_DATAGRAM_FRAME: usize = 64;
