//! An unfinished download on disk, and the resume state that survives a crash.
//!
//! Verified chunks are written at their offsets into `DOWNLOAD_DIR/.p2pq-partial/ID.part`,
//! made at the file's full size and, where the file system allows, with its space reserved
//! (so a full disk shows before the first chunk). Beside it, `ID.bits` (the [`resume`] state)
//! records the file's name and which chunks are in: it is rewritten (to a temporary file, then
//! renamed; a failed write leaves no temporary file) only after the data it describes has been
//! synced, so it never claims a chunk that is not on disk. Resume treats it as a claim all the
//! same: claimed chunks are hashed again before they count, and a missing or damaged bitfield
//! means re-checking every chunk of the partial file. Either way the cost of bad resume state
//! is a re-check, never a wrong file. When every chunk is in, the file is synced and
//! hard-linked to `DOWNLOAD_DIR/NAME`, which fails rather than replace anything, so the final
//! name is absent or complete and correct. A download that ends with nothing on disk leaves
//! nothing behind, and the hidden folder goes once it is empty.
//! On Linux, chunks are written with direct I/O (`O_DIRECT`) where the file system takes it:
//! the bytes go from our buffer to the disk with no copy into the page cache, which on the
//! machines we measured cost 0.25-1.4 s of CPU per GiB written (allocating fresh cache pages
//! for a new file), against 0.16 s direct, and leaves the final sync little to do. A write that
//! is not aligned (the last chunk) or that the file system refuses goes through the cache.
//! The manifest is kept beside them in `ID.manifest` (the peer protocol's encoding), so a peer
//! that restarts serves the chunks it verified before it is asked for the file again.
//! Everything here blocks: call it from a blocking thread.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, RwLock};

use tokio::sync::watch;

use crate::content::manifest::Manifest;
use crate::protocol::{self, FileId, MAX_MANIFEST_FRAME, check_name};
use crate::store::resume::{self, ResumeState};
use crate::store::{StoreError, direct_aligned, io_err, open_direct, read_at, space, sync_dir, write_all_at};

/// Folder inside the download folder that holds unfinished downloads.
pub const PARTIAL_DIR: &str = ".p2pq-partial";
/// Times a partial file is created again when its hidden folder vanished under it (removed by
/// another download of the same folder that just ended).
const CREATE_RETRIES: usize = 3;
pub use crate::store::resume::Bitfield;

/// An unfinished download: a file of the final size written chunk by chunk.
pub struct Partial {
    file: File,
    /// The same file opened for direct I/O, if the system allows it.
    direct: Option<File>,
    /// Cleared when the file system refuses a direct write; later writes go through the cache.
    direct_ok: AtomicBool,
    path: PathBuf,
    bits_path: PathBuf,
    target: PathBuf,
    /// The name the file gets, and its chunk size: recorded in the resume state.
    name: String,
    chunk_size: u32,
    have: Mutex<Bitfield>,
    /// Chunks verified and written so far, for those serving them to learn of new ones.
    news: watch::Sender<u32>,
    /// Set once finished; writers hold the read side, so no write lands after the final link.
    finished: RwLock<bool>,
    /// Held while a checkpoint writes the bitfield, so two never share its temporary file.
    checkpointing: Mutex<()>,
}

impl Partial {
    /// Fails with [`StoreError::NoSpace`] if `download_dir` has too little free space for the
    /// `size`-byte file `id` still needs; what an earlier attempt left on disk counts as there.
    pub fn check_space(download_dir: &Path, id: &FileId, name: &str, size: u64) -> Result<(), StoreError> {
        let already = space::allocated(&paths(download_dir, id).0).min(size);
        space::check(download_dir, name, size - already)
    }

    /// Opens the partial file for `id` (creating it, sized and reserved for `manifest`) that
    /// will become `name`. Returns it with the chunks the resume state claims are already in.
    /// If it fails, a partial file it created is removed again.
    pub fn open(download_dir: &Path, id: &FileId, name: &str, manifest: &Manifest) -> Result<(Partial, Vec<u32>), StoreError> {
        check_name(name).map_err(StoreError::BadName)?;
        let dir = download_dir.join(PARTIAL_DIR);
        fs::create_dir_all(&dir).map_err(io_err(format!("cannot create {}", dir.display())))?;
        let (path, bits_path) = paths(download_dir, id);
        let existing = fs::metadata(&path).map(|m| m.len() == manifest.size).unwrap_or(false);
        let claimed = if existing { claims(&bits_path, manifest) } else { Vec::new() };
        let mut opened = Partial::create(download_dir, path.clone(), bits_path.clone(), name, manifest, existing);
        // Another download in this folder that just ended removes the hidden folder when it
        // looks empty, which it is until this one's file is in it: make it again and retry.
        for _ in 0..CREATE_RETRIES {
            if !matches!(&opened, Err(StoreError::Io { error, .. }) if error.kind() == io::ErrorKind::NotFound) {
                break;
            }
            fs::create_dir_all(&dir).map_err(io_err(format!("cannot create {}", dir.display())))?;
            opened = Partial::create(download_dir, path.clone(), bits_path.clone(), name, manifest, existing);
        }
        if opened.is_err() && !existing {
            remove_all(download_dir, &path);
        }
        Ok((opened?, claimed))
    }

    /// Opens (or makes) the partial file at its full size and reserves its space.
    fn create(
        download_dir: &Path,
        path: PathBuf,
        bits_path: PathBuf,
        name: &str,
        manifest: &Manifest,
        existing: bool,
    ) -> Result<Partial, StoreError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(!existing)
            .open(&path)
            .map_err(io_err(format!("cannot create {}", path.display())))?;
        file.set_len(manifest.size).map_err(io_err(format!("cannot size {}", path.display())))?;
        if let Err(error) = space::reserve(&file, manifest.size) {
            let free = space::free_bytes(download_dir);
            let missing = free.map(|free| StoreError::NoSpace {
                dir: download_dir.display().to_string(),
                what: name.to_string(),
                need: manifest.size,
                free,
            });
            return Err(missing.unwrap_or_else(|| io_err(format!("cannot reserve space for {}", path.display()))(error)));
        }
        let have = Mutex::new(Bitfield::empty(manifest.size, manifest.count()));
        let (target, name, chunk_size) = (download_dir.join(name), name.to_string(), manifest.chunk_size);
        let direct = open_direct(&path);
        let direct_ok = AtomicBool::new(direct.is_some());
        let (finished, checkpointing) = (RwLock::new(false), Mutex::new(()));
        let news = watch::Sender::new(0);
        keep_manifest(&path.with_extension("manifest"), manifest);
        Ok(Partial { file, direct, direct_ok, path, bits_path, target, name, chunk_size, have, news, finished, checkpointing })
    }

    /// Reopens the unfinished download of `id` that an earlier run left, from its kept
    /// manifest and resume state: the partial file, its manifest, and the chunks its resume
    /// state claims (re-check them before serving). `None` if there is nothing usable.
    pub fn reopen(download_dir: &Path, id: &FileId) -> Option<(Partial, Manifest, Vec<u32>)> {
        let (path, bits_path) = paths(download_dir, id);
        let bytes = fs::read(path.with_extension("manifest")).ok()?;
        let manifest: Manifest = protocol::decode_body(&bytes, MAX_MANIFEST_FRAME).ok()?;
        manifest.validate(id).ok()?;
        let state = resume::ResumeState::decode(&fs::read(&bits_path).ok()?)?;
        let name = state.name?;
        let (partial, claimed) = Partial::open(download_dir, id, &name, &manifest).ok()?;
        Some((partial, manifest, claimed))
    }

    /// The name the file will get.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Where the partial file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether chunk `index` is verified and written.
    pub fn has(&self, index: u32) -> bool {
        self.have.lock().unwrap_or_else(|p| p.into_inner()).has(index)
    }

    /// The chunks verified and written so far.
    pub fn bitfield(&self) -> Bitfield {
        self.have.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Chunks verified and written so far.
    pub fn verified(&self) -> u32 {
        *self.news.borrow()
    }

    /// Wakes when a chunk is verified and written (the value: how many are so far).
    pub fn watch(&self) -> watch::Receiver<u32> {
        self.news.subscribe()
    }

    /// Marks chunk `index` as in, and tells the watchers if it is new.
    fn mark(&self, index: u32) {
        let mut have = self.have.lock().unwrap_or_else(|p| p.into_inner());
        if !have.has(index) {
            have.set(index);
            drop(have);
            self.news.send_modify(|verified| *verified += 1);
        }
    }

    /// Writes a verified chunk at `offset` and notes it as in (recorded at the next checkpoint).
    pub fn write_chunk(&self, index: u32, offset: u64, data: &[u8]) -> Result<(), StoreError> {
        let finished = self.finished.read().unwrap_or_else(|p| p.into_inner());
        if *finished {
            return Ok(());
        }
        self.write_at(data, offset).map_err(io_err(format!("cannot write {}", self.path.display())))?;
        self.mark(index);
        Ok(())
    }

    /// Writes past the page cache when the write is aligned and the file system takes it.
    fn write_at(&self, data: &[u8], offset: u64) -> io::Result<()> {
        let usable = self.direct_ok.load(Ordering::Relaxed) && direct_aligned(data, offset);
        if let Some(direct) = self.direct.as_ref().filter(|_| usable) {
            match write_all_at(direct, data, offset) {
                // EINVAL: this file system (or this device's block size) does not do it.
                Err(err) if err.kind() == io::ErrorKind::InvalidInput => self.direct_ok.store(false, Ordering::Relaxed),
                done => return done,
            }
        }
        write_all_at(&self.file, data, offset)
    }

    /// Checks a chunk already on disk against the manifest; counts it as in if it verifies.
    pub fn recheck(&self, manifest: &Manifest, index: u32) -> bool {
        let data = read_at(&self.file, manifest.offset(index), manifest.len_of(index) as usize);
        let ok = data.is_ok_and(|d| manifest.verify(index, &d).is_ok());
        if ok {
            self.mark(index);
        }
        ok
    }

    /// Syncs the data, then records which chunks are in (those written before the sync).
    /// One at a time, and never after [`Partial::finish`].
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        let finished = self.finished.read().unwrap_or_else(|p| p.into_inner());
        let _one_at_a_time = self.checkpointing.lock().unwrap_or_else(|p| p.into_inner());
        if *finished {
            return Ok(());
        }
        let snapshot = self.have.lock().unwrap_or_else(|p| p.into_inner()).clone();
        self.file.sync_data().map_err(io_err(format!("cannot sync {}", self.path.display())))?;
        write_state(&self.bits_path, &ResumeState::encode(&self.name, self.chunk_size, &snapshot))
    }

    /// After a download that failed or was cancelled: if not one chunk of it is on disk, the
    /// partial file and its resume state go (there is nothing to resume), and the hidden
    /// folder too once empty. Otherwise everything stays for the next attempt.
    pub fn remove_if_empty(&self) {
        let finished = self.finished.write().unwrap_or_else(|p| p.into_inner());
        let empty = self.have.lock().unwrap_or_else(|p| p.into_inner()).ones().is_empty();
        if empty
            && !*finished
            && let Some(download_dir) = self.target.parent()
        {
            remove_all(download_dir, &self.path);
        }
    }

    /// Syncs the data and gives the file its final name without replacing anything there.
    pub fn finish(&self) -> Result<PathBuf, StoreError> {
        let mut finished = self.finished.write().unwrap_or_else(|p| p.into_inner());
        self.file.sync_all().map_err(io_err(format!("cannot sync {}", self.path.display())))?;
        match fs::hard_link(&self.path, &self.target) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(StoreError::Exists(self.target.display().to_string()));
            }
            // File systems without hard links: a rename is still atomic; check first.
            Err(_) if fs::symlink_metadata(&self.target).is_err() => {
                fs::rename(&self.path, &self.target).map_err(io_err(format!("cannot create {}", self.target.display())))?;
            }
            Err(_) => return Err(StoreError::Exists(self.target.display().to_string())),
        }
        *finished = true;
        if let Some(download_dir) = self.target.parent() {
            remove_all(download_dir, &self.path);
        }
        sync_dir(self.target.parent());
        Ok(self.target.clone())
    }
}

/// The partial file of `id` in `download_dir`, and its resume state.
pub(crate) fn paths(download_dir: &Path, id: &FileId) -> (PathBuf, PathBuf) {
    let dir = download_dir.join(PARTIAL_DIR);
    (dir.join(format!("{}.part", id.to_hex())), dir.join(format!("{}.bits", id.to_hex())))
}

/// Removes the partial file at `path`, its resume state (and a temporary copy of it), then
/// the hidden folder of `download_dir` if nothing else is in it.
pub(crate) fn remove_all(download_dir: &Path, path: &Path) {
    let bits = path.with_extension("bits");
    let manifest = [path.with_extension("manifest"), path.with_extension("manifest.tmp")];
    for file in [path.to_path_buf(), tmp_of(&bits), bits].into_iter().chain(manifest) {
        let _ = fs::remove_file(file);
    }
    // Fails, as it should, while the folder holds another download.
    let _ = fs::remove_dir(download_dir.join(PARTIAL_DIR));
}

/// Keeps `manifest` at `path` unless it is there already (through a temporary file and a
/// rename). Best effort: without it the partial is not served after a restart, nothing worse.
fn keep_manifest(path: &Path, manifest: &Manifest) {
    if path.exists() {
        return;
    }
    let Ok(frame) = protocol::encode(manifest) else { return };
    let tmp = path.with_extension("manifest.tmp");
    // The frame's length prefix is dropped: the file's length is the body's.
    if fs::write(&tmp, &frame[4..]).and_then(|()| fs::rename(&tmp, path)).is_err() {
        let _ = fs::remove_file(&tmp);
    }
}

/// Where a resume state is written before it is renamed into place.
fn tmp_of(bits_path: &Path) -> PathBuf {
    bits_path.with_extension("bits.tmp")
}

/// Writes a resume state through a temporary file and a rename, so a crash leaves the old one
/// or the new one; a failed write removes the temporary file.
fn write_state(bits_path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let tmp = tmp_of(bits_path);
    let written = fs::write(&tmp, bytes)
        .map_err(io_err(format!("cannot write {}", tmp.display())))
        .and_then(|()| fs::rename(&tmp, bits_path).map_err(io_err(format!("cannot write {}", bits_path.display()))));
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written
}

/// The chunks the resume state says are in: the bitfield's, or every chunk if it is damaged.
fn claims(bits_path: &Path, manifest: &Manifest) -> Vec<u32> {
    let parsed = fs::read(bits_path).ok().and_then(|b| resume::ResumeState::decode(&b)?.bits_for(manifest.size, manifest.count()));
    match parsed {
        Some(bits) => bits.ones(),
        None => (0..manifest.count()).collect(),
    }
}

#[cfg(test)]
mod tests;
