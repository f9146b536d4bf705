//! The tracker: knows which live peer holds which file, and nothing of the files' bytes.
//!
//! [`run`] accepts connections on a bound endpoint and sweeps out peers that went silent;
//! [`start`] adds the certificate and the endpoint; the prompt around it is the front end's
//! (`app::tracker_main`).

mod contact;
pub mod load;
pub mod metrics;
pub mod pace;
mod pacing;
pub mod registry;
mod rendezvous;
mod reply;
mod session;
mod views;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::logbook::{Event, EventKind, Logbook};
use crate::net::limits::Quota;
use crate::net::tls::{self, Identity};
use crate::protocol::{FileId, FileMatch, Fingerprint, TRACKER_ALPN, close};
pub use registry::Limits;
use registry::{PeerEntry, Registry};

/// Connections beyond the peer limit served at once: handshakes, registrations and refusals
/// under way. The registry refuses a peer past a limit with a reason it shows; only a flood
/// of connections beyond these (that never register) meets QUIC's silent refusal.
const PENDING_CONNECTIONS: usize = 1024;
/// Connections from one IP address not registered yet: an unregistered connection holds its
/// slot until the registration timeout, so one host cannot hold many; registered ones are
/// capped by the per-address peer limit (plus these, in all).
const PENDING_PER_IP: usize = 16;
/// Files read for a `Files` reply before it is cut to one frame: more than a frame holds
/// (about 8,000 files with one holder each).
const FILES_REPLY_MOST: usize = 10_000;
/// Silence after which a peer is dropped unless told otherwise (the CLI's default too).
pub const DEFAULT_PEER_TIMEOUT: Duration = Duration::from_secs(15);
/// UDP receive buffer the tracker asks for: every peer's packets arrive on one socket, and a
/// burst of them (a thousand peers leaving at once, each with an `Exit` and a close) must
/// queue there while the endpoint catches up, not be dropped. Mostly empty; the kernel
/// charges only what is queued.
const SOCKET_BUFFER: usize = 32 << 20;
/// How long shutdown waits for connections to close cleanly.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// How to run a tracker.
#[derive(Clone, Debug)]
pub struct TrackerConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Folder of the tracker's certificate and key.
    pub certs: PathBuf,
    /// Folder of the tracker's event log.
    pub state_dir: PathBuf,
    /// Silence after which a peer is dropped.
    pub peer_timeout: Duration,
    /// Addresses (`host[:port]`) to put in tickets, instead of the interfaces' own.
    pub advertise: Vec<String>,
    /// How many peers it admits, and how long it tells the others to wait.
    pub limits: Limits,
}

/// A handle on the tracker's state, shared by sessions and the prompt.
#[derive(Clone)]
pub struct Tracker {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Mutex<Registry>,
    log: Logbook<Event>,
    peer_timeout: Duration,
    /// How many peers it admits, and how long it tells the others to wait.
    limits: Limits,
    /// Replies so far; rotates which holders a reply names when there are too many.
    turns: std::sync::atomic::AtomicU64,
    /// Where others can reach this tracker, for tickets ([`contact`]).
    contact: Vec<String>,
    /// Each registered session's connection, for introductions ([`rendezvous`]).
    links: rendezvous::Links,
    /// What it has done since it started.
    metrics: metrics::Metrics,
    /// The heartbeat pace it asks for, and the expiry that goes with it.
    pace: Mutex<pace::Pace>,
    /// Rounds of pace pushes to everyone started so far; only the latest goes on.
    pace_rounds: std::sync::atomic::AtomicU64,
    /// How busy it is, for shedding reads.
    load: load::Load,
    /// When it started.
    started: Instant,
}

impl Tracker {
    /// A tracker with an empty registry that admits peers up to `limits`, logs to
    /// `state_dir/events.jsonl` and tells peers it can be reached at `contact`.
    pub fn new(state_dir: &std::path::Path, peer_timeout: Duration, limits: Limits, contact: Vec<String>) -> Result<Tracker> {
        let path = state_dir.join("events.jsonl");
        let log = Logbook::open(&path).with_context(|| format!("cannot open the log {}", path.display()))?;
        let registry = Mutex::new(Registry::new(limits.clone()));
        let pace = pace::Pace::new(limits.heartbeats_per_second);
        let inner = Inner {
            registry,
            log,
            peer_timeout,
            limits,
            turns: Default::default(),
            contact,
            links: Default::default(),
            metrics: Default::default(),
            pace: Mutex::new(pace),
            pace_rounds: Default::default(),
            load: Default::default(),
            started: Instant::now(),
        };
        Ok(Tracker { inner: Arc::new(inner) })
    }

    /// The registry, locked; hold it only for a few plain calls, never across an await.
    fn registry(&self) -> MutexGuard<'_, Registry> {
        self.inner.registry.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A number that moves on with every call, for [`reply::fit`] to take turns with.
    fn turn(&self) -> u64 {
        self.inner.turns.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    /// The holders a reply names: one reply's worth, the next run of them each time.
    fn listed(&self) -> registry::Listed {
        registry::Listed::Turn(self.turn(), reply::HOLDERS_PER_FILE)
    }

    /// Appends an event to the log.
    fn record(&self, event: Event) {
        self.inner.log.append(&event);
    }

    /// What the tracker has done since it started.
    pub fn metrics(&self) -> &metrics::Metrics {
        &self.inner.metrics
    }

    /// How long it has been running.
    pub fn uptime(&self) -> Duration {
        self.inner.started.elapsed()
    }

    /// How many peers are live, files known, and (peer, file) listings kept.
    pub fn counts(&self) -> (usize, usize, usize) {
        self.registry().counts()
    }

    /// The first `limit` live peers by id, without their file lists.
    pub fn peer_rows(&self, limit: usize) -> Vec<registry::PeerRow> {
        self.registry().peer_rows(limit)
    }

    /// The first `limit` files by name, with how many live holders each has, how many of
    /// them are partial, and the availability bar.
    pub fn file_rows(&self, limit: usize) -> Vec<registry::FileRow> {
        self.registry().file_rows(limit)
    }

    /// The holders of `file` still downloading it, with the share each has, by peer id.
    pub fn partial_holders(&self, file: &FileId) -> Vec<(String, f64)> {
        self.registry().partial_holders(file)
    }

    /// Where others can reach this tracker (`host:port`, most useful first).
    pub fn contact(&self) -> &[String] {
        &self.inner.contact
    }

    /// Live peers.
    pub fn peers(&self) -> Vec<(String, PeerEntry)> {
        self.registry().peers()
    }

    /// Known files with their holders, by name: read a page at a time, so the lock is never
    /// held for the whole listing.
    pub fn files(&self) -> Vec<FileMatch> {
        self.first_files(usize::MAX, registry::Listed::All)
    }

    /// The first `most` files (and a page more at most) with their holders, by name, read a
    /// page at a time.
    fn first_files(&self, most: usize, listed: registry::Listed) -> Vec<FileMatch> {
        let mut all: Vec<FileMatch> = Vec::new();
        loop {
            let after = all.last().map(|m| (m.file.name.clone(), m.file.id));
            let (page, more) = self.files_page(after.as_ref().map(|(name, id)| (name.as_str(), id)), registry::MAX_PAGE, listed);
            let empty = page.is_empty();
            all.extend(page);
            if !more || empty || all.len() >= most {
                return all;
            }
        }
    }

    /// The answer to `Files`: the first files by name, more than one reply frame holds (it is
    /// cut to fit), so it keeps answering as it did before pages.
    fn files_for_reply(&self) -> Vec<FileMatch> {
        self.first_files(FILES_REPLY_MOST, self.listed())
    }

    /// Up to `limit` files after the one listed as `after` (name, id), and whether more follow.
    pub fn files_page(&self, after: Option<(&str, &FileId)>, limit: usize, listed: registry::Listed) -> (Vec<FileMatch>, bool) {
        self.registry().files_page(after, limit, listed)
    }

    /// Every logged event, oldest first.
    pub fn events(&self) -> std::io::Result<Vec<Event>> {
        self.inner.log.read_all()
    }

    /// How long a peer refused at a limit is told to wait before trying again.
    fn busy_retry(&self) -> Duration {
        self.inner.limits.busy_retry
    }

    /// Connections served at once, in all and from one address: the peer limits, and room
    /// for connections being admitted or refused.
    fn connection_caps(&self) -> (usize, usize) {
        let limits = &self.inner.limits;
        (limits.max_peers.saturating_add(PENDING_CONNECTIONS), limits.max_peers_per_ip.saturating_add(PENDING_PER_IP))
    }

    /// Drops silent peers and logs each, then paces heartbeats to the swarm's size.
    fn sweep(&self) {
        let now = Instant::now();
        let timeout = self.pace().expiry(self.inner.peer_timeout, now);
        let (expired, peers) = {
            let mut registry = self.registry();
            (registry.expire(now, timeout), registry.counts().0)
        };
        self.inner.metrics.expired(expired.len());
        let changed = self.pace().update(peers, self.inner.peer_timeout, now);
        if let Some(interval) = changed {
            self.record(Event::now(
                EventKind::Pace,
                "",
                format!("heartbeats asked every {:.0} s for {peers} peers", interval.as_secs_f64()),
            ));
            tokio::spawn(self.clone().push_pace_to_all());
        }
        for peer in expired {
            let detail = format!("silent for over {:.1} s", timeout.as_secs_f64());
            self.inner.links.close(&peer, close::EXPIRED, b"silent past the tracker's timeout; register again");
            self.record(Event::now(EventKind::Expire, &peer, detail));
        }
    }
}

/// Serves peers on `endpoint` until `shutdown` is cancelled.
pub async fn run(endpoint: quinn::Endpoint, tracker: Tracker, shutdown: CancellationToken) {
    let (max_peers, per_ip) = tracker.connection_caps();
    let limit = Arc::new(Semaphore::new(max_peers.min(Semaphore::MAX_PERMITS)));
    let per_ip = Quota::new(per_ip);
    let pending = Quota::new(PENDING_PER_IP);
    let mut sessions = JoinSet::new();
    let mut sweep = tokio::time::interval(sweep_period(tracker.inner.peer_timeout));
    let (probe, stop_probe) = (tracker.clone(), shutdown.clone());
    crate::net::task::spawn_in(&mut sessions, tracing::debug_span!("load probe"), async move { probe.inner.load.probe(stop_probe).await });
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = sweep.tick() => tracker.sweep(),
            Some(_) = sessions.join_next() => {}
            incoming = endpoint.accept() => {
                let Some(incoming) = incoming else { break };
                let ip = crate::net::addrs::canonical(incoming.remote_address()).ip();
                let (Ok(permit), Some(slot), Some(unregistered)) = (limit.clone().try_acquire_owned(), per_ip.take(ip), pending.take(ip)) else {
                    tracing::debug!(addr = %crate::net::addrs::canonical(incoming.remote_address()), "connection refused: too many");
                    incoming.refuse();
                    continue;
                };
                let (tracker, shutdown) = (tracker.clone(), shutdown.clone());
                let span = tracing::debug_span!("session", addr = %crate::net::addrs::canonical(incoming.remote_address()), peer = tracing::field::Empty);
                // Boxed, so the handshake's state (about 400 bytes) is freed once it is done: a
                // task's captured values stay in its state for as long as it runs.
                let handshake = Box::pin(incoming.into_future());
                crate::net::task::spawn_in(&mut sessions, span, async move {
                    let _held = (permit, slot);
                    match handshake.await {
                        Ok(conn) => session::serve(conn, tracker, shutdown, unregistered).await,
                        Err(err) => tracing::debug!("handshake failed: {err}"),
                    }
                });
            }
        }
    }
    endpoint.close(close::SHUTDOWN, b"tracker shutting down");
    sessions.shutdown().await;
}

/// How often the sweep runs: often enough that a peer is dropped soon after its timeout.
fn sweep_period(timeout: Duration) -> Duration {
    (timeout / 4).clamp(Duration::from_millis(50), Duration::from_secs(1))
}

/// A tracker serving in the background.
pub struct Running {
    /// Its state.
    pub tracker: Tracker,
    /// The address it listens on.
    pub addr: SocketAddr,
    /// Its certificate's fingerprint.
    pub fingerprint: Fingerprint,
    /// Cancel to stop it.
    pub shutdown: CancellationToken,
    /// The UDP receive buffer the kernel granted, when it is less than [`SOCKET_BUFFER`].
    pub short_buffer: Option<usize>,
    endpoint: quinn::Endpoint,
    task: tokio::task::JoinHandle<()>,
    /// The thread reading the endpoint's socket, if it has one of its own; kept until the
    /// endpoint is done with.
    receiver: Option<crate::net::receiver::Receiver>,
}

impl Running {
    /// What to tell the person running the tracker about its socket, if anything.
    pub fn buffer_notice(&self) -> Option<String> {
        let got = self.short_buffer?;
        Some(format!(
            "the UDP receive buffer is {} KiB, not the {} MiB asked for: packets that arrive at once (many peers leaving together) may be lost; raise it with sysctl -w net.core.rmem_max={}",
            got >> 10,
            SOCKET_BUFFER >> 20,
            SOCKET_BUFFER
        ))
    }
}

impl Running {
    /// Stops serving and waits briefly for connections to close.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.task.await;
        let _ = tokio::time::timeout(CLOSE_GRACE, self.endpoint.wait_idle()).await;
        drop(self.receiver);
    }
}

/// Loads or makes the certificate, binds `config.listen`, and serves in the background.
pub async fn start(config: &TrackerConfig) -> Result<Running> {
    let (mut granted, mut receiver) = (None, None);
    let mut running = start_with(config, |identity, server| {
        let (endpoint, got, thread) = crate::net::receiver::endpoint_with(identity, server, config.listen, SOCKET_BUFFER)?;
        (granted, receiver) = (Some(got), Some(thread));
        Ok(endpoint)
    })
    .await?;
    running.short_buffer = granted.filter(|&got| got < SOCKET_BUFFER);
    running.receiver = receiver;
    Ok(running)
}

/// Like [`start`], on a socket the caller made (a [`crate::net::linksim`] socket in tests).
pub async fn start_on(config: &TrackerConfig, socket: Arc<dyn quinn::AsyncUdpSocket>) -> Result<Running> {
    start_with(config, move |identity, server| tls::endpoint_on(identity, server, socket)).await
}

async fn start_with(
    config: &TrackerConfig,
    bind: impl FnOnce(&Identity, quinn::ServerConfig) -> Result<quinn::Endpoint>,
) -> Result<Running> {
    let identity = Identity::load_or_create(&config.certs, "tracker")?;
    let server = tls::server_config(&identity, TRACKER_ALPN)?;
    let endpoint = bind(&identity, server)?;
    let contact = contact::addresses(endpoint.local_addr()?, &config.advertise, &crate::net::addrs::interfaces());
    let tracker = Tracker::new(&config.state_dir, config.peer_timeout, config.limits.clone(), contact)?;
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(run(endpoint.clone(), tracker.clone(), shutdown.clone()));
    let addr = endpoint.local_addr()?;
    Ok(Running { tracker, addr, fingerprint: identity.fingerprint, shutdown, short_buffer: None, endpoint, task, receiver: None })
}
