//! The indexes against brute force: random runs of registers, shares, unshares, heartbeats,
//! exits and expiries on a [`Registry`] and on a plain model of who holds what, and after each
//! step every lookup (by name, by id prefix of every length, odd ones and upper case too), the
//! whole `Files` listing read in pages, and the kept counts must equal a scan of the model.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;
use crate::protocol::Digest;

/// Small caps, so the runs hit them.
fn limits() -> Limits {
    Limits { max_peers: 6, max_peers_per_ip: 4, max_ids_per_cert: 3, busy_retry: Duration::from_secs(1), ..Limits::default() }
}

const TIMEOUT: Duration = Duration::from_secs(10);
/// Names files are shared under; "0fab" is also a prefix of some ids, "f0a" too short to be one.
const NAMES: [&str; 4] = ["a.txt", "b", "0fab", "f0a"];
const FILES: u8 = 16;

/// File `n` of the pool: ids that share their first digits, with 0 and f at the nibble edges.
fn file_id(n: u8) -> FileId {
    let mut id = *blake3::hash(&[n]).as_bytes();
    id[0] = [0x00, 0x0f, 0xf0, 0xff][usize::from(n % 4)];
    id[1] = [0xab, 0xa0, 0x0b][usize::from(n / 4 % 3)];
    Digest(id)
}

#[derive(Clone, Debug)]
enum Op {
    Register { peer: u8, cert: u8, ip: u8 },
    Share { peer: u8, file: u8, name: u8, size: u8, stale: bool },
    Unshare { peer: u8, file: u8 },
    Alive { peer: u8 },
    Exit { peer: u8 },
    Wait { secs: u8 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (0..10u8, 0..4u8, 0..3u8).prop_map(|(peer, cert, ip)| Op::Register { peer, cert, ip }),
        5 => (0..10u8, 0..FILES, 0..4u8, 0..2u8, 0..8u8).prop_map(|(peer, file, name, size, s)| Op::Share { peer, file, name, size, stale: s == 0 }),
        2 => (0..10u8, 0..FILES).prop_map(|(peer, file)| Op::Unshare { peer, file }),
        2 => (0..10u8).prop_map(|peer| Op::Alive { peer }),
        1 => (0..10u8).prop_map(|peer| Op::Exit { peer }),
        1 => (0..8u8).prop_map(|secs| Op::Wait { secs }),
    ]
}

/// A peer as the model keeps it: everything in one place, found by scanning.
struct Peer {
    cert: Fingerprint,
    addr: SocketAddr,
    session: u64,
    last: Instant,
    files: BTreeMap<FileId, (String, u64)>,
}

/// The registry under test, the model, and the clock.
struct Run {
    registry: Registry,
    model: BTreeMap<String, Peer>,
    now: Instant,
    sessions: u64,
}

impl Run {
    fn new() -> Run {
        Run { registry: Registry::new(limits()), model: BTreeMap::new(), now: Instant::now(), sessions: 0 }
    }

    fn apply(&mut self, op: &Op) {
        match *op {
            Op::Register { peer, cert, ip } => self.register(peer, cert, ip),
            Op::Share { peer, file, name, size, stale } => self.share(peer, file, name, size, stale),
            Op::Unshare { peer, file } => {
                let (id, session) = self.session_of(peer);
                let got = self.registry.unshare(&id, session, &file_id(file));
                let want = self.model.get_mut(&id).map(|p| p.files.remove(&file_id(file)).map(|(name, _)| name));
                assert_eq!(got, want.ok_or(RegistryError::NotRegistered), "unshare {id} {file}");
            }
            Op::Alive { peer } => {
                let (id, session) = self.session_of(peer);
                let got = self.registry.alive(&id, session, self.now);
                let want = self.model.get_mut(&id).map(|p| p.last = self.now).ok_or(RegistryError::NotRegistered);
                assert_eq!(got, want);
            }
            Op::Exit { peer } => {
                let (id, session) = self.session_of(peer);
                assert_eq!(self.registry.leave(&id, session), self.model.remove(&id).is_some());
            }
            Op::Wait { secs } => self.wait(secs),
        }
    }

    /// The id of pool peer `n`, and the session it is registered on (or a fresh one).
    fn session_of(&self, n: u8) -> (String, u64) {
        let id = format!("p{n}");
        let session = self.model.get(&id).map_or(u64::MAX, |p| p.session);
        (id, session)
    }

    fn register(&mut self, peer: u8, cert: u8, ip: u8) {
        let (id, cert, addr) = (format!("p{peer}"), Digest([cert; 32]), SocketAddr::from(([127, 0, 0, ip], 9)));
        self.sessions += 1;
        let got = self.registry.register(&id, cert, addr, self.sessions, self.now);
        let want = self.expect_register(&id, cert, addr);
        assert_eq!(got, want, "register {id}");
        if want.is_ok() {
            let entry = Peer { cert, addr, session: self.sessions, last: self.now, files: BTreeMap::new() };
            self.model.insert(id, entry);
        }
    }

    /// What registering should answer, found by counting; drops a replaced registration.
    fn expect_register(&mut self, id: &str, cert: Fingerprint, addr: SocketAddr) -> Result<(), RegistryError> {
        if let Some(old) = self.model.get(id) {
            if old.cert != cert {
                return Err(RegistryError::Taken(id.to_string()));
            }
            self.model.remove(id);
        }
        let limits = limits();
        if self.model.values().filter(|p| p.cert == cert).count() >= limits.max_ids_per_cert {
            return Err(RegistryError::TooManyIds(limits.max_ids_per_cert));
        }
        if self.model.values().filter(|p| p.addr.ip() == addr.ip()).count() >= limits.max_peers_per_ip {
            return Err(RegistryError::AddressFull(addr.ip(), limits.max_peers_per_ip));
        }
        if self.model.len() >= limits.max_peers {
            return Err(RegistryError::PeersFull(limits.max_peers));
        }
        Ok(())
    }

    fn share(&mut self, peer: u8, file: u8, name: u8, size: u8, stale: bool) {
        let (id, session) = self.session_of(peer);
        let session = if stale { session.wrapping_add(1) } else { session };
        let info = FileInfo { id: file_id(file), name: NAMES[usize::from(name)].into(), size: u64::from(size), folder: None };
        let got = self.registry.share(&id, session, &info, self.now);
        let other_size = self.model.values().any(|p| p.files.get(&info.id).is_some_and(|(_, s)| *s != info.size));
        let want = match self.model.get_mut(&id) {
            _ if other_size => Err(RegistryError::SizeMismatch(info.id.short())),
            Some(p) if p.session == session => {
                p.last = self.now;
                let before = p.files.insert(info.id, (info.name.clone(), info.size));
                Ok(before.is_none_or(|(was, _)| was != info.name))
            }
            _ => Err(RegistryError::NotRegistered),
        };
        assert_eq!(got, want, "share {id} {info:?}");
    }

    fn wait(&mut self, secs: u8) {
        self.now += Duration::from_secs(u64::from(secs));
        let mut got = self.registry.expire(self.now, TIMEOUT);
        let mut want: Vec<String> =
            self.model.iter().filter(|(_, p)| self.now.saturating_duration_since(p.last) > TIMEOUT).map(|(id, _)| id.clone()).collect();
        self.model.retain(|id, _| !want.contains(id));
        got.sort();
        want.sort();
        assert_eq!(got, want, "expired at +{secs} s");
    }

    /// Every file the model's peers hold: (size, holder → name), by id.
    fn files(&self) -> BTreeMap<FileId, (u64, BTreeMap<String, String>)> {
        let mut files: BTreeMap<FileId, (u64, BTreeMap<String, String>)> = BTreeMap::new();
        for (peer, p) in &self.model {
            for (id, (name, size)) in &p.files {
                files.entry(*id).or_insert_with(|| (*size, BTreeMap::new())).1.insert(peer.clone(), name.clone());
            }
        }
        files
    }

    /// A match as a scan finds it: named `query` if a holder uses that name, else its first name.
    fn found(&self, id: &FileId, size: u64, holders: &BTreeMap<String, String>, query: Option<&str>) -> FileMatch {
        let name = match query {
            Some(q) if holders.values().any(|n| n == q) => q.to_string(),
            _ => holders.values().min().cloned().unwrap_or_default(),
        };
        let holder = |peer: &String| {
            let p = &self.model[peer];
            Holder { peer_id: peer.clone(), addr: p.addr, fingerprint: p.cert, also: Vec::new() }
        };
        FileMatch { file: FileInfo { id: *id, name, size, folder: None }, holders: holders.keys().map(holder).collect() }
    }

    /// `lookup(query)` by brute force: every file, its names and `Digest::has_prefix`.
    fn scan(&self, query: &str) -> Vec<FileMatch> {
        let by_id = query.len() >= MIN_ID_PREFIX && query.chars().all(|c| c.is_ascii_hexdigit());
        let mut found: Vec<FileMatch> = self
            .files()
            .iter()
            .filter(|(id, (_, holders))| holders.values().any(|n| n == query) || (by_id && id.has_prefix(query)))
            .map(|(id, (size, holders))| self.found(id, *size, holders, Some(query)))
            .collect();
        found.sort_by(|a, b| (&a.file.name, a.file.id).cmp(&(&b.file.name, b.file.id)));
        found
    }

    /// The whole listing, read a page of `size` at a time.
    fn paged(&self, size: usize) -> Vec<FileMatch> {
        let mut all: Vec<FileMatch> = Vec::new();
        for _ in 0..=self.registry.counts().1 {
            let after = all.last().map(|m| (m.file.name.as_str(), &m.file.id));
            let (page, more) = self.registry.files_page(after, size, Listed::All);
            assert!(page.len() == size || !more, "a short page says no more follow");
            all.extend(page);
            if !more {
                return all;
            }
        }
        panic!("paging did not end");
    }

    fn check(&self, step: usize) {
        let files = self.files();
        let listings = self.model.values().map(|p| p.files.len()).sum();
        assert_eq!(self.registry.counts(), (self.model.len(), files.len(), listings), "counts");
        for name in NAMES.iter().chain(&["", "nothing"]) {
            assert_eq!(self.registry.lookup(name, Listed::All), self.scan(name), "lookup {name:?}");
        }
        let hex = file_id((step % usize::from(FILES)) as u8).to_hex();
        for len in 1..=hex.len() {
            let prefix = if len % 3 == 0 { hex[..len].to_ascii_uppercase() } else { hex[..len].to_string() };
            assert_eq!(self.registry.lookup(&prefix, Listed::All), self.scan(&prefix), "lookup {prefix:?}");
        }
        let mut listing: Vec<FileMatch> = files.iter().map(|(id, (size, h))| self.found(id, *size, h, None)).collect();
        listing.sort_by(|a, b| (&a.file.name, a.file.id).cmp(&(&b.file.name, b.file.id)));
        assert_eq!(self.paged(1 + step % 4), listing, "files in pages");
        for cert in 0..4u8 {
            let peer = self.registry.peer_with(&Digest([cert; 32]));
            assert_eq!(peer.is_some(), self.model.values().any(|p| p.cert == Digest([cert; 32])), "peer_with {cert}");
            assert!(peer.is_none_or(|id| self.model[&id].cert == Digest([cert; 32])));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn lookups_pages_and_counts_equal_a_scan(ops in prop::collection::vec(op(), 1..160)) {
        let mut run = Run::new();
        for (step, op) in ops.iter().enumerate() {
            run.apply(op);
            run.check(step);
        }
    }
}

#[test]
fn every_prefix_of_every_file_finds_it_and_only_what_a_scan_finds() {
    let mut run = Run::new();
    for n in 0..6 {
        run.apply(&Op::Register { peer: n, cert: n % 2, ip: n % 3 });
    }
    for n in 0..FILES {
        run.apply(&Op::Share { peer: n % 6, file: n, name: n % 4, size: 1, stale: false });
    }
    assert!(run.registry.counts().1 > 8, "enough files to tell apart");
    for step in 0..usize::from(FILES) {
        run.check(step);
    }
}
