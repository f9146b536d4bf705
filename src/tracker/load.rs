//! How busy the tracker is, and shedding: when it is, lookups and listings are answered
//! "busy, retry" at once instead of queueing, so heartbeats and exits, which never wait here,
//! keep their time and no live peer is expired because the tracker was slow.
//!
//! Two signals, either enough: the runtime's lag (a probe task asks to wake every
//! [`PROBE_EVERY`] and measures how late it is woken: tasks waiting for a worker) and the
//! number of reads being answered at once.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// How often the lag probe wakes.
const PROBE_EVERY: Duration = Duration::from_millis(100);
/// Lag past which the tracker counts as busy: a heartbeat datagram queued behind this much
/// work is still far inside any timeout, and a lookup that waits this long is better retried.
const BUSY_LAG: Duration = Duration::from_millis(50);
/// Reads (lookups, listings, holder requests) answered at once, past which more are shed.
pub const MAX_READS: usize = 256;
/// What a shed request is told to wait, before the peer's own jitter.
pub const RETRY_AFTER_MS: u32 = 500;

/// The tracker's load, shared by its sessions.
#[derive(Debug, Default)]
pub struct Load {
    /// The lag the probe measured last, in microseconds.
    lag_us: AtomicU64,
    /// Reads being answered now.
    reads: AtomicUsize,
}

/// One read being answered; counted until dropped.
pub struct Reading<'a>(&'a Load);

impl Drop for Reading<'_> {
    fn drop(&mut self) {
        self.0.reads.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Load {
    /// A place for one more read, or `None` when the tracker is busy and it should be shed.
    pub fn read(&self) -> Option<Reading<'_>> {
        if self.lag() > BUSY_LAG {
            return None;
        }
        let before = self.reads.fetch_add(1, Ordering::Relaxed);
        let reading = Reading(self);
        (before < MAX_READS).then_some(reading)
    }

    /// The runtime's lag as last measured.
    pub fn lag(&self) -> Duration {
        Duration::from_micros(self.lag_us.load(Ordering::Relaxed))
    }

    /// Measures the runtime's lag until `shutdown`.
    pub async fn probe(&self, shutdown: CancellationToken) {
        loop {
            let asked = tokio::time::Instant::now() + PROBE_EVERY;
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep_until(asked) => {}
            }
            let late = tokio::time::Instant::now().saturating_duration_since(asked);
            self.lag_us.store(late.as_micros().min(u64::MAX as u128) as u64, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_past_the_cap_or_under_lag_are_shed_and_a_finished_read_frees_its_place() {
        let load = Load::default();
        let held: Vec<_> = (0..MAX_READS).map(|_| load.read().expect("room")).collect();
        assert!(load.read().is_none(), "one past the cap is shed");
        drop(held);
        assert!(load.read().is_some());
        load.lag_us.store(BUSY_LAG.as_micros() as u64 + 1, Ordering::Relaxed);
        assert!(load.read().is_none(), "a lagging runtime sheds reads");
    }
}
