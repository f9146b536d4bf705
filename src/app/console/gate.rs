//! Keeps output in the order it was written while the line editor starts and stops.
//!
//! rustyline's external printer writes at once while no `readline` runs, and queues (one
//! message deep: a second print waits) while one does, printing the queue only when the editor
//! next waits for a key. Lines pasted in one go are all in the editor's input buffer, so a
//! `readline` can return the second one without ever waiting, leaving the first command's
//! output queued; text written right after would then overtake it. The gate holds text from
//! the moment a line is accepted until the next prompt is drawn, where it joins the editor's
//! queue behind what already waits there. It holds at most [`HOLD`], so a long command's
//! output still shows while it runs.
//!
//! The editor's side ([`Phases`]) only flips a phase and never waits on the printer (the
//! printer may be waiting for the editor to empty its queue); the writer's side ([`Gate`])
//! owns the printer and what it holds back.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::{Duration, Instant};

/// Longest time text waits for the next prompt before it is written anyway.
pub(super) const HOLD: Duration = Duration::from_millis(200);

/// Longest time the editor waits for a print under way before it switches the terminal mode.
const PRINT_WAIT: Duration = Duration::from_millis(50);

/// No `readline` runs: the printer writes at once.
const IDLE: u8 = 0;
/// `readline` is called but has not drawn its prompt (raw mode may not be on yet).
const STARTING: u8 = 1;
/// The prompt is drawn: the printer queues and the editor prints the queue when it waits.
const LIVE: u8 = 2;
/// A line was accepted: the editor is about to return, perhaps with text still queued.
const ENDING: u8 = 3;

/// Something that prints around the line being edited: rustyline's external printer.
pub(super) trait Print: Send {
    /// Prints `text` (at once, or queued while a `readline` runs).
    fn print(&mut self, text: String);
}

/// The editor's side: where it is in one `readline`.
#[derive(Default)]
pub(super) struct Phases {
    phase: AtomicU8,
    /// The writer is between reading the phase and handing text to the printer.
    printing: AtomicBool,
}

impl Phases {
    /// A `readline` is about to be called (and to turn raw mode on).
    pub(super) fn starting(&self) {
        self.switch(STARTING);
    }

    /// The editor drew its prompt; true the first time in this `readline`, when held text
    /// may go to the editor's queue.
    pub(super) fn prompt_drawn(&self) -> bool {
        self.phase.compare_exchange(STARTING, LIVE, Ordering::SeqCst, Ordering::SeqCst).is_ok()
    }

    /// The editor accepted a line and is about to turn raw mode off.
    pub(super) fn accepted(&self) {
        self.switch(ENDING);
    }

    /// The `readline` returned.
    pub(super) fn stopped(&self) {
        self.phase.store(IDLE, Ordering::SeqCst);
    }

    /// Moves to `to`, then lets a print that read the old phase reach the printer before the
    /// terminal mode changes (bounded: a print waiting on a full queue is already past the
    /// printer's choice between writing and queueing).
    fn switch(&self, to: u8) {
        self.phase.store(to, Ordering::SeqCst);
        let deadline = Instant::now() + PRINT_WAIT;
        while self.printing.load(Ordering::SeqCst) && Instant::now() < deadline {
            std::thread::yield_now();
        }
    }
}

/// The writer's side: the printer, and the text held back from it.
pub(super) struct Gate<P> {
    phases: Arc<Phases>,
    printer: P,
    /// Whether the editor's queue was ever used (and so may still hold text).
    queued: bool,
    held: String,
    since: Option<Instant>,
}

impl<P: Print> Gate<P> {
    /// A gate in front of `printer`, following the editor through `phases`.
    pub(super) fn new(printer: P, phases: Arc<Phases>) -> Gate<P> {
        Gate { phases, printer, queued: false, held: String::new(), since: None }
    }

    /// Prints `text`, or holds it while it could overtake text the editor has queued.
    pub(super) fn print(&mut self, text: String) {
        self.phases.printing.store(true, Ordering::SeqCst);
        match self.phases.phase.load(Ordering::SeqCst) {
            LIVE => {
                self.held.push_str(&text);
                self.release(true);
            }
            IDLE if !self.queued => self.printer.print(text),
            _ => {
                self.since.get_or_insert_with(Instant::now);
                self.held.push_str(&text);
            }
        }
        self.phases.printing.store(false, Ordering::SeqCst);
    }

    /// The prompt was drawn: held text joins the editor's queue.
    pub(super) fn resume(&mut self) {
        self.phases.printing.store(true, Ordering::SeqCst);
        if self.phases.phase.load(Ordering::SeqCst) == LIVE {
            self.release(true);
        }
        self.phases.printing.store(false, Ordering::SeqCst);
    }

    /// How long until held text must be written anyway; `None` when nothing is held.
    pub(super) fn due(&self) -> Option<Duration> {
        self.since.map(|since| HOLD.saturating_sub(since.elapsed()))
    }

    /// Writes what is held now (it waited long enough, or the prompt is closing).
    pub(super) fn flush(&mut self) {
        self.phases.printing.store(true, Ordering::SeqCst);
        let live = self.phases.phase.load(Ordering::SeqCst) == LIVE;
        self.release(live);
        self.phases.printing.store(false, Ordering::SeqCst);
    }

    fn release(&mut self, live: bool) {
        self.since = None;
        if !self.held.is_empty() {
            self.printer.print(std::mem::take(&mut self.held));
            self.queued |= live;
        }
    }
}

#[cfg(test)]
mod tests;
