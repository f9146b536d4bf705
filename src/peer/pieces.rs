//! One chunk as it arrives: quinn's receive buffers taken as they are, exactly the chunk's
//! length, each read counted as heard on the holder's link.

use bytes::Bytes;
use quinn::RecvStream;

use super::liveness::{State, state};

/// Quinn buffers taken from a stream per read: one lock of the connection hands over this
/// many received frames.
const PIECES_PER_READ: usize = 32;

/// A chunk as received: quinn's own buffers, in order, exactly the chunk's length in all.
pub struct Pieces(Vec<Bytes>);

impl Pieces {
    /// Copies the chunk into `out`, which should be exactly its length (what does not fit is
    /// left out, and then the chunk fails verification).
    pub fn copy_to(&self, out: &mut [u8]) {
        let mut at = 0;
        for piece in &self.0 {
            let Some(place) = out.get_mut(at..at + piece.len()) else { return };
            place.copy_from_slice(piece);
            at += piece.len();
        }
    }
}

/// Reads exactly `len` bytes from `stream` and its end, counting what arrives as heard on the
/// link (silence is judged there, by the caller). Takes quinn's buffers as they are, many per
/// lock of the connection (one at a time, every ~1 KiB frame contended with the connection
/// driver), and copies nothing: the copy into one contiguous buffer happens on a blocking
/// thread, off the thread that drives the connection. An error says what was wrong with the
/// stream (the caller counts it against the holder).
pub(super) async fn read_whole(stream: &mut RecvStream, len: usize, link: &State) -> Result<Pieces, String> {
    let mut pieces = Vec::with_capacity(len / 1024 + 1);
    let mut batch: [Bytes; PIECES_PER_READ] = Default::default();
    let mut got = 0;
    while got < len {
        let count = match stream.read_chunks(&mut batch).await {
            Ok(Some(count)) => count,
            Ok(None) => return Err(format!("cut short at {got} of {len} bytes")),
            Err(e) => return Err(format!("stream failed: {e}")),
        };
        let before = got;
        for piece in &mut batch[..count] {
            got += piece.len();
            if got > len {
                return Err(format!("longer than the {len} bytes announced"));
            }
            pieces.push(std::mem::take(piece));
        }
        state(link).heard((got - before) as u64);
    }
    // The stream must end there: a holder that goes on is not sending what it announced.
    match stream.read_chunk(1, true).await {
        Ok(None) => Ok(Pieces(pieces)),
        Ok(Some(_)) => Err(format!("longer than the {len} bytes announced")),
        Err(e) => Err(format!("stream failed: {e}")),
    }
}

/// Reads exactly `len` bytes from `stream`, which goes on past them (the next file of a
/// `Files` answer), counting what arrives as heard on the link.
pub(super) async fn read_exactly(stream: &mut RecvStream, len: usize, link: &State) -> Result<Pieces, String> {
    let mut pieces = Vec::with_capacity(len / 1024 + 1);
    let mut got = 0;
    while got < len {
        let piece = match stream.read_chunk(len - got, true).await {
            Ok(Some(chunk)) => chunk.bytes,
            Ok(None) => return Err(format!("cut short at {got} of {len} bytes")),
            Err(e) => return Err(format!("stream failed: {e}")),
        };
        got += piece.len();
        state(link).heard(piece.len() as u64);
        pieces.push(piece);
    }
    Ok(Pieces(pieces))
}

/// Whether `stream` ends here, with nothing more on it.
pub(super) async fn ends(stream: &mut RecvStream) -> Result<(), String> {
    match stream.read_chunk(1, true).await {
        Ok(None) => Ok(()),
        Ok(Some(_)) => Err("more after the last file asked for".into()),
        Err(e) => Err(format!("stream failed: {e}")),
    }
}
