//! Routing a holder link's incoming chunk streams: each stream starts with a [`ChunkHeader`],
//! and goes to the oldest fetch waiting for that (file, chunk); a stream nobody asked for is
//! stopped. Plain bookkeeping of the waiters, and the one task per link that reads headers.

use std::sync::MutexGuard;

use quinn::{Connection, RecvStream};
use tokio::sync::oneshot;
use tokio::task::JoinSet;

use super::{HEADER_TIMEOUT, Pending, PendingMap};
use crate::peer::liveness::{State, state};
use crate::protocol::{self, ChunkHeader, FileId, MAX_FRAME, close};

/// The oldest fetch still waiting for this chunk.
fn next_waiter(map: &mut PendingMap, key: (FileId, u32)) -> Option<oneshot::Sender<(ChunkHeader, RecvStream)>> {
    forget_closed(map, key);
    let waiters = map.get_mut(&key)?;
    let waiter = waiters.pop_front();
    if waiters.is_empty() {
        map.remove(&key);
    }
    waiter
}

/// Drops waiters that gave up (timed out) on this chunk.
pub(super) fn forget_closed(map: &mut PendingMap, key: (FileId, u32)) {
    if let Some(waiters) = map.get_mut(&key) {
        waiters.retain(|w| !w.is_closed());
        if waiters.is_empty() {
            map.remove(&key);
        }
    }
}

pub(super) fn lock(pending: &Pending) -> MutexGuard<'_, PendingMap> {
    pending.lock().unwrap_or_else(|p| p.into_inner())
}

/// Hands each incoming chunk stream to the fetch waiting for it; unsolicited streams are
/// stopped. When the connection ends, every waiting fetch learns at once.
pub(super) async fn route(conn: Connection, pending: Pending, link: State) {
    let mut headers = JoinSet::new();
    while let Ok(mut stream) = conn.accept_uni().await {
        while headers.try_join_next().is_some() {}
        let (pending, link) = (pending.clone(), link.clone());
        headers.spawn(async move {
            let header = tokio::time::timeout(HEADER_TIMEOUT, protocol::read_frame::<_, ChunkHeader>(&mut stream, MAX_FRAME)).await;
            let Ok(Ok(header)) = header else {
                let _ = stream.stop(close::PROTOCOL);
                return;
            };
            state(&link).heard(0);
            let waiter = next_waiter(&mut lock(&pending), (header.id, header.index));
            match waiter {
                Some(waiter) => {
                    let _ = waiter.send((header, stream));
                }
                None => {
                    let _ = stream.stop(close::PROTOCOL);
                }
            }
        });
    }
    lock(&pending).clear();
}
