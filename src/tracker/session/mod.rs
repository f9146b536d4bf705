//! One peer's connection to the tracker: register first, then one request per stream, and
//! heartbeats in datagrams ([`PeerDatagram`]).
//!
//! The first bidirectional stream must carry `Register`; it binds the connection to a peer id
//! and the certificate the peer presented. Every later stream carries one request that acts on
//! that peer only, and is answered on the same stream. A bad frame ends its stream, never the
//! connection or the tracker.
//!
//! One session cannot take the tracker for itself: its requests are small ([`MAX_REQUEST_FRAME`]),
//! at most [`MAX_IN_FLIGHT`] are answered at once, and a token bucket spaces them to
//! [`REQUESTS_PER_SECOND`]. Past that the session simply stops accepting streams for a while, so
//! QUIC's stream credit slows the sender down; an honest peer, far below the rate, never notices.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use quinn::{Connection, ConnectionError, RecvStream, SendStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::registry::MAX_PAGE;
mod register;

use super::{Tracker, reply};
use crate::logbook::{Event, EventKind};
use crate::net::limits::{RateLimit, Slot};
use crate::net::tls::remote_fingerprint;
use crate::protocol::{
    self, Fingerprint, MAX_DATAGRAM_FRAME, MAX_REQUEST_FRAME, PROTOCOL_VERSION, PeerDatagram, TrackerRequest, TrackerResponse, close,
};

/// How long a peer may take to send one request frame once it opened the stream.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Requests of one session answered at once; the transport lets a peer open only a few more.
const MAX_IN_FLIGHT: usize = 8;
/// Sustained requests per second one session may make: an honest peer makes one a heartbeat plus
/// one per share or get; a script sharing a folder stays far below.
const REQUESTS_PER_SECOND: u32 = 100;
/// Requests one session may make at once after being quiet.
const REQUEST_BURST: u32 = 200;
/// Least time between two heartbeat datagrams of one session that are both looked at: an
/// honest peer sends one every few seconds.
const MIN_BEAT_GAP: Duration = Duration::from_millis(250);

/// Who is on the other end of a registered connection.
struct Session {
    /// The registry's own copy of the id, shared.
    peer: Arc<str>,
    id: u64,
}

/// Serves one connection until it closes or the tracker shuts down; `unregistered` is its
/// place among the connections of its address still registering, given back once it has.
pub async fn serve(conn: Connection, tracker: Tracker, shutdown: CancellationToken, unregistered: Slot<IpAddr>) {
    // Boxed: registering takes about 800 bytes of state, freed once it is done rather than
    // kept in every session's task for as long as the peer stays.
    let registered = Box::pin(register::register(&conn, &tracker)).await;
    tracker.metrics().registration(registered.is_ok());
    drop(unregistered);
    let session = match registered {
        Ok(session) => session,
        Err(err) => {
            tracing::debug!(addr = %crate::net::addrs::canonical(conn.remote_address()), "registration failed: {err:#}");
            return;
        }
    };
    tracing::Span::current().record("peer", tracing::field::display(&session.peer));
    if let Ok(fingerprint) = remote_fingerprint(&conn) {
        tracker.inner.links.insert(&session.peer, session.id, conn.clone(), fingerprint);
    }
    tracker.tell_pace(&conn);
    let mut requests = JoinSet::new();
    let mut bucket = RateLimit::new(REQUESTS_PER_SECOND, REQUEST_BURST, Instant::now());
    let mut last_beat = None;
    let reason = loop {
        let wait = bucket.wait(Instant::now());
        let ready = wait.is_zero() && requests.len() < MAX_IN_FLIGHT;
        tokio::select! {
            _ = shutdown.cancelled() => {
                conn.close(close::SHUTDOWN, b"tracker shutting down");
                return;
            }
            reason = conn.closed() => break reason,
            Some(_) = requests.join_next() => {}
            datagram = conn.read_datagram() => match datagram {
                Ok(bytes) => {
                    if heartbeat(&tracker, &session, &bytes, &mut last_beat) == Beat::Forgotten {
                        conn.close(close::EXPIRED, b"not registered (expired); register again");
                    }
                }
                Err(reason) => break reason,
            },
            _ = nap(wait), if !wait.is_zero() => {}
            stream = conn.accept_bi(), if ready => match stream {
                Ok((send, recv)) => {
                    bucket.take(Instant::now());
                    let (tracker, peer, id) = (tracker.clone(), session.peer.clone(), session.id);
                    let work = async move { answer(send, recv, &tracker, &peer, id).await };
                    crate::net::task::spawn_in(&mut requests, tracing::debug_span!("request"), work);
                }
                Err(reason) => break reason,
            },
        }
    };
    closed(&tracker, &session, reason);
}

/// Sleeps for `wait`, the timer boxed: it is made only when the loop waits for the rate
/// limit, so the 112 bytes of a timer are not in every session's task.
async fn nap(wait: Duration) {
    Box::pin(tokio::time::sleep(wait)).await;
}

/// What became of one heartbeat datagram.
#[derive(Debug, PartialEq, Eq)]
enum Beat {
    /// Recorded.
    Taken,
    /// Malformed, of another version, or too soon after the last: dropped, as a lost one is.
    Dropped,
    /// The registry no longer lists this session's peer (it expired): it must register again.
    Forgotten,
}

/// Records one heartbeat datagram. At most one every [`MIN_BEAT_GAP`] is looked at, so a
/// flood of datagrams costs a comparison each, never the registry's lock.
fn heartbeat(tracker: &Tracker, session: &Session, bytes: &[u8], last: &mut Option<Instant>) -> Beat {
    let now = Instant::now();
    if last.is_some_and(|at| now.saturating_duration_since(at) < MIN_BEAT_GAP) {
        return Beat::Dropped;
    }
    let beat = match protocol::decode_datagram::<PeerDatagram>(bytes, MAX_DATAGRAM_FRAME) {
        Ok(PeerDatagram::Alive(beat)) if beat.version == PROTOCOL_VERSION => beat,
        Ok(PeerDatagram::Alive(_)) | Err(_) => {
            tracker.metrics().error();
            return Beat::Dropped;
        }
    };
    *last = Some(now);
    let timer = super::metrics::Timer::of(&TrackerRequest::Alive);
    tracker.metrics().request(&TrackerRequest::Alive);
    let beat = tracker.registry().beat(&session.peer, session.id, now, beat.uploaded, beat.downloaded);
    match beat {
        Ok(()) => {
            tracker.record(Event::now(EventKind::Alive, &session.peer, ""));
            tracker.metrics().answered(timer);
            Beat::Taken
        }
        Err(_) => Beat::Forgotten,
    }
}

/// Reads one request, acts on it, writes the response.
async fn answer(mut send: SendStream, mut recv: RecvStream, tracker: &Tracker, peer: &str, session: u64) {
    let request = tokio::time::timeout(REQUEST_TIMEOUT, protocol::read_frame(&mut recv, MAX_REQUEST_FRAME)).await;
    let timer = super::metrics::Timer::start(&request);
    let response = match request {
        // The one request that waits on another connection (the holder's), so not in `act`.
        Ok(Ok(TrackerRequest::Introduce { peer_id, fingerprint })) => {
            // Bound first: the registry's lock must be let go before the await.
            let alive = tracker.registry().alive(peer, session, Instant::now());
            match alive {
                Ok(()) => super::rendezvous::introduce(tracker, peer, &peer_id, &fingerprint).await,
                Err(err) => TrackerResponse::Error(err.to_string()),
            }
        }
        Ok(Ok(request)) => {
            tracker.metrics().request(&request);
            act(tracker, peer, session, request)
        }
        Ok(Err(err)) => TrackerResponse::Error(format!("bad request: {err}")),
        Err(_) => TrackerResponse::Error("request timed out".into()),
    };
    if matches!(response, TrackerResponse::Error(_)) {
        tracker.metrics().error();
    }
    if let Err(err) = respond(&mut send, &response).await {
        tracing::debug!(peer, "cannot answer: {err:#}");
    }
    tracker.metrics().answered(timer);
}

/// The registry side of each request.
fn act(tracker: &Tracker, peer: &str, session: u64, request: TrackerRequest) -> TrackerResponse {
    let now = Instant::now();
    // Any request is a sign of life, and only a registered peer may ask: one the sweep
    // expired is told to register again rather than answered as if it were listed.
    let reads = matches!(
        request,
        TrackerRequest::Lookup { .. }
            | TrackerRequest::Files
            | TrackerRequest::FilesPage { .. }
            | TrackerRequest::Verify { .. }
            | TrackerRequest::Holders(_)
            | TrackerRequest::Contact
    );
    if reads && let Err(err) = tracker.registry().alive(peer, session, now) {
        return TrackerResponse::Error(err.to_string());
    }
    // Lookups and listings wait for nothing when the tracker is busy: they are told to come
    // back, so heartbeats and exits keep their time.
    let heavy = matches!(
        request,
        TrackerRequest::Lookup { .. } | TrackerRequest::Files | TrackerRequest::FilesPage { .. } | TrackerRequest::Holders(_)
    );
    let _reading = match heavy {
        true => match tracker.inner.load.read() {
            Some(reading) => Some(reading),
            None => {
                tracker.metrics().shed();
                return TrackerResponse::RetryLater { reason: "tracker busy".into(), after_ms: super::load::RETRY_AFTER_MS };
            }
        },
        false => None,
    };
    let result = match request {
        TrackerRequest::Register { .. } => Err("already registered".to_string()),
        TrackerRequest::Introduce { .. } => Err("introductions are answered apart".to_string()),
        TrackerRequest::Alive => tracker.registry().alive(peer, session, now).map_err(|e| e.to_string()).map(|()| {
            tracker.record(Event::now(EventKind::Alive, peer, ""));
            TrackerResponse::Ok
        }),
        TrackerRequest::Share(file) => share(tracker, peer, session, file),
        TrackerRequest::ShareMany(files) => files.into_iter().try_fold(TrackerResponse::Ok, |_, file| share(tracker, peer, session, file)),
        TrackerRequest::Lookup { query } => lookup(tracker, peer, &query),
        TrackerRequest::Files => Ok(TrackerResponse::Matches(reply::fit(tracker.files_for_reply(), tracker.turn(), false))),
        TrackerRequest::FilesPage { after, limit } => Ok(files_page(tracker, after, limit)),
        TrackerRequest::Verify { fingerprint } => Ok(verify(tracker, &fingerprint)),
        TrackerRequest::Unshare(file) => unshare(tracker, peer, session, &file),
        TrackerRequest::Contact => Ok(TrackerResponse::Contact(tracker.contact().to_vec())),
        TrackerRequest::Holders(id) => {
            let (found, with_reach) = {
                let registry = tracker.registry();
                (registry.holders(&id, tracker.listed()).into_iter().collect(), registry.reads_addresses(peer))
            };
            Ok(TrackerResponse::matches(reply::fit(found, tracker.turn(), with_reach), with_reach))
        }
        TrackerRequest::Punched { peer_id, fingerprint, connected } => {
            tracker.registry().punch_outcome(&peer_id, &fingerprint, connected);
            Ok(TrackerResponse::Ok)
        }
        TrackerRequest::Addresses(told) => {
            tracker.registry().tell_addresses(peer, session, &told).map_err(|e| e.to_string()).map(|()| TrackerResponse::Ok)
        }
        TrackerRequest::Progress { id, have } => {
            tracker.registry().progress(peer, session, &id, &have).map_err(|e| e.to_string()).map(|()| TrackerResponse::Ok)
        }
        TrackerRequest::Mapped { addr } => {
            tracker.registry().map(peer, session, addr).map_err(|e| e.to_string()).map(|()| TrackerResponse::Ok)
        }
        TrackerRequest::Exit => {
            if tracker.registry().leave(peer, session) {
                tracker.record(Event::now(EventKind::Exit, peer, "exit"));
            }
            Ok(TrackerResponse::Ok)
        }
    };
    result.unwrap_or_else(TrackerResponse::Error)
}

fn share(tracker: &Tracker, peer: &str, session: u64, file: protocol::FileInfo) -> Result<TrackerResponse, String> {
    protocol::check_name(&file.name)?;
    // A peer that shares a file it already holds (a download announced from its first chunk,
    // then again once complete) is one event, not two.
    if tracker.registry().share(peer, session, &file, Instant::now()).map_err(|e| e.to_string())? {
        let detail = format!("{} bytes", file.size);
        tracker.record(Event::now(EventKind::Share, peer, detail).with_file(&file.name, Some(file.id.to_hex())));
    }
    Ok(TrackerResponse::Ok)
}

/// One page of the listing, cut to one frame: `more` also when the frame cut it short.
fn files_page(tracker: &Tracker, after: Option<protocol::PageAfter>, limit: u32) -> TrackerResponse {
    let after = after.as_ref().map(|a| (a.name.as_str(), &a.id));
    let (page, more) = tracker.files_page(after, usize::try_from(limit).unwrap_or(MAX_PAGE), tracker.listed());
    let wanted = page.len();
    let files = reply::fit(page, tracker.turn(), false);
    let more = more || files.len() < wanted;
    TrackerResponse::FilesPage { files, more }
}

/// Files matching `query`; a query that could not be a file name or an id prefix is refused, so
/// nothing unprintable reaches the event log and the tracker's screen.
fn lookup(tracker: &Tracker, peer: &str, query: &str) -> Result<TrackerResponse, String> {
    protocol::check_name(query).map_err(|reason| format!("bad lookup: {reason}"))?;
    let (found, with_reach) = {
        let registry = tracker.registry();
        (registry.lookup(query, tracker.listed()), registry.reads_addresses(peer))
    };
    let (name, id) = match found.as_slice() {
        [one] => (one.file.name.clone(), Some(one.file.id.to_hex())),
        _ => (query.to_string(), None),
    };
    let holders: usize = found.iter().map(|f| f.holders.len()).sum();
    let detail = format!("{} match(es), {holders} holder(s)", found.len());
    tracker.record(Event::now(EventKind::Get, peer, detail).with_file(&name, id));
    Ok(TrackerResponse::matches(reply::fit(found, tracker.turn(), with_reach), with_reach))
}

fn unshare(tracker: &Tracker, peer: &str, session: u64, file: &protocol::FileId) -> Result<TrackerResponse, String> {
    let name = tracker.registry().unshare(peer, session, file).map_err(|e| e.to_string())?;
    if let Some(name) = name {
        tracker.record(Event::now(EventKind::Unshare, peer, "withdrawn by its holder").with_file(&name, Some(file.to_hex())));
    }
    Ok(TrackerResponse::Ok)
}

/// Whether a certificate belongs to a live peer (asked by holders about downloaders).
fn verify(tracker: &Tracker, fingerprint: &Fingerprint) -> TrackerResponse {
    TrackerResponse::Verified { peer_id: tracker.registry().peer_with(fingerprint) }
}

async fn respond(send: &mut SendStream, response: &TrackerResponse) -> Result<()> {
    protocol::write_frame(send, response).await?;
    send.finish()?;
    Ok(())
}

/// A connection ended: a peer that closed it on purpose leaves at once; one that vanished is
/// left to the expiry sweep (it may be a network blip, and it will reconnect).
fn closed(tracker: &Tracker, session: &Session, reason: ConnectionError) {
    tracker.inner.links.remove(&session.peer, session.id);
    if gone(&reason) && tracker.registry().leave(&session.peer, session.id) {
        tracker.record(Event::now(EventKind::Exit, &session.peer, "closed its connection"));
    }
    tracing::debug!(peer = %session.peer, "connection ended: {reason}");
}

/// Whether a connection that ended for `reason` proves its peer gone: it closed the connection
/// on purpose, or its endpoint answered with a stateless reset (it no longer knows the
/// connection: the close was lost, or the process restarted; a live peer registers again on a
/// new connection). A silence or a network error proves nothing.
///
/// Resets matter in a mass close: measured, 505 of 50,000 peers leaving at once reached the
/// tracker only as a reset (`tracker_load` bench, session debug log), and were listed until
/// the expiry sweep.
fn gone(reason: &ConnectionError) -> bool {
    match reason {
        ConnectionError::ApplicationClosed(c) => c.error_code == close::DONE,
        ConnectionError::Reset => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app_closed(code: quinn::VarInt) -> ConnectionError {
        ConnectionError::ApplicationClosed(quinn::ApplicationClose { error_code: code, reason: Default::default() })
    }

    #[test]
    fn a_peer_is_gone_when_it_closed_on_purpose_or_reset_and_not_when_it_went_silent() {
        assert!(gone(&app_closed(close::DONE)));
        assert!(gone(&ConnectionError::Reset));
        assert!(!gone(&app_closed(close::EXPIRED)));
        assert!(!gone(&ConnectionError::TimedOut));
        assert!(!gone(&ConnectionError::LocallyClosed));
    }
}
