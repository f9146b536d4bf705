//! Who is live and who holds what: the tracker's state as plain data, no I/O.
//!
//! Peers are keyed by id and bound to the certificate fingerprint they registered with, and to
//! the connection (session) they registered on: requests on one connection act only on its own
//! peer, so no peer can heartbeat, share or exit for another. Files are keyed by id; each holder
//! keeps the name it shares the file under, and a lookup matches any of those names or an id
//! prefix.
//!
//! Every request costs what it touches, not what the tracker holds: files are indexed by id and
//! by name ([`index`]), peers by certificate, address and silence ([`peers`]), and the counts
//! the limits check are kept as they change, never recounted.

mod index;
mod peers;
mod small_map;
mod transfer;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::protocol::{FileId, FileInfo, FileMatch, Fingerprint, Holder};
use index::{FileEntry, FileIndex};
use peers::PeerTable;
pub use transfer::Transfer;

/// Most files one peer may announce; keeps a flooding peer from growing the tracker unbounded
/// (about 300 bytes each: at most 30 MiB per peer). A folder's files count one each, so this
/// is the largest folder a peer can share (less its other files).
pub const MAX_FILES_PER_PEER: usize = 100_000;
/// (peer, file) listings the tracker keeps in all, whoever announces them: bounds its memory
/// (~100 bytes each) however many certificates a flooder brings.
pub const MAX_LISTINGS: usize = 1_000_000;
/// Shortest id prefix a lookup accepts, so short words are taken as names.
pub const MIN_ID_PREFIX: usize = 4;
/// Most files one `Files` page holds; a reply also stops where its frame is full.
pub const MAX_PAGE: usize = 1000;

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
    /// Files it holds.
    pub files: BTreeSet<FileId>,
    /// The address its router forwards to it (a port mapping it told us of), listed to
    /// downloaders instead of `addr`.
    pub mapped: Option<SocketAddr>,
    /// How many times a downloader that could not reach it directly was introduced to it.
    pub introduced: u32,
    /// What it says it has moved, from its heartbeats.
    pub transfer: Transfer,
    /// Of the introductions to it, how many the downloaders reported connected, and failed.
    pub punches: (u32, u32),
}

impl PeerEntry {
    /// Where downloaders are told to connect: the mapped address if there is one.
    pub fn reachable_at(&self) -> SocketAddr {
        self.mapped.unwrap_or(self.addr)
    }

    /// How downloaders reach it, for a person: `mapped ADDR` (its router forwards a port),
    /// `punched (introduced N times, K connected, F no path)` (downloaders needed
    /// introductions, and said how they went), or `direct` (listed at its observed address,
    /// and no downloader ever needed an introduction).
    pub fn reach(&self) -> String {
        let times = match self.introduced {
            1 => "once".to_string(),
            n => format!("{n} times"),
        };
        let outcome = match self.punches {
            (0, 0) => String::new(),
            (ok, failed) => format!(", {ok} connected, {failed} no path"),
        };
        match (self.mapped, self.introduced) {
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
    /// (upload, download) rates it reports, bytes per second.
    pub rates: (u64, u64),
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
    /// A mapped address on another IP than the one the peer's connection comes from.
    #[error("a mapped address must be on the address the tracker sees you at ({1}), not {0}")]
    MappedElsewhere(SocketAddr, std::net::IpAddr),
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

/// The tracker's state.
#[derive(Default)]
pub struct Registry {
    peers: PeerTable,
    files: FileIndex,
    /// (peer, file) listings in all: the sum of every peer's files, kept as they change.
    listings: usize,
    /// The sum of live peers' reported (upload, download) rates, kept as reports arrive.
    rates: (u64, u64),
    limits: Limits,
}

impl Registry {
    /// An empty registry that admits peers up to `limits`.
    pub fn new(limits: Limits) -> Registry {
        Registry { limits, ..Registry::default() }
    }

    /// Registers `id` on connection `session`, replacing an earlier registration of the same
    /// certificate (a reconnect) and refusing one of another certificate, or one past a limit.
    pub fn register(
        &mut self,
        id: &str,
        fingerprint: Fingerprint,
        addr: SocketAddr,
        session: u64,
        now: Instant,
    ) -> Result<(), RegistryError> {
        if let Some(old) = self.peers.get(id) {
            if old.fingerprint != fingerprint {
                return Err(RegistryError::Taken(id.to_string()));
            }
            self.remove(id);
        }
        self.admit(&fingerprint, addr)?;
        let entry = PeerEntry {
            fingerprint,
            addr,
            last_alive: now,
            session,
            files: BTreeSet::new(),
            mapped: None,
            introduced: 0,
            punches: (0, 0),
            transfer: Transfer::default(),
        };
        self.peers.insert(id, entry);
        Ok(())
    }

    /// Whether one more peer with this certificate and address fits every limit.
    fn admit(&self, fingerprint: &Fingerprint, addr: SocketAddr) -> Result<(), RegistryError> {
        let limits = &self.limits;
        if self.peers.ids_of(fingerprint).len() >= limits.max_ids_per_cert {
            return Err(RegistryError::TooManyIds(limits.max_ids_per_cert));
        }
        if self.peers.at_ip(addr.ip()) >= limits.max_peers_per_ip {
            return Err(RegistryError::AddressFull(addr.ip(), limits.max_peers_per_ip));
        }
        if self.peers.len() >= limits.max_peers {
            return Err(RegistryError::PeersFull(limits.max_peers));
        }
        Ok(())
    }

    /// Records a heartbeat (or any other sign of life).
    pub fn alive(&mut self, id: &str, session: u64, now: Instant) -> Result<(), RegistryError> {
        if !self.peers.on_session(id, session) {
            return Err(RegistryError::NotRegistered);
        }
        self.peers.touch(id, now);
        Ok(())
    }

    /// Records a heartbeat that carries the peer's transfer totals.
    pub fn beat(&mut self, id: &str, session: u64, now: Instant, uploaded: u64, downloaded: u64) -> Result<(), RegistryError> {
        self.alive(id, session, now)?;
        let before = self.peers.get(id).map(|p| p.transfer.rates()).unwrap_or_default();
        let after = self.peers.report(id, uploaded, downloaded, now);
        let (up, down) = self.rates;
        self.rates = (up.saturating_sub(before.0).saturating_add(after.0), down.saturating_sub(before.1).saturating_add(after.1));
        Ok(())
    }

    /// The swarm's (upload, download) rates: the sum of what live peers last reported.
    pub fn rates(&self) -> (u64, u64) {
        self.rates
    }

    /// Records that `id` holds `file`; returns whether that is news (not a repeat of a listing
    /// it has, under the same name).
    pub fn share(&mut self, id: &str, session: u64, file: &FileInfo, now: Instant) -> Result<bool, RegistryError> {
        if let Some(entry) = self.files.get(&file.id)
            && entry.size != file.size
        {
            return Err(RegistryError::SizeMismatch(file.id.short()));
        }
        let files = self.peers.files_mut(id, session).ok_or(RegistryError::NotRegistered)?;
        let new = !files.contains(&file.id);
        if new && files.len() >= MAX_FILES_PER_PEER {
            return Err(RegistryError::TooManyFiles);
        }
        if new && self.listings >= MAX_LISTINGS {
            return Err(RegistryError::Full);
        }
        if files.insert(file.id) {
            self.listings += 1;
        }
        self.peers.touch(id, now);
        Ok(self.files.add_holder(id, file) || new)
    }

    /// Stops listing `id` as a holder of `file`; returns the name it shared it under.
    pub fn unshare(&mut self, id: &str, session: u64, file: &FileId) -> Result<Option<String>, RegistryError> {
        let files = self.peers.files_mut(id, session).ok_or(RegistryError::NotRegistered)?;
        if files.remove(file) {
            self.listings -= 1;
        }
        Ok(self.files.remove_holder(id, file))
    }

    /// Lists `id` at `mapped`, the address its router forwards to it. Only the port is the
    /// peer's to say: an IP other than the observed one is refused, so nobody can make the
    /// tracker send downloaders towards a third party.
    pub fn map(&mut self, id: &str, session: u64, mapped: SocketAddr) -> Result<(), RegistryError> {
        let entry = self.peers.entry_mut(id, session).ok_or(RegistryError::NotRegistered)?;
        if mapped.ip() != entry.addr.ip() || mapped.port() == 0 {
            return Err(RegistryError::MappedElsewhere(mapped, entry.addr.ip()));
        }
        entry.mapped = Some(mapped);
        Ok(())
    }

    /// Counts an introduction to `id` (it is reached by hole punching, or tried to be).
    pub fn introduced(&mut self, id: &str) {
        self.peers.introduced(id);
    }

    /// Records how a downloader's punched connection to `id` (with certificate `fingerprint`)
    /// went. Reports are counted only up to the introductions made, so nobody can pad a
    /// holder's record; returns whether it was counted.
    pub fn punch_outcome(&mut self, id: &str, fingerprint: &Fingerprint, connected: bool) -> bool {
        self.peers.punch_outcome(id, fingerprint, connected)
    }

    /// Drops `id` if it is registered on `session`; returns whether it was.
    pub fn leave(&mut self, id: &str, session: u64) -> bool {
        let on = self.peers.on_session(id, session);
        if on {
            self.remove(id);
        }
        on
    }

    fn remove(&mut self, id: &str) {
        let Some(peer) = self.peers.remove(id) else { return };
        self.listings -= peer.files.len();
        let (up, down) = peer.transfer.rates();
        self.rates = (self.rates.0.saturating_sub(up), self.rates.1.saturating_sub(down));
        for file in &peer.files {
            self.files.remove_holder(id, file);
        }
    }

    /// Drops every peer silent for longer than `timeout`; returns their ids, longest silent
    /// first. Costs what it drops, not what the registry holds.
    pub fn expire(&mut self, now: Instant, timeout: Duration) -> Vec<String> {
        let silent = self.peers.silent(now, timeout);
        for id in &silent {
            self.remove(id);
        }
        silent
    }

    /// Files whose name is `query` or whose id starts with `query` (hex, at least 4 digits).
    pub fn lookup(&self, query: &str, listed: Listed) -> Vec<FileMatch> {
        let mut ids: BTreeSet<FileId> = self.files.named(query).collect();
        if query.len() >= MIN_ID_PREFIX {
            ids.extend(self.files.with_prefix(query));
        }
        let mut found: Vec<FileMatch> =
            ids.iter().filter_map(|id| self.files.get(id).map(|entry| self.file_match(id, entry, Some(query), listed))).collect();
        found.sort_by(|a, b| a.file.name.cmp(&b.file.name).then(a.file.id.cmp(&b.file.id)));
        found
    }

    /// The file with exactly this id and its holders, if some live peer holds it.
    pub fn holders(&self, id: &FileId, listed: Listed) -> Option<FileMatch> {
        self.files.get(id).map(|entry| self.file_match(id, entry, None, listed))
    }

    /// Up to `limit` files (at most [`MAX_PAGE`]) with their holders, by name then id,
    /// starting after the file named `after` (its listed name and id); and whether more follow.
    pub fn files_page(&self, after: Option<(&str, &FileId)>, limit: usize, listed: Listed) -> (Vec<FileMatch>, bool) {
        let (page, more) = self.files.page(after, limit.clamp(1, MAX_PAGE));
        (page.into_iter().map(|(id, entry)| self.file_match(&id, entry, None, listed)).collect(), more)
    }

    /// The first `limit` files by name with how many live holders each has, copying no holder:
    /// what a view of a big swarm shows.
    pub fn file_rows(&self, limit: usize) -> Vec<(FileInfo, usize)> {
        let (page, _) = self.files.page(None, limit.clamp(1, MAX_PAGE));
        page.into_iter()
            .map(|(id, e)| (FileInfo { id, name: e.shown().to_string(), size: e.size, folder: e.folder }, e.holders.len()))
            .collect()
    }

    fn file_match(&self, id: &FileId, entry: &FileEntry, query: Option<&str>, listed: Listed) -> FileMatch {
        let name = match query {
            Some(q) if entry.has_name(q) => q.to_string(),
            _ => entry.shown().to_string(),
        };
        let (skip, take) = match listed {
            Listed::All => (0, usize::MAX),
            Listed::Turn(turn, most) => {
                let n = entry.holders.len().max(1);
                ((turn.wrapping_mul(most as u64) % n as u64) as usize, most)
            }
        };
        let holders = entry
            .holders
            .keys()
            .cycle()
            .skip(skip)
            .take(take.min(entry.holders.len()))
            .filter_map(|pid| self.peers.get(pid).map(|p| (pid, p)))
            .map(|(pid, p)| Holder { peer_id: pid.clone(), addr: p.reachable_at(), fingerprint: p.fingerprint })
            .collect();
        FileMatch { file: FileInfo { id: *id, name, size: entry.size, folder: entry.folder }, holders }
    }

    /// The id of the live peer whose certificate has `fingerprint`, if any (a holder asks before
    /// serving a downloader).
    pub fn peer_with(&self, fingerprint: &Fingerprint) -> Option<String> {
        self.peers.ids_of(fingerprint).first().cloned()
    }

    /// Live peers by id.
    pub fn peers(&self) -> Vec<(String, PeerEntry)> {
        let mut all: Vec<(String, PeerEntry)> = self.peers.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// The first `limit` live peers by id, each without its file list: what a view of a big
    /// swarm shows, in O(limit) and copying only what it returns.
    pub fn peer_rows(&self, limit: usize) -> Vec<PeerRow> {
        let row = |(id, p): (&String, &PeerEntry)| PeerRow {
            id: id.clone(),
            addr: p.addr,
            files: p.files.len(),
            last_alive: p.last_alive,
            fingerprint: p.fingerprint,
            reach: p.reach(),
            rates: p.transfer.rates(),
        };
        self.peers.iter().take(limit).map(row).collect()
    }

    /// How many peers are live, files known, and (peer, file) listings kept.
    pub fn counts(&self) -> (usize, usize, usize) {
        (self.peers.len(), self.files.len(), self.listings)
    }
}

#[cfg(test)]
mod model;
#[cfg(test)]
mod tests;
