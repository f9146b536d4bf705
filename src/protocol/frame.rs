//! Framing: a big-endian `u32` length, then that many bytes of bincode (standard config).
//!
//! The length is checked against the frame's limit before anything is allocated, the body
//! buffer grows only as bytes actually arrive, and bincode decodes with a limit no larger than
//! the frame's, so neither a hostile length prefix nor a nested length inside can make us
//! allocate more than the limit. Every byte p2pq sends or reads goes through here.

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::{MAX_FRAME, MAX_MANIFEST_FRAME};

/// What can go wrong reading or writing a frame.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The length prefix is over the frame's limit.
    #[error("frame of {len} bytes is over the {limit}-byte limit")]
    TooLarge {
        /// Announced length.
        len: usize,
        /// Limit for this frame.
        limit: usize,
    },
    /// The stream ended where a frame was expected.
    #[error("stream ended before a complete frame")]
    Truncated,
    /// The bytes are not a valid message. (The cause is in the message and not given as a
    /// source too, so a chain printed with `{:#}` names it once.)
    #[error("malformed frame: {0}")]
    Decode(bincode::error::DecodeError),
    /// The message could not be encoded (should not happen for our types).
    #[error("cannot encode frame: {0}")]
    Encode(bincode::error::EncodeError),
    /// The frame decoded but left bytes over.
    #[error("frame has {0} trailing bytes")]
    Trailing(usize),
    /// Transport error.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl From<bincode::error::DecodeError> for WireError {
    fn from(err: bincode::error::DecodeError) -> WireError {
        WireError::Decode(err)
    }
}

impl From<bincode::error::EncodeError> for WireError {
    fn from(err: bincode::error::EncodeError) -> WireError {
        WireError::Encode(err)
    }
}

/// Encodes `msg` as one frame: length prefix and bincode.
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, WireError> {
    let body = bincode::serde::encode_to_vec(msg, bincode::config::standard())?;
    let len = u32::try_from(body.len()).map_err(|_| WireError::TooLarge { len: body.len(), limit: u32::MAX as usize })?;
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(&body);
    Ok(frame)
}

/// Decodes a frame body (without its length prefix), refusing trailing bytes.
pub fn decode_body<T: DeserializeOwned>(body: &[u8], limit: usize) -> Result<T, WireError> {
    if body.len() > limit {
        return Err(WireError::TooLarge { len: body.len(), limit });
    }
    // Bincode's limit caps what a claimed inner length may make it reserve; pick the smallest
    // limit that still covers this frame kind (the limit is a type parameter, so two configs).
    let (msg, used) = if limit <= MAX_FRAME {
        bincode::serde::decode_from_slice(body, bincode::config::standard().with_limit::<{ MAX_FRAME }>())?
    } else {
        bincode::serde::decode_from_slice(body, bincode::config::standard().with_limit::<{ MAX_MANIFEST_FRAME }>())?
    };
    if used != body.len() {
        return Err(WireError::Trailing(body.len() - used));
    }
    Ok(msg)
}

/// Decodes a frame that arrived whole in one QUIC datagram: its length prefix must say
/// exactly the bytes that follow, and those at most `limit`.
pub fn decode_datagram<T: DeserializeOwned>(datagram: &[u8], limit: usize) -> Result<T, WireError> {
    let (prefix, body) = datagram.split_first_chunk::<4>().ok_or(WireError::Truncated)?;
    let len = u32::from_be_bytes(*prefix) as usize;
    if len > limit {
        return Err(WireError::TooLarge { len, limit });
    }
    match body.len().cmp(&len) {
        std::cmp::Ordering::Less => Err(WireError::Truncated),
        std::cmp::Ordering::Greater => Err(WireError::Trailing(body.len() - len)),
        std::cmp::Ordering::Equal => decode_body(body, limit),
    }
}

/// Writes one frame.
pub async fn write_frame<W, T>(out: &mut W, msg: &T) -> Result<(), WireError>
where
    W: AsyncWrite + Unpin,
    T: Serialize,
{
    out.write_all(&encode(msg)?).await?;
    Ok(())
}

/// Reads one frame of at most `limit` bytes and decodes it.
pub async fn read_frame<R, T>(input: &mut R, limit: usize) -> Result<T, WireError>
where
    R: AsyncRead + Unpin,
    T: DeserializeOwned,
{
    let mut prefix = [0u8; 4];
    read_exact(input, &mut prefix).await?;
    let len = u32::from_be_bytes(prefix) as usize;
    if len > limit {
        return Err(WireError::TooLarge { len, limit });
    }
    // Grow the buffer as bytes arrive: a length prefix alone (a stalled or lying sender) pins at
    // most one step of memory, not the whole announced length.
    let mut body = Vec::with_capacity(len.min(READ_STEP));
    let got = input.take(len as u64).read_to_end(&mut body).await?;
    if got < len {
        return Err(WireError::Truncated);
    }
    decode_body(&body, limit)
}

/// First allocation for a frame body; it grows from there only as bytes arrive.
const READ_STEP: usize = 16 << 10;

/// `read_exact` that reports a short stream as [`WireError::Truncated`].
pub async fn read_exact<R: AsyncRead + Unpin>(input: &mut R, buf: &mut [u8]) -> Result<(), WireError> {
    match input.read_exact(buf).await {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(WireError::Truncated),
        Err(e) => Err(WireError::Io(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_error_names_its_cause_once() {
        let io = WireError::from(std::io::Error::other("connection lost"));
        let decode = decode_body::<String>(&[0xff, 0xff], 16).unwrap_err();
        for err in [io, decode] {
            let text = format!("{:#}", anyhow::Error::from(err));
            let last = text.rsplit(": ").next().unwrap();
            assert_eq!(text.matches(last).count(), 1, "{text}");
        }
    }
}
