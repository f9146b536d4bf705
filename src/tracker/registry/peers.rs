//! The live peers, with the counts the registry's limits need kept as they change: ids per
//! certificate, peers per IP address, and the peers in order of their last sign of life, so
//! admitting a peer never counts and the expiry sweep looks only at the silent ones.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::PeerEntry;
use super::small_map::SmallMap;
use crate::protocol::{FileId, Fingerprint};

/// Peers by id, certificate, address and silence.
#[derive(Default)]
pub(super) struct PeerTable {
    /// In order of id, so a view's first rows are read without looking at the rest. The id is
    /// kept once and shared with every other place that names the peer. Entries are boxed:
    /// a B-tree node keeps room for 11, a third of them empty on average, and an empty slot
    /// then costs 8 bytes instead of an entry's 200-odd (160 bytes a peer in all).
    by_id: BTreeMap<Arc<str>, Box<PeerEntry>>,
    /// The ids each certificate holds (a few: they are capped).
    by_cert: HashMap<Fingerprint, SmallMap<Arc<str>, ()>>,
    /// How many peers each IP address holds.
    by_ip: HashMap<IpAddr, usize>,
    /// (last sign of life, id) of every peer, oldest first.
    by_alive: BTreeSet<(Instant, Arc<str>)>,
}

impl PeerTable {
    /// The peer `id`, if it is live.
    pub fn get(&self, id: &str) -> Option<&PeerEntry> {
        self.by_id.get(id).map(|entry| &**entry)
    }

    /// Live peers.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// The peer `id` as the registry keeps its id (shared, not copied, by what names it).
    pub fn key(&self, id: &str) -> Option<&Arc<str>> {
        self.by_id.get_key_value(id).map(|(key, _)| key)
    }

    /// Every live peer, in order of id.
    pub fn iter(&self) -> impl Iterator<Item = (&Arc<str>, &PeerEntry)> {
        self.by_id.iter().map(|(id, entry)| (id, &**entry))
    }

    /// The ids registered with this certificate, in order.
    pub fn ids_of(&self, fingerprint: &Fingerprint) -> impl Iterator<Item = &Arc<str>> {
        self.by_cert.get(fingerprint).into_iter().flat_map(SmallMap::keys)
    }

    /// How many ids are registered with this certificate.
    pub fn count_of(&self, fingerprint: &Fingerprint) -> usize {
        self.by_cert.get(fingerprint).map_or(0, SmallMap::len)
    }

    /// How many live peers connect from `ip`.
    pub fn at_ip(&self, ip: IpAddr) -> usize {
        self.by_ip.get(&ip).copied().unwrap_or(0)
    }

    /// Adds a peer (its id must not be live).
    pub fn insert(&mut self, id: &str, entry: PeerEntry) {
        let id: Arc<str> = Arc::from(id);
        self.by_cert.entry(entry.fingerprint).or_default().insert(id.clone(), ());
        *self.by_ip.entry(entry.addr.ip()).or_insert(0) += 1;
        self.by_alive.insert((entry.last_alive, id.clone()));
        self.by_id.insert(id, Box::new(entry));
    }

    /// Drops a peer; returns its entry.
    pub fn remove(&mut self, id: &str) -> Option<(Arc<str>, PeerEntry)> {
        let (key, entry) = self.by_id.remove_entry(id)?;
        if let Some(ids) = self.by_cert.get_mut(&entry.fingerprint) {
            ids.remove(id);
            if ids.is_empty() {
                self.by_cert.remove(&entry.fingerprint);
            }
        }
        if let Some(count) = self.by_ip.get_mut(&entry.addr.ip()) {
            *count -= 1;
            if *count == 0 {
                self.by_ip.remove(&entry.addr.ip());
            }
        }
        self.by_alive.remove(&(entry.last_alive, key.clone()));
        Some((key, *entry))
    }

    /// Whether `id` is live and registered on connection `session`.
    pub fn on_session(&self, id: &str, session: u64) -> bool {
        self.by_id.get(id).is_some_and(|p| p.session == session)
    }

    /// The files of `id` if it is registered on `session`.
    pub fn files_mut(&mut self, id: &str, session: u64) -> Option<&mut SmallMap<FileId, (), 64>> {
        self.entry_mut(id, session).map(|p| &mut p.files)
    }

    /// The entry of `id` if it is registered on `session`; its address is not to be changed
    /// here (the count per IP follows it).
    pub fn entry_mut(&mut self, id: &str, session: u64) -> Option<&mut PeerEntry> {
        self.by_id.get_mut(id).filter(|p| p.session == session).map(|p| &mut **p)
    }

    /// Counts one more introduction of `id` as a holder.
    pub fn introduced(&mut self, id: &str) {
        if let Some(peer) = self.by_id.get_mut(id) {
            let reach = peer.reach_mut();
            reach.introduced = reach.introduced.saturating_add(1);
        }
    }

    /// Counts one downloader's report of a punch to `id`, while reports stay within its
    /// introductions; returns whether it was counted.
    pub fn punch_outcome(&mut self, id: &str, fingerprint: &Fingerprint, connected: bool) -> bool {
        let Some(peer) = self.by_id.get_mut(id).filter(|p| p.fingerprint == *fingerprint) else { return false };
        let Some(reach) = peer.reach.as_deref_mut() else { return false };
        let (ok, failed) = reach.punches;
        if ok.saturating_add(failed) >= reach.introduced {
            return false;
        }
        reach.punches = if connected { (ok + 1, failed) } else { (ok, failed + 1) };
        true
    }

    /// Records a sign of life from `id` at `now`.
    pub fn touch(&mut self, id: &str, now: Instant) {
        let Some((key, _)) = self.by_id.get_key_value(id) else { return };
        let key = key.clone();
        let Some(peer) = self.by_id.get_mut(id) else { return };
        if peer.last_alive == now {
            return;
        }
        self.by_alive.remove(&(peer.last_alive, key.clone()));
        self.by_alive.insert((now, key));
        peer.last_alive = now;
    }

    /// Takes `id`'s reported transfer totals; returns its rates after.
    pub fn report(&mut self, id: &str, uploaded: u64, downloaded: u64, now: Instant) -> (u64, u64) {
        let Some(peer) = self.by_id.get_mut(id) else { return (0, 0) };
        peer.transfer.report(uploaded, downloaded, now);
        peer.transfer.rates()
    }

    /// Ids of the peers silent for longer than `timeout` at `now`, oldest first; looks at
    /// those only.
    pub fn silent(&self, now: Instant, timeout: Duration) -> Vec<String> {
        let Some(cutoff) = now.checked_sub(timeout) else { return Vec::new() };
        self.by_alive.range(..(cutoff, Arc::from(""))).map(|(_, id)| id.to_string()).collect()
    }
}
