//! `p2pq demo`: a tracker and two peers in one process on loopback, moving one generated file.
//!
//! It is the shortest way to see the whole system work on a fresh machine: alice shares a
//! file, bob downloads it from her (with a progress bar on a terminal), and the demo checks
//! bob's copy against the file id independently, the way `b3sum` would. It checks the free
//! space first (the file and bob's copy), and Ctrl-C or SIGTERM stop it at once, removing
//! everything it wrote.

use std::future::Future;
use std::io::{BufWriter, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::app::console::{self, say};
use crate::app::oneshot::INTERRUPTED;
use crate::app::progress::Show;
use crate::peer::{Peer, PeerConfig};
use crate::store::space;
use crate::tracker::{self, TrackerConfig};
use crate::units;

/// Time the peers get to register before the demo gives up.
const REGISTER_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest demo file, in MiB (1 TiB): anything bigger is a slip of the keyboard, and its size
/// in bytes could overflow.
pub const MAX_SIZE_MIB: u64 = 1 << 20;
/// How long the demo's parts get to wind down after Ctrl-C or SIGTERM before its folder is
/// removed anyway.
const STOP_GRACE: Duration = Duration::from_secs(3);
/// Exit status when SIGTERM stopped the demo (128 + 15, as shells report it).
pub const TERMINATED: u8 = 143;

/// Runs the demo with a generated file of `size_mib` MiB, in a folder under the system's temp
/// folder that is removed at the end. Returns the exit status: 0, or [`INTERRUPTED`] (Ctrl-C)
/// or [`TERMINATED`] (SIGTERM), which stop it at once.
pub async fn run(size_mib: u64) -> Result<u8> {
    let size = file_size(size_mib)?;
    let base = std::env::temp_dir();
    // The file, and bob's copy of it.
    space::check(&base, "the demo's file and bob's copy", 2 * size)?;
    let dir = base.join(format!("p2pq-demo-{}", std::process::id()));
    let (shutdown, interrupt) = (CancellationToken::new(), Arc::new(Notify::new()));
    console::on_signals(shutdown.clone(), Some(interrupt.clone()));
    let stop = CancellationToken::new();
    let mut work = Box::pin(run_in(&dir, size, &stop));
    let outcome = tokio::select! {
        result = &mut work => Ok(result),
        _ = shutdown.cancelled() => Err(TERMINATED),
        _ = interrupt.notified() => Err(INTERRUPTED),
    };
    if outcome.is_err() {
        stop.cancel();
        let _ = tokio::time::timeout(STOP_GRACE, &mut work).await;
    }
    drop(work);
    shutdown.cancel();
    let _ = std::fs::remove_dir_all(&dir);
    match outcome {
        Ok(result) => result.map(|()| 0),
        Err(code) => {
            let why = if code == TERMINATED { "stopped by SIGTERM" } else { "interrupted" };
            console::error_line(&format!("{why}; removed the demo folder {}", dir.display()));
            Ok(code)
        }
    }
}

/// Bytes of a `size_mib` MiB demo file; sizes past [`MAX_SIZE_MIB`] are refused.
pub fn file_size(size_mib: u64) -> Result<u64> {
    let bytes = size_mib.checked_mul(1 << 20).filter(|_| size_mib <= MAX_SIZE_MIB);
    bytes.with_context(|| format!("--size-mib {size_mib} is too large: the demo's file can be at most {MAX_SIZE_MIB} MiB (1 TiB)"))
}

/// The tracker and both peers around [`exchange`]; stops early when `stop` fires.
async fn run_in(dir: &Path, size: u64, stop: &CancellationToken) -> Result<()> {
    let certs = dir.join("certs");
    let tracker_config = TrackerConfig {
        listen: ([127, 0, 0, 1], 0).into(),
        certs: certs.clone(),
        state_dir: dir.join("tracker"),
        peer_timeout: Duration::from_secs(15),
        advertise: Vec::new(),
        limits: tracker::Limits::default(),
    };
    let tracker = until(stop, tracker::start(&tracker_config)).await?;
    say(&format!("tracker on {} (fingerprint {})", tracker.addr, tracker.fingerprint.short()));
    let peers = until(stop, async {
        let alice = start_peer(dir, "alice", tracker.addr, &certs).await?;
        Ok((alice, start_peer(dir, "bob", tracker.addr, &certs).await?))
    });
    let result = match peers.await {
        Ok((alice, bob)) => {
            let result = exchange(dir, size, &alice, &bob, stop).await;
            tokio::join!(alice.exit(), bob.exit());
            result
        }
        Err(err) => Err(err),
    };
    tracker.stop().await;
    result
}

/// Alice shares a generated file, bob downloads it, and his copy is checked independently.
async fn exchange(dir: &Path, size: u64, alice: &Peer, bob: &Peer, stop: &CancellationToken) -> Result<()> {
    let (path, halt) = (dir.join("alice/data/demo.bin"), stop.clone());
    tokio::task::spawn_blocking(move || generate_until(&path, size, b"p2pq demo", || halt.is_cancelled())).await??;
    let shared = until(stop, alice.share("demo.bin")).await?;
    say(&format!("alice shares demo.bin ({}), id {}", units::bytes(size), shared.info.id));
    let draw = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let got = crate::app::progress::get(bob, "demo.bin", None, if draw { Show::Bars } else { Show::Lines }, stop).await?;
    say(&format!("bob downloaded it in {} at {}", units::duration(got.elapsed), units::rate(size, got.elapsed)));
    let (check, halt) = (got.path.clone(), stop.clone());
    let actual = tokio::task::spawn_blocking(move || hash_file(&check, || halt.is_cancelled())).await??;
    say(&format!("id of alice's file:          {}", shared.info.id));
    say(&format!("blake3 of bob's copy (b3sum): {actual}"));
    if actual != shared.info.id.to_hex() {
        bail!("verification FAILED: bob's copy does not match");
    }
    say("verified: bob's copy is byte for byte alice's file");
    Ok(())
}

/// `work`, unless `stop` fires first.
async fn until<T>(stop: &CancellationToken, work: impl Future<Output = Result<T>>) -> Result<T> {
    tokio::select! {
        done = work => done,
        _ = stop.cancelled() => bail!("stopped"),
    }
}

async fn start_peer(dir: &Path, id: &str, tracker: SocketAddr, certs: &Path) -> Result<Peer> {
    let home = dir.join(id);
    let data = home.join("data");
    std::fs::create_dir_all(&data).with_context(|| format!("cannot create {}", data.display()))?;
    let config = PeerConfig::in_home(id, tracker, certs, &home);
    let peer = Peer::start(config).await?;
    tokio::time::timeout(REGISTER_TIMEOUT, peer.registered()).await.context("peer did not register with the tracker")?;
    Ok(peer)
}

/// Writes `size` pseudo-random bytes to `path`: incompressible, and the same for the same
/// `seed` (the demo's file, and the benchmarks' test data).
pub fn generate_file(path: &Path, size: u64, seed: &[u8]) -> Result<()> {
    generate_until(path, size, seed, || false)
}

/// [`generate_file`], giving up (with an error) as soon as `stop` says so, at most a MiB later.
fn generate_until(path: &Path, size: u64, seed: &[u8], stop: impl Fn() -> bool) -> Result<()> {
    let what = || format!("cannot write {}", path.display());
    let mut out = BufWriter::new(std::fs::File::create(path).with_context(what)?);
    let mut stream = blake3::Hasher::new().update(seed).finalize_xof();
    let mut buf = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        if stop() {
            bail!("stopped");
        }
        let n = left.min(buf.len() as u64) as usize;
        stream.fill(&mut buf[..n]);
        out.write_all(&buf[..n]).with_context(what)?;
        left -= n as u64;
    }
    out.flush().with_context(what)?;
    Ok(())
}

/// BLAKE3 of a whole file, computed independently of p2pq's chunking; gives up when `stop`
/// says so.
fn hash_file(path: &Path, stop: impl Fn() -> bool) -> Result<String> {
    let mut file = std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        if stop() {
            bail!("stopped");
        }
        let n = match std::io::Read::read(&mut file, &mut buf) {
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
            read => read.with_context(|| format!("cannot read {}", path.display()))?,
        };
        if n == 0 {
            return Ok(hasher.finalize().to_hex().to_string());
        }
        hasher.update(&buf[..n]);
    }
}
