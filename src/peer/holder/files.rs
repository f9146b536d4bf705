//! Many small files from one holder in one request ([`PeerRequest::Files`]): one stream each
//! way for up to [`MAX_FILES_PER_REQUEST`] files, where chunk requests cost two per file.

use std::sync::atomic::Ordering;

use super::{FetchError, HolderLink};
use crate::peer::liveness::Heard;
use crate::peer::pieces::{Pieces, ends, read_exactly};
#[cfg(doc)]
use crate::protocol::MAX_FILES_PER_REQUEST;
use crate::protocol::{self, ChunkHeader, FileId, MAX_FRAME, PeerRequest};

impl HolderLink {
    /// Fetches the one-chunk files `files` (id and size each, at most
    /// [`MAX_FILES_PER_REQUEST`]) in one request: for each, in order, its bytes as received
    /// (unverified) or why they did not come. Where the answer breaks off, that file and every
    /// one after it get the reason. A holder whose first answer is not a header for the first
    /// file does not know the request (an older peer): it is not asked again on this link.
    pub async fn files(&self, files: &[(FileId, u64)]) -> Vec<Result<Pieces, FetchError>> {
        if self.no_files.load(Ordering::Relaxed) {
            return files.iter().map(|_| Err(FetchError::Refused("does not send many files at once".into()))).collect();
        }
        let total: u64 = files.iter().map(|f| f.1).sum();
        let _turn = self.turn(total).await;
        if let Some(limit) = &self.limit {
            limit.take(total as usize).await;
        }
        let mut got = Vec::with_capacity(files.len());
        let broke = match self.heard_within(self.ask_files(files, &mut got)).await {
            Ok(Ok(())) => None,
            Ok(Err(err)) | Err(err) => Some(err.to_string()),
        };
        if let Some(reason) = broke {
            got.extend(files[got.len()..].iter().map(|_| Err(FetchError::Gone(reason.clone()))));
        }
        got
    }

    /// Sends the request and reads the answer into `got`, file by file; an error is the
    /// answer breaking off.
    async fn ask_files(&self, files: &[(FileId, u64)], got: &mut Vec<Result<Pieces, FetchError>>) -> Result<(), FetchError> {
        let gone = |e: &dyn std::fmt::Display| FetchError::Gone(e.to_string());
        let (mut send, recv) = self.conn.open_bi().await.map_err(|e| gone(&e))?;
        let ids = files.iter().map(|f| f.0).collect();
        protocol::write_frame(&mut send, &PeerRequest::Files { ids }).await.map_err(|e| gone(&e))?;
        let _ = send.finish();
        let mut heard = Heard { stream: recv, state: &self.state };
        for &(id, want) in files {
            let header = protocol::read_frame::<_, ChunkHeader>(&mut heard, MAX_FRAME).await;
            let header = match header {
                Ok(header) if header.id == id && header.index == 0 => header,
                other => {
                    if got.is_empty() && self.conn.close_reason().is_none() {
                        self.no_files.store(true, Ordering::Relaxed);
                    }
                    let why =
                        other.map_or_else(|e| e.to_string(), |h| format!("answered for {} when asked for {}", h.id.short(), id.short()));
                    return Err(FetchError::Corrupt(format!("files answer: {why}")));
                }
            };
            match header.result {
                Err(reason) => got.push(Err(FetchError::Refused(reason))),
                Ok(len) if u64::from(len) != want => {
                    return Err(FetchError::Corrupt(format!("{} announced as {len} bytes, expected {want}", id.short())));
                }
                Ok(len) => {
                    let pieces = read_exactly(&mut heard.stream, len as usize, &self.state).await.map_err(FetchError::Corrupt)?;
                    got.push(Ok(pieces));
                }
            }
        }
        ends(&mut heard.stream).await.map_err(FetchError::Corrupt)
    }
}
