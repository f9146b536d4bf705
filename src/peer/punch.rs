//! Reaching a holder behind a NAT: connect directly, and if that has not worked after a short
//! head start, ask the tracker to introduce us and connect again while the holder sends
//! towards us (hole punching).
//!
//! A holder behind a home router cannot be reached at the address the tracker observed until
//! it has sent something towards us from its one endpoint: its NAT lets in only what answers
//! its own packets. So after [`HEAD_START`] without an answer, we send `Introduce` on our
//! tracker connection; the tracker pushes our observed address to the holder and answers with
//! the holder's address and when to start (`tracker::rendezvous`). At that moment the holder
//! sends towards us (`discovery::tracker::pushes`) and we open a fresh connection attempt,
//! whose first packet opens our NAT for the holder's answers and finds the holder's NAT open.
//! The certificate is pinned exactly as on a direct connection. Up to [`PUNCH_ATTEMPTS`]
//! introductions are tried, with backoff; the direct attempt keeps running meanwhile, and
//! whichever connects first is the link.
//!
//! The direct attempt goes to every address worth trying at once
//! ([`addrs::worth_trying`](crate::net::addrs::worth_trying)): the observed one, the holder's
//! home-network address when we sit behind the same router (most routers do not loop a
//! packet for their own public address back inside), its global IPv6 address when we have
//! IPv6. The first handshake wins; the certificate pins out any other machine there.
//!
//! When both NATs give each destination a new port, neither side's packets are ever let in:
//! the holder fails after about [`NO_PATH_AFTER`] with a reason that says so, and the download
//! goes on with the holders it reached.

use std::collections::HashSet;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use quinn::{ClientConfig, Connection, Endpoint};

use super::holder::HolderPool;
use crate::discovery::tracker::TrackerLink;
use crate::net::dial::attempt;
use crate::net::tls;
use crate::protocol::{Holder, MAX_START_IN_MS, TrackerRequest, TrackerResponse};

/// Time to connect directly when nothing better is known: a handshake over a long, lossy link
/// may lose its first packets, and quinn's retries back off from one second.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Least wait for a direct answer before asking for an introduction: a reachable holder on
/// a LAN or across a country answers well within it; it grows with the tracker's round trip.
const HEAD_START: Duration = Duration::from_millis(200);
/// Introductions tried before giving up on punching.
const PUNCH_ATTEMPTS: u32 = 3;
/// Least time one punched attempt waits for the handshake (its first packets are resent
/// every few tens of milliseconds meanwhile).
const ATTEMPT_TIMEOUT: Duration = Duration::from_millis(500);
/// Wait after the first failed punched attempt; doubles after each.
const PUNCH_BACKOFF: Duration = Duration::from_millis(100);
/// How long an introduction may take to be answered.
const INTRODUCE_TIMEOUT: Duration = Duration::from_secs(1);
/// When every punched attempt failed, the direct attempt is given up too once it has run
/// this long: the holder's packets would have opened the direct path as well.
const NO_PATH_AFTER: Duration = Duration::from_secs(2);
/// Most round trip assumed for a punched attempt's first packets (quinn's own default).
const MAX_GUESSED_RTT: Duration = Duration::from_millis(333);

/// Introductions through our tracker link, and the holders that needed one.
pub struct Rendezvous {
    link: Arc<TrackerLink>,
    /// Holders reached only by punching: asked for an introduction at once next time.
    punched: Mutex<HashSet<SocketAddr>>,
}

impl HolderPool {
    /// This pool, reaching holders behind NATs through introductions on `link`.
    pub fn with_rendezvous(mut self, link: Arc<TrackerLink>) -> HolderPool {
        self.rendezvous = Some(Rendezvous { link, punched: Mutex::default() });
        self
    }
}

/// Why punching did not give a connection.
enum Punch {
    /// The tracker could not introduce us (an older tracker, the holder not registered there,
    /// too many introductions): the direct attempt goes on as it would have.
    NotIntroduced(String),
    /// Introduced, and no attempt got an answer.
    NoPath(u32),
    /// An attempt got an answer that was a failure (a certificate that is not the pinned one).
    Failed(anyhow::Error),
}

/// A connection to `holder` through `config` (which pins its fingerprint): direct, and
/// through introductions when `rendezvous` is given and the direct attempt is slow.
pub async fn connect(endpoint: &Endpoint, config: ClientConfig, holder: &Holder, rendezvous: Option<&Rendezvous>) -> Result<Connection> {
    let started = Instant::now();
    // A holder found on the DHT is not the tracker's to introduce.
    let Some(rendezvous) = rendezvous.filter(|_| holder.vouched()) else {
        return attempt(endpoint, config, holder.addr, CONNECT_TIMEOUT).await;
    };
    let seen = rendezvous.link.whereabouts();
    let also = crate::net::addrs::worth_trying(holder.addr, &holder.also, seen.observed, seen.ipv6());
    // Resent as often as a punched attempt: an attempt dropped unanswered lingers (and holds up
    // leaving) for nine of the round trips it assumes, three seconds at quinn's default.
    let quick = tls::with_initial_rtt(config.clone(), rendezvous.rtt_guess());
    let direct = attempt_all(endpoint, quick, holder.addr, &also, CONNECT_TIMEOUT);
    let mut direct = std::pin::pin!(direct);
    if let Ok(done) = tokio::time::timeout(rendezvous.head_start(holder.addr), &mut direct).await {
        return connected(done, "directly", started);
    }
    // Once the holder has been told to punch, the direct attempt's resends may be what gets
    // through the hole it opened: that connection is the punch's work too.
    let introduced = AtomicBool::new(false);
    let punched = std::pin::pin!(rendezvous.punch(endpoint, &config, holder, &also, &introduced));
    tokio::select! {
        done = &mut direct => {
            // The holder's home-network address needs no hole; any other may have got in
            // through the one the holder's punch opened (towards our observed or IPv6 address).
            let at_home = done.as_ref().is_ok_and(|c| {
                let addr = crate::net::addrs::canonical(c.remote_address());
                addr != holder.addr && crate::net::addrs::scope(addr.ip()) == crate::net::addrs::Scope::Home
            });
            let punched = introduced.load(Ordering::Relaxed) && !at_home;
            if punched {
                rendezvous.remember(holder.addr);
                rendezvous.report(holder, done.is_ok());
            }
            connected(done, if punched { "by hole punching" } else { "directly" }, started)
        }
        punched = punched => settle(punched, direct, rendezvous, holder, started).await,
    }
}

/// What punching's end means for the connection: its own, the direct attempt's (given its
/// usual time if the tracker could not introduce us, else until [`NO_PATH_AFTER`]), or why
/// there is no path.
async fn settle(
    punched: Result<Connection, Punch>,
    direct: Pin<&mut impl Future<Output = Result<Connection>>>,
    rendezvous: &Rendezvous,
    holder: &Holder,
    started: Instant,
) -> Result<Connection> {
    match punched {
        Ok(conn) => {
            rendezvous.remember(holder.addr);
            rendezvous.report(holder, true);
            connected(Ok(conn), "by hole punching", started)
        }
        Err(Punch::NotIntroduced(why)) => direct.await.with_context(|| format!("the tracker could not introduce us either ({why})")),
        Err(Punch::NoPath(tries)) => match tokio::time::timeout(NO_PATH_AFTER.saturating_sub(started.elapsed()), direct).await {
            Ok(done) => {
                rendezvous.report(holder, done.is_ok());
                connected(done, "directly", started)
            }
            Err(_) => {
                rendezvous.report(holder, false);
                bail!(
                    "no path: no answer directly, nor to {tries} hole-punching attempts through the tracker ({})",
                    why_no_path(rendezvous, holder)
                )
            }
        },
        Err(Punch::Failed(err)) => Err(err),
    }
}

/// The likely reason no path worked: behind one public address with a holder that told no
/// home-network address (an older peer), the router not looping back; else NATs that give
/// each destination a new port.
fn why_no_path(rendezvous: &Rendezvous, holder: &Holder) -> &'static str {
    let us = rendezvous.link.whereabouts().observed.map(|a| crate::net::addrs::canonical(a).ip());
    match us == Some(holder.addr.ip()) {
        true => "we share its public address, our router does not loop back to it, and it named no home-network address",
        false => "its NAT or ours gives each destination a new port",
    }
}

/// Logs how a connection was made and how long it took (the NAT measurement reads it).
fn connected(done: Result<Connection>, how: &str, started: Instant) -> Result<Connection> {
    if let Ok(conn) = &done {
        let ms = started.elapsed().as_secs_f64() * 1e3;
        let addr = crate::net::addrs::canonical(conn.remote_address());
        tracing::debug!(%addr, how, ms = format!("{ms:.1}"), "connected to holder");
    }
    done
}

/// Attempts to `first` and to each of `also` at once, each given up after `within`: the
/// first connection made, else `first`'s error.
async fn attempt_all(
    endpoint: &Endpoint,
    config: ClientConfig,
    first: SocketAddr,
    also: &[SocketAddr],
    within: Duration,
) -> Result<Connection> {
    let addrs: Vec<SocketAddr> = std::iter::once(first).chain(also.iter().copied()).collect();
    Ok(crate::net::dial::first_of(endpoint, config, &addrs, within).await?.1)
}

/// Whether an attempt's error is only that nothing answered in time.
fn timed_out(err: &anyhow::Error) -> bool {
    err.chain().any(|e| e.is::<tokio::time::error::Elapsed>())
}

impl Rendezvous {
    /// How long a direct attempt goes alone: none for a holder we could reach only by
    /// punching, else [`HEAD_START`] or a few round trips to the tracker if longer.
    fn head_start(&self, addr: SocketAddr) -> Duration {
        if self.punched.lock().unwrap_or_else(|p| p.into_inner()).contains(&addr) {
            return Duration::ZERO;
        }
        HEAD_START.max(self.link.rtt().unwrap_or_default() * 4)
    }

    /// Our round trip to the tracker twice: about ours to the holder through it, an upper
    /// bound on the direct one; quinn resends unanswered first packets after three of it.
    fn rtt_guess(&self) -> Duration {
        (self.link.rtt().unwrap_or_default() * 2).min(MAX_GUESSED_RTT)
    }

    /// Tells the tracker, in the background, how the connection to `holder` it introduced us
    /// to went, for its views of how peers are reached.
    fn report(&self, holder: &Holder, connected: bool) {
        let request = TrackerRequest::Punched { peer_id: holder.peer_id.clone(), fingerprint: holder.fingerprint, connected };
        let link = self.link.clone();
        let span = tracing::debug_span!("punch report", holder = %holder.peer_id);
        crate::net::task::spawn(span, async move {
            if let Err(err) = link.request(&request).await {
                tracing::debug!("the tracker did not take the punch report: {err:#}");
            }
        });
    }

    fn remember(&self, addr: SocketAddr) {
        self.punched.lock().unwrap_or_else(|p| p.into_inner()).insert(addr);
    }

    /// Up to [`PUNCH_ATTEMPTS`] introductions, each followed by a fresh attempt at the time
    /// the tracker gives (to the holder's address it names and to its further addresses
    /// `also`: the holder punches towards our IPv6 ones too), with backoff between them.
    async fn punch(
        &self,
        endpoint: &Endpoint,
        config: &ClientConfig,
        holder: &Holder,
        also: &[SocketAddr],
        introduced: &AtomicBool,
    ) -> Result<Connection, Punch> {
        let rtt = self.rtt_guess();
        let mut backoff = PUNCH_BACKOFF;
        for tries in 0..PUNCH_ATTEMPTS {
            let (addr, wait) = match self.introduce(holder).await {
                Ok(told) => told,
                Err(why) if tries == 0 => return Err(Punch::NotIntroduced(why)),
                Err(_) => return Err(Punch::NoPath(tries)),
            };
            introduced.store(true, Ordering::Relaxed);
            tokio::time::sleep(wait).await;
            let config = tls::with_initial_rtt(config.clone(), rtt);
            match attempt_all(endpoint, config, addr, also, ATTEMPT_TIMEOUT.max(rtt * 4)).await {
                Ok(conn) => return Ok(conn),
                Err(err) if timed_out(&err) => {
                    tracing::debug!(peer = %holder.peer_id, %addr, "punched attempt {} got no answer", tries + 1)
                }
                Err(err) => return Err(Punch::Failed(err)),
            }
            tokio::time::sleep(backoff).await;
            backoff *= 2;
        }
        Err(Punch::NoPath(PUNCH_ATTEMPTS))
    }

    /// Asks the tracker to introduce us to `holder`: its address now, and when to connect.
    async fn introduce(&self, holder: &Holder) -> Result<(SocketAddr, Duration), String> {
        let request = TrackerRequest::Introduce { peer_id: holder.peer_id.clone(), fingerprint: holder.fingerprint };
        let answer = tokio::time::timeout(INTRODUCE_TIMEOUT, self.link.request(&request)).await;
        match answer.map_err(|_| anyhow!("no answer within {INTRODUCE_TIMEOUT:?}")).and_then(|a| a) {
            Ok(TrackerResponse::Introduced { addr, start_in_ms }) => {
                Ok((addr, Duration::from_millis(start_in_ms.min(MAX_START_IN_MS).into())))
            }
            Ok(other) => Err(format!("unexpected answer {other:?}")),
            Err(err) => Err(format!("{err:#}")),
        }
    }
}
