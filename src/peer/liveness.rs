//! How one holder link is doing: chunk requests in flight, requests waiting for an answer,
//! and when anything last arrived. The link's silence, not any one request's wait, is what
//! judges a holder (see `holder`); everything that reads from the link reports here.

use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use quinn::RecvStream;
use tokio::io::{AsyncRead, ReadBuf};

use super::window::Window;

/// What one link has in flight and when it was last heard from.
pub(super) struct LinkState {
    pub(super) window: Window,
    /// Chunk requests outstanding, across the downloads sharing the link.
    pub(super) in_flight: usize,
    /// Requests of any kind waiting for an answer; silence counts only while there are some.
    pub(super) waiting: usize,
    /// When bytes last arrived, or the link last went from idle to waiting.
    pub(super) heard: Instant,
}

impl LinkState {
    /// `bytes` of chunk data (or a header: 0) arrived just now.
    pub(super) fn heard(&mut self, bytes: u64) {
        self.heard = Instant::now();
        self.window.delivered(bytes);
    }

    /// How long the link has been silent while we waited for it.
    pub(super) fn silent_for(&self) -> Duration {
        if self.waiting == 0 { Duration::ZERO } else { self.heard.elapsed() }
    }
}

/// A link's state, shared by its fetches and its router.
pub(super) type State = Arc<Mutex<LinkState>>;

/// The state, locked (for a few plain calls, never across an await).
pub(super) fn state(state: &State) -> MutexGuard<'_, LinkState> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

/// One request waiting on a link, counted while it lives.
pub(super) struct Waiting<'a>(&'a State);

impl<'a> Waiting<'a> {
    /// Counts a request as waiting; the first one restarts the silence clock.
    pub(super) fn new(link: &'a State) -> Waiting<'a> {
        let mut s = state(link);
        if s.waiting == 0 {
            s.heard = Instant::now();
        }
        s.waiting += 1;
        Waiting(link)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        state(self.0).waiting -= 1;
    }
}

/// A stream that counts what it reads as heard from the link (for the manifest).
pub(super) struct Heard<'a> {
    /// The stream read.
    pub(super) stream: RecvStream,
    /// The link it belongs to.
    pub(super) state: &'a State,
}

impl AsyncRead for Heard<'_> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            state(self.state).heard(0);
        }
        polled
    }
}
