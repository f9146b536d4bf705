//! Which of a peer's files are shared publicly: served to anyone who knows the id, not only to
//! the peers a tracker vouches for, and announced on the DHT.
//!
//! Public is a choice per share (`share --public`, `p2pq seed --public`), never the default. The set is kept across runs in
//! `public.json` in the state folder (a list of ids, written atomically), and watched: the DHT
//! announcer follows it ([`Public::watch`]).

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::watch;

use super::StoreError;
use super::catalog::write_atomically;
use crate::protocol::FileId;

/// The file in the state folder that keeps the set.
const PUBLIC_FILE: &str = "public.json";
/// Most ids the set holds: as many files as a tracker lets one peer share.
const MAX_PUBLIC: usize = 100_000;

/// The ids of the files a peer shares publicly; cheap to clone.
#[derive(Clone)]
pub struct Public {
    ids: Arc<watch::Sender<BTreeSet<FileId>>>,
    /// Where the set is kept; `None` keeps it in memory only.
    file: Option<PathBuf>,
}

impl Public {
    /// The set kept in `state_dir` (empty if there is none yet or it cannot be read).
    pub fn open(state_dir: &Path) -> Public {
        let file = state_dir.join(PUBLIC_FILE);
        let ids = read(&file).unwrap_or_else(|err| {
            tracing::warn!("{err}; no file is public until shared with --public again");
            BTreeSet::new()
        });
        Public { ids: Arc::new(watch::Sender::new(ids)), file: Some(file) }
    }

    /// Whether `id` is served to anyone who asks (it must also be shared).
    pub fn contains(&self, id: &FileId) -> bool {
        self.ids.borrow().contains(id)
    }

    /// Whether anything at all may be public.
    pub fn any(&self) -> bool {
        !self.ids.borrow().is_empty()
    }

    /// Makes `ids` public, and keeps the set.
    pub fn add(&self, ids: impl IntoIterator<Item = FileId>) -> Result<(), StoreError> {
        let mut ids = ids.into_iter().peekable();
        if ids.peek().is_none() {
            return Ok(());
        }
        let changed = self.ids.send_if_modified(|set| {
            let before = set.len();
            set.extend(ids.take(MAX_PUBLIC.saturating_sub(before)));
            set.len() != before
        });
        if changed { self.save() } else { Ok(()) }
    }

    /// Makes `ids` private again (unshared, or gone), and keeps the set.
    pub fn remove(&self, ids: &[FileId]) -> Result<(), StoreError> {
        let changed = self.ids.send_if_modified(|set| {
            let before = set.len();
            ids.iter().for_each(|id| {
                set.remove(id);
            });
            set.len() != before
        });
        if changed { self.save() } else { Ok(()) }
    }

    /// The set now and as it changes (for the DHT announcer).
    pub fn watch(&self) -> watch::Receiver<BTreeSet<FileId>> {
        self.ids.subscribe()
    }

    fn save(&self) -> Result<(), StoreError> {
        let Some(file) = &self.file else { return Ok(()) };
        let hex: Vec<String> = self.ids.borrow().iter().map(FileId::to_hex).collect();
        let what = format!("cannot write {}", file.display());
        let bytes = serde_json::to_vec(&hex).map_err(|e| StoreError::Io { what, error: std::io::Error::other(e) })?;
        write_atomically(file, &bytes)
    }
}

impl Default for Public {
    /// An empty set kept in memory only.
    fn default() -> Public {
        Public { ids: Arc::new(watch::Sender::new(BTreeSet::new())), file: None }
    }
}

/// The set in `file`; empty if there is no file.
fn read(file: &Path) -> Result<BTreeSet<FileId>, String> {
    let bytes = match fs::read(file) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeSet::new()),
        Err(err) => return Err(format!("cannot read {}: {err}", file.display())),
    };
    let hex: Vec<String> = serde_json::from_slice(&bytes).map_err(|e| format!("{} is not a list of ids: {e}", file.display()))?;
    let ids = hex.iter().take(MAX_PUBLIC).map(|h| blake3::Hash::from_hex(h).map(FileId::from));
    ids.collect::<Result<_, _>>().map_err(|e| format!("{} holds a bad id: {e}", file.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_set_is_kept_across_runs_and_shrinks_on_remove() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (FileId::from(blake3::hash(b"a")), FileId::from(blake3::hash(b"b")));
        let public = Public::open(dir.path());
        assert!(!public.any());
        public.add([a, b]).unwrap();
        public.remove(&[b]).unwrap();
        let again = Public::open(dir.path());
        assert!(again.contains(&a) && !again.contains(&b));
        assert_eq!(*again.watch().borrow(), BTreeSet::from([a]));
    }

    #[test]
    fn an_unreadable_set_starts_empty() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(PUBLIC_FILE), b"[\"zz\"]").unwrap();
        assert!(!Public::open(dir.path()).any());
    }
}
