//! The peer protocol's messages (ALPN `p2pq-peer/1`): what a downloader asks a holder, and
//! what the holder answers on the stream the request opened or on a new one. Encoded through
//! the one codec of [`super`] like every other frame.

use serde::{Deserialize, Serialize};

use super::{FileId, FileInfo};
use crate::content::names::{printable_reason, printable_result};

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
    /// Tell me which chunks of this file you have, and then each one you verify (bidirectional
    /// stream, answered by a run of [`Availability`] frames). Added after `Chunk`, so earlier
    /// tags keep their bytes.
    Observe {
        /// The file.
        id: FileId,
    },
    /// What is this file: its name, size, and whether it is a folder (bidirectional stream,
    /// answered by a [`Description`]). Asked of a holder found on the DHT, which gives ids
    /// only. (Last, so earlier tags keep their bytes.)
    Describe {
        /// The file.
        id: FileId,
    },
    /// Send me these whole files, each of one chunk, one after another on this bidirectional
    /// stream: for each id in order a [`ChunkHeader`] (chunk 0), then, if it is `Ok`, exactly
    /// that many bytes; then the stream ends. At most [`MAX_FILES_PER_REQUEST`] ids. A folder's
    /// small files go this way: one request and one stream for many files, where `Chunk` costs
    /// two streams each. (Last, so earlier tags keep their bytes.)
    Files {
        /// The files.
        ids: Vec<FileId>,
    },
}

/// Most files one [`PeerRequest::Files`] may ask for.
pub const MAX_FILES_PER_REQUEST: usize = 64;

/// A holder's answer to [`PeerRequest::Describe`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Description {
    /// The file as this holder shares it (its name is checked like any name before use).
    File(FileInfo),
    /// Refused, with a one-line reason.
    Error(#[serde(deserialize_with = "printable_reason")] String),
}

/// What a holder has of a file, sent on an `Observe` stream: first `All` or a `Bitfield`, then
/// (from a holder still downloading) `Have` batches as chunks are verified and written, at most
/// [`HAVES_PER_SEC`] a second, until `All` says the holder has finished, or the stream ends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Availability {
    /// Every chunk: a complete holder (one short message, then the stream ends).
    All,
    /// The chunks the holder had verified when asked: chunk `i` is bit `i % 8` of byte `i / 8`;
    /// exactly `count.div_ceil(8)` bytes (checked by the reader against the manifest).
    Bitfield {
        /// Chunks in the file.
        count: u32,
        /// One bit per chunk.
        bits: Vec<u8>,
    },
    /// Chunks verified since the last message, at most [`MAX_HAVE_BATCH`].
    Have(Vec<u32>),
    /// Refused, with a one-line reason.
    Error(#[serde(deserialize_with = "printable_reason")] String),
    /// From a complete holder serving a crowd (super-seeding, as BEP 16): it has every chunk,
    /// and asks for these for now, offered to few others, so the crowd fetches distinct
    /// chunks from it and the rest from each other. More offers follow; `All` ends them.
    /// At most [`MAX_HAVE_BATCH`] indices. (Last, so the variants before keep their tags.)
    Offer(Vec<u32>),
}

/// Most `Have` messages a holder sends per second on one `Observe` stream: batching keeps the
/// cost of a chunk's news to a few bytes even when chunks land by the hundred per second.
pub const HAVES_PER_SEC: u32 = 4;
/// Most chunk indices in one `Have` message; a holder with more news sends a `Bitfield`-worth
/// in several batches (or `All`).
pub const MAX_HAVE_BATCH: usize = 4096;
/// Limit of one [`Availability`] frame: the largest bitfield or `Have` batch, and some room.
pub const MAX_AVAILABILITY_FRAME: usize = 32 << 10;
/// Most bitfield bytes: one bit per chunk of the largest manifest.
pub const MAX_BITFIELD_BYTES: usize = (crate::content::manifest::MAX_CHUNKS as usize).div_ceil(8);

/// A holder's answer to [`PeerRequest::Manifest`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ManifestReply {
    /// The manifest.
    Manifest(crate::content::manifest::Manifest),
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
