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

mod availability;
mod holders;
mod index;
mod peers;
mod small_map;
mod transfer;
mod types;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::protocol::{FileId, FileInfo, FileMatch, Fingerprint, Holder};
use availability::Availability;
use index::{FileEntry, FileIndex};
use peers::PeerTable;
use small_map::SmallMap;
pub use transfer::Transfer;
pub use types::{FileRow, Limits, Listed, PeerEntry, PeerRow, RegistryError};

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

/// The tracker's state.
#[derive(Default)]
pub struct Registry {
    peers: PeerTable,
    files: FileIndex,
    /// (peer, file) listings in all: the sum of every peer's files, kept as they change.
    listings: usize,
    /// The sum of live peers' reported (upload, download) rates, kept as reports arrive.
    rates: (u64, u64),
    /// Which holders are partial, and what each has.
    availability: Availability,
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
            files: SmallMap::default(),
            transfer: Transfer::default(),
            reach: None,
        };
        self.peers.insert(id, entry);
        Ok(())
    }

    /// Whether one more peer with this certificate and address fits every limit.
    fn admit(&self, fingerprint: &Fingerprint, addr: SocketAddr) -> Result<(), RegistryError> {
        let limits = &self.limits;
        if self.peers.count_of(fingerprint) >= limits.max_ids_per_cert {
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
        let key = self.peers.key(id).cloned().ok_or(RegistryError::NotRegistered)?;
        let files = self.peers.files_mut(id, session).ok_or(RegistryError::NotRegistered)?;
        let new = !files.contains_key(&file.id);
        if new && files.len() >= MAX_FILES_PER_PEER {
            return Err(RegistryError::TooManyFiles);
        }
        if new && self.listings >= MAX_LISTINGS {
            return Err(RegistryError::Full);
        }
        if files.insert(file.id, ()).is_none() {
            self.listings += 1;
        }
        self.peers.touch(id, now);
        Ok(self.files.add_holder(&key, file) || new)
    }

    /// Stops listing `id` as a holder of `file`; returns the name it shared it under.
    pub fn unshare(&mut self, id: &str, session: u64, file: &FileId) -> Result<Option<String>, RegistryError> {
        let files = self.peers.files_mut(id, session).ok_or(RegistryError::NotRegistered)?;
        if files.remove(file).is_some() {
            self.listings -= 1;
        }
        self.availability.forget(file, id);
        Ok(self.files.remove_holder(id, file).map(|name| name.to_string()))
    }

    /// The registry's own copy of live peer `id`'s id, to share rather than copy.
    pub fn key(&self, id: &str) -> Option<Arc<str>> {
        self.peers.key(id).cloned()
    }

    /// Records how far `id`'s download of `file` has come: `have` is its segment report
    /// ([`crate::protocol::progress`]). Only a peer listed as holding the file may say; a
    /// report with every segment makes it a complete holder again.
    pub fn progress(&mut self, id: &str, session: u64, file: &FileId, have: &[u8]) -> Result<(), RegistryError> {
        let key = self.peers.key(id).cloned().ok_or(RegistryError::NotRegistered)?;
        let files = self.peers.files_mut(id, session).ok_or(RegistryError::NotRegistered)?;
        let size = self.files.get(file).filter(|_| files.contains_key(file)).map(|entry| entry.size);
        let size = size.ok_or_else(|| RegistryError::BadProgress(format!("file {} is not listed as shared by you", file.short())))?;
        self.availability.report(*file, size, &key, have).map_err(RegistryError::BadProgress)
    }

    /// The holders of `file` still downloading it, with the share of it each has (0.0–1.0),
    /// by peer id; the other holders hold it whole.
    pub fn partial_holders(&self, file: &FileId) -> Vec<(String, f64)> {
        let Some(entry) = self.files.get(file) else { return Vec::new() };
        self.availability.partial_holders(file, entry.size).into_iter().map(|(peer, have)| (peer.to_string(), have)).collect()
    }

    /// Lists `id` at `mapped`, the address its router forwards to it. Only the port is the
    /// peer's to say: an IP other than the observed one is refused, so nobody can make the
    /// tracker send downloaders towards a third party.
    pub fn map(&mut self, id: &str, session: u64, mapped: SocketAddr) -> Result<(), RegistryError> {
        let entry = self.peers.entry_mut(id, session).ok_or(RegistryError::NotRegistered)?;
        if mapped.ip() != entry.addr.ip() || mapped.port() == 0 {
            return Err(RegistryError::MappedElsewhere(mapped, entry.addr.ip()));
        }
        entry.reach_mut().mapped = Some(mapped);
        Ok(())
    }

    /// Takes `id`'s further addresses (`told`), the usable ones of them
    /// ([`addrs::listable`](crate::net::addrs::listable)); from now on its lookups are
    /// answered with holders' further addresses.
    pub fn tell_addresses(&mut self, id: &str, session: u64, told: &[SocketAddr]) -> Result<(), RegistryError> {
        let entry = self.peers.entry_mut(id, session).ok_or(RegistryError::NotRegistered)?;
        let usable = crate::net::addrs::listable(told, entry.addr).map_err(RegistryError::BadAddresses)?;
        entry.reach_mut().also = Some(usable.into_boxed_slice());
        Ok(())
    }

    /// The further addresses `id` told (none if it told none).
    pub fn further(&self, id: &str) -> Vec<SocketAddr> {
        self.peers.get(id).map(|p| p.also().to_vec()).unwrap_or_default()
    }

    /// Whether `id` reads holders' further addresses (it told its own).
    pub fn reads_addresses(&self, id: &str) -> bool {
        self.peers.get(id).is_some_and(PeerEntry::told_addresses)
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
        let Some((_, peer)) = self.peers.remove(id) else { return };
        self.listings -= peer.files.len();
        let (up, down) = peer.transfer.rates();
        self.rates = (self.rates.0.saturating_sub(up), self.rates.1.saturating_sub(down));
        for file in peer.files.keys() {
            self.availability.forget(file, id);
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

    /// The first `limit` files by name with how many live holders each has, how many of them
    /// are partial, and the availability bar of those with partial holders, copying no
    /// holder: what a view of a big swarm shows.
    pub fn file_rows(&self, limit: usize) -> Vec<FileRow> {
        let (page, _) = self.files.page(None, limit.clamp(1, MAX_PAGE));
        let row = |(id, e): (FileId, &FileEntry)| FileRow {
            info: FileInfo { id, name: e.shown().to_string(), size: e.size, folder: self.files.folder(&id) },
            holders: e.holders.len(),
            partial: self.availability.partial_count(&id),
            bar: self.availability.bar(&id, e.holders.len()),
        };
        page.into_iter().map(row).collect()
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
            .map(|(pid, p)| Holder {
                peer_id: pid.to_string(),
                addr: p.reachable_at(),
                fingerprint: p.fingerprint,
                also: p.also().to_vec(),
            })
            .collect();
        FileMatch { file: FileInfo { id: *id, name, size: entry.size, folder: self.files.folder(id) }, holders }
    }

    /// The id of the live peer whose certificate has `fingerprint`, if any (a holder asks before
    /// serving a downloader).
    pub fn peer_with(&self, fingerprint: &Fingerprint) -> Option<String> {
        self.peers.ids_of(fingerprint).next().map(|id| id.to_string())
    }

    /// Live peers by id.
    pub fn peers(&self) -> Vec<(String, PeerEntry)> {
        let mut all: Vec<(String, PeerEntry)> = self.peers.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// The first `limit` live peers by id, each without its file list: what a view of a big
    /// swarm shows, in O(limit) and copying only what it returns.
    pub fn peer_rows(&self, limit: usize) -> Vec<PeerRow> {
        let row = |(id, p): (&Arc<str>, &PeerEntry)| PeerRow {
            id: id.to_string(),
            addr: p.addr,
            files: p.files.len(),
            last_alive: p.last_alive,
            fingerprint: p.fingerprint,
            reach: p.reach(),
            also: p.also().to_vec(),
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
