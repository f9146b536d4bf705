//! The holder side of `Observe`: telling a downloader which chunks of a file we have, and
//! then each one we verify.
//!
//! A complete file gets one `All` and the stream ends, unless another downloader observes it
//! at the same time: then it gets offers, a few chunks at a time (see [`super::superseed`]). A download under way (a partial share)
//! gets its bitfield, then `Have` batches as its chunks are verified and written: the partial
//! file wakes us ([`Partial::watch`]), we wait out the rest of the batch interval
//! (1 / [`HAVES_PER_SEC`]), and send every chunk that landed meanwhile in one message. When
//! the download completes we send `All` and end. A chunk is announced only after it is written
//! (BEP 3's rule), so a downloader never asks for one we cannot read.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Result;
use quinn::SendStream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::superseed::{Crowds, FIRST_OFFER, OFFER_EVERY, Observer, Pace};
use crate::protocol::{self, Availability, FileId, HAVES_PER_SEC, MAX_HAVE_BATCH};
use crate::store::partial::{Bitfield, Partial};
use crate::store::shares::Shares;

/// Observe streams one connection may hold at once: one per download of a file from us, and
/// then some; more are refused (each holds a task and a bitfield).
pub const MAX_OBSERVES_PER_CONNECTION: usize = 8;

/// Answers an `Observe` for `id` on `send` until the file is complete here, the downloader
/// stops reading, or `shutdown`.
pub async fn answer(mut send: SendStream, id: FileId, serving: &Watched<'_>, shutdown: &CancellationToken) -> Result<()> {
    let Some(file) = serving.shares.get(&id) else {
        let refusal = Availability::Error(serving.shares.refusal(&id));
        return finish(&mut send, &refusal).await;
    };
    let Some(partial) = file.download().cloned() else {
        let observer = serving.crowds.join(id, file.manifest.count());
        let crowded = observer.crowded;
        // The downloader counts as one of the file's crowd for as long as it is connected, not
        // only while this stream lasts (an `All` ends it at once).
        serving.keep.lock().unwrap_or_else(|p| p.into_inner()).push(observer);
        if !crowded {
            return finish(&mut send, &Availability::All).await;
        }
        let offering = offer(&mut send, serving, id, Bitfield::empty(file.manifest.size, file.manifest.count()));
        return tokio::select! {
            offered = offering => offered,
            _ = shutdown.cancelled() => Ok(()),
        };
    };
    drop(file);
    // A downloader that stops reading fails the next write; one that goes away ends the
    // connection, and with it this task (the connection's streams are aborted).
    tokio::select! {
        told = tell(&mut send, &partial) => told,
        _ = shutdown.cancelled() => Ok(()),
    }
}

/// Sends the bitfield, then the news in batches, then `All`.
async fn tell(send: &mut SendStream, partial: &Arc<Partial>) -> Result<()> {
    // Watch before the snapshot, so a chunk landing in between is news, not lost.
    let mut news = partial.watch();
    let mut told = partial.bitfield();
    let count = told.count();
    let interval = Duration::from_secs(1) / HAVES_PER_SEC;
    protocol::write_frame(send, &Availability::Bitfield { count, bits: told.as_bytes().to_vec() }).await?;
    let mut last = Instant::now();
    while told.count_ones() < count {
        if news.changed().await.is_err() {
            // The download is gone (its share dropped); nothing more will come.
            send.finish()?;
            return Ok(());
        }
        tokio::time::sleep_until(last + interval).await;
        last = Instant::now();
        let now = partial.bitfield();
        for batch in fresh(&told, &now).chunks(MAX_HAVE_BATCH) {
            protocol::write_frame(send, &Availability::Have(batch.to_vec())).await?;
        }
        told = now;
    }
    finish(send, &Availability::All).await
}

/// What an observe answer needs from serving: the files, the crowds they are offered to, and
/// how many chunks went out on this connection (what a downloader took of its offers).
pub struct Watched<'a> {
    /// The files this peer shares.
    pub shares: &'a Shares,
    /// Super-seeding state of the complete files.
    pub crowds: &'a Arc<Crowds>,
    /// Chunks sent on this connection so far.
    pub served: &'a AtomicU64,
    /// This connection's place in each file's crowd, given up when the connection ends.
    pub keep: &'a std::sync::Mutex<Vec<Observer>>,
}

/// Offers a downloader of a complete file in a crowd a few chunks at a time (see
/// [`superseed`](super::superseed)), then `All` once it has been offered every chunk.
async fn offer(send: &mut SendStream, serving: &Watched<'_>, id: FileId, mut mine: Bitfield) -> Result<()> {
    let count = mine.count();
    let mut pace = Pace::new(serving.served.load(Ordering::Relaxed));
    let mut n = FIRST_OFFER;
    loop {
        let batch = serving.crowds.offer(&id, &mut mine, n.min(MAX_HAVE_BATCH));
        pace.offered += batch.len() as u64;
        if !batch.is_empty() {
            protocol::write_frame(send, &Availability::Offer(batch)).await?;
        }
        if mine.count_ones() == count {
            return finish(send, &Availability::All).await;
        }
        tokio::time::sleep(OFFER_EVERY).await;
        n = pace.next(serving.served.load(Ordering::Relaxed));
    }
}

/// Chunks in `now` that were not in `before`.
fn fresh(before: &Bitfield, now: &Bitfield) -> Vec<u32> {
    let pairs = before.as_bytes().iter().zip(now.as_bytes());
    let mut out = Vec::new();
    for (byte, (old, new)) in pairs.enumerate() {
        let mut bits = new & !old;
        while bits != 0 {
            out.push(byte as u32 * 8 + bits.trailing_zeros());
            bits &= bits - 1;
        }
    }
    out
}

/// Sends one last message and ends the stream.
async fn finish(send: &mut SendStream, last: &Availability) -> Result<()> {
    protocol::write_frame(send, last).await?;
    send.finish()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn news_is_the_chunks_that_landed_since() {
        let mut before = Bitfield::empty(20 << 10, 20);
        before.set(1);
        let mut now = before.clone();
        for i in [0, 1, 9, 19] {
            now.set(i);
        }
        assert_eq!(fresh(&before, &now), vec![0, 9, 19]);
        assert!(fresh(&now, &now).is_empty());
    }
}
