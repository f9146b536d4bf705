//! Every task findable: tasks are spawned through these helpers, each inside a tracing span
//! that names it and carries what identifies its work (peer id, remote address, file id), so
//! `RUST_LOG=p2pq=debug` output can be followed per connection. A span given is entered every
//! time the task runs; `Span::current()` makes a child task part of its parent's story.

use std::future::Future;

use tokio::task::{AbortHandle, JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, Span};

/// Spawns `work` on the runtime inside `span`.
pub fn spawn<F>(span: Span, work: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    tokio::spawn(work.instrument(span))
}

/// Spawns `work` into `set` (which owns it: dropping the set aborts it) inside `span`.
pub fn spawn_in<T: Send + 'static>(set: &mut JoinSet<T>, span: Span, work: impl Future<Output = T> + Send + 'static) -> AbortHandle {
    set.spawn(work.instrument(span))
}

/// Spawns `work` inside `span` until `token` is cancelled; then it is dropped where it stands
/// and the task ends with `None`.
pub fn spawn_until<F>(token: &CancellationToken, span: Span, work: F) -> JoinHandle<Option<F::Output>>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let token = token.clone();
    spawn(span, async move {
        tokio::select! {
            done = work => Some(done),
            _ = token.cancelled() => None,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_cancelled_task_ends_with_none_and_a_finished_one_with_its_output() {
        let token = CancellationToken::new();
        let done = spawn_until(&token, tracing::debug_span!("quick"), async { 7 });
        assert_eq!(done.await.ok(), Some(Some(7)));
        let stuck = spawn_until(&token, tracing::debug_span!("stuck"), std::future::pending::<()>());
        token.cancel();
        assert_eq!(stuck.await.ok(), Some(None));
    }
}
