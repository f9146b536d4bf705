//! Who is live and who holds what: the tracker's state as plain data, no I/O.
//!
//! Peers are keyed by id and bound to the certificate fingerprint they registered with, and to
//! the connection (session) they registered on: requests on one connection act only on its own
//! peer, so no peer can heartbeat, share or exit for another. Files are keyed by id; each holder
//! keeps the name it shares the file under, and a lookup matches any of those names or an id
//! prefix.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::protocol::{FileId, FileInfo, FileMatch, Fingerprint, Holder};

/// Most files one peer may announce; keeps a flooding peer from growing the tracker unbounded
/// (about 300 bytes each: at most 30 MiB per peer). A folder's files count one each, so this
/// is the largest folder a peer can share (less its other files).
pub const MAX_FILES_PER_PEER: usize = 100_000;
/// Peer ids one certificate may hold at once: a person runs a few peers, and one key must not
/// fill the registry with thousands.
pub const MAX_IDS_PER_CERT: usize = 8;
/// (peer, file) listings the tracker keeps in all, whoever announces them: bounds its memory
/// (~100 bytes each) however many certificates a flooder brings.
pub const MAX_LISTINGS: usize = 1_000_000;
/// Shortest id prefix a lookup accepts, so short words are taken as names.
pub const MIN_ID_PREFIX: usize = 4;

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
}

/// A file and its holders, each with the name it shares the file under.
#[derive(Clone, Debug)]
struct FileEntry {
    size: u64,
    folder: Option<crate::protocol::FolderSize>,
    holders: BTreeMap<String, String>,
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
    #[error("this certificate already registers {MAX_IDS_PER_CERT} peer ids; stop one first")]
    TooManyIds,
    /// The tracker lists as many files as it may.
    #[error("the tracker is full ({MAX_LISTINGS} shared files listed); try later")]
    Full,
    /// Same id, but the file's size differs from what others announced.
    #[error("file {0} was announced with another size")]
    SizeMismatch(String),
}

impl RegistryError {
    /// Whether the same request may succeed later without the peer changing anything: only
    /// when the tracker is full. A taken id stays taken while its peer lives.
    pub fn retry_can_help(&self) -> bool {
        matches!(self, RegistryError::Full)
    }
}

/// The tracker's state.
#[derive(Default)]
pub struct Registry {
    peers: HashMap<String, PeerEntry>,
    files: HashMap<FileId, FileEntry>,
}

impl Registry {
    /// Registers `id` on connection `session`, replacing an earlier registration of the same
    /// certificate (a reconnect) and refusing one of another certificate.
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
        if self.peers.values().filter(|p| p.fingerprint == fingerprint).count() >= MAX_IDS_PER_CERT {
            return Err(RegistryError::TooManyIds);
        }
        let entry = PeerEntry { fingerprint, addr, last_alive: now, session, files: BTreeSet::new() };
        self.peers.insert(id.to_string(), entry);
        Ok(())
    }

    /// The peer registered on `session` as `id`, if it still is.
    fn peer_mut(&mut self, id: &str, session: u64) -> Result<&mut PeerEntry, RegistryError> {
        match self.peers.get_mut(id) {
            Some(p) if p.session == session => Ok(p),
            _ => Err(RegistryError::NotRegistered),
        }
    }

    /// Records a heartbeat.
    pub fn alive(&mut self, id: &str, session: u64, now: Instant) -> Result<(), RegistryError> {
        self.peer_mut(id, session)?.last_alive = now;
        Ok(())
    }

    /// Records that `id` holds `file`; returns whether that is news (not a repeat of a listing
    /// it has, under the same name).
    pub fn share(&mut self, id: &str, session: u64, file: &FileInfo, now: Instant) -> Result<bool, RegistryError> {
        if let Some(entry) = self.files.get(&file.id)
            && entry.size != file.size
        {
            return Err(RegistryError::SizeMismatch(file.id.short()));
        }
        let listings: usize = self.peers.values().map(|p| p.files.len()).sum();
        let peer = self.peer_mut(id, session)?;
        let new = !peer.files.contains(&file.id);
        if new && peer.files.len() >= MAX_FILES_PER_PEER {
            return Err(RegistryError::TooManyFiles);
        }
        if new && listings >= MAX_LISTINGS {
            return Err(RegistryError::Full);
        }
        peer.files.insert(file.id);
        peer.last_alive = now;
        let entry =
            self.files.entry(file.id).or_insert_with(|| FileEntry { size: file.size, folder: file.folder, holders: BTreeMap::new() });
        let renamed = entry.holders.insert(id.to_string(), file.name.clone()).is_none_or(|was| was != file.name);
        Ok(new || renamed)
    }

    /// Stops listing `id` as a holder of `file`; returns the name it shared it under.
    pub fn unshare(&mut self, id: &str, session: u64, file: &FileId) -> Result<Option<String>, RegistryError> {
        self.peer_mut(id, session)?.files.remove(file);
        let Some(entry) = self.files.get_mut(file) else { return Ok(None) };
        let name = entry.holders.remove(id);
        if entry.holders.is_empty() {
            self.files.remove(file);
        }
        Ok(name)
    }

    /// Drops `id` if it is registered on `session`; returns whether it was.
    pub fn leave(&mut self, id: &str, session: u64) -> bool {
        if self.peer_mut(id, session).is_ok() {
            self.remove(id);
            true
        } else {
            false
        }
    }

    fn remove(&mut self, id: &str) {
        let Some(peer) = self.peers.remove(id) else { return };
        for file in peer.files {
            if let Some(entry) = self.files.get_mut(&file) {
                entry.holders.remove(id);
                if entry.holders.is_empty() {
                    self.files.remove(&file);
                }
            }
        }
    }

    /// Drops every peer silent for longer than `timeout`; returns their ids.
    pub fn expire(&mut self, now: Instant, timeout: Duration) -> Vec<String> {
        let silent: Vec<String> =
            self.peers.iter().filter(|(_, p)| now.saturating_duration_since(p.last_alive) > timeout).map(|(id, _)| id.clone()).collect();
        for id in &silent {
            self.remove(id);
        }
        silent
    }

    /// Files whose name is `query` or whose id starts with `query` (hex, at least 4 digits).
    pub fn lookup(&self, query: &str) -> Vec<FileMatch> {
        let by_id = query.len() >= MIN_ID_PREFIX && query.chars().all(|c| c.is_ascii_hexdigit());
        let mut found: Vec<FileMatch> = self
            .files
            .iter()
            .filter(|(id, entry)| entry.holders.values().any(|n| n == query) || (by_id && id.has_prefix(query)))
            .map(|(id, entry)| self.file_match(id, entry, Some(query)))
            .collect();
        found.sort_by(|a, b| a.file.name.cmp(&b.file.name).then(a.file.id.cmp(&b.file.id)));
        found
    }

    /// Every file with its holders, by name.
    pub fn files(&self) -> Vec<FileMatch> {
        let mut all: Vec<FileMatch> = self.files.iter().map(|(id, e)| self.file_match(id, e, None)).collect();
        all.sort_by(|a, b| a.file.name.cmp(&b.file.name).then(a.file.id.cmp(&b.file.id)));
        all
    }

    fn file_match(&self, id: &FileId, entry: &FileEntry, query: Option<&str>) -> FileMatch {
        let name = match query {
            Some(q) if entry.holders.values().any(|n| n == q) => q.to_string(),
            _ => entry.holders.values().next().cloned().unwrap_or_default(),
        };
        let holders = entry
            .holders
            .keys()
            .filter_map(|pid| self.peers.get(pid).map(|p| (pid, p)))
            .map(|(pid, p)| Holder { peer_id: pid.clone(), addr: p.addr, fingerprint: p.fingerprint })
            .collect();
        FileMatch { file: FileInfo { id: *id, name, size: entry.size, folder: entry.folder }, holders }
    }

    /// The id of the live peer whose certificate has `fingerprint`, if any (a holder asks before
    /// serving a downloader).
    pub fn peer_with(&self, fingerprint: &Fingerprint) -> Option<String> {
        self.peers.iter().find(|(_, p)| p.fingerprint == *fingerprint).map(|(id, _)| id.clone())
    }

    /// Live peers by id.
    pub fn peers(&self) -> Vec<(String, PeerEntry)> {
        let mut all: Vec<(String, PeerEntry)> = self.peers.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp(n: u8) -> Fingerprint {
        crate::protocol::Digest([n; 32])
    }

    fn file(n: u8, name: &str) -> FileInfo {
        FileInfo { id: crate::protocol::Digest([n; 32]), name: name.into(), size: 10, folder: None }
    }

    fn addr() -> SocketAddr {
        "127.0.0.1:9".parse().unwrap()
    }

    #[test]
    fn a_taken_id_is_refused_and_a_reconnect_replaces() {
        let mut r = Registry::default();
        let t = Instant::now();
        r.register("1", fp(1), addr(), 1, t).unwrap();
        assert_eq!(r.register("1", fp(2), addr(), 2, t), Err(RegistryError::Taken("1".into())));
        r.register("1", fp(1), addr(), 3, t).unwrap();
        assert_eq!(r.alive("1", 1, t), Err(RegistryError::NotRegistered));
        assert!(r.alive("1", 3, t).is_ok());
    }

    #[test]
    fn one_certificate_holds_a_few_ids_and_a_reconnect_still_works() {
        let mut r = Registry::default();
        let t = Instant::now();
        for n in 0..MAX_IDS_PER_CERT {
            r.register(&n.to_string(), fp(1), addr(), n as u64, t).unwrap();
        }
        assert_eq!(r.register("one-more", fp(1), addr(), 99, t), Err(RegistryError::TooManyIds));
        r.register("0", fp(1), addr(), 100, t).unwrap();
        r.register("other", fp(2), addr(), 101, t).unwrap();
    }

    #[test]
    fn holders_are_found_by_name_and_id_prefix_and_vanish_with_their_peer() {
        let mut r = Registry::default();
        let t = Instant::now();
        r.register("1", fp(1), addr(), 1, t).unwrap();
        r.register("2", fp(2), addr(), 2, t).unwrap();
        r.share("1", 1, &file(0xab, "a.txt"), t).unwrap();
        r.share("2", 2, &file(0xab, "copy.txt"), t).unwrap();
        assert_eq!(r.lookup("a.txt")[0].holders.len(), 2);
        assert_eq!(r.lookup("copy.txt")[0].file.name, "copy.txt");
        assert_eq!(r.lookup("abab").len(), 1);
        assert!(r.lookup("ab").is_empty());
        assert!(r.leave("1", 1));
        assert_eq!(r.lookup("a.txt").len(), 0);
        assert_eq!(r.lookup("copy.txt")[0].holders[0].peer_id, "2");
    }

    #[test]
    fn an_unshared_file_loses_only_that_holder() {
        let mut r = Registry::default();
        let t = Instant::now();
        r.register("1", fp(1), addr(), 1, t).unwrap();
        r.register("2", fp(2), addr(), 2, t).unwrap();
        r.share("1", 1, &file(5, "f"), t).unwrap();
        r.share("2", 2, &file(5, "f"), t).unwrap();
        assert_eq!(r.unshare("1", 1, &file(5, "f").id), Ok(Some("f".into())));
        assert_eq!(r.lookup("f")[0].holders.len(), 1);
        assert!(r.unshare("2", 1, &file(5, "f").id).is_err(), "only on one's own session");
        assert_eq!(r.unshare("2", 2, &file(5, "f").id), Ok(Some("f".into())));
        assert!(r.lookup("f").is_empty());
    }

    #[test]
    fn silent_peers_expire() {
        let mut r = Registry::default();
        let t = Instant::now();
        r.register("1", fp(1), addr(), 1, t).unwrap();
        r.register("2", fp(2), addr(), 2, t).unwrap();
        r.alive("2", 2, t + Duration::from_secs(10)).unwrap();
        assert_eq!(r.expire(t + Duration::from_secs(16), Duration::from_secs(15)), vec!["1".to_string()]);
        assert_eq!(r.peers().len(), 1);
    }

    #[test]
    fn a_fingerprint_is_known_only_while_its_peer_is_live() {
        let mut r = Registry::default();
        let t = Instant::now();
        r.register("1", fp(1), addr(), 1, t).unwrap();
        assert_eq!(r.peer_with(&fp(1)), Some("1".to_string()));
        assert_eq!(r.peer_with(&fp(2)), None);
        assert!(r.leave("1", 1));
        assert_eq!(r.peer_with(&fp(1)), None);
    }

    #[test]
    fn a_peer_cannot_announce_more_than_its_share_of_files() {
        let mut r = Registry::default();
        let t = Instant::now();
        r.register("1", fp(1), addr(), 1, t).unwrap();
        for n in 0..MAX_FILES_PER_PEER as u32 {
            let mut id = [0u8; 32];
            id[..4].copy_from_slice(&n.to_be_bytes());
            r.share("1", 1, &FileInfo { id: crate::protocol::Digest(id), name: "f".into(), size: 1, folder: None }, t).unwrap();
        }
        assert_eq!(r.share("1", 1, &file(0xff, "one more"), t), Err(RegistryError::TooManyFiles));
    }

    #[test]
    fn no_peer_acts_for_another() {
        let mut r = Registry::default();
        let t = Instant::now();
        r.register("1", fp(1), addr(), 1, t).unwrap();
        r.register("2", fp(2), addr(), 2, t).unwrap();
        assert!(!r.leave("1", 2));
        assert!(r.share("1", 2, &file(1, "x"), t).is_err());
        assert_eq!(r.peers().len(), 2);
    }

    #[test]
    fn only_a_full_tracker_is_worth_retrying() {
        assert!(RegistryError::Full.retry_can_help());
        assert!(!RegistryError::Taken("a".into()).retry_can_help());
        assert!(!RegistryError::TooManyIds.retry_can_help());
        assert!(!RegistryError::TooManyFiles.retry_can_help());
    }
}
