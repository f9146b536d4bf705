//! Who may download from this peer, and how much each may hold of it.
//!
//! A downloader's identity is the certificate it proved in the TLS handshake. The [`Gate`] asks
//! its [`Admission`] whether that certificate may be served, then caps the connections and
//! chunk sends of each admitted peer. The first admission is [`TrackerAdmission`]: only live
//! peers registered with our tracker. Before serving a new connection the holder asks the
//! tracker (`Verify { fingerprint }`) whether that certificate
//! belongs to a live peer; verdicts are cached briefly ([`KNOWN_TTL`], [`UNKNOWN_TTL`]) so a
//! download costs at most one extra round trip to the tracker, usually none. When the tracker
//! cannot be asked, a peer verified within [`STALE_OK`] is still served (downloads survive a
//! tracker restart); anyone else is refused. Each verified peer may hold at most
//! [`MAX_CONNECTIONS_PER_PEER`] connections to us, and all of them share [`SENDS_PER_PEER`]
//! chunk sends at once, so what one peer pins in memory does not grow with its connections.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use quinn::Connection;
use tokio::sync::Semaphore;

use crate::discovery::tracker::TrackerLink;
use crate::net::limits::{Quota, Slot};
use crate::net::tls::remote_fingerprint;
use crate::protocol::{Fingerprint, TrackerRequest, TrackerResponse, close};
use crate::store::public::Public;

/// How long a "live peer" answer is trusted without asking again.
const KNOWN_TTL: Duration = Duration::from_secs(30);
/// How long an "unknown" answer is trusted: short, a peer may register a moment later.
const UNKNOWN_TTL: Duration = Duration::from_secs(1);
/// How old a "live peer" answer may be and still admit the peer while the tracker is away.
const STALE_OK: Duration = Duration::from_secs(600);
/// Verdicts kept at most; past it the oldest half is dropped (a flood of fresh certificates
/// cannot grow the cache).
const MAX_CACHED: usize = 4096;
/// Connections one verified peer may hold to us: one per download it runs at once, and then some.
/// With the server send window this bounds what one peer makes us buffer to about 16 MiB.
pub const MAX_CONNECTIONS_PER_PEER: usize = 4;
/// Chunks read and being sent at once to one peer (the protocol's promise, see
/// [`crate::protocol::SENDS_PER_PEER`]).
pub use crate::protocol::SENDS_PER_PEER;

/// The tracker's last word on one certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Said {
    live: bool,
    at: Instant,
}

/// Cached verdicts, by fingerprint: plain data, no I/O.
#[derive(Default)]
struct Verdicts {
    by_fp: HashMap<Fingerprint, Said>,
}

impl Verdicts {
    /// A verdict still fresh at `now`.
    fn fresh(&self, fp: &Fingerprint, now: Instant) -> Option<bool> {
        let v = self.by_fp.get(fp)?;
        let ttl = if v.live { KNOWN_TTL } else { UNKNOWN_TTL };
        (now.saturating_duration_since(v.at) < ttl).then_some(v.live)
    }

    /// Whether a recent enough "live" verdict admits `fp` while the tracker cannot be asked.
    fn stale_live(&self, fp: &Fingerprint, now: Instant) -> bool {
        self.by_fp.get(fp).is_some_and(|v| v.live && now.saturating_duration_since(v.at) < STALE_OK)
    }

    fn put(&mut self, fp: Fingerprint, live: bool, now: Instant) {
        if self.by_fp.len() >= MAX_CACHED && !self.by_fp.contains_key(&fp) {
            let mut ages: Vec<Instant> = self.by_fp.values().map(|v| v.at).collect();
            ages.sort_unstable();
            let cut = ages[ages.len() / 2];
            self.by_fp.retain(|_, v| v.at > cut);
        }
        self.by_fp.insert(fp, Said { live, at: now });
    }
}

/// A future an [`Admission`] returns: `Err` carries the reason the peer is told.
pub type Verdict<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), &'static str>> + Send + 'a>>;

/// Who may download from this peer, by certificate fingerprint: the tracker decides
/// ([`TrackerAdmission`]); the [`Gate`] lets anyone else fetch public files.
pub trait Admission: Send + Sync {
    /// Whether the peer whose certificate has fingerprint `fp` may be served.
    fn admits(&self, fp: Fingerprint) -> Verdict<'_>;
}

/// Admits only live peers registered with one of our trackers, asking them with `Verify` (in
/// order, until one knows the peer) and caching their verdicts.
pub struct TrackerAdmission {
    links: Vec<Arc<TrackerLink>>,
    verdicts: Mutex<Verdicts>,
}

impl TrackerAdmission {
    /// Asks the trackers over `links`.
    pub fn new(links: Vec<Arc<TrackerLink>>) -> TrackerAdmission {
        TrackerAdmission { links, verdicts: Mutex::default() }
    }

    /// What the trackers say of `fp`: `Some(true)` if one knows it live, `Some(false)` if
    /// one answered and none knows it, `None` if none could be asked.
    async fn ask(&self, fp: Fingerprint) -> Option<bool> {
        let mut answered = false;
        for link in &self.links {
            match link.request(&TrackerRequest::Verify { fingerprint: fp }).await {
                Ok(TrackerResponse::Verified { peer_id: Some(_) }) => return Some(true),
                Ok(TrackerResponse::Verified { peer_id: None }) => answered = true,
                _ => {}
            }
        }
        answered.then_some(false)
    }

    fn verdicts(&self) -> std::sync::MutexGuard<'_, Verdicts> {
        self.verdicts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `fp` is a live peer, from the cache or the tracker.
    async fn check(&self, fp: Fingerprint) -> Result<(), &'static str> {
        const UNKNOWN: &str = "not a peer registered with the tracker";
        if let Some(live) = self.verdicts().fresh(&fp, Instant::now()) {
            return if live { Ok(()) } else { Err(UNKNOWN) };
        }
        match self.ask(fp).await {
            Some(live) => {
                self.verdicts().put(fp, live, Instant::now());
                if live { Ok(()) } else { Err(UNKNOWN) }
            }
            None if self.verdicts().stale_live(&fp, Instant::now()) => Ok(()),
            None => Err("cannot check this peer with the tracker now; try again later"),
        }
    }
}

impl Admission for TrackerAdmission {
    fn admits(&self, fp: Fingerprint) -> Verdict<'_> {
        Box::pin(self.check(fp))
    }
}

/// Admits downloaders: those its [`Admission`] accepts, a few connections each; and, while
/// this peer shares anything publicly, anyone else too, to fetch public files only.
pub struct Gate {
    admission: Arc<dyn Admission>,
    public: Public,
    per_peer: Quota<Fingerprint>,
    sends: Mutex<HashMap<Fingerprint, Weak<Semaphore>>>,
}

/// A connection admitted by the [`Gate`]; its slot is given back when this drops.
pub struct Admitted {
    _slot: Slot<Fingerprint>,
    /// Chunk sends this peer may have in flight, shared by all its connections.
    pub sends: Arc<Semaphore>,
    /// Set when the admission refused the peer and it may fetch only these public files.
    pub public_only: Option<Public>,
}

impl Gate {
    /// A gate that asks `admission` who may be served, and serves `public` files to anyone.
    pub fn new(admission: Arc<dyn Admission>, public: Public) -> Gate {
        Gate { admission, public, per_peer: Quota::new(MAX_CONNECTIONS_PER_PEER), sends: Mutex::default() }
    }

    /// The admission's verdict on `fp`, or public files only when it refuses and there are any.
    async fn scope(&self, fp: Fingerprint) -> Result<Option<Public>, &'static str> {
        match self.admission.admits(fp).await {
            Ok(()) => Ok(None),
            Err(reason) if !self.public.any() => Err(reason),
            Err(reason) => {
                tracing::debug!("{reason}: public files only");
                Ok(Some(self.public.clone()))
            }
        }
    }

    /// The send budget of peer `fp`, shared while any of its connections lives.
    fn sends_of(&self, fp: Fingerprint) -> Arc<Semaphore> {
        let mut all = self.sends.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(sends) = all.get(&fp).and_then(Weak::upgrade) {
            return sends;
        }
        all.retain(|_, weak| weak.strong_count() > 0);
        let sends = Arc::new(Semaphore::new(SENDS_PER_PEER));
        all.insert(fp, Arc::downgrade(&sends));
        sends
    }

    /// Admits `conn`, or closes it with the reason and returns `None`.
    pub async fn admit(&self, conn: &Connection) -> Option<Admitted> {
        let verdict = match remote_fingerprint(conn) {
            Ok(fp) => self.scope(fp).await.and_then(|public_only| {
                let slot = self.per_peer.take(fp).ok_or("too many connections from this peer")?;
                Ok(Admitted { _slot: slot, sends: self.sends_of(fp), public_only })
            }),
            Err(_) => Err("no certificate"),
        };
        match verdict {
            Ok(admitted) => Some(admitted),
            Err(reason) => {
                tracing::debug!(addr = %crate::net::addrs::canonical(conn.remote_address()), "downloader refused: {reason}");
                conn.close(close::REFUSED, reason.as_bytes());
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Digest;

    #[test]
    fn verdicts_expire_and_stale_ones_admit_only_live_peers() {
        let (t, mut v) = (Instant::now(), Verdicts::default());
        v.put(Digest([1; 32]), true, t);
        v.put(Digest([2; 32]), false, t);
        assert_eq!(v.fresh(&Digest([1; 32]), t + Duration::from_secs(5)), Some(true));
        assert_eq!(v.fresh(&Digest([2; 32]), t + Duration::from_secs(5)), None);
        assert_eq!(v.fresh(&Digest([1; 32]), t + KNOWN_TTL), None);
        assert!(v.stale_live(&Digest([1; 32]), t + KNOWN_TTL));
        assert!(!v.stale_live(&Digest([2; 32]), t));
        assert!(!v.stale_live(&Digest([1; 32]), t + STALE_OK));
    }

    #[test]
    fn the_cache_stays_bounded() {
        let (t, mut v) = (Instant::now(), Verdicts::default());
        for n in 0..(MAX_CACHED as u32 * 3) {
            let mut fp = [0u8; 32];
            fp[..4].copy_from_slice(&n.to_be_bytes());
            v.put(Digest(fp), false, t + Duration::from_millis(n.into()));
        }
        assert!(v.by_fp.len() <= MAX_CACHED);
    }
}
