//! Holders found while a download runs.
//!
//! A download's holders come from one lookup at its start; peers that start sharing the file
//! later, or come back after a blip, would never be used. The [`Finder`] asks discovery again,
//! soon at first and less often as the download goes on ([`FIRST_ASK`] doubling up to
//! [`LATEST_ASK`]), and at once with short steps when no holder is left, and connects to every
//! holder it has not got. A holder dropped for silence or for leaving may be found again; one
//! dropped for bad data stays out of this download.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::{Instant, Sleep};
use tracing::Span;

use super::holder::{HolderLink, HolderPool};
use crate::discovery::Discovery;
use crate::net::task;
use crate::net::tls::Identity;
use crate::protocol::{FileId, FileMatch, Fingerprint, Holder};

/// First wait before asking again: a crowd that starts together finds itself within seconds.
const FIRST_ASK: Duration = Duration::from_secs(1);
/// Longest wait between asks while holders work (BitTorrent's min-interval is of this order).
const LATEST_ASK: Duration = Duration::from_secs(30);
/// Longest wait between asks while no holder is left.
const WAITING_ASK: Duration = Duration::from_secs(8);

/// What the discovery side of a download needs: where to ask, who we are, how to connect.
pub struct Seek {
    /// Where holders come from.
    pub discovery: Arc<dyn Discovery>,
    /// This peer's id (never a holder of its own downloads).
    pub me: String,
    /// The peer's endpoint.
    pub endpoint: quinn::Endpoint,
    /// The peer's client configuration source.
    pub identity: Arc<Identity>,
    /// Shared holder connections.
    pub pool: Arc<HolderPool>,
}

/// Looks for new holders of one file in the background of its download.
pub struct Finder {
    seek: Arc<Seek>,
    file: FileId,
    /// Holders in use, or dropped for bad data (not to be asked again), by fingerprint...
    known: HashSet<Fingerprint>,
    /// ...and by address: a holder found on the DHT has no fingerprint until connected.
    known_at: HashSet<SocketAddr>,
    lookup: Option<JoinHandle<Result<Vec<FileMatch>>>>,
    joining: JoinSet<(Holder, Result<Arc<HolderLink>>)>,
    /// When to ask next: one timer for the download's life, reset when the time moves, since
    /// [`Finder::next`] is polled afresh after every chunk and a new timer each time would be
    /// work on the chunk path.
    next_ask: Pin<Box<Sleep>>,
    wait: Duration,
}

impl Finder {
    /// A finder for `file`, whose download already uses the holders `links`.
    pub fn new<'l>(seek: Arc<Seek>, file: FileId, links: impl IntoIterator<Item = &'l HolderLink>) -> Finder {
        let (known, known_at) = links.into_iter().map(|l| (l.fingerprint, l.addr())).unzip();
        let next_ask = Box::pin(tokio::time::sleep(FIRST_ASK));
        Finder { seek, file, known, known_at, lookup: None, joining: JoinSet::new(), next_ask, wait: FIRST_ASK }
    }

    /// A holder left or went silent: it may be found again.
    pub fn forget(&mut self, link: &HolderLink) {
        self.known.remove(&link.fingerprint);
        self.known_at.remove(&link.addr());
    }

    /// No holder is left: ask now, then every few seconds.
    pub fn hurry(&mut self) {
        self.wait = self.wait.min(FIRST_ASK);
        self.next_ask.as_mut().reset(Instant::now());
    }

    /// The next new holder connected; pending until there is one (cancel-safe: use it in
    /// `select!`, its state lives in `self`).
    pub async fn next(&mut self, waiting: bool) -> Arc<HolderLink> {
        loop {
            tokio::select! {
                _ = self.next_ask.as_mut(), if self.lookup.is_none() => self.ask(waiting),
                found = lookup(&mut self.lookup), if self.lookup.is_some() => {
                    self.lookup = None;
                    match found {
                        Ok(Ok(matches)) => self.connect_new(matches),
                        Ok(Err(err)) => tracing::debug!("asking again for holders failed: {err:#}"),
                        Err(err) => tracing::debug!("lookup task failed: {err}"),
                    }
                }
                Some(joined) = self.joining.join_next(), if !self.joining.is_empty() => match joined {
                    // A holder nobody vouched for is known by its certificate only now.
                    Ok((holder, Ok(link))) if !holder.vouched() && !self.known.insert(link.fingerprint) => {
                        tracing::debug!(peer = %link.peer_id, "a holder found again at another address: in use already");
                    }
                    Ok((_, Ok(link))) => {
                        self.wait = FIRST_ASK;
                        return link;
                    }
                    Ok((holder, Err(err))) => {
                        self.known_at.remove(&holder.addr);
                        if holder.vouched() {
                            self.known.remove(&holder.fingerprint);
                        }
                        tracing::debug!(peer = %holder.peer_id, "cannot reach a holder found later: {err:#}");
                    }
                    Err(err) => tracing::debug!("connect task failed: {err}"),
                },
            }
        }
    }

    /// Starts one lookup and schedules the next.
    fn ask(&mut self, waiting: bool) {
        let (discovery, file) = (self.seek.discovery.clone(), self.file);
        self.lookup = Some(task::spawn(Span::current(), async move { discovery.holders(file).await }));
        let most = if waiting { WAITING_ASK } else { LATEST_ASK };
        self.wait = (self.wait * 2).min(most);
        self.next_ask.as_mut().reset(Instant::now() + self.wait);
    }

    /// Connects to each holder of our file not in use yet.
    fn connect_new(&mut self, matches: Vec<FileMatch>) {
        let holders = matches.into_iter().filter(|m| m.file.id == self.file).flat_map(|m| m.holders);
        for holder in holders {
            let new_fp = !holder.vouched() || !self.known.contains(&holder.fingerprint);
            if holder.peer_id == self.seek.me || !new_fp || !self.known_at.insert(holder.addr) {
                continue;
            }
            if holder.vouched() {
                self.known.insert(holder.fingerprint);
            }
            let seek = self.seek.clone();
            task::spawn_in(&mut self.joining, Span::current(), async move {
                let link = seek.pool.link(seek.endpoint.clone(), &seek.identity, &holder).await;
                (holder, link)
            });
        }
    }
}

/// The running lookup's answer (pending if there is none).
async fn lookup(running: &mut Option<JoinHandle<Result<Vec<FileMatch>>>>) -> Result<Result<Vec<FileMatch>>, tokio::task::JoinError> {
    match running.as_mut() {
        Some(lookup) => lookup.await,
        None => std::future::pending().await,
    }
}
