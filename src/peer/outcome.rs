//! What the engine's main calls hand back: a file shared ([`Shared`]), a `get` finished
//! ([`Got`]). Plain data for the front ends to report.

use std::path::PathBuf;
use std::time::Duration;

use crate::protocol::FileInfo;

/// A file now shared.
pub struct Shared {
    /// What was announced.
    pub info: FileInfo,
    /// Number of chunks.
    pub chunks: u32,
    /// Why the tracker has not heard of it yet, if it has not.
    pub pending: Option<String>,
    /// For a folder: its files, and what was left out.
    pub folder: Option<super::folders::FolderShared>,
}

/// A finished `get`.
pub struct Got {
    /// The file.
    pub info: FileInfo,
    /// Where it is.
    pub path: PathBuf,
    /// Time from lookup to the file in place.
    pub elapsed: Duration,
    /// Chunks from each holder; empty if we already had the file.
    pub from: Vec<(String, u32)>,
    /// Chunks an interrupted earlier attempt had already verified.
    pub resumed: u32,
    /// Bytes moved this time (the size less what an earlier attempt left): what the rate is of.
    pub moved: u64,
}
