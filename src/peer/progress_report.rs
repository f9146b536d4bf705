//! Telling the tracker how far each download under way has come
//! ([`TrackerRequest::Progress`]), so its views show partial holders apart from complete ones
//! and a file's availability bar. A download is reported when what it has changed, at most
//! every [`REPORT_EVERY`], and once more, whole, when it completes. After each registration
//! (a fresh tracker knows nothing) everything is told again. A tracker that does not know the
//! request (an older one) is not asked again until the next registration.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::discovery::tracker::TrackerLink;
use crate::protocol::{FileId, TrackerRequest, progress};
use crate::store::shares::{SharedFile, Shares};

/// How often the downloads under way are looked at and, if they moved, reported.
pub const REPORT_EVERY: Duration = Duration::from_secs(2);
/// Most reports sent a round: a folder of many files under way must not spend the request
/// rate the tracker allows one peer (100 a second) on progress, ahead of its lookups. The
/// rest wait for the next rounds, taken in turn by id.
pub const MAX_REPORTS_A_ROUND: usize = 16;

/// Reports downloads' progress to the tracker over `link` until `shutdown`.
pub(super) async fn run(link: Arc<TrackerLink>, shares: Shares, shutdown: CancellationToken) {
    let mut up = link.watch_up();
    let mut tick = tokio::time::interval(REPORT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut told: HashMap<FileId, Vec<u8>> = HashMap::new();
    let mut heard = true;
    let mut last = None;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            changed = up.changed() => {
                if changed.is_err() {
                    return;
                }
                // Registered again: the tracker starts from nothing, and may be a newer one.
                told.clear();
                heard = true;
                continue;
            }
            _ = tick.tick() => {}
        }
        if !heard || !link.is_connected() {
            continue;
        }
        let owed = in_turn(due(&shares.all(), &mut told), &mut last, MAX_REPORTS_A_ROUND);
        for Report { id, have, complete } in owed {
            match link.request(&TrackerRequest::Progress { id, have: have.clone() }).await {
                Ok(_) if complete => {
                    told.remove(&id);
                }
                Ok(_) => {
                    told.insert(id, have);
                }
                Err(err) if format!("{err:#}").contains("bad request") => {
                    tracing::debug!("the tracker does not take progress reports: {err:#}");
                    heard = false;
                    break;
                }
                // Not listed yet (its share is on the way), or the link went down: next time.
                Err(err) => tracing::debug!("progress of {} not told: {err:#}", id.short()),
            }
        }
    }
}

/// The reports owed: every download under way whose report changed since it was told, and
/// every told one that completed since (reported whole, once). Forgets those no longer
/// shared. Seeders' files are never reported: a holder that says nothing is complete.
fn due(shared: &[Arc<SharedFile>], told: &mut HashMap<FileId, Vec<u8>>) -> Vec<Report> {
    let mut owed = Vec::new();
    let mut seen = HashSet::new();
    for file in shared {
        let (id, manifest) = (file.info.id, &file.manifest);
        let have = match file.download() {
            // Not listed before its first chunk, so nothing to say yet.
            Some(partial) if partial.verified() == 0 => continue,
            Some(partial) => progress::report(manifest.size, manifest.chunk_size, |i| partial.has(i)),
            None if told.contains_key(&id) => progress::report(manifest.size, manifest.chunk_size, |_| true),
            None => continue,
        };
        seen.insert(id);
        if told.get(&id) != Some(&have) {
            owed.push(Report { id, complete: progress::complete(&have, manifest.size), have });
        }
    }
    told.retain(|id, _| seen.contains(id));
    owed
}

/// At most `max` of the reports `owed`, in turn: by id, from the first after `last` (the
/// last one sent the round before) round to the start, so that every download is told in a
/// few rounds however many change at once.
fn in_turn(mut owed: Vec<Report>, last: &mut Option<FileId>, max: usize) -> Vec<Report> {
    owed.sort_by_key(|report| report.id);
    let start = last.map_or(0, |last| owed.partition_point(|report| report.id <= last));
    owed.rotate_left(start);
    owed.truncate(max);
    if let Some(report) = owed.last() {
        *last = Some(report.id);
    }
    owed
}

/// One report owed to the tracker.
#[derive(Debug, PartialEq, Eq)]
struct Report {
    id: FileId,
    have: Vec<u8>,
    /// Every segment is there: once told, nothing more is owed for this file.
    complete: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Digest;

    fn owed(ids: &[u8]) -> Vec<Report> {
        ids.iter().map(|&n| Report { id: Digest([n; 32]), have: vec![n], complete: false }).collect()
    }

    fn ids(reports: &[Report]) -> Vec<u8> {
        reports.iter().map(|r| r.id.0[0]).collect()
    }

    #[test]
    fn many_reports_are_sent_a_few_a_round_in_turn_so_none_waits_for_ever() {
        let mut last = None;
        let all = [9, 1, 5, 3, 7];
        assert_eq!(ids(&in_turn(owed(&all), &mut last, 2)), [1, 3]);
        assert_eq!(ids(&in_turn(owed(&all), &mut last, 2)), [5, 7]);
        assert_eq!(ids(&in_turn(owed(&all), &mut last, 2)), [9, 1], "round to the start");
        // The one after the last sent comes first even when the last is no longer owed.
        assert_eq!(ids(&in_turn(owed(&[2, 4]), &mut last, 2)), [2, 4]);
        assert_eq!(ids(&in_turn(owed(&[3]), &mut last, 2)), [3]);
        assert!(in_turn(Vec::new(), &mut last, 2).is_empty());
        assert_eq!(last, Some(Digest([3; 32])), "nothing sent, nothing moves");
    }
}
