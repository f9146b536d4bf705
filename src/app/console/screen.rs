//! Everything the process writes for people goes through here, so nothing garbles anything else.
//!
//! Three situations:
//! - **plain** (pipes, and terminals with nothing live): each line is written at once, in order;
//! - **direct** (a one-shot command drawing bars on a terminal): a *status area* of a few lines
//!   (the progress bars) sits at the bottom of stderr; a message erases it, prints, redraws it;
//! - **editor** (the prompt's line editor is running): the same, but every byte goes through
//!   the editor's external printer on a thread of our own, so the editor clears and redraws the
//!   line being typed around it and no async task ever blocks on the terminal.
//!
//! The status area is only ever written by [`set_status`] (fed by `peer::progress`).

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

pub use super::style::{Style, colour, paint};

/// How long the reader waits for the writer to tidy the screen after a line is entered; only a
/// bound, so a stuck terminal write can never hold the prompt.
const ACK_TIMEOUT: Duration = Duration::from_millis(250);

/// Which standard stream a message belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// Standard output: results.
    Out,
    /// Standard error: errors, warnings, diagnostics, progress.
    Err,
}

impl Stream {
    pub(super) fn is_terminal(self) -> bool {
        match self {
            Stream::Out => std::io::stdout().is_terminal(),
            Stream::Err => std::io::stderr().is_terminal(),
        }
    }

    fn write(self, text: &str) {
        let _ = match self {
            Stream::Out => write_flush(&mut std::io::stdout().lock(), text),
            Stream::Err => write_flush(&mut std::io::stderr().lock(), text),
        };
    }
}

fn write_flush(out: &mut impl Write, text: &str) -> std::io::Result<()> {
    out.write_all(text.as_bytes())?;
    out.flush()
}

/// Something that prints above the line being edited (the line editor's external printer).
pub trait Printer: Send {
    /// Prints `text`; the editor clears and redraws its line around it.
    fn print(&mut self, text: String);
    /// How long until text held back must be written; `None` when none is held.
    fn due(&mut self) -> Option<Duration> {
        None
    }
    /// Writes the text held back.
    fn flush(&mut self) {}
    /// The editor drew its prompt: text held back may go to it.
    fn resume(&mut self) {}
}

/// What the editor's writer thread is asked to do, in order.
enum Op {
    /// Print text for people.
    Text(String),
    /// Replace the status area.
    Status(Vec<String>),
    /// Clear the screen, then redraw the status area at its top.
    Clear,
    /// The editor drew its prompt.
    Resume,
    /// A line was entered: `rows` rows of echo sit between the status area and the cursor.
    Entered { echo: String, rows: usize, ack: std_mpsc::Sender<()> },
    /// Erase the status area and stop; `direct` when the editor still waits for a line, so
    /// the erasing (and its prompt) go straight to the terminal rather than to the editor.
    Close { direct: bool, ack: std_mpsc::Sender<()> },
}

enum Mode {
    Plain,
    Direct,
    Editor(std_mpsc::Sender<Op>),
}

/// The one terminal of the process.
struct Screen {
    mode: Mode,
    /// Lines of the status area wanted (direct mode).
    status: Vec<String>,
    /// Lines of it on the terminal now (direct mode).
    drawn: usize,
}

static SCREEN: Mutex<Screen> = Mutex::new(Screen { mode: Mode::Plain, status: Vec::new(), drawn: 0 });
static QUIET: AtomicBool = AtomicBool::new(false);
static NOTICES_TO_STDERR: AtomicBool = AtomicBool::new(false);

fn screen() -> MutexGuard<'static, Screen> {
    SCREEN.lock().unwrap_or_else(|p| p.into_inner())
}

/// Hides warnings, notices and progress bars (`-q`); errors still show.
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

/// Whether `-q` was given.
pub fn is_quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

/// Sends notices ([`say`]) to stderr, keeping stdout for results: for one-shot commands, whose
/// stdout a script reads.
pub fn notices_to_stderr() {
    NOTICES_TO_STDERR.store(true, Ordering::Relaxed);
}

/// Prints a notice or a command's result: stdout (stderr for one-shot commands, see
/// [`notices_to_stderr`], where `-q` silences it).
pub fn say(text: &str) {
    if NOTICES_TO_STDERR.load(Ordering::Relaxed) {
        if !is_quiet() {
            emit(Stream::Err, text);
        }
    } else {
        emit(Stream::Out, text);
    }
}

/// Prints a result on stdout, always (one-shot results, JSON lines).
pub fn out(text: &str) {
    emit(Stream::Out, text);
}

/// Prints an error as one line on stderr: `error: what failed: why`.
pub fn error(err: &anyhow::Error) {
    error_line(&format!("{err:#}"));
}

/// Prints `text` as one `error: ` line on stderr.
pub fn error_line(text: &str) {
    let text = crate::logbook::printable(&text.replace('\n', " "));
    emit(Stream::Err, &format!("{} {text}", paint(Stream::Err, Style::Error, "error:")));
}

/// Prints a `warning: ` line on stderr, unless quiet.
pub fn warn(text: &str) {
    if !is_quiet() {
        let text = crate::logbook::printable(&text.replace('\n', " "));
        emit(Stream::Err, &format!("{} {text}", paint(Stream::Err, Style::Warning, "warning:")));
    }
}

/// Writes `text` (a line is completed) to `stream`, around the status area if there is one.
pub fn emit(stream: Stream, text: &str) {
    let mut text = text.to_string();
    if !text.ends_with('\n') {
        text.push('\n');
    }
    let screen = screen();
    match &screen.mode {
        Mode::Editor(ops) if stream.is_terminal() => {
            let _ = ops.send(Op::Text(text));
        }
        Mode::Direct if screen.drawn > 0 && stream.is_terminal() => {
            let drawn = screen.drawn;
            Stream::Err.write(&erase(drawn));
            stream.write(&text);
            Stream::Err.write(&lines(&screen.status));
        }
        _ => stream.write(&text),
    }
    drop(screen);
}

/// Writes `text` as is, no newline added (a prompt without the line editor).
pub fn emit_partial(stream: Stream, text: &str) {
    let _screen = screen();
    stream.write(text);
}

/// Clears the screen and moves the cursor home (`clear`), keeping the progress bars; does
/// nothing when stdout is not a terminal, so a script's output stays clean.
pub fn clear() {
    if !Stream::Out.is_terminal() {
        return;
    }
    let mut screen = screen();
    match &screen.mode {
        Mode::Editor(ops) => {
            let _ = ops.send(Op::Clear);
        }
        Mode::Plain | Mode::Direct => {
            Stream::Out.write(CLEAR);
            Stream::Err.write(&lines(&screen.status));
            screen.drawn = screen.status.len();
        }
    }
}

/// ANSI: cursor home, erase the whole screen.
const CLEAR: &str = "\x1b[H\x1b[2J";

/// Replaces the status area (progress bars) with `status`; an empty list removes it.
pub fn set_status(status: Vec<String>) {
    if is_quiet() {
        return;
    }
    let mut screen = screen();
    match &screen.mode {
        Mode::Editor(ops) => {
            let _ = ops.send(Op::Status(status));
        }
        Mode::Plain | Mode::Direct => {
            if !Stream::Err.is_terminal() || status == screen.status && screen.drawn == status.len() {
                return;
            }
            screen.mode = Mode::Direct;
            Stream::Err.write(&format!("{}{}", erase(screen.drawn), lines(&status)));
            screen.drawn = status.len();
            screen.status = status;
        }
    }
}

/// Columns of the terminal (80 when unknown).
pub fn width() -> usize {
    let term = terminal::Term::stdout();
    term.size_checked().map(|(_, cols)| cols as usize).filter(|&c| c > 0).unwrap_or(80)
}

/// Hands the terminal to a line editor: from now on output goes through `printer`.
pub(super) fn attach(printer: Box<dyn Printer>) {
    let (ops, rx) = std_mpsc::channel();
    let spawned = std::thread::Builder::new().name("terminal".into()).spawn(move || write_loop(printer, rx));
    if spawned.is_ok() {
        let mut screen = screen();
        // Bars drawn before the editor started are the writer's to erase from now on.
        if screen.drawn > 0 {
            Stream::Err.write(&erase(screen.drawn));
            screen.drawn = 0;
        }
        screen.mode = Mode::Editor(ops);
    }
}

/// Tells the writer a line was entered, so the status area moves below the echoed line; waits
/// (briefly) until it is done, so the next prompt starts below it.
pub(super) fn entered(prompt: &str, line: &str) {
    let (ack, done) = std_mpsc::channel();
    let echo = format!("{prompt}{line}");
    let rows = terminal::measure_text_width(&echo) / width() + 1;
    let sent = match &screen().mode {
        Mode::Editor(ops) => ops.send(Op::Entered { echo, rows, ack }).is_ok(),
        _ => false,
    };
    if sent {
        let _ = done.recv_timeout(ACK_TIMEOUT);
    }
}

/// Tells the writer the editor drew its prompt (never waits: the editor's thread calls it).
pub(super) fn resume() {
    if let Mode::Editor(ops) = &screen().mode {
        let _ = ops.send(Op::Resume);
    }
}

/// Takes the terminal back from the editor: erases the status area (and the prompt, if the
/// editor still waits for a line), waits for pending output.
pub(super) fn detach(direct: bool) {
    let (ack, done) = std_mpsc::channel();
    let ops = match std::mem::replace(&mut screen().mode, Mode::Plain) {
        Mode::Editor(ops) => ops,
        _ => return,
    };
    if ops.send(Op::Close { direct, ack }).is_ok() {
        let _ = done.recv_timeout(ACK_TIMEOUT * 4);
    }
}

/// The editor's writer: applies ops in order, keeping count of the status lines it drew.
fn write_loop(mut printer: Box<dyn Printer>, ops: std_mpsc::Receiver<Op>) {
    let (mut status, mut drawn) = (Vec::<String>::new(), 0usize);
    loop {
        let next = match printer.due() {
            Some(wait) => ops.recv_timeout(wait),
            None => ops.recv().map_err(|_| std_mpsc::RecvTimeoutError::Disconnected),
        };
        let op = match next {
            Ok(op) => op,
            Err(std_mpsc::RecvTimeoutError::Timeout) => {
                printer.flush();
                continue;
            }
            Err(std_mpsc::RecvTimeoutError::Disconnected) => {
                printer.flush();
                return;
            }
        };
        match op {
            Op::Text(text) => {
                printer.print(format!("{}{text}{}", erase(drawn), lines(&status)));
                drawn = status.len();
            }
            Op::Status(next) => {
                if next != status || drawn != next.len() {
                    printer.print(format!("{}{}", erase(drawn), lines(&next)));
                    (status, drawn) = (next.clone(), next.len());
                }
            }
            Op::Clear => {
                printer.print(format!("{CLEAR}{}", lines(&status)));
                drawn = status.len();
            }
            Op::Resume => printer.resume(),
            Op::Entered { echo, rows, ack } => {
                if drawn > 0 {
                    // The editor is not running: this goes straight to the terminal.
                    printer.print(format!("{}{echo}\n{}", erase(drawn + rows), lines(&status)));
                }
                let _ = ack.send(());
            }
            Op::Close { direct, ack } => {
                printer.flush();
                if direct {
                    let clear = if drawn > 0 { erase(drawn) } else { "\x1b[K".to_string() };
                    Stream::Out.write(&format!("\r{clear}"));
                } else if drawn > 0 {
                    printer.print(erase(drawn));
                }
                let _ = ack.send(());
                return;
            }
        }
    }
}

/// Moves up `rows` rows to column 0 and clears to the end of the screen.
fn erase(rows: usize) -> String {
    if rows == 0 { String::new() } else { format!("\x1b[{rows}A\r\x1b[J") }
}

/// Each line followed by a newline.
fn lines(status: &[String]) -> String {
    status.iter().map(|l| format!("{l}\n")).collect()
}

/// A `tracing` writer that sends each diagnostic through the screen, so `-v` output never cuts
/// into a progress bar or the line being typed.
pub struct Diagnostics(Vec<u8>);

impl Diagnostics {
    /// A writer for one diagnostic event.
    pub fn make() -> Diagnostics {
        Diagnostics(Vec::new())
    }
}

impl Write for Diagnostics {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Diagnostics {
    fn drop(&mut self) {
        if !self.0.is_empty() {
            emit(Stream::Err, &String::from_utf8_lossy(&self.0));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erasing_moves_up_and_clears_below() {
        assert_eq!(erase(0), "");
        assert_eq!(erase(2), "\x1b[2A\r\x1b[J");
        assert_eq!(lines(&["a".into(), "b".into()]), "a\nb\n");
    }
}
