//! Telling peers the heartbeat pace ([`super::pace`] decides it): at registration while the
//! tracker paces, and to every peer, at a bounded rate, when it changes.

use std::sync::MutexGuard;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::{Tracker, pace, rendezvous};

/// Pace pushes sent a second when the pace changes: 100,000 peers hear within a minute, and
/// the pushes never crowd out the heartbeats they are about.
const PACE_PUSHES_PER_SECOND: u32 = 2_000;

impl Tracker {
    /// The pace, locked; held only for a few plain calls.
    pub(super) fn pace(&self) -> MutexGuard<'_, pace::Pace> {
        self.inner.pace.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The heartbeat interval asked of peers now, and the silence after which one expires.
    pub fn heartbeat_pace(&self) -> (Duration, Duration) {
        let pace = self.pace();
        (pace.current(), pace.expiry(self.inner.peer_timeout, Instant::now()))
    }

    /// The pace push as it is now.
    fn pace_push(&self) -> crate::protocol::TrackerPush {
        let (interval, expiry) = self.heartbeat_pace();
        let ms = |d: Duration| u32::try_from(d.as_millis()).unwrap_or(u32::MAX);
        crate::protocol::TrackerPush::Pace { heartbeat_ms: ms(interval), expiry_ms: ms(expiry) }
    }

    /// Tells a newly registered peer the pace, if the tracker is pacing.
    pub(super) fn tell_pace(&self, conn: &quinn::Connection) {
        if self.pace().pacing() {
            let (conn, push) = (conn.clone(), self.pace_push());
            tokio::spawn(async move { rendezvous::send_push(&conn, &push).await });
        }
    }

    /// Tells every registered peer the new pace, [`PACE_PUSHES_PER_SECOND`] at most. A round
    /// started by a later change ends this one, and each push says the pace as it is when
    /// sent, so a peer never hears an old pace after a new one.
    pub(super) async fn push_pace_to_all(self) {
        let rounds = &self.inner.pace_rounds;
        let round = rounds.fetch_add(1, Ordering::Relaxed) + 1;
        let mut tick = tokio::time::interval(Duration::from_secs(1) / PACE_PUSHES_PER_SECOND);
        for conn in self.inner.links.connections() {
            tick.tick().await;
            if rounds.load(Ordering::Relaxed) != round {
                return;
            }
            let push = self.pace_push();
            tokio::spawn(async move { tokio::time::timeout(Duration::from_secs(5), rendezvous::send_push(&conn, &push)).await });
        }
    }
}
