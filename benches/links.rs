//! p2pq's `get` beside raw quinn on the same simulated links: fast and long, lossy, slow.
//!
//! Each profile (rate, round trip, loss) is built with `p2pq::net::linksim`: the sending side (the
//! holder, or the raw server) gets the rate cap, half the delay and the loss on its outgoing
//! link; the receiving side (the downloader, or the raw client) gets the other half of the
//! delay and, on the lossy profile, the same loss, so acknowledgements are lost too. The
//! tracker sits on an unlimited simulated link. Everything runs in this process.
//!
//! Per paired round, back to back on the same kind of link:
//! - **p2pq**: a fresh downloading peer runs `get` (lookup, connect, manifest, chunks with the
//!   default adaptive window, verify, write, fsync, link), timed from the call to the file
//!   verified on disk;
//! - **raw quinn**: a fresh connection between two endpoints built with p2pq's own `tls`
//!   configs (same transport windows, same in-order sending); the server sends the same bytes
//!   as 256 KiB unidirectional streams, up to 64 in flight, with no disk and no hashing; timed
//!   from the client's connect (its first packet) to the last byte read, so both sides pay
//!   their handshake and slow start.
//!
//! Reported per profile: each round's rates (MB/s = 10^6 bytes/s) and ratio p2pq / raw, and
//! their medians; each run's *time to full rate* (the first moment the bytes completed over the
//! preceding 500 ms, or four chunks' time on a slow link, reach 90% of that round's raw average
//! rate; from the downloader's chunk log and the raw client's reads, noted per 256 KiB) and best
//! rate over such a window; what the sending link did (datagrams sent, lost at random, dropped
//! by its full queue) and the kernel's UDP receive-buffer drops over the run (system-wide,
//! Linux). A failed or stalled run prints its error and the bench goes on: every wait is
//! bounded. At 1% loss the transfer size is set by what Cubic gets there (~0.4 MB/s), not by
//! the 100 Mbit/s cap.
//!
//! Run: `cargo bench --bench links`. Knobs: `P2PQ_LINKS_PAIRS` (paired rounds, default 3),
//! `P2PQ_LINKS_ONLY=NAME` (one profile: `1g-100ms`, `100m-40ms-loss1`, `5m-20ms`),
//! `P2PQ_LINKS_SCALE` (multiplies each profile's transfer size) or `P2PQ_LINKS_MIB` (one fixed
//! size for every profile). Quick check:
//! `P2PQ_LINKS_SCALE=0.1 P2PQ_LINKS_PAIRS=1 cargo bench --bench links`.

#[path = "common/raw.rs"]
mod raw;
#[path = "common/sizes.rs"]
mod sizes;
#[path = "common/space.rs"]
mod space;
use sizes::mib;
use space::check_free_space;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use p2pq::logbook::now_ms;
use p2pq::net::linksim::{self, Link, LinkStats, Simulated};
use p2pq::net::tls::{self, Identity};
use p2pq::peer::{Peer, PeerConfig};
use p2pq::tracker::{self, Running, TrackerConfig};
use tokio::io::AsyncReadExt;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// The links compared: a long fat pipe, a lossy medium one, a slow short one. Sizes are a few
/// seconds of what each link can carry: at 1% loss that is not its 100 Mbit/s but what a
/// loss-based congestion controller gets (~3 Mbit/s at 40 ms, see [`Profile::expected_rate`]).
const PROFILES: [Profile; 3] = [
    Profile { name: "1g-100ms", mbit: 1000.0, rtt: Duration::from_millis(100), loss_percent: 0.0, mib: 128.0 },
    Profile { name: "100m-40ms-loss1", mbit: 100.0, rtt: Duration::from_millis(40), loss_percent: 1.0, mib: 4.0 },
    Profile { name: "5m-20ms", mbit: 5.0, rtt: Duration::from_millis(20), loss_percent: 0.0, mib: 3.0 },
];
/// Paired rounds when `P2PQ_LINKS_PAIRS` is unset: enough for a median, few enough for minutes.
const DEFAULT_PAIRS: usize = 3;
/// p2pq's chunk window: `None`, the default adaptive one, as a user's `get` runs.
const P2PQ_WINDOW: Option<usize> = None;
/// Chunk (stream) size of the raw baseline: p2pq's default chunk.
const RAW_CHUNK: usize = p2pq::content::manifest::DEFAULT_CHUNK_SIZE as usize;
/// Streams the raw server keeps unacknowledged at once: deep enough that the transport's
/// windows, not the stream count, bound it (64 x 256 KiB = 16 MiB, more than any send window).
const RAW_IN_FLIGHT: usize = 64;
/// ALPN of the raw baseline, so it can never be mistaken for a p2pq connection.
const RAW_ALPN: &[u8] = b"p2pq-bench-raw";
/// Sliding window over which "full rate" is judged: many chunks at the fast link, while short
/// enough to show how long ramping up takes. Slower links get [`WINDOW_CHUNKS`] chunks' time.
const RATE_WINDOW: Duration = Duration::from_millis(500);
/// Chunks the rate window spans at least: rates are seen at chunk (stream) completions, so a
/// window holding one or two would read a single completion, or a burst of them after a
/// retransmit fills several holes at once, as a rate the link cannot carry.
const WINDOW_CHUNKS: u32 = 4;
/// Share of the raw run's average rate that counts as "full rate".
const FULL_RATE_SHARE: f64 = 0.9;
/// A transfer may take this many times its expected time before the round is called stalled…
const TIMEOUT_FACTOR: u32 = 4;
/// …plus this much for setup, handshakes and a slow start on a long link.
const TIMEOUT_FLOOR: Duration = Duration::from_secs(15);
/// Payload bytes per datagram in the loss-bound rate estimate (quinn's MTU here is ~1450).
const DATAGRAM_PAYLOAD: f64 = 1400.0;
/// Time a cancelled `get` gets to wind down (checkpoint, close) before it is dropped.
const CANCEL_GRACE: Duration = Duration::from_secs(5);
/// Time a peer gets to register, leave, or be forgotten by the tracker.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Free space kept beyond the shared file and one downloaded copy (resume state, logs, slack).
const SPACE_MARGIN: u64 = 64 << 20;
/// Name of the shared file in the sharer's data folder.
const FILE_NAME: &str = "links.bin";
/// Loss seeds of the sending and receiving links: a rerun draws the same losses (by count).
const SEND_SEED: u64 = 1;
const RECEIVE_SEED: u64 = 2;

fn main() {
    let settings = Settings::from_env().unwrap_or_else(|err| panic!("{err:#}"));
    // Like a peer's: tokio's default multi-threaded runtime, one worker per core.
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    let mut reports = Vec::new();
    for profile in settings.profiles() {
        let size = settings.size(profile);
        let report = match rt.block_on(run_profile(profile, size, settings.pairs)) {
            Ok(report) => report,
            Err(err) => {
                println!("{}: cannot run: {err:#}\n", profile.name);
                continue;
            }
        };
        reports.push(report);
    }
    print_summary(&reports);
}

// ---------------------------------------------------------------- settings and profiles

/// One simulated link between sender and receiver.
#[derive(Clone, Copy, Debug)]
struct Profile {
    /// What `P2PQ_LINKS_ONLY` matches.
    name: &'static str,
    /// Rate cap of the sending side, in Mbit/s.
    mbit: f64,
    /// Round trip: the sum of both sides' one-way delays.
    rtt: Duration,
    /// Datagrams lost at random, in percent, on each side.
    loss_percent: f64,
    /// Default transfer size in MiB.
    mib: f64,
}

impl Profile {
    /// The sender's outgoing link: the cap, half the delay, the loss.
    fn sending_link(&self) -> Link {
        Link::default().rate_mbit(self.mbit).delay(self.rtt / 2).loss_percent(self.loss_percent).seed(SEND_SEED)
    }

    /// The receiver's outgoing link (requests, ACKs): the other half of the delay, the loss.
    fn receiving_link(&self, seed: u64) -> Link {
        Link::default().delay(self.rtt - self.rtt / 2).loss_percent(self.loss_percent).seed(seed)
    }

    /// The cap in bytes per second (headers included, so payload gets a little less).
    fn bytes_per_sec(&self) -> f64 {
        self.mbit * 1e6 / 8.0
    }

    /// Bytes per second a transfer can expect: the cap, or with loss the Mathis et al. bound
    /// of a loss-based congestion controller (payload / RTT x sqrt(3 / 2p)), if lower.
    fn expected_rate(&self) -> f64 {
        let p = self.loss_percent / 100.0;
        if p <= 0.0 {
            return self.bytes_per_sec();
        }
        let bound = DATAGRAM_PAYLOAD / self.rtt.as_secs_f64() * (1.5 / p).sqrt();
        bound.min(self.bytes_per_sec())
    }

    /// The rate window on this link: [`RATE_WINDOW`], or [`WINDOW_CHUNKS`] chunks at the
    /// expected rate if longer.
    fn rate_window(&self) -> Duration {
        let chunks = Duration::from_secs_f64(f64::from(WINDOW_CHUNKS) * RAW_CHUNK as f64 / self.expected_rate());
        RATE_WINDOW.max(chunks)
    }

    /// How long a transfer of `size` may take before the round is called stalled.
    fn limit(&self, size: u64) -> Duration {
        let expected = Duration::from_secs_f64(size as f64 / self.expected_rate());
        TIMEOUT_FLOOR + expected * TIMEOUT_FACTOR
    }

    fn describe(&self) -> String {
        let rtt = self.rtt.as_millis();
        let (cap, expected) = (self.bytes_per_sec() / 1e6, self.expected_rate() / 1e6);
        let bound = if expected < cap { format!(", loss-bound ~{expected:.2} MB/s") } else { String::new() };
        let window = self.rate_window().as_millis();
        format!("{} Mbit/s, RTT {rtt} ms, {}% loss (cap {cap:.1} MB/s{bound}); rate window {window} ms", self.mbit, self.loss_percent)
    }
}

/// What the environment asks for.
struct Settings {
    pairs: usize,
    only: Option<String>,
    /// One size for every profile, in bytes (`P2PQ_LINKS_MIB`).
    fixed: Option<u64>,
    /// Multiplier of each profile's size (`P2PQ_LINKS_SCALE`).
    scale: f64,
}

impl Settings {
    fn from_env() -> Result<Settings> {
        let pairs = env_parse::<usize>("P2PQ_LINKS_PAIRS")?.unwrap_or(DEFAULT_PAIRS);
        ensure!(pairs > 0, "P2PQ_LINKS_PAIRS must be at least 1");
        let fixed = env_parse::<f64>("P2PQ_LINKS_MIB")?.map(mib_to_bytes);
        let scale = env_parse::<f64>("P2PQ_LINKS_SCALE")?.unwrap_or(1.0);
        ensure!(scale > 0.0, "P2PQ_LINKS_SCALE must be positive");
        ensure!(fixed.is_none() || scale == 1.0, "set P2PQ_LINKS_MIB or P2PQ_LINKS_SCALE, not both");
        let only = std::env::var("P2PQ_LINKS_ONLY").ok().filter(|name| !name.trim().is_empty());
        if let Some(name) = &only {
            let names: Vec<&str> = PROFILES.iter().map(|p| p.name).collect();
            ensure!(names.contains(&name.as_str()), "P2PQ_LINKS_ONLY={name:?} is none of {}", names.join(", "));
        }
        Ok(Settings { pairs, only, fixed, scale })
    }

    fn profiles(&self) -> impl Iterator<Item = &'static Profile> + '_ {
        PROFILES.iter().filter(|p| self.only.as_deref().is_none_or(|only| only == p.name))
    }

    /// Bytes moved per transfer on `profile`.
    fn size(&self, profile: &Profile) -> u64 {
        self.fixed.unwrap_or_else(|| mib_to_bytes(profile.mib * self.scale))
    }
}

/// `name` parsed, `None` if unset; a value that does not parse is an error, not a default.
fn env_parse<T: std::str::FromStr>(name: &str) -> Result<Option<T>> {
    match std::env::var(name) {
        Ok(text) => text.trim().parse().map(Some).map_err(|_| anyhow!("{name}={text:?} does not parse")),
        Err(_) => Ok(None),
    }
}

/// MiB to bytes, whole KiB, at least one chunk.
fn mib_to_bytes(mib: f64) -> u64 {
    (((mib * 1024.0).round() as u64) << 10).max(RAW_CHUNK as u64)
}

// ---------------------------------------------------------------- one profile

/// A profile's paired rounds.
struct Report {
    profile: Profile,
    size: u64,
    rounds: Vec<Round>,
}

/// p2pq and raw quinn, back to back.
struct Round {
    p2pq: Result<Run>,
    raw: Result<Run>,
}

impl Round {
    fn ratio(&self) -> Option<f64> {
        Some(self.p2pq.as_ref().ok()?.rate() / self.raw.as_ref().ok()?.rate())
    }

    /// "Full rate" of this round: a share of the raw run's average.
    fn target(&self) -> Option<f64> {
        Some(self.raw.as_ref().ok()?.rate() * FULL_RATE_SHARE)
    }

    /// When `run` first reached this round's full rate; `None` if never or if it cannot be told.
    fn full_rate(&self, run: &Result<Run>) -> Option<Duration> {
        let run = run.as_ref().ok()?;
        time_to_rate(&run.timeline, run.window, self.target()?)
    }

    /// The time to full rate of `run` as a cell: `-` when it cannot be told (a run failed),
    /// `never` when the run did not reach it.
    fn full_rate_cell(&self, run: &Result<Run>) -> String {
        match (run, self.target()) {
            (Ok(_), Some(_)) => seconds(self.full_rate(run)),
            _ => "-".to_string(),
        }
    }
}

/// One timed transfer.
struct Run {
    bytes: u64,
    took: Duration,
    /// From the start, when each chunk's worth of bytes was verified (p2pq) or read (raw), and
    /// those bytes; in time order.
    timeline: Vec<(Duration, u64)>,
    /// The sliding window rates are judged over ([`Profile::rate_window`]).
    window: Duration,
    /// What the sending link (and the kernel) dropped meanwhile.
    drops: Drops,
}

impl Run {
    /// Bytes per second over the whole run.
    fn rate(&self) -> f64 {
        self.bytes as f64 / self.took.as_secs_f64()
    }

    /// The highest rate over any window of the run.
    fn peak(&self) -> f64 {
        peak_rate(&self.timeline, self.window).unwrap_or(0.0)
    }
}

async fn run_profile(profile: &'static Profile, size: u64, pairs: usize) -> Result<Report> {
    let limit = profile.limit(size);
    println!(
        "{}: {}; {} per transfer, paired rounds: {pairs}, limit per transfer: {} s",
        profile.name,
        profile.describe(),
        mib(size),
        limit.as_secs()
    );
    check_free_space(&std::env::temp_dir(), 2 * size + SPACE_MARGIN)?;
    let mut swarm = Swarm::start(profile, size).await.context("cannot start the tracker and sharer")?;
    let raw = RawPair::start(profile).await.context("cannot start the raw quinn pair")?;
    print_round_header();
    let mut rounds = Vec::new();
    for index in 0..pairs {
        let p2pq = swarm.fetch_once(limit).await;
        let raw = raw.send(size, limit).await;
        let round = Round { p2pq, raw };
        print_round(&(index + 1).to_string(), &round);
        rounds.push(round);
    }
    swarm.stop().await;
    drop(raw);
    let report = Report { profile: *profile, size, rounds };
    print_medians(&report);
    println!();
    Ok(report)
}

// ---------------------------------------------------------------- p2pq

/// A tracker and the sharing peer on the profile's sending link; each `fetch_once` brings a new
/// downloader on a fresh receiving link.
struct Swarm {
    dir: tempfile::TempDir,
    profile: &'static Profile,
    tracker: Running,
    sharer: Peer,
    /// The sharer's outgoing link, the one whose drops are reported.
    sending: Arc<LinkStats>,
    size: u64,
    downloads: u32,
}

impl Swarm {
    async fn start(profile: &'static Profile, size: u64) -> Result<Swarm> {
        let dir = tempfile::tempdir().context("cannot make a temp folder")?;
        let config = TrackerConfig {
            listen: loopback(),
            certs: dir.path().join("certs"),
            state_dir: dir.path().join("tracker"),
            peer_timeout: Duration::from_secs(15),
            advertise: Vec::new(),
            limits: tracker::Limits::default(),
        };
        let tracker = tracker::start_on(&config, linksim::socket(loopback(), Link::default())?.socket).await?;
        let link = linksim::socket(loopback(), profile.sending_link())?;
        let sending = link.stats.clone();
        let sharer = start_peer(dir.path(), "a", &tracker, link).await?;
        let path = dir.path().join("a/data").join(FILE_NAME);
        tokio::task::spawn_blocking(move || p2pq::app::demo::generate_file(&path, size, b"links")).await??;
        sharer.share(FILE_NAME).await?;
        Ok(Swarm { dir, profile, tracker, sharer, sending, size, downloads: 0 })
    }

    /// A new peer downloads the file within `limit`; then it leaves and its copy is deleted, so
    /// the next round starts from nothing again.
    async fn fetch_once(&mut self, limit: Duration) -> Result<Run> {
        self.downloads += 1;
        let id = format!("b{}", self.downloads);
        let link = linksim::socket(loopback(), self.profile.receiving_link(RECEIVE_SEED + self.downloads as u64))?;
        let peer = start_peer(self.dir.path(), &id, &self.tracker, link).await?;
        let run = self.timed_get(&peer, limit).await;
        let _ = tokio::time::timeout(SETTLE_TIMEOUT, peer.exit()).await;
        let left = self.wait_forgotten(&id).await;
        let removed = std::fs::remove_dir_all(self.dir.path().join(&id)).with_context(|| format!("cannot remove peer {id}'s folder"));
        let run = run?;
        left.and(removed)?;
        Ok(run)
    }

    /// Times `peer`'s `get`; past `limit` it is cancelled and the round fails, saying how far
    /// it got.
    async fn timed_get(&self, peer: &Peer, limit: Duration) -> Result<Run> {
        let before = Drops::now(&self.sending);
        let cancel = CancellationToken::new();
        let (started, started_ms) = (Instant::now(), now_ms());
        let get = peer.get_with(FILE_NAME, None, &cancel);
        tokio::pin!(get);
        let got = match tokio::time::timeout(limit, &mut get).await {
            Ok(got) => got,
            Err(_) => {
                cancel.cancel();
                let _ = tokio::time::timeout(CANCEL_GRACE, &mut get).await;
                let verified: u64 = peer.chunk_log().map(|log| log.iter().map(|r| r.bytes).sum()).unwrap_or(0);
                Err(anyhow!("stalled: not done after {} s, {} of {} verified", limit.as_secs(), mib(verified), mib(self.size)))
            }
        };
        let took = started.elapsed();
        let drops = Drops::now(&self.sending).since(&before);
        let got = got?;
        ensure!(!got.from.is_empty(), "get found the file already there; nothing was transferred");
        let len = std::fs::metadata(&got.path)?.len();
        ensure!(len == self.size, "downloaded {len} bytes, expected {}", self.size);
        let timeline = peer.chunk_log()?.iter().map(|r| (Duration::from_millis((r.ts_ms - started_ms).max(0) as u64), r.bytes)).collect();
        Ok(Run { bytes: self.size, took, timeline: sorted(timeline), window: self.profile.rate_window(), drops })
    }

    /// Waits until the tracker no longer lists `id`: a stale holder would make the next
    /// downloader wait for a connection that never comes.
    async fn wait_forgotten(&self, id: &str) -> Result<()> {
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        while self.tracker.tracker.peers().iter().any(|(peer, _)| peer == id) {
            ensure!(Instant::now() < deadline, "the tracker still lists peer {id} after it left");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(())
    }

    async fn stop(self) {
        let _ = tokio::time::timeout(SETTLE_TIMEOUT, self.sharer.exit()).await;
        let _ = tokio::time::timeout(SETTLE_TIMEOUT, self.tracker.stop()).await;
    }
}

/// Starts peer `id` on `link` and waits until it can reach the tracker.
async fn start_peer(dir: &Path, id: &str, tracker: &Running, link: Simulated) -> Result<Peer> {
    let home = dir.join(id);
    std::fs::create_dir_all(home.join("data"))?;
    let config = PeerConfig { window: P2PQ_WINDOW, listen: loopback(), ..PeerConfig::in_home(id, tracker.addr, &dir.join("certs"), &home) };
    let peer = Peer::start_on(config, link.socket).await?;
    tokio::time::timeout(SETTLE_TIMEOUT, peer.registered()).await.context("peer did not register")?;
    Ok(peer)
}

// ---------------------------------------------------------------- raw quinn baseline

/// Two quinn endpoints built by p2pq's `tls` module (endpoint, TLS and transport configs, so
/// the same windows and in-order sending as p2pq's holder and downloader), the server on the
/// profile's sending link, the client on its receiving link.
struct RawPair {
    _dir: tempfile::TempDir,
    server: quinn::Endpoint,
    client: quinn::Endpoint,
    config: quinn::ClientConfig,
    sending: Arc<LinkStats>,
    /// The profile's rate window, for the runs' figures.
    window: Duration,
    serving: tokio::task::JoinHandle<()>,
}

impl Drop for RawPair {
    fn drop(&mut self) {
        self.serving.abort();
        self.server.close(0u32.into(), b"done");
        self.client.close(0u32.into(), b"done");
    }
}

impl RawPair {
    async fn start(profile: &Profile) -> Result<RawPair> {
        let dir = tempfile::tempdir()?;
        let server_id = Identity::load_or_create(dir.path(), "raw-server")?;
        let client_id = Identity::load_or_create(dir.path(), "raw-client")?;
        let sending = linksim::socket(loopback(), profile.sending_link())?;
        let receiving = linksim::socket(loopback(), profile.receiving_link(RECEIVE_SEED))?;
        let server = tls::endpoint_on(&server_id, tls::server_config(&server_id, RAW_ALPN)?, sending.socket)?;
        // The client's server side is never used; p2pq's endpoints all have one.
        let client = tls::endpoint_on(&client_id, tls::server_config(&client_id, RAW_ALPN)?, receiving.socket)?;
        let config = tls::client_config(&client_id, RAW_ALPN, server_id.fingerprint)?;
        let serving = tokio::spawn(raw_serve(server.clone()));
        Ok(RawPair { _dir: dir, server, client, config, sending: sending.stats, window: profile.rate_window(), serving })
    }

    /// Connects and reads `total` bytes within `limit`, timed from the connect to the last
    /// byte read.
    async fn send(&self, total: u64, limit: Duration) -> Result<Run> {
        let before = Drops::now(&self.sending);
        let started = Instant::now();
        let tally = Arc::new(Mutex::new(Tally::default()));
        let outcome = tokio::time::timeout(limit, self.receive(total, started, tally.clone())).await;
        let took = started.elapsed();
        let drops = Drops::now(&self.sending).since(&before);
        let timeline = std::mem::take(&mut *lock(&tally)).finish();
        let received: u64 = timeline.iter().map(|(_, bytes)| bytes).sum();
        match outcome {
            Err(_) => bail!("stalled: not done after {} s, {} of {} read", limit.as_secs(), mib(received), mib(total)),
            Ok(result) => result?,
        }
        ensure!(received == total, "received {received} bytes, expected {total}");
        Ok(Run { bytes: total, took, timeline: sorted(timeline), window: self.window, drops })
    }

    /// One connection: asks for `total` bytes, reads every stream, tallies the bytes as read.
    async fn receive(&self, total: u64, started: Instant, tally: Arc<Mutex<Tally>>) -> Result<()> {
        let conn = self.client.connect_with(self.config.clone(), self.server.local_addr()?, tls::SERVER_NAME)?.await?;
        let result = async {
            let (mut ask, _) = conn.open_bi().await?;
            ask.write_all(&total.to_be_bytes()).await?;
            ask.finish()?;
            let mut reads = JoinSet::new();
            for _ in 0..total.div_ceil(RAW_CHUNK as u64) {
                let mut stream = conn.accept_uni().await?;
                let tally = tally.clone();
                reads.spawn(async move {
                    while let Some(chunk) = stream.read_chunk(RAW_CHUNK, true).await? {
                        lock(&tally).add(started.elapsed(), chunk.bytes.len() as u64);
                    }
                    anyhow::Ok(())
                });
            }
            while let Some(read) = reads.join_next().await {
                read??;
            }
            anyhow::Ok(())
        }
        .await;
        conn.close(0u32.into(), b"done");
        result
    }
}

/// Bytes the raw client read, noted once per chunk's worth whichever streams they came on: the
/// granularity of p2pq's chunk log, without the bunching of stream completions (every stream a
/// lost datagram left with a hole completes at once when it is resent).
#[derive(Default)]
struct Tally {
    /// Read since the last note.
    pending: u64,
    /// When the last bytes were read.
    last: Duration,
    timeline: Vec<(Duration, u64)>,
}

impl Tally {
    fn add(&mut self, at: Duration, len: u64) {
        self.pending += len;
        self.last = at;
        if self.pending >= RAW_CHUNK as u64 {
            self.timeline.push((at, std::mem::take(&mut self.pending)));
        }
    }

    /// Every note, the bytes since the last one included.
    fn finish(mut self) -> Vec<(Duration, u64)> {
        if self.pending > 0 {
            self.timeline.push((self.last, self.pending));
        }
        self.timeline
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// Accepts baseline connections; each asks for a byte count and gets it.
async fn raw_serve(endpoint: quinn::Endpoint) {
    let mut conns = JoinSet::new();
    while let Some(incoming) = endpoint.accept().await {
        while conns.try_join_next().is_some() {}
        conns.spawn(async move {
            // A failed send shows on the client's side, which reports the round.
            if let Ok(conn) = incoming.await {
                let _ = raw_send(conn).await;
            }
        });
    }
}

/// Sends the asked-for bytes as `RAW_CHUNK` streams, at most `RAW_IN_FLIGHT` unacknowledged.
async fn raw_send(conn: quinn::Connection) -> Result<()> {
    let (_, mut ask) = conn.accept_bi().await?;
    let total = ask.read_u64().await?;
    raw::send_streams(&conn, total, RAW_IN_FLIGHT, generate(RAW_CHUNK, b"raw").into()).await
}

// ---------------------------------------------------------------- measures

/// Datagrams the sending link sent, lost at random and dropped at its full queue, and the
/// kernel's UDP receive-buffer drops (all sockets; `None` where /proc/net/snmp is missing).
#[derive(Clone, Copy, Debug, Default)]
struct Drops {
    sent: u64,
    lost: u64,
    overflowed: u64,
    rcvbuf: Option<u64>,
}

impl Drops {
    fn now(stats: &LinkStats) -> Drops {
        let (sent, lost, overflowed) = stats.snapshot();
        Drops { sent, lost, overflowed, rcvbuf: udp_rcvbuf_errors() }
    }

    /// What happened between `before` and `self`.
    fn since(&self, before: &Drops) -> Drops {
        Drops {
            sent: self.sent - before.sent,
            lost: self.lost - before.lost,
            overflowed: self.overflowed - before.overflowed,
            rcvbuf: self.rcvbuf.zip(before.rcvbuf).map(|(now, then)| now.saturating_sub(then)),
        }
    }

    /// `sent/lost/overflowed/rcvbuf`.
    fn show(&self) -> String {
        let rcvbuf = self.rcvbuf.map_or("?".to_string(), |n| n.to_string());
        format!("{}/{}/{}/{rcvbuf}", self.sent, self.lost, self.overflowed)
    }
}

/// The kernel's count of UDP datagrams dropped because a socket's receive buffer was full.
fn udp_rcvbuf_errors() -> Option<u64> {
    let snmp = std::fs::read_to_string("/proc/net/snmp").ok()?;
    let mut udp = snmp.lines().filter(|line| line.starts_with("Udp:"));
    let (names, values) = (udp.next()?, udp.next()?);
    let column = names.split_whitespace().position(|name| name == "RcvbufErrors")?;
    values.split_whitespace().nth(column)?.parse().ok()
}

/// At each completion in `timeline`, the rate (bytes per second) since the latest earlier
/// completion (or the start) at least `window` before it: bytes over the exact span between two
/// completions, so a window holding k completions is not read as k chunks' worth of time.
fn window_rates(timeline: &[(Duration, u64)], window: Duration) -> Vec<(Duration, f64)> {
    // (time, bytes completed by then), from the start.
    let mut done = vec![(Duration::ZERO, 0u64)];
    for &(at, len) in timeline {
        let total = done.last().map_or(0, |&(_, total)| total) + len;
        done.push((at, total));
    }
    let mut rates = Vec::with_capacity(timeline.len());
    let mut from = 0;
    for &(at, total) in &done[1..] {
        while done[from + 1].0 + window <= at {
            from += 1;
        }
        let (since, before) = done[from];
        if since + window <= at {
            rates.push((at, (total - before) as f64 / (at - since).as_secs_f64()));
        }
    }
    rates
}

/// The first moment the windowed rate reaches `target` bytes per second; `None` if never.
fn time_to_rate(timeline: &[(Duration, u64)], window: Duration, target: f64) -> Option<Duration> {
    window_rates(timeline, window).into_iter().find(|&(_, rate)| rate >= target).map(|(at, _)| at)
}

/// The highest windowed rate: whether the run ever filled the link.
fn peak_rate(timeline: &[(Duration, u64)], window: Duration) -> Option<f64> {
    window_rates(timeline, window).into_iter().map(|(_, rate)| rate).max_by(f64::total_cmp)
}

fn sorted(mut timeline: Vec<(Duration, u64)>) -> Vec<(Duration, u64)> {
    timeline.sort_by_key(|&(at, _)| at);
    timeline
}

/// The middle value (the mean of the two middle ones for an even count); `None` if empty.
fn median(values: impl IntoIterator<Item = f64>) -> Option<f64> {
    let mut values: Vec<f64> = values.into_iter().collect();
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    match values.len() {
        0 => None,
        n if n % 2 == 1 => Some(values[mid]),
        _ => Some((values[mid - 1] + values[mid]) / 2.0),
    }
}

fn median_drops(runs: impl Iterator<Item = Drops> + Clone) -> Option<Drops> {
    let pick = |field: fn(&Drops) -> u64| median(runs.clone().map(|d| field(&d) as f64)).map(|v| v as u64);
    Some(Drops {
        sent: pick(|d| d.sent)?,
        lost: pick(|d| d.lost)?,
        overflowed: pick(|d| d.overflowed)?,
        rcvbuf: median(runs.clone().filter_map(|d| d.rcvbuf.map(|n| n as f64))).map(|v| v as u64),
    })
}

// ---------------------------------------------------------------- output

/// Column titles of every table: the round (or profile), then p2pq and raw side by side.
const COLUMNS: [&str; 10] =
    ["", "p2pq MB/s", "raw MB/s", "p2pq/raw", "p2pq full", "raw full", "p2pq peak", "raw peak", "p2pq drops", "raw drops"];
/// Width of each column; numbers are right-aligned, the first and the drops left-aligned.
const WIDTHS: [usize; 10] = [22, 9, 9, 8, 9, 9, 9, 9, 24, 24];

/// One table row, trailing spaces trimmed.
fn print_row(cells: &[String]) {
    let mut line = String::from(" ");
    for (k, (cell, width)) in cells.iter().zip(WIDTHS).enumerate() {
        if k == 0 || k >= 8 {
            line += &format!("  {cell:<width$}");
        } else {
            line += &format!(" {cell:>width$}");
        }
    }
    for cell in cells.iter().skip(WIDTHS.len()) {
        line += &format!(" {cell}");
    }
    println!("{}", line.trim_end());
}

fn print_header(first: &str, extra: &[&str]) {
    let mut cells: Vec<String> = COLUMNS.iter().map(|c| c.to_string()).collect();
    cells[0] = first.to_string();
    cells.extend(extra.iter().map(|c| c.to_string()));
    print_row(&cells);
}

fn print_round_header() {
    print_header("round", &[]);
}

/// One round's row, then the error of each side that failed.
fn print_round(label: &str, round: &Round) {
    let rate = |run: &Result<Run>| run.as_ref().map_or("failed".to_string(), |r| mb(r.rate()));
    let peak = |run: &Result<Run>| run.as_ref().map_or("-".to_string(), |r| mb(r.peak()));
    let drops = |run: &Result<Run>| run.as_ref().map_or("-".to_string(), |r| r.drops.show());
    print_row(&[
        label.to_string(),
        rate(&round.p2pq),
        rate(&round.raw),
        round.ratio().map_or("-".to_string(), |r| format!("{r:.2}")),
        round.full_rate_cell(&round.p2pq),
        round.full_rate_cell(&round.raw),
        peak(&round.p2pq),
        peak(&round.raw),
        drops(&round.p2pq),
        drops(&round.raw),
    ]);
    for (side, run) in [("p2pq", &round.p2pq), ("raw", &round.raw)] {
        if let Err(err) = run {
            println!("    {side} error: {err:#}");
        }
    }
}

/// The profile's medians over the rounds that worked.
fn print_medians(report: &Report) {
    print_row(&Medians::of(report).cells("median"));
}

/// Medians of a profile's rounds, each over the runs that produced the figure.
struct Medians {
    p2pq: Option<f64>,
    raw: Option<f64>,
    ratio: Option<f64>,
    /// Each round's ratio, in round order, for rounds where both sides finished.
    ratios: Vec<f64>,
    p2pq_full: Option<Duration>,
    raw_full: Option<Duration>,
    p2pq_peak: Option<f64>,
    raw_peak: Option<f64>,
    p2pq_drops: Option<Drops>,
    raw_drops: Option<Drops>,
}

impl Medians {
    fn of(report: &Report) -> Medians {
        let rounds = &report.rounds;
        let ok = |pick: fn(&Round) -> &Result<Run>| rounds.iter().filter_map(move |r| pick(r).as_ref().ok());
        let full = |pick: fn(&Round) -> &Result<Run>| {
            median(rounds.iter().filter_map(|r| r.full_rate(pick(r))).map(|d| d.as_secs_f64())).map(Duration::from_secs_f64)
        };
        let ratios: Vec<f64> = rounds.iter().filter_map(Round::ratio).collect();
        Medians {
            p2pq: median(ok(|r| &r.p2pq).map(Run::rate)),
            raw: median(ok(|r| &r.raw).map(Run::rate)),
            ratio: median(ratios.iter().copied()),
            ratios,
            p2pq_full: full(|r| &r.p2pq),
            raw_full: full(|r| &r.raw),
            p2pq_peak: median(ok(|r| &r.p2pq).map(Run::peak)),
            raw_peak: median(ok(|r| &r.raw).map(Run::peak)),
            p2pq_drops: median_drops(ok(|r| &r.p2pq).map(|r| r.drops)),
            raw_drops: median_drops(ok(|r| &r.raw).map(|r| r.drops)),
        }
    }

    fn cells(&self, label: &str) -> Vec<String> {
        let dash = || "-".to_string();
        vec![
            label.to_string(),
            self.p2pq.map_or_else(dash, mb),
            self.raw.map_or_else(dash, mb),
            self.ratio.map_or_else(dash, |r| format!("{r:.2}")),
            seconds(self.p2pq_full),
            seconds(self.raw_full),
            self.p2pq_peak.map_or_else(dash, mb),
            self.raw_peak.map_or_else(dash, mb),
            self.p2pq_drops.map_or_else(dash, |d| d.show()),
            self.raw_drops.map_or_else(dash, |d| d.show()),
        ]
    }
}

/// All profiles, one line each: their medians and each round's ratio.
fn print_summary(reports: &[Report]) {
    println!("summary: medians over the rounds that finished; MB/s = 10^6 bytes/s;");
    println!(
        "  full = time to {:.0}% of the round's raw average rate over the profile's rate window; peak = best window;",
        FULL_RATE_SHARE * 100.0
    );
    println!("  drops = sending link's datagrams sent/lost/overflowed, then kernel UDP rcvbuf drops");
    print_header("profile, size", &["each round's p2pq/raw"]);
    for report in reports {
        let m = Medians::of(report);
        let each = m.ratios.iter().map(|r| format!("{r:.2}")).collect::<Vec<_>>().join(" ");
        let mut cells = m.cells(&format!("{} {}", report.profile.name, mib(report.size)));
        cells.push(format!("{each} ({} of {} rounds)", m.ratios.len(), report.rounds.len()));
        print_row(&cells);
    }
}

/// Bytes per second as MB/s.
fn mb(rate: f64) -> String {
    format!("{:.1}", rate / 1e6)
}

fn seconds(time: Option<Duration>) -> String {
    time.map_or("never".to_string(), |t| format!("{:.2} s", t.as_secs_f64()))
}

fn loopback() -> std::net::SocketAddr {
    ([127, 0, 0, 1], 0).into()
}

/// `len` pseudo-random (incompressible, reproducible) bytes.
fn generate(len: usize, seed: &[u8]) -> Vec<u8> {
    let mut data = vec![0u8; len];
    blake3::Hasher::new().update(seed).finalize_xof().fill(&mut data);
    data
}
