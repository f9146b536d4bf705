//! The steady phase: every peer heartbeating, with lookups and new peers at fixed rates.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use p2pq::net::identity::Identity;
use p2pq::protocol::{TrackerRequest, TrackerResponse};
use quinn::{Connection, Endpoint};
use tokio::task::JoinSet;

use super::{Beats, Joined, Knobs, Report, STEP, Server, endpoint_of, join_one, probe, sim};

/// Each window of [`Load::dashboard_cost`].
const WATCH: Duration = Duration::from_secs(10);

/// A small deterministic generator for picking peers and names.
struct Pick(u64);

impl Pick {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n.max(1) as u64) as usize
    }
}

/// What the steady phase works with.
pub struct Load<'a> {
    pub knobs: &'a Knobs,
    pub server: &'a Server,
    pub ids: &'a Arc<Vec<Identity>>,
    pub endpoints: &'a [Endpoint],
    pub beats: &'a Beats,
}

/// How one timed lookup ended.
enum Looked {
    Answered(Duration),
    Busy,
    Failed,
}

impl Load<'_> {
    /// Heartbeats from every peer for the phase's length, with lookups and new peers joining
    /// at fixed rates (open loop: a slow tracker does not slow what is asked of it).
    pub async fn steady(&self, conns: &mut Vec<Connection>, report: &mut Report) -> Result<()> {
        let seen = &self.beats.seen;
        let pid = self.server.proc.0.id();
        let (cpu0, t0, beats0) = (probe::cpu_seconds(pid)?, Instant::now(), seen.beats.load(Ordering::Relaxed));
        let (looked, joined) = tokio::join!(self.lookups(conns), self.joins(self.knobs.peers));
        let elapsed = t0.elapsed().as_secs_f64();
        report.cpu = (probe::cpu_seconds(pid)? - cpu0) / elapsed;
        report.rss = probe::rss_bytes(pid)?;
        report.beats_per_s = (seen.beats.load(Ordering::Relaxed) - beats0) as f64 / elapsed;
        for looked in looked {
            match looked {
                Looked::Answered(took) => report.lookups.push(took),
                Looked::Busy => report.busy += 1,
                Looked::Failed => report.lookup_errors += 1,
            }
        }
        for joined in joined {
            match joined {
                Ok((conn, _, register)) => {
                    report.registrations_loaded.push(register);
                    conns.push(conn);
                }
                Err(err) => eprintln!("a join under load failed: {err:#}"),
            }
        }
        let metrics = probe::http_get(self.server.http.context("no dashboard")?, "/metrics")?;
        report.expired_metric = probe::metric(&metrics, "p2pq_tracker_expired_total").unwrap_or(f64::NAN);
        report.false_expiries = seen.expired.load(Ordering::Relaxed);
        report.lost = seen.lost.load(Ordering::Relaxed);
        report.paced_ms = seen.paced_ms.load(Ordering::Relaxed);
        report.paces = seen.paces.load(Ordering::Relaxed);
        Ok(())
    }

    /// The dashboard's cost: the tracker's CPU over [`WATCH`] with a page following its event
    /// stream, against the windows of the same length before and after without one (every
    /// peer still heartbeating, nothing else asked).
    pub async fn dashboard_cost(&self, report: &mut Report) -> Result<()> {
        let (pid, http) = (self.server.proc.0.id(), self.server.http.context("no dashboard")?);
        let cpu_over = |cpu0: f64, t0: Instant| -> Result<f64> { Ok((probe::cpu_seconds(pid)? - cpu0) / t0.elapsed().as_secs_f64()) };
        let (cpu0, t0) = (probe::cpu_seconds(pid)?, Instant::now());
        tokio::time::sleep(WATCH).await;
        let before = cpu_over(cpu0, t0)?;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        let spent = || -> Result<f64> {
            let text = probe::http_get(http, "/metrics")?;
            probe::metric(&text, "p2pq_dashboard_snapshot_seconds_total").context("no p2pq_dashboard_snapshot_seconds_total")
        };
        let (spent0, cpu0, t0) = (spent()?, probe::cpu_seconds(pid)?, Instant::now());
        let viewer = tokio::task::spawn_blocking(move || probe::watch(http, &stopped));
        tokio::time::sleep(WATCH).await;
        stop.store(true, Ordering::Relaxed);
        let watched = cpu_over(cpu0, t0)?;
        report.watch_snapshot_share = (spent()? - spent0) / (watched * t0.elapsed().as_secs_f64()).max(f64::EPSILON);
        report.watch_sent = viewer.await??;
        let (cpu0, t0) = (probe::cpu_seconds(pid)?, Instant::now());
        tokio::time::sleep(WATCH).await;
        report.watch_cpu = (before, watched, cpu_over(cpu0, t0)?);
        Ok(())
    }

    /// `Lookup`s of random names from random peers, at the knob's rate, for the phase.
    async fn lookups(&self, conns: &[Connection]) -> Vec<Looked> {
        let mut pick = Pick(0x9e37_79b9_7f4a_7c15);
        let mut asked = JoinSet::new();
        let mut tick = tokio::time::interval(Duration::from_secs(1) / self.knobs.lookups.max(1));
        let until = Instant::now() + self.knobs.steady;
        while Instant::now() < until {
            tick.tick().await;
            let conn = conns[pick.below(conns.len())].clone();
            let query = sim::name_of(pick.below(self.knobs.peers), pick.below(self.knobs.files));
            asked.spawn(async move {
                let started = Instant::now();
                match tokio::time::timeout(STEP, sim::exchange(&conn, &TrackerRequest::Lookup { query })).await {
                    Ok(Ok(TrackerResponse::Matches(_))) => Looked::Answered(started.elapsed()),
                    Ok(Ok(TrackerResponse::RetryLater { .. })) => Looked::Busy,
                    _ => Looked::Failed,
                }
            });
        }
        asked.join_all().await
    }

    /// New peers joining at the knob's rate, for the phase; numbered from `first`.
    async fn joins(&self, first: usize) -> Vec<Joined> {
        let mut joining = JoinSet::new();
        let mut tick = tokio::time::interval(Duration::from_secs(1) / self.knobs.joins.max(1));
        let until = Instant::now() + self.knobs.steady;
        let mut i = first;
        while Instant::now() < until && self.knobs.joins > 0 && i < self.ids.len() {
            tick.tick().await;
            joining.spawn(join_one(
                self.server,
                self.ids.clone(),
                endpoint_of(self.endpoints, i).clone(),
                i,
                self.knobs.files,
                self.beats.clone(),
            ));
            i += 1;
        }
        joining.join_all().await
    }
}
