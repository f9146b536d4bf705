//! One connection's life on the peer's side: dial every address of the tracker at once,
//! register with what fits one frame (the rest follows in `ShareMany`), then heartbeat until
//! the connection fails or the tracker forgets us. The reconnecting loop around it is in
//! [`super::TrackerLink::run`].

use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use quinn::{Connection, Endpoint};

use super::{BUSY_WAIT, Ended, NO_TRACKER, REQUEST_TIMEOUT, TrackerLink, busy, exchange, pushes};
use crate::protocol::{PROTOCOL_VERSION, TrackerRequest, TrackerResponse, close};
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
        let work = async { tokio::join!(heartbeats(&conn, heartbeat), share_rest(&conn, rest)).0 };
        // Pushes end only with the connection, which the heartbeats notice too.
        let reason = tokio::select! {
            reason = work => reason,
            () = pushes::serve(&conn, endpoint) => "the tracker closed the connection".to_string(),
        };
        self.set(None);
        conn.close(close::DONE, b"reconnecting");
        Ended::Lost(reason)
    }

    /// Dials every address at once; the first handshake to finish wins and the others are
    /// dropped (which abandons them). Fails with the first address's error if none works.
    pub(super) async fn connect(&self, endpoint: &Endpoint) -> Result<Connection> {
        let client = self.client.clone().ok_or_else(|| anyhow!("{NO_TRACKER}"))?;
        let mut attempts = tokio::task::JoinSet::new();
        for &addr in &self.addrs {
            let connecting = endpoint.connect_with(client.clone(), addr, crate::net::tls::SERVER_NAME);
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
            Ok(Ok(
                TrackerResponse::Error(reason) | TrackerResponse::Refused { reason, .. } | TrackerResponse::RetryLater { reason, .. },
            )) => return format!("tracker says: {reason}"),
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
