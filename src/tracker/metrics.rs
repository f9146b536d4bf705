//! What the tracker has done since it started, counted as it goes: requests by kind and how
//! long each took to answer, registrations refused by reason, peers registered, turned away and
//! expired. Plain atomics bumped on the request path (no lock, no allocation); the dashboard
//! reads a [`Snapshot`], and `/metrics` the same counters as Prometheus text ([`Metrics::write_prometheus`]).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::registry::RegistryError;
use crate::protocol::TrackerRequest;

/// The request kinds counted, in the order [`Snapshot::requests`] lists them.
pub const KINDS: [&str; 17] = [
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
    "punched",
    "addresses",
    "progress",
];

/// Why registrations are refused, as `/metrics` labels them, in the order of [`Refusal`].
pub const REASONS: [&str; 8] = ["full", "per_ip", "per_cert", "id_taken", "version", "bad_id", "bad_registration", "other"];

/// Upper bounds of the latency buckets, in microseconds, about ×2.5 apart: a heartbeat is
/// answered in well under a millisecond when all is well, a lookup past 10 ms misses the
/// tracker's target, and one past a second is an outage (it lands in `+Inf`).
pub const LATENCY_BUCKETS_US: [u64; 13] =
    [100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000];

/// Why a registration was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The tracker holds as many peers as it may.
    Full,
    /// The peer's IP address holds as many peers as it may.
    PerIp,
    /// The certificate holds as many peer ids as it may.
    PerCert,
    /// The id is a live peer's, with another certificate.
    IdTaken,
    /// A protocol version this tracker does not speak.
    Version,
    /// A peer id that is not usable (empty, too long, unprintable).
    BadId,
    /// No `Register` frame first, or one that does not decode.
    BadRegistration,
    /// Any other reason the registry gave.
    Other,
}

impl Refusal {
    /// The reason behind a registry's refusal of a registration.
    pub fn of(err: &RegistryError) -> Refusal {
        match err {
            RegistryError::PeersFull(_) => Refusal::Full,
            RegistryError::AddressFull(..) => Refusal::PerIp,
            RegistryError::TooManyIds(_) => Refusal::PerCert,
            RegistryError::Taken(_) => Refusal::IdTaken,
            RegistryError::NotRegistered
            | RegistryError::TooManyFiles
            | RegistryError::Full
            | RegistryError::MappedElsewhere(..)
            | RegistryError::BadAddresses(_)
            | RegistryError::BadProgress(_)
            | RegistryError::SizeMismatch(_) => Refusal::Other,
        }
    }
}

/// Counters of one running tracker.
#[derive(Default)]
pub struct Metrics {
    requests: [AtomicU64; KINDS.len()],
    latency: [Histogram; KINDS.len()],
    refusals: [AtomicU64; REASONS.len()],
    errors: AtomicU64,
    registered: AtomicU64,
    turned_away: AtomicU64,
    expired: AtomicU64,
    shed: AtomicU64,
}

/// The counters at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Snapshot {
    /// Requests answered, by kind ([`KINDS`]).
    pub requests: Vec<(&'static str, u64)>,
    /// Mean time to answer, in microseconds, by kind ([`KINDS`]; 0 before the first).
    pub latency_mean_us: Vec<(&'static str, u64)>,
    /// Registrations refused, by reason ([`REASONS`]).
    pub refusals: Vec<(&'static str, u64)>,
    /// Requests answered with an error.
    pub errors: u64,
    /// Registrations accepted.
    pub registered: u64,
    /// Connections that did not register: refused (a limit, an id taken, a version), or silent.
    pub turned_away: u64,
    /// Peers dropped for going silent.
    pub expired: u64,
    /// Lookups and listings answered "busy, retry" because the tracker was busy.
    pub shed: u64,
}

/// One request being timed: from when its frame was read to when its answer was written, so
/// a slow sender's upload is not counted as the tracker's time.
#[must_use = "hand it to Metrics::answered once the answer is written"]
pub struct Timer {
    kind: Option<usize>,
    started: Instant,
}

impl Timer {
    /// Starts timing the request just read (`read`: the outcome of reading its frame, with a
    /// timeout); one that could not be read is not timed.
    pub fn start<E, F>(read: &Result<Result<TrackerRequest, E>, F>) -> Timer {
        let kind = match read {
            Ok(Ok(request)) => Some(kind(request)),
            _ => None,
        };
        Timer { kind, started: Instant::now() }
    }

    /// Starts timing `request`, read by other means (a heartbeat datagram, a registration).
    pub fn of(request: &TrackerRequest) -> Timer {
        Timer { kind: Some(kind(request)), started: Instant::now() }
    }
}

impl Metrics {
    /// Counts one request of `request`'s kind.
    pub fn request(&self, request: &TrackerRequest) {
        self.requests[kind(request)].fetch_add(1, Ordering::Relaxed);
    }

    /// Records how long a request took to answer, under its kind.
    pub fn answered(&self, timer: Timer) {
        if let Some(kind) = timer.kind {
            self.latency[kind].observe(timer.started.elapsed());
        }
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

    /// Counts one registration refused for `reason` (it is also turned away: [`Metrics::registration`]).
    pub fn refused(&self, reason: Refusal) {
        self.refusals[reason as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a refusal for a bad registration unless a connection's first request (`read`)
    /// is a `Register` that decoded.
    pub fn first_request<E>(&self, read: &Result<TrackerRequest, E>) {
        if !matches!(read, Ok(TrackerRequest::Register { .. })) {
            self.refused(Refusal::BadRegistration);
        }
    }

    /// Counts a read shed because the tracker was busy.
    pub fn shed(&self) {
        self.shed.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts `peers` dropped for silence.
    pub fn expired(&self, peers: usize) {
        self.expired.fetch_add(peers as u64, Ordering::Relaxed);
    }

    /// The counters now.
    pub fn snapshot(&self) -> Snapshot {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mean = |h: &Histogram| h.read().mean_us();
        Snapshot {
            requests: KINDS.iter().zip(&self.requests).map(|(name, c)| (*name, load(c))).collect(),
            latency_mean_us: KINDS.iter().zip(&self.latency).map(|(name, h)| (*name, mean(h))).collect(),
            refusals: REASONS.iter().zip(&self.refusals).map(|(name, c)| (*name, load(c))).collect(),
            errors: load(&self.errors),
            registered: load(&self.registered),
            turned_away: load(&self.turned_away),
            expired: load(&self.expired),
            shed: load(&self.shed),
        }
    }

    /// Appends the labelled counters and the latency histograms in Prometheus' text format.
    pub fn write_prometheus(&self, out: &mut String) {
        let snap = self.snapshot();
        family(out, "p2pq_tracker_requests_total", "Requests answered, by kind.", "counter");
        for (kind, n) in &snap.requests {
            let _ = writeln!(out, "p2pq_tracker_requests_total{{kind=\"{kind}\"}} {n}");
        }
        family(out, "p2pq_tracker_refusals_total", "Registrations refused, by reason.", "counter");
        for (reason, n) in &snap.refusals {
            let _ = writeln!(out, "p2pq_tracker_refusals_total{{reason=\"{reason}\"}} {n}");
        }
        let name = "p2pq_tracker_request_duration_seconds";
        family(out, name, "Time from a request read to its answer written, by kind.", "histogram");
        for (kind, histogram) in KINDS.iter().zip(&self.latency) {
            histogram.read().write(out, name, kind);
        }
    }
}

/// The `# HELP` and `# TYPE` lines of one metric family.
pub fn family(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// Request latencies of one kind: a count per bucket (not cumulative: each observation bumps
/// one counter) and the sum, lock-free.
#[derive(Default)]
struct Histogram {
    /// One per bound of [`LATENCY_BUCKETS_US`], then one for longer.
    buckets: [AtomicU64; LATENCY_BUCKETS_US.len() + 1],
    sum_ns: AtomicU64,
}

/// A histogram at one moment.
struct HistogramRead {
    /// Observations at or under each bound of [`LATENCY_BUCKETS_US`], then all of them.
    cumulative: Vec<u64>,
    sum_ns: u64,
}

impl Histogram {
    fn observe(&self, took: Duration) {
        let ns = took.as_nanos();
        let bucket = LATENCY_BUCKETS_US.partition_point(|&bound| u128::from(bound) * 1000 < ns);
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(u64::try_from(ns).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// The counts, made cumulative here, so `+Inf` always equals the count even while
    /// requests are being recorded.
    fn read(&self) -> HistogramRead {
        let cumulative = self
            .buckets
            .iter()
            .scan(0u64, |total, b| {
                *total += b.load(Ordering::Relaxed);
                Some(*total)
            })
            .collect();
        HistogramRead { cumulative, sum_ns: self.sum_ns.load(Ordering::Relaxed) }
    }
}

impl HistogramRead {
    fn count(&self) -> u64 {
        self.cumulative.last().copied().unwrap_or(0)
    }

    fn mean_us(&self) -> u64 {
        (self.sum_ns / 1000).checked_div(self.count()).unwrap_or(0)
    }

    /// The `_bucket`, `_sum` and `_count` lines of `name{kind}`.
    fn write(&self, out: &mut String, name: &str, kind: &str) {
        let bounds = LATENCY_BUCKETS_US.iter().map(|us| (*us as f64 / 1e6).to_string()).chain(["+Inf".to_string()]);
        for (le, n) in bounds.zip(&self.cumulative) {
            let _ = writeln!(out, "{name}_bucket{{kind=\"{kind}\",le=\"{le}\"}} {n}");
        }
        let _ = writeln!(out, "{name}_sum{{kind=\"{kind}\"}} {}", self.sum_ns as f64 / 1e9);
        let _ = writeln!(out, "{name}_count{{kind=\"{kind}\"}} {}", self.count());
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
        TrackerRequest::Punched { .. } => "punched",
        TrackerRequest::Addresses(_) => "addresses",
        TrackerRequest::Progress { .. } => "progress",
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

    #[test]
    fn refusals_are_counted_by_reason() {
        let metrics = Metrics::default();
        metrics.refused(Refusal::of(&RegistryError::PeersFull(10)));
        metrics.refused(Refusal::of(&RegistryError::AddressFull("127.0.0.1".parse().unwrap(), 2)));
        metrics.refused(Refusal::of(&RegistryError::AddressFull("127.0.0.2".parse().unwrap(), 2)));
        metrics.refused(Refusal::of(&RegistryError::Taken("alice".into())));
        metrics.refused(Refusal::Version);
        let snap = metrics.snapshot();
        let by = |reason| snap.refusals.iter().find(|(r, _)| *r == reason).map(|(_, n)| *n);
        assert_eq!((by("full"), by("per_ip"), by("id_taken"), by("version")), (Some(1), Some(2), Some(1), Some(1)));
        assert_eq!((by("per_cert"), by("bad_registration")), (Some(0), Some(0)));
        let mut text = String::new();
        metrics.write_prometheus(&mut text);
        assert!(text.contains("p2pq_tracker_refusals_total{reason=\"per_ip\"} 2\n"), "{text}");
    }

    /// Times one request of `kind` as having taken `took`.
    fn observe(metrics: &Metrics, request: TrackerRequest, took: Duration) {
        let read: Result<Result<TrackerRequest, ()>, ()> = Ok(Ok(request));
        let mut timer = Timer::start(&read);
        timer.started -= took;
        metrics.answered(timer);
    }

    #[test]
    fn latencies_land_in_their_buckets_and_the_buckets_are_cumulative() {
        let metrics = Metrics::default();
        observe(&metrics, TrackerRequest::Alive, Duration::from_micros(50));
        observe(&metrics, TrackerRequest::Alive, Duration::from_micros(700));
        observe(&metrics, TrackerRequest::Alive, Duration::from_secs(3));
        let unread: Result<Result<TrackerRequest, ()>, ()> = Err(());
        metrics.answered(Timer::start(&unread));
        let alive = metrics.latency[kind(&TrackerRequest::Alive)].read();
        let le = |us: u64| alive.cumulative[LATENCY_BUCKETS_US.iter().position(|b| *b == us).unwrap()];
        assert_eq!((le(100), le(500), le(1_000), le(1_000_000)), (1, 1, 2, 2));
        assert_eq!(alive.count(), 3, "the one past a second is in +Inf only; the unread one is not timed");
        assert!(alive.sum_ns >= 3_000_750_000, "{}", alive.sum_ns);

        let mut text = String::new();
        metrics.write_prometheus(&mut text);
        let name = "p2pq_tracker_request_duration_seconds";
        assert!(text.contains(&format!("{name}_bucket{{kind=\"alive\",le=\"0.0001\"}} 1\n")), "{text}");
        assert!(text.contains(&format!("{name}_bucket{{kind=\"alive\",le=\"0.001\"}} 2\n")), "{text}");
        assert!(text.contains(&format!("{name}_bucket{{kind=\"alive\",le=\"+Inf\"}} 3\n")), "{text}");
        assert!(text.contains(&format!("{name}_count{{kind=\"alive\"}} 3\n")), "{text}");
        assert!(text.contains(&format!("{name}_count{{kind=\"lookup\"}} 0\n")), "{text}");
        let mean = metrics.snapshot().latency_mean_us.iter().find(|(k, _)| *k == "alive").map(|(_, us)| *us);
        assert!(mean.is_some_and(|us| (1_000_000..1_001_000).contains(&us)), "{mean:?}");
    }

    #[test]
    fn a_bound_itself_is_inside_its_bucket() {
        let histogram = Histogram::default();
        histogram.observe(Duration::from_micros(100));
        histogram.observe(Duration::from_nanos(100_001));
        assert_eq!(histogram.read().cumulative[..2], [1, 2], "le means at most");
    }
}
