//! Free space: whether a folder's file system can take a file, asked before anything is written.
//!
//! A download and the demo ask first, so a disk that is too small is one line naming the
//! folder and the numbers, not a write error halfway through. The answer is a snapshot
//! (another program may fill the disk meanwhile), so a download also reserves its file's size
//! where the file system allows ([`reserve`]); a write that fails later is still an error.
//! Where the system cannot say how much is free, the check lets everything through.

use std::fs::File;
use std::io;
use std::path::Path;

use crate::store::StoreError;

/// Bytes an ordinary user may still write in the file system holding `dir` (or its nearest
/// existing parent, for a folder not made yet); `None` where the system cannot tell.
pub fn free_bytes(dir: &Path) -> Option<u64> {
    let existing = dir.ancestors().map(|p| if p.as_os_str().is_empty() { Path::new(".") } else { p }).find(|p| p.exists())?;
    #[cfg(unix)]
    {
        let stats = rustix::fs::statvfs(existing).ok()?;
        Some(stats.f_bavail.saturating_mul(stats.f_frsize))
    }
    #[cfg(not(unix))]
    {
        let _ = existing;
        None
    }
}

/// Bytes missing to write `need` bytes where `free` are free; `None` if they fit.
pub fn shortfall(need: u64, free: u64) -> Option<u64> {
    need.checked_sub(free).filter(|&missing| missing > 0)
}

/// Fails with [`StoreError::NoSpace`] if `dir` has less than `need` bytes free for `what`.
pub fn check(dir: &Path, what: &str, need: u64) -> Result<(), StoreError> {
    match free_bytes(dir) {
        Some(free) if shortfall(need, free).is_some() => {
            Err(StoreError::NoSpace { dir: dir.display().to_string(), what: what.to_string(), need, free })
        }
        _ => Ok(()),
    }
}

/// Bytes of disk `path` already takes (0 if it is not there): what an unfinished download's
/// partial file holds already counts towards its size.
pub fn allocated(path: &Path) -> u64 {
    let Ok(meta) = std::fs::metadata(path) else { return 0 };
    #[cfg(unix)]
    {
        std::os::unix::fs::MetadataExt::blocks(&meta).saturating_mul(512)
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        0
    }
}

/// Reserves the disk space of the first `size` bytes of `file`, so a full disk shows now and
/// not at some later chunk. Where the file system cannot, nothing is reserved and `Ok` is
/// returned: the file was sized with `set_len` already.
#[cfg(target_os = "linux")]
pub fn reserve(file: &File, size: u64) -> io::Result<()> {
    use rustix::fs::{FallocateFlags, fallocate};
    use rustix::io::Errno;
    match fallocate(file, FallocateFlags::empty(), 0, size) {
        Err(err) if err == Errno::NOSPC || err == Errno::DQUOT => Err(err.into()),
        // EOPNOTSUPP and friends (or an empty file): nothing to reserve; set_len stands.
        _ => Ok(()),
    }
}

/// Without `fallocate`, the file is only sized (`set_len`), not reserved.
#[cfg(not(target_os = "linux"))]
pub fn reserve(_file: &File, _size: u64) -> io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_fits_only_in_as_much_space_as_it_needs() {
        assert_eq!(shortfall(10, 4), Some(6));
        assert_eq!(shortfall(4, 4), None);
        assert_eq!(shortfall(4, 10), None);
        assert_eq!(shortfall(0, 0), None);
    }

    #[test]
    fn a_shortfall_is_one_line_with_the_folder_and_the_numbers() {
        let err = StoreError::NoSpace { dir: "/mnt/small".into(), what: "big.iso".into(), need: 6 << 20, free: 2 << 20 };
        assert_eq!(err.to_string(), "not enough free space in /mnt/small for big.iso: needs 6.0 MiB, 2.0 MiB free (4.0 MiB missing)");
    }

    #[cfg(unix)]
    #[test]
    fn free_space_is_known_for_folders_not_made_yet() {
        let dir = tempfile::tempdir().unwrap();
        let here = free_bytes(dir.path()).expect("free space of a temp folder");
        let later = free_bytes(&dir.path().join("not/yet")).expect("free space of a folder to be made");
        assert!(here > 0 && later > 0);
        assert!(check(dir.path(), "f", u64::MAX).is_err());
        assert!(check(dir.path(), "f", 1).is_ok());
    }
}
