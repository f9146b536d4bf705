//! Resume checkpoints while chunks land: in the background, one at a time, often enough that
//! an interrupted download loses little and the final sync has little left to do.

use std::time::Instant;

use tracing::Span;

use super::{CHECKPOINT_BYTES, CHECKPOINT_EVERY, Job};
use crate::net::task;

/// Runs resume checkpoints in the background, one at a time, every [`CHECKPOINT_BYTES`] of
/// new data or [`CHECKPOINT_EVERY`], so syncing never holds up the chunks.
#[derive(Default)]
pub(super) struct Checkpoints {
    running: Option<tokio::task::JoinHandle<()>>,
    last: Option<Instant>,
    unsynced: u64,
}

impl Checkpoints {
    /// Waits for a checkpoint under way, so none lands after the download is finished or
    /// races the last one.
    pub(super) async fn settle(&mut self) {
        if let Some(running) = self.running.take() {
            let _ = running.await;
        }
    }

    pub(super) fn maybe(&mut self, job: &Job, landed: u64) {
        self.unsynced += landed;
        let late = self.last.is_none_or(|t| t.elapsed() >= CHECKPOINT_EVERY);
        let due = self.unsynced >= CHECKPOINT_BYTES || (late && self.unsynced > 0);
        let idle = self.running.as_ref().is_none_or(|r| r.is_finished());
        if due && idle {
            let job = job.clone();
            self.last = Some(Instant::now());
            self.unsynced = 0;
            self.running = Some(task::spawn(Span::current(), async move {
                if let Err(err) = job.checkpoint().await {
                    tracing::warn!("cannot save resume state: {err}");
                }
            }));
        }
    }
}
