//! Bytes per second of p2pq's two hot paths, and how close the transfer gets to bare QUIC.
//!
//! `verify`: BLAKE3 chaining value of one chunk (`manifest::chunk_cv`) at each candidate chunk
//! size, on one thread and as a download does it (64 chunks at once through `spawn_blocking`),
//! and a whole in-memory file through `Manifest::from_bytes`.
//!
//! `transfer`: one generated file pulled between two peers in this process over loopback, through
//! the real tracker, `Peer::share` and `Peer::get` (lookup, connect, manifest, chunks with 1, 8
//! or 64 in flight and with the default adaptive window, verify, write, fsync, link; the paired rounds use the default). `get`
//! skips a file its peer already has, so every run uses a fresh downloading peer; only the `get`
//! call is timed. Beside it, a raw quinn baseline moves the same bytes between two endpoints
//! with p2pq's endpoint, TLS and transport settings as 256 KiB chunks, one unidirectional stream
//! each, with 1, 8 or 64 streams in flight, and no hashing and no disk. Then paired rounds run p2pq and raw quinn back
//! to back and print the median ratio p2pq / raw: criterion's groups run minutes apart, and on a
//! shared machine minutes are enough for the speed to drift.
//!
//! `P2PQ_BENCH_MIB` sets the transfer size (default 256), `P2PQ_BENCH_PAIRS` the paired rounds
//! (default 10; 0 skips them). Quick check:
//! `P2PQ_BENCH_MIB=8 P2PQ_BENCH_PAIRS=1 cargo bench --bench chunk_throughput -- --test`.

#[path = "common/raw.rs"]
mod raw;

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
use p2pq::content::manifest::{Manifest, chunk_cv};
use p2pq::logbook::now_ms;
use p2pq::net::tls::{self, Identity};
use p2pq::peer::{Peer, PeerConfig};
use p2pq::tracker::{self, Running, TrackerConfig};
use tokio::io::AsyncReadExt;
use tokio::task::JoinSet;

/// Chunk sizes p2pq could use: BLAKE3 cost per byte at each tells whether verification can keep up.
const CHUNK_SIZES: [u32; 4] = [64 << 10, 256 << 10, 1 << 20, 4 << 20];
/// File hashed whole by `Manifest::from_bytes`: large enough that per-chunk overhead is averaged out.
const WHOLE_FILE: usize = 64 << 20;
/// Transfer size when `P2PQ_BENCH_MIB` is unset.
const DEFAULT_MIB: u64 = 256;
/// Chunk size of the raw baseline: p2pq's default chunk.
const RAW_CHUNK: usize = 256 << 10;
/// Chunks (streams) in flight, for p2pq's `get` and the raw baseline alike: one at a time,
/// a few, and a deep one to find the ceiling. p2pq also runs with its default, adaptive window.
const IN_FLIGHT: [usize; 3] = [1, 8, 64];
/// p2pq's windows: the fixed depths above, then the default (following the link).
const P2PQ_WINDOWS: [Option<usize>; 4] = [Some(1), Some(8), Some(64), None];
/// Chunks verified at once through the blocking pool in `verify/pool`.
const POOL_BATCH: usize = 64;
/// Paired rounds when `P2PQ_BENCH_PAIRS` is unset.
const DEFAULT_PAIRS: usize = 10;
/// ALPN of the raw baseline, so it can never be mistaken for a p2pq connection.
const RAW_ALPN: &[u8] = b"p2pq-bench-raw";
/// Time a peer gets to register (or be forgotten) before the bench gives up.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Name of the shared file in peer A's data folder.
const FILE_NAME: &str = "bench.bin";

fn main() {
    let mut c = Criterion::default().sample_size(10).configure_from_args();
    // Like a peer's: tokio's default multi-threaded runtime, one worker per core.
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    verify(&mut c, &rt);
    let summary = transfer(&mut c, &rt);
    c.final_summary();
    summary.print();
}

// ---------------------------------------------------------------- verification

fn verify(c: &mut Criterion, rt: &tokio::runtime::Runtime) {
    let mut group = c.benchmark_group("verify");
    group.sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    let biggest = generate(*CHUNK_SIZES.iter().max().unwrap_or(&0) as usize, b"chunks");
    for size in CHUNK_SIZES {
        let data = &biggest[..size as usize];
        group.throughput(Throughput::Bytes(size as u64));
        // Index 1: a non-root chunk at a non-zero offset, as most chunks of a file are.
        group.bench_with_input(BenchmarkId::new("chunk_cv", kib(size as u64)), data, |b, data| {
            b.iter(|| chunk_cv(black_box(1), size, black_box(data)))
        });
    }
    // As a download verifies: every chunk on tokio's blocking pool, many at once.
    for size in CHUNK_SIZES {
        let data: Arc<[u8]> = biggest[..size as usize].into();
        group.throughput(Throughput::Bytes(size as u64 * POOL_BATCH as u64));
        group.bench_with_input(BenchmarkId::new("pool", kib(size as u64)), &data, |b, data| {
            b.iter(|| rt.block_on(verify_on_pool(data.clone(), size)))
        });
    }
    let file = generate(WHOLE_FILE, b"file");
    group.throughput(Throughput::Bytes(WHOLE_FILE as u64));
    group.bench_with_input(BenchmarkId::new("manifest_from_bytes", kib(WHOLE_FILE as u64)), &file, |b, file| {
        b.iter(|| Manifest::from_bytes(black_box(file)))
    });
    group.finish();
}

/// Hashes [`POOL_BATCH`] chunks, each in its own `spawn_blocking` call, all at once.
async fn verify_on_pool(data: Arc<[u8]>, size: u32) {
    let mut tasks = JoinSet::new();
    for index in 0..POOL_BATCH as u32 {
        let data = data.clone();
        tasks.spawn_blocking(move || chunk_cv(index + 1, size, &data));
    }
    while let Some(cv) = tasks.join_next().await {
        black_box(cv.ok());
    }
}

// ---------------------------------------------------------------- transfer

fn transfer(c: &mut Criterion, rt: &tokio::runtime::Runtime) -> Summary {
    let size = bench_mib() << 20;
    let mut summary = Summary { size, rows: Vec::new(), p2pq_tail: None, pairs: Vec::new() };
    let mut group = c.benchmark_group(format!("transfer_{}", kib(size)));
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(8))
        .throughput(Throughput::Bytes(size));

    let mut swarm = None;
    for window in P2PQ_WINDOWS {
        let (mut runs, mut tails) = (Vec::new(), Vec::new());
        let label = window.map_or("adaptive".to_string(), |w| w.to_string());
        group.bench_function(BenchmarkId::new("p2pq_get", format!("in_flight_{label}")), |b| {
            b.iter_custom(|iters| {
                let swarm = swarm.get_or_insert_with(|| must(rt.block_on(Swarm::start(size))));
                timed(iters, &mut runs, || {
                    let fetch = must(rt.block_on(swarm.fetch_once(window)));
                    tails.push(fetch.tail);
                    fetch.took
                })
            })
        });
        summary.rows.push((format!("p2pq get, {label} chunks in flight"), runs));
        if window.is_none() {
            summary.p2pq_tail = median(&tails);
        }
    }
    let mut raw = None;
    for in_flight in IN_FLIGHT {
        let mut runs = Vec::new();
        group.bench_function(BenchmarkId::new("raw_quinn", format!("in_flight_{in_flight}")), |b| {
            b.iter_custom(|iters| {
                let raw = raw.get_or_insert_with(|| must(rt.block_on(RawPair::start())));
                timed(iters, &mut runs, || must(rt.block_on(raw.send(size, in_flight))))
            })
        });
        summary.rows.push((format!("raw quinn, {in_flight} streams in flight"), runs));
    }
    group.finish();
    if pair_rounds() > 0 {
        let swarm = swarm.get_or_insert_with(|| must(rt.block_on(Swarm::start(size))));
        let raw = raw.get_or_insert_with(|| must(rt.block_on(RawPair::start())));
        summary.pairs = must(rt.block_on(pairs(swarm, raw, size)));
    }
    if let Some(swarm) = swarm {
        rt.block_on(swarm.stop());
    }
    summary
}

/// Runs p2pq's `get` (default window) and raw quinn (8 and 64 streams, the faster counts)
/// back to back, [`pair_rounds`] times; returns each round's ratio p2pq / raw. Each ratio
/// compares runs seconds apart, so it holds on a machine whose speed drifts with its neighbours'
/// load, where criterion's separate groups, minutes apart, do not.
async fn pairs(swarm: &mut Swarm, raw: &RawPair, size: u64) -> Result<Vec<f64>> {
    let mut ratios = Vec::new();
    for _ in 0..pair_rounds() {
        let p2pq = swarm.fetch_once(None).await?.took;
        let mut best = Duration::MAX;
        for in_flight in [8, 64] {
            best = best.min(raw.send(size, in_flight).await?);
        }
        ratios.push(best.as_secs_f64() / p2pq.as_secs_f64());
    }
    Ok(ratios)
}

/// Runs `once` `iters` times, keeps each run's time in `runs`, returns the sum for criterion.
fn timed(iters: u64, runs: &mut Vec<Duration>, mut once: impl FnMut() -> Duration) -> Duration {
    (0..iters)
        .map(|_| {
            let took = once();
            runs.push(took);
            took
        })
        .sum()
}

/// One timed `get`.
struct Fetch {
    /// The whole `get` call.
    took: Duration,
    /// From the last chunk written to `get` returning: fsync, final link, announcing the copy.
    tail: Duration,
}

/// A tracker and the sharing peer, in a temp folder; each `fetch_once` brings a new downloader.
struct Swarm {
    dir: tempfile::TempDir,
    tracker: Running,
    sharer: Peer,
    size: u64,
    downloads: u32,
}

impl Swarm {
    async fn start(size: u64) -> Result<Swarm> {
        let dir = tempfile::tempdir().context("cannot make a temp folder")?;
        let config = TrackerConfig {
            listen: ([127, 0, 0, 1], 0).into(),
            certs: dir.path().join("certs"),
            state_dir: dir.path().join("tracker"),
            peer_timeout: Duration::from_secs(15),
            advertise: Vec::new(),
            limits: tracker::Limits::default(),
        };
        let tracker = tracker::start(&config).await?;
        let sharer = start_peer(dir.path(), "a", &tracker, None).await?;
        let path = dir.path().join("a/data").join(FILE_NAME);
        tokio::task::spawn_blocking(move || p2pq::app::demo::generate_file(&path, size, b"file")).await??;
        sharer.share(FILE_NAME).await?;
        Ok(Swarm { dir, tracker, sharer, size, downloads: 0 })
    }

    /// A new peer downloads the file; returns the time `get` took. The peer then leaves and its
    /// copy is deleted, so the next run starts from nothing again.
    async fn fetch_once(&mut self, window: Option<usize>) -> Result<Fetch> {
        self.downloads += 1;
        let id = format!("b{}", self.downloads);
        let peer = start_peer(self.dir.path(), &id, &self.tracker, window).await?;
        let started = Instant::now();
        let got = peer.get(FILE_NAME).await?;
        let (took, finished_ms) = (started.elapsed(), now_ms());
        ensure!(!got.from.is_empty(), "get found the file already there; nothing was transferred");
        let len = std::fs::metadata(&got.path)?.len();
        ensure!(len == self.size, "downloaded {len} bytes, expected {}", self.size);
        let last_chunk_ms = peer.chunk_log()?.iter().map(|r| r.ts_ms).max().unwrap_or(finished_ms);
        let tail = Duration::from_millis(finished_ms.saturating_sub(last_chunk_ms).max(0) as u64);
        peer.exit().await;
        self.wait_forgotten(&id).await?;
        std::fs::remove_dir_all(self.dir.path().join(&id))?;
        Ok(Fetch { took, tail })
    }

    /// Waits until the tracker no longer lists `id`: a stale holder would make the next
    /// downloader wait for a connection that never comes.
    async fn wait_forgotten(&self, id: &str) -> Result<()> {
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        while self.tracker.tracker.peers().iter().any(|(peer, _)| peer == id) {
            if Instant::now() > deadline {
                bail!("the tracker still lists peer {id} after it left");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(())
    }

    async fn stop(self) {
        self.sharer.exit().await;
        self.tracker.stop().await;
    }
}

async fn start_peer(dir: &Path, id: &str, tracker: &Running, window: Option<usize>) -> Result<Peer> {
    let home = dir.join(id);
    std::fs::create_dir_all(home.join("data"))?;
    let config = PeerConfig { window, ..PeerConfig::in_home(id, tracker.addr, &dir.join("certs"), &home) };
    let peer = Peer::start(config).await?;
    tokio::time::timeout(SETTLE_TIMEOUT, peer.registered()).await.context("peer did not register")?;
    Ok(peer)
}

// ---------------------------------------------------------------- raw quinn baseline

/// Two quinn endpoints built by p2pq's `tls` module (endpoint, TLS and transport configs, so the
/// same windows and socket buffers as p2pq's holder and downloader); the server sends, the
/// client reads.
struct RawPair {
    _dir: tempfile::TempDir,
    server: quinn::Endpoint,
    client: quinn::Endpoint,
    config: quinn::ClientConfig,
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
    async fn start() -> Result<RawPair> {
        let dir = tempfile::tempdir()?;
        let server_id = Identity::load_or_create(dir.path(), "raw-server")?;
        let client_id = Identity::load_or_create(dir.path(), "raw-client")?;
        // Endpoints made the way p2pq makes its own (socket buffers, stateless resets); the
        // client's server side is never used.
        let loopback = ([127, 0, 0, 1], 0).into();
        let server = tls::endpoint(&server_id, tls::server_config(&server_id, RAW_ALPN)?, loopback)?;
        let client = tls::endpoint(&client_id, tls::server_config(&client_id, RAW_ALPN)?, loopback)?;
        let config = tls::client_config(&client_id, RAW_ALPN, server_id.fingerprint)?;
        let serving = tokio::spawn(raw_serve(server.clone()));
        Ok(RawPair { _dir: dir, server, client, config, serving })
    }

    /// Connects, asks for `total` bytes with `in_flight` streams at once, reads them all.
    /// Returns the time from connecting to the last byte read.
    async fn send(&self, total: u64, in_flight: usize) -> Result<Duration> {
        let started = Instant::now();
        let conn = self.client.connect_with(self.config.clone(), self.server.local_addr()?, tls::SERVER_NAME)?.await?;
        let (mut ask, _) = conn.open_bi().await?;
        let mut request = total.to_be_bytes().to_vec();
        request.extend_from_slice(&(in_flight as u64).to_be_bytes());
        ask.write_all(&request).await?;
        ask.finish()?;
        let mut reads = JoinSet::new();
        for _ in 0..total.div_ceil(RAW_CHUNK as u64) {
            let mut stream = conn.accept_uni().await?;
            reads.spawn(async move { stream.read_to_end(RAW_CHUNK).await.map(|data| data.len() as u64) });
        }
        let mut received = 0;
        while let Some(read) = reads.join_next().await {
            received += read??;
        }
        let took = started.elapsed();
        conn.close(0u32.into(), b"done");
        ensure!(received == total, "received {received} bytes, expected {total}");
        Ok(took)
    }
}

/// Accepts baseline connections; each asks for (total, in flight) and gets that many bytes.
async fn raw_serve(endpoint: quinn::Endpoint) {
    let mut conns = JoinSet::new();
    while let Some(incoming) = endpoint.accept().await {
        while conns.try_join_next().is_some() {}
        conns.spawn(async move {
            let Ok(conn) = incoming.await else { return };
            if let Err(err) = raw_send(conn).await {
                eprintln!("raw baseline sender failed: {err:#}");
            }
        });
    }
}

/// Sends the asked-for bytes as `RAW_CHUNK` streams, at most `in_flight` unacknowledged at once.
async fn raw_send(conn: quinn::Connection) -> Result<()> {
    let (_, mut ask) = conn.accept_bi().await?;
    let (total, in_flight) = (ask.read_u64().await?, ask.read_u64().await? as usize);
    raw::send_streams(&conn, total, in_flight, generate(RAW_CHUNK, b"raw").into()).await
}

// ---------------------------------------------------------------- summary and helpers

/// Every timed run of each transfer setting, for the closing comparison.
struct Summary {
    size: u64,
    rows: Vec<(String, Vec<Duration>)>,
    /// Median time p2pq's `get` spent after its last chunk was written.
    p2pq_tail: Option<Duration>,
    /// Ratio p2pq / raw of each paired round.
    pairs: Vec<f64>,
}

impl Summary {
    fn print(&self) {
        eprintln!("\ntransfer of {} over loopback, median of each setting's runs:", kib(self.size));
        for (label, runs) in &self.rows {
            let Some(time) = median(runs) else { continue };
            let rate = self.size as f64 / time.as_secs_f64() / (1u64 << 20) as f64;
            eprintln!("  {label:<36} {rate:>8.1} MiB/s  ({} runs, {:.3} s)", runs.len(), time.as_secs_f64());
        }
        if let Some(tail) = self.p2pq_tail {
            eprintln!("  of p2pq's time, after the last chunk was written (fsync, link, announce): {} ms", tail.as_millis());
        }
        let mut pairs = self.pairs.clone();
        pairs.sort_by(f64::total_cmp);
        if let (Some(low), Some(mid), Some(high)) = (pairs.first(), pairs.get(pairs.len() / 2), pairs.last()) {
            eprintln!(
                "  p2pq / raw quinn, paired rounds (p2pq with its adaptive window vs raw's faster of 8 and 64): \
                 median {mid:.2} (lowest {low:.2}, highest {high:.2}, {} rounds)",
                pairs.len()
            );
        }
    }
}

fn median(runs: &[Duration]) -> Option<Duration> {
    let mut sorted = runs.to_vec();
    sorted.sort();
    sorted.get(sorted.len() / 2).copied()
}

/// Paired rounds, from `P2PQ_BENCH_PAIRS` (0 skips them).
fn pair_rounds() -> usize {
    std::env::var("P2PQ_BENCH_PAIRS").ok().and_then(|text| text.trim().parse().ok()).unwrap_or(DEFAULT_PAIRS)
}

/// The transfer size in MiB, from `P2PQ_BENCH_MIB`.
fn bench_mib() -> u64 {
    match std::env::var("P2PQ_BENCH_MIB") {
        Ok(text) => match text.trim().parse::<u64>() {
            Ok(mib) if mib > 0 => mib,
            _ => panic!("P2PQ_BENCH_MIB must be a positive whole number of MiB, not {text:?}"),
        },
        Err(_) => DEFAULT_MIB,
    }
}

/// `len` pseudo-random (incompressible, reproducible) bytes.
fn generate(len: usize, seed: &[u8]) -> Vec<u8> {
    let mut data = vec![0u8; len];
    blake3::Hasher::new().update(seed).finalize_xof().fill(&mut data);
    data
}

/// A size as `64KiB`, `1MiB`, …
fn kib(bytes: u64) -> String {
    if bytes >= 1 << 20 && bytes.is_multiple_of(1 << 20) { format!("{}MiB", bytes >> 20) } else { format!("{}KiB", bytes >> 10) }
}

/// Unwraps a setup or run result; a bench that cannot run has nothing to report.
fn must<T>(result: Result<T>) -> T {
    result.unwrap_or_else(|err| panic!("{err:#}"))
}
