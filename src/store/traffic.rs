//! What this peer has moved since it started: chunk bytes sent to downloaders and received
//! (verified) from holders, counted as they go, for the heartbeats that tell the tracker; and
//! what each shared file sent, to whom lately.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How recently a downloader must have been sent a chunk to count as being served now.
pub const SERVING_WINDOW: Duration = Duration::from_secs(10);

/// Running totals of chunk bytes, shared by everything that sends or receives them.
#[derive(Debug, Default)]
pub struct Traffic {
    sent: AtomicU64,
    received: AtomicU64,
}

impl Traffic {
    /// Counts `bytes` of chunk data sent to a downloader.
    pub fn sent(&self, bytes: u64) {
        self.sent.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Counts `bytes` of chunk data received and verified.
    pub fn received(&self, bytes: u64) {
        self.received.fetch_add(bytes, Ordering::Relaxed);
    }

    /// (sent, received) so far.
    pub fn totals(&self) -> (u64, u64) {
        (self.sent.load(Ordering::Relaxed), self.received.load(Ordering::Relaxed))
    }
}

/// What one shared file sent: chunks and bytes since it was shared, and when each downloader
/// (by address: one endpoint per peer) last got a chunk of it.
#[derive(Debug, Default)]
pub struct FileTraffic {
    chunks: AtomicU64,
    bytes: AtomicU64,
    served: Mutex<HashMap<SocketAddr, Instant>>,
}

impl FileTraffic {
    /// Counts a chunk of `bytes` sent to the downloader at `to`, at `now`.
    pub fn count(&self, bytes: u64, to: SocketAddr, now: Instant) {
        self.chunks.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        let mut served = self.served();
        // Forget who has not been served for a while, so the map stays as small as the set of
        // downloaders of the moment.
        served.retain(|_, last| now.saturating_duration_since(*last) < SERVING_WINDOW);
        served.insert(to, now);
    }

    /// (chunks, bytes) sent so far.
    pub fn totals(&self) -> (u64, u64) {
        (self.chunks.load(Ordering::Relaxed), self.bytes.load(Ordering::Relaxed))
    }

    /// Downloaders sent a chunk within [`SERVING_WINDOW`] before `now`.
    pub fn serving_now(&self, now: Instant) -> usize {
        self.served().values().filter(|last| now.saturating_duration_since(**last) < SERVING_WINDOW).count()
    }

    /// Adds what `earlier` counted (the partial share a completed download replaces).
    pub fn take_over(&self, earlier: &FileTraffic) {
        let (chunks, bytes) = earlier.totals();
        self.chunks.fetch_add(chunks, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        let served = earlier.served().clone();
        self.served().extend(served);
    }

    fn served(&self) -> std::sync::MutexGuard<'_, HashMap<SocketAddr, Instant>> {
        self.served.lock().unwrap_or_else(|p| p.into_inner())
    }
}
