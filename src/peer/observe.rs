//! The holder side of `Observe`: telling a downloader which chunks of a file we have, and
//! then each one we verify.
//!
//! A complete file gets one `All` and the stream ends. A download under way (a partial share)
//! gets its bitfield, then `Have` batches as its chunks are verified and written: the partial
//! file wakes us ([`Partial::watch`]), we wait out the rest of the batch interval
//! (1 / [`HAVES_PER_SEC`]), and send every chunk that landed meanwhile in one message. When
//! the download completes we send `All` and end. A chunk is announced only after it is written
//! (BEP 3's rule), so a downloader never asks for one we cannot read.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use quinn::SendStream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::protocol::{self, Availability, FileId, HAVES_PER_SEC, MAX_HAVE_BATCH};
use crate::store::partial::{Bitfield, Partial};
use crate::store::shares::Shares;

/// Observe streams one connection may hold at once: one per download of a file from us, and
/// then some; more are refused (each holds a task and a bitfield).
pub const MAX_OBSERVES_PER_CONNECTION: usize = 8;

/// Answers an `Observe` for `id` on `send` until the file is complete here, the downloader
/// stops reading, or `shutdown`.
pub async fn answer(mut send: SendStream, id: FileId, shares: &Shares, shutdown: &CancellationToken) -> Result<()> {
    let Some(file) = shares.get(&id) else {
        let refusal = Availability::Error(format!("file {} is not shared here", id.short()));
        return finish(&mut send, &refusal).await;
    };
    let Some(partial) = file.download().cloned() else { return finish(&mut send, &Availability::All).await };
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
