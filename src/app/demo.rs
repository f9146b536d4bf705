//! `p2pq demo`: a tracker and two peers in one process on loopback, moving one generated file.
//!
//! It is the shortest way to see the whole system work on a fresh machine: alice shares a
//! file, bob downloads it from her (with a progress bar on a terminal), and the demo checks
//! bob's copy against the file id independently, the way `b3sum` would.

use std::io::{BufWriter, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::app::console::say;
use crate::app::progress::Show;
use crate::peer::{Peer, PeerConfig};
use crate::tracker::{self, TrackerConfig};
use crate::units;

/// Time the peers get to register before the demo gives up.
const REGISTER_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs the demo with a generated file of `size` bytes.
pub async fn run(size: u64) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("p2pq-demo-{}", std::process::id()));
    let result = run_in(&dir, size).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn run_in(dir: &Path, size: u64) -> Result<()> {
    let certs = dir.join("certs");
    let tracker_config = TrackerConfig {
        listen: ([127, 0, 0, 1], 0).into(),
        certs: certs.clone(),
        state_dir: dir.join("tracker"),
        peer_timeout: Duration::from_secs(15),
        advertise: Vec::new(),
    };
    let tracker = tracker::start(&tracker_config).await?;
    say(&format!("tracker on {} (fingerprint {})", tracker.addr, tracker.fingerprint.short()));
    let alice = start_peer(dir, "alice", tracker.addr, &certs).await?;
    let bob = start_peer(dir, "bob", tracker.addr, &certs).await?;
    let source = dir.join("alice/data/demo.bin");
    let (path, s) = (source.clone(), size);
    tokio::task::spawn_blocking(move || generate_file(&path, s, b"p2pq demo")).await??;
    let shared = alice.share("demo.bin").await?;
    say(&format!("alice shares demo.bin ({}), id {}", units::bytes(size), shared.info.id));
    let draw = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let got = crate::app::progress::get(&bob, "demo.bin", if draw { Show::Bars } else { Show::Lines }, &Default::default()).await?;
    say(&format!("bob downloaded it in {} at {}", units::duration(got.elapsed), units::rate(size, got.elapsed)));
    let check = got.path.clone();
    let actual = tokio::task::spawn_blocking(move || hash_file(&check)).await??;
    say(&format!("id of alice's file:          {}", shared.info.id));
    say(&format!("blake3 of bob's copy (b3sum): {actual}"));
    for peer in [&alice, &bob] {
        peer.exit().await;
    }
    tracker.stop().await;
    if actual != shared.info.id.to_hex() {
        bail!("verification FAILED: bob's copy does not match");
    }
    say("verified: bob's copy is byte for byte alice's file");
    Ok(())
}

async fn start_peer(dir: &Path, id: &str, tracker: SocketAddr, certs: &Path) -> Result<Peer> {
    let home = dir.join(id);
    std::fs::create_dir_all(home.join("data"))?;
    let config = PeerConfig::in_home(id, tracker, certs, &home);
    let peer = Peer::start(config).await?;
    tokio::time::timeout(REGISTER_TIMEOUT, peer.registered()).await.context("peer did not register with the tracker")?;
    Ok(peer)
}

/// Writes `size` pseudo-random bytes to `path`: incompressible, and the same for the same
/// `seed` (the demo's file, and the benchmarks' test data).
pub fn generate_file(path: &Path, size: u64, seed: &[u8]) -> Result<()> {
    let mut out = BufWriter::new(std::fs::File::create(path)?);
    let mut stream = blake3::Hasher::new().update(seed).finalize_xof();
    let mut buf = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        stream.fill(&mut buf[..n]);
        out.write_all(&buf[..n])?;
        left -= n as u64;
    }
    out.flush()?;
    Ok(())
}

/// BLAKE3 of a whole file, computed independently of p2pq's chunking.
fn hash_file(path: &Path) -> Result<String> {
    let mut hasher = blake3::Hasher::new();
    hasher.update_reader(std::fs::File::open(path)?)?;
    Ok(hasher.finalize().to_hex().to_string())
}
