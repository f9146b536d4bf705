//! What this peer has moved since it started: chunk bytes sent to downloaders and received
//! (verified) from holders, counted as they go, for the heartbeats that tell the tracker.

use std::sync::atomic::{AtomicU64, Ordering};

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
