//! The heartbeat pace a busy tracker asks for, and the expiry that goes with it: plain state,
//! no I/O (the tracker pushes [`crate::protocol::TrackerPush::Pace`] when it changes).
//!
//! Every heartbeat costs the tracker a packet in and an acknowledgement out. With peers at
//! the default 5 s, 100,000 peers make 20,000 a second; past [`HEARTBEATS_PER_SECOND`] the
//! tracker asks for a longer interval instead, as a BitTorrent tracker lengthens its announce
//! interval, in steps that double (10 s, 20 s, then the peers' cap of 25 s), and expires a
//! peer after as many intervals of silence as it would at the default. It comes back down
//! when the swarm shrinks well below a step (hysteresis, so a swarm at the edge does not
//! flap), and keeps the longer expiry until every peer can have heard of the shorter pace.

use std::time::{Duration, Instant};

use crate::protocol::MAX_HEARTBEAT_MS;

/// The interval peers heartbeat at unless told otherwise (the peer CLI's default).
pub const BASE: Duration = Duration::from_secs(5);
/// Heartbeats a second the tracker is willing to take before asking for a slower pace: one
/// costs it about 60 µs of CPU with everything around it (benches/tracker_load.rs, 20,000
/// peers: 28% of a core for 4,040 a second, with lookups and joins), so this is a third of
/// a core.
pub const HEARTBEATS_PER_SECOND: usize = 5_000;
/// How far below a step's threshold the swarm must fall before the pace comes back down.
const DOWN_MARGIN: f64 = 0.75;

/// The pace asked for now, and the longest expiry still owed to peers told an earlier one.
#[derive(Debug)]
pub struct Pace {
    /// Heartbeats a second taken before slowing peers down.
    budget: usize,
    /// The interval asked for now ([`BASE`] when not pacing).
    current: Duration,
    /// An expiry kept until the instant given, after a slower pace was lowered.
    owed: Option<(Duration, Instant)>,
}

impl Pace {
    /// Not pacing yet; slows peers down past `budget` heartbeats a second.
    pub fn new(budget: usize) -> Pace {
        Pace { budget: budget.max(1), current: BASE, owed: None }
    }

    /// The interval asked for now.
    pub fn current(&self) -> Duration {
        self.current
    }

    /// Whether peers are asked for anything but their own interval.
    pub fn pacing(&self) -> bool {
        self.current > BASE
    }

    /// Takes the live peer count at `now`; returns the new interval when it changes, for the
    /// tracker to push. `timeout` is the configured expiry at the base pace.
    pub fn update(&mut self, peers: usize, timeout: Duration, now: Instant) -> Option<Duration> {
        let up = step_for(peers as f64, self.budget);
        let down = step_for(peers as f64 / DOWN_MARGIN, self.budget);
        let next = if up > self.current {
            up
        } else if down < self.current {
            down
        } else {
            return None;
        };
        if next < self.current {
            // Peers still at the old pace until they hear: keep its expiry for one more expiry.
            let old = self.expiry(timeout, now);
            self.owed = Some((old, now + old));
        }
        self.current = next;
        Some(next)
    }

    /// The silence after which a peer is expired at `now`: `timeout` scaled by the pace (and
    /// at least three intervals while pacing), never less than what is still owed after a
    /// slower one.
    pub fn expiry(&self, timeout: Duration, now: Instant) -> Duration {
        let mut scaled = timeout.mul_f64(self.current.as_secs_f64() / BASE.as_secs_f64());
        if self.pacing() {
            scaled = scaled.max(self.current * 3);
        }
        match self.owed {
            Some((owed, until)) if now < until => scaled.max(owed),
            _ => scaled,
        }
    }
}

/// The interval for `peers`: the base, doubled until their heartbeats fit `budget`, capped
/// at what peers accept.
fn step_for(peers: f64, budget: usize) -> Duration {
    let cap = Duration::from_millis(MAX_HEARTBEAT_MS.into());
    let mut step = BASE;
    while peers / step.as_secs_f64() > budget as f64 && step < cap {
        step = (step * 2).min(cap);
    }
    step
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(15);

    #[test]
    fn a_small_swarm_keeps_the_base_pace_and_a_big_one_slows_in_steps() {
        let budget = HEARTBEATS_PER_SECOND;
        assert_eq!(step_for(1_000.0, budget), BASE);
        assert_eq!(step_for(25_000.0, budget), BASE);
        assert_eq!(step_for(40_000.0, budget), Duration::from_secs(10));
        assert_eq!(step_for(100_000.0, budget), Duration::from_secs(20));
        assert_eq!(step_for(1_000_000.0, budget), Duration::from_secs(25), "never past what peers accept");
    }

    #[test]
    fn the_pace_rises_at_once_falls_with_a_margin_and_expiry_follows() {
        let t = Instant::now();
        let mut pace = Pace::new(HEARTBEATS_PER_SECOND);
        assert_eq!(pace.update(20_000, TIMEOUT, t), None);
        assert_eq!(pace.expiry(TIMEOUT, t), TIMEOUT);
        assert_eq!(pace.update(60_000, TIMEOUT, t), Some(Duration::from_secs(20)));
        assert_eq!(pace.expiry(TIMEOUT, t), Duration::from_secs(60), "as many intervals as at the base pace");
        assert_eq!(pace.update(45_000, TIMEOUT, t), None, "just under a step: no flapping");
        assert_eq!(pace.update(30_000, TIMEOUT, t), Some(Duration::from_secs(10)));
        assert_eq!(pace.expiry(TIMEOUT, t), Duration::from_secs(60), "peers told 20 s keep their expiry a while");
        assert_eq!(pace.expiry(TIMEOUT, t + Duration::from_secs(61)), Duration::from_secs(30));
        let mut tight = Pace::new(1);
        assert_eq!(tight.update(6, Duration::from_secs(1), t), Some(Duration::from_secs(10)));
        assert_eq!(tight.expiry(Duration::from_secs(1), t), Duration::from_secs(30), "at least three intervals");
    }
}
