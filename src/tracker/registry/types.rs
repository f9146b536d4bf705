//! What the registry hands out and takes: its limits, a peer's entry and the row a view
//! shows of it, which holders a match names, and why a request is refused.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::small_map::SmallMap;
use super::{MAX_FILES_PER_PEER, MAX_LISTINGS, Transfer};
use crate::protocol::{FileId, Fingerprint};

/// How many peers the tracker admits: caps that bound its memory, each refused with a reason
/// the peer shows (`p2pq tracker --max-peers …`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Live peers in all (each costs the tracker tens of KiB, most of it the QUIC connection).
    pub max_peers: usize,
    /// Live peers from one IP address, so one host cannot take every place; high enough for a
    /// room of peers behind one NAT.
    pub max_peers_per_ip: usize,
    /// Peer ids one certificate may hold at once: a person runs a few peers, and one key must
    /// not fill the registry with thousands.
    pub max_ids_per_cert: usize,
    /// How long a peer refused at one of these limits is told to wait before trying again
    /// (it adds jitter); not used by the registry itself.
    pub busy_retry: Duration,
    /// Heartbeats a second the tracker takes before it asks peers for a slower pace
    /// ([`crate::tracker::pace`]); not used by the registry itself.
    pub heartbeats_per_second: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_peers: 200_000,
            max_peers_per_ip: 256,
            max_ids_per_cert: 8,
            busy_retry: Duration::from_secs(45),
            heartbeats_per_second: crate::tracker::pace::HEARTBEATS_PER_SECOND,
        }
    }
}

/// A registered peer.
#[derive(Clone, Debug)]
pub struct PeerEntry {
    /// Its certificate fingerprint.
    pub fingerprint: Fingerprint,
    /// The address its connection comes from.
    pub addr: SocketAddr,
    /// When it last sent anything.
    pub last_alive: Instant,
    /// The connection it registered on.
    pub session: u64,
    /// Files it holds (a sorted vector while at most 64, most peers' whole list).
    pub(super) files: SmallMap<FileId, (), 64>,
    /// What it says it has moved, from its heartbeats.
    pub transfer: Transfer,
    /// How downloaders reach it past its observed address, once it told or needed any of it
    /// (boxed: most peers at a big tracker never do, and inline it would be 60 bytes each).
    pub(super) reach: Option<Box<Reach>>,
}

/// How downloaders reach a peer past the address its connection comes from.
#[derive(Clone, Debug, Default)]
pub(super) struct Reach {
    /// The address its router forwards to it (a port mapping it told us of), listed to
    /// downloaders instead of its observed address.
    pub mapped: Option<SocketAddr>,
    /// How many times a downloader that could not reach it directly was introduced to it.
    pub introduced: u32,
    /// Of the introductions to it, how many the downloaders reported connected, and failed.
    pub punches: (u32, u32),
    /// The further addresses it told (`Addresses`), checked; `None` until it told any, which
    /// also means it reads only plain `Matches` (an older peer). Empty allocates nothing.
    pub also: Option<Box<[SocketAddr]>>,
}

impl PeerEntry {
    /// How many files it holds.
    pub fn file_count(&self) -> usize {
        self.files.len()
    }

    /// Where downloaders are told to connect: the mapped address if there is one.
    pub fn reachable_at(&self) -> SocketAddr {
        self.mapped().unwrap_or(self.addr)
    }

    /// The address its router forwards to it, if it told one.
    pub fn mapped(&self) -> Option<SocketAddr> {
        self.reach.as_ref().and_then(|reach| reach.mapped)
    }

    /// The further addresses it told (home network, global IPv6); none if it told none.
    pub fn also(&self) -> &[SocketAddr] {
        self.reach.as_ref().and_then(|reach| reach.also.as_deref()).unwrap_or_default()
    }

    /// Whether it told further addresses (so it reads holders' further addresses too).
    pub fn told_addresses(&self) -> bool {
        self.reach.as_ref().is_some_and(|reach| reach.also.is_some())
    }

    /// How many times a downloader was introduced to it.
    pub fn introductions(&self) -> u32 {
        self.reach.as_ref().map_or(0, |reach| reach.introduced)
    }

    /// Its reach, made on first use.
    pub(super) fn reach_mut(&mut self) -> &mut Reach {
        self.reach.get_or_insert_default()
    }

    /// How downloaders reach it, for a person: `mapped ADDR` (its router forwards a port),
    /// `punched (introduced N times, K connected, F no path)` (downloaders needed
    /// introductions, and said how they went), or `direct` (listed at its observed address,
    /// and no downloader ever needed an introduction).
    pub fn reach(&self) -> String {
        let Reach { mapped, introduced, punches, .. } = self.reach.as_deref().cloned().unwrap_or_default();
        let times = match introduced {
            1 => "once".to_string(),
            n => format!("{n} times"),
        };
        let outcome = match punches {
            (0, 0) => String::new(),
            (ok, failed) => format!(", {ok} connected, {failed} no path"),
        };
        match (mapped, introduced) {
            (Some(mapped), _) => format!("mapped {mapped}"),
            (None, 0) => "direct".into(),
            (None, _) => format!("punched (introduced {times}{outcome})"),
        }
    }
}

/// One live peer as a view lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerRow {
    /// Its id.
    pub id: String,
    /// The address its connection comes from.
    pub addr: SocketAddr,
    /// How many files it holds.
    pub files: usize,
    /// When it last sent anything.
    pub last_alive: Instant,
    /// Its certificate fingerprint.
    pub fingerprint: Fingerprint,
    /// How downloaders reach it ([`PeerEntry::reach`]).
    pub reach: String,
    /// The further addresses it told (home network, global IPv6).
    pub also: Vec<SocketAddr>,
    /// (upload, download) rates it reports, bytes per second.
    pub rates: (u64, u64),
}

/// One known file as a view lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct FileRow {
    /// The file, under the name it is listed by.
    pub info: crate::protocol::FileInfo,
    /// How many live peers hold it, whole or in part.
    pub holders: usize,
    /// How many of them are still downloading it (they told their progress).
    pub partial: usize,
    /// How many holders have each of its segments ([`crate::protocol::progress`]); empty
    /// when every holder holds it whole.
    pub bar: Vec<u32>,
}

/// Which holders of a file a match names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listed {
    /// Every live holder (views, tests).
    All,
    /// At most `most` (what one reply carries), a different run of them for each turn, so
    /// the load spreads over every holder across lookups; a popular file's hundred thousand
    /// holders are never all copied to answer one lookup.
    Turn(u64, usize),
}

/// Why the registry refused a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// The id is held by a live peer with another certificate.
    #[error("peer id {0:?} is taken by a live peer with another certificate")]
    Taken(String),
    /// No such peer on this connection (expired, or never registered).
    #[error("not registered (expired or never registered); register again")]
    NotRegistered,
    /// The peer already announces too many files.
    #[error("too many shared files (limit {MAX_FILES_PER_PEER})")]
    TooManyFiles,
    /// The certificate already holds as many peer ids as it may.
    #[error("this certificate already registers {0} peer ids; stop one first")]
    TooManyIds(usize),
    /// The tracker lists as many files as it may.
    #[error("the tracker is full ({MAX_LISTINGS} shared files listed); try later")]
    Full,
    /// The tracker holds as many peers as it may.
    #[error("tracker full ({0} peers); retry later")]
    PeersFull(usize),
    /// The peer's IP address holds as many peers as it may.
    #[error("too many peers from {0} ({1}); retry later")]
    AddressFull(std::net::IpAddr, usize),
    /// Further addresses past what a peer may tell.
    #[error("{0}")]
    BadAddresses(String),
    /// A mapped address on another IP than the one the peer's connection comes from.
    #[error("a mapped address must be on the address the tracker sees you at ({1}), not {0}")]
    MappedElsewhere(SocketAddr, std::net::IpAddr),
    /// A progress report that does not fit the file, or on a file the peer is not listed for.
    #[error("{0}")]
    BadProgress(String),
    /// Same id, but the file's size differs from what others announced.
    #[error("file {0} was announced with another size")]
    SizeMismatch(String),
}

impl RegistryError {
    /// Whether the same request may succeed later without the peer changing anything: only
    /// when the tracker, or the peer's address, is at a limit someone else's leaving frees.
    /// A taken id stays taken while its peer lives.
    pub fn retry_can_help(&self) -> bool {
        matches!(self, RegistryError::Full | RegistryError::PeersFull(_) | RegistryError::AddressFull(..))
    }
}
