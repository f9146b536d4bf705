//! Files on disk: which paths may be shared, what is at a download's destination, and
//! positioned reads and writes.
//!
//! `share` resolves a name inside the data folder and refuses anything that lands outside it
//! (`..`, absolute paths, symlinks pointing out). Unfinished downloads live in [`partial`] (their
//! resume state's format in [`resume`], listing and discarding them in [`unfinished`]), the
//! files being served in [`shares`], pooled chunk buffers in [`buffers`], free-space checks in
//! [`space`]. The functions here block: call them from a blocking thread.

pub mod buffers;
pub mod catalog;
pub mod claims;
pub mod lock;
pub mod partial;
pub mod public;
pub mod resume;
pub mod shares;
pub mod space;
pub mod traffic;
pub mod tree;
pub mod unfinished;

use std::fs::{self, File};
use std::io;
use std::path::{Component, Path, PathBuf};

use crate::protocol::{FileId, check_name};

/// Why a file cannot be shared or stored.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The user asked for something outside the data folder.
    #[error("{0:?} is outside the data folder")]
    Outside(String),
    /// Nothing of that name in the data folder.
    #[error("no file {0:?} in the data folder {1}")]
    Missing(String, String),
    /// No name given.
    #[error("a file name is missing: share NAME, a path inside the data folder")]
    NoName,
    /// A folder, where a file was wanted.
    #[error("{0:?} is a folder")]
    Folder(String),
    /// A special file (device, socket, pipe).
    #[error("{0:?} is not a regular file")]
    NotAFile(String),
    /// The name cannot be a file name.
    #[error("{0}")]
    BadName(String),
    /// A different file already has the final name.
    #[error("{0} already exists with other content; not overwritten")]
    Exists(String),
    /// Disk error, with what we were doing. The OS error is part of the message and not also
    /// given as the error's `source()`: an error chain printed whole (`{:#}`) would otherwise
    /// say it twice.
    #[error("{what}: {error}")]
    Io {
        /// What failed.
        what: String,
        /// The OS error.
        error: io::Error,
    },
    /// Too little free space for a file, found before writing any of it.
    #[error(
        "not enough free space in {dir} for {what}: needs {}, {} free ({} missing)",
        crate::units::bytes(*.need),
        crate::units::bytes(*.free),
        crate::units::bytes(.need.saturating_sub(*.free))
    )]
    NoSpace {
        /// The folder.
        dir: String,
        /// What was to be written there.
        what: String,
        /// Bytes needed.
        need: u64,
        /// Bytes free.
        free: u64,
    },
}

pub(crate) fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> StoreError {
    let what = what.into();
    move |error| StoreError::Io { what, error }
}

/// Resolves `name` inside `data_dir`, refusing anything that ends up outside it.
///
/// `name` is a path relative to the data folder (or an absolute one inside it); `..` may appear
/// as long as the file it leads to is inside. What counts is where the file really is, symlinks
/// followed: a link to a file inside is shared under the name typed, a link pointing out is
/// refused. Returns the file's real path and the name it is shared under (the typed path's last
/// component).
pub fn resolve_share(data_dir: &Path, name: &str) -> Result<(PathBuf, String), StoreError> {
    let (real, label) = resolve(data_dir, name)?;
    if real.is_dir() {
        return Err(StoreError::Folder(name.to_string()));
    }
    if !real.is_file() {
        return Err(StoreError::NotAFile(name.to_string()));
    }
    check_name(&label).map_err(StoreError::BadName)?;
    Ok((real, label))
}

/// Like [`resolve_share`], for a folder: its real path and the name it is shared under.
pub fn resolve_folder(data_dir: &Path, name: &str) -> Result<(PathBuf, String), StoreError> {
    let (real, label) = resolve(data_dir, name)?;
    if !real.is_dir() {
        return Err(StoreError::NotAFile(name.to_string()));
    }
    check_name(&label).map_err(StoreError::BadName)?;
    Ok((real, label))
}

/// Where `name` really is inside `data_dir`, and the last name it ends on.
fn resolve(data_dir: &Path, name: &str) -> Result<(PathBuf, String), StoreError> {
    let (climbs_out, label) = lexical(Path::new(name));
    if name.trim().is_empty() {
        return Err(StoreError::NoName);
    }
    if climbs_out {
        return Err(StoreError::Outside(name.to_string()));
    }
    let root = data_dir.canonicalize().map_err(io_err(format!("cannot open the data folder {}", data_dir.display())))?;
    let real = match root.join(name).canonicalize() {
        Ok(real) => real,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(StoreError::Missing(name.to_string(), data_dir.display().to_string()));
        }
        Err(e) => return Err(io_err(format!("cannot open {name}"))(e)),
    };
    if !real.starts_with(&root) {
        return Err(StoreError::Outside(name.to_string()));
    }
    Ok((real, label))
}

/// Walks `path` by its words alone: whether a relative path climbs above its start with `..`,
/// and the last name it ends on (`adir/../inner.txt` ends on `inner.txt`).
fn lexical(path: &Path) -> (bool, String) {
    let mut stack: Vec<&std::ffi::OsStr> = Vec::new();
    let mut climbs_out = false;
    for component in path.components() {
        match component {
            Component::Normal(part) => stack.push(part),
            Component::ParentDir if stack.pop().is_none() => climbs_out = !path.is_absolute(),
            Component::ParentDir | Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => stack.clear(),
        }
    }
    (climbs_out, stack.last().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default())
}

/// What is at the destination of a download.
#[derive(Debug, PartialEq, Eq)]
pub enum Destination {
    /// Nothing: go ahead.
    Free,
    /// The very file, already complete.
    Same(PathBuf),
    /// Another file of that name: never overwritten.
    Taken(PathBuf),
}

/// Looks at `DOWNLOAD_DIR/NAME` before downloading `id` there.
pub fn destination(download_dir: &Path, name: &str, id: &FileId) -> Result<Destination, StoreError> {
    check_name(name).map_err(StoreError::BadName)?;
    let path = download_dir.join(name);
    match fs::symlink_metadata(&path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Destination::Free),
        Err(e) => Err(io_err(format!("cannot look at {}", path.display()))(e)),
        Ok(meta) if !meta.is_file() => Ok(Destination::Taken(path)),
        Ok(_) => {
            let same = crate::content::manifest::Manifest::from_file(&path).map(|(have, _)| have == *id).unwrap_or(false);
            Ok(if same { Destination::Same(path) } else { Destination::Taken(path) })
        }
    }
}

/// Reads `len` bytes at `offset` of a shared file.
pub fn read_at(file: &File, offset: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    read_exact_at(file, &mut buf, offset)?;
    Ok(buf)
}

/// Fills `buf` from `offset` of `file` only if every byte is already in the page cache
/// (`RWF_NOWAIT`): a memory copy that never waits for the disk, so it may run on an async
/// runtime's thread. `None` when the read would wait (or the system cannot tell): read on a
/// blocking thread instead.
#[cfg(target_os = "linux")]
pub(crate) fn read_cached(file: &File, mut buf: &mut [u8], mut offset: u64) -> Option<io::Result<()>> {
    use rustix::io::{ReadWriteFlags, preadv2};
    while !buf.is_empty() {
        match preadv2(file, &mut [io::IoSliceMut::new(buf)], offset, ReadWriteFlags::NOWAIT) {
            Ok(0) => return Some(Err(io::ErrorKind::UnexpectedEof.into())),
            Ok(n) => {
                buf = &mut std::mem::take(&mut buf)[n..];
                offset += n as u64;
            }
            Err(_) => return None,
        }
    }
    Some(Ok(()))
}

/// Without `RWF_NOWAIT`, every read goes to a blocking thread.
#[cfg(not(target_os = "linux"))]
pub(crate) fn read_cached(_file: &File, _buf: &mut [u8], _offset: u64) -> Option<io::Result<()>> {
    None
}

/// What offsets, lengths and buffer addresses must be multiples of for direct I/O: the page
/// size, a multiple of every common logical block size.
pub const DIRECT_ALIGN: usize = 4096;

/// `path` opened for writing past the page cache (`O_DIRECT`), where the system and the file
/// system allow it. Such writes must be [`DIRECT_ALIGN`]ed.
#[cfg(target_os = "linux")]
pub(crate) fn open_direct(path: &Path) -> Option<File> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new().write(true).custom_flags(libc::O_DIRECT).open(path).ok()
}

/// Direct I/O is used on Linux only; elsewhere every write goes through the page cache.
#[cfg(not(target_os = "linux"))]
pub(crate) fn open_direct(_path: &Path) -> Option<File> {
    None
}

/// Whether a write of `data` at `offset` meets direct I/O's alignment.
pub(crate) fn direct_aligned(data: &[u8], offset: u64) -> bool {
    let align = DIRECT_ALIGN as u64;
    offset.is_multiple_of(align) && (data.len() as u64).is_multiple_of(align) && (data.as_ptr() as u64).is_multiple_of(align)
}

pub(crate) fn sync_dir(dir: Option<&Path>) {
    if let Some(dir) = dir
        && let Ok(handle) = File::open(dir)
    {
        let _ = handle.sync_all();
    }
}

#[cfg(unix)]
pub(crate) fn write_all_at(file: &File, data: &[u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, data, offset)
}

/// Fills `buf` from `offset` of `file`.
#[cfg(unix)]
pub(crate) fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(windows)]
pub(crate) fn write_all_at(file: &File, mut data: &[u8], mut offset: u64) -> io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !data.is_empty() {
        let n = file.seek_write(data, offset)?;
        data = &data[n..];
        offset += n as u64;
    }
    Ok(())
}

/// Fills `buf` from `offset` of `file`.
#[cfg(windows)]
pub(crate) fn read_exact_at(file: &File, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        let n = file.seek_read(buf, offset)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf = &mut buf[n..];
        offset += n as u64;
    }
    Ok(())
}

/// Paths of the files `share` could take from `root`, relative to it, at most `limit`, three
/// folders deep. Left out: `skip` (this peer's download folder), other peers' download folders
/// (see [`is_download_folder`]), hidden entries (`.p2pq-partial` among them) and a download's
/// leftovers (`*.part`, `*.bits`, `*.bits.tmp`).
pub fn shareable(root: &Path, skip: &Path, limit: usize) -> Vec<String> {
    let mut found = Vec::new();
    let mut dirs = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, prefix)) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let (path, kind) = (entry.path(), entry.file_type());
            if is_internal(&name) || path == skip || found.len() >= limit {
                continue;
            }
            match kind {
                Ok(kind) if kind.is_dir() && prefix.is_empty() && is_download_folder(&path, &name) => {}
                Ok(kind) if kind.is_dir() && prefix.matches('/').count() < 3 => dirs.push((path, format!("{prefix}{name}/"))),
                Ok(kind) if kind.is_file() => found.push(format!("{prefix}{name}")),
                _ => {}
            }
        }
    }
    found
}

/// Hidden entries and the files a download leaves beside its data (see [`partial`]).
fn is_internal(name: &str) -> bool {
    name.starts_with('.') || [".part", ".bits", ".bits.tmp"].iter().any(|end| name.ends_with(end))
}

/// Whether `dir` (called `name`, directly in the data folder) is another peer's download
/// folder: `p2pq peer ID` downloads into `DATA/peer-ID` by default, and every download leaves
/// a [`partial::PARTIAL_DIR`] in it. A `peer-…` folder of the user's own (no such marker) stays.
fn is_download_folder(dir: &Path, name: &str) -> bool {
    name.strip_prefix("peer-").is_some_and(|id| crate::protocol::check_peer_id(id).is_ok()) && dir.join(partial::PARTIAL_DIR).is_dir()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shareable_skips_download_folders_and_p2pq_files() {
        let data = tempfile::tempdir().unwrap();
        let root = data.path();
        for dir in ["peer-1/.p2pq-partial", "peer-2/.p2pq-partial", "peer-notes", "music", "music/peer-3/.p2pq-partial"] {
            fs::create_dir_all(root.join(dir)).unwrap();
        }
        for file in [
            "a.txt",
            ".hidden",
            "x.part",
            "x.bits",
            "x.bits.tmp",
            "peer-1/got.bin",
            "peer-2/got.bin",
            "peer-2/.p2pq-partial/ab.part",
            "peer-notes/mine.txt",
            "music/song.ogg",
            "music/peer-3/kept.txt",
        ] {
            fs::write(root.join(file), b"x").unwrap();
        }
        let mut found = shareable(root, &root.join("peer-1"), 100);
        found.sort();
        assert_eq!(found, ["a.txt", "music/peer-3/kept.txt", "music/song.ogg", "peer-notes/mine.txt"]);
    }

    #[test]
    fn shares_stay_inside_the_data_folder() {
        let top = tempfile::tempdir().unwrap();
        let data = top.path().join("data");
        fs::create_dir(&data).unwrap();
        fs::write(data.join("ok.txt"), b"hi").unwrap();
        fs::write(top.path().join("secret"), b"no").unwrap();
        assert_eq!(resolve_share(&data, "ok.txt").unwrap().1, "ok.txt");
        assert!(matches!(resolve_share(&data, "../secret"), Err(StoreError::Outside(_))));
        let abs = top.path().join("secret");
        assert!(matches!(resolve_share(&data, abs.to_str().unwrap()), Err(StoreError::Outside(_))));
        assert!(matches!(resolve_share(&data, "nope"), Err(StoreError::Missing(..))));
        assert!(matches!(resolve_share(&data, "../nope"), Err(StoreError::Outside(_))));
        assert!(matches!(resolve_share(&data, "a/../../secret"), Err(StoreError::Outside(_))));
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(top.path().join("secret"), data.join("link")).unwrap();
            assert!(matches!(resolve_share(&data, "link"), Err(StoreError::Outside(_))));
        }
    }

    #[test]
    fn paths_that_stay_inside_are_taken_under_the_name_typed() {
        let top = tempfile::tempdir().unwrap();
        let data = top.path().join("data");
        fs::create_dir_all(data.join("adir")).unwrap();
        fs::write(data.join("inner.txt"), b"hi").unwrap();
        let real = data.canonicalize().unwrap().join("inner.txt");
        assert_eq!(resolve_share(&data, "adir/../inner.txt").unwrap(), (real.clone(), "inner.txt".into()));
        assert_eq!(resolve_share(&data, real.to_str().unwrap()).unwrap().1, "inner.txt");
        assert!(matches!(resolve_share(&data, ""), Err(StoreError::NoName)));
        assert!(matches!(resolve_share(&data, "adir"), Err(StoreError::Folder(_))));
        assert!(matches!(resolve_share(&data, "."), Err(StoreError::Folder(_))));
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(data.join("inner.txt"), data.join("alias.txt")).unwrap();
            assert_eq!(resolve_share(&data, "alias.txt").unwrap(), (real, "alias.txt".into()));
        }
    }
}
