//! The tracker protocol's messages (ALPN `p2pq-tracker/1`): what a peer asks the tracker, one
//! request per bidirectional stream, and what the tracker answers on it. Encoded through the
//! one codec of [`super`] like every other frame. New variants go last, so the ones before
//! keep their tags and older peers and trackers read every byte they knew.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::{FileId, FileInfo, FileMatch, Fingerprint, Reach};
use crate::content::names::printable_reason;

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
    /// Which addresses can others reach you at? Asked to put them in a ticket. (After
    /// `Unshare`.)
    Contact,
    /// The live holders of this file now: asked again by a running download to find holders
    /// that appeared since it began. Answered like a `Lookup` of the full id, but not logged
    /// as a `get` (the user asked once). (After `Unshare`.)
    Holders(FileId),
    /// Several `Share`s in one request (a folder's files), as many as fit one request frame;
    /// answered `Ok` when every one was taken, else with the first refusal. (After `Holders`.)
    ShareMany(Vec<FileInfo>),
    /// One page of the listing `Files` starts: up to `limit` files (the tracker caps it, and
    /// stops where its reply frame is full) in order of name then id, after the file `after`
    /// names (the last one of the previous page). Answered with [`TrackerResponse::FilesPage`].
    /// A file present through the whole walk is listed exactly once. (Last.)
    FilesPage {
        /// Where the previous page ended; `None` for the first page.
        after: Option<PageAfter>,
        /// Most files wanted.
        limit: u32,
    },
    /// Introduce me to this holder, which I could not reach directly (it sits behind a NAT):
    /// the tracker tells the holder my observed address and when to send towards it
    /// ([`TrackerPush::Punch`]), and answers [`TrackerResponse::Introduced`] with the holder's
    /// observed address and when to connect. Only live registered peers are introduced, a
    /// few times a second each. (Last, so the variants before it keep their tags.)
    Introduce {
        /// The holder's peer id.
        peer_id: String,
        /// Its certificate fingerprint, as the lookup gave it: a holder that registered again
        /// with another certificate is not the one we meant.
        fingerprint: Fingerprint,
    },
    /// My router forwards this address to me (a UPnP or NAT-PMP/PCP port mapping): list me
    /// there instead of at the observed address, so downloaders reach me directly. Taken only
    /// when its IP is the one the tracker observes (only the port is ours to say). Sent again
    /// after each registration and when a renewal changes it. (Last.)
    Mapped {
        /// The mapped external address.
        addr: SocketAddr,
    },
    /// How my connection to a holder I was introduced to went: `connected`, or no path (every
    /// punched attempt unanswered). Kept as the holder's record in the tracker's views, and
    /// counted only up to the introductions made to it. (Last.)
    Punched {
        /// The holder's peer id.
        peer_id: String,
        /// Its certificate fingerprint, as the introduction named it.
        fingerprint: Fingerprint,
        /// Whether a connection came of it.
        connected: bool,
    },
    /// The further addresses I am reached at, beside the observed one: my home network's
    /// (for a downloader behind the same router, which may not loop back through it) and
    /// my global IPv6 ones, with my endpoint's port; at most
    /// [`MAX_PEER_ADDRESSES`](crate::net::addrs::MAX_PEER_ADDRESSES). Sent right after each
    /// registration, even empty: it also says I read [`TrackerResponse::MatchesAt`], so
    /// lookups and `Holders` are answered with it from then on. (After `Punched`.)
    Addresses(Vec<SocketAddr>),
    /// How far my download of a file I am listed as holding has come, in the tracker's
    /// segments ([`super::progress`]): `have` is [`report_len`](super::progress::report_len)
    /// bytes for the file's size. Every segment set means I hold it whole. A holder that never
    /// reports counts as complete (an older peer, or a seeder). (Last.)
    Progress {
        /// The file.
        id: FileId,
        /// One bit a segment, least significant first.
        have: Vec<u8>,
    },
}

/// The last file of a `Files` page, as it was listed: the next page starts after it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageAfter {
    /// The name it was listed under.
    pub name: String,
    /// Its id.
    pub id: FileId,
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
    /// A registration refused, saying whether trying again later can help: `retry` when the
    /// tracker is full for now, not when the id is taken or the version unsupported. (Last,
    /// so the variants before it keep their encodings.)
    Refused {
        /// Whether a later attempt may succeed.
        retry: bool,
        /// One line for a person.
        #[serde(deserialize_with = "printable_reason")]
        reason: String,
    },
    /// Answer to `Contact`: the tracker's addresses as `host:port`, most useful first, at most
    /// [`MAX_CONTACT_ADDRESSES`] of at most [`MAX_CONTACT_LEN`] bytes each. (After `Refused`.)
    Contact(Vec<String>),
    /// A registration refused for now because the tracker is at a limit (full, or too many
    /// peers from one address): try again in about `after_ms` milliseconds, spread with some
    /// jitter so refused peers do not all come back at once. A peer waits at least a moment and
    /// at most [`MAX_RETRY_AFTER_MS`], whatever it is told. (After `Contact`.)
    RetryLater {
        /// One line for a person, shown once.
        #[serde(deserialize_with = "printable_reason")]
        reason: String,
        /// How long to wait before trying again.
        after_ms: u32,
    },
    /// Answer to `FilesPage`: files in order, and whether more follow the last one. (Last.)
    FilesPage {
        /// Up to the page's limit, as many as fit one frame.
        files: Vec<FileMatch>,
        /// Whether files follow the last one here.
        more: bool,
    },
    /// Answer to `Introduce`: the holder was told to send towards us; connect to `addr` (the
    /// holder's observed address) after `start_in_ms` milliseconds, when its packets have
    /// opened its NAT for ours. (Last.)
    Introduced {
        /// The holder's address as the tracker observes it.
        addr: SocketAddr,
        /// How long to wait from receiving this before connecting.
        start_in_ms: u32,
    },
    /// A lookup's or `Holders`' answer to a peer that sent `Addresses`: the matches, and the
    /// further addresses of the holders they name that told some. (Last.)
    MatchesAt {
        /// As in `Matches`.
        found: Vec<FileMatch>,
        /// Holders' further addresses, by peer id.
        reach: Vec<Reach>,
    },
}

/// Longest wait a `RetryLater` can impose on a peer (10 minutes): a hostile or misconfigured
/// tracker cannot park its peers for good.
pub const MAX_RETRY_AFTER_MS: u32 = 600_000;

/// Most addresses a `Contact` answer (and so a ticket) carries.
pub const MAX_CONTACT_ADDRESSES: usize = 8;
/// Longest address in a `Contact` answer, `host:port`.
pub const MAX_CONTACT_LEN: usize = 255;
