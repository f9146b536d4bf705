//! Answering [`PeerRequest::Files`](crate::protocol::PeerRequest::Files): a downloader's
//! small files, each whole, one after another on the request's own stream.

use anyhow::{Context, Result, anyhow, bail};
use quinn::{Connection, SendStream};
use tokio::sync::Semaphore;

use super::{Serving, read_chunk, send_paced};
use crate::protocol::{self, ChunkHeader, FileId, MAX_FILES_PER_REQUEST};
use crate::store::buffers::Buffer;
use crate::store::shares::Shares;

/// Send priority of a files answer: below every control answer, level with a downloader's
/// first chunk.
const FILES_PRIORITY: i32 = -1;

/// Sends each of `ids` whole (each must be one chunk), or why not, in order on `send`, then
/// ends it. The answer takes one of the downloader's send permits for all of it and goes
/// through its lane of the upload limit; each file must be taken within the chunk timeout, so
/// a downloader that stops reading cannot pin the permit. Asked for too many, it resets the
/// stream (dropped, it would end as if answered).
pub(super) async fn answer(conn: &Connection, mut send: SendStream, ids: &[FileId], serving: &Serving, sends: &Semaphore) -> Result<()> {
    if ids.len() > MAX_FILES_PER_REQUEST {
        let _ = send.reset(quinn::VarInt::from_u32(0));
        bail!("asked for {} files at once, more than {MAX_FILES_PER_REQUEST}", ids.len());
    }
    let _ = send.set_priority(FILES_PRIORITY);
    let _permit = sends.acquire().await?;
    let lane = match serving.throttle.as_deref() {
        Some(throttle) => Some(throttle.sending(crate::net::tls::remote_fingerprint(conn)?)),
        None => None,
    };
    let to = crate::net::addrs::canonical(conn.remote_address());
    for id in ids {
        let one = async {
            let result = whole(&serving.shares, id).await;
            let len = result.as_ref().map(|d| d.len() as u32).map_err(|e| format!("{e:#}"));
            protocol::write_frame(&mut send, &ChunkHeader { id: *id, index: 0, result: len }).await?;
            if let Ok(data) = result {
                let bytes = data.len();
                send_paced(&mut send, data, lane.as_ref()).await?;
                serving.shares.count_sent(id, bytes, to);
            }
            anyhow::Ok(())
        };
        tokio::time::timeout(serving.chunk_timeout(), one).await.context("downloader too slow to take the files")??;
    }
    send.finish()?;
    Ok(())
}

/// The whole of shared file `id`, which must be one chunk.
async fn whole(shares: &Shares, id: &FileId) -> Result<Buffer> {
    if let Some(file) = shares.get(id)
        && file.manifest.count() != 1
    {
        return Err(anyhow!("{} is {} chunks, not one", file.info.name, file.manifest.count()));
    }
    read_chunk(shares, id, 0).await
}
