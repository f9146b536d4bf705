//! A peer: shares files from its data folder, downloads from the swarm, keeps the tracker posted.
//!
//! One QUIC endpoint does everything: it serves chunks to downloaders (ALPN `p2pq-peer/1`) and
//! connects out to the tracker and to holders. [`Peer::start`] brings up the endpoint, the
//! serving loop and the tracker link; the front ends (`app`) call [`Peer::share`],
//! [`Peer::get_with`] and friends, and [`Peer::exit`] leaves cleanly. The engine never prints:
//! downloads report through [`events`].

mod announce;
mod config;
mod describe;
pub mod download;
pub mod events;
pub use folders::FolderShared;
mod finder;
mod folder_get;
mod folders;
mod gate;
mod getting;
mod holder;
mod liveness;
mod mapping;
mod observe;
mod outcome;
mod partials;
mod pieces;
mod progress_report;
mod punch;
mod restore;
pub mod scheduler;
pub mod serve;
mod sharing;
mod sources;
mod superseed;
pub mod throttle;
mod tree_hash;
pub mod window;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::discovery::Discovery;
use crate::discovery::dht;
use crate::discovery::tracker::{self as tracker_link, TrackerLink};
use crate::net::task;
use crate::store::catalog::Origin;
use crate::store::lock::StateLock;
use crate::store::public::Public;
use crate::store::shares::Shares;
pub use config::{HEARTBEAT, OtherTracker, PeerConfig, STALL_TIMEOUT};
pub use outcome::{Got, Shared};
pub use sharing::Unshared;

use crate::content::manifest::Manifest;
use crate::logbook::{ChunkRecord, Logbook};
use crate::net::tls::{self, Identity};
use crate::protocol::{self, FileInfo, PEER_ALPN, TrackerRequest, TrackerResponse, close};
use crate::store::{self};

/// How long `exit` waits for connections to close cleanly.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// A running peer; cheap to clone.
#[derive(Clone)]
pub struct Peer {
    inner: Arc<Inner>,
}

struct Inner {
    /// Held for the peer's life: one process per state folder.
    _lock: StateLock,
    config: PeerConfig,
    identity: Arc<Identity>,
    /// What downloads use to find and reach holders.
    seek: Arc<finder::Seek>,
    /// The tracker's pinned certificate fingerprint.
    tracker_fp: protocol::Fingerprint,
    endpoint: quinn::Endpoint,
    shares: Shares,
    throttle: Option<Arc<throttle::Throttle>>,
    link: Arc<TrackerLink>,
    /// More trackers (`--tracker` given again): registered with, asked and told too.
    others: Vec<Arc<TrackerLink>>,
    /// Where holders come from: the tracker, and the DHT if it runs.
    discovery: Arc<dyn Discovery>,
    /// This peer's DHT node, if it runs one.
    dht: Option<Arc<dht::DhtNode>>,
    /// The files served to anyone who knows the id (and announced on the DHT).
    public: Public,
    /// The public files announced on the DHT at least once (empty with no DHT).
    on_dht: tokio::sync::watch::Sender<std::collections::BTreeSet<protocol::FileId>>,
    log: Logbook<ChunkRecord>,
    shutdown: CancellationToken,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    refusal: Arc<Mutex<Option<String>>>,
    transfers: events::Transfers,
    notices: Mutex<Option<tokio::sync::broadcast::Receiver<String>>>,
    /// Files being downloaded now, by id: one download per file, whatever query named it.
    downloading: crate::store::claims::Claims,
    /// The share list kept across runs, the hashers, what restoring it says.
    sharing: sharing::Sharing,
}

impl Peer {
    /// Brings the peer up: certificate, endpoint on `config.listen`, serving loop, tracker link.
    pub async fn start(config: PeerConfig) -> Result<Peer> {
        Peer::start_with(config, tls::endpoint).await
    }

    /// Like [`Peer::start`], on a socket the caller made (tests and benches pass a
    /// [`crate::net::linksim`] socket); `config.listen` is not used.
    pub async fn start_on(config: PeerConfig, socket: Arc<dyn quinn::AsyncUdpSocket>) -> Result<Peer> {
        Peer::start_with(config, move |identity, server, _| tls::endpoint_on(identity, server, socket)).await
    }

    async fn start_with(
        config: PeerConfig,
        bind: impl FnOnce(&Identity, quinn::ServerConfig, SocketAddr) -> Result<quinn::Endpoint>,
    ) -> Result<Peer> {
        protocol::check_peer_id(&config.id).map_err(anyhow::Error::msg)?;
        let lock = StateLock::acquire(&config.state_dir, &format!("peer {}", config.id))?;
        let identity = Identity::load_or_create(&config.certs, &format!("peer-{}", config.id))?;
        let server = tls::server_config(&identity, PEER_ALPN)?;
        let endpoint = bind(&identity, server, config.listen)?;
        let (link, tracker_fp) = sources::tracker_link(&config, &identity)?;
        let link = Arc::new(link);
        let others = sources::other_links(&config, &identity)?;
        let link_notices = link.notices();
        let log_path = config.state_dir.join("chunks.jsonl");
        let log = Logbook::open(&log_path).with_context(|| format!("cannot open the log {}", log_path.display()))?;
        let (shares, withdrawn) = Shares::new();
        let throttle = config.upload_limit.map(|rate| Arc::new(throttle::Throttle::new(rate)));
        let download_limit = config.download_limit.map(|rate| Arc::new(throttle::Throttle::new(rate)));
        let holders = Arc::new(holder::HolderPool::new(config.window, download_limit).with_rendezvous(link.clone()));
        let identity = Arc::new(identity);
        let dht = sources::start_dht(&config, &endpoint).await?;
        let discovery = sources::discovery_of(&config, &link, &others, dht.as_ref());
        let seek = Arc::new(finder::Seek {
            discovery: discovery.clone(),
            me: config.id.clone(),
            endpoint: endpoint.clone(),
            identity: identity.clone(),
            pool: holders.clone(),
        });
        let sharing = sharing::Sharing::open(&config.state_dir);
        let public = Public::open(&config.state_dir);
        let inner = Inner {
            others,
            public,
            dht,
            on_dht: tokio::sync::watch::Sender::new(Default::default()),
            seek,
            _lock: lock,
            config,
            identity,
            tracker_fp,
            endpoint,
            shares,
            throttle,
            discovery,
            link,
            log,
            shutdown: CancellationToken::new(),
            tasks: Mutex::new(Vec::new()),
            refusal: Arc::default(),
            notices: Mutex::new(Some(link_notices)),
            downloading: Default::default(),
            transfers: events::Transfers::default(),
            sharing,
        };
        let peer = Peer { inner: Arc::new(inner) };
        peer.spawn_background(withdrawn);
        peer.restore_shares();
        peer.restore_partials();
        Ok(peer)
    }
}

impl Peer {
    fn spawn_background(&self, withdrawn: tokio::sync::mpsc::UnboundedReceiver<FileInfo>) {
        let inner = &self.inner;
        let trackers: Vec<_> = std::iter::once(inner.link.clone()).chain(inner.others.iter().cloned()).collect();
        let admission = Arc::new(gate::TrackerAdmission::new(trackers));
        let gate = Arc::new(gate::Gate::new(admission, inner.public.clone()));
        let me = inner.config.id.as_str();
        let serving = task::spawn(
            tracing::info_span!("serve", me),
            serve::run(
                inner.endpoint.clone(),
                serve::Serving { shares: inner.shares.clone(), throttle: inner.throttle.clone(), crowds: Arc::default() },
                gate,
                inner.shutdown.clone(),
            ),
        );
        let (link, endpoint, id) = (inner.link.clone(), inner.endpoint.clone(), inner.config.id.clone());
        let (shares, heartbeat, shutdown) = (inner.shares.clone(), inner.config.heartbeat, inner.shutdown.clone());
        let refusal = inner.refusal.clone();
        let linking = task::spawn(tracing::info_span!("tracker link", me), async move {
            let refused = link.run(endpoint, id, shares, heartbeat, shutdown).await;
            *refusal.lock().unwrap_or_else(|p| p.into_inner()) = refused;
        });
        let withdrawing = task::spawn(
            tracing::info_span!("withdraw", me),
            announce::withdraw(inner.link.clone(), inner.others.clone(), withdrawn, inner.shutdown.clone()),
        );
        let reporting = task::spawn(
            tracing::info_span!("progress reports", me),
            progress_report::run(inner.link.clone(), inner.shares.clone(), inner.shutdown.clone()),
        );
        let mut tasks = inner.tasks.lock().unwrap_or_else(|p| p.into_inner());
        tasks.extend([serving, linking, withdrawing, reporting]);
        tasks.extend(self.run_other_trackers());
        tasks.extend(self.keep_port_mapped());
        if let Some(node) = &inner.dht {
            let on_dht = inner.on_dht.clone();
            let announcing = dht::keep_announced(node.clone(), inner.public.watch(), on_dht, dht::REANNOUNCE, inner.shutdown.clone());
            tasks.push(task::spawn(tracing::info_span!("dht announce", me), announcing));
            let peer = self.clone();
            tasks.push(task::spawn(tracing::info_span!("dht start", me), async move { peer.say_dht_reached().await }));
            let peer = self.clone();
            tasks.push(task::spawn(tracing::info_span!("dht news", me), async move { peer.say_on_dht().await }));
        }
    }

    /// The peer's id.
    pub fn id(&self) -> &str {
        &self.inner.config.id
    }

    /// The address the endpoint is bound to.
    pub fn local_addr(&self) -> Result<SocketAddr> {
        Ok(self.inner.endpoint.local_addr()?)
    }

    /// This peer's certificate fingerprint.
    pub fn fingerprint(&self) -> protocol::Fingerprint {
        self.inner.identity.fingerprint
    }

    /// Resolves when the peer is shutting down (exit, signal, or refused by the tracker).
    pub async fn stopping(&self) {
        self.inner.shutdown.cancelled().await
    }

    /// The token that stops the peer when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.inner.shutdown.clone()
    }

    /// Notices for a person about the tracker link (connected, lost, back) and the shares
    /// restored from the last run, from the start; the first caller gets them.
    pub fn take_notices(&self) -> Option<tokio::sync::broadcast::Receiver<String>> {
        let link = self.inner.notices.lock().unwrap_or_else(|p| p.into_inner()).take()?;
        Some(self.inner.sharing.merge_notices(link))
    }

    /// Resolves once the peer is registered with the tracker; a request made right after finds
    /// the connection (the link stores it before it says it is up).
    pub async fn registered(&self) {
        self.inner.link.wait_up().await
    }

    /// Resolves once the first attempt to reach the tracker has ended (registered or not), or
    /// after twice a request's timeout: commands typed at once then find the link settled.
    pub async fn tracker_settled(&self) {
        let first = self.inner.link.wait_first_attempt();
        let _ = tokio::time::timeout(tracker_link::REQUEST_TIMEOUT * 2, first).await;
    }

    /// The folder of this peer's own records (chunk log, prompt history).
    pub fn state_dir(&self) -> &std::path::Path {
        &self.inner.config.state_dir
    }

    /// Why the last attempt to reach the tracker failed, if one did.
    pub fn tracker_error(&self) -> Option<String> {
        self.inner.link.last_error()
    }

    /// Whether this peer has a tracker (it runs without one with `no_tracker`).
    pub fn has_tracker(&self) -> bool {
        !self.inner.config.no_tracker
    }

    /// The tracker's address for a person (the one that answered last, else the first).
    pub fn tracker_shown(&self) -> String {
        self.inner.link.shown()
    }

    /// Whether the tracker link is up.
    pub fn tracker_connected(&self) -> bool {
        self.inner.link.is_connected()
    }

    /// Starts serving a file this peer got (a download, or the very file already at its
    /// destination), records it and announces it; returns why the tracker did not hear, if it
    /// did not.
    async fn serve_file(&self, info: FileInfo, path: PathBuf, manifest: Arc<Manifest>) -> Result<Option<String>> {
        self.serve_as(info, path, manifest, Origin::Downloaded, false).await
    }

    /// Every chunk this peer downloaded, oldest first.
    pub fn chunk_log(&self) -> Result<Vec<ChunkRecord>> {
        Ok(self.inner.log.read_all()?)
    }

    /// Files this peer shares, with the chunks and bytes each has sent to downloaders.
    pub fn uploads(&self) -> Vec<crate::store::shares::Uploads> {
        self.inner.shares.uploads()
    }

    /// Downloads under way.
    pub fn transfers(&self) -> Vec<events::Transfer> {
        self.inner.transfers.list()
    }

    /// The tracker's address.
    pub fn tracker_addr(&self) -> SocketAddr {
        self.inner.config.tracker
    }

    /// Names of every file the tracker knows (for Tab completion).
    pub async fn tracker_files(&self) -> Result<Vec<String>> {
        let TrackerResponse::Matches(found) = self.inner.link.request(&TrackerRequest::Files).await? else {
            bail!("unexpected answer from the tracker");
        };
        Ok(found.into_iter().map(|m| m.file.name).filter(|n| protocol::check_name(n).is_ok()).collect())
    }

    /// Paths of the files `share` could take, relative to the data folder, at most `limit`
    /// (blocking: it reads directories). The download folder and hidden entries are skipped.
    pub fn shareable(&self, limit: usize) -> Vec<String> {
        store::shareable(&self.inner.config.data_dir, &self.inner.config.download_dir, limit)
    }

    /// Why the tracker refused this peer for good, if it did.
    pub fn refusal(&self) -> Option<String> {
        self.inner.refusal.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Leaves: tells the tracker, stops serving, closes the endpoint.
    pub async fn exit(&self) {
        // Cancel first so the link task does not take our own goodbye for a lost tracker.
        self.inner.shutdown.cancel();
        let mut others = tokio::task::JoinSet::new();
        for link in &self.inner.others {
            let link = link.clone();
            others.spawn(async move { link.leave().await });
        }
        self.inner.link.leave().await;
        others.join_all().await;
        let tasks: Vec<JoinHandle<()>> = self.inner.tasks.lock().unwrap_or_else(|p| p.into_inner()).drain(..).collect();
        for task in tasks {
            let _ = task.await;
        }
        self.inner.endpoint.close(close::DONE, b"bye");
        let _ = tokio::time::timeout(CLOSE_GRACE, self.inner.endpoint.wait_idle()).await;
    }

    /// Unfinished downloads in the download folder, from their resume state, except those
    /// running now (reads a few small files).
    pub fn unfinished(&self) -> Vec<store::unfinished::Unfinished> {
        let running: Vec<String> = self.transfers().into_iter().map(|t| t.id).collect();
        let all = store::unfinished::list(&self.inner.config.download_dir);
        all.into_iter().filter(|u| !running.contains(&u.id.to_hex())).collect()
    }

    /// Deletes the unfinished download `query` names (its name, or a prefix of its id): its
    /// partial file and resume state. Refuses while that file downloads.
    pub fn discard(&self, query: &str) -> Result<store::unfinished::Unfinished> {
        let dir = &self.inner.config.download_dir;
        let found = store::unfinished::find(store::unfinished::list(dir), query).map_err(anyhow::Error::msg)?;
        let info = FileInfo { id: found.id, name: found.label(), size: found.size, folder: None };
        // Held while deleting, so no get of this file starts meanwhile.
        let Ok(_claim) = self.inner.downloading.take(&info) else {
            bail!("{} is downloading now; cancel it (Ctrl-C) or let it finish, then discard it", found.label());
        };
        // No longer a holder of any of it: stop serving it and tell the tracker.
        if let Some(served) = self.inner.shares.get(&found.id).filter(|f| f.download().is_some()) {
            self.inner.shares.withdraw(&served);
        }
        store::unfinished::discard(dir, &found.id)?;
        Ok(found)
    }
}
