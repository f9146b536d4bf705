//! Which files are being downloaded now: one download per file id, whatever query named it,
//! so two `get`s of one file never share a partial file.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use anyhow::{Result, bail};

use crate::protocol::{FileId, FileInfo};

/// The files being downloaded, by id; cheap to clone.
#[derive(Clone, Default)]
pub struct Claims {
    ids: Arc<Mutex<HashSet<FileId>>>,
}

impl Claims {
    /// Claims `info` for one download, or says it is already being downloaded.
    pub fn take(&self, info: &FileInfo) -> Result<Claim> {
        if !self.ids.lock().unwrap_or_else(|p| p.into_inner()).insert(info.id) {
            bail!("{} ({}) is already being downloaded", info.name, info.id.short());
        }
        Ok(Claim { claims: self.clone(), id: info.id })
    }
}

/// A file's place in [`Claims`], given back when the download ends (or is dropped).
pub struct Claim {
    claims: Claims,
    id: FileId,
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.claims.ids.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Digest;

    #[test]
    fn a_file_is_claimed_once_until_its_download_ends() {
        let claims = Claims::default();
        let info = FileInfo { id: Digest([3; 32]), name: "f".into(), size: 1, folder: None };
        let first = claims.take(&info).unwrap();
        assert!(claims.take(&info).is_err());
        drop(first);
        assert!(claims.take(&info).is_ok());
    }
}
