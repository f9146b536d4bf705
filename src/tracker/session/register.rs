//! A session's first request: `Register`, checked (version, peer id, the registry's limits)
//! and answered, or refused with a reason the peer shows, and the connection closed.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use quinn::{Connection, SendStream};

use super::{REQUEST_TIMEOUT, Session, respond};
use crate::logbook::{Event, EventKind};
use crate::net::tls::remote_fingerprint;
use crate::protocol::{self, MAX_FRAME, PROTOCOL_VERSION, TrackerRequest, TrackerResponse, close};
use crate::tracker::Tracker;
use crate::tracker::registry::RegistryError;

/// Reads the first request, which must be `Register`, and records the peer.
pub(super) async fn register(conn: &Connection, tracker: &Tracker) -> Result<Session> {
    let fingerprint = remote_fingerprint(conn)?;
    let (mut send, mut recv) = tokio::time::timeout(REQUEST_TIMEOUT, conn.accept_bi()).await.context("no registration")??;
    let request = tokio::time::timeout(REQUEST_TIMEOUT, protocol::read_frame(&mut recv, MAX_FRAME)).await.context("slow registration")?;
    tracker.metrics().first_request(&request);
    let timer = request.as_ref().ok().map(crate::tracker::metrics::Timer::of);
    let (version, peer_id, files) = match request {
        Ok(TrackerRequest::Register { version, peer_id, files }) => (version, peer_id, files),
        Ok(_) => return refuse(conn, &mut send, for_good("the first request must be Register")).await,
        Err(err) => return refuse(conn, &mut send, for_good(&format!("bad registration: {err}"))).await,
    };
    if version != PROTOCOL_VERSION {
        let msg = format!("protocol version {version} is not supported (this tracker speaks {PROTOCOL_VERSION})");
        tracker.metrics().refused(crate::tracker::metrics::Refusal::Version);
        return refuse(conn, &mut send, for_good(&msg)).await;
    }
    if let Err(msg) = protocol::check_peer_id(&peer_id) {
        tracker.metrics().refused(crate::tracker::metrics::Refusal::BadId);
        return refuse(conn, &mut send, for_good(&msg)).await;
    }
    let addr = crate::net::addrs::canonical(conn.remote_address());
    let id = conn.stable_id() as u64;
    let registered = tracker.registry().register(&peer_id, fingerprint, addr, id, Instant::now());
    if let Err(err) = registered {
        tracker.metrics().refused(crate::tracker::metrics::Refusal::of(&err));
        tracker.record(Event::now(EventKind::Refused, &peer_id, err.to_string()));
        return refuse(conn, &mut send, refusal(tracker, &err)).await;
    }
    let peer = tracker.registry().key(&peer_id).unwrap_or_else(|| Arc::from(peer_id.as_str()));
    let session = Session { peer, id };
    tracker.record(Event::now(EventKind::Register, &session.peer, format!("from {addr}")));
    let refused = files.iter().filter(|file| share_on_register(tracker, &session, file).is_err()).count();
    if refused > 0 {
        let detail = format!("{refused} of {} announced file(s) refused (unusable name, size or count)", files.len());
        tracker.record(Event::now(EventKind::Refused, &session.peer, detail));
    }
    respond(&mut send, &TrackerResponse::Registered { observed: addr }).await?;
    if let Some(timer) = timer {
        tracker.metrics().answered(timer);
    }
    Ok(session)
}

/// Records one file a registering peer already shares, if its name is usable.
fn share_on_register(tracker: &Tracker, session: &Session, file: &protocol::FileInfo) -> Result<(), String> {
    protocol::check_name(&file.name)?;
    tracker.registry().share(&session.peer, session.id, file, Instant::now()).map(|_| ()).map_err(|e| e.to_string())
}

/// A registration refused for good, with its reason.
fn for_good(reason: &str) -> (TrackerResponse, String) {
    (TrackerResponse::Refused { retry: false, reason: reason.to_string() }, reason.to_string())
}

/// The answer to a registration the registry refused: for now, with the wait the tracker
/// asks for, when someone's leaving can free a place; for good otherwise.
fn refusal(tracker: &Tracker, err: &RegistryError) -> (TrackerResponse, String) {
    let reason = err.to_string();
    if !err.retry_can_help() {
        return for_good(&reason);
    }
    let after_ms = u32::try_from(tracker.busy_retry().as_millis()).unwrap_or(u32::MAX).min(protocol::MAX_RETRY_AFTER_MS);
    (TrackerResponse::RetryLater { reason: reason.clone(), after_ms }, reason)
}

/// Answers a refused registration (`answer`, and its reason), then closes the connection.
async fn refuse<T>(conn: &Connection, send: &mut SendStream, (answer, reason): (TrackerResponse, String)) -> Result<T> {
    let _ = respond(send, &answer).await;
    let _ = send.stopped().await;
    conn.close(close::REFUSED, reason.as_bytes());
    bail!("{reason}")
}
