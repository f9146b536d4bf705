//! What each peer says it has moved (in its heartbeats), and its rates from one report to the
//! next: the tracker's swarm rates are their sum, kept as reports arrive, never recounted.

use std::time::{Duration, Instant};

/// Shortest span two reports are compared over: heartbeats closer than this (a burst, or a
/// peer that sends too often) would give noisy rates.
const MIN_SPAN: Duration = Duration::from_millis(500);

/// One peer's reported totals and the rates they give, in bytes and bytes per second.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Transfer {
    /// Chunk bytes it has sent since it started.
    pub uploaded: u64,
    /// Chunk bytes it has received and verified since it started.
    pub downloaded: u64,
    /// Its upload rate over the last span between reports.
    pub up_rate: u64,
    /// Its download rate over the last span between reports.
    pub down_rate: u64,
    /// When the totals were last taken; `None` before the first report.
    at: Option<Instant>,
}

impl Transfer {
    /// Takes totals reported at `now`. The first report only sets the baseline; a total that
    /// went down (a lie, or a counter that wrapped) counts as no progress. Reports closer than
    /// [`MIN_SPAN`] to the last taken one are left for the next.
    pub fn report(&mut self, uploaded: u64, downloaded: u64, now: Instant) {
        let Some(at) = self.at else {
            (self.uploaded, self.downloaded, self.at) = (uploaded, downloaded, Some(now));
            return;
        };
        let span = now.saturating_duration_since(at);
        if span < MIN_SPAN {
            return;
        }
        let rate = |before: u64, after: u64| (after.saturating_sub(before) as f64 / span.as_secs_f64()) as u64;
        self.up_rate = rate(self.uploaded, uploaded);
        self.down_rate = rate(self.downloaded, downloaded);
        (self.uploaded, self.downloaded, self.at) = (uploaded.max(self.uploaded), downloaded.max(self.downloaded), Some(now));
    }

    /// (upload, download) rates.
    pub fn rates(&self) -> (u64, u64) {
        (self.up_rate, self.down_rate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_come_from_the_span_between_reports() {
        let t = Instant::now();
        let mut transfer = Transfer::default();
        transfer.report(1_000, 0, t);
        assert_eq!(transfer.rates(), (0, 0), "one report is only a baseline");
        transfer.report(11_000, 4_000, t + Duration::from_secs(2));
        assert_eq!(transfer.rates(), (5_000, 2_000));
        transfer.report(99_000, 99_000, t + Duration::from_millis(2_100));
        assert_eq!(transfer.rates(), (5_000, 2_000), "a report too close to the last is left for the next");
        transfer.report(0, 4_000, t + Duration::from_secs(3));
        assert_eq!(transfer.rates(), (0, 0), "totals that went down are no progress");
        assert_eq!((transfer.uploaded, transfer.downloaded), (11_000, 4_000));
    }
}
