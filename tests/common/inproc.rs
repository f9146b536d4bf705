//! In-process harness: a tracker and peers inside the test's own tokio runtime, each on its own
//! simulated link ([`p2pq::net::linksim`]), all in one temp folder on 127.0.0.1.
//!
//! A peer's [`Link`] is its uplink: everything it sends (chunks, requests, acks, heartbeats to
//! the tracker) crosses it, so a round trip between two peers is the sum of both one-way
//! delays, and a seeder's rate is shared by all its downloaders. Every wait is bounded: peers
//! get [`SETTLE_TIMEOUT`] to register, a `get` gets [`GET_TIMEOUT`], and conditions with no
//! event to wait on are polled every [`POLL`] inside a deadline. Call [`Net::stop`] at the end
//! so every peer leaves and the tracker shuts down.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use p2pq::net::linksim::{self, Link, LinkControl, LinkStats};
use p2pq::peer::{Got, Peer, PeerConfig};
use p2pq::tracker::{self, Running, TrackerConfig};
use tokio::time::Instant;

/// Longest one `get` may take before the test fails instead of hanging CI.
pub const GET_TIMEOUT: Duration = Duration::from_secs(90);
/// Longest a peer may take to register with the tracker, over however slow a link.
pub const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Heartbeat interval of the peers: short, so a slow or lossy link carries many of them.
pub const HEARTBEAT: Duration = Duration::from_secs(1);
/// Silence after which the tracker drops a peer (the CLI default).
pub const PEER_TIMEOUT: Duration = Duration::from_secs(15);
/// Between two looks at a state that announces its change with no event.
pub const POLL: Duration = Duration::from_millis(20);

/// A tracker and the peers started around it, in one temp folder.
pub struct Net {
    dir: tempfile::TempDir,
    tracker: Option<Running>,
    peers: Vec<Host>,
}

/// One peer and its simulated link.
struct Host {
    peer: Peer,
    stats: Arc<LinkStats>,
}

impl Net {
    /// Starts a tracker on a perfect link. Call inside a tokio runtime.
    pub async fn start() -> Result<Net> {
        let dir = tempfile::tempdir().context("cannot make a temp folder")?;
        let config = TrackerConfig {
            listen: ([127, 0, 0, 1], 0).into(),
            certs: dir.path().join("certs"),
            state_dir: dir.path().join("tracker"),
            peer_timeout: PEER_TIMEOUT,
            advertise: Vec::new(),
            limits: tracker::Limits::default(),
        };
        let sim = linksim::socket(config.listen, Link::default()).context("cannot bind the tracker's socket")?;
        let tracker = tracker::start_on(&config, sim.socket).await.context("cannot start the tracker")?;
        Ok(Net { dir, tracker: Some(tracker), peers: Vec::new() })
    }

    /// Starts peer `id` with its uplink on `link`, waits until it is registered and its tracker
    /// requests can go through; returns it and the handle that changes its link.
    pub async fn add_peer(&mut self, id: &str, link: Link) -> Result<(Peer, LinkControl)> {
        self.add_peer_with(id, link, |_| {}).await
    }

    /// Like [`Net::add_peer`], with the configuration changed by `tweak` first (a DHT, no
    /// tracker); a peer with no tracker is not waited for.
    pub async fn add_peer_with(&mut self, id: &str, link: Link, tweak: impl FnOnce(&mut PeerConfig)) -> Result<(Peer, LinkControl)> {
        let home = self.home(id);
        std::fs::create_dir_all(home.join("data"))?;
        // A peer started after the tracker stopped still needs an address to not reach.
        let tracker = self.tracker.as_ref().map_or_else(|| ([127, 0, 0, 1], 9).into(), |t| t.addr);
        let mut config = PeerConfig { heartbeat: HEARTBEAT, ..PeerConfig::in_home(id, tracker, &self.dir.path().join("certs"), &home) };
        tweak(&mut config);
        let sim = linksim::socket(config.listen, link).with_context(|| format!("cannot bind peer {id}'s socket"))?;
        let no_tracker = config.no_tracker;
        let peer = Peer::start_on(config, sim.socket).await.with_context(|| format!("cannot start peer {id}"))?;
        self.peers.push(Host { peer: peer.clone(), stats: sim.stats });
        if !no_tracker {
            tokio::time::timeout(SETTLE_TIMEOUT, peer.registered()).await.with_context(|| format!("peer {id} did not register"))?;
        }
        Ok((peer, sim.control))
    }

    /// Stops the tracker now (the peers stay up).
    pub async fn stop_tracker(&mut self) {
        if let Some(tracker) = self.tracker.take() {
            tracker.stop().await;
        }
    }

    /// Starts peer `id` on `link` with `data` as `name` in its data folder, and shares it.
    pub async fn seeder(&mut self, id: &str, link: Link, name: &str, data: &[u8]) -> Result<(Peer, LinkControl)> {
        let (peer, control) = self.add_peer(id, link).await?;
        self.write_data(&peer, name, data)?;
        let shared = peer.share(name).await.with_context(|| format!("peer {id} cannot share {name}"))?;
        if let Some(reason) = shared.pending {
            bail!("peer {id} shared {name} but the tracker did not hear: {reason}");
        }
        Ok((peer, control))
    }

    /// Writes `bytes` as `name` (a path, its folders made) in `peer`'s data folder; returns
    /// the path.
    pub fn write_data(&self, peer: &Peer, name: &str, bytes: &[u8]) -> Result<PathBuf> {
        let path = self.home(peer.id()).join("data").join(name);
        if let Some(folder) = path.parent() {
            std::fs::create_dir_all(folder).with_context(|| format!("cannot make {}", folder.display()))?;
        }
        std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(path)
    }

    /// What `peer`'s link did so far (datagrams sent, lost, overflowed).
    pub fn link_stats(&self, peer: &Peer) -> Option<Arc<LinkStats>> {
        self.peers.iter().find(|h| h.peer.id() == peer.id()).map(|h| h.stats.clone())
    }

    /// Peer `id` leaves (the tracker hears `exit`), and is forgotten here: it can be started
    /// again with [`Net::add_peer`] on the same home folder.
    pub async fn leave(&mut self, id: &str) {
        if let Some(at) = self.peers.iter().position(|h| h.peer.id() == id) {
            let host = self.peers.remove(at);
            host.peer.exit().await;
        }
    }

    /// The tracker's address and certificate fingerprint (for a fake holder to register).
    pub fn tracker(&self) -> Option<(std::net::SocketAddr, p2pq::protocol::Fingerprint)> {
        self.tracker.as_ref().map(|t| (t.addr, t.fingerprint))
    }

    /// Every peer leaves (at once, so a peer on a cut link costs its grace time only once),
    /// then the tracker stops.
    pub async fn stop(mut self) {
        let leaving: Vec<_> = self.peers.drain(..).map(|h| tokio::spawn(async move { h.peer.exit().await })).collect();
        for left in leaving {
            let _ = left.await;
        }
        if let Some(tracker) = self.tracker.take() {
            tracker.stop().await;
        }
    }

    /// Where `peer`'s downloads land.
    pub fn download_dir(&self, peer: &Peer) -> PathBuf {
        self.home(peer.id()).join("downloads")
    }

    fn home(&self, id: &str) -> PathBuf {
        self.dir.path().join(id)
    }
}

/// `peer.get(name)`, failing after [`GET_TIMEOUT`] instead of hanging.
pub async fn get(peer: &Peer, name: &str) -> Result<Got> {
    match tokio::time::timeout(GET_TIMEOUT, peer.get(name)).await {
        Ok(got) => got.with_context(|| format!("peer {} could not get {name}", peer.id())),
        Err(_) => bail!("peer {} did not get {name} within {GET_TIMEOUT:?}", peer.id()),
    }
}

/// Checks that `got` is a real transfer whose file on disk is exactly `want`.
pub fn assert_got(got: &Got, want: &[u8]) -> Result<()> {
    ensure!(!got.from.is_empty(), "get found {} already there; nothing was transferred", got.path.display());
    let on_disk = std::fs::read(&got.path).with_context(|| format!("cannot read {}", got.path.display()))?;
    ensure!(on_disk.len() == want.len(), "{} has {} bytes, expected {}", got.path.display(), on_disk.len(), want.len());
    ensure!(blake3::hash(&on_disk) == blake3::hash(want), "{} has the right size but the wrong bytes", got.path.display());
    Ok(())
}

/// Chunks `holder` delivered in `got`.
pub fn chunks_from(got: &Got, holder: &str) -> u32 {
    got.from.iter().filter(|(id, _)| id == holder).map(|(_, n)| n).sum()
}

/// Polls `ready` every [`POLL`] until it holds; fails after `timeout`.
pub async fn wait_for(timeout: Duration, mut ready: impl FnMut() -> bool) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while !ready() {
        ensure!(Instant::now() < deadline, "condition not met within {timeout:?}");
        tokio::time::sleep(POLL).await;
    }
    Ok(())
}
