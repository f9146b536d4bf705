//! The files this peer serves: each opened once, checked unchanged before every read, with
//! what it uploaded. Serving (`peer::serve`) reads from here; a finished download is added here.
//! A download under way is here too, as a partial share: it serves the chunks it has verified
//! and written, read from its partial file, and says when it gets another.

use std::collections::HashMap;
use std::fs::File;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use tokio::sync::mpsc;

use crate::content::manifest::Manifest;
use crate::protocol::{self, FileId, FileInfo, ManifestReply};
use crate::store::buffers::{self, Buffer};
use crate::store::catalog::Origin;
use crate::store::partial::Partial;
use crate::store::traffic::FileTraffic;

/// A file this peer serves.
pub struct SharedFile {
    /// What the tracker knows of it.
    pub info: FileInfo,
    /// Where it is.
    pub path: PathBuf,
    /// Its chunks' hashes.
    pub manifest: Arc<Manifest>,
    /// The open file, kept while fewer than [`MAX_OPEN`] are (a folder of 10,000 files must
    /// not hold 10,000 descriptors: the usual limit is 1,024); opened per read otherwise.
    file: Mutex<Option<Arc<File>>>,
    stamp: Stamp,
    /// What it sent to downloaders since it was shared.
    sent: FileTraffic,
    /// The encoded manifest reply, once asked for.
    manifest_frame: OnceLock<Bytes>,
    /// How it came to be shared, and whether from the share list of the last run.
    source: (Origin, bool),
    /// The download it is, while it is one: only the chunks verified there are served.
    partial: Option<Arc<Partial>>,
}

/// A shared file and how much of it went out.
#[derive(Clone, Debug)]
pub struct Uploads {
    /// The file.
    pub info: FileInfo,
    /// Chunks sent to downloaders.
    pub chunks: u64,
    /// Bytes sent to downloaders.
    pub bytes: u64,
    /// How it came to be shared.
    pub origin: Origin,
    /// Whether it is served again from the last run's share list.
    pub restored: bool,
    /// Downloaders sent a chunk of it within [`SERVING_WINDOW`](super::traffic::SERVING_WINDOW).
    pub serving: usize,
    /// For a download under way: chunks verified so far, of how many.
    pub partial: Option<(u32, u32)>,
}

/// Size and modification time: a change means the file is no longer what was shared.
type Stamp = (u64, Option<std::time::SystemTime>);

fn stamp(file: &File) -> std::io::Result<Stamp> {
    let meta = file.metadata()?;
    Ok((meta.len(), meta.modified().ok()))
}

/// Shared files kept open at once, across the process; the rest are opened for each read.
pub const MAX_OPEN: usize = 256;
/// Shared files open now (kept in a [`SharedFile`]).
static OPEN: AtomicUsize = AtomicUsize::new(0);

/// Takes a place among the files kept open, if there is one.
fn reserve() -> bool {
    if OPEN.fetch_add(1, Ordering::SeqCst) < MAX_OPEN {
        true
    } else {
        OPEN.fetch_sub(1, Ordering::SeqCst);
        false
    }
}

/// `file`, if one more may be kept open.
fn keep(file: Arc<File>) -> Option<Arc<File>> {
    reserve().then_some(file)
}

impl Drop for SharedFile {
    fn drop(&mut self) {
        if self.file.get_mut().unwrap_or_else(|p| p.into_inner()).is_some() {
            OPEN.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl SharedFile {
    /// Opens `path` to serve it under `info`, with a manifest already computed from it.
    pub fn open(info: FileInfo, path: PathBuf, manifest: Arc<Manifest>) -> std::io::Result<SharedFile> {
        // Past MAX_OPEN the file is only looked at (a folder of 10,000 files costs a stat
        // each, not an open and a close), and opened when a chunk of it is asked for.
        let (file, stamp) = match reserve() {
            true => match File::open(&path).and_then(|file| Ok((stamp(&file)?, file))) {
                Ok((stamp, file)) => (Some(Arc::new(file)), stamp),
                Err(err) => {
                    OPEN.fetch_sub(1, Ordering::SeqCst);
                    return Err(err);
                }
            },
            false => {
                let meta = std::fs::metadata(&path)?;
                if !meta.is_file() {
                    return Err(std::io::Error::other("not a regular file"));
                }
                (None, (meta.len(), meta.modified().ok()))
            }
        };
        let (sent, manifest_frame, source) = (Default::default(), OnceLock::new(), (Origin::Shared, false));
        let file = Mutex::new(file);
        Ok(SharedFile { info, path, manifest, file, stamp, sent, manifest_frame, source, partial: None })
    }

    /// Serves the chunks of a download under way as they are verified (its partial file,
    /// opened again to read).
    pub fn partial(info: FileInfo, partial: Arc<Partial>, manifest: Arc<Manifest>) -> std::io::Result<SharedFile> {
        let mut file = SharedFile::open(info, partial.path().to_path_buf(), manifest)?.with_origin(Origin::Downloaded, false);
        file.partial = Some(partial);
        Ok(file)
    }

    /// The download this file is, while it is one.
    pub fn download(&self) -> Option<&Arc<Partial>> {
        self.partial.as_ref()
    }

    /// Whether this peer has chunk `index` to serve (every chunk of a complete file).
    pub fn has(&self, index: u32) -> bool {
        index < self.manifest.count() && self.partial.as_ref().is_none_or(|p| p.has(index))
    }

    /// The same file, marked as coming from `origin` (`restored` if from the last run's list).
    pub fn with_origin(mut self, origin: Origin, restored: bool) -> SharedFile {
        self.source = (origin, restored);
        self
    }

    /// How it came to be shared.
    pub fn origin(&self) -> Origin {
        self.source.0
    }

    /// Reads `len` bytes at `offset` into a pooled buffer, refusing if the file changed since
    /// it was shared (blocking).
    pub fn read(&self, offset: u64, len: usize) -> Result<Buffer> {
        let file = self.handle().with_context(|| format!("cannot open {}", self.path.display()))?;
        self.check_unchanged(&file)?;
        let mut buffer = buffers::take(len);
        crate::store::read_exact_at(&file, buffer.as_mut_slice(), offset)
            .with_context(|| format!("cannot read {}", self.path.display()))?;
        Ok(buffer)
    }

    /// The open file: the one kept, or opened now (and kept, if there is room).
    fn handle(&self) -> std::io::Result<Arc<File>> {
        let mut kept = self.file.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(file) = kept.as_ref() {
            return Ok(file.clone());
        }
        let file = Arc::new(File::open(&self.path)?);
        *kept = keep(file.clone());
        Ok(file)
    }

    /// The file, if it is kept open.
    fn kept(&self) -> Option<Arc<File>> {
        self.file.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Like [`SharedFile::read`], but only if the bytes are in the page cache, so it never
    /// waits for the disk; `None` if they are not (read on a blocking thread instead).
    pub fn read_cached(&self, offset: u64, len: usize) -> Option<Result<Buffer>> {
        // Opening a file may wait for the disk: one not kept open is read on a blocking thread.
        let file = self.kept()?;
        let mut buffer = buffers::take(len);
        match crate::store::read_cached(&file, buffer.as_mut_slice(), offset)? {
            Ok(()) => Some(self.check_unchanged(&file).map(|()| buffer)),
            Err(err) => Some(Err(err).with_context(|| format!("cannot read {}", self.path.display()))),
        }
    }

    /// The manifest reply frame, encoded at the first request and kept.
    pub fn manifest_frame(&self) -> Result<Bytes, protocol::WireError> {
        if let Some(frame) = self.manifest_frame.get() {
            return Ok(frame.clone());
        }
        let frame = Bytes::from(protocol::encode(&ManifestReply::Manifest((*self.manifest).clone()))?);
        Ok(self.manifest_frame.get_or_init(|| frame).clone())
    }

    /// Fails if the file's size or modification time changed since it was shared (a partial
    /// file changes as chunks land: its chunks are checked one by one instead).
    fn check_unchanged(&self, file: &File) -> Result<()> {
        if self.partial.is_none() && stamp(file).ok() != Some(self.stamp) {
            bail!("{} changed on disk since it was shared; no longer serving it", self.info.name);
        }
        Ok(())
    }
}

/// The files this peer shares, by id.
#[derive(Clone)]
pub struct Shares {
    files: Arc<Mutex<HashMap<FileId, Arc<SharedFile>>>>,
    /// Files withdrawn because our copy went bad, for the tracker to hear of.
    withdrawn: mpsc::UnboundedSender<FileInfo>,
    /// Set in the view a downloader nobody vouched for gets: only these files are in it.
    only: Option<super::public::Public>,
    /// Chunk bytes sent and received by this peer in all.
    traffic: Arc<super::traffic::Traffic>,
}

impl Shares {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<FileId, Arc<SharedFile>>> {
        self.files.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// No shares yet. Returns the files withdrawn from now on, as they are (one at most per
    /// shared file), for the tracker to hear of.
    pub fn new() -> (Shares, mpsc::UnboundedReceiver<FileInfo>) {
        let (withdrawn, gone) = mpsc::unbounded_channel();
        (Shares { files: Arc::default(), withdrawn, only: None, traffic: Arc::default() }, gone)
    }

    /// The same shares, seen by a downloader no tracker vouched for: only `public` files.
    pub fn public_view(&self, public: super::public::Public) -> Shares {
        Shares { only: Some(public), ..self.clone() }
    }

    /// Why `id` cannot be served from this view: not shared, or not publicly.
    pub fn refusal(&self, id: &FileId) -> String {
        match self.lock().contains_key(id) {
            true => format!("file {} is shared with this tracker's peers only, not publicly", id.short()),
            false => format!("file {} is not shared here", id.short()),
        }
    }

    /// Stops serving `file` because our copy went bad, and queues it for the tracker to hear.
    pub fn withdraw(&self, file: &SharedFile) {
        self.remove(&file.info.id);
        let _ = self.withdrawn.send(file.info.clone());
    }

    /// Stops serving a file.
    pub fn remove(&self, id: &FileId) {
        self.lock().remove(id);
    }

    /// Adds (or replaces) a shared file. A download that completes becomes the same share: what
    /// it sent while partial still counts (its uploads showed 0 once the download was done).
    pub fn insert(&self, file: SharedFile) {
        let mut files = self.lock();
        if let Some(was) = files.get(&file.info.id).filter(|was| was.partial.is_some()) {
            file.sent.take_over(&was.sent);
        }
        files.insert(file.info.id, Arc::new(file));
    }

    /// The shared file with this id (complete, or a download under way).
    pub fn get(&self, id: &FileId) -> Option<Arc<SharedFile>> {
        if self.only.as_ref().is_some_and(|public| !public.contains(id)) {
            return None;
        }
        self.lock().get(id).cloned()
    }

    /// The complete shared file with this id.
    pub fn complete(&self, id: &FileId) -> Option<Arc<SharedFile>> {
        self.get(id).filter(|f| f.partial.is_none())
    }

    /// Adds a download under way, unless the file is shared already (complete, or by another
    /// partial). Returns whether it was added.
    pub fn insert_partial(&self, file: SharedFile) -> bool {
        let mut files = self.lock();
        if files.contains_key(&file.info.id) {
            return false;
        }
        files.insert(file.info.id, Arc::new(file));
        true
    }

    /// Stops serving the download of `id` if it is still a partial share (a complete one stays).
    pub fn remove_partial(&self, id: &FileId) {
        let mut files = self.lock();
        if files.get(id).is_some_and(|f| f.partial.is_some()) {
            files.remove(id);
        }
    }

    /// Every shared file, complete or a download under way, in no order.
    pub fn all(&self) -> Vec<Arc<SharedFile>> {
        self.lock().values().cloned().collect()
    }

    /// Every shared file with what it uploaded, by name.
    pub fn uploads(&self) -> Vec<Uploads> {
        let mut all: Vec<Uploads> = self
            .lock()
            .values()
            .map(|f| (f, f.sent.totals()))
            .map(|(f, (chunks, bytes))| Uploads {
                info: f.info.clone(),
                chunks,
                bytes,
                origin: f.source.0,
                restored: f.source.1,
                serving: f.sent.serving_now(Instant::now()),
                partial: f.partial.as_ref().map(|p| (p.verified(), f.manifest.count())),
            })
            .collect();
        all.sort_by(|a, b| a.info.name.cmp(&b.info.name));
        all
    }

    /// This peer's chunk traffic in all, sent and received.
    pub fn traffic(&self) -> &super::traffic::Traffic {
        &self.traffic
    }

    /// Counts a chunk of `bytes` sent from file `id` to the downloader at `to`.
    pub fn count_sent(&self, id: &FileId, bytes: usize, to: SocketAddr) {
        self.traffic.sent(bytes as u64);
        if let Some(file) = self.get(id) {
            file.sent.count(bytes as u64, to, Instant::now());
        }
    }

    /// The shared files called `query`, or whose id starts with it (hex).
    pub fn find(&self, query: &str) -> Vec<Arc<SharedFile>> {
        let mut found: Vec<Arc<SharedFile>> =
            self.lock().values().filter(|f| f.info.name == query || f.info.id.has_prefix(query)).cloned().collect();
        found.sort_by(|a, b| a.info.name.cmp(&b.info.name));
        found
    }

    /// Every shared file, by name.
    pub fn list(&self) -> Vec<FileInfo> {
        let mut all: Vec<FileInfo> = self.lock().values().map(|f| f.info.clone()).collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Descriptors this process has open now.
    fn open_fds() -> usize {
        std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0)
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn sharing_thousands_of_files_keeps_few_open_and_serves_them_all() {
        let dir = tempfile::tempdir().unwrap();
        let before = open_fds();
        let files: Vec<SharedFile> = (0..MAX_OPEN * 3)
            .map(|i| {
                let path = dir.path().join(format!("{i}.txt"));
                let data = format!("file {i}").into_bytes();
                std::fs::write(&path, &data).unwrap();
                let (id, manifest) = Manifest::from_bytes(&data);
                let info = FileInfo { id, name: format!("{i}.txt"), size: data.len() as u64, folder: None };
                SharedFile::open(info, path, Arc::new(manifest)).unwrap()
            })
            .collect();
        // Slack for what tests running beside this one open meanwhile; one descriptor a file
        // would be MAX_OPEN * 3.
        let slack = 128;
        assert!(open_fds() <= before + MAX_OPEN + slack, "{} descriptors open for {} shares", open_fds() - before, files.len());
        for (i, file) in files.iter().enumerate() {
            let want = format!("file {i}");
            assert_eq!(file.read(0, want.len()).unwrap().as_slice(), want.as_bytes());
        }
        drop(files);
        assert!(open_fds() <= before + slack);
    }
}
