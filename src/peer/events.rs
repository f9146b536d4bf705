//! What the engine tells its caller about a download: events on a channel the caller made.
//!
//! The engine never draws. [`crate::peer::Peer::get_with`] sends [`Progress`] events to the
//! sender it is given (a front end turns them into bars, warning lines or JSON, or nothing)
//! and keeps [`Transfers`], the downloads under way that `status` lists, current as the
//! events go by (sendme and iroh-blobs report progress the same way).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Serialize;
use tokio::sync::mpsc;

use crate::protocol::FileInfo;

/// What a download reports as it goes.
#[derive(Debug, Clone)]
pub enum Progress {
    /// The tracker named the file; this comes first.
    Found(FileInfo),
    /// The manifest is in; chunks start flowing from `holders` peers.
    Start {
        /// File name.
        name: String,
        /// File size.
        size: u64,
        /// Holders connected.
        holders: usize,
    },
    /// A verified chunk was written.
    Chunk {
        /// Its length.
        bytes: u64,
    },
    /// Once, before any chunk: the bytes an earlier attempt left, re-checked (they count
    /// towards progress, not towards the rate).
    Resumed {
        /// Their total length.
        bytes: u64,
    },
    /// Something the user should know (a holder dropped or unreachable).
    Note(String),
    /// The number of holders working for the download changed (0: waiting for one).
    Holders(usize),
    /// How many of those holders were found on the DHT (sent after each `Holders`).
    FromDht(usize),
    /// A folder: how many of its files are in place, of how many.
    Files {
        /// Files verified and in place.
        done: u64,
        /// Files in the folder.
        total: u64,
    },
    /// Every chunk is in.
    Done,
}

/// One download under way.
#[derive(Clone, Debug, Serialize)]
pub struct Transfer {
    /// File name.
    pub name: String,
    /// File id (hex).
    pub id: String,
    /// File size.
    pub size: u64,
    /// Bytes verified so far.
    pub bytes: u64,
    /// Holders connected (0 until the manifest is in).
    pub holders: usize,
    /// How many of them were found on the DHT (the rest came from a tracker).
    pub from_dht: usize,
    /// Time since the download started, in milliseconds.
    pub elapsed_ms: u64,
    #[serde(skip)]
    started: Instant,
}

impl Transfer {
    /// Mean rate so far, in bytes per second.
    pub fn rate(&self) -> u64 {
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        (self.bytes as f64 / secs) as u64
    }
}

/// Downloads under way, for `status`; cheap to clone.
#[derive(Clone, Default)]
pub struct Transfers {
    inner: Arc<Mutex<(u64, BTreeMap<u64, Transfer>)>>,
}

impl Transfers {
    fn lock(&self) -> std::sync::MutexGuard<'_, (u64, BTreeMap<u64, Transfer>)> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every download under way, oldest first.
    pub fn list(&self) -> Vec<Transfer> {
        let now = Instant::now();
        let mut all: Vec<Transfer> = self.lock().1.values().cloned().collect();
        for t in &mut all {
            t.elapsed_ms = now.saturating_duration_since(t.started).as_millis() as u64;
        }
        all
    }

    /// Lists a new download of `file` until the returned slot is dropped.
    fn add(&self, file: &FileInfo) -> Listing {
        let mut table = self.lock();
        table.0 += 1;
        let key = table.0;
        let transfer = Transfer {
            name: file.name.clone(),
            id: file.id.to_hex(),
            size: file.size,
            bytes: 0,
            holders: 0,
            from_dht: 0,
            elapsed_ms: 0,
            started: Instant::now(),
        };
        table.1.insert(key, transfer);
        Listing { transfers: self.clone(), key }
    }
}

/// One download's entry in [`Transfers`]; removed when dropped.
struct Listing {
    transfers: Transfers,
    key: u64,
}

impl Listing {
    /// Applies an event; returns the entry as it now is.
    fn apply(&self, event: &Progress) -> Option<Transfer> {
        let mut table = self.transfers.lock();
        let t = table.1.get_mut(&self.key)?;
        match event {
            Progress::Start { size, holders, .. } => (t.size, t.holders) = (*size, *holders),
            Progress::Chunk { bytes } | Progress::Resumed { bytes } => t.bytes += bytes,
            Progress::Holders(n) => t.holders = *n,
            Progress::FromDht(n) => t.from_dht = *n,
            Progress::Found(_) | Progress::Note(_) | Progress::Files { .. } | Progress::Done => {}
        }
        Some(t.clone())
    }
}

impl Drop for Listing {
    fn drop(&mut self) {
        self.transfers.lock().1.remove(&self.key);
    }
}

/// Passes a download's events on to the caller's sender (if any), keeping its entry in
/// `transfers` current; the entry goes when the download's sender is dropped.
pub(crate) fn forward(
    transfers: &Transfers,
    file: &FileInfo,
    to: Option<mpsc::UnboundedSender<Progress>>,
) -> (mpsc::UnboundedSender<Progress>, tokio::task::JoinHandle<()>) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let slot = transfers.add(file);
    let forwarding = crate::net::task::spawn(tracing::Span::current(), async move {
        while let Some(event) = rx.recv().await {
            slot.apply(&event);
            if let Some(to) = &to {
                let _ = to.send(event);
            }
        }
    });
    (tx, forwarding)
}

/// What hashing a file for `share` reports as it goes, on a channel the caller made (the
/// front end draws a bar from it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hashing {
    /// Waiting for a free hasher: as many files hash at once as the machine has cores.
    Queued {
        /// The name it will be shared under.
        name: String,
        /// File size.
        size: u64,
    },
    /// Hashing began.
    Start {
        /// The name it will be shared under.
        name: String,
        /// File size.
        size: u64,
    },
    /// More bytes hashed.
    Hashed {
        /// Bytes since the last event.
        bytes: u64,
    },
    /// Files of a folder hashed so far, of how many (now and then, with [`Hashing::Hashed`]).
    Files {
        /// Files hashed (or left out) so far.
        done: u64,
        /// Files in the folder.
        total: u64,
    },
    /// The hashing ended (done, failed or cancelled); nothing comes after this.
    Done,
}

/// One file being hashed for `share`, for `status`.
#[derive(Clone, Debug, Serialize)]
pub struct HashingNow {
    /// The name it will be shared under.
    pub name: String,
    /// File size.
    pub size: u64,
    /// Bytes hashed so far.
    pub bytes: u64,
    /// Waiting for a free hasher (every core is busy with another file).
    pub waiting: bool,
    /// Time since the share was asked for, in milliseconds.
    pub elapsed_ms: u64,
}

/// The last key handed out, and each file hashing by key with when it was asked for.
type HashingTable = (u64, BTreeMap<u64, (HashingNow, Instant)>);

/// Files being hashed for `share` now, for `status`; cheap to clone.
#[derive(Clone, Default)]
pub struct Hashings {
    inner: Arc<Mutex<HashingTable>>,
}

impl Hashings {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashingTable> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every file being hashed, oldest first.
    pub fn list(&self) -> Vec<HashingNow> {
        let now = Instant::now();
        let table = self.lock();
        table
            .1
            .values()
            .map(|(h, since)| HashingNow { elapsed_ms: now.saturating_duration_since(*since).as_millis() as u64, ..h.clone() })
            .collect()
    }

    /// Lists `name` (waiting for a hasher) until the returned entry is dropped.
    pub(super) fn add(&self, name: &str, size: u64) -> HashingEntry {
        let mut table = self.lock();
        table.0 += 1;
        let key = table.0;
        let now = HashingNow { name: name.to_string(), size, bytes: 0, waiting: true, elapsed_ms: 0 };
        table.1.insert(key, (now, Instant::now()));
        HashingEntry { hashings: self.clone(), key }
    }
}

/// One file's entry in [`Hashings`]; removed when dropped (done, failed or cancelled alike).
pub(super) struct HashingEntry {
    hashings: Hashings,
    key: u64,
}

impl HashingEntry {
    /// A hasher took the file.
    pub(super) fn started(&self) {
        self.update(|h| h.waiting = false);
    }

    /// `bytes` more were hashed.
    pub(super) fn hashed(&self, bytes: u64) {
        self.update(|h| h.bytes += bytes);
    }

    fn update(&self, change: impl FnOnce(&mut HashingNow)) {
        if let Some((h, _)) = self.hashings.lock().1.get_mut(&self.key) {
            change(h);
        }
    }
}

impl Drop for HashingEntry {
    fn drop(&mut self) {
        self.hashings.lock().1.remove(&self.key);
    }
}
