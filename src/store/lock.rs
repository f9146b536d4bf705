//! One running peer per state folder.
//!
//! Two processes started as the same peer (same id, same folder, same certificate) would each
//! register, each push the other off the tracker, and flap for ever. A peer therefore holds an
//! exclusive advisory lock on `STATE/lock` for its whole life; the file also records the
//! holder's process id, so the second start can say who is running. The lock belongs to the
//! open file, so a crashed peer never leaves a stale lock behind.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// Why the state folder could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another live process holds the lock.
    #[error("{what} is already running here (pid {pid}); its state folder is {}", dir.display())]
    Held {
        /// Who we are, for the message ("peer a").
        what: String,
        /// The process holding the lock, as it recorded itself ("?" if unreadable).
        pid: String,
        /// The state folder.
        dir: PathBuf,
    },
    /// The lock file could not be made or locked.
    #[error("cannot lock {}: {source}", path.display())]
    Io {
        /// The lock file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// Holds the state folder's lock until dropped.
#[derive(Debug)]
pub struct StateLock {
    _file: File,
}

impl StateLock {
    /// Locks `dir/lock` (making `dir` if needed) for `what` ("peer a"), or says who holds it.
    pub fn acquire(dir: &Path, what: &str) -> Result<StateLock, LockError> {
        let path = dir.join("lock");
        let io = |source| LockError::Io { path: path.clone(), source };
        std::fs::create_dir_all(dir).map_err(io)?;
        let mut file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                let pid = pid.trim();
                let pid = if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) { "?".to_string() } else { pid.to_string() };
                return Err(LockError::Held { what: what.to_string(), pid, dir: dir.to_path_buf() });
            }
            Err(TryLockError::Error(err)) => return Err(io(err)),
        }
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        write!(file, "{}", std::process::id()).map_err(io)?;
        Ok(StateLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_folder_names_the_first_holder() {
        let dir = tempfile::tempdir().unwrap();
        let first = StateLock::acquire(dir.path(), "peer a").unwrap();
        let err = StateLock::acquire(dir.path(), "peer a").unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with(&format!("peer a is already running here (pid {})", std::process::id())), "{text}");
        drop(first);
        StateLock::acquire(dir.path(), "peer a").expect("free again once the first is dropped");
    }
}
