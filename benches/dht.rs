//! A download found through the DHT, with its tracker killed, beside the same download found
//! through the tracker: issue 15's target (first verified chunk within 3 s, rate ≥ 0.9×).
//!
//! Everything runs in this process on 127.0.0.1: a local 8-node mainline `Testnet`, a tracker,
//! and one holder on a capped simulated uplink (default 200 Mbit/s, 10 ms one way, so the
//! rate is the link's, not the CPU's) that shares the file publicly, registered with the
//! tracker and announced on the DHT. Each round a fresh downloader on an uncapped link runs
//! `get ID` and is timed from the call to the file verified on disk, and to its first
//! verified chunk (the first `Chunk` event):
//! - **tracker**: the downloader has the tracker and no DHT node;
//! - **dht**: the tracker has been stopped; the downloader has the dead tracker's address
//!   and a DHT node bootstrapped from the test network, so its holder comes from the DHT.
//!
//! The tracker rounds run first, then the tracker is stopped and the DHT rounds run (a
//! tracker once killed stays dead, as in the issue). Reported: each round's times and rates,
//! the medians, and the ratio of the DHT median rate over the tracker's.
//!
//! Run: `cargo bench --bench dht`. Knobs: `P2PQ_DHT_MIB` (file size, default 64),
//! `P2PQ_DHT_ROUNDS` (rounds of each kind, default 3), `P2PQ_DHT_MBIT` (the holder's uplink).

#[path = "common/sizes.rs"]
mod sizes;
#[path = "common/space.rs"]
mod space;
use space::check_free_space;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use p2pq::discovery::dht::Bootstrap;
use p2pq::net::linksim::{self, Link};
use p2pq::peer::events::Progress;
use p2pq::peer::{Peer, PeerConfig};
use p2pq::protocol::FileId;
use p2pq::tracker::{self, Running, TrackerConfig};
use tokio_util::sync::CancellationToken;

/// Longest one step (a start, an announce, a download) may take before the bench gives up.
const STEP: Duration = Duration::from_secs(120);
const FILE_NAME: &str = "dht-bench.bin";

fn main() -> Result<()> {
    let mib: u64 = env("P2PQ_DHT_MIB", 64)?;
    let rounds: usize = env("P2PQ_DHT_ROUNDS", 3)?;
    let mbit: f64 = env("P2PQ_DHT_MBIT", 200.0)?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(run(mib << 20, rounds, mbit))
}

fn env<T: std::str::FromStr>(name: &str, default: T) -> Result<T> {
    match std::env::var(name) {
        Ok(text) => text.parse().map_err(|_| anyhow::anyhow!("{name}={text:?} is not valid")),
        Err(_) => Ok(default),
    }
}

/// One timed download.
struct Round {
    first_chunk: Duration,
    took: Duration,
    bytes: u64,
}

impl Round {
    fn rate(&self) -> f64 {
        self.bytes as f64 / self.took.as_secs_f64() / 1e6
    }
}

async fn run(size: u64, rounds: usize, mbit: f64) -> Result<()> {
    let dir = tempfile::tempdir()?;
    check_free_space(dir.path(), size * 3)?;
    let testnet = tokio::task::spawn_blocking(|| mainline::Testnet::builder(8).build()).await??;
    let boot: Vec<SocketAddr> = testnet.bootstrap.iter().map(|a| a.parse()).collect::<Result<_, _>>()?;
    ensure!(boot.iter().all(|a| a.ip().is_loopback()), "the test DHT stays on loopback");
    let boot = Bootstrap::Nodes(boot);
    let tracker = start_tracker(dir.path()).await?;
    let tracker_addr = tracker.addr;
    let holder_link = Link { delay: Duration::from_millis(10), ..Link::default() }.rate_mbit(mbit);
    let holder = start_peer(dir.path(), "holder", tracker_addr, holder_link, Some(boot.clone())).await?;
    tokio::time::timeout(STEP, holder.registered()).await.context("the holder did not register")?;
    let id = share_public(dir.path(), &holder, size).await?;
    println!("dht bench: {} file, holder uplink {mbit} Mbit/s 10 ms one way, 8-node local DHT, {rounds} rounds each", sizes::mib(size));
    let mut tracker_rounds = Vec::new();
    for n in 0..rounds {
        let round = fetch(dir.path(), &format!("t{n}"), tracker_addr, None, &id).await;
        report("tracker", n, &round);
        tracker_rounds.extend(round.ok());
    }
    tracker.stop().await;
    let mut dht_rounds = Vec::new();
    for n in 0..rounds {
        let round = fetch(dir.path(), &format!("d{n}"), tracker_addr, Some(boot.clone()), &id).await;
        report("dht, tracker dead", n, &round);
        dht_rounds.extend(round.ok());
    }
    summary(&tracker_rounds, &dht_rounds);
    let _ = tokio::time::timeout(STEP, holder.exit()).await;
    drop(testnet);
    Ok(())
}

/// A fresh downloader `name` gets `id` (through the tracker, or with `dht` through the DHT),
/// then leaves, and its folder is removed.
async fn fetch(dir: &Path, name: &str, tracker: SocketAddr, dht: Option<Bootstrap>, id: &FileId) -> Result<Round> {
    let with_tracker = dht.is_none();
    let peer = start_peer(dir, name, tracker, Link::default(), dht).await?;
    if with_tracker {
        tokio::time::timeout(STEP, peer.registered()).await.context("the downloader did not register")?;
    }
    let (events, mut progress) = tokio::sync::mpsc::unbounded_channel();
    let started = Instant::now();
    let first = tokio::spawn(async move {
        while let Some(event) = progress.recv().await {
            if matches!(event, Progress::Chunk { .. }) {
                return Some(started.elapsed());
            }
        }
        None
    });
    let got = tokio::time::timeout(STEP, peer.get_with(&id.to_hex(), Some(events), &CancellationToken::new())).await;
    let took = started.elapsed();
    let _ = tokio::time::timeout(STEP, peer.exit()).await;
    let got = got.context("the download did not finish in time")??;
    let first_chunk = first.await?.context("no chunk arrived")?;
    let bytes = std::fs::metadata(&got.path)?.len();
    std::fs::remove_dir_all(dir.join(name))?;
    Ok(Round { first_chunk, took, bytes })
}

fn report(kind: &str, n: usize, round: &Result<Round>) {
    match round {
        Ok(r) => println!(
            "  {kind:<18} round {n}: first chunk {:>6.0} ms, done in {:>6.2} s, {:>7.1} MB/s",
            r.first_chunk.as_secs_f64() * 1e3,
            r.took.as_secs_f64(),
            r.rate()
        ),
        Err(err) => println!("  {kind:<18} round {n}: failed: {err:#}"),
    }
}

fn summary(tracker: &[Round], dht: &[Round]) {
    let (Some(t), Some(d)) = (median(tracker, Round::rate), median(dht, Round::rate)) else {
        println!("no ratio: a kind of round never finished");
        return;
    };
    let first = |rounds: &[Round]| median(rounds, |r| r.first_chunk.as_secs_f64() * 1e3).unwrap_or(f64::NAN);
    println!("median rate: tracker {t:.1} MB/s, dht {d:.1} MB/s, dht/tracker {:.2} (target >= 0.9)", d / t);
    println!("median first verified chunk: tracker {:.0} ms, dht {:.0} ms (target <= 3000 ms)", first(tracker), first(dht));
}

fn median(rounds: &[Round], value: impl Fn(&Round) -> f64) -> Option<f64> {
    let mut values: Vec<f64> = rounds.iter().map(value).collect();
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied()
}

async fn start_tracker(dir: &Path) -> Result<Running> {
    let config = TrackerConfig {
        listen: ([127, 0, 0, 1], 0).into(),
        certs: dir.join("certs"),
        state_dir: dir.join("tracker"),
        peer_timeout: Duration::from_secs(15),
        advertise: Vec::new(),
        limits: tracker::Limits::default(),
    };
    tracker::start_on(&config, linksim::socket(config.listen, Link::default())?.socket).await
}

async fn start_peer(dir: &Path, id: &str, tracker: SocketAddr, link: Link, dht: Option<Bootstrap>) -> Result<Peer> {
    let home = dir.join(id);
    std::fs::create_dir_all(home.join("data"))?;
    let config = PeerConfig { dht, ..PeerConfig::in_home(id, tracker, &dir.join("certs"), &home) };
    let sim = linksim::socket(config.listen, link)?;
    Peer::start_on(config, sim.socket).await
}

/// Writes the file, shares it publicly, and waits until it is on the DHT.
async fn share_public(dir: &Path, holder: &Peer, size: u64) -> Result<FileId> {
    let path = dir.join("holder/data").join(FILE_NAME);
    tokio::task::spawn_blocking(move || p2pq::app::demo::generate_file(&path, size, b"dht bench")).await??;
    let shared = holder.share(FILE_NAME).await?;
    let mut on_dht = holder.on_dht();
    holder.make_public(&shared)?;
    let id = shared.info.id;
    tokio::time::timeout(STEP, on_dht.wait_for(|on| on.contains(&id))).await.context("never announced on the DHT")??;
    Ok(id)
}
