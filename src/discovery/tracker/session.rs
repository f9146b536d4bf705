//! One connection's life on the peer's side: dial every address of the tracker at once,
//! register with what fits one frame (the rest follows in `ShareMany`), then heartbeat until
//! the connection fails or the tracker forgets us. Heartbeats go in datagrams (one packet, no
//! stream) at our interval or the slower pace the tracker asks for when it is busy. The reconnecting loop around it is in
//! [`super::TrackerLink::run`].

use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use quinn::{Connection, ConnectionError, Endpoint};
use tokio::sync::watch;
use tokio::time::Instant;

use super::{BUSY_WAIT, Ended, NO_TRACKER, REQUEST_TIMEOUT, TrackerLink, busy, exchange, pushes};
use crate::protocol::{Heartbeat, MAX_HEARTBEAT_MS, PROTOCOL_VERSION, PeerDatagram, TrackerRequest, TrackerResponse, close};
use crate::store::shares::Shares;

impl TrackerLink {
    /// One connection's life: connect, register, heartbeat until it fails.
    pub(super) async fn session(&self, endpoint: &Endpoint, id: &str, shares: &Shares, heartbeat: Duration, was_up: &mut bool) -> Ended {
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
                self.tell_addresses(&conn, endpoint, observed).await;
            }
            // A refusal is final unless the tracker says a retry can help (it is at a limit for
            // now); an older tracker's plain Error is final as it always was.
            Ok(Ok(TrackerResponse::RetryLater { reason, after_ms })) => return busy(reason, Duration::from_millis(after_ms.into())),
            Ok(Ok(TrackerResponse::Refused { retry: true, reason })) => return busy(reason, BUSY_WAIT),
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
        let (pace, paced) = watch::channel(None);
        let work = async { tokio::join!(heartbeats(&conn, heartbeat, paced, shares), share_rest(&conn, rest)).0 };
        // Pushes end only with the connection, which the heartbeats notice too.
        let reason = tokio::select! {
            reason = work => reason,
            () = pushes::serve(&conn, endpoint, pace) => "the tracker closed the connection".to_string(),
        };
        self.set(None);
        conn.close(close::DONE, b"reconnecting");
        Ended::Lost(reason)
    }

    /// Tells the tracker our further addresses (before anything else is asked on this
    /// connection: sending them also says we read holders' further addresses in lookups),
    /// and remembers where we are. An older tracker refuses the request; that changes nothing.
    async fn tell_addresses(&self, conn: &Connection, endpoint: &Endpoint, observed: std::net::SocketAddr) {
        let further = match endpoint.local_addr() {
            Ok(bound) => crate::net::addrs::further(bound, &crate::net::addrs::interfaces()),
            Err(_) => Vec::new(),
        };
        let told = tokio::time::timeout(REQUEST_TIMEOUT, exchange(conn, &TrackerRequest::Addresses(further.clone()))).await;
        match told {
            Ok(Ok(TrackerResponse::Ok)) => tracing::debug!(?further, "told the tracker our further addresses"),
            other => tracing::debug!("the tracker did not take our further addresses: {other:?}"),
        }
        *self.seen.lock().unwrap_or_else(|p| p.into_inner()) = super::Whereabouts { observed: Some(observed), further };
    }

    /// Dials every address at once; the first handshake to finish wins and the others are
    /// dropped (which abandons them). Fails with the first address's error if none works.
    pub(super) async fn connect(&self, endpoint: &Endpoint) -> Result<Connection> {
        let client = self.client.clone().ok_or_else(|| anyhow!("{NO_TRACKER}"))?;
        if self.addrs.is_empty() {
            bail!("no address to reach the tracker at");
        }
        let (addr, conn) = crate::net::dial::first_of(endpoint, client, &self.addrs, REQUEST_TIMEOUT).await?;
        *self.reached.lock().unwrap_or_else(|p| p.into_inner()) = Some(addr);
        Ok(conn)
    }
}

/// Sends a heartbeat every `base` (or at the slower pace the tracker pushes) until the
/// connection fails or the tracker forgets us.
async fn heartbeats(conn: &Connection, base: Duration, mut pace: watch::Receiver<Option<Duration>>, shares: &Shares) -> String {
    let mut beats = Beats::new(conn);
    let mut period = base;
    let mut next = Instant::now() + period;
    let mut paced = true;
    loop {
        tokio::select! {
            reason = conn.closed() => return ended(reason),
            changed = pace.changed(), if paced => {
                // The pushes end with the connection; the heartbeats notice that themselves.
                paced = changed.is_ok();
                let told = *pace.borrow_and_update();
                period = paced_period(base, told);
                tracing::debug!(?period, "heartbeat pace");
                next = next.min(Instant::now() + period);
                continue;
            }
            () = tokio::time::sleep_until(next) => {}
        }
        next = Instant::now() + period;
        if let Err(reason) = beats.send(conn, period, shares.traffic().totals()).await {
            return reason;
        }
    }
}

/// The interval to heartbeat at: ours, or the tracker's if it asked for a longer one (capped
/// at [`MAX_HEARTBEAT_MS`], so the NAT mapping towards the tracker stays open).
fn paced_period(base: Duration, told: Option<Duration>) -> Duration {
    let cap = Duration::from_millis(MAX_HEARTBEAT_MS.into());
    told.map_or(base, |told| base.max(told.min(cap)))
}

/// Why the connection ended, for a person.
fn ended(reason: ConnectionError) -> String {
    match reason {
        ConnectionError::ApplicationClosed(c) if c.error_code == close::EXPIRED => {
            "the tracker forgot us (our heartbeats did not reach it in time)".into()
        }
        other => other.to_string(),
    }
}

/// One connection's heartbeats: in datagrams while the tracker takes them, else on streams.
struct Beats {
    /// Heartbeats sent on this connection.
    seq: u32,
    /// Whether heartbeats go in datagrams (the tracker takes them).
    datagrams: bool,
    /// UDP datagrams received from the tracker when last counted, and when that count last moved.
    heard: (u64, Instant),
}

impl Beats {
    fn new(conn: &Connection) -> Beats {
        Beats { seq: 0, datagrams: conn.max_datagram_size().is_some(), heard: (conn.stats().udp_rx.datagrams, Instant::now()) }
    }

    /// Sends one heartbeat; an error says why the tracker is to be given up on.
    async fn send(&mut self, conn: &Connection, period: Duration, (uploaded, downloaded): (u64, u64)) -> Result<(), String> {
        let beat = Heartbeat { version: PROTOCOL_VERSION, seq: self.seq, uploaded, downloaded };
        self.seq = self.seq.wrapping_add(1);
        if self.datagrams {
            let frame = crate::protocol::encode(&PeerDatagram::Alive(beat)).map_err(|e| e.to_string())?;
            match conn.send_datagram(frame.into()) {
                Ok(()) => return self.still_heard(conn, period),
                Err(quinn::SendDatagramError::ConnectionLost(reason)) => return Err(ended(reason)),
                // The tracker takes no datagrams after all: streams, from now on.
                Err(err) => {
                    tracing::debug!("heartbeats on streams: {err}");
                    self.datagrams = false;
                }
            }
        }
        alive_on_stream(conn, period).await
    }

    /// A datagram is not answered, only acknowledged: the tracker is gone when nothing at all
    /// has come from it for [`alive_timeout`].
    fn still_heard(&mut self, conn: &Connection, period: Duration) -> Result<(), String> {
        let (count, since) = self.heard;
        let now = Instant::now();
        let received = conn.stats().udp_rx.datagrams;
        if received != count {
            self.heard = (received, now);
            return Ok(());
        }
        let silent = now.saturating_duration_since(since);
        match silent > alive_timeout(period) {
            true => Err(format!("heartbeat not acknowledged: nothing from the tracker for {:.1} s", silent.as_secs_f64())),
            false => Ok(()),
        }
    }
}

/// One `Alive` request on its own stream, for a tracker that takes no datagrams.
async fn alive_on_stream(conn: &Connection, period: Duration) -> Result<(), String> {
    match tokio::time::timeout(alive_timeout(period), exchange(conn, &TrackerRequest::Alive)).await {
        Ok(Ok(TrackerResponse::Ok)) => Ok(()),
        Ok(Ok(TrackerResponse::Error(reason) | TrackerResponse::Refused { reason, .. } | TrackerResponse::RetryLater { reason, .. })) => {
            Err(format!("tracker says: {reason}"))
        }
        Ok(Ok(_)) => Err("unexpected answer to alive".into()),
        Ok(Err(err)) => Err(format!("{err:#}")),
        Err(_) => Err("heartbeat timed out".into()),
    }
}

/// How long a heartbeat may go unacknowledged: two heartbeats (at least a second), so a
/// vanished tracker is noticed soon and reconnection starts, and one heartbeat's own span
/// never counts as silence.
fn alive_timeout(heartbeat: Duration) -> Duration {
    (heartbeat * 2).max(Duration::from_secs(1))
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
