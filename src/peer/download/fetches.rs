//! The chunk fetches of one download still on the wire, so that an endgame race's loser can
//! be called off.
//!
//! In the endgame an idle holder races a slow one for a chunk; whichever copy is verified first
//! wins. The other copy used to be fetched to its end and thrown away: on a crowd's capped
//! uplinks, the scarce thing, every race cost a whole chunk (16 leechers on 20 Mbit/s uplinks
//! sent 19.7 copies of the file among themselves for the 14.8 they needed). Called off, the
//! loser's stream is dropped, which stops the holder's send (quinn's STOP_SENDING) one round
//! trip later, or before it starts if it was still queued there.

use std::collections::HashMap;

use tokio::task::AbortHandle;

/// Fetches whose bytes are on their way, by chunk: the holder and the task of each.
#[derive(Default)]
pub(super) struct Fetches {
    on_wire: HashMap<u32, Vec<(usize, AbortHandle)>>,
}

impl Fetches {
    /// `holder`'s fetch of chunk `index` started, in the task `task`.
    pub(super) fn started(&mut self, holder: usize, index: u32, task: AbortHandle) {
        self.on_wire.entry(index).or_default().push((holder, task));
    }

    /// `holder`'s fetch of `index` ended (bytes here, or failed); false if it had been called
    /// off, whose end the download has settled already.
    pub(super) fn ended(&mut self, holder: usize, index: u32) -> bool {
        let Some(fetches) = self.on_wire.get_mut(&index) else { return false };
        let before = fetches.len();
        fetches.retain(|(h, _)| *h != holder);
        let found = fetches.len() < before;
        if fetches.is_empty() {
            self.on_wire.remove(&index);
        }
        found
    }

    /// Calls off every fetch of `index` still on the wire (a copy of it was verified); returns
    /// the holders whose fetch was stopped.
    pub(super) fn call_off(&mut self, index: u32) -> Vec<usize> {
        let stopped = self.on_wire.remove(&index).unwrap_or_default();
        stopped
            .into_iter()
            .map(|(holder, task)| {
                task.abort();
                holder
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_called_off_fetch_is_stopped_and_its_end_is_not_counted_again() {
        let mut tasks = tokio::task::JoinSet::new();
        let mut fetches = Fetches::default();
        let slow = tasks.spawn(std::future::pending::<()>());
        let fast = tasks.spawn(async {});
        fetches.started(0, 7, slow);
        fetches.started(1, 7, fast);
        assert!(fetches.ended(1, 7), "the winner's end counts");
        assert!(!fetches.ended(1, 7), "once");
        assert_eq!(fetches.call_off(7), vec![0]);
        assert!(!fetches.ended(0, 7), "the loser's end was settled when it was called off");
        assert!(fetches.call_off(7).is_empty());
        let mut cancelled = 0;
        while let Some(end) = tasks.join_next().await {
            cancelled += usize::from(end.is_err_and(|e| e.is_cancelled()));
        }
        assert_eq!(cancelled, 1, "the loser's task was stopped");
    }
}
