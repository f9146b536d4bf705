//! Chunk buffers kept for reuse.
//!
//! Every chunk a holder sends and every chunk a downloader stores passes through a buffer of
//! the chunk size. Allocating each afresh costs more than the copy into it: the allocator hands
//! large blocks back to the kernel when they are freed, so each new one arrives as fresh pages
//! to fault in and zero (about 7% of a holder's CPU time in `benches/e2e.sh` under perf). The
//! pool keeps a few freed buffers instead, with their bytes initialised, so a reused buffer
//! needs neither page faults nor zero-filling.

use std::sync::{Mutex, MutexGuard};

use bytes::Bytes;

/// Buffers kept at most: enough for the chunks in flight at once on a busy peer; beyond it
/// freed buffers go back to the allocator, so idle memory stays under ~8 MiB.
const KEEP: usize = 32;
/// Largest buffer worth keeping; a bigger one (a huge file's chunk) is freed.
const KEEP_UP_TO: usize = 4 << 20;

static POOL: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

fn pool() -> MutexGuard<'static, Vec<Vec<u8>>> {
    POOL.lock().unwrap_or_else(|p| p.into_inner())
}

/// A buffer of exactly `len` bytes, whose contents are unspecified (left from an earlier use,
/// or zero): the caller overwrites all of them.
pub fn take(len: usize) -> Vec<u8> {
    let reused = pool().pop();
    let mut buffer = reused.unwrap_or_default();
    // Shrinking keeps the bytes initialised; growing zero-fills only the new tail.
    buffer.resize(len, 0);
    buffer
}

/// Hands a buffer back for reuse.
pub fn give(buffer: Vec<u8>) {
    if buffer.capacity() > KEEP_UP_TO || buffer.capacity() == 0 {
        return;
    }
    let mut pool = pool();
    if pool.len() < KEEP {
        pool.push(buffer);
    }
}

/// Wraps a pooled buffer as [`Bytes`] without copying; the buffer returns to the pool when
/// the last reference is dropped (for a chunk being sent: once the peer acknowledged it all).
pub fn into_bytes(buffer: Vec<u8>) -> Bytes {
    Bytes::from_owner(Returning(buffer))
}

/// A buffer that goes back to the pool when dropped.
struct Returning(Vec<u8>);

impl AsRef<[u8]> for Returning {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for Returning {
    fn drop(&mut self) {
        give(std::mem::take(&mut self.0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_have_the_asked_length_and_come_back() {
        let mut first = take(1000);
        assert_eq!(first.len(), 1000);
        first.fill(7);
        let shorter = {
            give(first);
            take(10)
        };
        assert_eq!(shorter.len(), 10);
        let bytes = into_bytes(shorter);
        assert_eq!(bytes.len(), 10);
        drop(bytes);
        assert_eq!(take(2000).len(), 2000);
    }
}
