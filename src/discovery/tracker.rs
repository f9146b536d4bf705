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

use anyhow::{Context, Result, anyhow, bail};
use quinn::{Connection, Endpoint};
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

use super::{Discovery, Found};
use crate::protocol::{self, MAX_CONTACT_ADDRESSES, MAX_FRAME, PROTOCOL_VERSION, TrackerRequest, TrackerResponse, close};
use crate::store::shares::Shares;

/// First wait before reconnecting; doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(200);
/// Longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How long one request to the tracker may take, connection set-up included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Notices kept for a slow listener before the oldest are dropped.
const NOTICES: usize = 32;

/// How a connection attempt ended.
enum Ended {
    /// The tracker refused us for good (id taken, version): stop the peer.
    Refused(String),
    /// Lost or never made: try again later.
    Lost(String),
}

/// The current connection to the tracker, if any.
pub struct TrackerLink {
    /// Addresses of the one tracker (a ticket may name several); all are tried at once.
    addrs: Vec<SocketAddr>,
    /// The address that answered last, for messages.
    reached: Mutex<Option<SocketAddr>>,
    /// Why the last attempt to connect or stay connected failed.
    last_error: Mutex<Option<String>>,
    client: quinn::ClientConfig,
    conn: Mutex<Option<Connection>>,
    /// `None` until the first attempt ends, then whether a registered connection is up.
    up: watch::Sender<Option<bool>>,
    /// What a person should hear about the link (connected, lost); the prompt prints them.
    notices: broadcast::Sender<String>,
}

impl TrackerLink {
    /// A link to the tracker at `addrs` (one tracker, maybe several addresses; at least one),
    /// trusted through `client` (which pins its certificate).
    pub fn new(addrs: Vec<SocketAddr>, client: quinn::ClientConfig) -> TrackerLink {
        TrackerLink {
            addrs,
            reached: Mutex::new(None),
            last_error: Mutex::new(None),
            client,
            conn: Mutex::new(None),
            up: watch::Sender::new(None),
            notices: broadcast::Sender::new(NOTICES),
        }
    }

    /// The tracker's address for a person: the one that answered last, else the first known
    /// (with how many others are tried).
    pub fn shown(&self) -> String {
        if let Some(addr) = *self.reached.lock().unwrap_or_else(|p| p.into_inner()) {
            return addr.to_string();
        }
        match self.addrs.as_slice() {
            [] => "nowhere".into(),
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

    /// Resolves once the first connection attempt has succeeded or failed.
    pub async fn wait_first_attempt(&self) {
        let mut up = self.up.subscribe();
        let _ = up.wait_for(Option::is_some).await;
    }

    /// Why the last attempt to reach the tracker failed, if one did.
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Whether a registered connection is up.
    pub fn is_connected(&self) -> bool {
        self.current().is_some_and(|c| c.close_reason().is_none())
    }

    /// Sends one request and returns the tracker's answer (its `Error` as an error).
    pub async fn request(&self, request: &TrackerRequest) -> Result<TrackerResponse> {
        let conn = self.current().ok_or_else(|| anyhow!("tracker unreachable at {}", self.shown()))?;
        match tokio::time::timeout(REQUEST_TIMEOUT, exchange(&conn, request)).await {
            Ok(Ok(TrackerResponse::Error(reason) | TrackerResponse::Refused { reason, .. })) => bail!("tracker refused: {reason}"),
            Ok(Ok(response)) => Ok(response),
            Ok(Err(err)) => Err(err.context(format!("tracker at {} did not answer", self.shown()))),
            Err(_) => bail!("tracker at {} did not answer within {:?}", self.shown(), REQUEST_TIMEOUT),
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
        let mut backoff = MIN_BACKOFF;
        let mut was_up = false;
        let mut warned = false;
        loop {
            let ended = tokio::select! {
                biased;
                _ = shutdown.cancelled() => return None,
                ended = self.session(&endpoint, &id, &shares, heartbeat, &mut was_up) => ended,
            };
            let (Ended::Lost(reason) | Ended::Refused(reason)) = &ended;
            *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason.clone());
            match ended {
                Ended::Refused(reason) => {
                    self.set(None);
                    shutdown.cancel();
                    return Some(reason);
                }
                Ended::Lost(reason) if was_up => {
                    self.notify(format!("lost the tracker at {}: {reason}; reconnecting", self.shown()));
                    was_up = false;
                    backoff = MIN_BACKOFF;
                }
                Ended::Lost(reason) if !warned => {
                    self.set(None);
                    self.notify(format!("tracker unreachable at {}: {reason}; retrying", self.shown()));
                    warned = true;
                }
                Ended::Lost(_) => {}
            }
            tokio::select! {
                _ = shutdown.cancelled() => return None,
                _ = tokio::time::sleep(backoff) => {}
            }
            // Never wait longer than a heartbeat, so a restarted tracker hears from us again
            // within two heartbeats.
            backoff = (backoff * 2).min(MAX_BACKOFF.min(heartbeat)).max(MIN_BACKOFF);
        }
    }

    /// One connection's life: connect, register, heartbeat until it fails.
    async fn session(&self, endpoint: &Endpoint, id: &str, shares: &Shares, heartbeat: Duration, was_up: &mut bool) -> Ended {
        let conn = match self.connect(endpoint).await {
            Ok(conn) => conn,
            Err(err) => return Ended::Lost(format!("{err:#}")),
        };
        // What fits the registration frame goes in it; the rest follows in ShareMany requests.
        let mut runs = crate::protocol::fitting(shares.list(), crate::protocol::REGISTER_FILES_BYTES).into_iter();
        let files = runs.next().unwrap_or_default();
        let rest = runs.flatten().collect::<Vec<_>>();
        let register = TrackerRequest::Register { version: PROTOCOL_VERSION, peer_id: id.to_string(), files };
        match tokio::time::timeout(REQUEST_TIMEOUT, exchange(&conn, &register)).await {
            Ok(Ok(TrackerResponse::Registered { observed })) => {
                tracing::debug!(%observed, "registered");
            }
            // A refusal is final unless the tracker says a retry can help (it is full for now);
            // an older tracker's plain Error is final as it always was.
            Ok(Ok(TrackerResponse::Refused { retry: true, reason })) => return Ended::Lost(format!("tracker busy: {reason}")),
            Ok(Ok(TrackerResponse::Error(reason) | TrackerResponse::Refused { reason, .. })) => {
                return Ended::Refused(format!("tracker refused peer {id}: {reason}"));
            }
            Ok(Ok(other)) => return Ended::Lost(format!("unexpected answer {other:?}")),
            Ok(Err(err)) => return Ended::Lost(format!("{err:#}")),
            Err(_) => return Ended::Lost("registration timed out".into()),
        }
        self.set(Some(conn.clone()));
        *was_up = true;
        self.notify(format!("connected to tracker {} as peer {id}", self.shown()));
        let (reason, ()) = tokio::join!(heartbeats(&conn, heartbeat), share_rest(&conn, rest));
        self.set(None);
        conn.close(close::DONE, b"reconnecting");
        Ended::Lost(reason)
    }

    /// Dials every address at once; the first handshake to finish wins and the others are
    /// dropped (which abandons them). Fails with the first address's error if none works.
    async fn connect(&self, endpoint: &Endpoint) -> Result<Connection> {
        let mut attempts = tokio::task::JoinSet::new();
        for &addr in &self.addrs {
            let connecting = endpoint.connect_with(self.client.clone(), addr, crate::net::tls::SERVER_NAME);
            attempts.spawn(async move {
                let conn = tokio::time::timeout(REQUEST_TIMEOUT, connecting?).await.context("connection timed out")??;
                anyhow::Ok((addr, conn))
            });
        }
        let mut first_err = None;
        while let Some(joined) = attempts.join_next().await {
            match joined.context("connection attempt failed") {
                Ok(Ok((addr, conn))) => {
                    *self.reached.lock().unwrap_or_else(|p| p.into_inner()) = Some(addr);
                    return Ok(conn);
                }
                Ok(Err(err)) | Err(err) => {
                    first_err.get_or_insert(err);
                }
            }
        }
        Err(first_err.unwrap_or_else(|| anyhow!("no address to reach the tracker at")))
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

/// Sends `alive` every `period` until the connection fails or the tracker forgets us.
async fn heartbeats(conn: &Connection, period: Duration) -> String {
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            reason = conn.closed() => return reason.to_string(),
            _ = tick.tick() => {}
        }
        match tokio::time::timeout(alive_timeout(period), exchange(conn, &TrackerRequest::Alive)).await {
            Ok(Ok(TrackerResponse::Ok)) => {}
            Ok(Ok(TrackerResponse::Error(reason) | TrackerResponse::Refused { reason, .. })) => return format!("tracker says: {reason}"),
            Ok(Ok(_)) => return "unexpected answer to alive".into(),
            Ok(Err(err)) => return format!("{err:#}"),
            Err(_) => return "heartbeat timed out".into(),
        }
    }
}

/// How long an `alive` may go unanswered: two heartbeats (at least a second, at most the
/// request timeout), so a vanished tracker is noticed quickly and reconnection starts.
fn alive_timeout(heartbeat: Duration) -> Duration {
    (heartbeat * 2).clamp(Duration::from_secs(1), REQUEST_TIMEOUT)
}

/// One request on its own bidirectional stream, one response back.
async fn exchange(conn: &Connection, request: &TrackerRequest) -> Result<TrackerResponse> {
    let (mut send, mut recv) = conn.open_bi().await?;
    protocol::write_frame(&mut send, request).await?;
    send.finish()?;
    Ok(protocol::read_frame(&mut recv, MAX_FRAME).await?)
}

impl Discovery for TrackerLink {
    fn holders(&self, id: crate::protocol::FileId) -> Found<'_> {
        Box::pin(async move {
            match self.request(&TrackerRequest::Holders(id)).await? {
                TrackerResponse::Matches(found) => Ok(found),
                _ => bail!("unexpected answer from the tracker"),
            }
        })
    }

    fn find<'a>(&'a self, query: &'a str) -> Found<'a> {
        Box::pin(async move {
            let request = TrackerRequest::Lookup { query: query.to_string() };
            match self.request(&request).await? {
                TrackerResponse::Matches(found) => Ok(found),
                _ => bail!("unexpected answer from the tracker"),
            }
        })
    }
}

/// Announces the shares that did not fit the registration, a request frame at a time; stops
/// at the first failure (the next registration lists them again).
async fn share_rest(conn: &Connection, rest: Vec<crate::protocol::FileInfo>) {
    for batch in crate::protocol::fitting(rest, crate::protocol::SHARE_MANY_BYTES) {
        match tokio::time::timeout(REQUEST_TIMEOUT, exchange(conn, &TrackerRequest::ShareMany(batch))).await {
            Ok(Ok(TrackerResponse::Ok)) => {}
            Ok(Ok(other)) => return tracing::debug!("the tracker did not take every share: {other:?}"),
            Ok(Err(err)) => return tracing::debug!("shares not announced: {err:#}"),
            Err(_) => return tracing::debug!("shares not announced: timed out"),
        }
    }
}
