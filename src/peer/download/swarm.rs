//! The swarm loop of one download: who has what, what to ask whom, and what came back.
//!
//! Every holder in use has a chunk window (its link decides how wide) and an `Observe` stream
//! saying what it has ([`super::availability`]); the [`Scheduler`] picks, rarest first, among
//! the chunks each holder has. Chunks are verified off the runtime and written; holders found
//! meanwhile join in; with nothing left to fetch from anyone, it waits up to the stall timeout
//! for a holder (or for a holder to get what is missing).

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context as _, Result, bail};
use quinn::RecvStream;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tracing::Span;

use super::availability::{self, News};
use super::checkpoints::Checkpoints;
use super::fetches::Fetches;
use super::{Context, Job};
use crate::logbook::{ChunkRecord, now_ms};
use crate::net::task;
use crate::peer::events::Progress;
use crate::peer::finder::Finder;
use crate::peer::holder::{FetchError, HolderLink, Pieces};
use crate::peer::scheduler::{Penalty, Scheduler};
use crate::units;

/// News from holders waiting to be applied; a full queue holds the readers back (each reads
/// at most a few frames a second anyway).
const NEWS_QUEUE: usize = 256;

/// Where one chunk's fetch is: its bytes arrived (or not), then it was verified and stored.
pub(super) enum Step {
    /// The bytes arrived, or the fetch failed.
    Fetched(Result<Pieces, FetchError>),
    /// The chunk was verified and written, or not.
    Stored(Result<(), FetchError>),
}

/// A chunk task's end: holder, chunk, when it was asked for, and what became of it.
pub(super) type ChunkResult = (usize, u32, Instant, Step);

/// News from holder number `.0`.
type Heard = (usize, News);

/// One holder in use.
struct InUse {
    link: Arc<HolderLink>,
    /// Whether it has said what it has yet.
    heard: bool,
    /// Whether it said it has everything.
    complete: bool,
}

/// The state of one download's swarm.
pub(super) struct Swarm<'c, 'a> {
    ctx: &'c Context<'a>,
    job: &'c Job,
    plan: Scheduler,
    holders: Vec<InUse>,
    tasks: JoinSet<ChunkResult>,
    fetches: Fetches,
    watchers: JoinSet<()>,
    news: (mpsc::Sender<Heard>, mpsc::Receiver<Heard>),
    finder: Finder,
    checkpoints: Checkpoints,
    /// Since when nothing has been in flight while every holder has said what it has.
    stalled: Option<Instant>,
}

impl<'c, 'a> Swarm<'c, 'a> {
    /// A swarm over `links` (each with its `Observe` stream if one is open) for `job`, with
    /// the chunks already `have`.
    pub(super) fn new(ctx: &'c Context<'a>, job: &'c Job, links: Vec<(Arc<HolderLink>, Option<RecvStream>)>, have: &[bool]) -> Self {
        let plan = Scheduler::new(job.manifest.count(), 1, |i| have[i as usize]);
        let finder = Finder::new(ctx.seek.clone(), job.id, links.iter().map(|(l, _)| l.as_ref()));
        let mut swarm = Swarm {
            ctx,
            job,
            plan,
            holders: Vec::new(),
            tasks: JoinSet::new(),
            fetches: Fetches::default(),
            watchers: JoinSet::new(),
            news: mpsc::channel(NEWS_QUEUE),
            finder,
            checkpoints: Checkpoints::default(),
            stalled: None,
        };
        links.into_iter().for_each(|(link, observing)| swarm.add(link, observing));
        swarm
    }

    /// Pulls every missing chunk; returns chunks per holder.
    pub(super) async fn run(mut self) -> Result<Vec<(String, u32)>> {
        while !self.plan.is_complete() {
            self.check_stalled()?;
            let give_up = tokio::time::Instant::from_std(self.stalled.map_or_else(Instant::now, |s| s + self.ctx.stall_timeout));
            tokio::select! {
                Some(ended) = self.tasks.join_next(), if !self.tasks.is_empty() => match ended {
                    // A race's loser, called off and settled when the winner landed.
                    Err(err) if err.is_cancelled() => {}
                    ended => {
                        let (holder, index, started, step) = ended.context("chunk task failed")?;
                        self.step(holder, index, started, step)?;
                    }
                },
                Some((holder, news)) = self.news.1.recv() => self.heard(holder, news),
                link = self.finder.next(self.stalled.is_some()) => self.found(link),
                _ = tokio::time::sleep_until(give_up), if self.stalled.is_some() => continue,
                _ = self.ctx.cancel.cancelled() => bail!("cancelled; what was verified is kept, get it again to resume"),
            }
            self.refill();
        }
        self.checkpoints.settle().await;
        let _ = self.ctx.events.send(Progress::Done);
        Ok(self.per_peer())
    }

    /// Chunks each peer delivered, once per peer however often it was dropped and found again.
    fn per_peer(&self) -> Vec<(String, u32)> {
        let mut from: Vec<(String, u32)> = Vec::new();
        for (i, h) in self.holders.iter().enumerate() {
            match from.iter_mut().find(|(peer, _)| *peer == h.link.peer_id) {
                Some((_, n)) => *n += self.plan.delivered(i),
                None => from.push((h.link.peer_id.clone(), self.plan.delivered(i))),
            }
        }
        from
    }

    /// Starts the stall clock when nothing is in flight and nobody has news to come; fails
    /// once it has run for the stall timeout.
    fn check_stalled(&mut self) -> Result<()> {
        let quiet = self.tasks.is_empty() && self.holders.iter().enumerate().all(|(i, h)| h.heard || self.plan.is_dropped(i));
        if quiet && self.stalled.is_none() && self.take_from_seeders() {
            // Not stalled after all: the seeders that offered chunks have the rest too.
            self.refill();
            return Ok(());
        }
        if !quiet {
            self.stalled = None;
        } else if self.stalled.is_none() {
            self.stalled = Some(Instant::now());
            self.finder.hurry();
            self.say_waiting();
        }
        if let Some(since) = self.stalled.filter(|s| s.elapsed() >= self.ctx.stall_timeout) {
            let count = self.job.manifest.count();
            let kept = count as usize - self.plan.remaining();
            let waited = units::span(since.elapsed());
            bail!("no holder answered for {waited}; {kept} of {count} chunks verified and kept, get it again to resume");
        }
        Ok(())
    }

    /// With nothing to fetch from anyone, a seeder that offered chunks (it has them all) is
    /// asked for the others too: it offered what few others had, and the missing chunks may be
    /// ones it has not offered us yet (a crowd's last chunks). Returns whether one was.
    fn take_from_seeders(&mut self) -> bool {
        let mut any = false;
        for (i, h) in self.holders.iter().enumerate() {
            if h.complete && self.plan.unspare(i) {
                self.plan.holder_has_all(i);
                any = true;
            }
        }
        any
    }

    /// Says that the download waits: for a holder, or for its holders to get what is missing.
    fn say_waiting(&self) {
        let (count, wait) = (self.job.manifest.count(), units::span(self.ctx.stall_timeout));
        let kept = count as usize - self.plan.remaining();
        let live = self.plan.live_holders();
        let what = if live == 0 {
            format!("no holder left for {}; waiting up to {wait} for one", self.job.name)
        } else {
            format!("the holders of {} have none of the missing chunks yet; waiting up to {wait}", self.job.name)
        };
        let _ = self.ctx.events.send(Progress::Note(format!("{what}, asking again ({kept} of {count} chunks kept)")));
        self.say_holders();
    }

    /// Says how many holders work for the download, and how many of them came from the DHT.
    fn say_holders(&self) {
        let live = |(at, _): &(usize, &InUse)| !self.plan.is_dropped(*at);
        let from_dht = self.holders.iter().enumerate().filter(live).filter(|(_, h)| h.link.from_dht).count();
        let _ = self.ctx.events.send(Progress::Holders(self.plan.live_holders()));
        let _ = self.ctx.events.send(Progress::FromDht(from_dht));
    }

    /// A holder joins: it gets a place in the plan and an `Observe` stream.
    fn add(&mut self, link: Arc<HolderLink>, observing: Option<RecvStream>) {
        let holder = self.plan.add_holder(link.window(self.job.manifest.chunk_size.into()));
        let (id, count, out) = (self.job.id, self.job.manifest.count(), self.news.0.clone());
        let watching = availability::watch((link.clone(), observing), holder, id, count, out);
        task::spawn_in(&mut self.watchers, Span::current(), watching);
        self.holders.push(InUse { link, heard: false, complete: false });
    }

    /// A holder found during the download joins.
    fn found(&mut self, link: Arc<HolderLink>) {
        if self.stalled.take().is_some() {
            let note = format!("found peer {} for {}; going on", link.peer_id, self.job.name);
            let _ = self.ctx.events.send(Progress::Note(note));
        }
        self.add(link, None);
        self.say_holders();
    }

    /// A holder said what it has.
    fn heard(&mut self, holder: usize, news: News) {
        let Some(h) = self.holders.get_mut(holder) else { return };
        h.heard = true;
        match news {
            News::All => {
                h.complete = true;
                self.plan.holder_has_all(holder);
            }
            News::Chunks(indices) => indices.into_iter().for_each(|i| {
                self.plan.holder_has(holder, i);
            }),
            News::Offer(indices) => {
                // A complete holder steering a crowd: it has them all, and asks for these, and
                // for no chunk another leecher has (its uplink serves the whole crowd).
                h.complete = true;
                self.plan.spare(holder);
                indices.into_iter().for_each(|i| {
                    self.plan.holder_has(holder, i);
                });
            }
            News::Refused(why) => self.drop_holder(holder, &format!("it does not share the file ({why})"), true),
            News::Broken(why) => self.drop_holder(holder, &why, false),
        }
    }

    /// Stops using `holder` for this download; `again` if it may be found again later.
    fn drop_holder(&mut self, holder: usize, why: &str, again: bool) {
        if self.plan.drop_holder(holder) {
            let link = &self.holders[holder].link;
            let _ = self.ctx.events.send(Progress::Note(format!("stopped using peer {} for {}: {why}", link.peer_id, self.job.name)));
            self.say_holders();
            if again {
                self.finder.forget(link);
            }
        }
    }

    /// One chunk task moved on: its bytes are here (or not), or it is verified (or not).
    fn step(&mut self, holder: usize, index: u32, started: Instant, step: Step) -> Result<()> {
        let landed = match step {
            // Called off, but it ended before it could be stopped: settled already.
            Step::Fetched(_) if !self.fetches.ended(holder, index) => 0,
            Step::Fetched(fetched) => {
                self.plan.arrived(holder);
                match fetched {
                    Ok(data) => self.verify_later(holder, index, started, data),
                    Err(err) => self.failed(holder, index, err)?,
                }
                0
            }
            Step::Stored(Ok(())) if self.plan.done(holder, index) => {
                self.call_off_racers(index);
                self.landed(holder, index, started)
            }
            Step::Stored(Ok(())) => 0,
            Step::Stored(Err(err)) => {
                self.failed(holder, index, err)?;
                0
            }
        };
        self.checkpoints.maybe(self.job, landed);
        Ok(())
    }

    /// Verifies and stores a chunk that arrived, in the background; an endgame racer's late
    /// copy of a chunk already verified is not checked again.
    fn verify_later(&mut self, holder: usize, index: u32, started: Instant, data: Pieces) {
        if self.plan.is_done(index) {
            self.plan.done(holder, index);
            return;
        }
        let job = self.job.clone();
        task::spawn_in(&mut self.tasks, Span::current(), async move {
            (holder, index, started, Step::Stored(job.verify_and_store(index, data).await))
        });
    }

    /// Hands a failed chunk back to the plan; tells the user when that dropped the holder (one
    /// that left or went silent may be found again; one that sent bad data, or refused a chunk
    /// it said it has, stays out). Our own disk failing ends the download.
    fn failed(&mut self, holder: usize, index: u32, err: FetchError) -> Result<()> {
        let err = match err {
            FetchError::Disk(err) => return Err(err).context("cannot write the download"),
            FetchError::Internal(why) => bail!("chunk {index}: internal error while verifying ({why}); what was verified is kept"),
            err => err,
        };
        let lied = matches!(err, FetchError::Refused(_)) && !self.holders[holder].complete;
        let penalty = if lied { Penalty::Strike } else { err.penalty() };
        if self.plan.failed(holder, index, penalty) {
            let link = &self.holders[holder].link;
            let note = format!("stopped using peer {} for {}: {err}", link.peer_id, self.job.name);
            let _ = self.ctx.events.send(Progress::Note(note));
            self.say_holders();
            if penalty == Penalty::Drop {
                self.finder.forget(link);
            }
        }
        Ok(())
    }

    /// Gives every holder work up to its window, as its link measures it now.
    fn refill(&mut self) {
        let chunk_size = self.job.manifest.chunk_size.into();
        for (holder, h) in self.holders.iter().enumerate() {
            if self.plan.is_dropped(holder) {
                continue;
            }
            self.plan.set_window(holder, h.link.window(chunk_size));
            while let Some(index) = self.plan.next(holder) {
                let (link, job) = (h.link.clone(), self.job.clone());
                let fetch = task::spawn_in(&mut self.tasks, Span::current(), async move {
                    let started = Instant::now();
                    let fetched = link.chunk(job.id, index, job.manifest.len_of(index)).await;
                    (holder, index, started, Step::Fetched(fetched))
                });
                self.fetches.started(holder, index, fetch);
            }
        }
    }

    /// Stops the other copies of a chunk just verified that are still on their way (an endgame
    /// race's losers): their holders' uplinks have better things to carry.
    fn call_off_racers(&mut self, index: u32) {
        for loser in self.fetches.call_off(index) {
            self.plan.arrived(loser);
            self.plan.done(loser, index);
        }
    }

    /// Records a newly verified chunk; returns its length.
    fn landed(&self, holder: usize, index: u32, started: Instant) -> u64 {
        self.ctx.got_a_chunk();
        let (job, h) = (self.job, &self.holders[holder]);
        let bytes = job.manifest.len_of(index);
        let record = ChunkRecord {
            ts_ms: now_ms(),
            file: job.name.clone(),
            id: job.id.to_hex(),
            chunk: index,
            from: h.link.peer_id.clone(),
            bytes,
            ms: started.elapsed().as_millis() as u64,
            partial: !h.complete,
        };
        self.ctx.log.append(&record);
        self.ctx.shares.traffic().received(bytes);
        let _ = self.ctx.events.send(Progress::Chunk { bytes });
        bytes
    }
}
