//! A folder's get is done: its files (and, for the whole folder, its listing) are served from
//! where they now are, the hidden folder goes, and where the chunks came from is summed up.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, Result};

use super::Fetched;
use crate::content::folder::Listing;
use crate::content::manifest::Manifest;
use crate::peer::{Got, Peer};
use crate::protocol::FileInfo;
use crate::store::catalog::Origin;

impl Peer {
    /// The folder is in place: serve its files and its listing, clear the hidden folder, and
    /// sum up where the chunks came from.
    pub(super) async fn settle(
        &self,
        info: &FileInfo,
        dest: &Path,
        staging: &Path,
        listing: &Listing,
        fetched: Vec<Fetched>,
    ) -> Result<Got> {
        let (files, got) = tally(info, dest, fetched);
        let kept = self.inner.config.state_dir.join("folders").join(info.id.to_hex());
        if let Some(dir) = kept.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot make {}", dir.display()))?;
        }
        std::fs::rename(staging.join("listing"), &kept).with_context(|| format!("cannot keep the listing at {}", kept.display()))?;
        let _ = std::fs::remove_dir_all(staging);
        let mut files = files;
        files.push((kept, info.clone(), Arc::new(Manifest::from_bytes(&listing.encode()).1)));
        let infos = self.serve_files(files, Origin::Downloaded).await?;
        self.announce_in_background(infos, &info.name);
        Ok(got)
    }

    /// A part of a folder is in place: serve its files (not the folder: this peer does not
    /// hold all of it) and clear the hidden folder.
    pub(super) async fn settle_part(&self, info: &FileInfo, dest: &Path, staging: &Path, fetched: Vec<Fetched>) -> Result<Got> {
        let (files, got) = tally(info, dest, fetched);
        let _ = std::fs::remove_dir_all(staging);
        let infos = self.serve_files(files, Origin::Downloaded).await?;
        self.announce_in_background(infos, &info.name);
        Ok(got)
    }
}

/// The files fetched, where they now are, and the summary of the get (its time set later).
fn tally(info: &FileInfo, dest: &Path, fetched: Vec<Fetched>) -> (Vec<(PathBuf, FileInfo, Arc<Manifest>)>, Got) {
    let (mut from, mut resumed, mut moved) = (std::collections::BTreeMap::<String, u32>::new(), 0, 0);
    let mut files = Vec::new();
    for file in fetched {
        for (peer, n) in &file.from {
            *from.entry(peer.clone()).or_default() += n;
        }
        resumed += file.resumed;
        moved += file.info.size - file.resumed_bytes.min(file.info.size);
        files.push((dest.join(&file.path), file.info, file.manifest));
    }
    let from = from.into_iter().collect();
    (files, Got { info: info.clone(), path: dest.to_path_buf(), elapsed: Default::default(), from, resumed, moved })
}
