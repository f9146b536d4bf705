//! One peer's connection to the tracker: register first, then one request per stream.
//!
//! The first bidirectional stream must carry `Register`; it binds the connection to a peer id
//! and the certificate the peer presented. Every later stream carries one request that acts on
//! that peer only, and is answered on the same stream. A bad frame ends its stream, never the
//! connection or the tracker.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use quinn::{Connection, ConnectionError, RecvStream, SendStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::Tracker;
use crate::logbook::{Event, EventKind};
use crate::tls::remote_fingerprint;
use crate::wire::{self, MAX_FRAME, PROTOCOL_VERSION, TrackerRequest, TrackerResponse, close};

/// How long a peer may take to send one request frame once it opened the stream.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Who is on the other end of a registered connection.
struct Session {
    peer: String,
    id: u64,
}

/// Serves one connection until it closes or the tracker shuts down.
pub async fn serve(conn: Connection, tracker: Tracker, shutdown: CancellationToken) {
    let session = match register(&conn, &tracker).await {
        Ok(session) => session,
        Err(err) => {
            tracing::debug!(addr = %conn.remote_address(), "registration failed: {err:#}");
            return;
        }
    };
    let mut requests = JoinSet::new();
    let reason = loop {
        tokio::select! {
            _ = shutdown.cancelled() => {
                conn.close(close::SHUTDOWN, b"tracker shutting down");
                return;
            }
            stream = conn.accept_bi() => match stream {
                Ok((send, recv)) => {
                    let (tracker, peer, id) = (tracker.clone(), session.peer.clone(), session.id);
                    requests.spawn(async move { answer(send, recv, &tracker, &peer, id).await });
                }
                Err(reason) => break reason,
            },
            Some(_) = requests.join_next() => {}
        }
    };
    closed(&tracker, &session, reason);
}

/// Reads the first request, which must be `Register`, and records the peer.
async fn register(conn: &Connection, tracker: &Tracker) -> Result<Session> {
    let fingerprint = remote_fingerprint(conn)?;
    let (mut send, mut recv) = tokio::time::timeout(REQUEST_TIMEOUT, conn.accept_bi()).await.context("no registration")??;
    let request = tokio::time::timeout(REQUEST_TIMEOUT, wire::read_frame(&mut recv, MAX_FRAME)).await.context("slow registration")?;
    let (version, peer_id, files) = match request {
        Ok(TrackerRequest::Register { version, peer_id, files }) => (version, peer_id, files),
        Ok(_) => return refuse(conn, &mut send, "the first request must be Register").await,
        Err(err) => return refuse(conn, &mut send, &format!("bad registration: {err}")).await,
    };
    if version != PROTOCOL_VERSION {
        let msg = format!("protocol version {version} is not supported (this tracker speaks {PROTOCOL_VERSION})");
        return refuse(conn, &mut send, &msg).await;
    }
    if let Err(msg) = wire::check_peer_id(&peer_id) {
        return refuse(conn, &mut send, &msg).await;
    }
    let addr = conn.remote_address();
    let session = Session { peer: peer_id, id: conn.stable_id() as u64 };
    let registered = tracker.registry().register(&session.peer, fingerprint, addr, session.id, Instant::now());
    if let Err(err) = registered {
        tracker.record(Event::now(EventKind::Refused, &session.peer, err.to_string()));
        return refuse(conn, &mut send, &err.to_string()).await;
    }
    tracker.record(Event::now(EventKind::Register, &session.peer, format!("from {addr}")));
    for file in files.iter().filter(|f| wire::check_name(&f.name).is_ok()) {
        let _ = tracker.registry().share(&session.peer, session.id, file, Instant::now());
    }
    respond(&mut send, &TrackerResponse::Registered { observed: addr }).await?;
    Ok(session)
}

/// Answers a refused registration with its reason, then closes the connection.
async fn refuse<T>(conn: &Connection, send: &mut SendStream, reason: &str) -> Result<T> {
    let _ = respond(send, &TrackerResponse::Error(reason.to_string())).await;
    let _ = send.stopped().await;
    conn.close(close::REFUSED, reason.as_bytes());
    bail!("{reason}")
}

/// Reads one request, acts on it, writes the response.
async fn answer(mut send: SendStream, mut recv: RecvStream, tracker: &Tracker, peer: &str, session: u64) {
    let request = tokio::time::timeout(REQUEST_TIMEOUT, wire::read_frame(&mut recv, MAX_FRAME)).await;
    let response = match request {
        Ok(Ok(request)) => act(tracker, peer, session, request),
        Ok(Err(err)) => TrackerResponse::Error(format!("bad request: {err}")),
        Err(_) => TrackerResponse::Error("request timed out".into()),
    };
    if let Err(err) = respond(&mut send, &response).await {
        tracing::debug!(peer, "cannot answer: {err:#}");
    }
}

/// The registry side of each request.
fn act(tracker: &Tracker, peer: &str, session: u64, request: TrackerRequest) -> TrackerResponse {
    let now = Instant::now();
    let result = match request {
        TrackerRequest::Register { .. } => Err("already registered".to_string()),
        TrackerRequest::Alive => tracker.registry().alive(peer, session, now).map_err(|e| e.to_string()).map(|()| {
            tracker.record(Event::now(EventKind::Alive, peer, ""));
            TrackerResponse::Ok
        }),
        TrackerRequest::Share(file) => share(tracker, peer, session, file),
        TrackerRequest::Lookup { query } => Ok(lookup(tracker, peer, &query)),
        TrackerRequest::Files => Ok(TrackerResponse::Matches(tracker.registry().files())),
        TrackerRequest::Exit => {
            if tracker.registry().leave(peer, session) {
                tracker.record(Event::now(EventKind::Exit, peer, "exit"));
            }
            Ok(TrackerResponse::Ok)
        }
    };
    result.unwrap_or_else(TrackerResponse::Error)
}

fn share(tracker: &Tracker, peer: &str, session: u64, file: wire::FileInfo) -> Result<TrackerResponse, String> {
    wire::check_name(&file.name)?;
    tracker.registry().share(peer, session, &file, Instant::now()).map_err(|e| e.to_string())?;
    let detail = format!("{} bytes", file.size);
    tracker.record(Event::now(EventKind::Share, peer, detail).with_file(&file.name, Some(file.id.to_hex())));
    Ok(TrackerResponse::Ok)
}

fn lookup(tracker: &Tracker, peer: &str, query: &str) -> TrackerResponse {
    let found = tracker.registry().lookup(query);
    let (name, id) = match found.as_slice() {
        [one] => (one.file.name.clone(), Some(one.file.id.to_hex())),
        _ => (query.to_string(), None),
    };
    let holders: usize = found.iter().map(|f| f.holders.len()).sum();
    let detail = format!("{} match(es), {holders} holder(s)", found.len());
    tracker.record(Event::now(EventKind::Get, peer, detail).with_file(&name, id));
    TrackerResponse::Matches(found)
}

async fn respond(send: &mut SendStream, response: &TrackerResponse) -> Result<()> {
    wire::write_frame(send, response).await?;
    send.finish()?;
    Ok(())
}

/// A connection ended: a peer that closed it on purpose leaves at once; one that vanished is
/// left to the expiry sweep (it may be a network blip, and it will reconnect).
fn closed(tracker: &Tracker, session: &Session, reason: ConnectionError) {
    let on_purpose = matches!(&reason, ConnectionError::ApplicationClosed(c) if c.error_code == close::DONE);
    if on_purpose && tracker.registry().leave(&session.peer, session.id) {
        tracker.record(Event::now(EventKind::Exit, &session.peer, "closed its connection"));
    }
    tracing::debug!(peer = %session.peer, "connection ended: {reason}");
}
