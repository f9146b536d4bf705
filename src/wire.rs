//! The wire: every message both protocols exchange, and the one codec that frames them.
//!
//! p2pq speaks two protocols over QUIC, told apart by ALPN:
//!
//! * **tracker** (`p2pq-tracker/1`): a peer opens one connection to the tracker and sends one
//!   [`TrackerRequest`] per bidirectional stream, reading one [`TrackerResponse`] back. The first
//!   request must be [`TrackerRequest::Register`], which carries [`PROTOCOL_VERSION`] so a later
//!   version can refuse cleanly. `Alive` heartbeats, `Share`, `Lookup`, `Files`, `Verify` and
//!   `Exit` follow. A holder sends `Verify` to ask whether a downloader's certificate belongs to a
//!   live registered peer before it serves that downloader.
//! * **peer** (`p2pq-peer/1`): a downloader connects to a holder. It asks for a file's
//!   [`Manifest`] on a bidirectional stream (one [`PeerRequest::Manifest`], one
//!   [`ManifestReply`]). It asks for each chunk with a [`PeerRequest::Chunk`] on a unidirectional
//!   stream of its own; the holder answers on a new unidirectional stream that starts with a
//!   [`ChunkHeader`] frame followed by exactly `len` raw chunk bytes. One stream per chunk keeps
//!   chunks independent: a lost or slow chunk never blocks the others.
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

use std::fmt;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Version carried by the first request of each protocol; bumped on incompatible changes.
pub const PROTOCOL_VERSION: u16 = 1;
/// ALPN of the peer → tracker protocol.
pub const TRACKER_ALPN: &[u8] = b"p2pq-tracker/1";
/// ALPN of the peer → peer (chunk) protocol.
pub const PEER_ALPN: &[u8] = b"p2pq-peer/1";

/// Limit of a control frame: requests, responses, chunk headers. Generous for a lookup listing
/// thousands of holders, small enough that a hostile peer cannot make us hold much.
pub const MAX_FRAME: usize = 1 << 20;
/// Limit of a manifest frame: 32 bytes a chunk for at most [`crate::manifest::MAX_CHUNKS`] chunks.
pub const MAX_MANIFEST_FRAME: usize = 4 << 20;
/// Limit of a request frame other than `Register`: the largest (`Share`) holds a 255-byte name,
/// a 32-byte id and a size; 4 KiB leaves room and keeps a flood of requests cheap to hold.
pub const MAX_REQUEST_FRAME: usize = 4 << 10;
/// Longest reason text kept from the network, in bytes; a longer one is cut (it is for display).
pub const MAX_REASON_LEN: usize = 512;
/// Longest file name accepted from anyone, in bytes (the common file-system limit).
pub const MAX_NAME_LEN: usize = 255;
/// Longest peer id, in bytes.
pub const MAX_PEER_ID_LEN: usize = 64;

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
}

/// A 32-byte BLAKE3 digest shown as lowercase hex: file ids and certificate fingerprints.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    /// Full lowercase hex, exactly as `b3sum` prints it.
    pub fn to_hex(&self) -> String {
        blake3::Hash::from_bytes(self.0).to_hex().to_string()
    }

    /// The first `n` hex digits, for tables and messages.
    pub fn short(&self) -> String {
        let mut hex = self.to_hex();
        hex.truncate(12);
        hex
    }

    /// Whether this digest's hex starts with `prefix` (case-insensitive).
    pub fn has_prefix(&self, prefix: &str) -> bool {
        !prefix.is_empty() && self.to_hex().starts_with(&prefix.to_ascii_lowercase())
    }
}

impl From<blake3::Hash> for Digest {
    fn from(hash: blake3::Hash) -> Self {
        Digest(*hash.as_bytes())
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.short())
    }
}

/// A file's identity: the BLAKE3 hash of its whole content.
pub type FileId = Digest;
/// A peer's identity: the BLAKE3 hash of its certificate (DER).
pub type Fingerprint = Digest;

/// What a holder announces about a file it shares.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileInfo {
    /// BLAKE3 of the content.
    pub id: FileId,
    /// The name it is shared under (a label; files are keyed by id).
    pub name: String,
    /// Size in bytes.
    pub size: u64,
}

/// A peer that holds a file, as the tracker saw it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// The peer's id.
    pub peer_id: String,
    /// The address the tracker observed the peer's connection from.
    pub addr: SocketAddr,
    /// The peer's certificate fingerprint, to pin when connecting to it.
    pub fingerprint: Fingerprint,
}

/// One file that matched a lookup, with its live holders.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileMatch {
    /// The file.
    pub file: FileInfo,
    /// Live peers holding it.
    pub holders: Vec<Holder>,
}

/// A request from a peer to the tracker (one per bidirectional stream).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TrackerRequest {
    /// First request of a connection: who I am and what I share.
    Register {
        /// Must equal [`PROTOCOL_VERSION`].
        version: u16,
        /// The peer's chosen id.
        peer_id: String,
        /// Files the peer already shares (after a tracker restart).
        files: Vec<FileInfo>,
    },
    /// Heartbeat.
    Alive,
    /// Start holding a file.
    Share(FileInfo),
    /// Find files by exact name or by id prefix (hex).
    Lookup {
        /// A name or an id prefix.
        query: String,
    },
    /// List every known file (for completion and `files`).
    Files,
    /// Leave now.
    Exit,
    /// Is this certificate fingerprint a live registered peer? Asked by a holder about a
    /// downloader before serving it. (Added after `Exit` so earlier tags keep their bytes.)
    Verify {
        /// The downloader's certificate fingerprint, as the holder saw it in the TLS handshake.
        fingerprint: Fingerprint,
    },
    /// Stop listing me as a holder of this file (its copy on my disk changed). Added last so
    /// earlier tags keep their bytes.
    Unshare(FileId),
}

/// The tracker's answer to one [`TrackerRequest`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TrackerResponse {
    /// Registration accepted; the address the tracker sees us at.
    Registered {
        /// The peer's address as observed by the tracker.
        observed: SocketAddr,
    },
    /// Done.
    Ok,
    /// Lookup or listing result.
    Matches(Vec<FileMatch>),
    /// Refused, with a one-line reason.
    Error(#[serde(deserialize_with = "printable_reason")] String),
    /// Answer to `Verify`: the id of the live peer with that fingerprint, or `None`.
    Verified {
        /// The live peer's id, if there is one.
        peer_id: Option<String>,
    },
}

/// A request from a downloader to a holder.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeerRequest {
    /// Send me the manifest of this file (bidirectional stream).
    Manifest {
        /// Must equal [`PROTOCOL_VERSION`].
        version: u16,
        /// The file.
        id: FileId,
    },
    /// Send me this chunk on a new unidirectional stream.
    Chunk {
        /// The file.
        id: FileId,
        /// The chunk's index.
        index: u32,
    },
}

/// A holder's answer to [`PeerRequest::Manifest`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ManifestReply {
    /// The manifest.
    Manifest(crate::manifest::Manifest),
    /// Refused, with a one-line reason.
    Error(#[serde(deserialize_with = "printable_reason")] String),
}

/// First frame of a chunk stream from a holder; `Ok` is followed by exactly `len` bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkHeader {
    /// The file.
    pub id: FileId,
    /// The chunk's index.
    pub index: u32,
    /// The chunk's length, or why the holder will not send it.
    #[serde(deserialize_with = "printable_result")]
    pub result: Result<u32, String>,
}

/// What can go wrong reading or writing a frame.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The length prefix is over the frame's limit.
    #[error("frame of {len} bytes is over the {limit}-byte limit")]
    TooLarge {
        /// Announced length.
        len: usize,
        /// Limit for this frame.
        limit: usize,
    },
    /// The stream ended where a frame was expected.
    #[error("stream ended before a complete frame")]
    Truncated,
    /// The bytes are not a valid message.
    #[error("malformed frame: {0}")]
    Decode(#[from] bincode::error::DecodeError),
    /// The message could not be encoded (should not happen for our types).
    #[error("cannot encode frame: {0}")]
    Encode(#[from] bincode::error::EncodeError),
    /// The frame decoded but left bytes over.
    #[error("frame has {0} trailing bytes")]
    Trailing(usize),
    /// Transport error.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Encodes `msg` as one frame: length prefix and bincode.
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, WireError> {
    let body = bincode::serde::encode_to_vec(msg, bincode::config::standard())?;
    let len = u32::try_from(body.len()).map_err(|_| WireError::TooLarge { len: body.len(), limit: u32::MAX as usize })?;
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(&body);
    Ok(frame)
}

/// Decodes a frame body (without its length prefix), refusing trailing bytes.
pub fn decode_body<T: DeserializeOwned>(body: &[u8], limit: usize) -> Result<T, WireError> {
    if body.len() > limit {
        return Err(WireError::TooLarge { len: body.len(), limit });
    }
    // Bincode's limit caps what a claimed inner length may make it reserve; pick the smallest
    // limit that still covers this frame kind (the limit is a type parameter, so two configs).
    let (msg, used) = if limit <= MAX_FRAME {
        bincode::serde::decode_from_slice(body, bincode::config::standard().with_limit::<{ MAX_FRAME }>())?
    } else {
        bincode::serde::decode_from_slice(body, bincode::config::standard().with_limit::<{ MAX_MANIFEST_FRAME }>())?
    };
    if used != body.len() {
        return Err(WireError::Trailing(body.len() - used));
    }
    Ok(msg)
}

/// Writes one frame.
pub async fn write_frame<W, T>(out: &mut W, msg: &T) -> Result<(), WireError>
where
    W: AsyncWrite + Unpin,
    T: Serialize,
{
    out.write_all(&encode(msg)?).await?;
    Ok(())
}

/// Reads one frame of at most `limit` bytes and decodes it.
pub async fn read_frame<R, T>(input: &mut R, limit: usize) -> Result<T, WireError>
where
    R: AsyncRead + Unpin,
    T: DeserializeOwned,
{
    let mut prefix = [0u8; 4];
    read_exact(input, &mut prefix).await?;
    let len = u32::from_be_bytes(prefix) as usize;
    if len > limit {
        return Err(WireError::TooLarge { len, limit });
    }
    // Grow the buffer as bytes arrive: a length prefix alone (a stalled or lying sender) pins at
    // most one step of memory, not the whole announced length.
    let mut body = Vec::with_capacity(len.min(READ_STEP));
    let got = input.take(len as u64).read_to_end(&mut body).await?;
    if got < len {
        return Err(WireError::Truncated);
    }
    decode_body(&body, limit)
}

/// First allocation for a frame body; it grows from there only as bytes arrive.
const READ_STEP: usize = 16 << 10;

/// `read_exact` that reports a short stream as [`WireError::Truncated`].
pub async fn read_exact<R: AsyncRead + Unpin>(input: &mut R, buf: &mut [u8]) -> Result<(), WireError> {
    match input.read_exact(buf).await {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(WireError::Truncated),
        Err(e) => Err(WireError::Io(e)),
    }
}

/// `text` made safe to print on a terminal: control characters (escape sequences, NUL, newlines)
/// and bidirectional overrides are shown escaped (`\u{1b}`), and it is cut to [`MAX_REASON_LEN`]
/// bytes (then `…`). Applying it twice changes nothing more.
pub fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(MAX_REASON_LEN));
    let mut escaped = String::new();
    for c in text.chars() {
        escaped.clear();
        if c.is_control() || is_bidi_control(c) {
            escaped.extend(c.escape_unicode());
        } else {
            escaped.push(c);
        }
        // Cut before a piece that would not fit, so that printable(printable(x)) == printable(x).
        if out.len() + escaped.len() > MAX_REASON_LEN {
            out.push('…');
            break;
        }
        out.push_str(&escaped);
    }
    out
}

/// Unicode's bidirectional formatting characters: invisible, and they reorder what a terminal
/// shows (`exe.txt` shown for `txt.exe`), so names refuse them and reasons escape them.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

fn printable_reason<'de, D: serde::Deserializer<'de>>(de: D) -> Result<String, D::Error> {
    String::deserialize(de).map(|text| printable(&text))
}

fn printable_result<'de, D: serde::Deserializer<'de>>(de: D) -> Result<Result<u32, String>, D::Error> {
    Result::<u32, String>::deserialize(de).map(|r| r.map_err(|text| printable(&text)))
}

/// Why a name that came from the network or the user cannot be used as a file name.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty file name".into());
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!("file name is {} bytes, over the {MAX_NAME_LEN}-byte limit", name.len()));
    }
    if name == "." || name == ".." {
        return Err(format!("file name {name:?} is not a file"));
    }
    if name.contains(['/', '\\']) {
        return Err(format!("file name {} contains a path separator", quoted(name)));
    }
    if name.chars().any(|c| c.is_control() || is_bidi_control(c)) {
        return Err(format!("file name {} contains a control character", quoted(name)));
    }
    Ok(())
}

/// `name` in quotes, escaped for display (`{:?}`-style, with bidi controls escaped too).
fn quoted(name: &str) -> String {
    format!("\"{}\"", printable(&name.escape_debug().to_string()))
}

/// Why a peer id cannot be used: ids are short names of letters, digits, `-` and `_`.
pub fn check_peer_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > MAX_PEER_ID_LEN {
        return Err(format!("peer id must be 1 to {MAX_PEER_ID_LEN} characters"));
    }
    if !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err(format!("peer id {id:?} may hold only letters, digits, '-' and '_'"));
    }
    Ok(())
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
    }

    #[test]
    fn names_with_paths_or_controls_are_refused() {
        for bad in ["", ".", "..", "../x", "a/b", "..\\x", "a\0b", "\x1b[31m", &"x".repeat(256)] {
            assert!(check_name(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["a.txt", "résumé.pdf", "x..y", &"x".repeat(255)] {
            assert!(check_name(good).is_ok(), "{good:?} refused");
        }
    }

    #[test]
    fn reasons_are_made_printable_once_and_for_all() {
        assert_eq!(printable("a\x1b[31mb\u{202e}c"), "a\\u{1b}[31mb\\u{202e}c");
        let long = format!("{}\x07", "x".repeat(MAX_REASON_LEN - 3));
        let once = printable(&long);
        assert!(once.ends_with('…') && once.len() <= MAX_REASON_LEN + 3, "{once}");
        assert_eq!(printable(&once), once);
    }

    #[test]
    fn peer_ids() {
        assert!(check_peer_id("alice_2-b").is_ok());
        assert!(check_peer_id("a b").is_err());
        assert!(check_peer_id("").is_err());
    }
}
