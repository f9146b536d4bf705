//! Telling the tracker what this peer shares: one file, or many in as few requests as fit
//! (`ShareMany`): the tracker takes a hundred requests a second from a peer, so 10,000 files
//! one request each would take 100 s. Further trackers are told in the background; what
//! is returned is what the first one said.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::{Peer, sources};
use crate::discovery::tracker::TrackerLink;
use crate::protocol::{FileInfo, TrackerRequest};

impl Peer {
    /// Tells the tracker this peer shares `info`; returns why it did not hear, if it did not.
    pub(super) async fn announce_one(&self, info: FileInfo) -> Option<String> {
        if !self.has_tracker() {
            return None;
        }
        self.tell_others(TrackerRequest::Share(info.clone()));
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
            self.tell_others(request.clone());
            if let Err(err) = self.inner.link.request(&request).await {
                failed.get_or_insert(format!("{err:#}"));
            }
        }
        failed
    }
}

/// Tells the tracker about each file this peer stopped serving (its copy changed on disk), so
/// downloaders are not sent to a holder that will refuse them. Ends with the peer.
pub(super) async fn withdraw(
    link: Arc<TrackerLink>,
    others: Vec<Arc<TrackerLink>>,
    mut withdrawn: tokio::sync::mpsc::UnboundedReceiver<FileInfo>,
    shutdown: CancellationToken,
) {
    loop {
        let file = tokio::select! {
            _ = shutdown.cancelled() => return,
            file = withdrawn.recv() => match file {
                Some(file) => file,
                None => return,
            },
        };
        if let Err(err) = link.request(&TrackerRequest::Unshare(file.id)).await {
            tracing::warn!("cannot withdraw {} at the tracker: {err:#}", file.name);
        }
        sources::tell(&others, TrackerRequest::Unshare(file.id));
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
