//! The tracker registry's own memory per peer, counted exactly: a counting allocator around
//! a registry filled with `P2PQ_REG_PEERS` peers (100,000) of `P2PQ_REG_FILES` files each (10),
//! each file its own, under one name, as the load bench's peers share. What the registry
//! holds beyond quinn's and the session tasks' part of `benches/tracker_load.rs`'s figure.
//! Run: `cargo bench --bench registry_memory`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::{Context, Result};
use p2pq::protocol::{Digest, FileInfo};
use p2pq::tracker::registry::Registry;

/// The system allocator, counting the bytes live.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is passed through to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's layout, as `GlobalAlloc::alloc` requires.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: `ptr` came from `alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// A knob from the environment, or its default.
fn knob(name: &str, default: usize) -> Result<usize> {
    std::env::var(name).map_or(Ok(default), |v| v.parse().with_context(|| format!("{name}={v} is not a count")))
}

fn main() -> Result<()> {
    let (peers, files) = (knob("P2PQ_REG_PEERS", 100_000)?, knob("P2PQ_REG_FILES", 10)?);
    let mut registry = Registry::default();
    let now = Instant::now();
    let before = LIVE.load(Ordering::Relaxed);
    for i in 0..peers {
        let id = format!("sim-{i}");
        let mut fingerprint = [0u8; 32];
        fingerprint[..8].copy_from_slice(&(i as u64).to_le_bytes());
        let addr = std::net::SocketAddr::from(([127, (i >> 16) as u8, (i >> 8) as u8, i as u8], 4000));
        registry.register(&id, Digest(fingerprint), addr, i as u64, now).map_err(|e| anyhow::anyhow!("{e}"))?;
        for f in 0..files {
            let file_id = Digest(*blake3::hash(format!("{i}-{f}").as_bytes()).as_bytes());
            let info = FileInfo { id: file_id, name: format!("file-{i}-{f}.bin"), size: 1 << 20, folder: None };
            registry.share(&id, i as u64, &info, now).map_err(|e| anyhow::anyhow!("{e}"))?;
        }
    }
    let bytes = LIVE.load(Ordering::Relaxed).saturating_sub(before);
    println!("registry: {} bytes a peer ({peers} peers x {files} files, one name each)", bytes / peers.max(1));
    Ok(())
}
