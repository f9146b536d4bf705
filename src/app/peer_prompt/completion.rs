//! Tab completion at the peer's prompt.

use std::time::Duration;

use super::{COMPLETION_FILES, names};
use crate::app::console::Complete;
use crate::logbook::FILTER_FLAGS;
use crate::peer::Peer;

/// How long Tab waits for the tracker's file list before completing from nothing.
const COMPLETION_WAIT: Duration = Duration::from_millis(700);

/// Tab completion: commands, files of the data folder after `share`, the tracker's files
/// after `get`.
pub(super) struct Completion {
    pub(super) peer: Peer,
    pub(super) runtime: tokio::runtime::Handle,
}

impl Complete for Completion {
    fn commands(&self) -> Vec<&'static str> {
        names()
    }

    fn arguments(&self, command: &str, index: usize) -> Vec<String> {
        match (command, index) {
            ("share", _) => self.peer.shareable(COMPLETION_FILES),
            ("unshare", _) => self.peer.uploads().into_iter().map(|u| u.info.name).collect(),
            ("get", _) => {
                // Runs on the editor's thread, never on the runtime, so blocking here is fine.
                let files = self.runtime.block_on(async { tokio::time::timeout(COMPLETION_WAIT, self.peer.tracker_files()).await });
                files.ok().and_then(Result::ok).unwrap_or_default()
            }
            ("discard", 0) => self.peer.unfinished().iter().map(|u| u.label()).collect(),
            ("logs", 0) => vec!["request".into()],
            ("logs", _) => ["--json"].iter().chain(&FILTER_FLAGS).map(|f| f.to_string()).collect(),
            ("status", 0) => vec!["--json".into()],
            ("help", 0) => names().into_iter().map(String::from).collect(),
            _ => Vec::new(),
        }
    }
}
