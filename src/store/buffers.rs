//! Chunk buffers, page-aligned and kept for reuse.
//!
//! Every chunk a holder sends and every chunk a downloader stores passes through a buffer of
//! the chunk size. Allocating each afresh costs more than the copy into it: the allocator hands
//! large blocks back to the kernel when they are freed, so each new one arrives as fresh pages
//! to fault in and zero (about 7% of a holder's CPU time in `benches/e2e.sh` under perf). The
//! pool keeps a few freed buffers instead, with their bytes initialised, so a reused buffer
//! needs neither page faults nor zero-filling. Buffers start on a page boundary so a verified
//! chunk can be written with direct I/O (`partial.rs`).

use std::sync::{Mutex, MutexGuard};

use bytes::Bytes;

/// Where a buffer's bytes start: a multiple of this (the page size, what direct I/O needs).
pub const ALIGN: usize = crate::store::DIRECT_ALIGN;
/// Buffers kept at most: enough for the chunks in flight at once on a busy peer; beyond it
/// freed buffers go back to the allocator, so idle memory stays under ~8 MiB.
const KEEP: usize = 32;
/// Largest buffer worth keeping; a bigger one (a huge file's chunk) is freed.
const KEEP_UP_TO: usize = (4 << 20) + ALIGN;

static POOL: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

fn pool() -> MutexGuard<'static, Vec<Vec<u8>>> {
    POOL.lock().unwrap_or_else(|p| p.into_inner())
}

/// A chunk buffer: `len` bytes starting on an [`ALIGN`] boundary. It returns to the pool when
/// dropped.
pub struct Buffer {
    storage: Vec<u8>,
    start: usize,
    len: usize,
}

impl Buffer {
    /// The buffer's bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.storage[self.start..self.start + self.len]
    }

    /// The buffer's bytes, to fill.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.storage[self.start..self.start + self.len]
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds no bytes (an empty file's one chunk).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The buffer as [`Bytes`], without copying; it returns to the pool when the last
    /// reference is dropped (for a chunk being sent: once the peer acknowledged all of it).
    pub fn into_bytes(self) -> Bytes {
        Bytes::from_owner(self)
    }
}

impl AsRef<[u8]> for Buffer {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        let storage = std::mem::take(&mut self.storage);
        if storage.capacity() == 0 || storage.capacity() > KEEP_UP_TO {
            return;
        }
        let mut pool = pool();
        if pool.len() < KEEP {
            pool.push(storage);
        }
    }
}

/// A buffer of exactly `len` bytes whose contents are unspecified (left from an earlier use,
/// or zero): the caller overwrites all of them.
pub fn take(len: usize) -> Buffer {
    let mut storage = pool().pop().unwrap_or_default();
    // Shrinking keeps the bytes initialised; growing zero-fills only the new tail. The slack
    // lets the bytes start on an ALIGN boundary wherever the allocation landed.
    storage.resize(len + ALIGN - 1, 0);
    let start = (ALIGN - storage.as_ptr() as usize % ALIGN) % ALIGN;
    Buffer { storage, start, len }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_aligned_have_the_asked_length_and_come_back() {
        let mut first = take(1000);
        assert_eq!(first.len(), 1000);
        assert_eq!(first.as_slice().as_ptr() as usize % ALIGN, 0);
        first.as_mut_slice().fill(7);
        drop(first);
        let shorter = take(10);
        assert_eq!((shorter.len(), shorter.as_slice().as_ptr() as usize % ALIGN), (10, 0));
        let bytes = shorter.into_bytes();
        assert_eq!(bytes.len(), 10);
        drop(bytes);
        let longer = take(300_000);
        assert_eq!((longer.len(), longer.as_slice().as_ptr() as usize % ALIGN), (300_000, 0));
    }
}
