//! The table a load run prints.

use std::time::Duration;

use super::{HEARTBEAT, Knobs};

/// p50 and p99 of `samples`, in ms.
pub fn percentiles(samples: &mut [Duration]) -> (f64, f64) {
    samples.sort();
    let at = |q: f64| {
        samples.get(((samples.len() as f64 * q) as usize).min(samples.len().saturating_sub(1))).map_or(f64::NAN, |d| d.as_secs_f64() * 1e3)
    };
    (at(0.5), at(0.99))
}

/// What one load run measured.
#[derive(Default)]
pub struct Report {
    pub joined: usize,
    pub join_took: Duration,
    pub handshakes: Vec<Duration>,
    pub registrations: Vec<Duration>,
    pub registrations_loaded: Vec<Duration>,
    pub lookups: Vec<Duration>,
    pub lookup_errors: usize,
    pub busy: usize,
    pub cpu: f64,
    pub rss_idle: u64,
    pub rss: u64,
    pub beats_per_s: f64,
    pub expired_metric: f64,
    pub false_expiries: u64,
    pub lost: u64,
    pub paced_ms: u64,
    pub paces: u64,
    pub close_left: Vec<(Duration, f64)>,
    /// Datagrams dropped at full receive buffers during the mass close: (tracker, peers).
    pub close_drops: (u64, u64),
    /// Tracker CPU (share of a core) without a dashboard viewer, with one, and without again.
    pub watch_cpu: (f64, f64, f64),
    /// Bytes and snapshots the viewer was sent.
    pub watch_sent: (u64, u64),
    /// The dashboard's own count of time spent on snapshots over the watched window, as a
    /// share of the tracker's CPU time over it.
    pub watch_snapshot_share: f64,
    /// `Exit`s answered within the peers' 2 s.
    pub close_answered: usize,
    /// Tracker CPU seconds over the mass close.
    pub close_cpu: f64,
}

impl Report {
    pub fn print(&self, knobs: &Knobs, raw: Option<f64>) {
        let mut reg = self.registrations.clone();
        let mut loaded = self.registrations_loaded.clone();
        let mut lookups = self.lookups.clone();
        let mut hs = self.handshakes.clone();
        let per_peer = self.rss.saturating_sub(self.rss_idle) as f64 / self.joined.max(1) as f64;
        println!(
            "\ntracker under load: {} peers x {} files, heartbeats at {} s, {} s steady",
            self.joined,
            knobs.files,
            HEARTBEAT.as_secs(),
            knobs.steady.as_secs()
        );
        println!("| measure | value |\n|---|---|");
        println!(
            "| peers joined | {} in {:.1} s ({:.0}/s) |",
            self.joined,
            self.join_took.as_secs_f64(),
            self.joined as f64 / self.join_took.as_secs_f64()
        );
        let (h50, h99) = percentiles(&mut hs);
        println!("| handshake p50 / p99 (join phase) | {h50:.1} / {h99:.1} ms |");
        let (r50, r99) = percentiles(&mut reg);
        println!("| registration p50 / p99 (join phase) | {r50:.1} / {r99:.1} ms |");
        let (l50, l99) = percentiles(&mut loaded);
        println!("| registration p50 / p99 (steady, {}/s) | {l50:.1} / {l99:.1} ms ({} joined) |", knobs.joins, loaded.len());
        let (k50, k99) = percentiles(&mut lookups);
        println!(
            "| lookup p50 / p99 ({}/s) | {k50:.1} / {k99:.1} ms ({} answered, {} busy, {} failed) |",
            knobs.lookups,
            lookups.len(),
            self.busy,
            self.lookup_errors
        );
        println!("| tracker CPU (steady) | {:.0}% of one core |", self.cpu * 100.0);
        let (before, watched, after) = self.watch_cpu;
        let without = (before + after) / 2.0;
        println!(
            "| tracker CPU, heartbeats only: without / with / without a dashboard viewer | {:.1}% / {:.1}% / {:.1}% of a core: the page costs {:.1}% of the tracker's CPU, its snapshots by its own count {:.1}% ({} snapshots, {} KiB sent) |",
            before * 100.0,
            watched * 100.0,
            after * 100.0,
            (watched - without) / watched.max(f64::EPSILON) * 100.0,
            self.watch_snapshot_share * 100.0,
            self.watch_sent.1,
            self.watch_sent.0 / 1024
        );
        println!("| heartbeats sent | {:.0}/s |", self.beats_per_s);
        println!(
            "| heartbeat interval asked by the tracker | {} |",
            if self.paced_ms == 0 {
                "none (5 s)".to_string()
            } else {
                format!("{:.1} s ({} pushes)", self.paced_ms as f64 / 1e3, self.paces)
            }
        );
        println!("| tracker RSS idle / loaded | {:.0} / {:.0} MiB |", self.rss_idle as f64 / 1048576.0, self.rss as f64 / 1048576.0);
        println!("| tracker memory per peer | {:.1} KiB |", per_peer / 1024.0);
        if let Some(raw) = raw {
            println!("| of which quinn's own (bare server) | {:.1} KiB; beyond quinn {:.1} KiB |", raw / 1024.0, (per_peer - raw) / 1024.0);
        }
        println!(
            "| false expiries (tracker metric / peers told) | {} / {} ({} lost otherwise) |",
            self.expired_metric, self.false_expiries, self.lost
        );
        let at =
            |s: f64| self.close_left.iter().find(|(t, _)| t.as_secs_f64() >= s).or(self.close_left.last()).map_or(f64::NAN, |(_, n)| *n);
        let gone = self
            .close_left
            .iter()
            .find(|(_, n)| *n == 0.0)
            .map_or("not within the timeout".to_string(), |(t, _)| format!("{:.2} s", t.as_secs_f64()));
        println!("| mass close: still listed after 1 s / 3 s; all gone after | {} / {} ; {gone} |", at(1.0), at(3.0));
        let trace: Vec<String> = [0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0].iter().map(|&s| format!("{s} s: {}", at(s))).collect();
        println!("| mass close: still listed | {} |", trace.join(", "));
        println!(
            "| mass close: Exits answered in 2 s; datagrams dropped at the tracker / the peers; tracker CPU | {} ; {} / {} ; {:.1} s |",
            self.close_answered, self.close_drops.0, self.close_drops.1, self.close_cpu
        );
    }
}
