//! Introductions for hole punching: the tracker keeps each registered session's connection,
//! and when a downloader cannot reach a holder directly it tells both, at once, each other's
//! observed address and when to start sending.
//!
//! Each side's NAT lets in only packets from where its own side has sent to. So the holder
//! sends towards the downloader's observed address (opening its NAT for the downloader), and
//! the downloader connects to the holder's observed address a moment later (its first packet
//! opens its own NAT for the holder's answer, and finds the holder's NAT open). The tracker
//! times the two from its measured round trip to each side: both messages leave together,
//! each is told to wait so that both start when the slower one has arrived, and the
//! downloader a little later still (a first packet that reaches the holder's NAT before the
//! holder's own packet has left it is dropped, and only quinn's resend would get through).
//!
//! A holder is never made to send towards an address a downloader merely claims: only live
//! registered peers are introduced, at their observed addresses, and each holder at most
//! [`INTRODUCTIONS_PER_SECOND`] times a second ([`INTRODUCTION_BURST`] at once); each
//! downloader may ask [`ASKS_PER_SECOND`] a second.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use quinn::Connection;

use super::Tracker;
use crate::net::limits::RateLimit;
use crate::protocol::{self, Fingerprint, PROTOCOL_VERSION, TrackerPush, TrackerResponse};

/// Introductions a holder gets per second: a flash crowd of downloaders behind NATs fits the
/// burst; a downloader trying to make it spray packets does not get far.
const INTRODUCTIONS_PER_SECOND: u32 = 10;
/// Introductions a holder may get at once after a quiet spell.
const INTRODUCTION_BURST: u32 = 20;
/// Introductions one downloader may ask for per second (many holders at the start of a get).
const ASKS_PER_SECOND: u32 = 20;
/// Introductions one downloader may ask for at once.
const ASK_BURST: u32 = 50;
/// Margin added to the slower side's one-way time, for the time it takes to act on a message.
const START_MARGIN: Duration = Duration::from_millis(5);
/// How much later than the holder the downloader starts, so its first packet finds the
/// holder's NAT already open.
const DOWNLOADER_LAG: Duration = Duration::from_millis(10);
/// How long pushing the introduction to the holder may take.
const PUSH_TIMEOUT: Duration = Duration::from_secs(1);

/// When each side should start, from now: the holder's wait and the downloader's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    /// How long the holder waits after receiving the push.
    pub holder: Duration,
    /// How long the downloader waits after receiving the answer.
    pub downloader: Duration,
}

/// Both messages leave now; each arrives after about half its side's round trip. Both sides
/// start once the slower one has heard (plus a margin), the downloader [`DOWNLOADER_LAG`] later.
pub fn plan(holder_rtt: Duration, downloader_rtt: Duration) -> Plan {
    let (holder_way, downloader_way) = (holder_rtt / 2, downloader_rtt / 2);
    let start = holder_way.max(downloader_way) + START_MARGIN;
    Plan { holder: start - holder_way, downloader: start - downloader_way + DOWNLOADER_LAG }
}

/// One registered session, as introductions need it.
struct Entry {
    session: u64,
    conn: Connection,
    fingerprint: Fingerprint,
    /// Introductions of this peer as a holder.
    introduced: RateLimit,
    /// Introductions this peer asked for.
    asks: RateLimit,
}

/// Each live session's connection, by peer id.
#[derive(Default)]
pub struct Links {
    entries: Mutex<HashMap<Arc<str>, Entry>>,
}

impl Links {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Arc<str>, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records the connection of `peer`'s session `session` (after it registered).
    pub fn insert(&self, peer: &Arc<str>, session: u64, conn: Connection, fingerprint: Fingerprint) {
        let now = Instant::now();
        let introduced = RateLimit::new(INTRODUCTIONS_PER_SECOND, INTRODUCTION_BURST, now);
        let asks = RateLimit::new(ASKS_PER_SECOND, ASK_BURST, now);
        self.lock().insert(peer.clone(), Entry { session, conn, fingerprint, introduced, asks });
    }

    /// Closes the connection `peer` registered on, if it still has one: the expiry sweep tells
    /// a peer it forgot at once, so the peer registers again instead of heartbeating into
    /// nothing.
    pub fn close(&self, peer: &str, code: quinn::VarInt, reason: &[u8]) {
        if let Some(entry) = self.lock().remove(peer) {
            entry.conn.close(code, reason);
        }
    }

    /// Every registered session's connection, for a push to all.
    pub fn connections(&self) -> Vec<Connection> {
        self.lock().values().map(|e| e.conn.clone()).collect()
    }

    /// Forgets `peer`'s session `session` (a newer session of the same id stays).
    pub fn remove(&self, peer: &str, session: u64) {
        let mut entries = self.lock();
        if entries.get(peer).is_some_and(|e| e.session == session) {
            entries.remove(peer);
        }
    }

    /// The asker's and the holder's connections if `asker` may ask now and `holder` may be
    /// introduced now (spending a token of each), else why not.
    fn take(&self, asker: &str, holder: &str, fingerprint: &Fingerprint) -> Result<(Connection, Connection), String> {
        let now = Instant::now();
        let mut entries = self.lock();
        let asker_conn = {
            let entry = entries.get_mut(asker).ok_or("not registered")?;
            if !entry.asks.wait(now).is_zero() {
                return Err("too many introductions asked for; try again shortly".into());
            }
            entry.conn.clone()
        };
        let entry = entries.get_mut(holder).ok_or_else(|| format!("peer {holder} is not registered here"))?;
        if entry.fingerprint != *fingerprint {
            return Err(format!("peer {holder} is registered with another certificate"));
        }
        if !entry.introduced.wait(now).is_zero() {
            return Err(format!("peer {holder} is being introduced too often; try again shortly"));
        }
        entry.introduced.take(now);
        let holder_conn = entry.conn.clone();
        if let Some(entry) = entries.get_mut(asker) {
            entry.asks.take(now);
        }
        Ok((asker_conn, holder_conn))
    }
}

/// Introduces `asker` to `holder`: pushes the asker's observed address to the holder and
/// answers with the holder's, each with when to start.
pub async fn introduce(tracker: &Tracker, asker: &str, holder: &str, fingerprint: &Fingerprint) -> TrackerResponse {
    let live = tracker.registry().peer_with(fingerprint).is_some_and(|p| p == holder);
    if !live {
        return TrackerResponse::Error(format!("peer {holder} is not a live peer here"));
    }
    let (asker_conn, holder_conn) = match tracker.inner.links.take(asker, holder, fingerprint) {
        Ok(conns) => conns,
        Err(reason) => return TrackerResponse::Error(reason),
    };
    tracker.registry().introduced(holder);
    let plan = plan(holder_conn.rtt(), asker_conn.rtt());
    let push = punch_for(tracker, asker, holder, crate::net::addrs::canonical(asker_conn.remote_address()), millis(plan.holder));
    if let Err(err) = tokio::time::timeout(PUSH_TIMEOUT, send_push(&holder_conn, &push)).await.unwrap_or_else(|_| Err("timed out".into())) {
        return TrackerResponse::Error(format!("cannot reach peer {holder} to introduce you: {err}"));
    }
    tracing::debug!(asker, holder, ?plan, "introduced");
    TrackerResponse::Introduced { addr: crate::net::addrs::canonical(holder_conn.remote_address()), start_in_ms: millis(plan.downloader) }
}

/// What the holder is told: `PunchAll` with the asker's global IPv6 addresses after its
/// observed one `addr`, when the holder reads it and the asker told some; else `Punch`.
fn punch_for(tracker: &Tracker, asker: &str, holder: &str, addr: SocketAddr, start_in_ms: u32) -> TrackerPush {
    let (reads, mut addrs) = {
        let registry = tracker.registry();
        (registry.reads_addresses(holder), registry.further(asker))
    };
    addrs.retain(|a| crate::net::addrs::scope(a.ip()) == crate::net::addrs::Scope::Global6);
    let (version, peer_id) = (PROTOCOL_VERSION, asker.to_string());
    if !reads || addrs.is_empty() {
        return TrackerPush::Punch { version, peer_id, addr, start_in_ms };
    }
    addrs.insert(0, addr);
    TrackerPush::PunchAll { version, peer_id, addrs, start_in_ms }
}

fn millis(wait: Duration) -> u32 {
    u32::try_from(wait.as_millis()).unwrap_or(u32::MAX).min(protocol::MAX_START_IN_MS)
}

/// One push on a unidirectional stream of its own.
pub(super) async fn send_push(conn: &Connection, push: &TrackerPush) -> Result<(), String> {
    let mut stream = conn.open_uni().await.map_err(|e| e.to_string())?;
    protocol::write_frame(&mut stream, push).await.map_err(|e| e.to_string())?;
    stream.finish().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_sides_start_when_the_slower_has_heard_and_the_downloader_just_after() {
        let ms = Duration::from_millis;
        let p = plan(ms(80), ms(20));
        // Holder hears at 40 ms, downloader at 10 ms: both start at 45 ms, the downloader 10 ms later.
        assert_eq!(p, Plan { holder: ms(5), downloader: ms(45) });
        let p = plan(ms(0), ms(0));
        assert_eq!(p, Plan { holder: START_MARGIN, downloader: START_MARGIN + DOWNLOADER_LAG });
        assert_eq!(millis(Duration::from_secs(3600)), protocol::MAX_START_IN_MS, "never parks a peer");
    }
}
