//! What each holder has: the downloader side of `Observe`.
//!
//! For every holder it uses, a download opens one `Observe` stream and reads what comes: `All`
//! from a complete holder, or a bitfield and then `Have` batches from one still downloading.
//! Each frame is checked against the manifest (the bitfield's length, every index in range, the
//! batch size) before the scheduler hears of it, and a holder that breaks the rules is
//! reported as [`News::Broken`] and dropped like any holder that sends bad data. Frames are
//! read at most every [`MIN_GAP`]: an honest holder sends at most [`HAVES_PER_SEC`] a second,
//! so one that floods only fills its own send buffer (QUIC's flow control holds it back),
//! and costs this side nothing more.

use std::sync::Arc;
use std::time::Duration;

use quinn::RecvStream;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::peer::holder::HolderLink;
use crate::protocol::{self, Availability, FileId, HAVES_PER_SEC, MAX_AVAILABILITY_FRAME, MAX_HAVE_BATCH, WireError};

/// Least time between two frames read from one holder: half an honest holder's interval.
pub const MIN_GAP: Duration = Duration::from_millis(1000 / (2 * HAVES_PER_SEC as u64));

/// What a holder said it has, checked.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum News {
    /// Every chunk.
    All,
    /// These chunks (from its bitfield or a `Have`).
    Chunks(Vec<u32>),
    /// A complete holder asks for these for now (super-seeding): it has them all.
    Offer(Vec<u32>),
    /// It does not share the file (any more).
    Refused(String),
    /// It broke the protocol: a bitfield of the wrong size, an index past the end, a batch
    /// over the limit, a frame that does not decode.
    Broken(String),
}

/// Reads what `link` has of `id` (a file of `count` chunks), on its `Observe` stream if one is
/// open already, and sends it to `out` as holder `holder`'s news, until the holder says it
/// has everything, the stream ends, or `out` closes.
pub(crate) async fn watch(
    (link, open): (Arc<HolderLink>, Option<RecvStream>),
    holder: usize,
    id: FileId,
    count: u32,
    out: mpsc::Sender<(usize, News)>,
) {
    let opened = match open {
        Some(stream) => Ok(stream),
        None => link.observe(id).await,
    };
    let mut stream = match opened {
        Ok(stream) => stream,
        Err(err) => {
            tracing::debug!(peer = %link.peer_id, "cannot ask what the holder has: {err:#}");
            return;
        }
    };
    let mut next_read = Instant::now();
    loop {
        tokio::time::sleep_until(next_read).await;
        let news = match protocol::read_frame::<_, Availability>(&mut stream, MAX_AVAILABILITY_FRAME).await {
            Ok(frame) => check(frame, count),
            // The holder finished the stream or went away: its chunk fetches will tell.
            Err(WireError::Truncated | WireError::Io(_)) => return,
            Err(err) => News::Broken(format!("bad availability frame: {err}")),
        };
        next_read = Instant::now() + MIN_GAP;
        let last = !matches!(news, News::Chunks(_) | News::Offer(_));
        if out.send((holder, news)).await.is_err() || last {
            return;
        }
    }
}

/// Checks one frame against the file's chunk count.
fn check(frame: Availability, count: u32) -> News {
    match frame {
        Availability::All => News::All,
        Availability::Bitfield { count: claimed, bits } => {
            if claimed != count || bits.len() != (count as usize).div_ceil(8) {
                return News::Broken(format!("a bitfield for {claimed} chunks ({} bytes); the file has {count}", bits.len()));
            }
            let ones = (0..count).filter(|&i| bits[i as usize / 8] & (1 << (i % 8)) != 0).collect();
            News::Chunks(ones)
        }
        Availability::Have(indices) => match in_range(&indices, count) {
            Some(broken) => broken,
            None => News::Chunks(indices),
        },
        Availability::Error(reason) => News::Refused(reason),
        Availability::Offer(indices) => match in_range(&indices, count) {
            Some(broken) => broken,
            None => News::Offer(indices),
        },
    }
}

/// Why a batch of indices breaks the rules (too many, one past the end), if it does.
fn in_range(indices: &[u32], count: u32) -> Option<News> {
    if indices.len() > MAX_HAVE_BATCH {
        return Some(News::Broken(format!("a batch of {} chunks, over the {MAX_HAVE_BATCH} limit", indices.len())));
    }
    let bad = indices.iter().find(|&&i| i >= count)?;
    Some(News::Broken(format!("news of chunk {bad}; the file has {count}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_checked_against_the_manifest() {
        assert_eq!(check(Availability::All, 3), News::All);
        assert_eq!(check(Availability::Bitfield { count: 10, bits: vec![0b101, 0b10] }, 10), News::Chunks(vec![0, 2, 9]));
        assert!(matches!(check(Availability::Bitfield { count: 10, bits: vec![1] }, 10), News::Broken(_)));
        assert!(matches!(check(Availability::Bitfield { count: 11, bits: vec![1, 0] }, 10), News::Broken(_)));
        assert_eq!(check(Availability::Have(vec![4, 1]), 5), News::Chunks(vec![4, 1]));
        assert!(matches!(check(Availability::Have(vec![5]), 5), News::Broken(_)));
        assert!(matches!(check(Availability::Have(vec![0; MAX_HAVE_BATCH + 1]), 5), News::Broken(_)));
        assert!(matches!(check(Availability::Error("no".into()), 5), News::Refused(_)));
        assert_eq!(check(Availability::Offer(vec![3]), 5), News::Offer(vec![3]));
        assert!(matches!(check(Availability::Offer(vec![9]), 5), News::Broken(_)));
    }
}
