//! Several discovery sources asked as one: the tracker(s) and the DHT.
//!
//! [`Many`] asks every source at once and merges their answers ([`merge`], plain and tested
//! alone): one entry per file id, its holders merged by address. Where two sources know the
//! same file or the same address, the one listed first wins (list the tracker first: it knows
//! names and vouches for fingerprints). A source that fails is a notice when another answered;
//! the lookup fails only when every source did, with each one's reason.

use std::collections::HashSet;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use anyhow::{Result, anyhow};
use tokio::sync::broadcast;

use super::{Discovery, Found};
use crate::protocol::{FileId, FileMatch};

/// Notices kept for a slow listener before the oldest are dropped.
const NOTICES: usize = 32;
/// How long the other sources get once one has named holders.
const GRACE: Duration = Duration::from_millis(250);

/// Discovery sources asked together, each with a name for messages ("tracker", "dht").
pub struct Many {
    sources: Vec<(String, Arc<dyn Discovery>)>,
    notices: broadcast::Sender<String>,
}

impl Many {
    /// Asks `sources` together, the first listed winning ties.
    pub fn new(sources: Vec<(String, Arc<dyn Discovery>)>) -> Many {
        Many { sources, notices: broadcast::Sender::new(NOTICES) }
    }

    /// Notices from now on: a source that failed while another answered.
    pub fn notices(&self) -> broadcast::Receiver<String> {
        self.notices.subscribe()
    }

    /// Runs `ask` on every source at once and merges what they say.
    async fn ask<'a>(&'a self, ask: impl Fn(&'a dyn Discovery) -> Found<'a>) -> Result<Vec<FileMatch>> {
        let answers = join_all(self.sources.iter().map(|(_, source)| ask(source.as_ref())).collect(), GRACE).await;
        let named = self
            .sources
            .iter()
            .map(|(name, _)| name.clone())
            .zip(answers)
            // Too slow this time is not a failure: the download asks again later.
            .map(|(name, answer)| (name, answer.unwrap_or_else(|| Ok(Vec::new()))))
            .collect();
        let (merged, notices) = merge(named);
        for notice in notices {
            tracing::info!("{notice}");
            // Nobody listening is fine: the notice is in the log.
            let _ = self.notices.send(notice);
        }
        merged
    }
}

impl Discovery for Many {
    fn find<'a>(&'a self, query: &'a str) -> Found<'a> {
        Box::pin(self.ask(move |source| source.find(query)))
    }

    fn holders(&self, id: FileId) -> Found<'_> {
        Box::pin(self.ask(move |source| source.holders(id)))
    }
}

/// Merges the sources' answers, in their order: one match per file id (the first source's
/// description of it), holders merged by address (the first source's record of each). With
/// the notices to give: each source that failed while another answered.
pub fn merge(answers: Vec<(String, Result<Vec<FileMatch>>)>) -> (Result<Vec<FileMatch>>, Vec<String>) {
    let mut merged: Vec<FileMatch> = Vec::new();
    let mut failures = Vec::new();
    let mut answered = false;
    for (name, answer) in answers {
        match answer {
            Ok(matches) => {
                answered = true;
                matches.into_iter().for_each(|found| add(&mut merged, found));
            }
            Err(err) => failures.push(format!("{name}: {err:#}")),
        }
    }
    if !answered {
        let reasons = if failures.is_empty() { "no discovery source".to_string() } else { failures.join("; ") };
        return (Err(anyhow!("{reasons}")), Vec::new());
    }
    let notices = failures.into_iter().map(|f| format!("a discovery source failed, the others answered: {f}")).collect();
    (Ok(merged), notices)
}

/// Adds `found` to `merged`: its holders join the file's, those at a known address left out.
fn add(merged: &mut Vec<FileMatch>, found: FileMatch) {
    let Some(known) = merged.iter_mut().find(|m| m.file.id == found.file.id) else {
        merged.push(found);
        return;
    };
    if super::dht::source::is_undescribed(&known.file) {
        known.file = found.file.clone();
    }
    let mut addrs: HashSet<SocketAddr> = known.holders.iter().map(|h| h.addr).collect();
    known.holders.extend(found.holders.into_iter().filter(|h| addrs.insert(h.addr)));
}

/// Every future's output, in order, all run at once; once one has given holders, the others
/// get `grace` more, and those still running then are `None` (a slow DHT lookup must not hold
/// up a tracker's answer: the download asks again, and hears from it then).
async fn join_all<'a>(futures: Vec<Found<'a>>, grace: Duration) -> Vec<Option<Result<Vec<FileMatch>>>> {
    let mut running: Vec<_> = futures.into_iter().map(Some).collect();
    let mut done: Vec<Option<Result<Vec<FileMatch>>>> = running.iter().map(|_| None).collect();
    let mut deadline: Option<Pin<Box<tokio::time::Sleep>>> = None;
    std::future::poll_fn(|cx| {
        for (future, out) in running.iter_mut().zip(done.iter_mut()) {
            if let Some(fut) = future
                && let Poll::Ready(value) = fut.as_mut().poll(cx)
            {
                if deadline.is_none() && value.as_ref().is_ok_and(|found| found.iter().any(|m| !m.holders.is_empty())) {
                    deadline = Some(Box::pin(tokio::time::sleep(grace)));
                }
                *out = Some(value);
                *future = None;
            }
        }
        let late = deadline.as_mut().is_some_and(|d| d.as_mut().poll(cx).is_ready());
        if late || running.iter().all(Option::is_none) { Poll::Ready(()) } else { Poll::Pending }
    })
    .await;
    done
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content::id::Digest;
    use crate::protocol::{FileInfo, Holder};

    fn holder(port: u16, fp: u8) -> Holder {
        Holder { peer_id: format!("p{port}"), addr: ([127, 0, 0, 1], port).into(), fingerprint: Digest([fp; 32]), also: Vec::new() }
    }

    fn found(id: u8, name: &str, holders: Vec<Holder>) -> FileMatch {
        FileMatch { file: FileInfo { id: Digest([id; 32]), name: name.into(), size: 10, folder: None }, holders }
    }

    #[test]
    fn holders_of_one_file_are_merged_by_address_the_first_source_winning() {
        let tracker = Ok(vec![found(1, "a.zip", vec![holder(1, 1), holder(2, 2)])]);
        let dht = Ok(vec![found(1, "unnamed", vec![holder(2, 9), holder(3, 3)]), found(2, "b", vec![holder(4, 4)])]);
        let (merged, notices) = merge(vec![("tracker".into(), tracker), ("dht".into(), dht)]);
        let merged = merged.unwrap();
        assert!(notices.is_empty());
        assert_eq!(merged.len(), 2);
        assert_eq!(merged[0].file.name, "a.zip", "the tracker's name for the file");
        assert_eq!(merged[0].holders, vec![holder(1, 1), holder(2, 2), holder(3, 3)], "port 2 once, as the tracker saw it");
        assert_eq!(merged[1].holders, vec![holder(4, 4)]);
    }

    #[test]
    fn one_source_failing_is_a_notice_all_failing_is_the_error() {
        let (merged, notices) = merge(vec![
            ("tracker".into(), Err(anyhow!("tracker unreachable"))),
            ("dht".into(), Ok(vec![found(1, "x", vec![holder(1, 1)])])),
        ]);
        assert_eq!(merged.unwrap().len(), 1);
        assert_eq!(notices.len(), 1);
        assert!(notices[0].contains("tracker: tracker unreachable"), "{}", notices[0]);
        let (merged, notices) = merge(vec![("tracker".into(), Err(anyhow!("down"))), ("dht".into(), Err(anyhow!("full id only")))]);
        assert_eq!(merged.unwrap_err().to_string(), "tracker: down; dht: full id only");
        assert!(notices.is_empty());
    }

    /// A source that answers with what it holds after a yield, or fails when it holds nothing.
    struct Fixed(Option<Vec<FileMatch>>);

    impl Discovery for Fixed {
        fn find<'a>(&'a self, _query: &'a str) -> Found<'a> {
            Box::pin(async move {
                tokio::task::yield_now().await;
                self.0.clone().ok_or_else(|| anyhow!("cannot answer"))
            })
        }
    }

    /// A source that never answers.
    struct Silent;

    impl Discovery for Silent {
        fn find<'a>(&'a self, _query: &'a str) -> Found<'a> {
            Box::pin(std::future::pending())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_source_does_not_hold_up_holders_another_found() {
        let many = Many::new(vec![
            ("tracker".into(), Arc::new(Fixed(Some(vec![found(1, "x", vec![holder(1, 1)])]))) as Arc<dyn Discovery>),
            ("dht".into(), Arc::new(Silent)),
        ]);
        let found = tokio::time::timeout(Duration::from_secs(1), many.holders(Digest([1; 32]))).await.expect("not held up").unwrap();
        assert_eq!(found[0].holders, vec![holder(1, 1)]);
    }

    #[tokio::test]
    async fn a_lookup_asks_every_source_and_tells_the_failures() {
        let many = Many::new(vec![
            ("tracker".into(), Arc::new(Fixed(None)) as Arc<dyn Discovery>),
            ("dht".into(), Arc::new(Fixed(Some(vec![found(1, "x", vec![holder(1, 1)])])))),
        ]);
        let mut notices = many.notices();
        let found = many.holders(Digest([1; 32])).await.unwrap();
        assert_eq!(found[0].holders, vec![holder(1, 1)]);
        assert!(notices.try_recv().unwrap().contains("tracker: cannot answer"));
    }
}
