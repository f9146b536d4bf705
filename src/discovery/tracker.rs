//! The peer's link to the tracker: connect, register, heartbeat, reconnect with backoff; and
//! the tracker as a [`Discovery`] source (`Lookup`).
//!
//! The link runs in the background for the peer's whole life. While connected it sends `alive`
//! every heartbeat; when the connection drops, or the tracker says we are unknown (it restarted
//! or expired us), it reconnects with exponential backoff and registers again with everything
//! this peer shares. Requests from the prompt use whatever connection is current and fail at
//! once, with a clear message, while there is none.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use quinn::{Connection, Endpoint};
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

use crate::protocol::{self, MAX_CONTACT_ADDRESSES, MAX_FRAME, TrackerRequest, TrackerResponse, close};
use crate::store::shares::Shares;

mod lookup;
mod pushes;
mod session;

/// First wait before reconnecting; doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(200);
/// Longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How long a peer waits before registering again with a tracker that turned it away for now
/// without saying for how long (an older tracker, full); spread by [`jittered`].
const BUSY_WAIT: Duration = Duration::from_secs(45);
/// How long one request to the tracker may take, connection set-up included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Notices kept for a slow listener before the oldest are dropped.
const NOTICES: usize = 32;
/// What a request says on a peer with no tracker.
pub const NO_TRACKER: &str = "no tracker: this peer runs with --no-tracker (names, tickets and listings need one)";

/// How a connection attempt ended.
enum Ended {
    /// The tracker refused us for good (id taken, version): stop the peer.
    Refused(String),
    /// Lost or never made: try again later.
    Lost(String),
    /// Turned away for now (the tracker is at a limit): try again after `wait`.
    Busy { reason: String, wait: Duration, told: Duration },
}

/// What the reconnecting loop remembers from one attempt to the next.
#[derive(Default)]
struct Attempts {
    /// Wait before the next attempt after a loss.
    backoff: Duration,
    /// Whether the last attempt got a registered connection up.
    was_up: bool,
    /// Whether "unreachable" was said already.
    warned: bool,
    /// The last "turned away" reason said.
    busy_shown: Option<String>,
}

/// The current connection to the tracker, if any.
pub struct TrackerLink {
    /// Addresses of the one tracker (a ticket may name several); all are tried at once.
    addrs: Vec<SocketAddr>,
    /// The address that answered last, for messages.
    reached: Mutex<Option<SocketAddr>>,
    /// Why the last attempt to connect or stay connected failed.
    last_error: Mutex<Option<String>>,
    /// `None` for a peer that runs with no tracker at all (`--no-tracker`).
    client: Option<quinn::ClientConfig>,
    conn: Mutex<Option<Connection>>,
    /// `None` until the first attempt ends, then whether a registered connection is up.
    up: watch::Sender<Option<bool>>,
    /// What a person should hear about the link (connected, lost); the prompt prints them.
    notices: broadcast::Sender<String>,
    /// Where the tracker sees us, and our further addresses, as of the last registration.
    seen: Mutex<Whereabouts>,
}

/// Where this peer is, as its last registration found: the address the tracker observed,
/// and the further addresses it told (`Addresses`).
#[derive(Clone, Debug, Default)]
pub struct Whereabouts {
    /// Our address as the tracker sees it; `None` before a registration.
    pub observed: Option<SocketAddr>,
    /// Our further addresses (home network, global IPv6).
    pub further: Vec<SocketAddr>,
}

impl Whereabouts {
    /// Whether we have a global IPv6 address to reach holders' IPv6 addresses from.
    pub fn ipv6(&self) -> bool {
        self.further.iter().any(|a| crate::net::addrs::scope(a.ip()) == crate::net::addrs::Scope::Global6)
    }
}

impl TrackerLink {
    /// A link to the tracker at `addrs` (one tracker, maybe several addresses; at least one),
    /// trusted through `client` (which pins its certificate).
    pub fn new(addrs: Vec<SocketAddr>, client: quinn::ClientConfig) -> TrackerLink {
        TrackerLink { addrs, client: Some(client), ..TrackerLink::none() }
    }

    /// No tracker at all: requests fail with [`NO_TRACKER`], and the link never comes up.
    pub fn none() -> TrackerLink {
        TrackerLink {
            addrs: Vec::new(),
            reached: Mutex::new(None),
            last_error: Mutex::new(None),
            client: None,
            conn: Mutex::new(None),
            up: watch::Sender::new(None),
            notices: broadcast::Sender::new(NOTICES),
            seen: Mutex::default(),
        }
    }

    /// The tracker's address for a person: the one that answered last, else the first known
    /// (with how many others are tried).
    pub fn shown(&self) -> String {
        if let Some(addr) = *self.reached.lock().unwrap_or_else(|p| p.into_inner()) {
            return addr.to_string();
        }
        match self.addrs.as_slice() {
            [] => "no tracker".into(),
            [one] => one.to_string(),
            [first, rest @ ..] => format!("{first} (and {} other address{})", rest.len(), if rest.len() == 1 { "" } else { "es" }),
        }
    }

    fn current(&self) -> Option<Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set(&self, conn: Option<Connection>) {
        let up = conn.is_some();
        // Store first, then publish: whoever wakes on "up" must find the connection.
        *self.conn.lock().unwrap_or_else(|p| p.into_inner()) = conn;
        self.up.send_replace(Some(up));
    }

    /// Notices about the link from now on, for the prompt to print.
    pub fn notices(&self) -> broadcast::Receiver<String> {
        self.notices.subscribe()
    }

    fn notify(&self, text: String) {
        // Nobody listening (a library user, a bench) is fine: the notice is just dropped.
        let _ = self.notices.send(text);
    }

    /// Resolves once a registered connection is up.
    pub async fn wait_up(&self) {
        let mut up = self.up.subscribe();
        let _ = up.wait_for(|up| *up == Some(true)).await;
    }

    /// Each change of the link: `Some(true)` every time a registration succeeds (again).
    pub fn watch_up(&self) -> watch::Receiver<Option<bool>> {
        self.up.subscribe()
    }

    /// Resolves once the first connection attempt has succeeded or failed.
    pub async fn wait_first_attempt(&self) {
        let mut up = self.up.subscribe();
        let _ = up.wait_for(Option::is_some).await;
    }

    /// Why the last attempt to reach the tracker failed, if one did.
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Where the last registration found us.
    pub fn whereabouts(&self) -> Whereabouts {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The measured round trip to the tracker, while connected.
    pub fn rtt(&self) -> Option<Duration> {
        self.current().map(|c| c.rtt())
    }

    /// Whether a registered connection is up.
    pub fn is_connected(&self) -> bool {
        self.current().is_some_and(|c| c.close_reason().is_none())
    }

    /// Sends one request and returns the tracker's answer (its `Error` as an error). A
    /// tracker too busy for it says when to come back; it is asked again then, jittered, while
    /// the request's time lasts.
    pub async fn request(&self, request: &TrackerRequest) -> Result<TrackerResponse> {
        if self.client.is_none() {
            bail!("{NO_TRACKER}");
        }
        let deadline = tokio::time::Instant::now() + REQUEST_TIMEOUT;
        loop {
            let conn = self.current().ok_or_else(|| anyhow!("tracker unreachable at {}", self.shown()))?;
            match tokio::time::timeout_at(deadline, exchange(&conn, request)).await {
                Ok(Ok(TrackerResponse::RetryLater { reason, after_ms })) => {
                    let wait = jittered(Duration::from_millis(after_ms.into())).max(MIN_BACKOFF);
                    if tokio::time::Instant::now() + wait >= deadline {
                        bail!("tracker refused: {reason}");
                    }
                    tracing::debug!(?wait, "tracker busy: {reason}");
                    tokio::time::sleep(wait).await;
                }
                Ok(Ok(TrackerResponse::Error(reason) | TrackerResponse::Refused { reason, .. })) => bail!("tracker refused: {reason}"),
                Ok(Ok(response)) => return Ok(response),
                Ok(Err(err)) => return Err(err.context(format!("tracker at {} did not answer", self.shown()))),
                Err(_) => bail!("tracker at {} did not answer within {:?}", self.shown(), REQUEST_TIMEOUT),
            }
        }
    }

    /// Tells the tracker we leave, then closes the connection.
    pub async fn leave(&self) {
        if let Some(conn) = self.current() {
            let _ = tokio::time::timeout(Duration::from_secs(2), exchange(&conn, &TrackerRequest::Exit)).await;
            conn.close(close::DONE, b"bye");
        }
        self.set(None);
    }

    /// Keeps the link up until `shutdown`; a permanent refusal cancels `shutdown` and is returned.
    pub async fn run(
        &self,
        endpoint: Endpoint,
        id: String,
        shares: Shares,
        heartbeat: Duration,
        shutdown: CancellationToken,
    ) -> Option<String> {
        if self.client.is_none() {
            self.up.send_replace(Some(false));
            shutdown.cancelled().await;
            return None;
        }
        let mut attempts = Attempts { backoff: MIN_BACKOFF, ..Attempts::default() };
        loop {
            let ended = tokio::select! {
                biased;
                _ = shutdown.cancelled() => return None,
                ended = self.session(&endpoint, &id, &shares, heartbeat, &mut attempts.was_up) => ended,
            };
            let wait = match self.ended(ended, &mut attempts) {
                Ok(wait) => wait,
                Err(reason) => {
                    shutdown.cancel();
                    return Some(reason);
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => return None,
                _ = tokio::time::sleep(wait) => {}
            }
            // Never wait longer than a heartbeat, so a restarted tracker hears from us again
            // within two heartbeats.
            attempts.backoff = (attempts.backoff * 2).min(MAX_BACKOFF.min(heartbeat)).max(MIN_BACKOFF);
        }
    }

    /// Tells a person what an attempt's end means (each thing once, not at every retry) and
    /// returns how long to wait before the next; a final refusal is returned as the error.
    fn ended(&self, ended: Ended, attempts: &mut Attempts) -> Result<Duration, String> {
        let (Ended::Lost(reason) | Ended::Refused(reason) | Ended::Busy { reason, .. }) = &ended;
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason.clone());
        match ended {
            Ended::Refused(reason) => {
                self.set(None);
                return Err(reason);
            }
            Ended::Lost(reason) if attempts.was_up => {
                self.notify(format!("lost the tracker at {}: {reason}; reconnecting", self.shown()));
                attempts.was_up = false;
                attempts.busy_shown = None;
                attempts.backoff = MIN_BACKOFF;
            }
            Ended::Lost(reason) if !attempts.warned => {
                self.set(None);
                self.notify(format!("tracker unreachable at {}: {reason}; retrying", self.shown()));
                attempts.warned = true;
            }
            Ended::Lost(_) => {}
            Ended::Busy { reason, wait, told } => {
                self.set(None);
                if attempts.busy_shown.as_deref() != Some(reason.as_str()) {
                    let every = told.as_secs_f64().round();
                    self.notify(format!("tracker at {} turned us away: {reason}; trying again every ~{every} s", self.shown()));
                    attempts.busy_shown = Some(reason);
                }
                return Ok(wait);
            }
        }
        Ok(attempts.backoff)
    }

    /// Where the tracker says others can reach it (for tickets); empty if it cannot say.
    pub async fn contact(&self) -> Vec<String> {
        match self.request(&TrackerRequest::Contact).await {
            Ok(TrackerResponse::Contact(addrs)) => {
                addrs.into_iter().filter(|a| super::ticket::usable_address(a)).take(MAX_CONTACT_ADDRESSES).collect()
            }
            Ok(_) | Err(_) => Vec::new(),
        }
    }
}

/// A registration turned away for now, to try again after about `told` (at least a moment,
/// at most [`protocol::MAX_RETRY_AFTER_MS`]), jittered.
fn busy(reason: String, told: Duration) -> Ended {
    let told = told.clamp(MIN_BACKOFF, Duration::from_millis(protocol::MAX_RETRY_AFTER_MS.into()));
    Ended::Busy { reason, wait: jittered(told), told }
}

/// `wait` spread over ⅔ to 4⁄3 of itself (45 s: 30–60 s), so peers turned away together
/// do not all come back together.
fn jittered(wait: Duration) -> Duration {
    use std::hash::BuildHasher;
    // A fresh RandomState is randomly keyed: random enough for spreading retries.
    let spread = std::collections::hash_map::RandomState::new().hash_one(std::time::Instant::now()) % 1000;
    wait.mul_f64(2.0 / 3.0 + spread as f64 / 1500.0)
}

/// One request on its own bidirectional stream, one response back.
pub(super) async fn exchange(conn: &Connection, request: &TrackerRequest) -> Result<TrackerResponse> {
    let (mut send, mut recv) = conn.open_bi().await?;
    protocol::write_frame(&mut send, request).await?;
    send.finish()?;
    Ok(protocol::read_frame(&mut recv, MAX_FRAME).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_turned_away_peer_waits_about_what_it_is_told_within_bounds() {
        let waits = |told: Duration| (0..50).map(move |_| jittered(told));
        assert!(waits(BUSY_WAIT).all(|w| w >= Duration::from_secs(30) && w <= Duration::from_secs(60)));
        assert!(waits(BUSY_WAIT).collect::<std::collections::HashSet<_>>().len() > 1, "spread, not all the same");
        let Ended::Busy { told, .. } = busy("full".into(), Duration::ZERO) else { panic!() };
        assert_eq!(told, MIN_BACKOFF, "never at once");
        let Ended::Busy { told, .. } = busy("full".into(), Duration::from_secs(86_400)) else { panic!() };
        assert_eq!(told, Duration::from_millis(protocol::MAX_RETRY_AFTER_MS.into()), "never for good");
    }
}
