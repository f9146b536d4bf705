//! The share list kept across runs, so a restarted peer serves again what it served before.
//!
//! `STATE/shares.json` lists every shared or downloaded file: path, name, size, modification
//! time, id and where it came from. Next to it, `STATE/manifests/ID` holds the file's chunk
//! hashes (32 bytes each, in order; none for a file of one chunk, whose id is its one chunk
//! hash), so a file whose size and modification time are unchanged
//! is served again without reading it: the manifest is rebuilt from the sidecar and checked
//! against the id (a damaged sidecar only costs a re-hash). Every write goes to a temporary
//! file that is then renamed over the old one, so a crash leaves the old list or the new one,
//! never half of either. The functions here block: call them from a blocking thread.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};

use super::{StoreError, io_err};
use crate::content::manifest::{Manifest, chunk_count};
use crate::protocol::{FileId, FileInfo};

/// Name of the share list in the state folder.
pub const LIST_FILE: &str = "shares.json";
/// Folder of manifest sidecars in the state folder.
const MANIFESTS: &str = "manifests";

/// How a file came to be shared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// `share` named it.
    Shared,
    /// A finished download.
    Downloaded,
}

impl Origin {
    /// `shared` or `downloaded`.
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Shared => "shared",
            Origin::Downloaded => "downloaded",
        }
    }
}

/// One file of the share list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Where the file is (as resolved when it was shared).
    pub path: PathBuf,
    /// The name it is shared under.
    pub name: String,
    /// Size in bytes when it was hashed.
    pub size: u64,
    /// Modification time when it was hashed, in nanoseconds since 1970 (if the system has one).
    pub mtime_ns: Option<u64>,
    /// Its id (BLAKE3, hex).
    pub id: String,
    /// Chunk size of its manifest.
    pub chunk_size: u32,
    /// How it came to be shared.
    pub origin: Origin,
    /// Set for a folder's listing: what the folder holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub folder: Option<crate::protocol::FolderSize>,
}

/// What a file on disk looks like now, next to its entry.
#[derive(Debug, PartialEq, Eq)]
pub enum Check {
    /// Same size and modification time: serve it again as it was.
    Unchanged,
    /// Different size or modification time: hash it again.
    Changed,
    /// No regular file there any more.
    Gone,
}

impl Entry {
    /// The entry for `info`, served from `path` with `manifest`; `None` if `path` cannot be read.
    pub fn new(info: &FileInfo, path: &Path, manifest: &Manifest, origin: Origin) -> Option<Entry> {
        let (size, mtime_ns) = stamp(path).ok()?;
        let entry = Entry {
            path: path.to_path_buf(),
            name: info.name.clone(),
            size,
            mtime_ns,
            id: info.id.to_hex(),
            chunk_size: manifest.chunk_size,
            origin,
            folder: info.folder,
        };
        Some(entry)
    }

    /// The id, if the list holds a well-formed one.
    pub fn file_id(&self) -> Option<FileId> {
        blake3::Hash::from_hex(&self.id).ok().map(FileId::from)
    }

    /// Compares the file on disk with what was hashed.
    pub fn check(&self) -> Check {
        match fs::metadata(&self.path) {
            Ok(meta) if meta.is_file() => match stamp(&self.path) {
                Ok(now) if now == (self.size, self.mtime_ns) => Check::Unchanged,
                _ => Check::Changed,
            },
            _ => Check::Gone,
        }
    }
}

/// Size and modification time of `path`.
fn stamp(path: &Path) -> io::Result<(u64, Option<u64>)> {
    let meta = fs::metadata(path)?;
    let mtime = meta.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map(|d| d.as_nanos() as u64);
    Ok((meta.len(), mtime))
}

/// The share list of one peer, in its state folder.
pub struct Catalog {
    dir: PathBuf,
    /// The entries as last written; the lock also keeps two writers apart.
    entries: Mutex<Vec<Entry>>,
}

impl Catalog {
    /// The list in `state_dir`, read once (empty if there is none yet or it cannot be read;
    /// the error says why, and the next write replaces the unreadable list).
    pub fn open(state_dir: &Path) -> (Catalog, Option<StoreError>) {
        let (entries, error) = match read_list(&state_dir.join(LIST_FILE)) {
            Ok(entries) => (entries, None),
            Err(err) => (Vec::new(), Some(err)),
        };
        (Catalog { dir: state_dir.to_path_buf(), entries: Mutex::new(entries) }, error)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every entry, as in the list.
    pub fn entries(&self) -> Vec<Entry> {
        self.lock().clone()
    }

    /// Adds `entry` (replacing any entry with its id or path) with its manifest's sidecar.
    pub fn record(&self, entry: Entry, manifest: &Manifest) -> Result<(), StoreError> {
        let mut entries = self.lock();
        if let Some(bytes) = sidecar_bytes(manifest) {
            write_atomically(&self.sidecar(&entry.id), &bytes)?;
        }
        let mut next: Vec<Entry> = entries.iter().filter(|e| e.id != entry.id && e.path != entry.path).cloned().collect();
        next.push(entry);
        self.save(&mut entries, next)
    }

    /// Adds many entries at once (a folder's files), writing the list once.
    pub fn record_all(&self, batch: &[(Entry, std::sync::Arc<Manifest>)]) -> Result<(), StoreError> {
        let mut entries = self.lock();
        // Not synced one by one (two syncs a file made a folder of 10,000 files take seconds):
        // a sidecar lost in a crash is checked against its id at the next start, and the file
        // hashed again.
        for (entry, manifest) in batch {
            if let Some(bytes) = sidecar_bytes(manifest) {
                write_unsynced(&self.sidecar(&entry.id), &bytes)?;
            }
        }
        super::sync_dir(Some(&self.dir.join(MANIFESTS)));
        let (ids, paths): (std::collections::HashSet<&str>, std::collections::HashSet<&Path>) =
            batch.iter().map(|(e, _)| (e.id.as_str(), e.path.as_path())).unzip();
        let mut next: Vec<Entry> =
            entries.iter().filter(|e| !ids.contains(e.id.as_str()) && !paths.contains(e.path.as_path())).cloned().collect();
        next.extend(batch.iter().map(|(e, _)| e.clone()));
        self.save(&mut entries, next)
    }

    /// Drops the entry with id `id` and its sidecar; `false` if there was none.
    pub fn forget(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self.forget_all(&[id])? == 1)
    }

    /// Drops the entries with these ids and their sidecars, writing the list once (a deleted
    /// folder of thousands of files is one write, not thousands); returns how many there were.
    pub fn forget_all(&self, ids: &[&str]) -> Result<usize, StoreError> {
        let gone: std::collections::HashSet<&str> = ids.iter().copied().collect();
        let mut entries = self.lock();
        let next: Vec<Entry> = entries.iter().filter(|e| !gone.contains(e.id.as_str())).cloned().collect();
        let dropped = entries.len() - next.len();
        if dropped == 0 {
            return Ok(0);
        }
        self.save(&mut entries, next)?;
        for id in gone {
            let _ = fs::remove_file(self.sidecar(id));
        }
        Ok(dropped)
    }

    /// The manifest of `entry`, rebuilt from its sidecar and checked against the id; `None`
    /// if the sidecar is missing or does not match (hash the file again then).
    pub fn manifest(&self, entry: &Entry) -> Option<Manifest> {
        let id = entry.file_id()?;
        if let Some(manifest) = Manifest::of_one_chunk(&id, entry.size) {
            return (manifest.chunk_size == entry.chunk_size).then_some(manifest);
        }
        let want = chunk_count(entry.size, entry.chunk_size).checked_mul(32)?;
        let meta = fs::metadata(self.sidecar(&entry.id)).ok()?;
        if meta.len() != want {
            return None;
        }
        let bytes = fs::read(self.sidecar(&entry.id)).ok()?;
        let chunks = bytes.chunks_exact(32).map(|c| c.try_into().unwrap_or([0; 32])).collect();
        let manifest = Manifest { size: entry.size, chunk_size: entry.chunk_size, chunks };
        manifest.validate(&id).ok().map(|()| manifest)
    }

    fn sidecar(&self, id: &str) -> PathBuf {
        self.dir.join(MANIFESTS).join(id)
    }

    /// Writes `next` as the list, then keeps it as the entries.
    fn save(&self, entries: &mut Vec<Entry>, next: Vec<Entry>) -> Result<(), StoreError> {
        let text = encode_list(&next).map_err(|e| io_err("cannot encode the share list")(io::Error::other(e)))?;
        write_atomically(&self.dir.join(LIST_FILE), &text)?;
        *entries = next;
        Ok(())
    }
}

/// The list as JSON, one entry a line: readable, and a third the size of pretty JSON (a
/// folder of 10,000 files makes a list of 10,000 entries, written at every change).
fn encode_list(entries: &[Entry]) -> serde_json::Result<Vec<u8>> {
    let mut text = b"[".to_vec();
    for (i, entry) in entries.iter().enumerate() {
        text.extend_from_slice(if i == 0 { b"\n" } else { b",\n" });
        serde_json::to_writer(&mut text, entry)?;
    }
    text.extend_from_slice(b"\n]\n");
    Ok(text)
}

fn read_list(path: &Path) -> Result<Vec<Entry>, StoreError> {
    let text = match fs::read(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(format!("cannot read {}", path.display()))(e)),
    };
    serde_json::from_slice(&text).map_err(|e| io_err(format!("cannot read {}", path.display()))(io::Error::other(e)))
}

/// What the sidecar of `manifest` holds: its chunk hashes; `None` for a file of one chunk (or
/// none), whose manifest its id alone rebuilds (most files of a folder of small files).
fn sidecar_bytes(manifest: &Manifest) -> Option<Vec<u8>> {
    (manifest.chunks.len() > 1).then(|| manifest.chunks.iter().flatten().copied().collect())
}

/// Writes `bytes` to `path` through `PATH.tmp` and a rename, syncing nothing.
fn write_unsynced(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    write_through_temp(path, bytes, false)
}

/// Writes `bytes` to `path` through `PATH.tmp` and a rename; the temporary file is removed if
/// anything fails.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    write_through_temp(path, bytes, true)?;
    super::sync_dir(path.parent());
    Ok(())
}

/// Writes `bytes` to `PATH.tmp` (synced first if `sync`), then renames it to `path`; the
/// temporary file is removed if anything fails.
fn write_through_temp(path: &Path, bytes: &[u8], sync: bool) -> Result<(), StoreError> {
    let what = format!("cannot write {}", path.display());
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(io_err(&what))?;
    }
    let mut temp = path.as_os_str().to_owned();
    temp.push(".tmp");
    let temp = PathBuf::from(temp);
    let written = fs::File::create(&temp).and_then(|mut f| {
        f.write_all(bytes)?;
        if sync { f.sync_all() } else { Ok(()) }
    });
    if let Err(e) = written.and_then(|()| fs::rename(&temp, path)) {
        let _ = fs::remove_file(&temp);
        return Err(io_err(what)(e));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared(dir: &Path, name: &str, bytes: &[u8]) -> (Entry, Manifest) {
        let path = dir.join(name);
        fs::write(&path, bytes).unwrap();
        let (id, manifest) = Manifest::from_file(&path).unwrap();
        let info = FileInfo { id, name: name.into(), size: bytes.len() as u64, folder: None };
        (Entry::new(&info, &path, &manifest, Origin::Shared).unwrap(), manifest)
    }

    #[test]
    fn the_list_survives_a_reopen_and_rebuilds_manifests_without_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let big: Vec<u8> = (0..700_000u32).map(|i| (i % 251) as u8).collect();
        let (a, manifest_a) = shared(dir.path(), "a.bin", &big);
        let (b, manifest_b) = shared(dir.path(), "b.txt", b"small");
        let (catalog, error) = Catalog::open(&state);
        assert!(error.is_none());
        catalog.record(a.clone(), &manifest_a).unwrap();
        catalog.record(b.clone(), &manifest_b).unwrap();
        assert!(catalog.forget(&b.id).unwrap());
        catalog.record(b.clone(), &manifest_b).unwrap();
        let (again, _) = Catalog::open(&state);
        assert_eq!(again.entries(), vec![a.clone(), b.clone()]);
        assert_eq!(again.manifest(&a), Some(manifest_a));
        assert_eq!(again.manifest(&b), Some(manifest_b));
        assert_eq!(a.check(), Check::Unchanged);
        assert!(!state.join("shares.json.tmp").exists());
    }

    #[test]
    fn a_changed_or_gone_file_or_a_damaged_sidecar_is_noticed() {
        let dir = tempfile::tempdir().unwrap();
        let (a, manifest) = shared(dir.path(), "a.txt", b"first");
        let (catalog, _) = Catalog::open(&dir.path().join("state"));
        catalog.record(a.clone(), &manifest).unwrap();
        fs::write(&a.path, b"second, longer").unwrap();
        assert_eq!(a.check(), Check::Changed);
        fs::remove_file(&a.path).unwrap();
        assert_eq!(a.check(), Check::Gone);
        let big: Vec<u8> = (0..700_000u32).map(|i| (i % 13) as u8).collect();
        let (b, manifest) = shared(dir.path(), "b.bin", &big);
        catalog.record(b.clone(), &manifest).unwrap();
        assert_eq!(catalog.manifest(&b), Some(manifest));
        fs::write(catalog.sidecar(&b.id), [7u8; 32 * 3]).unwrap();
        assert_eq!(catalog.manifest(&b), None);
    }

    #[test]
    fn a_file_of_one_chunk_needs_no_sidecar() {
        let dir = tempfile::tempdir().unwrap();
        let (a, manifest) = shared(dir.path(), "a.txt", b"one chunk");
        let (catalog, _) = Catalog::open(&dir.path().join("state"));
        catalog.record_all(&[(a.clone(), std::sync::Arc::new(manifest.clone()))]).unwrap();
        assert!(!catalog.sidecar(&a.id).exists());
        assert_eq!(Catalog::open(&dir.path().join("state")).0.manifest(&a), Some(manifest.clone()));
        let wrong = Entry { chunk_size: manifest.chunk_size * 2, ..a };
        assert_eq!(catalog.manifest(&wrong), None, "a chunk size that does not fit its size");
    }

    #[test]
    fn an_unreadable_list_is_reported_and_replaced() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(LIST_FILE), b"{not json").unwrap();
        let (catalog, error) = Catalog::open(dir.path());
        assert!(error.unwrap().to_string().contains("shares.json"));
        let (a, manifest) = shared(dir.path(), "a.txt", b"x");
        catalog.record(a.clone(), &manifest).unwrap();
        assert_eq!(Catalog::open(dir.path()).0.entries(), vec![a]);
    }
}
