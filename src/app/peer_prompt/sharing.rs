//! The prompt's `share` and `unshare`: shares hash in the background on a terminal (a bar
//! each, cancelled by Ctrl-C on an empty line with the downloads), and in order from a pipe.

use anyhow::Result;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::PromptState;
use crate::app::console;
use crate::app::{progress, report};
use crate::peer::Peer;

impl PromptState {
    /// Shares the files, hashing them together (as many at once as there are cores). In the
    /// background on a terminal; otherwise returns when every one is shared, reporting them in
    /// the order given, so scripts stay in order. A failure is reported and the others still go.
    pub(super) async fn share(&mut self, files: Vec<String>, public: bool) {
        let mut hashing = JoinSet::new();
        for (index, file) in files.into_iter().enumerate() {
            let key = format!("share {file}");
            if self.background && !self.running.insert(key.clone()) {
                console::error_line(&format!("already sharing {}", crate::logbook::printable(&file)));
                continue;
            }
            let (peer, show, cancel) = (self.peer.clone(), self.show, self.cancel.clone());
            if self.background {
                self.gets.spawn(async move {
                    let shared = progress::share(&peer, &file, show, &cancel).await;
                    report_share(&peer, &file, shared, public, &cancel).await;
                    key
                });
            } else {
                hashing.spawn(async move { (index, file.clone(), progress::share(&peer, &file, show, &cancel).await) });
            }
        }
        let mut done = std::collections::BTreeMap::new();
        let mut next = 0;
        while let Some(Ok((index, file, shared))) = hashing.join_next().await {
            done.insert(index, (file, shared));
            while let Some((file, shared)) = done.remove(&next) {
                report_share(&self.peer, &file, shared, public, &self.cancel).await;
                next += 1;
            }
        }
    }

    /// Stops sharing each file; a failure is reported and the others still go.
    pub(super) async fn unshare(&self, files: &[String]) {
        for file in files {
            match self.peer.unshare(file).await {
                Ok(unshared) => console::say(&report::unshared_line(&unshared)),
                Err(err) => console::error(&err),
            }
        }
    }
}

/// Says how one share ended: the summary, whether it is public, and the ticket to paste
/// elsewhere (or, with no tracker, the id).
async fn report_share(peer: &Peer, file: &str, shared: Result<crate::peer::Shared>, public: bool, cancel: &CancellationToken) {
    match shared {
        Ok(shared) => {
            console::say(&report::shared_line(&shared));
            if public {
                match peer.make_public(&shared) {
                    Ok(()) => console::say(&report::public_line(&shared.info, peer.runs_dht())),
                    Err(err) => console::error(&err.context("shared, but not publicly")),
                }
            }
            match peer.has_tracker() {
                true => console::say(&report::ticket_lines(&peer.ticket(&shared.info).await)),
                false => console::say(&format!("on another machine: get {}", shared.info.id.to_hex())),
            }
        }
        Err(_) if cancel.is_cancelled() => console::say(&format!("cancelled share {}", crate::logbook::printable(file))),
        Err(err) => console::error(&err),
    }
}
