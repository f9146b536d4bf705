//! A peer: shares files from its data folder, downloads from the swarm, keeps the tracker posted.
//!
//! One QUIC endpoint does everything: it serves chunks to downloaders (ALPN `p2pq-peer/1`) and
//! connects out to the tracker and to holders. [`Peer::start`] brings up the endpoint, the
//! serving loop and the tracker link; the front ends (`app`) call [`Peer::share`],
//! [`Peer::get_with`] and friends, and [`Peer::exit`] leaves cleanly. The engine never prints:
//! downloads report through [`events`].

pub mod download;
pub mod events;
mod finder;
mod gate;
mod holder;
mod liveness;
pub mod scheduler;
pub mod serve;
mod sharing;
pub mod throttle;
pub mod window;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::discovery::Discovery;
use crate::discovery::ticket::Ticket;
use crate::discovery::tracker::{self as tracker_link, TrackerLink};
use crate::net::task;
use crate::store::catalog::Origin;
use crate::store::lock::StateLock;
use crate::store::shares::Shares;
pub use sharing::Unshared;

use crate::content::manifest::Manifest;
use crate::logbook::{ChunkRecord, Logbook};
use crate::net::tls::{self, Identity};
use crate::protocol::{self, FileInfo, FileMatch, PEER_ALPN, TRACKER_ALPN, TrackerRequest, TrackerResponse, close};
use crate::store::{self, Destination};

/// How long `exit` waits for connections to close cleanly.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// How to run a peer.
#[derive(Clone, Debug)]
pub struct PeerConfig {
    /// The peer's id (letters, digits, `-`, `_`).
    pub id: String,
    /// The tracker's address.
    pub tracker: SocketAddr,
    /// Other addresses of the same tracker (from a ticket or a host name), tried alongside.
    pub tracker_alternates: Vec<SocketAddr>,
    /// The tracker's certificate to pin; default `CERTS/tracker.crt`.
    pub tracker_cert: Option<PathBuf>,
    /// The tracker's certificate fingerprint to pin (from a ticket); when set, no certificate
    /// file is read.
    pub tracker_pin: Option<protocol::Fingerprint>,
    /// Folder of certificates (the tracker's, and this peer's own).
    pub certs: PathBuf,
    /// Folder `share` takes files from.
    pub data_dir: PathBuf,
    /// Folder downloads land in.
    pub download_dir: PathBuf,
    /// Folder of the peer's own records (its chunk log).
    pub state_dir: PathBuf,
    /// Interval of `alive` heartbeats.
    pub heartbeat: Duration,
    /// Address the endpoint binds (port 0: any free port).
    pub listen: SocketAddr,
    /// Upload limit in bytes per second, across all downloaders.
    pub upload_limit: Option<u64>,
    /// Chunk requests a download keeps in flight per holder: `None` (the default) follows each
    /// holder's measured rate and round trip; a number fixes it (benches compare depths).
    pub window: Option<usize>,
    /// How long a download with no holder left waits for one (asking discovery again) before
    /// it gives up, keeping what it verified.
    pub stall_timeout: Duration,
}

/// Interval of `alive` heartbeats unless told otherwise (the CLI's default too).
pub const HEARTBEAT: Duration = Duration::from_secs(5);
/// How long a download waits for a holder when none is left, unless told otherwise (the
/// CLI's default too): long enough for a holder's laptop to wake or its owner to restart it.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(180);

impl PeerConfig {
    /// Peer `id` of the tracker at `tracker`, with its certificate in `certs` and everything
    /// else under `home` (`data/`, `downloads/`, `state/`), on a free loopback port, with the
    /// defaults: tracker certificate `certs/tracker.crt`, heartbeat [`HEARTBEAT`], no upload
    /// limit, a window that follows each link. Change what differs with `..`.
    pub fn in_home(id: &str, tracker: SocketAddr, certs: &std::path::Path, home: &std::path::Path) -> PeerConfig {
        PeerConfig {
            id: id.to_string(),
            tracker,
            tracker_alternates: Vec::new(),
            tracker_cert: None,
            tracker_pin: None,
            certs: certs.to_path_buf(),
            data_dir: home.join("data"),
            download_dir: home.join("downloads"),
            state_dir: home.join("state"),
            heartbeat: HEARTBEAT,
            listen: ([127, 0, 0, 1], 0).into(),
            upload_limit: None,
            window: None,
            stall_timeout: STALL_TIMEOUT,
        }
    }
}

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
    /// Where holders come from (the tracker today).
    discovery: Arc<dyn Discovery>,
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

/// A file now shared.
pub struct Shared {
    /// What was announced.
    pub info: FileInfo,
    /// Number of chunks.
    pub chunks: u32,
    /// Why the tracker has not heard of it yet, if it has not.
    pub pending: Option<String>,
}

/// A finished `get`.
pub struct Got {
    /// The file.
    pub info: FileInfo,
    /// Where it is.
    pub path: PathBuf,
    /// Time from lookup to the file in place.
    pub elapsed: Duration,
    /// Chunks from each holder; empty if we already had the file.
    pub from: Vec<(String, u32)>,
    /// Chunks an interrupted earlier attempt had already verified.
    pub resumed: u32,
    /// Bytes moved this time (the size less what an earlier attempt left): what the rate is of.
    pub moved: u64,
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
        let tracker_fp = match config.tracker_pin {
            Some(pin) => pin,
            None => tls::pinned_fingerprint(&config.tracker_cert.clone().unwrap_or_else(|| tls::paths(&config.certs, "tracker").0))?,
        };
        let server = tls::server_config(&identity, PEER_ALPN)?;
        let endpoint = bind(&identity, server, config.listen)?;
        let mut tracker_addrs = vec![config.tracker];
        tracker_addrs.extend(config.tracker_alternates.iter().filter(|a| **a != config.tracker));
        let link = Arc::new(TrackerLink::new(tracker_addrs, tls::client_config(&identity, TRACKER_ALPN, tracker_fp)?));
        let link_notices = link.notices();
        let log_path = config.state_dir.join("chunks.jsonl");
        let log = Logbook::open(&log_path).with_context(|| format!("cannot open the log {}", log_path.display()))?;
        let (shares, withdrawn) = Shares::new();
        let throttle = config.upload_limit.map(|rate| Arc::new(throttle::Throttle::new(rate)));
        let holders = Arc::new(holder::HolderPool::new(config.window));
        let identity = Arc::new(identity);
        let discovery: Arc<dyn Discovery> = link.clone();
        let seek = Arc::new(finder::Seek {
            discovery: discovery.clone(),
            me: config.id.clone(),
            endpoint: endpoint.clone(),
            identity: identity.clone(),
            pool: holders.clone(),
        });
        let sharing = sharing::Sharing::open(&config.state_dir);
        let inner = Inner {
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
        Ok(peer)
    }

    fn spawn_background(&self, withdrawn: tokio::sync::mpsc::UnboundedReceiver<FileInfo>) {
        let inner = &self.inner;
        let gate = Arc::new(gate::Gate::new(Arc::new(gate::TrackerAdmission::new(inner.link.clone()))));
        let me = inner.config.id.as_str();
        let serving = task::spawn(
            tracing::info_span!("serve", me),
            serve::run(
                inner.endpoint.clone(),
                serve::Serving { shares: inner.shares.clone(), throttle: inner.throttle.clone() },
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
        let withdrawing = task::spawn(tracing::info_span!("withdraw", me), withdraw(inner.link.clone(), withdrawn, inner.shutdown.clone()));
        inner.tasks.lock().unwrap_or_else(|p| p.into_inner()).extend([serving, linking, withdrawing]);
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

    /// Starts serving a downloaded file at once and announces it from a background task (a
    /// tracker that is away hears of it on re-registering, which lists every share).
    fn serve_in_background(&self, info: FileInfo, path: PathBuf, manifest: Arc<Manifest>) -> Result<()> {
        self.serve_now(info.clone(), path.clone(), manifest.clone(), Origin::Downloaded, false)?;
        let peer = self.clone();
        let span = tracing::info_span!("announce", me = %self.inner.config.id, file = %info.id.short());
        task::spawn_until(&self.inner.shutdown, span, async move {
            if let Some(reason) = peer.record_and_announce(info, path, manifest, Origin::Downloaded).await {
                tracing::debug!("downloaded but not announced yet: {reason}");
            }
        });
        Ok(())
    }

    /// Downloads the file called `query` (or whose id starts with it) from every live holder,
    /// reporting nothing.
    pub async fn get(&self, query: &str) -> Result<Got> {
        self.get_with(query, None, &CancellationToken::new()).await
    }

    /// Like [`Peer::get`], sending [`events::Progress`] to `events` if given (the front end
    /// shows them; the engine never draws); gives up when `cancel` fires (what was verified
    /// stays for the next attempt).
    pub async fn get_with(
        &self,
        query: &str,
        events: Option<UnboundedSender<events::Progress>>,
        cancel: &CancellationToken,
    ) -> Result<Got> {
        let started = Instant::now();
        let query = &self.query_of(query)?;
        let target = tokio::select! {
            target = self.lookup(query) => target?,
            _ = cancel.cancelled() => bail!("get {query} cancelled"),
        };
        let info = target.file.clone();
        if let Some(path) = self.already_have(&info).await? {
            return Ok(Got { info, path, elapsed: started.elapsed(), from: Vec::new(), resumed: 0, moved: 0 });
        }
        let _claim = self.inner.downloading.take(&info)?;
        let mut target = target;
        target.holders.retain(|h| h.peer_id != self.inner.config.id);
        if target.holders.is_empty() {
            bail!("no live peer other than this one holds {}", info.name);
        }
        if let Some(events) = &events {
            let _ = events.send(events::Progress::Found(info.clone()));
        }
        let (events, forwarding) = events::forward(&self.inner.transfers, &info, events);
        let ctx = download::Context {
            seek: self.inner.seek.clone(),
            stall_timeout: self.inner.config.stall_timeout,
            download_dir: &self.inner.config.download_dir,
            log: &self.inner.log,
            events,
            cancel: cancel.clone(),
        };
        let span = tracing::info_span!("get", me = %self.inner.config.id, file = %info.id.short());
        let outcome = tracing::Instrument::instrument(download::download(&ctx, &target), span).await;
        drop(ctx);
        let _ = forwarding.await;
        let outcome = outcome.with_context(|| format!("download of {} failed", info.name))?;
        // The transfer ends here: announcing is the tracker's business and must not hold up
        // (or be counted in) the summary, even when the tracker just went away.
        let elapsed = started.elapsed();
        let moved = info.size - outcome.resumed_bytes.min(info.size);
        self.serve_in_background(info.clone(), outcome.path.clone(), outcome.manifest)?;
        Ok(Got { info, path: outcome.path, elapsed, from: outcome.from, resumed: outcome.resumed, moved })
    }

    /// What to ask the tracker for: a ticket becomes its file's full id, if it names this
    /// peer's tracker; anything else is asked as typed.
    fn query_of(&self, query: &str) -> Result<String> {
        if !Ticket::looks_like(query) {
            return Ok(query.to_string());
        }
        let ticket = Ticket::parse(query)?;
        if ticket.tracker_fingerprint != self.inner.tracker_fp {
            let theirs = ticket.trackers.first().map_or("?", String::as_str);
            bail!(
                "this ticket is for another tracker (at {theirs}) than this peer's ({}); run p2pq get TICKET, or start a peer with --tracker TICKET",
                self.inner.link.shown()
            );
        }
        Ok(ticket.id().to_hex())
    }

    /// A ticket for `file`: the tracker's addresses as it advertises them (after the one this
    /// peer dialled, unless that is loopback) and its fingerprint.
    pub async fn ticket(&self, file: &FileInfo) -> Ticket {
        let dialled = self.inner.config.tracker;
        let mut trackers = Vec::new();
        if !dialled.ip().is_loopback() {
            trackers.push(dialled.to_string());
        }
        for addr in self.inner.link.contact().await {
            if !trackers.contains(&addr) {
                trackers.push(addr);
            }
        }
        if trackers.is_empty() {
            trackers.push(dialled.to_string());
        }
        trackers.truncate(crate::discovery::ticket::MAX_ADDRESSES);
        Ticket { trackers, tracker_fingerprint: self.inner.tracker_fp, file: file.clone() }
    }

    /// Asks the tracker which file `query` means; exactly one must match.
    async fn lookup(&self, query: &str) -> Result<FileMatch> {
        let mut found = self.inner.discovery.find(query).await?;
        found.retain(|m| protocol::check_name(&m.file.name).is_ok());
        match found.len() {
            0 => bail!("no live peer shares {query:?}"),
            1 => Ok(found.remove(0)),
            n => {
                let list: Vec<String> = found.iter().map(describe_candidate).collect();
                bail!("{query:?} matches {n} different files: {}; pick one with get ID-PREFIX", list.join(", "))
            }
        }
    }

    /// The path of `info` if this peer already has it (shared or at the destination).
    async fn already_have(&self, info: &FileInfo) -> Result<Option<PathBuf>> {
        if let Some(shared) = self.inner.shares.get(&info.id) {
            return Ok(Some(shared.path.clone()));
        }
        let (dir, name, id) = (self.inner.config.download_dir.clone(), info.name.clone(), info.id);
        match tokio::task::spawn_blocking(move || store::destination(&dir, &name, &id)).await?? {
            Destination::Free => Ok(None),
            Destination::Same(path) => {
                let manifest = tokio::task::spawn_blocking({
                    let path = path.clone();
                    move || Manifest::from_file(&path)
                })
                .await??
                .1;
                self.serve_file(info.clone(), path.clone(), Arc::new(manifest)).await?;
                Ok(Some(path))
            }
            Destination::Taken(path) => bail!("{} already exists with other content; not overwritten", path.display()),
        }
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
        self.inner.link.leave().await;
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
        let info = FileInfo { id: found.id, name: found.label(), size: found.size };
        // Held while deleting, so no get of this file starts meanwhile.
        let Ok(_claim) = self.inner.downloading.take(&info) else {
            bail!("{} is downloading now; cancel it (Ctrl-C) or let it finish, then discard it", found.label());
        };
        store::unfinished::discard(dir, &found.id)?;
        Ok(found)
    }
}

/// Tells the tracker about each file this peer stopped serving (its copy changed on disk), so
/// downloaders are not sent to a holder that will refuse them. Ends with the peer.
async fn withdraw(link: Arc<TrackerLink>, mut withdrawn: tokio::sync::mpsc::UnboundedReceiver<FileInfo>, shutdown: CancellationToken) {
    loop {
        let file = tokio::select! {
            _ = shutdown.cancelled() => return,
            file = withdrawn.recv() => match file {
                Some(file) => file,
                None => return,
            },
        };
        if let Err(err) = link.request(&TrackerRequest::Unshare(file.id)).await {
            tracing::warn!("cannot withdraw {} at the tracker: {err:#}", file.name);
        }
    }
}

fn describe_candidate(m: &FileMatch) -> String {
    let holders = m.holders.len();
    format!("{} ({}, {} holder{})", m.file.id.short(), crate::units::bytes(m.file.size), holders, if holders == 1 { "" } else { "s" })
}
