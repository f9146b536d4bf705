//! A flash crowd and a multi-source download, in process: how close a swarm comes to what its
//! peers' uplinks allow.
//!
//! Built on the tests' in-process harness (`tests/common/inproc.rs`): a tracker and peers in
//! this one tokio runtime on 127.0.0.1, all in one temp folder, each peer on its own simulated
//! uplink (`p2pq::net::linksim`) capped at the same rate R.
//!
//! - **flash crowd**: one seeder and N leechers; every leecher starts `get` at the same moment
//!   and stays up, serving what it holds, until the last one is done. Printed: each leecher's
//!   time and chunks by source; the last leecher's time over size/R, the time one uplink takes
//!   to send the file (N when the seeder serves everyone alone, towards 1 as leechers serve
//!   each other); and the seeder's upload over the size (N when every leecher got every byte
//!   from the seeder, towards 1).
//! - **multi-source**: K = 4 holders each capped at R, one uncapped downloader: its rate over
//!   4R (1 when it gets all four uplinks' worth).
//!
//! Times run from the moment `get` is called to the file verified in place; the links count
//! each datagram's headers and QUIC's own bytes, so the ratios carry a few % of overhead.
//! Every wait is bounded: a run past [`TIMEOUT_FACTOR`] times the seeder-alone time (plus
//! [`TIMEOUT_FLOOR`]) is reported as stalled.
//!
//! Run: `cargo bench --bench swarm`. Knobs: `P2PQ_SWARM_LEECHERS` (N, default 8; a list such
//! as `8,16` runs each), `P2PQ_SWARM_MBIT` (R in Mbit/s, default 20), `P2PQ_SWARM_MIB` (file
//! size, default 16; the swarm's target is stated for 64).

#[path = "common/sizes.rs"]
mod sizes;
#[path = "common/space.rs"]
mod space;
use sizes::mib;
#[path = "../tests/common/inproc.rs"]
#[allow(dead_code)]
mod inproc;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail, ensure};
use inproc::Net;
use p2pq::net::linksim::{Link, LinkStats};
use p2pq::peer::{Got, Peer};
use tokio::task::JoinSet;
use tokio::time::Instant;

/// Leechers of the flash crowd when `P2PQ_SWARM_LEECHERS` is unset.
const DEFAULT_LEECHERS: usize = 8;
/// Every peer's uplink, in Mbit/s, when `P2PQ_SWARM_MBIT` is unset: a good home uplink.
const DEFAULT_MBIT: f64 = 20.0;
/// File size in MiB when `P2PQ_SWARM_MIB` is unset: 6.7 s of a 20 Mbit/s uplink, so a crowd
/// of 8 served by its seeder alone takes under a minute.
const DEFAULT_MIB: f64 = 16.0;
/// Holders of the multi-source run.
const HOLDERS: usize = 4;
/// A run may take this many times the seeder-alone time before it is called stalled…
const TIMEOUT_FACTOR: u32 = 3;
/// …plus this much for registering, lookups and handshakes.
const TIMEOUT_FLOOR: Duration = Duration::from_secs(30);
/// Free space kept beyond the copies of the file (resume state, logs, slack).
const SPACE_MARGIN: u64 = 64 << 20;
/// Name of the shared file.
const FILE_NAME: &str = "swarm.bin";

fn main() {
    let settings = Settings::from_env().unwrap_or_else(|err| panic!("{err:#}"));
    // Like a peer's: tokio's default multi-threaded runtime, one worker per core.
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    println!("{}", settings.describe());
    for &leechers in &settings.leechers {
        if let Err(err) = rt.block_on(flash_crowd(&settings, leechers)) {
            println!("flash crowd, {leechers} leechers: cannot run: {err:#}");
        }
        println!();
    }
    if let Err(err) = rt.block_on(multi_source(&settings)) {
        println!("multi-source: cannot run: {err:#}");
    }
}

// ---------------------------------------------------------------- settings

/// What the environment asks for.
struct Settings {
    /// Crowd sizes, one flash crowd each.
    leechers: Vec<usize>,
    /// Every capped uplink, in Mbit/s.
    mbit: f64,
    /// The file's size in bytes.
    size: u64,
}

impl Settings {
    fn from_env() -> Result<Settings> {
        let leechers = match std::env::var("P2PQ_SWARM_LEECHERS") {
            Ok(text) => text.split(',').map(|n| n.trim().parse::<usize>()).collect::<Result<Vec<_>, _>>(),
            Err(_) => Ok(vec![DEFAULT_LEECHERS]),
        };
        let leechers = leechers.map_err(|_| anyhow!("P2PQ_SWARM_LEECHERS must be a number or a list such as 8,16"))?;
        ensure!(leechers.iter().all(|&n| n > 0), "P2PQ_SWARM_LEECHERS must be at least 1");
        let mbit = env_parse::<f64>("P2PQ_SWARM_MBIT")?.unwrap_or(DEFAULT_MBIT);
        ensure!(mbit > 0.0, "P2PQ_SWARM_MBIT must be positive");
        let mib = env_parse::<f64>("P2PQ_SWARM_MIB")?.unwrap_or(DEFAULT_MIB);
        ensure!(mib > 0.0, "P2PQ_SWARM_MIB must be positive");
        Ok(Settings { leechers, mbit, size: ((mib * 1024.0).round() as u64).max(1) << 10 })
    }

    /// A capped uplink, R.
    fn uplink(&self) -> Link {
        Link::default().rate_mbit(self.mbit)
    }

    /// R in bytes per second.
    fn rate(&self) -> f64 {
        self.mbit * 1e6 / 8.0
    }

    /// size/R: how long one uplink takes to send the file.
    fn one_uplink(&self) -> Duration {
        Duration::from_secs_f64(self.size as f64 / self.rate())
    }

    /// How long a run whose seeder-alone time is `uplinks` times size/R may take.
    fn limit(&self, uplinks: usize) -> Duration {
        TIMEOUT_FLOOR + self.one_uplink() * (uplinks as u32 * TIMEOUT_FACTOR)
    }

    fn describe(&self) -> String {
        format!(
            "swarm: every capped uplink R = {} Mbit/s ({:.2} MB/s), file {}, size/R = {:.2} s",
            self.mbit,
            self.rate() / 1e6,
            mib(self.size),
            self.one_uplink().as_secs_f64()
        )
    }
}

/// `name` parsed, `None` if unset; a value that does not parse is an error, not a default.
fn env_parse<T: std::str::FromStr>(name: &str) -> Result<Option<T>> {
    match std::env::var(name) {
        Ok(text) => text.trim().parse().map(Some).map_err(|_| anyhow!("{name}={text:?} does not parse")),
        Err(_) => Ok(None),
    }
}

/// Fails when the temp folder cannot hold `copies` of a `size` file; warns when it cannot tell.
fn check_copies_fit(copies: usize, size: u64) -> Result<()> {
    space::check_free_space(&std::env::temp_dir(), copies as u64 * size + SPACE_MARGIN)
}

// ---------------------------------------------------------------- scenarios

/// One seeder, `leechers` leechers, all on capped uplinks; every leecher gets at once.
async fn flash_crowd(settings: &Settings, leechers: usize) -> Result<()> {
    println!("flash crowd: 1 seeder + {leechers} leechers, every uplink capped at R");
    check_copies_fit(leechers + 1, settings.size)?;
    let data = generate(settings.size);
    let mut net = Net::start().await?;
    let (seeder, _) = net.seeder("seeder", settings.uplink(), FILE_NAME, &data).await?;
    let mut crowd = Vec::new();
    for k in 1..=leechers {
        crowd.push(net.add_peer(&format!("l{k}"), settings.uplink()).await?.0);
    }
    let sent = net.link_stats(&seeder).context("the seeder has no link")?;
    let links: Vec<_> = crowd.iter().filter_map(|p| net.link_stats(p)).collect();
    let before = sent.bytes.load(Ordering::Relaxed);
    let runs = get_all(&crowd, settings.limit(leechers)).await;
    let uploaded = sent.bytes.load(Ordering::Relaxed) - before;
    let report = report_crowd(settings, &runs, &data);
    println!("  seeder upload / size = {:.2}", uploaded as f64 / settings.size as f64);
    report_crowd_upload(settings, &crowd, &links);
    net.stop().await;
    report
}

/// Each of `peers` gets the file, all starting at once, within `limit`; in the peers' order.
async fn get_all(peers: &[Peer], limit: Duration) -> Vec<(String, Result<Fetched>)> {
    let started = Instant::now();
    let mut gets = JoinSet::new();
    for (k, peer) in peers.iter().enumerate() {
        let peer = peer.clone();
        gets.spawn(async move { (k, peer.id().to_string(), fetch(&peer, started, limit).await) });
    }
    let mut runs = gets.join_all().await;
    runs.sort_by_key(|(k, _, _)| *k);
    runs.into_iter().map(|(_, id, run)| (id, run)).collect()
}

/// A finished `get`, timed from the moment the crowd started.
struct Fetched {
    took: Duration,
    got: Got,
}

async fn fetch(peer: &Peer, started: Instant, limit: Duration) -> Result<Fetched> {
    match tokio::time::timeout(limit, peer.get(FILE_NAME)).await {
        Ok(got) => Ok(Fetched { took: started.elapsed(), got: got? }),
        Err(_) => bail!("stalled: not done after {} s", limit.as_secs()),
    }
}

/// Prints what the leechers' links carried over the file's size, beside the chunk bytes they
/// sent (what was handed to quinn whole), and the datagrams their queues dropped: the gap is
/// retransmission, headers and acknowledgements.
fn report_crowd_upload(settings: &Settings, crowd: &[Peer], links: &[Arc<LinkStats>]) {
    let size = settings.size as f64;
    let on_links: u64 = links.iter().map(|l| l.bytes.load(Ordering::Relaxed)).sum();
    let dropped: u64 = links.iter().map(|l| l.overflowed.load(Ordering::Relaxed)).sum();
    let datagrams: u64 = links.iter().map(|l| l.sent.load(Ordering::Relaxed)).sum();
    let chunks: u64 = crowd.iter().flat_map(|p| p.uploads()).map(|u| u.bytes).sum();
    println!(
        "  leechers upload / size = {:.2} on their links, {:.2} in chunks sent; {dropped} of {datagrams} datagrams dropped at their caps",
        on_links as f64 / size,
        chunks as f64 / size
    );
}

/// Prints each leecher's time and sources, then the last one's time over size/R; checks every
/// copy is the original.
fn report_crowd(settings: &Settings, runs: &[(String, Result<Fetched>)], data: &[u8]) -> Result<()> {
    let one = settings.one_uplink().as_secs_f64();
    for (id, run) in runs {
        match run {
            Ok(run) => println!(
                "  {id:>4}: {:6.2} s = {:5.2} x size/R; chunks from {}",
                run.took.as_secs_f64(),
                run.took.as_secs_f64() / one,
                sources(&run.got)
            ),
            Err(err) => println!("  {id:>4}: failed: {err:#}"),
        }
    }
    let mut last = Duration::ZERO;
    for (id, run) in runs {
        let run = run.as_ref().map_err(|err| anyhow!("leecher {id} failed: {err:#}"))?;
        inproc::assert_got(&run.got, data).with_context(|| format!("leecher {id}"))?;
        last = last.max(run.took);
    }
    println!("  last leecher / (size/R) = {:.2}", last.as_secs_f64() / one);
    Ok(())
}

/// `HOLDERS` holders on capped uplinks, one uncapped downloader.
async fn multi_source(settings: &Settings) -> Result<()> {
    println!("multi-source: {HOLDERS} holders each capped at R, 1 uncapped downloader");
    check_copies_fit(HOLDERS + 1, settings.size)?;
    let data = generate(settings.size);
    let mut net = Net::start().await?;
    for k in 1..=HOLDERS {
        net.seeder(&format!("h{k}"), settings.uplink(), FILE_NAME, &data).await?;
    }
    let (getter, _) = net.add_peer("getter", Link::default()).await?;
    let run = fetch(&getter, Instant::now(), settings.limit(1)).await;
    let result = run.and_then(|run| {
        inproc::assert_got(&run.got, &data)?;
        let rate = settings.size as f64 / run.took.as_secs_f64();
        println!("  {:.2} s, {:.2} MB/s; chunks from {}", run.took.as_secs_f64(), rate / 1e6, sources(&run.got));
        println!("  rate / ({HOLDERS}R) = {:.2}", rate / (HOLDERS as f64 * settings.rate()));
        Ok(())
    });
    net.stop().await;
    result
}

// ---------------------------------------------------------------- output

/// Chunks by source, as `seeder 40, l3 24`.
fn sources(got: &Got) -> String {
    got.from.iter().map(|(id, n)| format!("{id} {n}")).collect::<Vec<_>>().join(", ")
}

/// `len` pseudo-random (incompressible, reproducible) bytes.
fn generate(len: u64) -> Vec<u8> {
    let mut data = vec![0u8; len as usize];
    blake3::Hasher::new().update(b"swarm").finalize_xof().fill(&mut data);
    data
}
