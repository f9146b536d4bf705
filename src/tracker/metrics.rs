//! What the tracker has done since it started, counted as it goes: requests by kind, the
//! ones refused, peers registered, turned away and expired. Plain atomics bumped on the
//! request path (no lock, no allocation); the dashboard and `/metrics` read a [`Snapshot`].

use std::sync::atomic::{AtomicU64, Ordering};

use crate::protocol::TrackerRequest;

/// The request kinds counted, in the order [`Snapshot::requests`] lists them.
pub const KINDS: [&str; 14] = [
    "register",
    "alive",
    "share",
    "lookup",
    "files",
    "exit",
    "verify",
    "unshare",
    "contact",
    "holders",
    "share_many",
    "files_page",
    "introduce",
    "mapped",
];

/// Counters of one running tracker.
#[derive(Default)]
pub struct Metrics {
    requests: [AtomicU64; KINDS.len()],
    errors: AtomicU64,
    registered: AtomicU64,
    turned_away: AtomicU64,
    expired: AtomicU64,
}

/// The counters at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Snapshot {
    /// Requests answered, by kind ([`KINDS`]).
    pub requests: Vec<(&'static str, u64)>,
    /// Requests answered with an error.
    pub errors: u64,
    /// Registrations accepted.
    pub registered: u64,
    /// Registrations refused (a limit, an id taken, a version).
    pub turned_away: u64,
    /// Peers dropped for going silent.
    pub expired: u64,
}

impl Metrics {
    /// Counts one request of `request`'s kind.
    pub fn request(&self, request: &TrackerRequest) {
        self.requests[kind(request)].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one request answered with an error.
    pub fn error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one registration (a `register` request), accepted or refused.
    pub fn registration(&self, accepted: bool) {
        self.requests[0].fetch_add(1, Ordering::Relaxed);
        let counter = if accepted { &self.registered } else { &self.turned_away };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts `peers` dropped for silence.
    pub fn expired(&self, peers: usize) {
        self.expired.fetch_add(peers as u64, Ordering::Relaxed);
    }

    /// The counters now.
    pub fn snapshot(&self) -> Snapshot {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Snapshot {
            requests: KINDS.iter().zip(&self.requests).map(|(name, c)| (*name, load(c))).collect(),
            errors: load(&self.errors),
            registered: load(&self.registered),
            turned_away: load(&self.turned_away),
            expired: load(&self.expired),
        }
    }
}

/// The index in [`KINDS`] of `request`'s kind.
fn kind(request: &TrackerRequest) -> usize {
    let name = match request {
        TrackerRequest::Register { .. } => "register",
        TrackerRequest::Alive => "alive",
        TrackerRequest::Share(_) => "share",
        TrackerRequest::Lookup { .. } => "lookup",
        TrackerRequest::Files => "files",
        TrackerRequest::Exit => "exit",
        TrackerRequest::Verify { .. } => "verify",
        TrackerRequest::Unshare(_) => "unshare",
        TrackerRequest::Contact => "contact",
        TrackerRequest::Holders(_) => "holders",
        TrackerRequest::ShareMany(_) => "share_many",
        TrackerRequest::FilesPage { .. } => "files_page",
        TrackerRequest::Introduce { .. } => "introduce",
        TrackerRequest::Mapped { .. } => "mapped",
    };
    KINDS.iter().position(|k| *k == name).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_request_is_counted_under_its_kind() {
        let metrics = Metrics::default();
        metrics.request(&TrackerRequest::Alive);
        metrics.request(&TrackerRequest::Alive);
        metrics.request(&TrackerRequest::Lookup { query: "x".into() });
        metrics.registration(true);
        metrics.registration(false);
        metrics.expired(3);
        let snap = metrics.snapshot();
        let count = |name| snap.requests.iter().find(|(k, _)| *k == name).map(|(_, n)| *n);
        assert_eq!((count("alive"), count("lookup"), count("files")), (Some(2), Some(1), Some(0)));
        assert_eq!((snap.registered, snap.turned_away, snap.expired), (1, 1, 3));
    }
}
