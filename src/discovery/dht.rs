//! Holders through the Mainline DHT (BEP 5), with the `mainline` crate's async node.
//!
//! A file is found by its id alone. Its DHT key is the first 20 bytes of
//! `blake3::derive_key("p2pq dht v1", id)` ([`key`]): never the raw id, so it cannot be taken
//! for a BitTorrent infohash, and a new version of the scheme gets new keys. A holder announces
//! itself under that key with `announce_peer` and its QUIC port, for each file it shares
//! publicly, and again every [`REANNOUNCE`] ([`schedule`] keeps the times, [`keep_announced`]
//! the loop). A lookup (`get_peers`) yields addresses only: no name, no size, no certificate
//! anyone vouched for; what a holder found here sends is checked against the id like any other.
//!
//! The DHT works by full id: names and id prefixes stay a tracker feature ([`full_id`]).
//! mainline speaks IPv4 only, so DHT-found holders are IPv4 addresses.

pub mod schedule;
pub mod source;

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use futures_lite::StreamExt;
use mainline::async_dht::AsyncDht;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::protocol::FileId;
use schedule::Schedule;

/// The `derive_key` context of DHT keys; a new scheme takes a new context, never the old keys.
pub const KEY_CONTEXT: &str = "p2pq dht v1";
/// How often each public file is announced again. mainline's own nodes keep announced peers
/// in an LRU with no time limit, but other BEP 5 nodes drop an announce after about 30 minutes
/// (libtorrent's peer timeout); every 15 minutes, one lost announce still leaves us findable.
pub const REANNOUNCE: Duration = Duration::from_secs(15 * 60);
/// How soon a failed announce is tried again (the node may still be bootstrapping).
pub const RETRY: Duration = Duration::from_secs(30);
/// Longest one lookup runs: mainline ends a `get_peers` when the closest nodes have answered,
/// which on the public DHT takes a few seconds; past this we use what came.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a lookup goes on once it has some holders. A `get_peers` ends only when the
/// closest nodes have answered or timed out, and a DHT is full of nodes that left (seconds of
/// timeouts each); the download starts with the first holders, and finds the rest later as it
/// asks again.
pub const MORE_GRACE: Duration = Duration::from_millis(50);
/// Most addresses one lookup keeps: each DHT node answers with a random 10–20 of the peers it
/// stores, so a few close nodes give this many at most for a small swarm, and a hostile node
/// cannot make us dial thousands.
pub const MAX_ADDRESSES: usize = 100;

/// The 20-byte DHT key of file `id`: the first 20 bytes of
/// `blake3::derive_key("p2pq dht v1", id)`.
pub fn key(id: &FileId) -> mainline::Id {
    let derived = blake3::derive_key(KEY_CONTEXT, &id.0);
    let mut key = [0u8; 20];
    key.copy_from_slice(&derived[..20]);
    mainline::Id::from(key)
}

/// The file id `query` names, if it is a full id (64 hex digits, as `b3sum` prints it); anything
/// else is refused with a reason, since the DHT cannot search names or prefixes.
pub fn full_id(query: &str) -> Result<FileId> {
    let query = query.trim();
    if query.len() != 64 || !query.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!(
            "the DHT finds files by their full id (64 hex digits, as b3sum prints it), not {query:?}; names and id prefixes need a tracker"
        );
    }
    let hash = blake3::Hash::from_hex(query.to_ascii_lowercase()).context("not a file id")?;
    Ok(FileId::from(hash))
}

/// Which DHT nodes a new node first asks for others.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Bootstrap {
    /// mainline's public bootstrap nodes (the real DHT).
    Public,
    /// These nodes only: a private network, or a test's local DHT (our node answers queries
    /// from the start).
    Nodes(Vec<SocketAddr>),
}

/// This peer's DHT node, and the QUIC port it announces. It starts in the background (its
/// bootstrap host names are resolved first, which on a machine offline can take seconds):
/// each call waits for it, and fails if it could not start.
#[derive(Clone)]
pub struct DhtNode {
    dht: watch::Receiver<Option<Result<AsyncDht, String>>>,
    /// The port downloaders reach this peer's QUIC endpoint at.
    pub port: u16,
}

impl DhtNode {
    /// Starts a DHT node on a free UDP port of `bind`, announcing QUIC port `port` for our
    /// files; returns at once.
    pub async fn start(bootstrap: Bootstrap, bind: Ipv4Addr, port: u16) -> Result<DhtNode> {
        let (ready, dht) = watch::channel(None);
        tokio::task::spawn_blocking(move || {
            let mut builder = mainline::Dht::builder();
            builder.bind_address(bind);
            if let Bootstrap::Nodes(nodes) = &bootstrap {
                // A private DHT is only its own nodes: each must answer the others from the
                // start. On the public DHT a node waits until it is seen to be reachable
                // (mainline's adaptive mode), so a node behind a NAT does not pollute tables.
                builder.bootstrap(nodes).server_mode();
            }
            let built = builder.build().map(|dht| dht.as_async()).map_err(|e| format!("cannot start a DHT node: {e}"));
            let _ = ready.send(Some(built));
        });
        Ok(DhtNode { dht, port })
    }

    /// The running node, once it has started.
    async fn node(&self) -> Result<AsyncDht> {
        let mut dht = self.dht.clone();
        let started = dht.wait_for(Option::is_some).await.map_err(|_| anyhow::anyhow!("the DHT node did not start"))?;
        match started.as_ref() {
            Some(Ok(dht)) => Ok(dht.clone()),
            Some(Err(why)) => bail!("{why}"),
            None => bail!("the DHT node did not start"),
        }
    }

    /// Waits for the first bootstrap to end; whether it reached any node.
    pub async fn bootstrapped(&self) -> bool {
        match self.node().await {
            Ok(dht) => dht.bootstrapped().await,
            Err(_) => false,
        }
    }

    /// The UDP address the DHT node listens on, once it has started.
    pub async fn local_addr(&self) -> Result<SocketAddr> {
        Ok(self.node().await?.info().await.local_addr().into())
    }

    /// Announces this peer as a holder of `id` to the nodes closest to its key.
    pub async fn announce(&self, id: &FileId) -> Result<()> {
        match self.node().await?.announce_peer(key(id), Some(self.port)).await {
            Ok(_) => Ok(()),
            Err(err) => bail!("cannot announce {} on the DHT: {err}", id.short()),
        }
    }

    /// The addresses announced for `id`, at most [`MAX_ADDRESSES`], gathered for at most
    /// [`LOOKUP_TIMEOUT`], and for at most [`MORE_GRACE`] once some came (an unreachable DHT
    /// gives none).
    pub async fn addresses(&self, id: &FileId) -> Vec<SocketAddr> {
        let mut found = BTreeSet::new();
        let Ok(Ok(dht)) = tokio::time::timeout(LOOKUP_TIMEOUT, self.node()).await else { return Vec::new() };
        let mut answers = dht.get_peers(key(id));
        let mut until = tokio::time::Instant::now() + LOOKUP_TIMEOUT;
        while found.len() < MAX_ADDRESSES {
            let next = tokio::select! {
                next = answers.next() => next,
                _ = tokio::time::sleep_until(until) => None,
            };
            let Some(peers) = next else { break };
            if found.is_empty() && !peers.is_empty() {
                until = until.min(tokio::time::Instant::now() + MORE_GRACE);
            }
            found.extend(peers.into_iter().map(SocketAddr::V4));
        }
        found.into_iter().take(MAX_ADDRESSES).collect()
    }
}

/// Keeps every id in `public` announced through `node` until `shutdown`: each at once when it
/// appears, again every `every`, and after [`RETRY`] (at most `every`) when an announce fails.
/// A DHT that answers nobody is said once (a warning), not at every retry. `on_dht` holds
/// the public ids announced at least once: what is on the DHT now.
pub async fn keep_announced(
    node: Arc<DhtNode>,
    mut public: watch::Receiver<BTreeSet<FileId>>,
    on_dht: watch::Sender<BTreeSet<FileId>>,
    every: Duration,
    shutdown: CancellationToken,
) {
    let mut schedule = Schedule::new(every, RETRY.min(every));
    let mut warned = false;
    loop {
        let now_public = public.borrow_and_update().clone();
        schedule.track(&now_public, tokio::time::Instant::now().into_std());
        on_dht.send_if_modified(|on| {
            let before = on.len();
            on.retain(|id| now_public.contains(id));
            on.len() != before
        });
        if let Some(id) = schedule.due(tokio::time::Instant::now().into_std()) {
            let announced = tokio::select! {
                _ = shutdown.cancelled() => return,
                announced = node.announce(&id) => announced,
            };
            let now = tokio::time::Instant::now().into_std();
            match announced {
                Ok(()) => {
                    schedule.announced(&id, now);
                    on_dht.send_if_modified(|on| on.insert(id));
                }
                Err(err) => {
                    if !std::mem::replace(&mut warned, true) {
                        tracing::warn!("{err:#}; trying again every {:?}", RETRY.min(every));
                    }
                    schedule.failed(&id, now);
                }
            }
            continue;
        }
        let next = schedule.next_at().map(tokio::time::Instant::from_std);
        tokio::select! {
            _ = shutdown.cancelled() => return,
            changed = public.changed() => if changed.is_err() { return },
            _ = sleep_until(next) => {}
        }
    }
}

/// Sleeps until `at`, forever if there is no `at`.
async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_the_derived_hash_cut_to_20_bytes_never_the_id() {
        let id = FileId::from(blake3::hash(b"hello"));
        let derived = blake3::derive_key("p2pq dht v1", &id.0);
        assert_eq!(key(&id).as_bytes(), &derived[..20]);
        assert_ne!(key(&id).as_bytes(), &id.0[..20]);
        // Pinned: a change of scheme must be deliberate (new context), never an accident.
        assert_eq!(key(&crate::content::id::Digest([0; 32])).to_string(), "fbfdd3970e7910035772433d911adf651ade2481");
    }

    #[test]
    fn only_a_full_id_is_looked_up() {
        let id = FileId::from(blake3::hash(b"x"));
        assert_eq!(full_id(&id.to_hex()).unwrap(), id);
        assert_eq!(full_id(&id.to_hex().to_uppercase()).unwrap(), id);
        for bad in ["holiday.zip", &id.short(), &format!("{}0", id.to_hex()), &"g".repeat(64), ""] {
            let err = full_id(bad).unwrap_err().to_string();
            assert!(err.contains("full id") && err.contains("tracker"), "{err}");
        }
    }
}
