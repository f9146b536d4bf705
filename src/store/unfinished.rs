//! Unfinished downloads as a person sees them: listed from the resume state in the download
//! folder (`status`), and dropped one at a time (`discard`).
//!
//! Everything here reads or deletes a few small files; it blocks only briefly.

use std::fs;
use std::io;
use std::path::Path;
use std::time::SystemTime;

use crate::content::manifest::{chunk_count, chunk_size_for};
use crate::protocol::FileId;
use crate::store::partial::{PARTIAL_DIR, paths};
use crate::store::resume::ResumeState;
use crate::store::{StoreError, io_err};

/// A download that stopped before the end, as its resume state describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unfinished {
    /// The file's id.
    pub id: FileId,
    /// The name it will get (`None` when the resume state does not say: written by an earlier
    /// release, or damaged).
    pub name: Option<String>,
    /// The file's size.
    pub size: u64,
    /// Its number of chunks.
    pub chunks: u32,
    /// Chunks verified and on disk, as the resume state records them.
    pub verified_chunks: u32,
    /// Bytes of those chunks.
    pub verified_bytes: u64,
    /// When the resume state was last written.
    pub saved: Option<SystemTime>,
}

impl Unfinished {
    /// The name, or the short id when the name is not known.
    pub fn label(&self) -> String {
        self.name.clone().unwrap_or_else(|| self.id.short())
    }

    /// Verified share of the file, in whole percent.
    pub fn percent(&self) -> u64 {
        (self.verified_bytes.min(self.size) * 100).checked_div(self.size).unwrap_or(100)
    }

    /// `saved` as Unix milliseconds.
    pub fn saved_ms(&self) -> Option<i64> {
        let since = self.saved?.duration_since(SystemTime::UNIX_EPOCH).ok()?;
        i64::try_from(since.as_millis()).ok()
    }

    fn matches(&self, query: &str) -> bool {
        self.name.as_deref() == Some(query) || self.id.has_prefix(query)
    }
}

/// Every unfinished download in `download_dir`, by name.
pub fn list(download_dir: &Path) -> Vec<Unfinished> {
    let Ok(entries) = fs::read_dir(download_dir.join(PARTIAL_DIR)) else { return Vec::new() };
    let mut found: Vec<Unfinished> = entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name();
            let hex = name.to_str()?.strip_suffix(".part")?;
            let id = FileId::from(blake3::Hash::from_hex(hex).ok()?);
            read_one(download_dir, id)
        })
        .collect();
    found.sort_by_key(|u| (u.label(), u.id));
    found
}

/// What the resume state of `id` says; a partial file without a readable one counts as
/// nothing verified.
fn read_one(download_dir: &Path, id: FileId) -> Option<Unfinished> {
    let (part, bits) = paths(download_dir, &id);
    let part_meta = fs::metadata(&part).ok()?;
    let size = part_meta.len();
    let state = fs::read(&bits).ok().and_then(|b| ResumeState::decode(&b)).filter(|s| s.bits.size() == size);
    let Some(state) = state else {
        let chunks = chunk_count(size, chunk_size_for(size)).try_into().unwrap_or(u32::MAX);
        let saved = part_meta.modified().ok();
        return Some(Unfinished { id, name: None, size, chunks, verified_chunks: 0, verified_bytes: 0, saved });
    };
    let (verified_chunks, verified_bytes) = state.verified();
    let saved = fs::metadata(&bits).and_then(|m| m.modified()).ok();
    Some(Unfinished { id, name: state.name, size, chunks: state.bits.count(), verified_chunks, verified_bytes, saved })
}

/// The one download of `all` that `query` names: its name, or a prefix of its id.
pub fn find(all: Vec<Unfinished>, query: &str) -> Result<Unfinished, String> {
    let mut hits: Vec<Unfinished> = all.into_iter().filter(|u| u.matches(query)).collect();
    // A whole name beats an id prefix that happens to match another download.
    if hits.iter().any(|u| u.name.as_deref() == Some(query)) {
        hits.retain(|u| u.name.as_deref() == Some(query));
    }
    match hits.len() {
        0 => Err(format!("no unfinished download {query:?} (status lists them)")),
        1 => Ok(hits.remove(0)),
        n => {
            let ids: Vec<String> = hits.iter().map(|u| u.id.short()).collect();
            Err(format!("{query:?} names {n} unfinished downloads ({}); pick one by id", ids.join(", ")))
        }
    }
}

/// Deletes the partial file of `id`, its resume state and kept manifest, then the hidden
/// folder if it is left empty.
pub fn discard(download_dir: &Path, id: &FileId) -> Result<(), StoreError> {
    let (part, bits) = paths(download_dir, id);
    let kept = [part.with_extension("manifest"), part.with_extension("manifest.tmp")];
    for file in [part, bits.with_extension("bits.tmp"), bits].into_iter().chain(kept) {
        match fs::remove_file(&file) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(io_err(format!("cannot delete {}", file.display()))(e)),
            _ => {}
        }
    }
    let _ = fs::remove_dir(download_dir.join(PARTIAL_DIR));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content::manifest::Manifest;
    use crate::store::partial::Partial;

    #[test]
    fn unfinished_downloads_are_listed_with_what_is_verified_and_discarded_by_name_or_id() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..4 * 256 * 1024 + 100).map(|i| (i % 239) as u8).collect();
        let (id, manifest) = Manifest::from_bytes(&data);
        let (part, _) = Partial::open(dir.path(), &id, "movie.bin", &manifest).unwrap();
        part.write_chunk(4, 4 * 256 * 1024, &data[4 * 256 * 1024..]).unwrap();
        part.write_chunk(1, 256 * 1024, &data[256 * 1024..2 * 256 * 1024]).unwrap();
        part.checkpoint().unwrap();
        drop(part);
        let all = list(dir.path());
        assert_eq!(all.len(), 1);
        let u = &all[0];
        assert_eq!((u.name.as_deref(), u.id, u.size, u.chunks), (Some("movie.bin"), id, data.len() as u64, 5));
        assert_eq!((u.verified_chunks, u.verified_bytes, u.percent()), (2, 256 * 1024 + 100, 25));
        assert!(u.saved.is_some());
        assert!(find(all.clone(), "other.bin").is_err());
        assert_eq!(find(all.clone(), &id.to_hex()[..6]).unwrap().id, id);
        discard(dir.path(), &find(all, "movie.bin").unwrap().id).unwrap();
        assert!(list(dir.path()).is_empty());
        assert!(!dir.path().join(PARTIAL_DIR).exists(), "the empty hidden folder stayed");
    }
}
