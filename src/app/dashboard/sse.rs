//! `/api/events`: the dashboard's snapshot pushed to every open page with server-sent events.
//!
//! One task builds the snapshot, at most once a [`PERIOD`] (less often when a snapshot is
//! costly: [`COST_SHARE`]), and only while someone watches;
//! every viewer is handed the same serialized text through a `watch` channel, so ten open pages
//! cost the tracker what one does (the snapshot takes the registry's lock: with 100,000 peers
//! it must not be taken once per viewer). A snapshot equal to the last one but for the clock
//! (uptime, the peers' ages: the page advances those itself) is not sent again; idle streams
//! get a comment every [`KEEP_ALIVE`] so proxies and browsers keep them open. At most
//! [`MAX_VIEWERS`] streams at once; past that, `503` with a `Retry-After`.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::http::{StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_lite::Stream;
use serde_json::Value;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::tracker::Tracker;

/// Shortest time between two snapshots, however many pages watch: a person reads a page no
/// faster, and a snapshot with many peers costs milliseconds under the registry's lock.
pub const PERIOD: Duration = Duration::from_secs(1);
/// A snapshot is followed by at least this many times its own cost before the next: the
/// dashboard takes at most 1% of a core however big the swarm, inside its budget of 5% of the
/// tracker's CPU (which is 35–45% of a core with 100,000 peers). At 50 (2% of a core) the
/// `tracker_load` bench measured the page at about 5–11% of the tracker's CPU with 100,000
/// peers; its counter `p2pq_dashboard_snapshot_seconds_total` gives the exact share.
const COST_SHARE: u32 = 100;
/// Pages streaming at once, at most: each costs a connection and a copy of every snapshot
/// sent (tens of KiB a second); a team's screens fit, a crowd gets `503`.
pub const MAX_VIEWERS: usize = 32;
/// Silence after which an idle stream gets a comment line: well under the 30–60 s after which
/// proxies drop an idle connection.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// How long a page waits before reconnecting after the stream broke (sent with each event).
const RETRY: Duration = Duration::from_secs(2);
/// What a refused viewer is told to wait, in seconds.
const BUSY_RETRY_S: &str = "10";

/// The latest snapshot, as JSON text; `None` while nobody watches (or before the first).
type Frame = Option<Arc<str>>;

/// The shared stream of snapshots; clones share it.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

struct Inner {
    frames: watch::Sender<Frame>,
    /// Rung when a viewer comes, so an idle producer starts again.
    wake: Notify,
    viewers: Arc<Semaphore>,
    shutdown: CancellationToken,
    /// Snapshots built, and the nanoseconds spent building, comparing and encoding them.
    built: AtomicU64,
    spent_ns: AtomicU64,
}

impl Hub {
    /// A hub for `tracker`, and the task that feeds it (it ends on `shutdown`).
    pub fn start(tracker: Tracker, shutdown: CancellationToken) -> Hub {
        let inner = Inner {
            frames: watch::Sender::new(None),
            wake: Notify::new(),
            viewers: Arc::new(Semaphore::new(MAX_VIEWERS)),
            shutdown,
            built: AtomicU64::new(0),
            spent_ns: AtomicU64::new(0),
        };
        let hub = Hub { inner: Arc::new(inner) };
        let producer = hub.clone();
        crate::net::task::spawn(tracing::debug_span!("dashboard snapshots"), async move { producer.produce(tracker).await });
        hub
    }

    /// The answer to `GET /api/events`: a stream of snapshots, or `503` past [`MAX_VIEWERS`].
    pub fn respond(&self) -> Response {
        let Ok(permit) = self.inner.viewers.clone().try_acquire_owned() else {
            let body = format!("too many dashboard viewers ({MAX_VIEWERS}); try again later");
            return (StatusCode::SERVICE_UNAVAILABLE, [(header::RETRY_AFTER, BUSY_RETRY_S)], body).into_response();
        };
        let mut frames = self.inner.frames.subscribe();
        // A snapshot being kept fresh for others is sent at once; none (idle) comes within moments.
        if frames.borrow().is_some() {
            frames.mark_changed();
        }
        self.inner.wake.notify_one();
        let viewer = Viewer { frames, shutdown: self.inner.shutdown.clone(), _permit: permit };
        Sse::new(viewer.into_stream()).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)).into_response()
    }

    /// Builds a snapshot every [`PERIOD`] (or [`COST_SHARE`] times its cost) while someone
    /// watches, and publishes it if it changed.
    async fn produce(&self, tracker: Tracker) {
        let mut last: Option<Value> = None;
        let mut next = Instant::now();
        loop {
            if self.inner.frames.receiver_count() == 0 {
                // Nobody watches: forget the last snapshot, so the next viewer never gets a stale one.
                self.inner.frames.send_replace(None);
                last = None;
                tokio::select! {
                    _ = self.inner.wake.notified() => continue,
                    _ = self.inner.shutdown.cancelled() => return,
                }
            }
            tokio::select! {
                _ = tokio::time::sleep_until(next) => {}
                _ = self.inner.shutdown.cancelled() => return,
            }
            if self.inner.frames.receiver_count() == 0 {
                continue;
            }
            let started = Instant::now();
            let (tracker, before) = (tracker.clone(), last.take());
            let built = tokio::task::spawn_blocking(move || build(&tracker, before)).await;
            let cost = started.elapsed();
            next = started + PERIOD.max(cost * COST_SHARE);
            self.inner.built.fetch_add(1, Ordering::Relaxed);
            self.inner.spent_ns.fetch_add(u64::try_from(cost.as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
            let Ok((settled, frame)) = built else { continue };
            if let Some(frame) = frame {
                self.inner.frames.send_replace(Some(frame));
            }
            last = Some(settled);
        }
    }

    /// Snapshots built so far and the time spent on them, in Prometheus' text format.
    pub fn write_prometheus(&self, out: &mut String) {
        let built = self.inner.built.load(Ordering::Relaxed);
        let spent = Duration::from_nanos(self.inner.spent_ns.load(Ordering::Relaxed)).as_secs_f64();
        crate::tracker::metrics::family(out, "p2pq_dashboard_snapshots_total", "Dashboard snapshots built.", "counter");
        out.push_str(&format!("p2pq_dashboard_snapshots_total {built}\n"));
        let help = "Time spent building, comparing and encoding dashboard snapshots.";
        crate::tracker::metrics::family(out, "p2pq_dashboard_snapshot_seconds_total", help, "counter");
        out.push_str(&format!("p2pq_dashboard_snapshot_seconds_total {spent:.6}\n"));
    }
}

/// Builds a snapshot of `tracker` (on a blocking thread: it takes the registry's lock) and
/// returns what it settles to and, unless that equals `last`, its JSON text to publish.
fn build(tracker: &Tracker, last: Option<Value>) -> (Value, Option<Arc<str>>) {
    let snapshot = super::snapshot(tracker);
    let settled = settled(&snapshot);
    let frame = (last.as_ref() != Some(&settled)).then(|| Arc::from(snapshot.to_string()));
    (settled, frame)
}

/// One open page's stream.
struct Viewer {
    frames: watch::Receiver<Frame>,
    shutdown: CancellationToken,
    /// Its place among [`MAX_VIEWERS`], given back when the stream is dropped (the page left).
    _permit: OwnedSemaphorePermit,
}

impl Viewer {
    fn into_stream(self) -> impl Stream<Item = Result<Event, Infallible>> + Send + 'static {
        futures_lite::stream::unfold(self, |mut viewer| async move {
            let frame = viewer.next().await?;
            Some((Ok(Event::default().retry(RETRY).data(&*frame)), viewer))
        })
    }

    /// The next snapshot published; `None` when the dashboard shuts down.
    async fn next(&mut self) -> Option<Arc<str>> {
        loop {
            tokio::select! {
                changed = self.frames.changed() => changed.ok()?,
                _ = self.shutdown.cancelled() => return None,
            }
            if let Some(frame) = self.frames.borrow_and_update().clone() {
                return Some(frame);
            }
        }
    }
}

/// The snapshot without what only the clock changes, to tell whether anything happened.
fn settled(snapshot: &Value) -> Value {
    let mut settled = snapshot.clone();
    if let Some(map) = settled.as_object_mut() {
        map.remove("uptime_s");
    }
    if let Some(rows) = settled.get_mut("peer_rows").and_then(Value::as_array_mut) {
        rows.iter_mut().filter_map(Value::as_object_mut).for_each(|row| drop(row.remove("last_alive_ms_ago")));
    }
    settled
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_the_clock_moving_is_no_change() {
        let at = |uptime: u64, ago: u64, files: u64| json!({"uptime_s": uptime, "peers": 1, "peer_rows": [{"id": "a", "last_alive_ms_ago": ago, "files": files}]});
        assert_eq!(settled(&at(1, 10, 2)), settled(&at(5, 900, 2)));
        assert_ne!(settled(&at(1, 10, 2)), settled(&at(1, 10, 3)));
    }
}
