//! The raw quinn baseline's sender, shared by the benches: what raw quinn does when it only
//! moves bytes (no file, no hashing, no protocol of ours).

use std::sync::Arc;

use anyhow::Result;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// Sends `total` bytes on `conn` as streams of `chunk.len()` bytes (the last one shorter), at
/// most `in_flight` of them unacknowledged at once.
pub async fn send_streams(conn: &quinn::Connection, total: u64, in_flight: usize, chunk: Arc<[u8]>) -> Result<()> {
    let window = Arc::new(Semaphore::new(in_flight.max(1)));
    let mut sends = JoinSet::new();
    let mut left = total;
    while left > 0 {
        let len = left.min(chunk.len() as u64) as usize;
        left -= len as u64;
        let permit = window.clone().acquire_owned().await?;
        let (conn, chunk) = (conn.clone(), chunk.clone());
        sends.spawn(async move {
            let _permit = permit;
            let mut out = conn.open_uni().await?;
            out.write_all(&chunk[..len]).await?;
            out.finish()?;
            // In flight until the receiver has acknowledged every byte.
            out.stopped().await?;
            anyhow::Ok(())
        });
        while sends.try_join_next().is_some() {}
    }
    while sends.join_next().await.is_some() {}
    Ok(())
}
