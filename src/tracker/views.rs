//! Read-only views of the tracker for live pages (the dashboard): each costs what it shows,
//! never what the tracker holds or has logged.

use crate::logbook::{Event, EventKind, Filter};

use super::Tracker;

/// Bytes read from the end of the event log for [`Tracker::recent_events`]. An event is a line
/// of 100–200 bytes, so this holds several hundred: on a small swarm enough for the last 50
/// that are not heartbeats, and reading and parsing it takes about a millisecond, which a page
/// updated once a second can pay (the whole log may be 32 MiB).
pub const RECENT_WINDOW: u64 = 128 << 10;

impl Tracker {
    /// The last `most` logged events that are not heartbeats (those are counted, not listed:
    /// a busy swarm logs thousands a second), oldest first, from the end of the log only
    /// ([`RECENT_WINDOW`]), cut as `logs all --tail` cuts (blocking: it reads the file).
    pub fn recent_events(&self, most: usize) -> std::io::Result<Vec<Event>> {
        let events = self.inner.log.read_tail(RECENT_WINDOW)?;
        let tail = Filter { tail: Some(most), ..Filter::default() };
        Ok(tail.events(events.into_iter().filter(|e| e.kind != EventKind::Alive).collect()))
    }

    /// The swarm's (upload, download) rates in bytes per second: the sum of what live peers
    /// last reported in their heartbeats (kept as reports arrive).
    pub fn rates(&self) -> (u64, u64) {
        self.registry().rates()
    }
}
