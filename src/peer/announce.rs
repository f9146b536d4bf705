//! Telling the tracker what this peer shares: one file, or many in as few requests as fit
//! (`ShareMany`): the tracker takes a hundred requests a second from a peer, so 10,000 files
//! one request each would take 100 s.

use super::Peer;
use crate::protocol::{FileInfo, TrackerRequest};

impl Peer {
    /// Tells the tracker this peer shares `info`; returns why it did not hear, if it did not.
    pub(super) async fn announce_one(&self, info: FileInfo) -> Option<String> {
        if !self.has_tracker() {
            return None;
        }
        match self.inner.link.request(&TrackerRequest::Share(info)).await {
            Ok(_) => None,
            Err(err) => Some(format!("{err:#}")),
        }
    }

    /// Tells the tracker of many files in as few requests as fit (the tracker takes a hundred
    /// requests a second from a peer: one each, 10,000 files would take 100 s); returns why it
    /// did not hear of some, if it did not.
    pub(super) async fn announce_many(&self, files: Vec<FileInfo>) -> Option<String> {
        if !self.has_tracker() {
            return None;
        }
        let mut failed = None;
        for batch in batches(files) {
            let request = if batch.len() == 1 { TrackerRequest::Share(batch[0].clone()) } else { TrackerRequest::ShareMany(batch) };
            if let Err(err) = self.inner.link.request(&request).await {
                failed.get_or_insert(format!("{err:#}"));
            }
        }
        failed
    }
}

/// `files` cut into runs that each fit one request frame.
fn batches(files: Vec<FileInfo>) -> Vec<Vec<FileInfo>> {
    crate::protocol::fitting(files, crate::protocol::SHARE_MANY_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_fit_a_request_frame_and_keep_every_file_in_order() {
        let files: Vec<FileInfo> = (0..1000u32)
            .map(|i| FileInfo {
                id: crate::protocol::Digest([i as u8; 32]),
                name: format!("{}{i}", "n".repeat(i as usize % 200)),
                size: 1,
                folder: None,
            })
            .collect();
        let cut = batches(files.clone());
        assert!(cut.len() > 10, "{}", cut.len());
        for batch in &cut {
            let frame = crate::protocol::encode(&TrackerRequest::ShareMany(batch.clone())).unwrap();
            assert!(frame.len() <= crate::protocol::MAX_REQUEST_FRAME, "{} bytes", frame.len());
        }
        assert_eq!(cut.concat(), files);
    }
}
