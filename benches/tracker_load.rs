//! Load on the tracker from many simulated peers: issue 16's table (N, CPU, RSS, p50/p99 per
//! request kind, false expiries, the heartbeat interval the tracker asked for).
//!
//! The tracker is the real binary in its own process (`p2pq tracker --http`), so its CPU time
//! and memory are read off `/proc` apart from the load generator's. The simulated peers
//! ([`sim`]) run in this process, each with its own certificate and QUIC connection, from
//! many 127.x source addresses ([`PEERS_PER_ADDRESS`] each, under the tracker's per-address
//! limit), each registering [`P2PQ_LOAD_FILES`] files. Phases:
//! 1. **join**: every peer connects and registers, [`JOINS_AT_ONCE`] at a time; the
//!    registration's round trip is timed (the handshake apart).
//! 2. **steady**: every peer heartbeats in datagrams at 5 s (or the interval the tracker
//!    pushes), while random peers make `Lookup`s of random names at a fixed rate and new peers
//!    join at a fixed rate; timed: lookups, registrations under load; read: the tracker's
//!    CPU over the phase, its RSS, and its `expired_total` (every simulated peer heartbeats,
//!    so any expiry is false).
//! 3. **dashboard**: 10 s of heartbeats alone, 10 s with a viewer following the dashboard's
//!    event stream (as an open page does), 10 s alone again; the tracker's CPU in each.
//! 4. **mass close**: every peer sends `Exit` and closes its connection at once (as `exit`
//!    does), and the tracker's live-peer count is read until it is 0 or the peer timeout has
//!    passed: clean exits the tracker missed are left to the sweep.
//!
//! Then the same peers connect to a bare quinn server with the tracker's transport settings
//! (this bench re-run as `P2PQ_LOAD_ROLE=raw`), which holds the connections and does nothing
//! else: its RSS per connection is quinn's own part of the tracker's memory.
//!
//! Run: `cargo bench --bench tracker_load`. Knobs: `P2PQ_LOAD_PEERS` (default 10000),
//! `P2PQ_LOAD_FILES` (10), `P2PQ_LOAD_STEADY_S` (30), `P2PQ_LOAD_LOOKUPS` (per second, 100),
//! `P2PQ_LOAD_JOINS` (new peers per second during steady, 20), `P2PQ_LOAD_RAW` (0 skips the
//! bare-quinn run). It needs about 40 KiB of memory per peer on each side.

#[path = "tracker_load/probe.rs"]
mod probe;
#[path = "tracker_load/raw.rs"]
mod raw;
#[path = "tracker_load/report.rs"]
mod report;
#[path = "tracker_load/sim.rs"]
mod sim;
#[path = "tracker_load/steady.rs"]
mod steady;

use std::io::BufRead;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use p2pq::net::identity::Identity;
use p2pq::net::tls;
use p2pq::protocol::{TRACKER_ALPN, TrackerRequest, close};
use quinn::{Connection, Endpoint};
use report::Report;
use steady::Load;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Simulated peers sharing one source address (the tracker admits 256 by default).
const PEERS_PER_ADDRESS: usize = 200;
/// Registrations under way at once in the join phase.
const JOINS_AT_ONCE: usize = 64;
/// The heartbeat interval of a peer, unless the tracker asks for a slower one.
const HEARTBEAT: Duration = Duration::from_secs(5);
/// The tracker's peer timeout in the bench (its default).
const PEER_TIMEOUT: Duration = Duration::from_secs(15);
/// Longest any one step may take before the bench gives up.
const STEP: Duration = Duration::from_secs(600);

/// What a run is asked to do.
struct Knobs {
    peers: usize,
    files: usize,
    steady: Duration,
    lookups: u32,
    joins: u32,
    raw: bool,
}

fn main() -> Result<()> {
    if std::env::var("P2PQ_LOAD_ROLE").as_deref() == Ok("raw") {
        return tokio::runtime::Runtime::new()?.block_on(raw::serve());
    }
    let knobs = Knobs {
        peers: env("P2PQ_LOAD_PEERS", 10_000)?,
        files: env("P2PQ_LOAD_FILES", 10)?,
        steady: Duration::from_secs(env("P2PQ_LOAD_STEADY_S", 30)?),
        lookups: env("P2PQ_LOAD_LOOKUPS", 100)?,
        joins: env("P2PQ_LOAD_JOINS", 20)?,
        raw: env::<u8>("P2PQ_LOAD_RAW", 1)? != 0,
    };
    tokio::runtime::Runtime::new()?.block_on(run(knobs))
}

fn env<T: std::str::FromStr>(name: &str, default: T) -> Result<T> {
    match std::env::var(name) {
        Ok(text) => text.parse().map_err(|_| anyhow::anyhow!("{name}={text:?} is not valid")),
        Err(_) => Ok(default),
    }
}

/// A child process, killed when dropped (also when the bench fails half-way).
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The tracker under test, or the bare quinn server.
struct Server {
    proc: Killed,
    addr: SocketAddr,
    /// The dashboard (the tracker only).
    http: Option<SocketAddr>,
    /// The certificate to pin (the tracker only; the bare server is not pinned).
    pin: Option<p2pq::protocol::Fingerprint>,
}

async fn run(knobs: Knobs) -> Result<()> {
    let dir = tempfile::tempdir()?;
    eprintln!("making {} certificates…", knobs.peers + knobs.joins as usize * knobs.steady.as_secs() as usize);
    let ids = identities(knobs.peers + knobs.joins as usize * knobs.steady.as_secs() as usize + 1).await?;
    let endpoints = endpoints(ids.len())?;
    let tracker = start_tracker(dir.path(), knobs.peers)?;
    let report = load(&knobs, &tracker, &ids, &endpoints).await?;
    let raw = match knobs.raw {
        true => Some(raw_rss(&knobs, &ids, &endpoints).await?),
        false => None,
    };
    report.print(&knobs, raw);
    Ok(())
}

/// One certificate a simulated peer, made on the blocking pool.
async fn identities(n: usize) -> Result<Arc<Vec<Identity>>> {
    let started = Instant::now();
    let halves: Vec<_> = (0..2)
        .map(|half| {
            tokio::task::spawn_blocking(move || {
                (half..n).step_by(2).map(|i| Identity::ephemeral(&format!("sim{i}"))).collect::<Result<Vec<_>>>()
            })
        })
        .collect();
    let mut all = Vec::with_capacity(n);
    for half in halves {
        all.push(half.await??);
    }
    let (odd, even) = (all.pop().unwrap_or_default(), all.pop().unwrap_or_default());
    let mut ids = Vec::with_capacity(n);
    let mut odd = odd.into_iter();
    for id in even {
        ids.push(id);
        ids.extend(odd.next());
    }
    eprintln!("{n} certificates in {:.1} s", started.elapsed().as_secs_f64());
    Ok(Arc::new(ids))
}

/// Client endpoints on 127.1.x.y, one for each [`PEERS_PER_ADDRESS`] peers.
fn endpoints(peers: usize) -> Result<Vec<Endpoint>> {
    (0..peers.div_ceil(PEERS_PER_ADDRESS))
        .map(|i| {
            let addr: SocketAddr = format!("127.1.{}.{}:0", i / 250, i % 250 + 1).parse()?;
            let socket = tls::udp_socket(addr)?;
            let runtime = quinn::default_runtime().context("no runtime")?;
            Ok(Endpoint::new(quinn::EndpointConfig::default(), None, socket, runtime)?)
        })
        .collect()
}

/// The endpoint peer `i` connects from: consecutive peers from different addresses, so the
/// joins under way at once stay under the tracker's limit of handshakes per address.
fn endpoint_of(endpoints: &[Endpoint], i: usize) -> &Endpoint {
    &endpoints[i % endpoints.len()]
}

/// Starts `p2pq tracker` with its dashboard, admitting `peers` and more.
fn start_tracker(dir: &std::path::Path, peers: usize) -> Result<Server> {
    let max = (peers * 2 + 10_000).to_string();
    let mut child = Command::new(env!("CARGO_BIN_EXE_p2pq"))
        .args(["tracker", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--max-peers", &max])
        .arg("--certs")
        .arg(dir.join("certs"))
        .arg("--state-dir")
        .arg(dir.join("state"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("start the tracker")?;
    let stdout = child.stdout.take().context("no stdout")?;
    let proc = Killed(child);
    let (addr, http) = listening(stdout, &["tracker listening on ", "dashboard on http://"])?;
    let addr = addr.split_whitespace().next().unwrap_or_default().parse().context("tracker address")?;
    let http = http.split('/').next().unwrap_or_default().parse().context("dashboard address")?;
    let pin = Some(tls::pinned_fingerprint(&dir.join("certs/tracker.crt"))?);
    Ok(Server { proc, addr, http: Some(http), pin })
}

/// Reads `out` until a line starting with each of `prefixes` has come (returns what follows
/// each), then drains it on a thread, so the child never blocks on a full pipe.
fn listening(out: impl std::io::Read + Send + 'static, prefixes: &[&'static str; 2]) -> Result<(String, String)> {
    let (tx, rx) = std::sync::mpsc::channel();
    let prefixes = *prefixes;
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            for (i, prefix) in prefixes.iter().enumerate() {
                if let Some(rest) = line.strip_prefix(prefix) {
                    let _ = tx.send((i, rest.to_string()));
                }
            }
        }
    });
    let mut found: [Option<String>; 2] = [None, None];
    while found.iter().any(Option::is_none) {
        let (i, rest) = rx.recv_timeout(Duration::from_secs(30)).context("the server did not say where it listens")?;
        found[i] = Some(rest);
    }
    let [a, b] = found;
    Ok((a.unwrap_or_default(), b.unwrap_or_default()))
}

/// Joins every peer, holds the steady phase, then closes them all at once.
async fn load(knobs: &Knobs, tracker: &Server, ids: &Arc<Vec<Identity>>, endpoints: &[Endpoint]) -> Result<Report> {
    let pid = tracker.proc.0.id();
    let mut report = Report { rss_idle: probe::rss_bytes(pid)?, ..Report::default() };
    let seen = Arc::new(sim::Seen::default());
    let stop = CancellationToken::new();
    let started = Instant::now();
    let beats = Beats { seen: seen.clone(), stop: stop.clone() };
    let conns = join_all(knobs, tracker, ids, endpoints, &beats, &mut report).await?;
    report.join_took = started.elapsed();
    report.joined = conns.len();
    eprintln!("{} peers joined in {:.1} s", conns.len(), report.join_took.as_secs_f64());
    let mut conns = conns;
    let load = Load { knobs, server: tracker, ids, endpoints, beats: &beats };
    load.steady(&mut conns, &mut report).await?;
    load.dashboard_cost(&mut report).await?;
    stop.cancel();
    mass_close(tracker, &conns, &mut report).await?;
    Ok(report)
}

/// Registers every peer, [`JOINS_AT_ONCE`] at a time; peers that fail are counted out.
async fn join_all(
    knobs: &Knobs,
    server: &Server,
    ids: &Arc<Vec<Identity>>,
    endpoints: &[Endpoint],
    beats: &Beats,
    report: &mut Report,
) -> Result<Vec<Connection>> {
    let mut conns = Vec::with_capacity(knobs.peers);
    let mut joining = JoinSet::new();
    let mut failed = 0usize;
    for i in 0..knobs.peers {
        if joining.len() >= JOINS_AT_ONCE {
            collect(joining.join_next().await, &mut conns, report, &mut failed);
        }
        joining.spawn(join_one(server, ids.clone(), endpoint_of(endpoints, i).clone(), i, knobs.files, beats.clone()));
    }
    while let Some(joined) = joining.join_next().await {
        collect(Some(joined), &mut conns, report, &mut failed);
    }
    if failed > 0 {
        eprintln!("{failed} peers could not join");
    }
    Ok(conns)
}

type Joined = Result<(Connection, Duration, Duration)>;

fn collect(joined: Option<Result<Joined, tokio::task::JoinError>>, conns: &mut Vec<Connection>, report: &mut Report, failed: &mut usize) {
    match joined {
        Some(Ok(Ok((conn, handshake, register)))) => {
            conns.push(conn);
            report.handshakes.push(handshake);
            report.registrations.push(register);
        }
        Some(Ok(Err(err))) => {
            if *failed == 0 {
                eprintln!("a join failed: {err:#}");
            }
            *failed += 1;
        }
        _ => *failed += 1,
    }
}

/// Where simulated peers count what they see, and what stops their heartbeats.
#[derive(Clone)]
struct Beats {
    seen: Arc<sim::Seen>,
    stop: CancellationToken,
}

/// Joins peer `i` to `server`; it heartbeats from then on, until `beats.stop`.
fn join_one(
    server: &Server,
    ids: Arc<Vec<Identity>>,
    endpoint: Endpoint,
    i: usize,
    files: usize,
    beats: Beats,
) -> impl std::future::Future<Output = Joined> + use<> {
    let (addr, pin) = (server.addr, server.pin);
    async move {
        let client = match pin {
            Some(pin) => tls::client_config(&ids[i], TRACKER_ALPN, pin)?,
            None => tls::client_config_unpinned(&ids[i], TRACKER_ALPN)?,
        };
        let join = sim::join(&endpoint, client, addr, format!("sim{i}"), sim::files_of(i, files));
        let joined = tokio::time::timeout(STEP, join).await.context("join timed out")??;
        tokio::spawn(sim::beat(joined.0.clone(), HEARTBEAT, phase_of(i), beats.seen, beats.stop));
        Ok(joined)
    }
}

/// Where peer `i`'s heartbeats fall within the interval: spread evenly, as real peers are.
fn phase_of(i: usize) -> Duration {
    Duration::from_millis((i as u64 * 7_919) % HEARTBEAT.as_millis() as u64)
}

/// Every peer leaves at once as `exit` does (an `Exit` request, at most 2 s for its answer,
/// then `close(DONE)`); then reads the tracker's live-peer count until it is 0 or the peer
/// timeout (and a little) has passed.
async fn mass_close(server: &Server, conns: &[Connection], report: &mut Report) -> Result<()> {
    let http = server.http.context("no dashboard")?;
    let drops_before = probe::udp_drops(server.addr.port())?;
    let cpu_before = probe::cpu_seconds(server.proc.0.id())?;
    let answered = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    for conn in conns {
        let (conn, answered) = (conn.clone(), answered.clone());
        tokio::spawn(async move {
            if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(2), sim::exchange(&conn, &TrackerRequest::Exit)).await {
                answered.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            conn.close(close::DONE, b"bye");
        });
    }
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    while started.elapsed() < PEER_TIMEOUT + Duration::from_secs(5) {
        tick.tick().await;
        let metrics = tokio::task::spawn_blocking(move || probe::http_get(http, "/metrics")).await??;
        let left = probe::metric(&metrics, "p2pq_tracker_peers").unwrap_or(f64::NAN);
        report.close_left.push((started.elapsed(), left));
        if left == 0.0 {
            break;
        }
    }
    let drops_after = probe::udp_drops(server.addr.port())?;
    report.close_drops = (drops_after.0 - drops_before.0, drops_after.1 - drops_before.1);
    report.close_answered = answered.load(std::sync::atomic::Ordering::Relaxed);
    report.close_cpu = probe::cpu_seconds(server.proc.0.id())? - cpu_before;
    Ok(())
}

/// Connects as many peers to a bare quinn server with the tracker's transport settings and
/// returns its RSS per connection: quinn's own part of what a peer costs the tracker.
async fn raw_rss(knobs: &Knobs, ids: &Arc<Vec<Identity>>, endpoints: &[Endpoint]) -> Result<f64> {
    let mut child = Command::new(std::env::current_exe()?)
        .env("P2PQ_LOAD_ROLE", "raw")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("start the bare server")?;
    let stdout = child.stdout.take().context("no stdout")?;
    let proc = Killed(child);
    let (addr, _) = listening(stdout, &["raw listening on ", "raw listening on "])?;
    let server = Server { proc, addr: addr.trim().parse()?, http: None, pin: None };
    let before = probe::rss_bytes(server.proc.0.id())?;
    let mut report = Report::default();
    let beats = Beats { seen: Arc::default(), stop: CancellationToken::new() };
    let conns = join_all(knobs, &server, ids, endpoints, &beats, &mut report).await?;
    let after = probe::rss_bytes(server.proc.0.id())?;
    beats.stop.cancel();
    for conn in &conns {
        conn.close(close::DONE, b"bye");
    }
    Ok(after.saturating_sub(before) as f64 / conns.len().max(1) as f64)
}
