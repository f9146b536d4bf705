//! The wire: every message both protocols exchange, and the one codec that frames them.
//!
//! p2pq speaks two protocols over QUIC, told apart by ALPN:
//!
//! * **tracker** (`p2pq-tracker/1`): a peer opens one connection to the tracker and sends one
//!   [`TrackerRequest`] per bidirectional stream, reading one [`TrackerResponse`] back. The first
//!   request must be [`TrackerRequest::Register`], which carries [`PROTOCOL_VERSION`] so a later
//!   version can refuse cleanly, and a tracker at one of its limits answers it `RetryLater`
//!   with a reason and a wait. Heartbeats go in QUIC datagrams ([`PeerDatagram::Alive`]; `Alive`
//!   on a stream where the tracker takes no datagrams). `Share`, `Lookup`, `Files` (or the listing
//!   page by page with `FilesPage`), `Verify` and `Exit` follow. A holder sends `Verify` to ask whether a downloader's certificate belongs to a
//!   live registered peer before it serves that downloader. A downloader that cannot reach a
//!   holder directly sends `Introduce`; the tracker then pushes [`TrackerPush::Punch`] to the
//!   holder on a unidirectional stream it opens itself (the only stream that goes that way)
//!   and answers `Introduced`, so both send towards each other at once (hole punching).
//!   Right after registering, a peer tells its further addresses (`Addresses`: its home
//!   network's, its global IPv6), and lookups name them beside each holder
//!   ([`TrackerResponse::MatchesAt`]), so two peers behind one router, or with IPv6, connect
//!   directly.
//! * **peer** (`p2pq-peer/1`): a downloader connects to a holder. It asks for a file's
//!   [`Manifest`](crate::content::manifest::Manifest) on a bidirectional stream (one [`PeerRequest::Manifest`], one
//!   [`ManifestReply`]). It asks for each chunk with a [`PeerRequest::Chunk`] on a unidirectional
//!   stream of its own; the holder answers on a new unidirectional stream that starts with a
//!   [`ChunkHeader`] frame followed by exactly `len` raw chunk bytes. One stream per chunk keeps
//!   chunks independent: a lost or slow chunk never blocks the others. To learn what a holder
//!   has, the downloader sends one [`PeerRequest::Observe`] on a bidirectional stream and
//!   keeps it open: a complete holder answers [`Availability::All`]; a holder still downloading
//!   (a partial holder, which serves every chunk it has verified and written) answers with its
//!   bitfield, then [`Availability::Have`] batches, at most [`HAVES_PER_SEC`] a second, as
//!   chunks land, and `All` once it has them all. Small files (one chunk each) may be asked for
//!   many at once with [`PeerRequest::Files`] on a bidirectional stream, answered on it by a
//!   [`ChunkHeader`] and the bytes of each in turn. A chunk is announced only after it is
//!   verified and written, so a holder that refuses a chunk it announced is lying.
//!
//! A frame is a big-endian `u32` length followed by that many bytes of bincode (standard config).
//! The length is checked against the frame's limit before anything is allocated, the body buffer
//! grows only as bytes actually arrive, and bincode decodes with a limit no larger than the
//! frame's, so a hostile length or a nested length inside cannot make us allocate more than that.
//!
//! Strings that only explain (`Error` reasons) are made printable as they are decoded: control
//! characters, terminal escapes and bidirectional overrides are shown escaped and the text is
//! cut to [`MAX_REASON_LEN`], so a hostile tracker or holder cannot write to our terminal. Names
//! are not rewritten: they are checked with [`check_name`] and refused.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

mod frame;
mod heartbeat;
mod peer;
pub mod progress;
mod push;
mod reach;
mod tracker;

pub use crate::content::id::{Digest, FileId, Fingerprint};
pub use crate::content::names::{MAX_NAME_LEN, MAX_PEER_ID_LEN, MAX_REASON_LEN, check_name, check_peer_id, printable, printable_capped};
pub use frame::{WireError, decode_body, decode_datagram, encode, read_exact, read_frame, write_frame};
pub use heartbeat::{Heartbeat, MAX_DATAGRAM_FRAME, PeerDatagram};
pub use peer::*;
pub use push::{MAX_HEARTBEAT_MS, MAX_PUSH_FRAME, MAX_START_IN_MS, PUNCH_ALPN, TrackerPush};
pub use reach::Reach;
pub use tracker::*;

/// Version carried by the first request of each protocol; bumped on incompatible changes.
pub const PROTOCOL_VERSION: u16 = 1;
/// The tracker's port when none is given (`p2pq tracker`'s default, and `--tracker HOST`'s).
pub const DEFAULT_TRACKER_PORT: u16 = 6771;
/// ALPN of the peer → tracker protocol.
pub const TRACKER_ALPN: &[u8] = b"p2pq-tracker/1";
/// ALPN of the peer → peer (chunk) protocol.
pub const PEER_ALPN: &[u8] = b"p2pq-peer/1";

/// Limit of a control frame: requests, responses, chunk headers. Generous for a lookup listing
/// thousands of holders, small enough that a hostile peer cannot make us hold much.
pub const MAX_FRAME: usize = 1 << 20;
/// Limit of a manifest frame: 32 bytes a chunk for at most [`crate::content::manifest::MAX_CHUNKS`] chunks.
pub const MAX_MANIFEST_FRAME: usize = 4 << 20;
/// Limit of a request frame other than `Register`: the largest (`Share`) holds a 255-byte name,
/// a 32-byte id and a size; 4 KiB leaves room and keeps a flood of requests cheap to hold.
pub const MAX_REQUEST_FRAME: usize = 4 << 10;

/// What a holder reads and sends at once to one downloader, over all its connections: it
/// bounds what one downloader can make a holder pin (16 chunks, 4 MiB at the default size).
/// A downloader may ask for more (its window follows the link); the rest wait their turn at
/// the holder and go out one after another, and the downloader judges the holder by the
/// link's silence, never by how long one request waited.
pub const SENDS_PER_PEER: usize = 16;

/// QUIC application close codes.
pub mod close {
    use quinn::VarInt;
    /// Orderly goodbye (`exit`, Ctrl-C, end of a download).
    pub const DONE: VarInt = VarInt::from_u32(0);
    /// The other side broke the protocol (bad frame, wrong first message).
    pub const PROTOCOL: VarInt = VarInt::from_u32(1);
    /// The request was understood and refused (version, taken peer id).
    pub const REFUSED: VarInt = VarInt::from_u32(2);
    /// The process is shutting down.
    pub const SHUTDOWN: VarInt = VarInt::from_u32(3);
    /// The tracker forgot this peer (silent past its timeout): register again.
    pub const EXPIRED: VarInt = VarInt::from_u32(4);
}

/// What a holder announces about a file it shares.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileInfo {
    /// BLAKE3 of the content.
    pub id: FileId,
    /// The name it is shared under (a label; files are keyed by id).
    pub name: String,
    /// Size in bytes (of the listing, for a folder).
    pub size: u64,
    /// Set when this is a folder's listing: what the folder holds.
    pub folder: Option<FolderSize>,
}

/// `files` cut into runs whose encoded size each stays within `budget` bytes, in order: a
/// registration holds what fits one frame, and `ShareMany` requests carry the rest.
pub fn fitting(files: Vec<FileInfo>, budget: usize) -> Vec<Vec<FileInfo>> {
    let mut out: Vec<Vec<FileInfo>> = Vec::new();
    let mut used = usize::MAX;
    for file in files {
        let size = encode(&file).map_or(budget, |bytes| bytes.len());
        if used.saturating_add(size) > budget {
            out.push(Vec::new());
            used = 0;
        }
        used += size;
        if let Some(last) = out.last_mut() {
            last.push(file);
        }
    }
    out
}

/// Room for the files of one `ShareMany` in a request frame (the rest is the tag and count).
pub const SHARE_MANY_BYTES: usize = MAX_REQUEST_FRAME - 64;
/// Room for the files of a registration in its frame.
pub const REGISTER_FILES_BYTES: usize = MAX_FRAME - (4 << 10);

/// What a shared folder holds (see [`crate::content::folder`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FolderSize {
    /// Files in it.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// A peer that holds a file, as the tracker saw it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// The peer's id.
    pub peer_id: String,
    /// The address the tracker observed the peer's connection from.
    pub addr: SocketAddr,
    /// The peer's certificate fingerprint, to pin when connecting to it; [`Holder::UNVOUCHED`]
    /// when no source vouched for one (a holder found on the DHT).
    pub fingerprint: Fingerprint,
    /// Further addresses it told the tracker (its home network's, its global IPv6). Not
    /// encoded here, so a holder decodes as it always did: they travel beside the matches,
    /// in [`TrackerResponse::MatchesAt`]'s [`Reach`] list.
    #[serde(skip)]
    pub also: Vec<SocketAddr>,
}

impl Holder {
    /// The fingerprint of a holder whose certificate nobody vouched for: any certificate is
    /// accepted on connecting, and the one it proves is what the holder is judged by.
    pub const UNVOUCHED: Fingerprint = crate::content::id::Digest([0; 32]);

    /// Whether a source vouched for this holder's certificate (pinned on connecting).
    pub fn vouched(&self) -> bool {
        self.fingerprint != Holder::UNVOUCHED
    }
}

/// One file that matched a lookup, with its live holders.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileMatch {
    /// The file.
    pub file: FileInfo,
    /// Live peers holding it.
    pub holders: Vec<Holder>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alive_frame_bytes_are_pinned() {
        // Changing these bytes breaks every deployed peer: bump PROTOCOL_VERSION and the ALPN.
        let frame = encode(&TrackerRequest::Alive).unwrap();
        assert_eq!(frame, [0, 0, 0, 1, 1]);
        let frame = encode(&TrackerRequest::Register { version: 1, peer_id: "a".into(), files: vec![] }).unwrap();
        assert_eq!(frame, [0, 0, 0, 5, 0, 1, 1, b'a', 0]);
        // Describe is PeerRequest's fourth tag (3), then the 32 id bytes.
        let frame = encode(&PeerRequest::Describe { id: crate::content::id::Digest([0xab; 32]) }).unwrap();
        assert_eq!(frame[..5], [0, 0, 0, 33, 3]);
        assert!(frame[5..].iter().all(|&b| b == 0xab));
        // Files is the fifth (4), then the count of ids.
        assert_eq!(encode(&PeerRequest::Files { ids: vec![] }).unwrap(), [0, 0, 0, 2, 4, 0]);
        // The heartbeat datagram: tag 0, then version, seq, uploaded, downloaded as varints.
        let beat = PeerDatagram::Alive(Heartbeat { version: 1, seq: 2, uploaded: 300, downloaded: 4 });
        assert_eq!(encode(&beat).unwrap(), [0, 0, 0, 7, 0, 1, 2, 251, 44, 1, 4]);
        let pace = TrackerPush::Pace { heartbeat_ms: 20_000, expiry_ms: 60_000 };
        assert_eq!(encode(&pace).unwrap()[4], 1, "Pace is TrackerPush's second tag");
    }

    #[test]
    fn a_datagram_decodes_only_whole_and_within_its_limit() {
        let beat = PeerDatagram::Alive(Heartbeat { version: 1, seq: 9, uploaded: u64::MAX, downloaded: 0 });
        let bytes = encode(&beat).unwrap();
        assert_eq!(decode_datagram::<PeerDatagram>(&bytes, MAX_DATAGRAM_FRAME).unwrap(), beat);
        assert!(decode_datagram::<PeerDatagram>(&bytes[..bytes.len() - 1], MAX_DATAGRAM_FRAME).is_err());
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode_datagram::<PeerDatagram>(&longer, MAX_DATAGRAM_FRAME).is_err());
        assert!(decode_datagram::<PeerDatagram>(&[0, 0, 0], MAX_DATAGRAM_FRAME).is_err());
        assert!(decode_datagram::<PeerDatagram>(&[0; 100], MAX_DATAGRAM_FRAME).is_err());
    }
}
